"""Writes tests/data/tf_part_ckpt/ with TensorFlow 2.21 (run ONLY with the side env, once):

    .tfenv/bin/python tests/data/make_tf_partitioned_checkpoint.py

A TF1-style program (tf.compat.v1) with partitioned variables: emb/table [7, 3] in 3 parts
along axis 0 (fixed_size_partitioner(3)) and dense/w [3, 5] in 2 parts along axis 1, trained
three Adam steps, so their slots (emb/table/Adam, ...) are partitioned too. TF's Saver stores
each as ONE tensor whose entry lists its slices. The full tensors, as TensorFlow reads them,
are written to expected.npz ("/" spelled "__") for actorflow's test to compare bit for bit.
"""

import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_eager_execution()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_part_ckpt")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(6)
ids = tf.constant([0, 3, 5, 6, 2], tf.int64)
y = tf.constant(rng.standard_normal((5, 3)).astype(np.float32))
with tf.variable_scope("emb"):
    table = tf.get_variable("table", shape=[7, 3], dtype=tf.float32,
                            initializer=tf.random_normal_initializer(seed=1),
                            partitioner=tf.fixed_size_partitioner(3))
with tf.variable_scope("dense"):
    w = tf.get_variable("w", shape=[3, 5], dtype=tf.float32,
                        initializer=tf.random_normal_initializer(seed=2),
                        partitioner=tf.fixed_size_partitioner(2, axis=1))
h = tf.nn.embedding_lookup(table, ids)
loss = tf.reduce_mean(tf.square(tf.matmul(h, w)[:, :3] - y))
step = tf.train.get_or_create_global_step()
train = tf.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
saver = tf.train.Saver()
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for _ in range(3):
        sess.run(train)
    os.chdir(out)
    path = saver.save(sess, "model.ckpt", global_step=step, write_meta_graph=False)
    reader = tf.train.load_checkpoint(path)
    full = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    np.savez("expected.npz", **{k.replace("/", "__"): v for k, v in full.items()})
    print(path, sorted(full), file=sys.stderr)
