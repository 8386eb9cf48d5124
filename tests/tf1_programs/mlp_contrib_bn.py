"""An MLP with contrib.layers, L2 regularization, batch norm (UPDATE_OPS), a decaying
learning rate, and tf.compat.v1 / tf.gfile for the output (a TF 1.15-style program)."""
import os
import tempfile

import numpy as np

import actorflow.compat.v1 as tf
from models import digits

tf.disable_eager_execution()
tf.app.flags.DEFINE_string("out_dir", "", "where to write the result")
tf.app.flags.DEFINE_list("layers", "64,32", "hidden layer sizes")
FLAGS = tf.app.flags.FLAGS


def main(argv):
    data = digits.load()
    x = tf.placeholder(tf.float32, [None, 64], name="x")
    y = tf.placeholder(tf.int64, [None], name="y")
    is_training = tf.placeholder(tf.bool, [], name="is_training")
    net = x
    for i, units in enumerate(int(u) for u in FLAGS.layers):
        net = tf.contrib.layers.fully_connected(
            net, units, activation_fn=None,
            weights_regularizer=tf.contrib.layers.l2_regularizer(1e-4),
            weights_initializer=tf.contrib.layers.xavier_initializer(), scope=f"fc{i}")
        net = tf.nn.relu(tf.layers.batch_normalization(net, training=is_training))
    logits = tf.layers.dense(net, 10)
    tf.losses.sparse_softmax_cross_entropy(y, logits)
    loss = tf.losses.get_total_loss()
    step = tf.train.get_or_create_global_step()
    lr = tf.train.piecewise_constant(step, [100, 200], [0.05, 0.02, 0.01])
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train = tf.train.MomentumOptimizer(lr, 0.9).minimize(loss, global_step=step)
    acc = tf.reduce_mean(tf.to_float(tf.equal(tf.argmax(logits, 1), y)))
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        for _ in range(8):
            for xb, yb in digits.batches(data.train_x, data.train_y, 50):
                s.run(train, {x: xb, y: yb, is_training: True})
        a = s.run(acc, {x: data.test_x, y: data.test_y, is_training: False})
        mm = s.run(tf.get_collection(tf.GraphKeys.MOVING_AVERAGE_VARIABLES)[0])
    out_dir = FLAGS.out_dir or tempfile.mkdtemp()
    if not tf.gfile.Exists(out_dir):
        tf.gfile.MakeDirs(out_dir)
    with tf.gfile.GFile(os.path.join(out_dir, "result.txt"), "w") as f:
        f.write(tf.compat.as_str(b"accuracy %.4f\n" % a))
    print("files", tf.gfile.ListDirectory(out_dir))
    print("moving_mean_moved", bool(np.abs(mm).sum() > 0))
    print("accuracy", np.round(a, 4))


if __name__ == "__main__":
    tf.app.run(main)
