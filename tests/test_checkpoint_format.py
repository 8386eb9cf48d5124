"""TensorFlow's V2 checkpoint format (devices/tensor_bundle.py, devices/sstable.py): the
TensorFlow-written fixture restores exactly, our writer reproduces TensorFlow's files byte for
byte, every dtype and shape round-trips, corruption raises DataLossError naming file and
tensor, and (where the TensorFlow side environment exists) TensorFlow reads what we write."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from devices import sstable
from devices.errors import DataLossError, NotFoundError
from devices.tensor_bundle import BundleReader, BundleWriter, data_path, index_path, slice_key

DATA = Path(__file__).parent / "data" / "tf_ckpt"
FIXTURE = str(DATA / "model.ckpt-2")
STRINGS = str(DATA / "strings")  # string tensors, written by TensorFlow
EXPECTED = {k.replace("__", "/"): v for k, v in np.load(DATA / "expected.npz").items()}
ROOT = Path(__file__).resolve().parent.parent


def tf_python() -> str | None:
    for p in (ROOT / ".tfenv/bin/python",):
        if p.exists():
            return str(p)
    return None


def test_tensorflow_fixture_restores_exactly() -> None:
    r = BundleReader(FIXTURE)
    assert sorted(r.names()) == sorted(EXPECTED)
    assert {"w", "w/Adam", "w/Adam_1", "beta1_power", "global_step", "emb/table"} <= set(
        r.names())
    for name, want in EXPECTED.items():
        got = r.read(name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert np.array_equal(got, want), name
    assert r.read("global_step") == 2 and r.read("global_step").dtype == np.int64
    assert r.read("counts")[2] == 2**40 and r.read("scope/dbl").dtype == np.float64
    assert r.read("empty").shape == (0, 3) and r.read("scalar").shape == ()
    # the partitioned variable is three stored slices; a sub-slice reads only what overlaps
    assert len(r.entries[b"emb/table"].slices) == 3
    np.testing.assert_array_equal(r.read("emb/table", [(2, 4), (1, 2)]),
                                  EXPECTED["emb/table"][2:6, 1:3])


def test_slice_keys_are_tensorflows() -> None:
    keys = sorted(k for k in BundleReader(FIXTURE).entries if k.startswith(b"\x00"))
    assert keys == sorted(slice_key("emb/table", e) for e in
                          ([(0, 3), (0, 4)], [(3, 2), (0, 4)], [(5, 2), (0, 4)]))
    assert slice_key("a", [(0, -1)]) == b"\x00a\x00\x01\x01\x01\x80\x7f"
    assert slice_key("x\x00", [(1000, 70000)])[:6] == b"\x00x\x00\xff\x00\x01"


def test_our_writer_reproduces_tensorflows_files_byte_for_byte(tmp_path: Path) -> None:
    r = BundleReader(FIXTURE)
    w = BundleWriter(str(tmp_path / "model.ckpt-2"))
    for name in sorted(r.names()):  # TF's SaveV2 order: by name, slices at their name
        entry = r.entries[name.encode()]
        if entry.slices:
            for sp in entry.slices:
                ext = [(e.start, e.length) for e in sp.extent]
                w.add_slice(name, r.shape(name), ext, r.read(name, ext))
        else:
            w.add(name, r.read(name))
    w.finish()
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"model.ckpt-2{suffix}").read_bytes() == \
            Path(FIXTURE + suffix).read_bytes(), suffix


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int16", "int32",
                                   "int64", "uint8", "uint16", "uint32", "uint64", "bool",
                                   "bfloat16"])
def test_every_dtype_and_shape_round_trips(tmp_path: Path, dtype: str) -> None:
    import ml_dtypes
    rng = np.random.default_rng()
    npd = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    shapes = [(), (0,), (3, 0, 2), (7,), (4, 5, 3)]
    arrays = {f"t{i}/v": (rng.standard_normal(s) * 100).astype(npd) for i, s in enumerate(shapes)}
    arrays["strided"] = (rng.standard_normal((6, 4)) * 9).astype(npd)[::2, ::-1]
    w = BundleWriter(str(tmp_path / "ck"))
    for n, a in arrays.items():
        w.add(n, a)
    w.finish()
    r = BundleReader(str(tmp_path / "ck"))
    for n, a in arrays.items():
        got = r.read(n)
        assert got.dtype == a.dtype and got.shape == a.shape
        assert got.tobytes() == np.ascontiguousarray(a).tobytes(), n


def test_many_keys_span_blocks_and_restarts(tmp_path: Path) -> None:
    table = sstable.TableWriter()
    keys = sorted(f"layer{i:05d}/w/{'x' * (i % 50)}".encode() for i in range(20000))
    for k in keys:
        table.add(k, k[::-1] * 3)
    data = table.finish()
    assert len(data) > 2 * sstable.BLOCK_SIZE  # several data blocks and index entries
    assert list(sstable.read_table(data, "t")) == [(k, k[::-1] * 3) for k in keys]


def _write_small(prefix: str) -> None:
    BundleWriter(prefix).add("a", np.arange(10, dtype=np.float32)).add(
        "b", np.arange(1000, dtype=np.int64)).finish()


def test_truncated_data_file_raises_data_loss_naming_file_and_tensor(tmp_path: Path) -> None:
    prefix = str(tmp_path / "ck")
    _write_small(prefix)
    path = data_path(prefix, 0, 1)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    r = BundleReader(prefix)
    np.testing.assert_array_equal(r.read("a"), np.arange(10, dtype=np.float32))
    with pytest.raises(DataLossError, match=r"truncated.*'b'|'b'.*truncated") as e:
        r.read("b")
    assert path in str(e.value)


def test_large_tensors_written_with_flushes_and_read_pipelined(tmp_path: Path) -> None:
    """Past PIPELINE_BYTES the read runs on a helper thread (CRC on the caller's), and past
    FLUSH_EVERY the writer starts writeback early: values, truncation and a flipped bit in the
    last chunk are still caught."""
    import devices.tensor_bundle as tb

    big = np.random.default_rng().standard_normal(3 << 20).astype(np.float32)  # 12 MiB
    assert big.nbytes > tb.PIPELINE_BYTES
    flush, tb.FLUSH_EVERY = tb.FLUSH_EVERY, 4 << 20
    try:
        prefix = BundleWriter(str(tmp_path / "big")).add("w", big).add("s", big[:7]).finish()
    finally:
        tb.FLUSH_EVERY = flush
    np.testing.assert_array_equal(BundleReader(prefix).read("w"), big)
    path = data_path(prefix, 0, 1)
    raw = bytearray(Path(path).read_bytes())
    raw[big.nbytes - 5] ^= 0x01
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(DataLossError, match="checksum mismatch for tensor 'w'"):
        BundleReader(prefix).read("w")
    with open(path, "r+b") as f:
        f.truncate(big.nbytes - (1 << 20) - 10)
    with pytest.raises(DataLossError, match="truncated: tensor 'w'"):
        BundleReader(prefix).read("w")


def test_bit_flip_in_data_raises_data_loss(tmp_path: Path) -> None:
    prefix = str(tmp_path / "ck")
    _write_small(prefix)
    path = data_path(prefix, 0, 1)
    raw = bytearray(Path(path).read_bytes())
    raw[40 + 8 * 500 + 3] ^= 0x10  # one bit of b[500]
    Path(path).write_bytes(bytes(raw))
    r = BundleReader(prefix)
    r.read("a")
    with pytest.raises(DataLossError, match="checksum mismatch for tensor 'b'") as e:
        r.read("b")
    assert path in str(e.value)


def test_corrupt_or_truncated_index_raises_data_loss(tmp_path: Path) -> None:
    prefix = str(tmp_path / "ck")
    _write_small(prefix)
    good = Path(index_path(prefix)).read_bytes()
    for i in range(0, len(good) - 48):  # every byte of the blocks is covered by a CRC
        bad = bytearray(good)
        bad[i] ^= 0x01
        Path(index_path(prefix)).write_bytes(bytes(bad))
        with pytest.raises(DataLossError, match=index_path(prefix)):
            BundleReader(prefix)
    Path(index_path(prefix)).write_bytes(good[:-10])
    with pytest.raises(DataLossError, match="truncated|not a table"):
        BundleReader(prefix)
    with pytest.raises(NotFoundError, match="no checkpoint"):
        BundleReader(str(tmp_path / "nothing"))


TF_READS_OURS = textwrap.dedent(r"""
    import sys, numpy as np
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    prefix, expected = sys.argv[1], dict(np.load(sys.argv[2]))
    expected = {k.replace("__", "/"): v for k, v in expected.items()}
    r = tf.train.load_checkpoint(prefix)
    assert sorted(r.get_variable_to_shape_map()) == sorted(expected), r.get_variable_to_shape_map()
    for n, v in expected.items():
        got = r.get_tensor(n)
        assert got.dtype == v.dtype and got.shape == v.shape and np.array_equal(got, v), n
    latest = tf.train.latest_checkpoint(sys.argv[3])
    assert latest == prefix, latest
    vs = [tf.Variable(np.zeros_like(v), name=n) for n, v in expected.items() if n != "emb/table"]
    with tf.variable_scope("emb"):
        part = tf.get_variable("table", shape=[7, 4], partitioner=tf.fixed_size_partitioner(2))
    saver = tf.train.Saver()
    with tf.Session() as s:
        saver.restore(s, prefix)
        for v in vs:
            assert np.array_equal(s.run(v), expected[v.op.name]), v.op.name
        assert np.array_equal(s.run(part.as_tensor()), expected["emb/table"])
    tf.reset_default_graph()  # string tensors, from actorflow's rewrite of TF's fixture
    vals = {"s": np.array([b"hello", b"", b"\x00\xffx" * 3], dtype=object),
            "t": np.array(b"scalar", dtype=object), "f": np.arange(3, dtype=np.float32)}
    vs = {k: tf.Variable(np.full_like(v, b"?" if v.dtype == object else 0), name=k,
                         dtype=tf.string if v.dtype == object else None)
          for k, v in vals.items()}
    with tf.Session() as s:  # not initialized: only the restore gives them values
        tf.train.Saver().restore(s, sys.argv[4])
        for k, v in vals.items():
            got = np.asarray(s.run(vs[k]), dtype=v.dtype)
            assert got.shape == v.shape and (got == v).all(), (k, got)
    print("TF-READ-OK")
""")


@pytest.mark.slow
def test_tensorflow_reads_what_actorflow_writes(tmp_path: Path) -> None:
    py = tf_python()
    if py is None:
        pytest.skip("no TensorFlow side environment (.tfenv) here")
    import actorflow as af

    g = af.Graph()
    with g.as_default():
        for name, value in EXPECTED.items():
            if name != "emb/table":
                af.Variable(value, name=name)
        with af.variable_scope("emb"):  # 3 parts here; TensorFlow restores it into 2
            table = af.get_variable("table", [7, 4], initializer=af.zeros_initializer(),
                                    partitioner=af.fixed_size_partitioner(3))
        saver = af.train.Saver()
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            for part, rows in zip(table, np.array_split(EXPECTED["emb/table"], 3), strict=True):
                part.load(rows, s)
            prefix = saver.save(s, str(tmp_path / "model.ckpt"), global_step=2)
    assert len(BundleReader(prefix).entries[b"emb/table"].slices) == 3  # one entry, 3 slices
    np.savez(tmp_path / "expected.npz", **{k.replace("/", "__"): v for k, v in EXPECTED.items()})
    shutil.copy(DATA / "expected.npz", tmp_path / "fixture.npz")
    strings = _rewrite_tf_strings(str(tmp_path / "strings" / "af"))
    res = subprocess.run([py, "-c", TF_READS_OURS, prefix, str(tmp_path / "expected.npz"),
                          str(tmp_path), strings], capture_output=True, text=True, timeout=240)
    assert "TF-READ-OK" in res.stdout, res.stderr[-3000:]


def test_string_tensors_round_trip_and_detect_corruption(tmp_path: Path) -> None:
    rng = np.random.default_rng()
    items = [bytes(rng.integers(0, 256, int(n), dtype=np.uint8)) for n in
             rng.integers(0, 300, 12)] + [b"", b"\x00\xff"]
    arr = np.array(items, dtype=object).reshape(2, 7)
    prefix = str(tmp_path / "s")
    BundleWriter(prefix).add("s", arr).add("t", np.array(b"x", dtype=object)).finish()
    r = BundleReader(prefix)
    got = r.read("s")
    assert got.shape == (2, 7) and got.dtype == object and list(got.ravel()) == items
    assert r.read("t")[()] == b"x" and r.dtype("s") == np.dtype(object)
    entry = r.entries[b"s"]
    for where in (entry.offset + entry.size - 1, entry.offset):  # a string's byte, a length
        raw = bytearray(Path(data_path(prefix, 0, 1)).read_bytes())
        raw[where] ^= 0x01
        Path(data_path(prefix, 0, 1)).write_bytes(bytes(raw))
        with pytest.raises(DataLossError, match="string tensor 's'"):
            r.read("s")
        raw[where] ^= 0x01
        Path(data_path(prefix, 0, 1)).write_bytes(bytes(raw))
    assert list(r.read("s").ravel()) == items


def _rewrite_tf_strings(prefix: str) -> str:
    """actorflow's copy of TensorFlow's string checkpoint (tests/data/tf_ckpt/strings.*)."""
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    r = BundleReader(STRINGS)
    w = BundleWriter(prefix)
    for n in sorted(r.names()):
        w.add(n, r.read(n))
    return w.finish()


def test_tensorflow_string_checkpoint_reads_and_rewrites_byte_for_byte(tmp_path: Path) -> None:
    """TensorFlow's string layout both ways: its fixture (made by
    tests/data/make_tf_string_checkpoint.py) reads exactly, and our writer reproduces its
    files byte for byte; test_tensorflow_reads_what_actorflow_writes has TensorFlow restore
    the copy."""
    r = BundleReader(STRINGS)
    assert list(r.read("s")) == [b"hello", b"", b"\x00\xffx" * 3]
    assert r.read("t")[()] == b"scalar" and r.read("t").shape == ()
    np.testing.assert_array_equal(r.read("f"), np.arange(3, dtype=np.float32))
    ours = _rewrite_tf_strings(str(tmp_path / "af"))
    for suffix in (".index", ".data-00000-of-00001"):  # byte for byte TensorFlow's layout
        assert Path(ours + suffix).read_bytes() == Path(STRINGS + suffix).read_bytes()


def test_read_into_fills_the_callers_buffer_or_declines(tmp_path: Path) -> None:
    """`read_into` reads a tensor stored as one piece straight into an existing buffer (the
    restore of an initialized variable), checksum verified; a slice stored with exactly the
    requested extents too (TensorFlow's "-" extents included); anything it would have to
    assemble, or a buffer of another dtype or shape, is declined with nothing written."""
    r = BundleReader(FIXTURE)
    buf = np.zeros_like(EXPECTED["w"])
    assert r.read_into("w", buf) and np.array_equal(buf, EXPECTED["w"])
    emb = EXPECTED["emb/table"]  # TF stored rows 0-3, 3-5, 5-7 with a "-" second extent
    part = np.zeros((2, 4), emb.dtype)
    assert r.read_into("emb/table", part, [(3, 2), (0, 4)])
    assert np.array_equal(part, emb[3:5])
    other = np.full((4, 4), 7, emb.dtype)
    assert not r.read_into("emb/table", other, [(0, 4), (0, 4)])  # spans two stored slices
    assert not r.read_into("emb/table", np.zeros(emb.shape, emb.dtype))  # whole: assembled
    wrong = np.full(EXPECTED["w"].shape, 7, np.float64)
    assert not r.read_into("w", wrong) and np.all(wrong == 7) and np.all(other == 7)
    prefix = str(tmp_path / "ck")
    _write_small(prefix)
    raw = bytearray(Path(data_path(prefix, 0, 1)).read_bytes())
    raw[40 + 8 * 500 + 3] ^= 0x10  # one bit of b[500]
    Path(data_path(prefix, 0, 1)).write_bytes(bytes(raw))
    with pytest.raises(DataLossError, match="checksum mismatch for tensor 'b'"):
        BundleReader(prefix).read_into("b", np.zeros(1000, np.int64))


@pytest.mark.parametrize("n", [0, 1, 3 * (1 << 20) // 4 + 7, (9 << 20) // 4 + 3])
def test_verify_checks_without_keeping_and_pinned_reads_see_the_checked_file(
        tmp_path: Path, n: int) -> None:
    """`verify` checksums a piece through its two-chunk ring (sizes: empty, one element,
    under a chunk, over PIPELINE_BYTES), a flipped bit anywhere fails it, and inside
    `pinned` a verified read sees the file that was verified even when another file is
    renamed over it."""
    prefix = str(tmp_path / "ck")
    want = np.arange(n, dtype=np.float32)
    BundleWriter(prefix).add("w", want).finish()
    path = data_path(prefix, 0, 1)
    r = BundleReader(prefix)
    with r.pinned():
        r.verify("w")
        other = str(tmp_path / "other")
        Path(other).write_bytes(b"\0" * want.nbytes)
        os.replace(other, path)  # what a rewrite by rename does meanwhile
        out = np.full(n, -1, np.float32)
        assert r.read_into("w", out, verified=True)
        np.testing.assert_array_equal(out, want)
    if n == 0:
        return
    for at in {0, want.nbytes // 2, want.nbytes - 1}:
        BundleWriter(prefix).add("w", want).finish()
        raw = bytearray(Path(path).read_bytes())
        raw[at] ^= 0x04
        Path(path).write_bytes(bytes(raw))
        with pytest.raises(DataLossError, match="checksum mismatch for tensor 'w'"):
            BundleReader(prefix).verify("w")
