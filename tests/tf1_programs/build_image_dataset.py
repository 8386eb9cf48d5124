"""The "build an image dataset" tutorial shape: a folder per class of image files, the paths
and labels listed in Python, then tf.train.slice_input_producer, tf.read_file,
tf.image.decode_jpeg / decode_png, tf.image.resize_images, tf.train.batch and queue runners
feeding a small CNN. The data source: the digit images written out as JPEG and PNG files."""
import os
import tempfile

import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_string("dataset_path", "", "a folder of class folders (written if empty)")
tf.app.flags.DEFINE_string("mode", "folder", "folder: a folder per class")
tf.app.flags.DEFINE_integer("steps", 60, "training steps")
tf.app.flags.DEFINE_integer("per_class", 30, "images written per class")
tf.app.flags.DEFINE_integer("batch_size", 32, "images per batch")
FLAGS = tf.app.flags.FLAGS
N_CLASSES, IMG_HEIGHT, IMG_WIDTH, CHANNELS = 10, 16, 16, 3


def write_dataset(path, per_class=30):
    """The data source: digit images as 8x8 RGB files, JPEG for even classes, PNG for odd."""
    data = digits.load()
    image = tf.placeholder(tf.uint8, [8, 8, 3])
    filename = tf.placeholder(tf.string, [])
    write = {"jpg": tf.write_file(filename, tf.image.encode_jpeg(image, quality=95)),
             "png": tf.write_file(filename, tf.image.encode_png(image))}
    with tf.Session() as s:
        for c in range(N_CLASSES):
            os.makedirs(os.path.join(path, f"class_{c}"), exist_ok=True)
            images = data.train_x[data.train_y == c][:per_class]
            for i, im in enumerate(images):
                rgb = np.repeat((im.reshape(8, 8, 1) * 255).astype(np.uint8), 3, axis=2)
                ext = "jpg" if c % 2 == 0 else "png"
                s.run(write[ext], {image: rgb, filename: os.path.join(
                    path, f"class_{c}", f"{i:03d}.{ext}")})


def read_images(dataset_path, mode, batch_size):
    imagepaths, labels = list(), list()
    if mode == 'folder':
        label = 0
        classes = sorted(os.walk(dataset_path).__next__()[1])
        for c in classes:
            c_dir = os.path.join(dataset_path, c)
            walk = os.walk(c_dir).__next__()
            for sample in sorted(walk[2]):
                if sample.endswith('.jpg') or sample.endswith('.jpeg') or sample.endswith('.png'):
                    imagepaths.append(os.path.join(c_dir, sample))
                    labels.append(label)
            label += 1
    else:
        raise Exception("Unknown mode.")
    imagepaths = tf.convert_to_tensor(imagepaths, dtype=tf.string)
    labels = tf.convert_to_tensor(labels, dtype=tf.int32)
    image, label = tf.train.slice_input_producer([imagepaths, labels], shuffle=True, seed=1)
    image = tf.read_file(image)
    image = tf.image.decode_image(image, channels=CHANNELS)
    image.set_shape([None, None, CHANNELS])
    image = tf.image.resize_images(image, [IMG_HEIGHT, IMG_WIDTH])
    image = image * 1.0 / 127.5 - 1.0
    X, Y = tf.train.batch([image, label], batch_size=batch_size,
                          capacity=batch_size * 8, num_threads=4)
    return X, Y


def conv_net(x, n_classes, dropout, reuse, is_training):
    with tf.variable_scope('ConvNet', reuse=reuse):
        conv1 = tf.layers.conv2d(x, 16, 3, activation=tf.nn.relu)
        conv1 = tf.layers.max_pooling2d(conv1, 2, 2)
        fc1 = tf.contrib.layers.flatten(conv1)
        fc1 = tf.layers.dense(fc1, 64)
        fc1 = tf.layers.dropout(fc1, rate=dropout, training=is_training)
        out = tf.layers.dense(fc1, n_classes)
        out = tf.nn.softmax(out) if not is_training else out
    return out


def main(_):
    tf.set_random_seed(2)
    dataset_path = FLAGS.dataset_path or tempfile.mkdtemp()
    if not os.listdir(dataset_path):
        write_dataset(dataset_path, FLAGS.per_class)
    first = tf.Session().run(tf.image.decode_jpeg(tf.read_file(
        os.path.join(dataset_path, "class_0", "000.jpg")), channels=1))
    X, Y = read_images(dataset_path, FLAGS.mode, FLAGS.batch_size)
    logits_train = conv_net(X, N_CLASSES, 0.25, reuse=False, is_training=True)
    logits_test = conv_net(X, N_CLASSES, 0.25, reuse=True, is_training=False)
    loss_op = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=logits_train, labels=Y))
    train_op = tf.train.AdamOptimizer(learning_rate=0.005).minimize(loss_op)
    correct_pred = tf.equal(tf.argmax(logits_test, 1), tf.cast(Y, tf.int64))
    accuracy = tf.reduce_mean(tf.cast(correct_pred, tf.float32))
    init = tf.global_variables_initializer()
    with tf.Session() as sess:
        sess.run(init)
        coord = tf.train.Coordinator()
        threads = tf.train.start_queue_runners(sess=sess, coord=coord)
        for _step in range(1, FLAGS.steps + 1):
            _, loss = sess.run([train_op, loss_op])
        accs = [sess.run(accuracy) for _ in range(5)]
        coord.request_stop()
        coord.join(threads)
    print("first_image", first.dtype, list(first.shape))
    print("files", sum(len(f) for _, _, f in os.walk(dataset_path)))
    print("loss", np.round(loss, 4))
    print("accuracy", np.round(np.mean(accs), 4))


if __name__ == "__main__":
    tf.app.run()
