"""The queue-based "fully connected reader" tutorial shape: the digits converted to a
TFRecords file of tf.train.Examples, then read by tf.train.string_input_producer +
tf.TFRecordReader + tf.parse_single_example + tf.decode_raw, batched by tf.train.shuffle_batch
and trained until the input's epochs run out (OutOfRangeError), with a Coordinator and
queue runners. The test split is read back with tf.python_io.tf_record_iterator and
tf.train.Example.FromString and evaluated through a placeholder on the same weights."""
import os
import tempfile

import numpy as np

import actorflow as tf
from models import digits

flags = tf.app.flags
flags.DEFINE_string("train_dir", "", "where the .tfrecords files go (a temporary dir if empty)")
flags.DEFINE_integer("num_epochs", 3, "passes over the training file")
flags.DEFINE_integer("batch_size", 50, "examples per step")
flags.DEFINE_float("learning_rate", 0.5, "step size")
FLAGS = flags.FLAGS


def write_records(images, labels, name):
    filename = os.path.join(FLAGS.train_dir, name + ".tfrecords")
    pixels = np.round(images * 16).astype(np.uint8)
    writer = tf.python_io.TFRecordWriter(filename)
    for image, label in zip(pixels, labels, strict=True):
        example = tf.train.Example(features=tf.train.Features(feature={
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            "image_raw": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[image.tobytes()]))}))
        writer.write(example.SerializeToString())
    writer.close()
    return filename


def read_and_decode(filename_queue):
    reader = tf.TFRecordReader()
    _, serialized_example = reader.read(filename_queue)
    features = tf.parse_single_example(
        serialized_example,
        features={"image_raw": tf.FixedLenFeature([], tf.string),
                  "label": tf.FixedLenFeature([], tf.int64)})
    image = tf.decode_raw(features["image_raw"], tf.uint8)
    image.set_shape([64])
    image = tf.cast(image, tf.float32) * (1.0 / 16)
    label = tf.cast(features["label"], tf.int32)
    return image, label


def inputs(filename, batch_size, num_epochs):
    with tf.name_scope("input"):
        filename_queue = tf.train.string_input_producer([filename], num_epochs=num_epochs,
                                                        seed=5)
        image, label = read_and_decode(filename_queue)
        images, sparse_labels = tf.train.shuffle_batch(
            [image, label], batch_size=batch_size, num_threads=2,
            capacity=500 + 3 * batch_size, min_after_dequeue=500, seed=5,
            allow_smaller_final_batch=True)
        return images, sparse_labels


def logits_of(x):
    with tf.variable_scope("softmax_linear", reuse=tf.AUTO_REUSE):
        weights = tf.get_variable("weights", [64, 10], initializer=tf.zeros_initializer())
        biases = tf.get_variable("biases", [10], initializer=tf.zeros_initializer())
    return tf.matmul(x, weights) + biases


def main(_):
    if not FLAGS.train_dir:
        FLAGS.train_dir = tempfile.mkdtemp()
    data = digits.load()
    train_file = write_records(data.train_x, data.train_y, "train")
    test_file = write_records(data.test_x, data.test_y, "test")

    images, labels = inputs(train_file, FLAGS.batch_size, FLAGS.num_epochs)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits_of(images)))
    train_op = tf.train.GradientDescentOptimizer(FLAGS.learning_rate).minimize(loss)
    x = tf.placeholder(tf.float32, [None, 64])
    y = tf.placeholder(tf.int64, [None])
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits_of(x), 1), y), tf.float32))
    init_op = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())

    sess = tf.Session()
    sess.run(init_op)
    coord = tf.train.Coordinator()
    threads = tf.train.start_queue_runners(sess=sess, coord=coord)
    step = seen = 0
    try:
        while not coord.should_stop():
            _, batch = sess.run([train_op, labels])
            step += 1
            seen += len(batch)
    except tf.errors.OutOfRangeError:
        print("done_epochs", FLAGS.num_epochs)
    finally:
        coord.request_stop()
    coord.join(threads)

    test_x, test_y = [], []
    for record in tf.python_io.tf_record_iterator(test_file):
        example = tf.train.Example.FromString(record)
        raw = example.features.feature["image_raw"].bytes_list.value[0]
        test_x.append(np.frombuffer(raw, np.uint8) / 16.0)
        test_y.append(example.features.feature["label"].int64_list.value[0])
    acc = sess.run(accuracy, {x: np.array(test_x), y: np.array(test_y)})
    sess.close()
    print("steps", step)
    print("examples", seen)
    print("accuracy", np.round(acc, 4))


if __name__ == "__main__":
    tf.app.run()
