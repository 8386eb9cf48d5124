"""float32 tanh by our own rational approximation (devices.kernels.fast_tanh): accuracy
against the float64 tanh, edge values, and the same bits whatever the array's size, layout
or block."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from devices.kernels import fast_tanh


def _edges() -> np.ndarray:
    f32 = np.finfo(np.float32)
    return np.float32([0.0, -0.0, f32.tiny, -f32.tiny, 1e-40, -1e-45, 3e-4, 4e-4, 5e-4, 1e-3,
                       0.5, -0.5, 1.0, 7.9, fast_tanh.CLAMP, 8.0, -9.0, 20.0, 1e30, -1e30,
                       f32.max, -f32.max, np.inf, -np.inf, np.nan])


def test_accuracy_against_float64_tanh_over_the_float32_line():
    x = np.concatenate([np.linspace(-12, 12, 400_001, dtype=np.float32),
                        np.geomspace(1e-45, 12, 50_001).astype(np.float32),
                        -np.geomspace(1e-45, 12, 50_001).astype(np.float32)])
    got = fast_tanh.tanh(x)
    want = np.tanh(x.astype(np.float64))
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    assert got.dtype == np.float32
    assert rel.max() < 5e-7, (rel.max(), x[rel.argmax()])
    assert np.all(np.abs(got) <= 1)


def test_edge_values():
    x = _edges()
    got = fast_tanh.tanh(x)
    assert np.signbit(got[1]) and got[0] == 0 and not np.signbit(got[0])
    small = np.abs(x) < fast_tanh.TINY
    np.testing.assert_array_equal(got[small], x[small])  # denormals and tiny |x|: x itself
    big = np.isfinite(x) & (np.abs(x) >= fast_tanh.CLAMP)
    np.testing.assert_array_equal(got[big], np.sign(x[big]))
    assert got[x == np.inf][0] == 1 and got[x == -np.inf][0] == -1
    assert np.isnan(got[-1])
    assert abs(got[x == 0.5][0] - np.tanh(0.5)) < 1e-7


def test_same_bits_for_any_size_layout_block_or_scalar():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(4099) * 4).astype(np.float32)
    x[:25] = _edges()
    whole = fast_tanh.tanh(x)
    for off, n in ((0, 1), (3, 7), (5, 17), (1, 100), (9, 4000)):
        part = x[off:off + n]
        out = np.empty_like(part)
        inplace = part.copy()
        for got in (fast_tanh.tanh(part), fast_tanh.tanh(part, out=out),
                    fast_tanh.tanh(inplace, out=inplace)):
            np.testing.assert_array_equal(got, whole[off:off + n])
    np.testing.assert_array_equal(fast_tanh.tanh(x[::3]), whole[::3])
    m = x[:4000].reshape(40, 100)
    np.testing.assert_array_equal(fast_tanh.tanh(m.T), whole[:4000].reshape(40, 100).T)
    # matrices take the loops' direct entries: new, into an out, in place, from read-only
    want = whole[:4000].reshape(40, 100)
    out = np.empty_like(m)
    inplace = m.copy()
    frozen = m.copy()
    frozen.flags.writeable = False
    for got in (fast_tanh.tanh(m), fast_tanh.tanh(m, out=out),
                fast_tanh.tanh(inplace, out=inplace), fast_tanh.tanh(frozen)):
        np.testing.assert_array_equal(got, want)
    # a read-only or wrongly shaped out is refused as NumPy refuses it, never written
    with pytest.raises((ValueError, TypeError)):
        fast_tanh.tanh(m, out=frozen)
    np.testing.assert_array_equal(frozen, m)
    with pytest.raises((ValueError, TypeError)):
        fast_tanh.tanh(m, out=np.empty((10, 100), np.float32))
    scalars = [fast_tanh.tanh(v) for v in x[:200]]
    assert all(type(s) is np.float32 for s in scalars)
    np.testing.assert_array_equal(np.array(scalars), whole[:200])
    assert fast_tanh.tanh(np.array(x[7])).shape == ()
    # other dtypes are NumPy's
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(fast_tanh.tanh(x64), np.tanh(x64))


def test_tanh_op_fused_and_unfused_agree_bit_for_bit():
    x_np = (np.random.default_rng(4).standard_normal((300, 7)) * 3).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (300, 7))
        y = af.tanh(af.tanh(x) * 1.5 + 0.25)
        t = af.tanh(x)
    off = af.ConfigProto(graph_options=af.GraphOptions(
        optimizer_options=af.OptimizerOptions(False, False)))
    with af.Session(graph=g) as s, af.Session(graph=g, config=off) as s0:
        fused, single = s.run([y, t], {x: x_np})
        unfused = s0.run(y, {x: x_np})
    np.testing.assert_array_equal(fused, unfused)
    np.testing.assert_array_equal(single, fast_tanh.tanh(x_np))
    np.testing.assert_allclose(single, np.tanh(x_np), rtol=5e-7, atol=0)


def test_tanh_grad_one_pass_equals_numpys_three_passes():
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((64, 33)).astype(np.float32)
    dy_np = rng.standard_normal((64, 33)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (64, 33))
        dy = af.placeholder(af.float32, (64, 33))
        y = af.tanh(x)
        (gx,) = af.gradients(y, [x], grad_ys=[dy])
    with af.Session(graph=g) as s:
        y_v, gx_v = s.run([y, gx], {x: x_np, dy: dy_np})
    want = np.multiply(np.subtract(np.float32(1), np.multiply(y_v, y_v)), dy_np)
    np.testing.assert_array_equal(gx_v, want)


def test_the_scaled_evaluation_has_the_plain_fractions_bits():
    """f32_loops.tanh_one evaluates the fraction from x*x with power-of-two scaled
    coefficients; it must give the bits of the plain evaluation in h = x/2 (fast_tanh's
    docstring), here recompiled as written there, on random bit patterns and the edges."""
    import numba

    from devices.kernels.fast_tanh import CLAMP, P, Q

    f = np.float32
    p0, p1, p2, p3 = (f(v) for v in P)
    q0, q1, q2, q3 = (f(v) for v in Q)
    clamp, one, half = f(CLAMP), f(1.0), f(0.5)

    @numba.njit(numba.void(numba.float32[::1], numba.float32[::1]), fastmath={"contract"},
                error_model="numpy")
    def plain_into(x, out):  # pragma: no cover - runs compiled
        for i in range(x.shape[0]):
            c = min(max(x[i], -clamp), clamp)
            h = c * half
            z = h * h
            p = ((z * p3 + p2) * z + p1) * z + p0
            q = ((z * q3 + q2) * z + q1) * z + q0
            hp = h * p
            r = (c * p * q) / (q * q + hp * hp)
            out[i] = min(max(r, -one), one)

    bits = np.random.default_rng(3).integers(0, 2 ** 32, 1 << 18, dtype=np.uint64)
    x = np.concatenate([bits.astype(np.uint32).view(np.float32), _edges(),
                        np.linspace(-11, 11, 100_001, dtype=np.float32)])
    want = np.empty_like(x)
    plain_into(x, want)
    got = fast_tanh.tanh(x)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


@pytest.mark.parametrize("shape", [(7,), (4, 6), (2, 3, 4)])
@pytest.mark.parametrize("transposed", [False, True])
def test_tanh_grad_kernel_on_every_rank_and_layout(shape, transposed):
    """Rank 1-2 C-contiguous float32 take the compiled pass, anything else (rank 3, a
    transposed view, float64) NumPy's: the same bits either way."""
    from actorflow.op_def import apply_op

    rng = np.random.default_rng(len(shape))
    for dtype in (np.float32, np.float64):
        y_np = np.tanh(rng.standard_normal(shape)).astype(dtype)
        dy_np = rng.standard_normal(shape[::-1] if transposed else shape).astype(dtype)
        with af.Graph().as_default():
            y = af.placeholder(dtype, y_np.shape)
            dy = af.placeholder(dtype, dy_np.shape)
            yy = af.transpose(y) if transposed else y
            (g,) = apply_op("TanhGrad", [yy, dy])
            with af.Session() as s:
                got = s.run(g, {y: y_np, dy: dy_np})
        y_used = y_np.T if transposed else y_np
        want = np.multiply(np.subtract(dtype(1), np.multiply(y_used, y_used)), dy_np)
        np.testing.assert_array_equal(got, want)
