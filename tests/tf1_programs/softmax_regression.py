"""Softmax regression on the digits, written as a TF1 tutorial program."""
import numpy as np

import actorflow as tf
from models import digits

flags = tf.app.flags
flags.DEFINE_integer("epochs", 30, "passes over the training data")
flags.DEFINE_float("learning_rate", 0.5, "step size")
flags.DEFINE_integer("batch_size", 100, "examples per step")
FLAGS = flags.FLAGS


def main(_):
    data = digits.load()
    x = tf.placeholder(tf.float32, [None, 64])
    y_ = tf.placeholder(tf.float32, [None, 10])
    W = tf.Variable(tf.zeros([64, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.matmul(x, W) + b
    cross_entropy = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=y))
    train_step = tf.train.GradientDescentOptimizer(FLAGS.learning_rate).minimize(cross_entropy)
    correct = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
    sess = tf.InteractiveSession()
    tf.global_variables_initializer().run()
    for _ in range(FLAGS.epochs):
        for xb, yb in digits.batches(data.train_x, data.train_y, FLAGS.batch_size):
            sess.run(train_step, feed_dict={x: xb, y_: digits.one_hot(yb)})
    acc = sess.run(accuracy, feed_dict={x: data.test_x, y_: digits.one_hot(data.test_y)})
    print("accuracy", np.round(acc, 4))
    sess.close()


if __name__ == "__main__":
    tf.app.run()
