"""Writes tests/data/tf_records/ with TensorFlow 2.21 (run ONLY with the side env, once):

    .tfenv/bin/python tests/data/make_tf_records.py

Six tf.train.Examples, record i holding (the test rebuilds the same values from `example`):
    image  float  [0.5 i + 0.25 j for j < 4]      label  int64 [i % 3]
    name   bytes  [b"ex<i>"]                      tags   int64 [0 .. i-1] (empty for i = 0)
    raw    bytes  [uint16 i .. i+3, little-endian]
    frames float  2 * (i % 3) values (steps of shape [2]): 0.1 * k
    weight float  [1 + i] on even records only (a FixedLenFeature default fills odd ones)
written with tf.io.TFRecordWriter three ways: examples.tfrecord (no compression),
examples_gzip.tfrecord (GZIP), examples_zlib.tfrecord (ZLIB); two SequenceExamples in
sequence.tfrecord; tf.io.serialize_tensor of a [2, 3] float32 and a [2] string tensor in
tensor_float.pb / tensor_string.pb; and an event file written by tf.compat.v1.summary.FileWriter
(3 steps of scalar "loss" = 1 / (step + 1)) in events.out.tfevents.fixture.
"""

import glob
import os
import shutil

import numpy as np
import tensorflow as tf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_records")


def example(i: int) -> tf.train.Example:
    f = tf.train.Feature
    feat = {
        "image": f(float_list=tf.train.FloatList(value=[0.5 * i + 0.25 * j for j in range(4)])),
        "label": f(int64_list=tf.train.Int64List(value=[i % 3])),
        "name": f(bytes_list=tf.train.BytesList(value=[f"ex{i}".encode()])),
        "tags": f(int64_list=tf.train.Int64List(value=list(range(i)))),
        "raw": f(bytes_list=tf.train.BytesList(
            value=[np.arange(i, i + 4, dtype="<u2").tobytes()])),
        "frames": f(float_list=tf.train.FloatList(value=[0.1 * k for k in range(2 * (i % 3))])),
    }
    if i % 2 == 0:
        feat["weight"] = f(float_list=tf.train.FloatList(value=[1.0 + i]))
    return tf.train.Example(features=tf.train.Features(feature=feat))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    for name, comp in (("examples.tfrecord", None), ("examples_gzip.tfrecord", "GZIP"),
                       ("examples_zlib.tfrecord", "ZLIB")):
        with tf.io.TFRecordWriter(os.path.join(OUT, name), options=comp) as w:
            for i in range(6):
                w.write(example(i).SerializeToString())
    with tf.io.TFRecordWriter(os.path.join(OUT, "sequence.tfrecord")) as w:
        for i in range(2):
            s = tf.train.SequenceExample()
            s.context.feature["id"].int64_list.value.append(i)
            for t in range(i + 2):
                s.feature_lists.feature_list["tok"].feature.add().int64_list.value.append(t * 10)
            w.write(s.SerializeToString())
    t = tf.io.serialize_tensor(tf.constant([[1.5, -2.0, 0.0], [3.25, 4.0, 1e-3]], tf.float32))
    open(os.path.join(OUT, "tensor_float.pb"), "wb").write(t.numpy())
    t = tf.io.serialize_tensor(tf.constant([b"ab", b""]))
    open(os.path.join(OUT, "tensor_string.pb"), "wb").write(t.numpy())
    logdir = os.path.join(OUT, "_events")
    shutil.rmtree(logdir, ignore_errors=True)
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [])
        summ = tf.compat.v1.summary.scalar("loss", x)
        with tf.compat.v1.Session() as sess:
            w = tf.compat.v1.summary.FileWriter(logdir)
            for step in range(3):
                w.add_summary(sess.run(summ, {x: 1.0 / (step + 1)}), step)
            w.close()
    (ev,) = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    shutil.move(ev, os.path.join(OUT, "events.out.tfevents.fixture"))
    shutil.rmtree(logdir)


if __name__ == "__main__":
    main()
