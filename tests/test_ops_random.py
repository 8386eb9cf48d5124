"""Random ops: distributions checked statistically over 100k draws, bounds, dtypes, the seed
rules (a rebuilt graph with a graph seed repeats itself, successive runs differ, unseeded
graphs differ), run-time shapes, and that the ops are neither folded nor merged."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af

N = 100_000


def draw(t, runs=1, feeds=None, graph=None):
    with af.Session(graph=graph or af.get_default_graph()) as s:
        out = [s.run(t, feeds or {}) for _ in range(runs)]
    return out[0] if runs == 1 else out


@pytest.fixture(autouse=True)
def _fresh_graph():
    g = af.Graph()
    with g.as_default():
        yield g


# ---- distributions ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [af.float32, af.float64])
def test_normal_moments(dtype):
    x = draw(af.random_normal((N,), mean=3.0, stddev=2.0, dtype=dtype))
    assert x.dtype == dtype.np and x.shape == (N,)
    assert abs(x.mean() - 3.0) < 0.03  # standard error 2/sqrt(N) = 0.0063
    assert abs(x.std() - 2.0) < 0.03
    z = draw(af.random_normal((400, 250)))
    assert z.shape == (400, 250) and abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6827) < 0.01


def test_normal_half_precision():
    for dt in (af.float16, af.bfloat16):
        x = draw(af.random_normal((N,), dtype=dt, stddev=0.5))
        assert x.dtype == dt.np
        x = x.astype(np.float64)
        assert abs(x.mean()) < 0.02 and abs(x.std() - 0.5) < 0.02


def test_uniform_float_range_and_moments():
    x = draw(af.random_uniform((N,), minval=-2.0, maxval=3.0))
    assert x.dtype == np.float32
    assert x.min() >= -2.0 and x.max() < 3.0
    assert abs(x.mean() - 0.5) < 0.03  # sd 5/sqrt(12N) = 0.0046
    assert abs(x.var() - 25.0 / 12.0) < 0.05
    hist, _ = np.histogram(x, bins=10, range=(-2.0, 3.0))
    assert hist.min() > 0.09 * N and hist.max() < 0.11 * N
    u = draw(af.random_uniform((N,), dtype=af.float64))
    assert u.dtype == np.float64 and 0.0 <= u.min() and u.max() < 1.0


@pytest.mark.parametrize("dtype", [af.float16, af.bfloat16, af.float32])
def test_uniform_never_reaches_maxval(dtype):
    # in float16, 4 + r rounds to 5 for about 1 draw in 500: the kernel must clamp
    x = draw(af.random_uniform((N,), minval=4.0, maxval=5.0, dtype=dtype)).astype(np.float64)
    assert x.min() >= 4.0 and x.max() < 5.0
    assert x.max() > 4.9


@pytest.mark.parametrize("dtype", [af.int32, af.int64, af.uint8])
def test_uniform_int(dtype):
    lo, hi = (3, 13) if dtype is af.uint8 else (-5, 5)
    x = draw(af.random_uniform((N,), minval=lo, maxval=hi, dtype=dtype))
    assert x.dtype == dtype.np
    assert x.min() == lo and x.max() == hi - 1
    counts = np.bincount((x.astype(np.int64) - lo), minlength=hi - lo)
    expected = N / (hi - lo)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 40.0  # 9 degrees of freedom: p < 1e-5


def test_truncated_normal():
    x = draw(af.truncated_normal((N,), mean=1.0, stddev=3.0, dtype=af.float64))
    assert np.abs(x - 1.0).max() <= 6.0
    assert abs(x.mean() - 1.0) < 0.04
    assert abs(x.std() - 3.0 * 0.87962566) < 0.04  # sd of N(0,1) truncated at +-2
    # the tails were redrawn, not clipped: no pile-up at the bounds
    assert np.mean(np.abs(x - 1.0) > 5.9) < 0.005


def test_shuffle_and_categorical():
    v = np.arange(20).reshape(10, 2)
    s = draw(af.random_shuffle(af.constant(v)))
    assert sorted(s[:, 0].tolist()) == list(range(0, 20, 2))
    np.testing.assert_array_equal(s[:, 1], s[:, 0] + 1)  # rows move whole
    logits = np.log(np.array([[0.2, 0.5, 0.3], [1.0, 1e-9, 1e-9]]))
    c = draw(af.random.categorical(af.constant(logits), 20_000))
    assert c.shape == (2, 20_000) and c.dtype == np.int64
    np.testing.assert_allclose(np.bincount(c[0], minlength=3) / 20_000, [0.2, 0.5, 0.3],
                               atol=0.02)
    assert (c[1] == 0).all()


# ---- seeds ------------------------------------------------------------------------------
def _seeded_graph(seed, op_seed=None):
    g = af.Graph()
    with g.as_default():
        if seed is not None:
            af.set_random_seed(seed)
        a = af.random_normal((5,), seed=op_seed)
        b = af.random_uniform((3,), maxval=100, dtype=af.int32)
        c = af.truncated_normal((4,))
    return g, [a, b, c]


def test_graph_seed_makes_rebuilt_graphs_repeat():
    g1, t1 = _seeded_graph(7)
    g2, t2 = _seeded_graph(7)
    g3, t3 = _seeded_graph(8)
    r1 = draw(t1, runs=2, graph=g1)
    r2 = draw(t2, runs=2, graph=g2)
    r3 = draw(t3, runs=1, graph=g3)
    for a, b in zip(r1[0] + r1[1], r2[0] + r2[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(r1[0][0], r1[1][0])  # successive runs differ
    assert not np.array_equal(r1[0][0], r3[0])     # another graph seed differs


def test_op_seed_alone_repeats_and_no_seed_differs():
    g1, t1 = _seeded_graph(None, op_seed=3)
    g2, t2 = _seeded_graph(None, op_seed=3)
    np.testing.assert_array_equal(draw(t1[0], graph=g1), draw(t2[0], graph=g2))
    g3, t3 = _seeded_graph(None)
    g4, t4 = _seeded_graph(None)
    assert not np.array_equal(draw(t3[0], graph=g3), draw(t4[0], graph=g4))


def test_stream_continues_across_fetch_sets_and_restarts_in_new_session():
    af.set_random_seed(11)
    a = af.random_normal((4,))
    b = af.random_normal((4,))
    with af.Session() as s:
        first = s.run(a)
        second = s.run([a, b])[0]   # another call signature: another executable
        third = s.run(a)
    assert not np.array_equal(first, second) and not np.array_equal(second, third)
    with af.Session() as s:
        np.testing.assert_array_equal(s.run(a), first)


def test_random_ops_are_not_merged_or_folded():
    a = af.random_normal((6,), seed=1)
    b = af.random_normal((6,), seed=2)
    c = a + 0.0
    va, vb, vc = draw([a, b, c])
    assert not np.array_equal(va, vb)
    np.testing.assert_array_equal(va, vc)  # one draw per step, shared by its consumers
    x = af.random_uniform((3,), seed=5) * 2.0   # all inputs constant: still drawn each step
    r = draw(x, runs=2)
    assert not np.array_equal(r[0], r[1])


# ---- shapes, tensor arguments, gradients ---------------------------------------------------
def test_shape_known_at_run_time():
    x = af.placeholder(af.float32, (None, 3))
    n = af.random_normal(af.shape(x))
    u = af.random_uniform([af.shape(x)[0], 2], maxval=4, dtype=af.int64)
    assert n.shape == (None, 3) and u.shape == (None, 2)  # what is static shows
    vn, vu = draw([n, u], feeds={x: np.zeros((5, 3), np.float32)})
    assert vn.shape == (5, 3) and vu.shape == (5, 2)
    assert af.random_normal(af.TensorShape([2, 3])).shape == (2, 3)
    assert draw(af.random_uniform(())).shape == ()
    assert draw(af.random_normal((0, 3))).shape == (0, 3)


def test_tensor_mean_stddev_and_bounds_get_gradients():
    mean = af.placeholder(af.float64, ())
    std = af.placeholder(af.float64, ())
    x = af.random_normal((N,), mean=mean, stddev=std, dtype=af.float64, seed=4)
    gm, gs = af.gradients(af.reduce_sum(x), [mean, std])
    vx, vgm, vgs = draw([x, gm, gs], feeds={mean: -1.0, std: 0.5})
    assert abs(vx.mean() + 1.0) < 0.01 and abs(vx.std() - 0.5) < 0.01
    assert vgm == N
    np.testing.assert_allclose(vgs, ((vx + 1.0) / 0.5).sum(), rtol=1e-9, atol=1e-6)
    lo = af.placeholder(af.float32, ())
    u = draw(af.random_uniform((N,), minval=lo, maxval=5.0), feeds={lo: 4.0})
    assert u.min() >= 4.0 and u.max() <= 5.0  # as TF: graph ops, rounding may reach maxval
    hi = af.placeholder(af.int32, ())
    iu = af.random_uniform((N,), maxval=hi, dtype=af.int32)
    v = draw(iu, feeds={hi: 3})
    assert set(np.unique(v).tolist()) == {0, 1, 2}
    with pytest.raises(af.InvalidArgumentError, match="minval < maxval"):
        draw(iu, feeds={hi: 0})
    assert af.gradients(af.reduce_sum(af.random_normal((3,))), [af.random_normal((3,))]) \
        == [None]


def test_errors():
    with pytest.raises(af.InvalidArgumentError, match="needs maxval"):
        af.random_uniform((3,), dtype=af.int32)
    with pytest.raises(af.InvalidArgumentError, match=r"minval < maxval, got \[5, 5\)"):
        af.random_uniform((3,), minval=5, maxval=5, dtype=af.int32)
    with pytest.raises(af.InvalidArgumentError, match="does not fit uint8"):
        af.random_uniform((3,), maxval=300, dtype=af.uint8)
    with pytest.raises(af.InvalidArgumentError, match="makes floats; dtype int32"):
        af.random_normal((3,), dtype=af.int32)
    with pytest.raises(af.InvalidArgumentError, match="negative dimension"):
        af.random_normal((3, -1))
    with pytest.raises(af.InvalidArgumentError, match="not fully known"):
        af.random_normal(af.TensorShape([None, 3]))
    with pytest.raises(af.InvalidArgumentError, match="1-D int tensor"):
        af.random_normal(af.placeholder(af.float32, (2,)))
