"""Element-wise fusion (scheduler.elementwise_fusion, devices/kernels/fused.py), the intra-op
setting from ConfigProto down to the devices, and the scalar kernels' fast path: values equal
to the unfused / NumPy result, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from devices.intra_op import MIN_CHUNK_ELEMENTS, resolve_threads, shared_pool
from devices.kernels import fast_tanh
from scheduler.config import RuntimeConfig
from scheduler.elementwise_fusion import fuse_elementwise
from scheduler.graphdef import GraphDef, NodeDef
from scheduler.runtime import discover_devices

BIG = 2 * MIN_CHUNK_ELEMENTS + 3  # odd, split over the pool


def _node(name, op, inputs, shape=(8,), dtype="float32", device=""):
    return NodeDef(name, op, inputs, device, {}, [dtype], [shape])


def _chain_graph(extra=()):
    return GraphDef([
        _node("x", "Placeholder", [], (8,)),
        _node("c", "Const", [], ()),
        _node("t", "Tanh", ["x"]),
        _node("m", "Mul", ["t", "c"]),
        _node("a", "Add", ["m", "x"]),
        *extra,
    ])


def test_a_linear_chain_becomes_one_node_named_for_its_last():
    g = fuse_elementwise(_chain_graph())
    ops = {n.name: n.op for n in g.nodes}
    assert ops == {"x": "Placeholder", "c": "Const", "a": "_FusedElementwise"}
    fused = g.by_name()["a"]
    assert fused.inputs == ["x:0", "c:0"]
    assert fused.attrs["program"] == [["tanh", 0], ["multiply", -1, 1], ["add", -1, 0]]
    assert fused.attrs["fused"] == ["t", "m", "a"]


def test_a_second_reader_or_a_control_edge_ends_the_chain():
    g = fuse_elementwise(_chain_graph([_node("r", "Neg", ["m"])]))
    ops = {n.name: n.op for n in g.nodes}
    # m has two readers: t -> m fuses, a and r stay apart (each alone is too short)
    assert ops["m"] == "_FusedElementwise" and ops["a"] == "Add" and "t" not in ops
    g = fuse_elementwise(_chain_graph([_node("s", "NoOp", ["^m"], ())]))
    assert {n.name: n.op for n in g.nodes}["a"] == "Add"
    # a different shape (a broadcast operand of rank 1 into rank 2) does not fuse
    g = GraphDef([_node("x", "Placeholder", [], (4, 8)), _node("b", "Placeholder", [], (8,)),
                  _node("t", "Tanh", ["x"], (4, 8)), _node("a", "Add", ["t", "b"], (4, 8))])
    assert [n.op for n in fuse_elementwise(g).nodes] == ["Placeholder", "Placeholder", "Tanh",
                                                         "Add"]
    # integer chains stay as they are (only floating dtypes fuse)
    g = GraphDef([_node("x", "Placeholder", [], dtype="int32"),
                  _node("n", "Neg", ["x"], dtype="int32"), _node("m", "Abs", ["n"], dtype="int32")])
    assert [n.op for n in fuse_elementwise(g).nodes] == ["Placeholder", "Neg", "Abs"]


def _layers(h, c, layers):
    for _ in range(layers):
        h = af.tanh(h) * 1.5 + c
    return h


def _reference(x, c, layers):
    # the unfused kernels' float32 tanh (devices.kernels.fast_tanh): fused must match it
    h = x
    for _ in range(layers):
        h = np.add(np.multiply(fast_tanh.tanh(h), np.float32(1.5)), c)
    return h


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(BIG,), (7, 5), (), (0, 3), (BIG // 4, 4)])
def test_fused_layers_equal_numpy_bit_for_bit(threads, shape):
    rng = np.random.default_rng(len(shape) + threads)
    x_np = rng.standard_normal(shape).astype(np.float32)
    c_np = rng.standard_normal(shape).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, shape)
        c = af.placeholder(af.float32, shape)
        out = _layers(x, c, 5) * 0.5 - af.nn.relu(x)
    cfg = af.ConfigProto(intra_op_parallelism_threads=threads)
    before = shared_pool(threads).statistics()
    with af.Session(graph=g, config=cfg) as s:
        md = af.RunMetadata()
        got = s.run(out, {x: x_np, c: c_np},
                    options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE), run_metadata=md)
    # 5 layers of 3 ops, a scale, a relu and a subtraction ran as 2 kernels (+ args, retval)
    kernels = md.step_stats.node_names() - {n for n in md.step_stats.node_names() if "_arg" in n
                                            or "_retval" in n or n.startswith("Const")}
    assert len(kernels) == 2, kernels
    if threads > 1 and x_np.size >= BIG // 2:
        # offered to the pool: split, or declined after a split that did not pay (load)
        after = shared_pool(threads).statistics()
        assert (after.jobs_split + after.jobs_declined
                > before.jobs_split + before.jobs_declined)
    want = np.subtract(np.multiply(_reference(x_np, c_np, 5), np.float32(0.5)),
                       np.maximum(x_np, np.float32(0)))
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_array_equal(got, want)


def test_fused_chain_on_a_non_contiguous_variable_read_and_reused_buffers():
    base = np.random.default_rng(0).standard_normal((4, BIG)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        v = af.Variable(base)
        h = af.transpose(v)           # (BIG, 4), read as a view where possible
        out = af.sqrt(af.abs(h) + 1.0) * 2.0
        init = af.global_variables_initializer()
    with af.Session(graph=g) as s:
        s.run(init)
        first = s.run(out)
        second = s.run(out)  # the pool hands the first step's block back
    want = np.multiply(np.sqrt(np.add(np.abs(base.T), np.float32(1.0))), np.float32(2.0))
    np.testing.assert_array_equal(first, want)
    np.testing.assert_array_equal(second, want)


def test_configproto_threads_reach_the_devices():
    cfg = af.ConfigProto(intra_op_parallelism_threads=1)
    assert cfg.to_runtime().intra_op_threads == 1
    assert af.ConfigProto().to_runtime().worker_threads == resolve_threads(0)  # 0: the cores
    assert af.ConfigProto(inter_op_parallelism_threads=3).to_runtime().worker_threads == 3
    (dev,) = discover_devices(RuntimeConfig(device_count={"CPU": 1, "GPU": 0},
                                            intra_op_threads=1))
    assert dev.intra_op.threads == 1
    (dev,) = discover_devices(RuntimeConfig(device_count={"CPU": 1, "GPU": 0},
                                            intra_op_threads=3))
    assert dev.intra_op.threads == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_scalar_kernels_match_the_ufuncs(dtype):
    a_np, b_np = dtype(7), dtype(3)
    g = af.Graph()
    with g.as_default():
        a = af.placeholder(dtype, ())
        b = af.constant(b_np)
        outs = [a + b, a - b, a * b, -a, af.abs(a - 10), a < b, a >= b, af.equal(a, b),
                (a + b) * b - a]
        if np.dtype(dtype).kind == "f":
            outs.append(a / b)
    with af.Session(graph=g) as s:
        got = s.run(outs, {a: a_np})
    want = [np.add(a_np, b_np), np.subtract(a_np, b_np), np.multiply(a_np, b_np),
            np.negative(a_np), np.absolute(np.subtract(a_np, dtype(10))), np.less(a_np, b_np),
            np.greater_equal(a_np, b_np), np.equal(a_np, b_np),
            np.subtract(np.multiply(np.add(a_np, b_np), b_np), a_np)]
    if np.dtype(dtype).kind == "f":
        want.append(np.true_divide(a_np, b_np))
    for g_, w in zip(got, want, strict=True):
        assert np.asarray(g_).dtype == np.asarray(w).dtype
        assert np.asarray(g_) == np.asarray(w)


def test_a_scalar_chain_and_a_scalar_constant_read_like_numpy():
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, ())
        y = x
        for _ in range(100):
            y = y + 0.1
        k = af.constant(2.5)
    with af.Session(graph=g) as s:
        got, kv = s.run([y, k], {x: 0.5})
    want = np.float32(0.5)
    for _ in range(100):
        want = np.add(want, np.float32(0.1))
    assert np.asarray(got).dtype == np.float32 and got == want
    assert np.asarray(kv).shape == () and float(kv) == 2.5


def test_a_bad_fused_program_is_refused_with_the_reason():
    from devices.device import CpuDevice
    from devices.errors import InvalidArgumentError
    from scheduler.executor import compile_partition

    dev = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
    for program, match in (([["save", 0]], "not an element-wise op"),
                           ([["tanh", 0, 0]], "needs 1 operand"),
                           ([["add", -1, 5]], "input index below 1")):
        g = GraphDef([NodeDef("x", "_Arg", [], "", {"index": 0}, ["float32"], [(8,)]),
                      NodeDef("f", "_FusedElementwise", ["x"], "", {"program": program},
                              ["float32"], [(8,)])])
        with pytest.raises(InvalidArgumentError, match=match):
            compile_partition(g, dev)
