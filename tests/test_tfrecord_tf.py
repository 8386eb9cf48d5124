"""TFRecord files and Example protos against TensorFlow itself, both ways, in one run of the
side env (`.tfenv`, TensorFlow 2.21; skipped where it is absent): TensorFlow reads and parses
what we write (three compressions, serialize_tensor, an event file) and gives the order of
TFRecordDataset's num_parallel_reads, TextLineDataset + decode_csv and
FixedLengthRecordDataset on the same files; we read and parse what it writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import actorflow as tf
from tests.test_checkpoint_format import tf_python
from tests.test_tfrecord import FEATURES, expected, make_example

TF_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
d = sys.argv[1]
out = {}
feats = {"image": tf.io.FixedLenFeature([2, 2], tf.float32),
         "label": tf.io.FixedLenFeature([], tf.int64),
         "name": tf.io.FixedLenFeature([], tf.string),
         "weight": tf.io.FixedLenFeature([1], tf.float32, default_value=[-1.0]),
         "frames": tf.io.FixedLenSequenceFeature([2], tf.float32, allow_missing=True),
         "tags": tf.io.VarLenFeature(tf.int64)}
for comp in ("", "ZLIB", "GZIP"):
    recs = [r.numpy() for r in tf.data.TFRecordDataset(f"{d}/ours{comp}.tfrecord", comp)]
    b = tf.io.parse_example(tf.constant(recs), feats)
    out[comp or "NONE"] = {"image": b["image"].numpy().tolist(),
                           "label": b["label"].numpy().tolist(),
                           "name": [n.decode() for n in b["name"].numpy()],
                           "weight": b["weight"].numpy().tolist(),
                           "frames": b["frames"].numpy().tolist(),
                           "tags": b["tags"].values.numpy().tolist()}
t = tf.io.parse_tensor(open(f"{d}/ours_tensor.pb", "rb").read(), tf.float32)
out["tensor"] = t.numpy().tolist()
out["events"] = [(e.step, v.tag, v.simple_value)
                 for e in tf.compat.v1.train.summary_iterator(f"{d}/ours.events")
                 for v in e.summary.value]
names = [f"{d}/p{i}.tfrecord" for i in range(3)]
out["parallel"] = [r.numpy().decode() for r in tf.data.TFRecordDataset(
    names, num_parallel_reads=2)]
lines = tf.data.TextLineDataset(f"{d}/lines.csv.gz", "GZIP").skip(1).map(
    lambda l: tf.io.decode_csv(l, [[0], [-1.0], ["?"]], na_value="NA"))
out["csv"] = [[int(a), float(b), c.decode()] for a, b, c in
              [[t.numpy() for t in row] for row in lines]]
fixed = tf.data.FixedLengthRecordDataset(f"{d}/fixed.bin", 3, header_bytes=2, footer_bytes=2)
out["fixed"] = [list(r.numpy()) for r in fixed]
with tf.io.TFRecordWriter(f"{d}/theirs.tfrecord", "GZIP") as w:
    for i in range(3):
        w.write(tf.train.Example(features=tf.train.Features(feature={
            "v": tf.train.Feature(float_list=tf.train.FloatList(value=[i / 3, -i])),
            "s": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"t" * i]))})
        ).SerializeToString())
print("JSON" + json.dumps(out))
"""


