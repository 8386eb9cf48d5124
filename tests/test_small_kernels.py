"""The small-kernel fast paths (#11 "small kernels cheap") against NumPy on generated shapes:
the lean sparse softmax cross-entropy, the run-time-count Mean, MeanGrad, Prod, Shape,
Reshape, OnesLike, BroadcastTo, BroadcastGradientArgs and FloorDiv's zero check; and the
training step's gradient graph, which has fewer nodes and TF's values."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actorflow as af
from devices import dtypes
from devices.device import CpuDevice
from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, lookup

DEV = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
FLOATS = st.sampled_from([np.float32, np.float64])
SETTINGS = settings(max_examples=20, deadline=None)


def kernel(op: str, out_dtypes: list, out_shapes: list | None = None, attrs: dict | None = None,
           in_dtypes: list | None = None, in_shapes: list | None = None) -> Any:
    """The CPU compute of `op` built as the compiler builds it (unknown static shapes by
    default, so the run-time paths are the ones tested)."""
    outs = [dtypes.as_dtype(d) for d in out_dtypes]
    ins = [dtypes.as_dtype(d) for d in (in_dtypes or [])]
    k = KernelContext("t", op, attrs or {}, outs, out_shapes or [None] * len(outs), ins,
                      in_shapes or [None] * len(ins), DEV)
    return lookup(op, "CPU").factory(k)


def xent_reference(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = logits.astype(np.float64)
    sh = x - x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(sh).sum(axis=-1, keepdims=True))
    onehot = np.eye(x.shape[-1])[labels]
    return (lse[..., 0] - (sh * onehot).sum(-1)), np.exp(sh - lse) - onehot


@settings(max_examples=10, deadline=None)
@given(FLOATS, st.integers(0, 40), st.integers(1, 12), st.sampled_from([np.int32, np.int64]),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_sparse_xent_matches_numpy(dt: Any, n: int, c: int, ldt: Any, strided: bool,
                                   seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c * 2 if strided else c)) * 5).astype(dt)
    if strided:
        logits = logits[:, ::2]  # not contiguous: the NumPy path
    labels = rng.integers(0, c, n).astype(ldt)
    f = kernel("SparseSoftmaxCrossEntropyWithLogits", [dt, dt], in_dtypes=[dt, ldt])
    loss, bp = f(logits, labels)
    want_loss, want_bp = xent_reference(logits, labels)
    tol = 1e-5 if dt == np.float32 else 1e-12
    assert loss.dtype == dt and bp.dtype == dt
    assert loss.shape == (n,) and bp.shape == (n, c)
    np.testing.assert_allclose(loss, want_loss, rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(bp, want_bp, rtol=tol, atol=tol)


def test_sparse_xent_batch_dims_nan_and_bad_labels() -> None:
    f = kernel("SparseSoftmaxCrossEntropyWithLogits", [np.float32] * 2,
               in_dtypes=[np.float32, np.int64])
    logits = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    labels = np.array([[0, 1, 2], [3, 0, 1]])
    loss, bp = f(logits, labels)
    want_loss, want_bp = xent_reference(logits, labels)
    assert loss.shape == (2, 3) and bp.shape == (2, 3, 4)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(bp, want_bp, atol=1e-6)
    nan = np.array([[0.0, np.nan, 1.0]], np.float32)
    loss, bp = f(nan, np.array([0]))
    assert np.isnan(loss).all() and np.isnan(bp).all()
    for bad in (4, -1):
        wrong = labels.copy()
        wrong[1, 2] = bad
        with pytest.raises(InvalidArgumentError,
                           match=re.escape(f"label {bad} at position (1, 2) is outside the "
                                           "valid range [0, 4)")):
            f(logits, wrong)


@SETTINGS
@given(FLOATS, st.lists(st.integers(0, 4), min_size=0, max_size=3), st.data())
def test_mean_with_a_run_time_count_and_its_gradient(dt: Any, shape: list, data: Any) -> None:
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dt)
    nd = len(shape)
    axes = data.draw(st.one_of(st.none(), st.lists(st.integers(0, max(nd - 1, 0)), unique=True,
                                                   max_size=nd).map(sorted).map(tuple)))
    if nd == 0:
        axes = None
    keep = data.draw(st.booleans())
    mean = kernel("Mean", [dt], attrs={"axis": axes, "keepdims": keep}, in_dtypes=[dt])
    (got,) = mean(x)
    if x.size and (axes is None or all(shape[a] for a in axes)):
        want = np.mean(x, axis=axes, keepdims=keep)
        assert got.dtype == dt
        np.testing.assert_allclose(got, want, rtol=1e-6 if dt == np.float32 else 1e-13)
    g = np.random.default_rng(1).standard_normal(np.shape(got)).astype(dt)
    grad = kernel("MeanGrad", [dt], attrs={"axis": axes, "keepdims": keep},
                  in_dtypes=[dt, dt])
    (dx,) = grad(g, x)
    assert dx.shape == x.shape and dx.dtype == dt
    red = tuple(range(nd)) if axes is None else axes
    count = int(np.prod([shape[a] for a in red]))
    if x.size:
        gk = g if keep else np.reshape(g, [1 if i in red else d for i, d in enumerate(shape)])
        np.testing.assert_array_equal(dx, np.broadcast_to(gk / dt(count), x.shape))


def test_shape_arithmetic_kernels() -> None:
    shape = kernel("Shape", [np.int32], in_dtypes=[np.float32])
    a = shape(np.zeros((3, 4), np.float32))[0]
    assert a.dtype == np.int32 and a.tolist() == [3, 4]
    assert shape(np.zeros((3, 4), np.float32))[0] is a  # kept per shape
    assert shape(np.zeros((0,), np.float32))[0].tolist() == [0]
    assert shape(np.float32(1.0))[0].tolist() == []
    with pytest.raises(ValueError):
        a[0] = 5  # read-only: no kernel may change a kept answer
    prod = kernel("Prod", [np.int32], attrs={"axis": None}, in_dtypes=[np.int32])
    assert int(prod(np.array([3, 4, 5], np.int32))[0]) == 60
    assert int(prod(np.array([], np.int32))[0]) == 1
    bga = kernel("BroadcastGradientArgs", [np.int32, np.int32], in_dtypes=[np.int32] * 2)
    for sx, sy, rx, ry in (([32, 10], [10], [], [0]), ([2, 1, 3], [4, 1], [1], [0, 2]),
                           ([], [5], [0], [])):
        for _ in range(2):  # computed, then from the cache
            gx, gy = bga(np.array(sx, np.int32), np.array(sy, np.int32))
            assert gx.dtype == np.int32 and gx.tolist() == rx and gy.tolist() == ry
    floordiv = kernel("FloorDiv", [np.int32], in_dtypes=[np.int32] * 2)
    assert floordiv(np.array(7, np.int32), np.array(2, np.int32))[0] == 3
    with pytest.raises(InvalidArgumentError, match="division by zero"):
        floordiv(np.array([7, 8], np.int32), np.array([2, 0], np.int32))


@SETTINGS
@given(FLOATS, st.lists(st.integers(0, 5), max_size=3), st.data())
def test_reshape_ones_like_and_broadcast_to(dt: Any, shape: list, data: Any) -> None:
    x = np.arange(int(np.prod(shape)), dtype=dt).reshape(shape)
    if data.draw(st.booleans()) and x.ndim == 2:
        x = x.T  # not contiguous
    reshape = kernel("Reshape", [dt], in_dtypes=[dt, np.int32])
    np.testing.assert_array_equal(reshape(x, np.array([-1], np.int32))[0], x.reshape(-1))
    ones = kernel("OnesLike", [dt], in_dtypes=[dt])(x)[0]
    assert ones.dtype == dt and ones.shape == x.shape and (ones == 1).all()
    lead = data.draw(st.lists(st.integers(0, 3), max_size=2))
    target = lead + [data.draw(st.sampled_from([1, d])) if d == 1 else d for d in x.shape]
    target = [data.draw(st.integers(0, 4)) if d == 1 else d for d in target]
    bcast = kernel("BroadcastTo", [dt], in_dtypes=[dt, np.int32])
    got = bcast(x, np.array(target, np.int32))[0]
    np.testing.assert_array_equal(got, np.broadcast_to(x, target))
    assert got.dtype == dt


def test_broadcast_to_large_and_incompatible() -> None:
    bcast = kernel("BroadcastTo", [np.float32], in_dtypes=[np.float32, np.int32])
    big = bcast(np.float32(2.0), np.array([100, 100], np.int32))[0]
    assert big.shape == (100, 100) and (big == 2).all()
    with pytest.raises(ValueError, match="broadcast"):
        bcast(np.zeros(3, np.float32), np.array([4], np.int32))
    with pytest.raises(ValueError, match="dimensions"):  # broadcast_to's own error
        bcast(np.zeros((1, 3), np.float32), np.array([3], np.int32))


def _softmax_step_graph() -> tuple[Any, ...]:
    g = af.Graph()
    with g.as_default():
        w = af.Variable(np.linspace(-1, 1, 64 * 10, dtype=np.float32).reshape(64, 10))
        b = af.Variable(np.zeros(10, np.float32))
        x = af.placeholder(af.float32, (None, 64))
        y = af.placeholder(af.int64, (None,))
        logits = af.matmul(x, w) + b
        loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
        gw, gb = af.gradients(loss, [w, b])
        init = af.global_variables_initializer()
    return g, x, y, loss, gw, gb, init


def test_softmax_regression_gradient_graph_is_small_and_exact() -> None:
    """The Add and Mean gradients need no run-time shape arithmetic: no Shape, Prod,
    FloorDiv, BroadcastGradientArgs or BroadcastTo nodes, and TF's values."""
    g, x, y, loss, gw, gb, init = _softmax_step_graph()
    ops = {op.type for op in g.get_operations() if op.name.startswith("gradients")}
    assert not ops & {"Shape", "Prod", "FloorDiv", "BroadcastGradientArgs", "BroadcastTo"}
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 64)).astype(np.float32)
    Y = rng.integers(0, 10, 5)
    with af.Session(graph=g) as s:
        s.run(init)
        got_gw, got_gb = s.run([gw, gb], {x: X, y: Y})
        W = np.linspace(-1, 1, 640, dtype=np.float32).reshape(64, 10).astype(np.float64)
        _, bp = xent_reference(X.astype(np.float64) @ W, Y)
        np.testing.assert_allclose(got_gb, bp.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got_gw, X.T.astype(np.float64) @ bp / 5, rtol=1e-4,
                                   atol=1e-6)
        with pytest.raises(af.InvalidArgumentError, match="label 10 at position"):
            s.run(loss, {x: X, y: np.array([0, 1, 2, 3, 10])})


