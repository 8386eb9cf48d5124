"""Writes tests/data/tf_ckpt/ with TensorFlow 2.21 (run ONLY with the side env, once):

    .tfenv/bin/python tests/data/make_tf_checkpoint.py

A TF1-style program (tf.compat.v1): variables w, b trained two Adam steps (slots w/Adam,
w/Adam_1, beta1_power, beta2_power), global_step, a variable partitioned in 3 along axis 0,
an int64, a float64, a 0-d and an empty tensor. Saved with a TF1 Saver (V2 format). The exact
values are also written to expected.npz so actorflow's test compares bit for bit.
"""

import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_eager_execution()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_ckpt")
os.makedirs(out, exist_ok=True)

rng = np.random.default_rng(14)
x = tf.constant(rng.standard_normal((4, 3)).astype(np.float32))
y = tf.constant(rng.standard_normal((4, 2)).astype(np.float32))
w = tf.Variable(rng.standard_normal((3, 2)).astype(np.float32), name="w")
b = tf.Variable(np.zeros(2, np.float32), name="b")
step = tf.train.get_or_create_global_step()
loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
train = tf.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
with tf.variable_scope("emb"):
    part = tf.get_variable("table", shape=[7, 4], dtype=tf.float32,
                           initializer=tf.random_normal_initializer(seed=3),
                           partitioner=tf.fixed_size_partitioner(3))
counts = tf.Variable(np.array([1, -2, 2**40], np.int64), name="counts")
dbl = tf.Variable(np.linspace(0, 1, 5), name="scope/dbl")  # float64
scalar = tf.Variable(3.5, name="scalar")
empty = tf.Variable(np.zeros((0, 3), np.float32), name="empty")
saver = tf.train.Saver()
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    sess.run(train)
    sess.run(train)
    os.chdir(out)  # relative paths in the `checkpoint` state file
    path = saver.save(sess, "model.ckpt", global_step=step, write_meta_graph=False)
    reader = tf.train.load_checkpoint(path)
    full = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    np.savez("expected.npz", **{k.replace("/", "__"): v for k, v in full.items()})
    print(path, sorted(full), file=sys.stderr)
