"""Session 9 (s9api): random_gamma / random_poisson (shapes, moments, seeds), the
orthogonal and identity initializers, bitwise ops, bitcast, saturate_cast, rint, and
assign(validate_shape=False) changing a variable's shape."""

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import run_op


def test_random_gamma_shapes_moments_and_seeds():
    with af.Graph().as_default():
        af.set_random_seed(1)
        g = af.random_gamma([20000], [1.0, 4.0], seed=2)
        gb = af.random_gamma([20000], 3.0, beta=[1.0, 2.0], seed=2)
        with af.Session() as s:
            a, b, a2 = s.run(g), s.run(gb), s.run(g)
    assert a.shape == (20000, 2) and b.shape == (20000, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a.mean(0), [1.0, 4.0], rtol=0.05)
    np.testing.assert_allclose(a.var(0), [1.0, 4.0], rtol=0.1)
    np.testing.assert_allclose(b.mean(0), [3.0, 1.5], rtol=0.05)  # rate beta
    assert (a > 0).all() and not np.array_equal(a, a2)  # each run draws anew
    with af.Graph().as_default():
        af.set_random_seed(1)
        g = af.random_gamma([20000], [1.0, 4.0], seed=2)
        with af.Session() as s:
            assert np.array_equal(s.run(g), a)  # the same seeds, the same draws


def test_random_poisson():
    p = run_op(lambda lam: af.random_poisson(lam, [30000], seed=4), [np.float32([0.5, 6.0])])
    assert p.shape == (30000, 2) and p.dtype == np.float32
    np.testing.assert_allclose(p.mean(0), [0.5, 6.0], rtol=0.05)
    assert (p == np.round(p)).all() and p.min() >= 0
    q = run_op(lambda: af.random_poisson(3.0, [5], dtype=af.int64, seed=1), [])
    assert q.dtype == np.int64 and q.shape == (5,)


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (2, 3, 5)])
def test_orthogonal_and_identity_initializers(shape):
    with af.Graph().as_default():
        v = af.get_variable("v", shape, initializer=af.orthogonal_initializer(2.0, seed=1))
        e = af.get_variable("e", [2, 3], initializer=af.initializers.identity(3.0))
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            a, b = s.run([v, e])
    m = a.reshape(-1, shape[-1])
    small = m @ m.T if m.shape[0] < m.shape[1] else m.T @ m
    np.testing.assert_allclose(small, 4.0 * np.eye(min(m.shape)), atol=1e-5)
    assert b.tolist() == [[3, 0, 0], [0, 3, 0]]


def test_bitwise_bitcast_saturate_rint():
    x, y = np.int32([5, -7, 12, 0, 255]), np.int32([3, 2, 10, 9, 1])
    outs = run_op(lambda a, b: [af.bitwise.bitwise_and(a, b), af.bitwise.bitwise_or(a, b),
                                af.bitwise.bitwise_xor(a, b), af.bitwise.invert(a),
                                af.bitwise.left_shift(a, b), af.bitwise.right_shift(a, b)],
                  [x, y])
    want = [x & y, x | y, x ^ y, ~x, x << y, x >> y]
    for got, w in zip(outs, want, strict=True):
        assert got.tolist() == w.tolist()
    assert run_op(lambda a: af.bitwise.left_shift(a, 40), [np.int32([1])]).tolist() == [
        np.int32(1) << 31]  # shift counts clamp to bits - 1, as TF's kernel
    f, i8 = run_op(lambda a, b: [af.bitcast(a, af.int32), af.bitcast(b, af.uint8)],
                   [np.float32([1.0, -2.0]), np.int32([1, 258])])
    assert f.tolist() == np.float32([1.0, -2.0]).view(np.int32).tolist()
    assert i8.shape == (2, 4) and i8.tolist() == [[1, 0, 0, 0], [2, 1, 0, 0]]
    back = run_op(lambda a: af.bitcast(a, af.int32), [np.uint8([[1, 0, 0, 0], [2, 1, 0, 0]])])
    assert back.tolist() == [1, 258]
    with pytest.raises(af.errors.InvalidArgumentError, match="last axis"):
        af.bitcast(af.constant(np.uint8([1, 2, 3])), af.int32)
    s8, s16 = run_op(lambda a, b: [af.saturate_cast(a, af.uint8), af.saturate_cast(b, af.int16)],
                     [np.float32([-300, 5.7, 300]), np.int32([70000, -70000, 5])])
    assert s8.tolist() == [0, 5, 255] and s16.tolist() == [32767, -32768, 5]
    r = run_op(lambda a: af.rint(a), [np.float32([0.5, 1.5, 2.5, -0.5, -1.7])])
    assert r.tolist() == [0, 2, 2, -0, -2]
    with pytest.raises(TypeError, match="integer"):
        af.bitwise.bitwise_and(af.constant([1.0]), af.constant([2.0]))


def test_assign_without_shape_validation_changes_the_shape():
    with af.Graph().as_default():
        v = af.Variable(np.zeros((2, 2), np.float32))
        a = af.assign(v, np.ones((3,), np.float32), validate_shape=False)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            s.run(a)
            assert s.run(v).tolist() == [1, 1, 1]
            assert s.run(v + 1.0).tolist() == [2, 2, 2]
            with pytest.raises(af.errors.InvalidArgumentError, match="shape"):
                s.run(af.assign(v, np.ones((4,), np.float32)))  # validated: refused


def test_random_gamma_gradient_is_the_reparameterization():
    """d sample / d alpha at fixed quantile u = F(x; alpha): against SciPy's inverse
    incomplete gamma, differenced in alpha."""
    from scipy import special
    alpha = np.float64([0.3, 1.0, 4.5])
    with af.Graph().as_default():
        a = af.constant(alpha)
        x = af.random_gamma([4], a, dtype=af.float64, seed=3)
        w = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
        g = af.gradients(af.reduce_sum(x * w), a)[0]
        with af.Session() as s:
            xv, gv = s.run([x, g])
    u = special.gammainc(alpha, xv)
    h = 1e-6
    dx = (special.gammaincinv(alpha + h, u) - special.gammaincinv(alpha - h, u)) / (2 * h)
    np.testing.assert_allclose(gv, (w * dx).sum(0), rtol=1e-4)
