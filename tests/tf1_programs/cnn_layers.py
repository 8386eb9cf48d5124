"""A small CNN with tf.layers and tf.losses, evaluated with in_top_k."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("steps", 150, "training steps")
tf.app.flags.DEFINE_boolean("use_dropout", True, "dropout before the last layer")
FLAGS = tf.app.flags.FLAGS


def model(images, training):
    net = tf.reshape(images, [-1, 8, 8, 1])
    net = tf.layers.conv2d(net, 16, 3, padding="same", activation=tf.nn.relu)
    net = tf.layers.max_pooling2d(net, 2, 2)
    net = tf.layers.conv2d(net, 32, 3, padding="same", activation=tf.nn.relu)
    net = tf.layers.average_pooling2d(net, 2, 2)
    net = tf.layers.flatten(net)
    net = tf.layers.dense(net, 64, activation=tf.nn.relu)
    if FLAGS.use_dropout:
        net = tf.layers.dropout(net, rate=0.3, training=training)
    return tf.layers.dense(net, 10)


def main(argv):
    tf.set_random_seed(1)
    data = digits.load()
    images = tf.placeholder(tf.float32, [None, 64])
    labels = tf.placeholder(tf.int32, [None])
    training = tf.placeholder_with_default(False, [])
    logits = model(images, training)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    global_step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdamOptimizer(1e-2).minimize(loss, global_step=global_step)
    correct = tf.nn.in_top_k(logits, tf.to_int64(labels), 1)
    accuracy = tf.reduce_mean(tf.to_float(correct))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        batches = digits.batches(data.train_x, data.train_y, 64, seed=None)
        while sess.run(global_step) < FLAGS.steps:
            try:
                xb, yb = next(batches)
            except StopIteration:
                batches = digits.batches(data.train_x, data.train_y, 64, seed=None)
                continue
            sess.run(train_op, {images: xb, labels: yb, training: True})
        acc = sess.run(accuracy, {images: data.test_x, labels: data.test_y})
    print("accuracy", np.round(acc, 4), "argv", argv[1:])


if __name__ == "__main__":
    tf.app.run(main=main)
