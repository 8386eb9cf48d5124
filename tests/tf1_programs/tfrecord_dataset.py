"""The "convert to TFRecords, then read them back" tutorial shape: the digits written as
tf.train.Example protos (raw uint8 pixels + int64 label, as convert_to_records.py does) with
tf.python_io.TFRecordWriter, then softmax regression trained from a tf.data.TFRecordDataset
with map(parse_single_example + decode_raw), shuffle, batch and repeat; the test split is read
back the same way through an initializable iterator."""
import os
import tempfile

import numpy as np

import actorflow as tf
from models import digits

flags = tf.app.flags
flags.DEFINE_string("directory", "", "where the .tfrecords files go (a temporary dir if empty)")
flags.DEFINE_integer("epochs", 3, "passes over the training records")
flags.DEFINE_integer("batch_size", 50, "examples per step")
flags.DEFINE_float("learning_rate", 0.5, "step size")
FLAGS = flags.FLAGS


def _int64_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def convert_to(images, labels, name):
    """images: [n, 64] floats in [0, 1]; written as 8x8 uint8 pixels (0..16)."""
    filename = os.path.join(FLAGS.directory, name + ".tfrecords")
    pixels = np.round(images * 16).astype(np.uint8)
    with tf.python_io.TFRecordWriter(filename) as writer:
        for index in range(len(images)):
            example = tf.train.Example(features=tf.train.Features(feature={
                "height": _int64_feature(8),
                "width": _int64_feature(8),
                "depth": _int64_feature(1),
                "label": _int64_feature(int(labels[index])),
                "image_raw": _bytes_feature(pixels[index].tobytes())}))
            writer.write(example.SerializeToString())
    return filename


def decode(serialized_example):
    features = tf.parse_single_example(
        serialized_example,
        features={"image_raw": tf.FixedLenFeature([], tf.string),
                  "label": tf.FixedLenFeature([], tf.int64)})
    image = tf.decode_raw(features["image_raw"], tf.uint8)
    image.set_shape([64])
    image = tf.cast(image, tf.float32) * (1.0 / 16)
    label = tf.cast(features["label"], tf.int32)
    return image, label


def main(_):
    if not FLAGS.directory:
        FLAGS.directory = tempfile.mkdtemp()
    data = digits.load()
    train_file = convert_to(data.train_x, data.train_y, "train")
    test_file = convert_to(data.test_x, data.test_y, "test")
    records = sum(1 for _ in tf.python_io.tf_record_iterator(train_file))

    dataset = tf.data.TFRecordDataset(train_file).map(decode)
    dataset = dataset.shuffle(1000, seed=3).batch(FLAGS.batch_size).repeat(FLAGS.epochs)
    images, labels = dataset.make_one_shot_iterator().get_next()

    def model(x):
        with tf.variable_scope("softmax", reuse=tf.AUTO_REUSE):
            W = tf.get_variable("W", [64, 10], initializer=tf.zeros_initializer())
            b = tf.get_variable("b", [10], initializer=tf.zeros_initializer())
        return tf.matmul(x, W) + b

    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=model(images))
    train_op = tf.train.GradientDescentOptimizer(FLAGS.learning_rate).minimize(loss)

    filename = tf.placeholder(tf.string, shape=[])
    test_iter = tf.data.TFRecordDataset(filename).map(decode).batch(1000) \
        .make_initializable_iterator()
    test_images, test_labels = test_iter.get_next()
    correct = tf.equal(tf.argmax(model(test_images), 1, output_type=tf.int32), test_labels)
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    steps = 0
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        try:
            while True:
                sess.run(train_op)
                steps += 1
        except tf.errors.OutOfRangeError:
            pass
        sess.run(test_iter.initializer, feed_dict={filename: test_file})
        acc = sess.run(accuracy)
    print("records", records)
    print("steps", steps)
    print("accuracy", np.round(acc, 4))


if __name__ == "__main__":
    tf.app.run()
