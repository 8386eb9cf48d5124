"""What the session-8 audit against TensorFlow 2.21 found in training code, checked against
NumPy: ProximalAdagrad and AdagradDA (new), sparse updates that must touch only their rows
and count a repeated row once with its summed gradient (FTRL, ProximalGradientDescent), and
gradients with respect to a constant (af.gradients(y, [c]) was None when c fed a binary op)."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af

RNG = np.random.default_rng(11)
W0 = RNG.uniform(-1, 1, (5, 3)).astype(np.float32)
IDS = np.int32([0, 2, 2, 4])
TARGET = 0.3


def _train(make_opt, sparse: bool, steps: int = 4) -> np.ndarray:
    with af.Graph().as_default():
        w = af.Variable(W0)
        gs = af.train.get_or_create_global_step()
        if sparse:
            loss = af.reduce_sum(af.square(af.nn.embedding_lookup(w, IDS) - TARGET))
        else:
            loss = af.reduce_sum(af.square(w - TARGET))
        train = make_opt(gs).minimize(loss, global_step=gs)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            for _ in range(steps):
                s.run(train)
            return s.run(w)


def _grads(w: np.ndarray, sparse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rows, summed gradient per row) of the loss above at w."""
    if not sparse:
        return np.arange(len(w)), 2 * (w - TARGET)
    rows = np.unique(IDS)
    g = np.zeros((len(rows), w.shape[1]), np.float64)
    for i in IDS:
        g[np.searchsorted(rows, i)] += 2 * (w[i] - TARGET)
    return rows, g


def _shrink(x, by):
    return np.sign(x) * np.maximum(np.abs(x) - by, 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_proximal_adagrad_matches_its_formula(sparse: bool) -> None:
    lr, l1, l2 = 0.1, 0.01, 0.02
    got = _train(lambda gs: af.train.ProximalAdagradOptimizer(
        lr, l1_regularization_strength=l1, l2_regularization_strength=l2), sparse)
    w, acc = W0.astype(np.float64), np.full(W0.shape, 0.1)
    for _ in range(4):
        rows, g = _grads(w, sparse)
        acc[rows] += g * g
        lr_t = lr / np.sqrt(acc[rows])
        w[rows] = _shrink(w[rows] - lr_t * g, lr_t * l1) / (1 + lr_t * l2)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_adagrad_da_matches_its_formula(sparse: bool) -> None:
    lr, l1, l2 = 0.1, 0.01, 0.02
    got = _train(lambda gs: af.train.AdagradDAOptimizer(
        lr, gs, l1_regularization_strength=l1, l2_regularization_strength=l2), sparse)
    w, ga, gg = W0.astype(np.float64), np.zeros(W0.shape), np.full(W0.shape, 0.1)
    for step in range(4):
        rows, g = _grads(w, sparse)
        t = step + 1
        ga[rows] += g
        gg[rows] += g * g
        w[rows] = -_shrink(ga[rows], l1 * t) * lr / (l2 * t * lr + np.sqrt(gg[rows]))
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_sparse_proximal_gd_moves_only_its_rows_once_per_row() -> None:
    lr, l1, l2 = 0.1, 0.05, 0.1
    got = _train(lambda gs: af.train.ProximalGradientDescentOptimizer(
        lr, l1_regularization_strength=l1, l2_regularization_strength=l2), True)
    w = W0.astype(np.float64)
    for _ in range(4):
        rows, g = _grads(w, True)
        w[rows] = _shrink(w[rows] - lr * g, lr * l1) / (1 + lr * l2)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[[1, 3]], W0[[1, 3]])  # rows without a gradient


def test_sparse_ftrl_sums_a_repeated_row_first() -> None:
    def ftrl(gs):
        return af.train.FtrlOptimizer(0.1, l1_regularization_strength=0.01,
                                      l2_regularization_strength=0.01)
    got = _train(ftrl, True)
    w, acc, lin = W0.astype(np.float64), np.full(W0.shape, 0.1), np.zeros(W0.shape)
    for _ in range(4):
        rows, g = _grads(w, True)
        a_new = acc[rows] + g * g
        lin[rows] += g - (np.sqrt(a_new) - np.sqrt(acc[rows])) / 0.1 * w[rows]
        acc[rows] = a_new
        quad = np.sqrt(a_new) / 0.1 + 2 * 0.01
        lr_ = lin[rows]
        w[rows] = np.where(np.abs(lr_) > 0.01, (0.01 * np.sign(lr_) - lr_) / quad, 0.0)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_gradients_with_respect_to_constants() -> None:
    c = np.float32([[1.0, -2.0, 3.0]])
    with af.Graph().as_default():
        x = af.constant(c)
        y = af.constant(np.float32([[0.5, 0.5, 0.5]]))
        loss = af.losses.mean_squared_error(y, x)
        gx, gy = af.gradients(loss, [x, y])
        gm = af.gradients(af.reduce_sum(x * y - y), [x, y])
        assert gx is not None and gy is not None
        with af.Session() as s:
            gx_, gy_, gm_ = s.run([gx, gy, gm])
    np.testing.assert_allclose(gx_, 2 * (c - 0.5) / 3, rtol=1e-6)
    np.testing.assert_allclose(gy_, -2 * (c - 0.5) / 3, rtol=1e-6)
    np.testing.assert_allclose(gm_[0], [[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(gm_[1], c - 1)
