"""The fused ops of a folded synchronous replica step (`actorflow.train.sync_replicas_ops`):
one kernel for the arrival and every apply, one for the leader's takes, and the wait in
which the leader releases its step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import actorflow as af
from actorflow.ops.accumulator_ops import CONTRIBUTOR, LEADER, STALE
from actorflow.train import sync_replicas_ops as ops


def _parts(k: int = 2) -> Any:
    g = af.Graph()
    with g.as_default():
        accs = [af.ConditionalAccumulator(af.float32, shape=(3,), shared_name="a"),
                af.ConditionalAccumulator(af.float32, shape=(2, 2), shared_name="b")]
        gate = af.SyncGate(k, k, shared_name="gate")
        step = af.placeholder(af.int64, ())
        grads = [af.placeholder(af.float32, None), af.placeholder(af.float32, (2, 2))]
        role, leader = ops.arrive_apply(gate.handle, step, accs, grads)
        takes = ops.take_gradients(accs, k)
        wait = ops.wait(gate.handle, step, role)
        init = af.group(*[a.set_global_step(0) for a in accs], gate.set_step(0))
        counters = [a.counters() for a in accs] + [gate.counters()]
    return g, step, grads, role, leader, takes, wait, init, counters


def test_arrival_applies_every_gradient_and_the_leader_takes_their_means() -> None:
    g, step, (ga, gb), role, leader, takes, wait, init, counters = _parts(2)
    with af.Session(graph=g) as s:
        s.run(init)
        a = [np.array([1, 2, 3], np.float32), np.array([3, 4, 5], np.float32)]
        b = [np.ones((2, 2), np.float32), 3 * np.ones((2, 2), np.float32)]
        r0 = s.run([role, leader], {step: 0, ga: a[0], gb: b[0]})
        r1 = s.run([role, leader], {step: 0, ga: a[1], gb: b[1]})
        assert [int(r0[0]), bool(r0[1]), int(r1[0]), bool(r1[1])] == \
            [CONTRIBUTOR, False, LEADER, True]
        # a third arrival for the step is STALE: both accumulators drop its gradients
        r2 = s.run(role, {step: 0, ga: a[0], gb: b[0]})
        assert int(r2) == STALE
        ta, tb = s.run(takes)
        np.testing.assert_allclose(ta, [2, 3, 4])
        np.testing.assert_allclose(tb, 2 * np.ones((2, 2)))
        # the leader's wait releases the step: the gate moves to 1 and so does the answer
        assert int(s.run(wait, {role: LEADER, step: 0})) == 1
        acc_a, acc_b, gate = s.run(counters)
        assert acc_a.tolist() == [2, 1, 2, 1] and acc_b.tolist() == [2, 1, 2, 1]
        assert gate.tolist()[:3] == [1, 1, 1]  # step, late, steps released


def test_a_wrong_gradient_fails_before_its_arrival_counts() -> None:
    g, step, (ga, gb), role, leader, takes, wait, init, counters = _parts(2)
    with af.Session(graph=g) as s:
        s.run(init)
        with pytest.raises(af.errors.InvalidArgumentError, match=r"shape \(4,\)"):
            s.run(role, {step: 0, ga: np.zeros(4, np.float32), gb: np.zeros((2, 2),
                                                                             np.float32)})
        good = {step: 0, ga: np.zeros(3, np.float32), gb: np.zeros((2, 2), np.float32)}
        # had the failed arrival counted, the first of these would lead the step
        assert [int(s.run(role, good)), int(s.run(role, good))] == [CONTRIBUTOR, LEADER]
        acc_a, acc_b, _ = s.run(counters)
        assert acc_a.tolist()[:2] == [2, 0] and acc_b.tolist()[:2] == [2, 0]


def test_take_of_a_short_accumulator_fails_naming_it() -> None:
    g, step, (ga, gb), role, leader, takes, wait, init, counters = _parts(2)
    with af.Session(graph=g) as s:
        s.run(init)
        s.run(role, {step: 0, ga: np.zeros(3, np.float32), gb: np.zeros((2, 2), np.float32)})
        with pytest.raises(af.errors.InternalError, match="'a'.*fewer than the 2"):
            s.run(takes)


@pytest.mark.parametrize("momentum", [None, 0.5])
def test_folded_updates_average_every_step(momentum: float | None) -> None:
    """One replica contributing both gradients of each step (k=2 > n=1): GradientDescent
    runs in the fused step kernel, Momentum through the cond; both give the textbook
    update with the mean of the step's gradients."""
    lr = 0.5
    g = af.Graph()
    with g.as_default():
        w = af.Variable(np.zeros(3, np.float32), name="w")
        x = af.placeholder(af.float32, (3,))
        step = af.train.get_or_create_global_step()
        inner = af.train.GradientDescentOptimizer(lr) if momentum is None else \
            af.train.MomentumOptimizer(lr, momentum)
        opt = af.train.SyncReplicasOptimizer(inner, 2, 1)
        train = opt.minimize(af.reduce_sum(w * x), global_step=step)
        hook = opt.make_session_run_hook(True)
        init = [af.global_variables_initializer(), af.local_variables_initializer()]
    assert (opt._gd_rate is not None) == (momentum is None)  # which path is under test
    xs = np.array([[1, 2, 3], [3, 2, 1], [2, 0, 0], [0, 4, 2]], np.float32)
    want, acc = np.zeros(3), np.zeros(3)
    with af.Session(graph=g) as s:
        s.run(init)
        hook.after_create_session(s)
        for i in range(0, 4, 2):  # two global steps, two gradients each
            hook.run(s, train, {x: xs[i]})
            hook.run(s, train, {x: xs[i + 1]})
            mean = xs[i:i + 2].mean(axis=0)  # d(sum(w * x))/dw = x
            acc = mean if momentum is None else momentum * acc + mean
            want = want - lr * acc
            np.testing.assert_allclose(s.run(w), want, rtol=1e-6)
            assert int(s.run(step)) == i // 2 + 1
        assert hook.leaders == 2
