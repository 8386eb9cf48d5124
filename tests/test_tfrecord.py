"""TFRecord files (python_io / io writers and iterators, TFRecordDataset, TFRecordReader),
Example protos and summary_iterator: ours <-> ours, TensorFlow's committed fixture
(tests/data/tf_records, written by tests/data/make_tf_records.py) read exactly, corrupt files,
and the two TF1 programs that convert the digits to TFRecords and train from them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import actorflow as tf
from devices.tfrecord_io import encode_record

DATA = Path(__file__).parent / "data" / "tf_records"
COMPRESSED = {"examples.tfrecord": "", "examples_gzip.tfrecord": "GZIP",
              "examples_zlib.tfrecord": "ZLIB"}


def expected(i: int) -> dict:
    """Record i of the fixture, as tests/data/make_tf_records.py wrote it."""
    out = {"image": [0.5 * i + 0.25 * j for j in range(4)], "label": [i % 3],
           "name": [f"ex{i}".encode()], "tags": list(range(i)),
           "raw": [np.arange(i, i + 4, dtype="<u2").tobytes()],
           "frames": [0.1 * k for k in range(2 * (i % 3))]}
    if i % 2 == 0:
        out["weight"] = [1.0 + i]
    return out


def values(example: tf.train.Example) -> dict:
    out = {}
    for key, f in example.features.feature.items():
        kind = f.WhichOneof("kind")
        out[key] = list(getattr(f, kind).value) if kind else []
    return out


def make_example(i: int) -> bytes:
    feat = {}
    for key, v in expected(i).items():
        if key in ("image", "frames", "weight"):
            feat[key] = tf.train.Feature(float_list=tf.train.FloatList(value=v))
        elif key in ("name", "raw"):
            feat[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
        else:
            feat[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=v))
    return tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString()


FEATURES = {"image": tf.FixedLenFeature([2, 2], tf.float32),
            "label": tf.FixedLenFeature([], tf.int64),
            "name": tf.FixedLenFeature([], tf.string),
            "raw": tf.FixedLenFeature([], tf.string),
            "weight": tf.FixedLenFeature([1], tf.float32, default_value=[-1.0]),
            "frames": tf.FixedLenSequenceFeature([2], tf.float32, allow_missing=True)}


def test_tensorflow_fixture_restores_exactly() -> None:
    for name, comp in COMPRESSED.items():
        records = list(tf.python_io.tf_record_iterator(
            str(DATA / name), tf.python_io.TFRecordOptions(comp)))
        assert len(records) == 6
        for i, r in enumerate(records):
            got = values(tf.train.Example.FromString(r))
            want = expected(i)
            assert sorted(got) == sorted(want)
            for k in want:  # floats went through float32
                assert got[k] == (list(np.float32(want[k])) if isinstance(
                    want[k][0] if want[k] else 0, float) else want[k]), (name, i, k)
    # the same bytes re-framed by our writer: the uncompressed file is identical
    ours = b"".join(encode_record(r) for r in tf.io.tf_record_iterator(
        str(DATA / "examples.tfrecord")))
    assert ours == (DATA / "examples.tfrecord").read_bytes()


def test_parse_example_on_tensorflow_records() -> None:
    records = list(tf.io.tf_record_iterator(str(DATA / "examples_gzip.tfrecord"), "GZIP"))
    g = tf.Graph()
    with g.as_default():
        batch = tf.parse_example(tf.constant(records), {
            **FEATURES, "tags": tf.VarLenFeature(tf.int64)})
        one = tf.io.parse_single_example(tf.constant(records[4]), {
            **FEATURES, "tags": tf.io.VarLenFeature(tf.int64)})
        raw = tf.decode_raw(batch["raw"], tf.uint16)
        assert batch["image"].shape.as_list() == [6, 2, 2]
        assert batch["frames"].shape.as_list() == [6, None, 2]
        with tf.Session(graph=g) as s:
            b, o, r = s.run([batch, one, raw])
    f32 = np.float32
    assert np.array_equal(b["image"], np.array([expected(i)["image"] for i in range(6)],
                                               f32).reshape(6, 2, 2))
    assert b["label"].tolist() == [0, 1, 2, 0, 1, 2] and b["label"].dtype == np.int64
    assert b["name"].tolist() == [f"ex{i}".encode() for i in range(6)]
    assert b["weight"][:, 0].tolist() == [1.0, -1.0, 3.0, -1.0, 5.0, -1.0]
    assert b["frames"].shape == (6, 2, 2)  # padded to the longest: 4 values = 2 steps
    assert np.array_equal(b["frames"][2], np.array([[0, .1], [.2, .3]], f32))
    assert np.array_equal(b["frames"][3], np.zeros((2, 2), f32))
    assert r.tolist() == [list(range(i, i + 4)) for i in range(6)] and r.dtype == np.uint16
    tags = b["tags"]
    assert tags.dense_shape.tolist() == [6, 5]
    assert tags.indices.tolist() == [[i, j] for i in range(6) for j in range(i)]
    assert tags.values.tolist() == [j for i in range(6) for j in range(i)]
    assert o["label"] == 1 and o["name"] == b"ex4" and o["image"].shape == (2, 2)
    assert o["tags"].indices.tolist() == [[0], [1], [2], [3]]
    assert o["tags"].dense_shape.tolist() == [4] and o["frames"].shape == (1, 2)


def test_sequence_example_and_tensor_fixtures() -> None:
    seqs = [tf.train.SequenceExample.FromString(r)
            for r in tf.python_io.tf_record_iterator(str(DATA / "sequence.tfrecord"))]
    assert [s.context.feature["id"].int64_list.value[0] for s in seqs] == [0, 1]
    assert [[f.int64_list.value[0] for f in s.feature_lists.feature_list["tok"].feature]
            for s in seqs] == [[0, 10], [0, 10, 20]]
    recs = list(tf.python_io.tf_record_iterator(str(DATA / "sequence.tfrecord")))
    g = tf.Graph()
    with g.as_default():
        ctx, seq = tf.parse_single_sequence_example(
            recs[1], context_features={"id": tf.FixedLenFeature([], tf.int64),
                                       "lang": tf.FixedLenFeature([], tf.string, b"en")},
            sequence_features={"tok": tf.FixedLenSequenceFeature([], tf.int64),
                               "tok_sparse": tf.VarLenFeature(tf.int64),
                               "none": tf.FixedLenSequenceFeature([2], tf.float32,
                                                                  allow_missing=True)})
        _, var = tf.io.parse_single_sequence_example(recs[0], sequence_features={
            "tok": tf.VarLenFeature(tf.int64)})
        assert seq["tok"].shape.as_list() == [None] and seq["none"].shape.as_list() == [None, 2]
        with tf.Session(graph=g) as s:
            c, q, v = s.run([ctx, seq, var])
    assert c["id"] == 1 and c["lang"] == b"en"
    assert q["tok"].tolist() == [0, 10, 20] and q["none"].shape == (0, 2)
    assert q["tok_sparse"].dense_shape.tolist() == [0, 0]
    assert v["tok"].indices.tolist() == [[0, 0], [1, 0]] and v["tok"].values.tolist() == [0, 10]
    assert v["tok"].dense_shape.tolist() == [2, 1]
    want = np.array([[1.5, -2.0, 0.0], [3.25, 4.0, 1e-3]], np.float32)
    g = tf.Graph()
    with g.as_default():
        mine = tf.io.serialize_tensor(tf.constant(want))
        strings = tf.serialize_tensor(tf.constant([b"ab", b""]))
        theirs = tf.io.parse_tensor((DATA / "tensor_float.pb").read_bytes(), tf.float32)
        back = tf.parse_tensor(strings, tf.string)
        with tf.Session(graph=g) as s:
            m, st, t, b = s.run([mine, strings, theirs, back])
    assert m == (DATA / "tensor_float.pb").read_bytes()  # byte for byte TF's TensorProto
    assert st == (DATA / "tensor_string.pb").read_bytes()
    assert np.array_equal(t, want) and t.dtype == np.float32
    assert b.tolist() == [b"ab", b""]


def test_summary_iterator_reads_tensorflow_and_our_event_files(tmp_path: Path) -> None:
    events = list(tf.train.summary_iterator(str(DATA / "events.out.tfevents.fixture")))
    assert events[0].file_version == "brain.Event:2"
    scalars = [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value]
    assert scalars == [(k, "loss", pytest.approx(1 / (k + 1))) for k in range(3)]
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [])
        summ = tf.summary.scalar("acc", x)
        with tf.Session(graph=g) as s:
            w = tf.summary.FileWriter(str(tmp_path))
            for step in range(4):
                w.add_summary(s.run(summ, {x: step / 4}), step)
            w.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    ours = list(tf.compat.v1.train.summary_iterator(str(path)))
    assert ours[0].file_version.startswith("brain.Event:")
    got = [(e.step, v.tag, v.simple_value) for e in ours for v in e.summary.value]
    assert got == [(k, "acc", k / 4) for k in range(4)]


def test_writer_iterator_round_trip_every_compression(tmp_path: Path) -> None:
    recs = [b"", b"a", bytes(range(256)) * 40, make_example(3)]
    for comp in ("", "ZLIB", "GZIP", tf.python_io.TFRecordCompressionType.GZIP, None):
        p = str(tmp_path / f"r{comp}.tfrecord")
        opts = tf.io.TFRecordOptions(comp, compression_level=1) if comp != "ZLIB" else comp
        with tf.io.TFRecordWriter(p, opts) as w:
            for r in recs:
                w.write(r)
        assert list(tf.python_io.tf_record_iterator(p, opts)) == recs
    assert tf.python_io.TFRecordOptions.get_compression_type_string(
        tf.python_io.TFRecordOptions(tf.python_io.TFRecordCompressionType.ZLIB)) == "ZLIB"
    # flush makes what was written readable while the writer stays open
    p = str(tmp_path / "open.tfrecord")
    w = tf.python_io.TFRecordWriter(p)
    w.write(b"x")
    w.flush()
    assert list(tf.python_io.tf_record_iterator(p)) == [b"x"]
    w.write("y")
    w.close()
    assert list(tf.python_io.tf_record_iterator(p)) == [b"x", b"y"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="compression type 'LZ4'"):
        tf.python_io.TFRecordWriter(p, "LZ4")


def _corrupt(tmp_path: Path) -> tuple[str, str]:
    good = b"".join(encode_record(r) for r in (b"first", b"second"))
    bad = bytearray(good)
    bad[21 + 12 + 2] ^= 0xFF  # a byte of "second"'s data (record 2 starts at 21)
    p1, p2 = tmp_path / "bad.tfrecord", tmp_path / "short.tfrecord"
    p1.write_bytes(bytes(bad))
    p2.write_bytes(good[:-3])
    return str(p1), str(p2)


def test_corrupt_records_raise_data_loss_naming_file_and_offset(tmp_path: Path) -> None:
    bad, short = _corrupt(tmp_path)
    it = tf.python_io.tf_record_iterator(bad)
    assert next(it) == b"first"
    with pytest.raises(tf.errors.DataLossError, match=r"corrupted record at offset 21 of "
                       r"TFRecord file '.*bad.tfrecord'.*data's checksum"):
        next(it)
    with pytest.raises(tf.errors.DataLossError, match=r"truncated record at offset 21 .*"
                       r"short.tfrecord'"):
        list(tf.python_io.tf_record_iterator(short))
    with pytest.raises(tf.errors.DataLossError, match="length's checksum.*compression"):
        list(tf.python_io.tf_record_iterator(str(DATA / "examples_gzip.tfrecord")))
    with pytest.raises(tf.errors.NotFoundError, match="file .*none.tfrecord. does not exist"):
        list(tf.python_io.tf_record_iterator(str(tmp_path / "none.tfrecord")))
    g = tf.Graph()
    with g.as_default():
        nxt = tf.data.TFRecordDataset([bad]).make_one_shot_iterator().get_next()
        with tf.Session(graph=g) as s:
            assert s.run(nxt) == b"first"
            with pytest.raises(tf.errors.DataLossError, match="offset 21"):
                s.run(nxt)


def test_tfrecord_dataset_files_parallel_reads_and_fed_names(tmp_path: Path) -> None:
    names = []
    for f in range(3):
        p = str(tmp_path / f"f{f}.tfrecord.gz")
        with tf.python_io.TFRecordWriter(p, "GZIP") as w:
            for r in range((3, 1, 2)[f]):
                w.write(f"{f}-{r}".encode())
        names.append(p)
    g = tf.Graph()
    with g.as_default():
        seq = tf.data.TFRecordDataset(names, compression_type="GZIP")
        par = tf.data.TFRecordDataset(tf.constant(names), "GZIP", num_parallel_reads=2)
        fed = tf.placeholder(tf.string, [None])
        it = tf.data.TFRecordDataset(fed, "GZIP").batch(10).make_initializable_iterator()
        listed = tf.data.Dataset.list_files(str(tmp_path / "f*.tfrecord.gz"), shuffle=False)
        inter = listed.interleave(lambda f: tf.data.TFRecordDataset(f, "GZIP"), cycle_length=3)
        c = inter.batch(10).make_one_shot_iterator().get_next()
        with pytest.raises(tf.errors.InvalidArgumentError, match="no files matched"):
            tf.data.Dataset.list_files(str(tmp_path / "*.none"))
        assert seq.output_types == tf.string and seq.output_shapes == ()
        a = seq.make_one_shot_iterator().get_next()
        b = par.make_one_shot_iterator().get_next()

        def drain(t: object) -> list:
            out = []
            try:
                while True:
                    out.append(s.run(t))
            except tf.errors.OutOfRangeError:
                return out
        with tf.Session(graph=g) as s:
            assert drain(a) == [b"0-0", b"0-1", b"0-2", b"1-0", b"2-0", b"2-1"]
            # two files at a time, one record each in turn (TensorFlow's order: the same in
            # tests/test_tfrecord_tf.py)
            assert drain(b) == [b"0-0", b"1-0", b"0-1", b"0-2", b"2-0", b"2-1"]
            assert s.run(c).tolist() == [b"0-0", b"1-0", b"2-0", b"0-1", b"2-1", b"0-2"]
            s.run(it.initializer, {fed: names[1:]})
            assert s.run(it.get_next()).tolist() == [b"1-0", b"2-0", b"2-1"]


def test_tfrecord_reader_reads_a_queue_of_files(tmp_path: Path) -> None:
    names = []
    for f in range(2):
        p = str(tmp_path / f"q{f}.tfrecord")
        with tf.python_io.TFRecordWriter(p) as w:
            for r in range(3):
                w.write(make_example(f * 3 + r))
        names.append(p)
    g = tf.Graph()
    with g.as_default():
        q = tf.train.string_input_producer(names, num_epochs=1, shuffle=False)
        reader = tf.TFRecordReader()
        key, value = reader.read(q)
        label = tf.parse_single_example(value, {"label": tf.FixedLenFeature([], tf.int64)})
        count = reader.num_records_produced()
        with tf.Session(graph=g) as s:
            s.run(tf.local_variables_initializer())
            coord = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(s, coord)
            got = []
            with pytest.raises(tf.errors.OutOfRangeError):
                for _ in range(10):
                    got.append(s.run([key, label["label"]]))
            assert s.run(count) == 6
            coord.request_stop()
            coord.join(threads)
    offsets = np.cumsum([0] + [len(encode_record(make_example(i))) for i in range(2)])
    assert [k for k, _ in got[:3]] == [f"{names[0]}:{o}".encode() for o in offsets]
    assert [int(v) for _, v in got] == [0, 1, 2, 0, 1, 2]
    assert got[3][0] == f"{names[1]}:0".encode()
    g = tf.Graph()
    with g.as_default():  # read_up_to: at most 2 at a time, never across a file's end
        q = tf.train.string_input_producer(names, num_epochs=1, shuffle=False)
        keys, values = tf.TFRecordReader().read_up_to(q, 2)
        assert keys.shape.as_list() == [None]
        with tf.Session(graph=g) as s:
            s.run(tf.local_variables_initializer())
            coord = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(s, coord)
            sizes = []
            with pytest.raises(tf.errors.OutOfRangeError):
                for _ in range(10):
                    k, v = s.run([keys, values])
                    sizes.append(len(k))
                    assert len(v) == len(k) and all(x.startswith(b"\n") for x in v)
            coord.request_stop()
            coord.join(threads)
    assert sizes == [2, 1, 2, 1]


def test_parsing_errors_name_the_feature() -> None:
    g = tf.Graph()
    with g.as_default():
        ex = tf.constant(make_example(1))
        with pytest.raises(tf.errors.InvalidArgumentError, match="'label' has dtype int32"):
            tf.parse_single_example(ex, {"label": tf.FixedLenFeature([], tf.int32)})
        with pytest.raises(tf.errors.InvalidArgumentError, match="allow_missing must be True"):
            tf.parse_single_example(ex, {"f": tf.FixedLenSequenceFeature([], tf.float32)})
        with pytest.raises(tf.errors.InvalidArgumentError, match="a vector of serialized"):
            tf.parse_example(ex, {"label": tf.FixedLenFeature([], tf.int64)})
        missing = tf.parse_single_example(ex, {"weight": tf.FixedLenFeature([], tf.float32)})
        kind = tf.parse_single_example(ex, {"label": tf.FixedLenFeature([], tf.float32)})
        count = tf.parse_single_example(ex, {"image": tf.FixedLenFeature([3], tf.float32)})
        junk = tf.parse_single_example(tf.constant(b"\xff\xff"), {
            "label": tf.FixedLenFeature([], tf.int64)})
        raw = tf.decode_raw(tf.constant([b"abcd", b"ab"]), tf.int16)
        with tf.Session(graph=g) as s:
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="feature 'weight' .* is required"):
                s.run(missing)
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="'label'.*expects float, the Example holds int64"):
                s.run(kind)
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="'image': expected 3 values for shape \\[3\\], got 4"):
                s.run(count)
            with pytest.raises(tf.errors.InvalidArgumentError, match="not a serialized"):
                s.run(junk)
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="element 1 has 2 bytes != 4"):
                s.run(raw)


def test_decode_raw_endianness_and_shapes() -> None:
    v = np.array([[1.5, -2.0], [3.0, 1e-3]], np.float32)
    g = tf.Graph()
    with g.as_default():
        little = tf.decode_raw(tf.constant([[v[0].tobytes()], [v[1].tobytes()]]), tf.float32)
        big = tf.io.decode_raw(tf.constant(v.astype(">f4").tobytes()), tf.float32,
                               little_endian=False)
        assert little.shape.as_list() == [2, 1, None]
        with tf.Session(graph=g) as s:
            lo, bi = s.run([little, big])
    assert np.array_equal(lo, v.reshape(2, 1, 2)) and np.array_equal(bi, v.reshape(-1))


def test_example_protos_are_byte_compatible() -> None:
    ex = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5]))}))
    # TF's encoding: Features{feature: {key "x", value Feature{float_list{packed [1.5]}}}}
    assert ex.SerializeToString() == bytes.fromhex("0a0f0a0d0a0178120812060a040000c03f")
    assert tf.train.Example.DESCRIPTOR.full_name == "tensorflow.Example"
    fl = tf.train.FeatureList(feature=[tf.train.Feature(int64_list=tf.train.Int64List(
        value=[1, 2]))])
    seq = tf.train.SequenceExample(feature_lists=tf.train.FeatureLists(feature_list={"t": fl}))
    assert tf.train.SequenceExample.FromString(seq.SerializeToString()) == seq


def test_tf1_program_tfrecord_dataset(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from tests.test_tf1_programs import run_program
    r = run_program("tfrecord_dataset", [f"--directory={tmp_path}"], capsys)
    assert r["records"] == "1437" and r["steps"] == str(3 * 29)
    assert float(r["accuracy"]) > 0.85  # 0.93 seen
    assert sorted(os.listdir(tmp_path)) == ["test.tfrecords", "train.tfrecords"]


def test_tf1_program_tfrecord_queue_reader(capsys: pytest.CaptureFixture,
                                           tmp_path: Path) -> None:
    from tests.test_tf1_programs import run_program
    r = run_program("tfrecord_queue_reader", [f"--train_dir={tmp_path}"], capsys)
    assert r["done_epochs"] == "3" and r["examples"] == str(3 * 1437)
    assert float(r["accuracy"]) > 0.85  # 0.92-0.93 seen


def test_var_len_features_in_a_dataset_map(tmp_path: Path) -> None:
    p = str(tmp_path / "v.tfrecord")
    with tf.io.TFRecordWriter(p) as w:
        for i in range(4):
            w.write(make_example(i))

    def dense_tags(r: tf.Tensor) -> tf.Tensor:
        e = tf.parse_single_example(r, {"tags": tf.VarLenFeature(tf.int64)})
        return tf.sparse_tensor_to_dense(e["tags"], default_value=-1)

    g = tf.Graph()
    with g.as_default():
        ds = tf.data.TFRecordDataset(p).map(dense_tags).padded_batch(4, [None], -1)
        nxt = ds.make_one_shot_iterator().get_next()
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="returns a SparseTensor \\(component 'tags'\\).*to_dense"):
            tf.data.TFRecordDataset(p).map(lambda r: tf.parse_single_example(
                r, {"tags": tf.VarLenFeature(tf.int64)}))
        with tf.Session(graph=g) as s:
            assert s.run(nxt).tolist() == [[-1, -1, -1], [0, -1, -1], [0, 1, -1], [0, 1, 2]]
