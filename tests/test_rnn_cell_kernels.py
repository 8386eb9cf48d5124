"""The RNN cell's kernels (issue 11, while-loop RNN): the fused ``tanh(a + b)`` pass
(`devices/kernels/fused.py`, `f32_loops.add_tanh`), element-wise fusion inside a while loop
(`scheduler.elementwise_fusion` with a loop's colocation constraint) and the gradient loop's
``acc + a @ b`` node (`_AccumulateMatMul`, `actorflow.ops.control_flow_grad`), each against
NumPy on generated shapes: 0-d, empty, batch 1, broadcast, rank 3, non-contiguous."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from actorflow.op_def import apply_op
from devices.errors import InvalidArgumentError
from devices.intra_op import MIN_CHUNK_ELEMENTS
from devices.kernels import fast_tanh
from scheduler import rewrite

TRACE = af.RunOptions(trace_level=af.RunOptions.FULL_TRACE)


def _kernel_ops(md: af.RunMetadata) -> set[str]:
    return {n for n in md.step_stats.node_names()
            if "_arg" not in n and "_retval" not in n and not n.startswith("Const")}


@pytest.mark.parametrize("shape", [(32, 64), (1, 64), (7,), (0, 5), (), (3, 4, 5),
                                   (2 * MIN_CHUNK_ELEMENTS + 3,)])
def test_tanh_of_a_sum_is_one_kernel_with_the_unfused_bits(shape):
    rng = np.random.default_rng(len(shape))
    a_np = (rng.standard_normal(shape) * 3).astype(np.float32)
    b_np = rng.standard_normal(shape).astype(np.float32)
    with af.Graph().as_default() as g:
        a = af.placeholder(af.float32, shape)
        b = af.placeholder(af.float32, shape)
        y = af.tanh(a + b)
    cfg = af.ConfigProto(intra_op_parallelism_threads=2)
    with af.Session(graph=g, config=cfg) as s:
        md = af.RunMetadata()
        got = s.run(y, {a: a_np, b: b_np}, options=TRACE, run_metadata=md)
        again = s.run(y, {a: a_np, b: b_np})  # the untraced path
    assert len(_kernel_ops(md)) == 1, _kernel_ops(md)
    want = np.asarray(fast_tanh.tanh(np.add(a_np, b_np)))
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again, want)
    np.testing.assert_allclose(got, np.tanh(a_np.astype(np.float64) + b_np), rtol=0,
                               atol=3e-7)


def test_tanh_of_a_broadcast_or_non_contiguous_sum_matches_numpy():
    rng = np.random.default_rng(7)
    m_np = rng.standard_normal((6, 8)).astype(np.float32)
    v_np = rng.standard_normal((8,)).astype(np.float32)
    with af.Graph().as_default() as g:
        m = af.Variable(m_np, name="m")
        v = af.placeholder(af.float32, (8,))
        broadcast = af.tanh(m + v)            # a (8,) operand: not the compiled pass
        strided = m[:, ::2]                   # a strided view of the variable's value
        fused = af.tanh(strided + strided * 0.5)
    with af.Session(graph=g) as s:
        s.run(m.initializer)
        got_b, got_s = s.run([broadcast, fused], {v: v_np})
    np.testing.assert_array_equal(got_b, fast_tanh.tanh(np.add(m_np, v_np)))
    sv = m_np[:, ::2]
    np.testing.assert_array_equal(got_s, fast_tanh.tanh(np.add(sv, sv * np.float32(0.5))))


def _rnn(T, B, H, seed):
    rng = np.random.default_rng(seed)
    x_np = (rng.standard_normal((T, B, H)) * 0.5).astype(np.float32)
    w_np = (rng.standard_normal((H, H)) / np.sqrt(H)).astype(np.float32)
    h0_np = rng.standard_normal((B, H)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.constant(x_np)
        w = af.Variable(w_np, name="W")

        def body(t, h):
            return t + 1, af.tanh(af.matmul(h, w) + af.gather(x, t))
        _, h_t = af.while_loop(lambda t, h: t < T, body, (0, af.constant(h0_np)))
        loss = af.reduce_sum(h_t)
        (dw,) = af.gradients(loss, [w])
    return g, w, h_t, dw, (x_np, w_np, h0_np)


def _numpy_rnn(x, w, h0):
    hs = [h0.astype(np.float64)]
    for t in range(x.shape[0]):
        hs.append(np.tanh(hs[-1] @ w + x[t]))
    dh = np.ones_like(hs[-1])
    dw = np.zeros(w.shape)
    for t in range(x.shape[0], 0, -1):
        dz = dh * (1 - hs[t] ** 2)
        dw += hs[t - 1].T @ dz
        dh = dz @ w.T
    return hs[-1], dw


@pytest.mark.parametrize("batch", [1, 5])
def test_a_while_loop_rnn_fuses_its_cell_and_accumulates_dw_in_one_node(batch):
    T, H = 12, 6
    g, w, h_t, dw, (x_np, w_np, h0_np) = _rnn(T, batch, H, batch)
    # the loop body's Add -> Tanh is one fused node that keeps the loop's colocation
    optimized = rewrite.optimize(g.as_graph_def())
    cell = optimized.by_name()["while/Tanh"]
    assert cell.op == "_FusedElementwise"
    assert cell.attrs["program"] == [["add", 0, 1], ["tanh", -1]]
    assert cell.attrs["_class"] == ["loc:@while/LoopCond"]
    # dW's running sum: one _AccumulateMatMul per gradient iteration, no Add of (H, H)
    acc = [op for op in g.get_operations() if op.type == "_AccumulateMatMul"]
    assert len(acc) == 1 and acc[0].attrs["transpose_a"]
    with af.Session(graph=g) as s:
        s.run(w.initializer)
        h_v, dw_v = s.run([h_t, dw])
    want_h, want_dw = _numpy_rnn(x_np, w_np.astype(np.float64), h0_np)
    np.testing.assert_allclose(h_v, want_h, rtol=0, atol=2e-6)
    np.testing.assert_allclose(dw_v, want_dw, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,k,n", [(3, 4, 5), (1, 4, 2), (0, 3, 2), (4, 0, 3)])
def test_accumulate_matmul_equals_numpy(ta, tb, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a_np = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b_np = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    acc_np = rng.standard_normal((m, n)).astype(np.float32)
    with af.Graph().as_default() as g:
        a, b, acc = (af.placeholder(af.float32, v.shape) for v in (a_np, b_np, acc_np))
        (y,) = apply_op("_AccumulateMatMul", [acc, a, b],
                        {"transpose_a": ta, "transpose_b": tb}, name="acc")
        assert y._shape == (m, n)
        ga, gb, gacc = af.gradients(af.reduce_sum(y * y), [a, b, acc])
    with af.Session(graph=g) as s:
        got, ga_v, gb_v, gacc_v = s.run([y, ga, gb, gacc], {a: a_np, b: b_np, acc: acc_np})
    # the same bits as MatMul then Add
    prod = np.matmul(a_np.T if ta else a_np, b_np.T if tb else b_np)
    np.testing.assert_array_equal(got, np.add(prod, acc_np))
    dy = 2 * got.astype(np.float64)
    a64, b64 = a_np.astype(np.float64), b_np.astype(np.float64)
    da = dy @ (b64.T if not tb else b64)
    db = (a64.T if not ta else a64) @ dy
    np.testing.assert_allclose(ga_v, da.T if ta else da, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb_v, db.T if tb else db, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gacc_v, dy, rtol=1e-6)


def test_accumulate_matmul_on_non_contiguous_operands():
    rng = np.random.default_rng(3)
    big = rng.standard_normal((6, 8)).astype(np.float32)
    acc_np = rng.standard_normal((6, 6)).astype(np.float32)
    with af.Graph().as_default() as g:
        v = af.Variable(big, name="v")
        s_ = v[:, ::2]  # (6, 4), strided
        acc = af.constant(acc_np)
        (y,) = apply_op("_AccumulateMatMul", [acc, s_, s_], {"transpose_b": True}, name="acc")
    with af.Session(graph=g) as s:
        s.run(v.initializer)
        got = s.run(y)
    sv = big[:, ::2]
    np.testing.assert_array_equal(got, np.add(np.matmul(sv, sv.T), acc_np))


def test_accumulate_matmul_names_a_running_sum_of_the_wrong_shape():
    with af.Graph().as_default():
        a = af.placeholder(af.float32, (3, 4))
        b = af.placeholder(af.float32, (4, 5))
        acc = af.placeholder(af.float32, (3, 4))
        with pytest.raises(InvalidArgumentError, match="running sum"):
            apply_op("_AccumulateMatMul", [acc, a, b], name="acc")
