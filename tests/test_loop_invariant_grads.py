"""The gradient of a loop invariant multiplied once in a while loop's body (an RNN's W),
summed beside the gradient loop (`actorflow.ops.loop_invariant_grads`,
`devices.kernels.loop_sums`): which graphs take the path, and its values against NumPy's
backpropagation through time on generated shapes."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from devices.kernels import loop_sums


def _ops(g: af.Graph, kind: str) -> list:
    return [op for op in g.get_operations() if op.type == kind]


def _numpy_bptt(x: np.ndarray, w: np.ndarray, h0: np.ndarray, twice: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """h_t = tanh(h @ W + x_t) (or tanh(h @ W + (h @ W) * 0.5 + x_t) with `twice`); the
    gradient of sum(h_T) with respect to W, in float64."""
    x, w, h0 = (a.astype(np.float64) for a in (x, w, h0))
    c = 1.5 if twice else 1.0
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(np.tanh(c * (hs[-1] @ w) + x[t]))
    dh = np.ones_like(hs[-1])
    dw = np.zeros_like(w)
    for t in range(x.shape[0], 0, -1):
        dz = dh * (1 - hs[t] ** 2) * c
        dw += hs[t - 1].T @ dz
        dh = dz @ w.T
    return hs[-1], dw


def _rnn(x: np.ndarray, w: np.ndarray, h0: np.ndarray, twice: bool = False,
         transpose_w: bool = False):
    T = x.shape[0]
    g = af.Graph()
    with g.as_default():
        xs = af.constant(x)
        wv = af.Variable(w.T if transpose_w else w, name="W")

        def body(t, h):
            z = af.matmul(h, wv, transpose_b=transpose_w)
            if twice:
                z = z + af.matmul(h, wv, transpose_b=transpose_w) * 0.5
            return t + 1, af.tanh(z + af.gather(xs, af.minimum(t, max(T - 1, 0))))

        _, h_t = af.while_loop(lambda t, h: t < T, body, (0, af.constant(h0)))
        (dw,) = af.gradients(af.reduce_sum(h_t), [wv])
    return g, wv, h_t, dw


def _run(g, w, h_t, dw):
    with af.Session(graph=g) as s:
        s.run(w.initializer)
        return s.run([h_t, dw])


def _data(T: int, B: int, H: int, dtype: type, seed: int):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((max(T, 1), B, H)) * 0.5).astype(dtype)
    w = (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    return x, w, h0


@pytest.mark.parametrize("T,B,H,dtype,transpose_w,seed", [
    (0, 1, 1, np.float32, False, 0), (1, 1, 4, np.float64, True, 1),
    (5, 3, 1, np.float32, True, 2), (5, 3, 4, np.float64, False, 3),
    (5, 1, 4, np.float32, False, 4)])
def test_the_hoisted_gradient_equals_numpy_bptt(T, B, H, dtype, transpose_w, seed) -> None:
    x, w, h0 = _data(T, B, H, dtype, seed)
    x = x[:T] if T else x[:0]
    g, wv, h_t, dw = _rnn(x, w, h0, transpose_w=transpose_w)
    # the invariant's gradient is summed beside the loop: no running sum in the loop
    assert len(_ops(g, "_ProductSum")) == 1
    assert not _ops(g, "_AccumulateMatMul")
    h_v, dw_v = _run(g, wv, h_t, dw)
    want_h, want_dw = _numpy_bptt(x, w, h0)
    if transpose_w:
        want_dw = want_dw.T
    assert dw_v.dtype == dtype and dw_v.shape == want_dw.shape
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(h_v, want_h, rtol=0, atol=tol)
    np.testing.assert_allclose(dw_v, want_dw, rtol=tol, atol=tol * max(T, 1))


def test_an_rnn_large_enough_for_the_worker_matches_numpy_and_repeats_its_bits() -> None:
    # batch 32, H 32, T 40: 5 jobs of 8 products each, posted to the worker thread
    x, w, h0 = _data(40, 32, 32, np.float32, 3)
    assert 32 * 32 * 32 * loop_sums.CHUNK >= loop_sums.MIN_JOB_WORK
    g, wv, h_t, dw = _rnn(x, w, h0)
    with af.Session(graph=g) as s:
        s.run(wv.initializer)
        runs = [s.run(dw) for _ in range(3)]
    _, want_dw = _numpy_bptt(x, w, h0)
    np.testing.assert_allclose(runs[0], want_dw, rtol=1e-4, atol=1e-4)
    for r in runs[1:]:  # chunks are summed in push order, whichever thread ran them
        np.testing.assert_array_equal(r, runs[0])


def test_the_product_sum_is_the_same_inline_and_on_the_worker() -> None:
    rng = np.random.default_rng(0)
    terms = [(rng.standard_normal((16, 32)).astype(np.float32),
              rng.standard_normal((16, 32)).astype(np.float32)) for _ in range(21)]
    init = np.zeros((32, 32), np.float32)
    sums = []
    for worker in (None, loop_sums._background()):
        ps = loop_sums.ProductSum("terms", worker)
        for a, b in terms:
            ps.push((a, b), True, False)
        sums.append(ps.total(init))
    np.testing.assert_array_equal(sums[0], sums[1])
    want = sum(a.astype(np.float64).T @ b for a, b in terms)
    np.testing.assert_allclose(sums[0], want, rtol=1e-5, atol=1e-4)


def test_w_used_twice_keeps_the_running_sum_and_is_right() -> None:
    x, w, h0 = _data(5, 3, 4, np.float64, 1)
    g, wv, h_t, dw = _rnn(x, w, h0, twice=True)
    assert not _ops(g, "_ProductSum")
    _, dw_v = _run(g, wv, h_t, dw)
    np.testing.assert_allclose(dw_v, _numpy_bptt(x, w, h0, twice=True)[1], rtol=1e-10)


def test_a_product_whose_operand_is_not_invariant_keeps_the_old_path() -> None:
    # h @ v where v is a loop variable: its gradient flows through the loop, not a sum
    rng = np.random.default_rng(2)
    h0, v0 = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)) * 0.5
    with af.Graph().as_default() as g:
        hc, vc = af.constant(h0), af.constant(v0)
        _, h_t, _ = af.while_loop(lambda t, h, v: t < 3,
                                  lambda t, h, v: (t + 1, af.tanh(af.matmul(h, v)), v * 0.9),
                                  (0, hc, vc))
        dh, dv = af.gradients(af.reduce_sum(h_t), [hc, vc])
        assert not _ops(g, "_ProductSum")
        with af.Session(graph=g) as s:
            dh_v, dv_v = s.run([dh, dv])

    def f(h, v):
        for _ in range(3):
            h, v = np.tanh(h @ v), v * 0.9
        return h.sum()

    eps = 1e-6
    num = np.zeros_like(v0)
    for idx in np.ndindex(v0.shape):
        d = np.zeros_like(v0)
        d[idx] = eps
        num[idx] = (f(h0, v0 + d) - f(h0, v0 - d)) / (2 * eps)
    np.testing.assert_allclose(dv_v, num, rtol=1e-6, atol=1e-8)


def test_nested_loops_sum_the_inner_invariant_per_outer_iteration() -> None:
    rng = np.random.default_rng(4)
    w0, h0 = rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((2, 3))
    with af.Graph().as_default() as g:
        w = af.constant(w0)

        def outer(i, h):
            _, h2 = af.while_loop(lambda j, z: j < 2,
                                  lambda j, z: (j + 1, af.tanh(af.matmul(z, w))), (0, h))
            return i + 1, h2 + h * 0.5

        _, h_t = af.while_loop(lambda i, h: i < 3, outer, (0, af.constant(h0)))
        (dw,) = af.gradients(af.reduce_sum(h_t), [w])
        assert _ops(g, "_ProductSum")
        with af.Session(graph=g) as s:
            dw_v = s.run(dw)

    def f(w):
        h = h0
        for _ in range(3):
            z = h
            for _ in range(2):
                z = np.tanh(z @ w)
            h = z + h * 0.5
        return h.sum()

    eps = 1e-6
    num = np.zeros_like(w0)
    for idx in np.ndindex(w0.shape):
        d = np.zeros_like(w0)
        d[idx] = eps
        num[idx] = (f(w0 + d) - f(w0 - d)) / (2 * eps)
    np.testing.assert_allclose(dw_v, num, rtol=1e-6, atol=1e-8)


def test_the_sum_of_an_invariant_gradient_is_not_differentiable_again() -> None:
    x, w, h0 = _data(3, 2, 2, np.float64, 5)
    g, wv, h_t, dw = _rnn(x, w, h0)
    with g.as_default():
        for wrt in (wv, g.get_tensor_by_name("Const_1:0")):  # W, and h0 (no path via W)
            with pytest.raises(af.errors.InvalidArgumentError, match="unroll the loop"):
                af.gradients(af.reduce_sum(dw * dw), [wrt])


def test_an_rnn_of_unknown_batch_size_takes_the_path_too() -> None:
    x, w, h0 = _data(4, 3, 4, np.float64, 6)
    with af.Graph().as_default() as g:
        xs = af.placeholder(af.float64, (4, None, 4))
        hp = af.placeholder(af.float64, (None, 4))
        wc = af.constant(w)
        body = lambda t, h: (t + 1, af.tanh(af.matmul(h, wc) + af.gather(xs, t)))  # noqa: E731
        _, h_t = af.while_loop(lambda t, h: t < 4, body, (0, hp))
        (dw,) = af.gradients(af.reduce_sum(h_t), [wc])
        assert _ops(g, "_ProductSum")
        with af.Session(graph=g) as s:
            dw_v = s.run(dw, {xs: x, hp: h0})
    np.testing.assert_allclose(dw_v, _numpy_bptt(x, w, h0)[1], rtol=1e-10, atol=1e-12)


def test_a_run_that_waited_for_the_worker_keeps_the_next_runs_inline(monkeypatch) -> None:
    monkeypatch.setattr(loop_sums, "_declining", 0)
    monkeypatch.setattr(loop_sums, "_backoff", loop_sums.BACKOFF_RUNS)
    loop_sums._judge(0.0)  # a run that paid: the worker stays in use
    assert loop_sums._worker_for_this_run() is not None
    loop_sums._judge(10 * loop_sums.LOSS_WAIT_S)  # a loss: the next 8 runs inline
    assert [loop_sums._worker_for_this_run() for _ in range(loop_sums.BACKOFF_RUNS)] == [
        None] * loop_sums.BACKOFF_RUNS
    assert loop_sums._worker_for_this_run() is not None
    loop_sums._judge(10 * loop_sums.LOSS_WAIT_S)  # a second loss in a row: twice as long
    assert loop_sums._declining == 2 * loop_sums.BACKOFF_RUNS
    loop_sums._judge(0.0, late=2)  # two posted jobs the worker never started: a loss too
    assert loop_sums._declining == 4 * loop_sums.BACKOFF_RUNS
