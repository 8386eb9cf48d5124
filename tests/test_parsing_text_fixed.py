"""Text lines and fixed-length records: TextLineReader / FixedLengthRecordReader on queues of
file names, TextLineDataset / FixedLengthRecordDataset, and decode_csv (TF1 names)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import actorflow as tf


def drain(s: tf.Session, fetch: object, limit: int = 50) -> list:
    out = []
    with pytest.raises(tf.errors.OutOfRangeError):
        for _ in range(limit):
            out.append(s.run(fetch))
    return out


def test_text_line_reader_and_decode_csv_on_a_queue(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x,y,name\n1,2.5,one\n3,,\"t,wo\"\r\n")
    b.write_bytes(b"x,y,name\n5,6.0,five")  # no newline at the end
    g = tf.Graph()
    with g.as_default():
        q = tf.train.string_input_producer([str(a), str(b)], num_epochs=1, shuffle=False)
        key, line = tf.TextLineReader(skip_header_lines=1).read(q)
        x, y, name = tf.decode_csv(line, record_defaults=[[0], [-1.0], ["?"]])
        assert (x.dtype, y.dtype, name.dtype) == (tf.int32, tf.float32, tf.string)
        with tf.Session(graph=g) as s:
            s.run(tf.local_variables_initializer())
            coord = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(s, coord)
            rows = drain(s, [key, x, y, name])
            coord.request_stop()
            coord.join(threads)
    assert [(r[0], int(r[1]), float(r[2]), r[3]) for r in rows] == [
        (f"{a}:2".encode(), 1, 2.5, b"one"), (f"{a}:3".encode(), 3, -1.0, b"t,wo"),
        (f"{b}:2".encode(), 5, 6.0, b"five")]


def test_text_line_dataset_gzip_and_decode_csv_options(tmp_path: Path) -> None:
    p = tmp_path / "iris.csv.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"sl|sw|label\n5.1|3.5|0\n6.2|NA|2\n")
    g = tf.Graph()
    with g.as_default():
        ds = tf.data.TextLineDataset(str(p), compression_type="GZIP").skip(1).map(
            lambda line: tuple(tf.decode_csv(line, [[0.0], [9.0], [0]], field_delim="|",
                                             na_value="NA")))
        feats = ds.batch(5).make_one_shot_iterator().get_next()
        cols = tf.decode_csv(tf.constant([["a,b,3"], ["c,d,4"]]),
                             [tf.constant([], tf.int64), ["-"]], select_cols=[2, 0])
        required = tf.decode_csv(tf.constant("1,,3"), [[0], tf.constant([], tf.int32), [0]])
        short = tf.decode_csv(tf.constant("1,2"), [[0], [0], [0]])
        bad = tf.decode_csv(tf.constant("1,x"), [[0], [0]])
        with tf.Session(graph=g) as s:
            sl, sw, label = s.run(feats)
            c3, c0 = s.run(cols)
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="Field 1 is required but missing in record 0"):
                s.run(required)
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="Expect 3 fields but have 2 in record 0"):
                s.run(short)
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="Field 1 in record 0 is not a valid int32: 'x'"):
                s.run(bad)
    assert sl.tolist() == pytest.approx([5.1, 6.2]) and sw.tolist() == pytest.approx([3.5, 9.0])
    assert label.tolist() == [0, 2] and label.dtype == np.int32
    assert c3.tolist() == [[3], [4]] and c3.dtype == np.int64
    assert c0.tolist() == [[b"a"], [b"c"]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="one character"):
        tf.decode_csv(tf.constant("a"), [[0]], field_delim="::")


def test_fixed_length_records_cifar_layout(tmp_path: Path) -> None:
    """CIFAR-10's binary layout: a label byte then 3x2x2 image bytes per record; a header
    and a footer around the records of one file."""
    rng = np.random.default_rng(3)
    recs = rng.integers(0, 256, (5, 13), dtype=np.uint8)
    plain = tmp_path / "data_batch_1.bin"
    framed = tmp_path / "framed.bin"
    plain.write_bytes(recs.tobytes() + b"\x01\x02")  # a short tail: dropped, as in TF
    framed.write_bytes(b"HEAD" + recs[:3].tobytes() + b"FOOT")
    g = tf.Graph()
    with g.as_default():
        q = tf.train.string_input_producer([str(plain)], num_epochs=1, shuffle=False)
        key, value = tf.FixedLengthRecordReader(record_bytes=13).read(q)
        record = tf.decode_raw(value, tf.uint8)
        label = tf.cast(tf.strided_slice(record, [0], [1]), tf.int32)
        image = tf.transpose(tf.reshape(tf.strided_slice(record, [1], [13]), [3, 2, 2]),
                             [1, 2, 0])
        ds = tf.data.FixedLengthRecordDataset([str(framed)], 13, header_bytes=4,
                                              footer_bytes=4).batch(10)
        framed_next = ds.make_one_shot_iterator().get_next()
        partial = tf.data.FixedLengthRecordDataset(str(plain), 13).make_one_shot_iterator()
        partial_next = partial.get_next()
        with tf.Session(graph=g) as s:
            s.run(tf.local_variables_initializer())
            coord = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(s, coord)
            rows = drain(s, [key, label, image])
            coord.request_stop()
            coord.join(threads)
            got = s.run(framed_next)
            with pytest.raises(tf.errors.InvalidArgumentError, match="body length 67 bytes, "
                               "which is not an exact multiple of the record length"):
                s.run(partial_next)  # the dataset refuses what the reader drops, as TF does
    assert [r[0] for r in rows] == [f"{plain}:{i}".encode() for i in range(5)]
    assert [int(r[1][0]) for r in rows] == recs[:, 0].tolist()
    assert np.array_equal(np.stack([r[2] for r in rows]),
                          recs[:, 1:].reshape(5, 3, 2, 2).transpose(0, 2, 3, 1))
    assert [np.frombuffer(x, np.uint8).tolist() for x in got] == recs[:3].tolist()


def test_fixed_length_hop_bytes(tmp_path: Path) -> None:
    p = tmp_path / "hop.bin"
    p.write_bytes(bytes(range(10)))
    g = tf.Graph()
    with g.as_default():
        q = tf.train.string_input_producer([str(p)], num_epochs=1, shuffle=False)
        _, value = tf.FixedLengthRecordReader(record_bytes=2, hop_bytes=3).read(q)
        with tf.Session(graph=g) as s:
            s.run(tf.local_variables_initializer())
            coord = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(s, coord)
            got = drain(s, value)
            coord.request_stop()
            coord.join(threads)
    assert got == [b"\x00\x01", b"\x03\x04", b"\x06\x07"]  # 9 starts a record too short