def test_mean_gradient_second_order() -> None:
    """MeanGrad's own gradient is the Mean of the upstream gradient (d2/dx2 of mean(x**2))."""
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float64, (None, 3))
        loss = af.reduce_mean(af.square(x), axis=[1])
        (dx,) = af.gradients(loss, [x])
        (ddx,) = af.gradients(af.reduce_sum(dx * dx), [x])
    X = np.arange(6, dtype=np.float64).reshape(2, 3)
    with af.Session(graph=g) as s:
        got_dx, got_ddx = s.run([dx, ddx], {x: X})
    np.testing.assert_allclose(got_dx, 2 * X / 3)
    np.testing.assert_allclose(got_ddx, 8 * X / 9)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_large_gradient_descent_update_is_numpys_bits(dt: Any) -> None:
    """A large dense update (the compiled pass) equals NumPy's ``w - lr * g`` exactly; a
    strided gradient takes the ufuncs' path with the same values."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((300, 200)).astype(dt)
    g0 = rng.standard_normal((300, 200)).astype(dt)
    g = af.Graph()
    with g.as_default():
        w = af.Variable(w0)
        grad = af.placeholder(dt, (300, 200))
        step = af.train.GradientDescentOptimizer(0.37).apply_gradients([(grad, w)])
        init = af.global_variables_initializer()
    with af.Session(graph=g) as s:
        s.run(init)
        s.run(step, {grad: g0})
        want = w0 - dt(0.37) * g0
        np.testing.assert_array_equal(s.run(w), want)
        s.run(step, {grad: np.asfortranarray(g0)})
        np.testing.assert_array_equal(s.run(w), want - dt(0.37) * g0)