@pytest.mark.slow
def test_tensorflow_reads_ours_and_we_read_tensorflows(tmp_path: Path) -> None:
    py = tf_python()
    if py is None:
        pytest.skip("no TensorFlow side environment (.tfenv) here")
    records = [make_example(i) for i in range(6)]
    for comp in ("", "ZLIB", "GZIP"):
        with tf.io.TFRecordWriter(str(tmp_path / f"ours{comp}.tfrecord"), comp) as w:
            for r in records:
                w.write(r)
    for i in range(3):
        with tf.io.TFRecordWriter(str(tmp_path / f"p{i}.tfrecord")) as w:
            for r in range((3, 1, 2)[i]):
                w.write(f"{i}-{r}".encode())
    import gzip
    with gzip.open(tmp_path / "lines.csv.gz", "wb") as f:
        f.write(b"a,b,c\n1,2.5,x\n3,NA,\"q,r\"\n,4,\n")
    (tmp_path / "fixed.bin").write_bytes(bytes(range(2 + 3 * 4 + 2)))
    tensor = np.array([[1.5, -2.0], [0.25, 8.0]], np.float32)
    g = tf.Graph()
    with g.as_default():
        ser = tf.io.serialize_tensor(tf.constant(tensor))
        x = tf.placeholder(tf.float32, [])
        summ = tf.summary.scalar("loss", x)
        order = tf.data.TFRecordDataset([str(tmp_path / f"p{i}.tfrecord") for i in range(3)],
                                        num_parallel_reads=2).batch(10)
        order_next = order.make_one_shot_iterator().get_next()
        csv = tf.data.TextLineDataset(str(tmp_path / "lines.csv.gz"), "GZIP").skip(1).map(
            lambda line: tuple(tf.decode_csv(line, [[0], [-1.0], ["?"]], na_value="NA")))
        csv_next = csv.batch(10).make_one_shot_iterator().get_next()
        fixed = tf.data.FixedLengthRecordDataset(str(tmp_path / "fixed.bin"), 3,
                                                 header_bytes=2, footer_bytes=2).batch(10)
        fixed_next = fixed.make_one_shot_iterator().get_next()
        with tf.Session(graph=g) as s:
            (tmp_path / "ours_tensor.pb").write_bytes(s.run(ser))
            our_csv = [[int(a), float(b), c.decode()] for a, b, c in zip(
                *s.run(csv_next), strict=True)]
            our_fixed = [list(r) for r in s.run(fixed_next)]
            w = tf.summary.FileWriter(str(tmp_path / "ev"))
            for step in range(3):
                w.add_summary(s.run(summ, {x: 0.5 * step}), step)
            w.close()
            our_order = [r.decode() for r in s.run(order_next)]
    next((tmp_path / "ev").glob("events.out.tfevents.*")).rename(tmp_path / "ours.events")

    proc = subprocess.run([py, "-c", TF_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("JSON"))[4:])

    want_frames = np.zeros((6, 2, 2), np.float32)
    for i in range(6):
        f = np.float32(expected(i)["frames"]).reshape(-1, 2)
        want_frames[i, :len(f)] = f
    for comp in ("NONE", "ZLIB", "GZIP"):
        r = got[comp]
        assert np.array_equal(np.float32(r["image"]), np.float32(
            [expected(i)["image"] for i in range(6)]).reshape(6, 2, 2))
        assert r["label"] == [i % 3 for i in range(6)]
        assert r["name"] == [f"ex{i}" for i in range(6)]
        assert [w[0] for w in r["weight"]] == [1.0, -1.0, 3.0, -1.0, 5.0, -1.0]
        assert np.array_equal(np.float32(r["frames"]), want_frames)
        assert r["tags"] == [j for i in range(6) for j in range(i)]
    assert got["tensor"] == tensor.tolist()
    assert got["events"] == [[k, "loss", 0.5 * k] for k in range(3)]
    assert our_csv == got["csv"] == [[1, 2.5, "x"], [3, -1.0, "q,r"], [0, 4.0, "?"]]
    assert our_fixed == got["fixed"] == [[2, 3, 4], [5, 6, 7], [8, 9, 10], [11, 12, 13]]
    assert our_order == got["parallel"] == ["0-0", "1-0", "0-1", "0-2", "2-0", "2-1"]

    theirs = list(tf.python_io.tf_record_iterator(str(tmp_path / "theirs.tfrecord"), "GZIP"))
    g = tf.Graph()
    with g.as_default():
        parsed = tf.parse_example(tf.constant(theirs), {
            "v": tf.FixedLenFeature([2], tf.float32), "s": tf.FixedLenFeature([], tf.string),
            "missing": tf.FixedLenFeature([], tf.int64, default_value=7)})
        with tf.Session(graph=g) as s:
            p = s.run(parsed)
    assert np.array_equal(p["v"], np.float32([[i / 3, -i] for i in range(3)]))
    assert p["s"].tolist() == [b"", b"t", b"tt"] and p["missing"].tolist() == [7, 7, 7]
    assert FEATURES  # the same feature spec the fixture test parses with
