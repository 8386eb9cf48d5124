"""The synchronous leader's compiled update (`devices.kernels.mean_update_loop`, used by
SyncReplicaStepGD): the same bits as the accumulator's mean then ResourceApplyGradientDescent's
two ufuncs, alone and in a folded SyncReplicasOptimizer step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import actorflow as af
from devices.kernels.accumulator import MEAN_UPDATE_LOOP


@pytest.fixture(scope="module")
def loop() -> Any:
    assert MEAN_UPDATE_LOOP.ready(120), "the compiled update loop did not load"
    return MEAN_UPDATE_LOOP.fn


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_loop_has_the_bits_of_mean_then_update(loop: Any, dt: Any, count: int) -> None:
    rng = np.random.default_rng(count)
    w = (rng.standard_normal(1000) * 10.0 ** rng.integers(-20, 20, 1000)).astype(dt)
    total = (rng.standard_normal(1000) * 3).astype(dt)
    lr = 0.1
    want = w.copy()
    mean = np.divide(total, dt(count))
    np.subtract(want, np.multiply(mean, np.asarray(lr, dt)), out=want)
    loop(w.copy(), total, dt(count), dt(lr), w)
    assert np.array_equal(w, want)


def test_folded_gd_step_has_the_unfused_bits(loop: Any) -> None:
    """One replica giving the 3 gradients of each step: the variables after two global steps
    are bit for bit the float32 sum, mean and update computed op by op."""
    lr, k = 0.1, 3
    g = af.Graph()
    with g.as_default():
        w = af.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), name="w")
        b = af.Variable(np.zeros(4, np.float32), name="b")
        x = af.placeholder(af.float32, (2, 3))
        step = af.train.get_or_create_global_step()
        opt = af.train.SyncReplicasOptimizer(af.train.GradientDescentOptimizer(lr), k, 1)
        train = opt.minimize(af.reduce_sum(af.matmul(x, w) + b), global_step=step)
        hook = opt.make_session_run_hook(True)
        init = [af.global_variables_initializer(), af.local_variables_initializer()]
    assert opt._gd_rate is not None  # the fused GradientDescent step is under test
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((6, 2, 3)).astype(np.float32) / 7
    want_w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    want_b = np.zeros(4, np.float32)
    alpha = np.asarray(lr, np.float32)
    with af.Session(graph=g) as s:
        s.run(init)
        hook.after_create_session(s)
        for i in range(0, 6, k):
            sum_w = sum_b = None
            for j in range(i, i + k):
                hook.run(s, train, {x: xs[j]})
                gw = xs[j].T @ np.ones((2, 4), np.float32)  # d/dw sum(x @ w + b)
                gb = np.full(4, 2, np.float32)
                sum_w = gw.copy() if sum_w is None else sum_w + gw
                sum_b = gb.copy() if sum_b is None else sum_b + gb
            want_w = want_w - np.divide(sum_w, np.float32(k)) * alpha
            want_b = want_b - np.divide(sum_b, np.float32(k)) * alpha
            got_w, got_b = s.run([w, b])
            np.testing.assert_allclose(got_w, want_w, rtol=1e-6)  # the textbook update,
            assert np.array_equal(got_b, want_b)  # and b's (exact products): the same bits
        assert int(s.run(step)) == 2 and hook.leaders == 2
