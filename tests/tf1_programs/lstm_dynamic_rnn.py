"""Classify digits row by row with an LSTM run by dynamic_rnn (rows as time steps)."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("hidden", 32, "LSTM units")
tf.app.flags.DEFINE_integer("epochs", 12, "passes")
FLAGS = tf.app.flags.FLAGS


def main(_):
    data = digits.load()
    x = tf.placeholder(tf.float32, [None, 8, 8])
    lengths = tf.placeholder(tf.int32, [None])
    y = tf.placeholder(tf.int64, [None])
    cell = tf.nn.rnn_cell.BasicLSTMCell(FLAGS.hidden)
    outputs, state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
    W = tf.get_variable("W", [FLAGS.hidden, 10])
    b = tf.get_variable("b", [10], initializer=tf.zeros_initializer())
    logits = tf.nn.xw_plus_b(state.h, W, b)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                          logits=logits))
    grads, tvars = zip(*tf.train.AdamOptimizer(0.02).compute_gradients(loss), strict=True)
    clipped, _ = tf.clip_by_global_norm(grads, 5.0)
    train = tf.train.AdamOptimizer(0.02).apply_gradients(zip(clipped, tvars, strict=True))
    acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
    tx = data.train_x.reshape(-1, 8, 8)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        for _ in range(FLAGS.epochs):
            for xb, yb in digits.batches(tx, data.train_y, 64):
                s.run(train, {x: xb, y: yb, lengths: np.full(len(yb), 8)})
        a = s.run(acc, {x: data.test_x.reshape(-1, 8, 8), y: data.test_y,
                        lengths: np.full(len(data.test_y), 8)})
    print("accuracy", np.round(a, 4))


if __name__ == "__main__":
    tf.app.run()
