"""Conditional accumulators: averaging, stale gradients dropped and counted, blocking take
woken by the completing apply, by close, and the sparse variant."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

import actorflow as af


@pytest.fixture(autouse=True)
def _fresh_graph() -> Any:
    with af.Graph().as_default() as g:
        yield g


def _waits(s: af.Session, name: str) -> list:
    try:
        return s._runtime.devices[0].resources.lookup("", name).waits()
    except af.errors.NotFoundError:
        return []


def _wait_for(cond: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.002)


def test_mean_of_fresh_gradients_and_stale_dropped() -> None:
    rng = np.random.default_rng()
    g = af.placeholder(af.float32, (3,))
    step = af.placeholder(af.int64, ())
    acc = af.ConditionalAccumulator(af.float32, shape=(3,), shared_name="acc")
    apply = acc.apply_grad(g, local_step=step)
    take = acc.take_grad(2)
    grads = rng.standard_normal((4, 3)).astype(np.float32)
    with af.Session() as s:
        assert s.run(apply.outputs[0], {g: grads[0], step: 0})
        assert s.run(apply.outputs[0], {g: grads[1], step: 0})
        assert s.run(acc.num_accumulated()) == 2
        np.testing.assert_allclose(s.run(take), grads[:2].mean(0), rtol=1e-6)
        # now at step 1: a step-0 gradient is stale
        assert not s.run(apply.outputs[0], {g: grads[2], step: 0})
        assert s.run(acc.num_accumulated()) == 0
        s.run(apply, {g: grads[3], step: 1})
        s.run(apply, {g: grads[2], step: 5})
        np.testing.assert_allclose(s.run(take), grads[2:].mean(0), rtol=1e-6)
        applied, dropped, taken, gstep = s.run(acc.counters())
        assert (applied, dropped, taken, gstep) == (4, 1, 4, 2)
        s.run(acc.set_global_step(10))
        assert not s.run(apply.outputs[0], {g: grads[0], step: 9})


def test_take_blocks_until_enough_then_close_ends_it() -> None:
    g = af.placeholder(af.float32, ())
    acc = af.ConditionalAccumulator(af.float32, shape=(), shared_name="acc", reduction_type="SUM")
    apply = acc.apply_grad(g, 0)
    take = acc.take_grad(3)
    out: list[Any] = []
    with af.Session() as s:
        t = threading.Thread(target=lambda: out.append(s.run(take)), daemon=True)
        t.start()
        _wait_for(lambda: len(_waits(s, "acc")) == 1)
        (w,) = _waits(s, "acc")
        assert w.op == "take_grad" and "ConditionalAccumulator 'acc'" in w.resource
        for v in (1.0, 2.0, 4.0):
            s.run(apply, {g: v})
        t.join(20)
        assert out == [7.0]
        errs: list[Any] = []

        def blocked() -> None:
            try:
                s.run(take)
            except af.errors.OpError as e:
                errs.append(e)
        t = threading.Thread(target=blocked, daemon=True)
        t.start()
        _wait_for(lambda: len(_waits(s, "acc")) == 1)
        s.run(acc.close())
        t.join(20)
        assert len(errs) == 1 and isinstance(errs[0], af.errors.OutOfRangeError)
        assert _waits(s, "acc") == []


def test_sparse_accumulator_averages_rows() -> None:
    acc = af.SparseConditionalAccumulator(af.float32, shape=(5, 2), shared_name="sacc")
    idx = af.placeholder(af.int64, (None,))
    val = af.placeholder(af.float32, (None, 2))
    step = af.placeholder(af.int64, ())
    apply = acc.apply_grad(idx, val, local_step=step)
    sl = acc.take_indexed_slices_grad(2)
    with af.Session() as s:
        s.run(apply, {idx: [0, 3], val: [[1, 1], [2, 2]], step: 0})
        s.run(apply, {idx: [3, 4], val: [[4, 4], [6, 6]], step: 0})
        s.run(apply, {idx: [1], val: [[9, 9]], step: -1})  # stale
        i, v, shape = s.run([sl.indices, sl.values, sl.dense_shape])
        np.testing.assert_array_equal(i, [0, 3, 4])
        np.testing.assert_allclose(v, [[0.5, 0.5], [3, 3], [3, 3]])
        np.testing.assert_array_equal(shape, [5, 2])
        assert s.run(acc.counters())[1] == 1


def test_watched_waiters_are_called_once_the_resource_lock_is_let_go() -> None:
    """A watched waiter's on_done runs on the completing thread after the resource's lock is
    released (it may cancel other waits of its step on the same resource), exactly once, in
    the order the waiters completed; a cancelled one gets its error the same way."""
    from devices.accumulators import Accumulator, SyncGate
    from devices.errors import CancelledError
    from devices.waits import Wait, Waiter

    gate = SyncGate("g", 1, 1, "/cpu:0")
    seen: list[tuple[Any, Any, bool]] = []

    def on_done(w: Waiter) -> None:
        seen.append((w.result, type(w.error).__name__ if w.error else None,
                     gate._lock._lock.locked()))

    ws = [Waiter(Wait("wait_for_step", gate.describe(), f"n{t}", "/cpu:0", 1), t, on_done)
          for t in (1, 2, 2)]
    for w in ws:
        gate.register(w)
    assert seen == [] and len(gate.waits()) == 3
    assert gate.release() == 1
    assert seen == [(1, None, False)]
    gate.cancel(ws[2], CancelledError("aborted"))
    assert seen[1:] == [(None, "CancelledError", False)]
    assert gate.release() == 2
    assert seen[2:] == [(2, None, False)] and gate.waits() == []
    gate.cancel(ws[1], CancelledError("late"))  # completed already: nothing more
    assert len(seen) == 3

    acc = Accumulator("a", np.float32, (), "SUM", "/cpu:0")
    got: list[Any] = []
    w = Waiter(Wait("take_grad", acc.describe(), "t", "/cpu:0", 1), 2,
               lambda w: got.append((float(w.result), acc._lock._lock.locked())))
    acc.register(w)
    acc.apply(np.float32(1.5), 0)
    assert got == []
    acc.apply(np.float32(2.0), 0)  # completes the take inside apply's lock
    assert got == [(3.5, False)] and acc.global_step == 1
