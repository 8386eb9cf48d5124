"""Matrix, counting and mirrored-pad ops (actorflow/ops/matrix_ops.py, counting_ops.py) on
generated shapes (a batch of 0, one matrix, several; empty right-hand sides), forward against
NumPy and gradients against central differences in float64; and the conventions an audit
against TensorFlow 2.21 found wrong (sorted segment_max of an empty segment, a filter
gradient for a batch of 0 images, silent inf/NaN in kernels)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_forward, check_gradient, run_op

RNG = np.random.default_rng(8)


def _square(*batch: int, n: int = 3) -> np.ndarray:
    a = RNG.uniform(-1, 1, (*batch, n, n)) + 3 * np.eye(n)
    return a.astype(np.float64)


@pytest.mark.parametrize("batch", [(0,), (), (2,), (2, 1)])
def test_determinants_and_solves_match_numpy_and_differentiate(batch: tuple) -> None:
    a, b = _square(*batch), RNG.standard_normal((*batch, 3, 2))
    check_forward(af.matrix_determinant, np.linalg.det, [a])
    check_forward(lambda x: af.log_matrix_determinant(x)[1],
                  lambda x: np.linalg.slogdet(x)[1], [a])
    check_forward(af.matrix_solve, np.linalg.solve, [a, b], rtol=1e-9)
    check_forward(lambda x, y: af.matrix_solve(x, y, adjoint=True),
                  lambda x, y: np.linalg.solve(np.swapaxes(x, -1, -2), y), [a, b], rtol=1e-9)
    for lower in (True, False):
        tri = np.tril if lower else np.triu
        for adjoint in (False, True):
            def ref(x, y, tri=tri, adjoint=adjoint):
                t = tri(x)
                return np.linalg.solve(np.swapaxes(t, -1, -2) if adjoint else t, y)
            check_forward(lambda x, y, lower=lower, adjoint=adjoint: af.matrix_triangular_solve(
                x, y, lower=lower, adjoint=adjoint), ref, [a, b], rtol=1e-9)
            if batch != (0,):
                check_gradient(lambda x, y, lower=lower, adjoint=adjoint:
                               af.matrix_triangular_solve(x, y, lower=lower, adjoint=adjoint),
                               [a, b], seed=1)
    if batch != (0,):
        check_gradient(af.matrix_determinant, [a], seed=2)
        check_gradient(lambda x: af.linalg.slogdet(x)[1], [a], seed=3)
        check_gradient(af.matrix_solve, [a, b], seed=4)
        check_gradient(lambda x, y: af.matrix_solve(x, y, adjoint=True), [a, b], seed=5)


def test_solve_of_a_singular_matrix_names_the_problem() -> None:
    with pytest.raises(af.errors.InvalidArgumentError, match="not invertible"):
        run_op(af.matrix_solve, [np.zeros((3, 3)), np.ones((3, 1))])
    with pytest.raises(af.errors.InvalidArgumentError, match="must have 3 rows"):
        run_op(af.matrix_solve, [np.eye(3), np.ones((2, 1))])


@pytest.mark.parametrize("lo,up", [(0, -1), (-1, 0), (1, 1), (0, 0), (-1, -1), (2, 0)])
@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 3), (0, 3, 3), (3, 0)])
def test_band_part_keeps_the_band(lo: int, up: int, shape: tuple) -> None:
    x = RNG.standard_normal(shape)
    if lo > shape[-2] or up > shape[-1]:  # as TF: a band wider than the matrix is an error
        with pytest.raises(af.errors.InvalidArgumentError, match="must be at most"):
            run_op(lambda t: af.matrix_band_part(t, lo, up), [x])
        return
    i, j = np.indices(shape[-2:])
    keep = ((lo < 0) | (i - j <= lo)) & ((up < 0) | (j - i <= up))
    check_forward(lambda t: af.matrix_band_part(t, lo, up), lambda t: t * keep, [x])
    if x.size:
        check_gradient(lambda t: af.matrix_band_part(t, lo, up), [x], seed=6)


def test_logdet_cross_and_the_linalg_names() -> None:
    a = _square(2)
    spd = a @ np.swapaxes(a, -1, -2)
    check_forward(af.linalg.logdet, lambda x: np.linalg.slogdet(x)[1], [spd])
    u, v = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    check_forward(af.cross, np.cross, [u, v])
    check_gradient(af.cross, [u, v], seed=7)
    assert af.linalg.det is af.matrix_determinant and af.linalg.solve is af.matrix_solve
    assert af.linalg.band_part is af.matrix_band_part


@pytest.mark.parametrize("n", [0, 1, 7])
def test_xdivy_xlogy_are_zero_where_x_is_zero_with_finite_gradients(n: int) -> None:
    x = RNG.uniform(0.5, 2, (n, 3)) * (RNG.uniform(size=(n, 3)) > 0.4)
    y = RNG.uniform(0.5, 2, (n, 3))
    y[x == 0] = 0.0  # 0 / 0 and 0 * log 0 must still be 0
    check_forward(af.math.xdivy, lambda p, q: np.where(p == 0, 0, p / np.where(p == 0, 1, q)),
                  [x, y])
    check_forward(af.math.xlogy,
                  lambda p, q: np.where(p == 0, 0, p * np.log(np.where(p == 0, 1, q))), [x, y])
    g = run_op(lambda p, q: af.gradients(af.reduce_sum(af.math.xlogy(p, q)), [p, q]), [x, y])
    assert all(np.isfinite(v).all() for v in g)


@pytest.mark.parametrize("shape,axis", [((4, 3), 0), ((4, 3), 1), ((4, 3), None), ((1, 5), 1)])
def test_reduce_variance_and_std(shape: tuple, axis: int | None) -> None:
    x = RNG.standard_normal(shape)
    check_forward(lambda t: af.math.reduce_variance(t, axis), lambda t: t.var(axis), [x])
    check_forward(lambda t: af.math.reduce_std(t, axis, keepdims=True),
                  lambda t: t.std(axis, keepdims=True), [x])
    check_gradient(lambda t: af.math.reduce_std(t, axis), [x], seed=9)


@pytest.mark.parametrize("n", [0, 1, 9])
def test_bincount_and_setdiff1d(n: int) -> None:
    v = RNG.integers(0, 5, n).astype(np.int32)
    w = RNG.standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(run_op(af.bincount, [v]), np.bincount(v))
    np.testing.assert_array_equal(run_op(lambda t: af.bincount(t, minlength=7), [v]),
                                  np.bincount(v, minlength=7))
    np.testing.assert_array_equal(run_op(lambda t: af.bincount(t, maxlength=2), [v]),
                                  np.bincount(v)[:2])
    np.testing.assert_allclose(run_op(lambda t, u: af.bincount(t, weights=u), [v, w]),
                               np.bincount(v, w), rtol=1e-6)
    out, idx = run_op(lambda t: af.setdiff1d(t, af.constant([1, 3])), [v])
    keep = ~np.isin(v, [1, 3])
    np.testing.assert_array_equal(out, v[keep])
    np.testing.assert_array_equal(idx, np.flatnonzero(keep))
    with pytest.raises(af.errors.InvalidArgumentError, match="non-negative"):
        run_op(af.bincount, [np.int32([1, -2])])


@pytest.mark.parametrize("mode", ["REFLECT", "SYMMETRIC"])
@pytest.mark.parametrize("shape,pads", [((2, 3), [[1, 1], [2, 2]]), ((3,), [[2, 0]]),
                                        ((2, 3, 4), [[0, 1], [1, 0], [3, 3]]), ((1, 1), [[0, 0],
                                                                                    [0, 0]])])
def test_mirror_pad_matches_numpy_and_differentiates(mode: str, shape: tuple, pads: list) -> None:
    if mode == "REFLECT" and any(max(p) >= s for p, s in zip(pads, shape, strict=True)):
        pytest.skip("REFLECT needs pads smaller than the dimension")
    x = RNG.standard_normal(shape)
    check_forward(lambda t: af.pad(t, pads, mode), lambda t: np.pad(t, pads, mode.lower()), [x])
    check_gradient(lambda t: af.pad(t, pads, mode), [x], seed=10)


def test_mirror_pad_beyond_the_dimension_names_the_limit() -> None:
    """Checked by the kernel when the shape is known only at run time."""
    x = np.ones((2, 3))
    run_op = _run_unknown_shape
    with pytest.raises(af.errors.InvalidArgumentError, match="less than 3"):
        run_op(lambda t: af.pad(t, [[0, 0], [3, 0]], "REFLECT"), [x])
    with pytest.raises(af.errors.InvalidArgumentError, match="at most 3"):
        run_op(lambda t: af.pad(t, [[0, 0], [4, 0]], "SYMMETRIC"), [x])
    with pytest.raises(af.errors.InvalidArgumentError, match="not one of"):
        run_op(lambda t: af.pad(t, [[0, 0], [1, 0]], "EDGE"), [x])


def _run_unknown_shape(build, inputs):
    g = af.Graph()
    with g.as_default():
        phs = [af.placeholder(af.as_dtype(x.dtype)) for x in inputs]
        with af.Session(graph=g) as s:
            return s.run(build(*phs), dict(zip(phs, inputs, strict=True)))


@pytest.mark.parametrize("n", [0, 1, 6])
def test_segment_conventions_for_empty_segments(n: int) -> None:
    """Sorted segment_max/min: an empty segment is 0; unsorted: the dtype's lowest/highest
    finite value (TF's conventions); segment_sum of no ids is empty, not an error."""
    d = RNG.standard_normal((n, 2)).astype(np.float32)
    ids = np.sort(RNG.choice([0, 2], n)).astype(np.int32)
    got = run_op(lambda t: af.segment_max(t, af.constant(ids)), [d])
    want = np.zeros((ids.max() + 1 if n else 0, 2), np.float32)
    for k in range(len(want)):
        if (ids == k).any():
            want[k] = d[ids == k].max(0)
    np.testing.assert_array_equal(got, want)
    low = run_op(lambda t: af.unsorted_segment_max(t, af.constant(ids), 3), [d])
    assert (low[1] == np.finfo(np.float32).min).all()
    high = run_op(lambda t: af.unsorted_segment_min(t, af.constant(ids), 3), [d])
    assert (high[1] == np.finfo(np.float32).max).all()
    s = run_op(lambda t: af.segment_sum(t, af.constant(ids)), [d])
    assert s.shape == want.shape


def test_conv_gradients_for_a_batch_of_no_images() -> None:
    x = np.zeros((0, 5, 5, 2), np.float32)
    w = RNG.standard_normal((3, 3, 2, 3)).astype(np.float32)
    gx, gw = run_op(lambda a, b: af.gradients(af.reduce_sum(af.nn.conv2d(
        a, b, [1, 1, 1, 1], "SAME")), [a, b]), [x, w])
    assert gx.shape == x.shape and gw.shape == w.shape and not gw.any()


def test_kernels_give_inf_and_nan_without_warnings() -> None:
    from devices.kernels import quiet_kernel_warnings
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()  # (pytest's own filters would show every warning)
        warnings.simplefilter("always")
        quiet_kernel_warnings()
        out = run_op(lambda a, b: a / b, [np.float32([1, 0]), np.float32([0, 0])])
    assert np.isinf(out[0]) and np.isnan(out[1])
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]
