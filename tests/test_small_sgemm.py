"""Small float32 products through OpenBLAS's cblas_sgemm directly (devices/kernels/sgemm_loop.py
and the MatMul / _AccumulateMatMul kernels): the same bits as NumPy's matmul (and matmul then
add), on generated shapes and layouts, and NumPy's path for what the direct call declines."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from actorflow.op_def import apply_op
from benchmarks import floors
from devices.kernels.math import SGEMM_LOOP, SGEMM_MAX_WORK


@pytest.fixture(autouse=True, scope="module")
def _loaded() -> None:  # the compiled call, loaded when these tests run (not at collection)
    if not SGEMM_LOOP.ready(120):
        pytest.skip("numba unavailable")


def _fptr() -> int:
    from devices.kernels.sgemm_loop import sgemm_address

    fp = sgemm_address()
    if fp is None:
        pytest.skip("this NumPy carries no OpenBLAS of its own")
    return fp


def _operands(m: int, k: int, n: int, ta: bool, tb: bool, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


SHAPES = [(2, 2, 2), (3, 5, 7), (32, 64, 64), (64, 32, 64), (17, 1, 9), (5, 256, 3)]
FLAGS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("ta,tb", FLAGS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_the_direct_call_gives_numpys_bits(m, k, n, ta, tb):
    fp = _fptr()
    a, b = _operands(m, k, n, ta, tb, m * 1000 + k * 10 + n)
    want = np.matmul(a.T if ta else a, b.T if tb else b)
    out = np.full((m, n), np.nan, np.float32)
    assert SGEMM_LOOP.fn(fp, a, b, out, int(ta), int(tb), 0.0) is (k > 1)
    if k > 1:
        np.testing.assert_array_equal(out, want)
        acc = np.random.default_rng(1).standard_normal((m, n)).astype(np.float32)
        summed = acc.copy()
        assert SGEMM_LOOP.fn(fp, a, b, summed, int(ta), int(tb), 1.0)
        np.testing.assert_array_equal(summed, np.add(want, acc))  # matmul then add, bit for bit


def test_the_direct_call_declines_what_numpy_does_otherwise():
    from devices.kernels.sgemm_loop import MAX_WORK

    assert SGEMM_MAX_WORK == MAX_WORK  # the kernels' static decision is the call's
    fp = _fptr()
    gemm = SGEMM_LOOP.fn
    a = np.ones((4, 3), np.float32)
    out = np.zeros((4, 5), np.float32)
    assert not gemm(fp, a, np.ones((4, 5), np.float32), out, 0, 0, 0.0)  # 3 != 4: no chain
    assert not gemm(fp, np.ones((1, 3), np.float32), np.ones((3, 5), np.float32),
                    np.zeros((1, 5), np.float32), 0, 0, 0.0)  # a row vector: NumPy's gemv
    big = np.ones((128, 128), np.float32)
    assert not gemm(fp, big, big, np.zeros((128, 128), np.float32), 0, 0, 0.0)  # threaded
    long_k = np.ones((2, 300), np.float32)
    assert not gemm(fp, long_k, long_k, np.zeros((2, 2), np.float32), 0, 1, 1.0)  # K blocks
    assert (out == 0).all()
    with pytest.raises(TypeError):  # a strided view is not a C-contiguous matrix
        gemm(fp, np.ones((4, 6), np.float32)[:, ::2], np.ones((3, 5), np.float32), out, 0, 0,
             0.0)


@pytest.mark.parametrize("ta,tb", FLAGS)
@pytest.mark.parametrize("m,k,n", [(3, 5, 7), (32, 64, 64), (1, 4, 6), (4, 4, 1), (0, 3, 2),
                                   (64, 128, 64)])
def test_matmul_and_accumulate_kernels_give_numpys_bits(m, k, n, ta, tb, monkeypatch):
    calls = []
    real = SGEMM_LOOP.fn

    def counted(*args):  # the real call, counted: the kernels do take it
        ok = real(*args)
        calls.append(ok)
        return ok
    monkeypatch.setattr(SGEMM_LOOP, "fn", counted)
    a_np, b_np = _operands(m, k, n, ta, tb, m * 100 + k * 10 + n)
    acc_np = np.random.default_rng(7).standard_normal((m, n)).astype(np.float32)
    with af.Graph().as_default() as g:
        a, b, acc = (af.placeholder(af.float32, v.shape) for v in (a_np, b_np, acc_np))
        y = af.matmul(a, b, transpose_a=ta, transpose_b=tb)
        w = af.Variable(b_np, name="w")  # a variable's value as an operand
        y_var = af.matmul(a, w, transpose_a=ta, transpose_b=tb)
        (s_,) = apply_op("_AccumulateMatMul", [acc, a, b],
                         {"transpose_a": ta, "transpose_b": tb}, name="acc")
    want = np.matmul(a_np.T if ta else a_np, b_np.T if tb else b_np)
    with af.Session(graph=g) as s:
        s.run(w.initializer)
        for _ in range(2):  # the second run with the compiled call surely loaded
            got, got_var, got_acc = s.run([y, y_var, s_], {a: a_np, b: b_np, acc: acc_np})
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(got_var, want)
            np.testing.assert_array_equal(got_acc, np.add(want, acc_np))
    direct = min(m, n) > 1 and k > 1 and m * n * k <= SGEMM_MAX_WORK
    assert (True in calls) is direct  # vectors, empty and big products keep NumPy's path
    if not direct:
        assert calls == []  # decided once from the static shapes, not at every call


def test_a_product_of_a_matrix_with_its_own_transpose_and_of_a_strided_operand():
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((6, 8)).astype(np.float32)
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (6, 8))
        gram = af.matmul(x, x, transpose_b=True)  # NumPy: syrk; the kernel keeps NumPy's path
        part = af.matmul(af.transpose(x), x)       # the transpose may arrive as a view
    with af.Session(graph=g) as s:
        got_gram, got_part = s.run([gram, part], {x: x_np})
    np.testing.assert_array_equal(got_gram, np.matmul(x_np, x_np.T))
    np.testing.assert_allclose(got_part, x_np.T @ x_np, rtol=1e-5, atol=1e-5)


def test_the_rnn_through_the_direct_call_matches_numpy():
    x_np, w_np, h0_np = floors.make_rnn_data(12, 4, 8, 3)
    with af.Graph().as_default() as g:
        x = af.constant(x_np)
        w = af.Variable(w_np, name="W")
        _, h_t = af.while_loop(
            lambda t, h: t < x_np.shape[0],
            lambda t, h: (t + 1, af.tanh(af.matmul(h, w) + af.gather(x, t))),
            (af.constant(0, af.int32), af.constant(h0_np)))
        loss = af.reduce_sum(h_t)
        (dw,) = af.gradients(loss, [w])
    with af.Session(graph=g) as s:
        s.run(w.initializer)
        for _ in range(2):
            h_v, (loss_v, dw_v) = s.run(h_t), s.run([loss, dw])
            np.testing.assert_allclose(h_v, floors.rnn_forward(x_np, w_np, h0_np), atol=5e-7)
            want_loss, want_dw = floors.rnn_forward_backward(x_np, w_np, h0_np)
            np.testing.assert_allclose(dw_v, want_dw, rtol=1e-5, atol=1e-5)
            assert loss_v == pytest.approx(want_loss, rel=1e-5)
