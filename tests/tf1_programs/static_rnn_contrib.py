"""A GRU + LSTM stack unrolled with static_rnn from tf.contrib.rnn."""
import numpy as np

import actorflow as tf
from models import digits

flags = tf.app.flags
flags.DEFINE_integer("steps", 250, "training steps")
FLAGS = flags.FLAGS


def main(_):
    data = digits.load()
    x = tf.placeholder(tf.float32, [None, 8, 8])
    y = tf.placeholder(tf.int32, [None])
    keep = tf.placeholder(tf.float32)
    inputs = tf.unstack(x, 8, 1)
    cells = [tf.contrib.rnn.DropoutWrapper(tf.contrib.rnn.GRUCell(24), output_keep_prob=keep),
             tf.contrib.rnn.LSTMCell(24)]
    outputs, states = tf.contrib.rnn.static_rnn(tf.contrib.rnn.MultiRNNCell(cells), inputs,
                                                dtype=tf.float32)
    logits = tf.contrib.layers.fully_connected(outputs[-1], 10, activation_fn=None)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=logits))
    step = tf.Variable(0, trainable=False)
    lr = tf.train.exponential_decay(0.03, step, 100, 0.5, staircase=True)
    train = tf.train.AdamOptimizer(lr).minimize(loss, global_step=step)
    acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y),
                                 tf.float32))
    rng = np.random.RandomState(0)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        for _ in range(FLAGS.steps):
            i = rng.randint(0, len(data.train_y), 64)
            s.run(train, {x: data.train_x[i].reshape(-1, 8, 8), y: data.train_y[i], keep: 0.9})
        a = s.run(acc, {x: data.test_x.reshape(-1, 8, 8), y: data.test_y, keep: 1.0})
        print("final lr", s.run(lr))
    print("accuracy", np.round(a, 4))


if __name__ == "__main__":
    tf.app.run()
