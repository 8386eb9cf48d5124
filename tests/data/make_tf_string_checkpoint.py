"""Writes tests/data/tf_ckpt/strings.* with TensorFlow 2.21 (run ONLY with the side env, once):

    .tfenv/bin/python tests/data/make_tf_string_checkpoint.py

String tensors in TensorFlow's own layout (varint lengths, their masked CRC, the bytes): a
vector holding an empty string and 0x00/0xff bytes, a 0-d string, and a float32 beside them,
saved by a TF1 Saver. tests/test_checkpoint_format.py reads it, rewrites it byte for byte, and
(with TensorFlow present) has TensorFlow restore actorflow's copy.
"""

import os

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_eager_execution()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_ckpt")
vals = {"s": np.array([b"hello", b"", b"\x00\xffx" * 3], dtype=object),
        "t": np.array(b"scalar", dtype=object), "f": np.arange(3, dtype=np.float32)}
vs = {k: tf.Variable(v, name=k, dtype=tf.string if v.dtype == object else None)
      for k, v in vals.items()}
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    tf.train.Saver().save(sess, os.path.join(out, "strings"), write_meta_graph=False,
                          write_state=False)
