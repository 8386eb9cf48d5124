"""A bidirectional LSTM over image rows with `from ... contrib import rnn`, the last output
taken per example by its sequence length (gather on the flattened outputs)."""
import numpy as np

import actorflow as tf
from actorflow.contrib import rnn
from models import digits

tf.app.flags.DEFINE_integer("steps", 200, "training steps")
FLAGS = tf.app.flags.FLAGS

timesteps, num_input, num_hidden = 8, 8, 16


def BiRNN(x, seqlen, weights, biases):
    x = tf.unstack(x, timesteps, 1)
    lstm_fw_cell = rnn.BasicLSTMCell(num_hidden, forget_bias=1.0)
    lstm_bw_cell = rnn.BasicLSTMCell(num_hidden, forget_bias=1.0)
    outputs, _, _ = rnn.static_bidirectional_rnn(lstm_fw_cell, lstm_bw_cell, x,
                                                 dtype=tf.float32, sequence_length=seqlen)
    outputs = tf.transpose(tf.stack(outputs), [1, 0, 2])      # [batch, time, 2 * hidden]
    batch_size = tf.shape(outputs)[0]
    index = tf.range(0, batch_size) * timesteps + (seqlen - 1)
    last = tf.gather(tf.reshape(outputs, [-1, 2 * num_hidden]), index)
    return tf.matmul(last, weights["out"]) + biases["out"]


def main(_):
    data = digits.load()
    X = tf.placeholder("float", [None, timesteps, num_input])
    Y = tf.placeholder("float", [None, 10])
    seqlen = tf.placeholder(tf.int32, [None])
    weights = {"out": tf.Variable(tf.random_normal([2 * num_hidden, 10]))}
    biases = {"out": tf.Variable(tf.random_normal([10]))}
    logits = BiRNN(X, seqlen, weights, biases)
    loss_op = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=Y))
    train_op = tf.train.AdamOptimizer(learning_rate=0.02).minimize(loss_op)
    correct_pred = tf.equal(tf.argmax(tf.nn.softmax(logits), 1), tf.argmax(Y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_pred, tf.float32))
    rng = np.random.RandomState(2)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(FLAGS.steps):
            i = rng.randint(0, len(data.train_y), 64)
            sess.run(train_op, {X: data.train_x[i].reshape(-1, 8, 8),
                                Y: digits.one_hot(data.train_y[i]), seqlen: np.full(64, 8)})
        acc = sess.run(accuracy, {X: data.test_x.reshape(-1, 8, 8),
                                  Y: digits.one_hot(data.test_y),
                                  seqlen: np.full(len(data.test_y), 8)})
    print("accuracy", np.round(acc, 4))


if __name__ == "__main__":
    tf.app.run()
