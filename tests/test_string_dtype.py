"""The string dtype as TF has it: tensors of bytes (NumPy object arrays of `bytes` in memory, a
scalar fetch gives `bytes`), through constants, feeds, fetches, basic array ops, equality,
Send/Recv between devices, the wire codec (a msgpack list of bytes, never objects), and a real
two-task cluster."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

import actorflow as af
from actorflow.cluster import LocalCluster
from scheduler.graphdef import GraphDef, NodeDef
from transport import codec, shm


def _rand_bytes(rng: np.random.Generator, n: int) -> list[bytes]:
    return [rng.bytes(int(rng.integers(0, 12))) for _ in range(n)]


def test_constants_feeds_fetches_and_basic_ops() -> None:
    rng = np.random.default_rng()
    words = _rand_bytes(rng, 4)
    g = af.Graph()
    with g.as_default():
        c = af.constant(words)
        s = af.constant("héllo")
        p = af.placeholder(af.string, [None], name="p")
        assert c.dtype is af.string and p.dtype is af.string and s.shape.as_list() == []
        eq = af.equal(c, p)
        ops = {"id": af.identity(p), "stack": af.stack([s, s]), "concat": af.concat([c, c], 0),
               "gather": af.gather(c, [3, 0]), "reshape": af.reshape(c, [2, 2]),
               "ne": af.not_equal(s, "héllo"), "fill": af.fill([3], "x")}
    fed = [words[0], "zz", words[2], b"\x00"]
    with af.Session(graph=g) as sess:
        got_c, got_s = sess.run([c, s])
        assert type(got_s) is bytes and got_s == "héllo".encode()
        assert got_c.dtype == object and got_c.tolist() == words
        assert all(type(v) is bytes for v in got_c.flat)
        r = sess.run({"eq": eq, **ops}, {p: fed})
    fed_b = [v.encode() if isinstance(v, str) else v for v in fed]
    assert r["eq"].tolist() == [a == b for a, b in zip(words, fed_b, strict=True)]
    assert r["id"].tolist() == fed_b and r["id"].dtype == object
    assert r["stack"].tolist() == ["héllo".encode()] * 2
    assert r["concat"].tolist() == words * 2
    assert r["gather"].tolist() == [words[3], words[0]]
    assert r["reshape"].tolist() == [words[:2], words[2:]]
    assert r["ne"] == np.False_ and r["fill"].tolist() == [b"x"] * 3


def test_bad_string_feed_and_constant_name_the_fix() -> None:
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.string, [2], name="p")
        with pytest.raises(af.InvalidArgumentError, match="bytes or str, got int"):
            af.constant([b"a", 3], dtype=af.string)
    with af.Session(graph=g) as sess:
        with pytest.raises(af.InvalidArgumentError, match="string tensor 'p:0'.*got float"):
            sess.run(p, {p: [b"a", 1.5]})
        with pytest.raises(af.InvalidArgumentError, match="shape"):
            sess.run(p, {p: [b"a"]})


def test_string_tensors_cross_devices_in_one_process() -> None:
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.string, [None])
        with af.device("/cpu:0"):
            a = af.identity(p, name="a")
        with af.device("/cpu:1"):
            b = af.concat([a, af.constant([b"tail"])], 0, name="b")
    with af.Session(graph=g, config=af.ConfigProto(device_count={"CPU": 2})) as sess:
        assert sess.run(b, {p: ["x", b"\xff" * 300]}).tolist() == [b"x", b"\xff" * 300, b"tail"]


def test_codec_carries_strings_as_a_msgpack_list_of_bytes() -> None:
    rng = np.random.default_rng()
    arr = np.empty((2, 3), dtype=object)
    arr.reshape(-1)[:] = _rand_bytes(rng, 6)
    frames = codec.encode({"k": 1}, {"s": arr, "e": np.empty((0, 4), dtype=object),
                                    "f": np.ones(2, np.float32)})
    # the frame itself is plain msgpack data (bin values), not objects or pickles
    assert msgpack.unpackb(bytes(frames[1])) == arr.reshape(-1).tolist()
    _, t = codec.decode(frames)
    assert t["s"].dtype == object and t["s"].tolist() == arr.tolist()
    assert t["e"].shape == (0, 4) and t["f"].tolist() == [1.0, 1.0]
    with pytest.raises(af.InvalidArgumentError, match="holds only bytes"):
        codec.encode(None, [np.array([b"a", 1], dtype=object)])
    head = msgpack.unpackb(bytes(frames[0]))
    for bad in (msgpack.packb([b"a", "not-bin", b"c", b"d", b"e", b"f"]),
                msgpack.packb([b"a"]), msgpack.packb({"a": 1}), b"\xc1"):
        with pytest.raises(af.InvalidArgumentError, match="tensor #0"):
            codec.decode([msgpack.packb(head), bad, frames[2], frames[3]])


def test_shared_memory_never_takes_object_arrays() -> None:
    pool = shm.SegmentPool(1 << 20)
    try:
        assert pool.put(np.array([b"x" * 100_000], dtype=object)) is None
    finally:
        pool.close()


def test_string_constant_round_trips_through_the_graph_ir() -> None:
    value = np.array([[b"a", b""], [b"\x00\x01", b"zz"]], dtype=object)
    gd = GraphDef([NodeDef("c", "Const", attrs={"value": value, "dtype": af.string},
                           out_dtypes=["string"], out_shapes=[(2, 2)])])
    back = GraphDef.from_bytes(gd.to_bytes()).nodes[0].attrs["value"]
    assert back.dtype == object and back.tolist() == value.tolist()


@pytest.mark.multiprocess
def test_string_tensors_between_tasks_of_a_real_cluster() -> None:
    with LocalCluster(ps=1, workers=1) as cluster:
        g = af.Graph()
        with g.as_default():
            p = af.placeholder(af.string, [None], name="p")
            with af.device("/job:ps/task:0"):
                on_ps = af.concat([af.identity(p), af.constant(["ps"])], 0)
            with af.device("/job:worker/task:0"):
                out = af.equal(on_ps, af.constant([b"a", b"ps", b"ps"]))
        with af.Session(cluster.target("worker", 0), graph=g) as sess:
            got, flags = sess.run([on_ps, out], {p: ["a", "b"]})
    assert got.tolist() == [b"a", b"b", b"ps"] and flags.tolist() == [True, False, True]
