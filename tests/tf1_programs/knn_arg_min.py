"""Nearest-neighbour classification with an L1 distance and tf.arg_min."""


import actorflow as tf
from models import digits


def main(_):
    data = digits.load()
    xtr = tf.placeholder(tf.float32, [None, 64])
    xte = tf.placeholder(tf.float32, [64])
    distance = tf.reduce_sum(tf.abs(tf.add(xtr, tf.negative(xte))), reduction_indices=1)
    pred = tf.arg_min(distance, 0)
    correct = 0
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for i in range(100):
            nn_index = sess.run(pred, feed_dict={xtr: data.train_x, xte: data.test_x[i]})
            if data.train_y[nn_index] == data.test_y[i]:
                correct += 1
    print("accuracy", correct / 100.0)


if __name__ == "__main__":
    tf.app.run()
