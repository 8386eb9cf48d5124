"""TF1's Barrier (`af.Barrier`): elements completed component by component, taken in
insertion order; take_many blocks asynchronously until enough are complete, close wakes it
with OutOfRangeError, the step's deadline and its own timeout end it; sharing by name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import actorflow as af
from actorflow.ops import data_flow_ops
from tests.test_queues import _Bg, _has_waits, _resource, _wait_for


@pytest.fixture(autouse=True)
def _fresh_graph() -> Any:
    with af.Graph().as_default() as g:
        yield g


def _barrier() -> tuple[Any, ...]:
    b = af.Barrier((af.float32, af.int64), shapes=((2,), ()), name="bar")
    keys = af.placeholder(af.string, (None,))
    x = af.placeholder(af.float32, (None, 2))
    y = af.placeholder(af.int64, (None,))
    return b, keys, x, y, b.insert_many(0, keys, x), b.insert_many(1, keys, y)


def test_elements_complete_by_component_and_leave_in_insertion_order() -> None:
    assert data_flow_ops.Barrier is af.Barrier
    b, keys, x, y, ins0, ins1 = _barrier()
    idx, kout, (xo, yo) = b.take_many(3)
    sizes = [b.ready_size(), b.incomplete_size()]
    with af.Session() as s:
        s.run(ins0, {keys: [b"a", b"b"], x: [[1, 1], [2, 2]]})        # insert call 0
        s.run(ins0, {keys: [b"c"], x: [[3, 3]]})                       # insert call 1
        assert s.run(sizes) == [0, 3]
        s.run(ins1, {keys: [b"c", b"b"], y: [30, 20]})                 # completes c, b
        assert s.run(sizes) == [2, 1]
        s.run(ins1, {keys: [b"a"], y: [10]})
        assert s.run(sizes) == [3, 0]
        i, k, xv, yv = s.run([idx, kout, xo, yo])
        # oldest insertion first (a and b came in call 0, c in call 1), whatever the order
        # in which they were completed
        assert list(k) == [b"a", b"b", b"c"]
        np.testing.assert_array_equal(i, [0, 0, 1])
        np.testing.assert_array_equal(xv, [[1, 1], [2, 2], [3, 3]])
        np.testing.assert_array_equal(yv, [10, 20, 30])
        assert s.run(sizes) == [0, 0]
        with pytest.raises(af.errors.InvalidArgumentError, match="already has component 0"):
            s.run(ins0, {keys: [b"d", b"d"], x: [[0, 0], [0, 0]]})
        with pytest.raises(af.errors.InvalidArgumentError, match=r"shape \(2,\)"):
            s.run(b.insert_many(0, ["e"], np.zeros((1, 3), np.float32)))
    with pytest.raises(af.errors.InvalidArgumentError, match="component_index 2"):
        b.insert_many(2, ["k"], [1])


def test_take_many_blocks_until_complete_then_close_wakes_with_out_of_range() -> None:
    b, keys, x, y, ins0, ins1 = _barrier()
    _, kout, (xo, yo) = b.take_many(2)
    c = af.constant(4.0) * 2.0
    with af.Session() as s:
        s.run(ins0, {keys: [b"p", b"q"], x: [[1, 2], [3, 4]]})
        bg = _Bg(s.run, [kout, yo])
        _wait_for(lambda: _has_waits(s, "bar"))
        (w,) = _resource(s, "bar").waits()
        assert w.op == "take_many" and "Barrier 'bar'" in w.resource
        assert s.run(c) == 8.0                      # the device runs other steps meanwhile
        s.run(ins1, {keys: [b"q"], y: [2]})         # one complete: still too few
        assert bg.t.is_alive() and s.run(b.ready_size()) == 1
        s.run(ins1, {keys: [b"p"], y: [1]})
        bg.join()
        assert bg.error is None
        assert list(bg.result[0]) == [b"p", b"q"] and list(bg.result[1]) == [1, 2]

        # a blocked take that can no longer be served wakes with OutOfRange on close
        s.run(ins0, {keys: [b"r"], x: [[5, 6]]})
        bg = _Bg(s.run, kout)
        _wait_for(lambda: _has_waits(s, "bar"))
        s.run(b.close())
        # closed: no new keys, but the incomplete element may still be completed
        with pytest.raises(af.errors.CancelledError, match="no new key"):
            s.run(ins0, {keys: [b"new"], x: [[0, 0]]})
        s.run(ins1, {keys: [b"r"], y: [3]})
        bg.join()
        assert isinstance(bg.error, af.errors.OutOfRangeError)
        assert "closed" in str(bg.error)
        # a small batch of what is left, then OutOfRange
        small = b.take_many(5, allow_small_batch=True)[1]
        assert list(s.run(small)) == [b"r"]
        with pytest.raises(af.errors.OutOfRangeError, match="insufficient"):
            s.run(small)
        assert _resource(s, "bar").waits() == []


def test_close_with_cancel_pending_enqueues_drops_incomplete_elements() -> None:
    b, keys, x, y, ins0, ins1 = _barrier()
    with af.Session() as s:
        s.run(ins0, {keys: [b"a"], x: [[1, 1]]})
        bg = _Bg(s.run, b.take_many(1)[1])
        _wait_for(lambda: _has_waits(s, "bar"))
        s.run(b.close(cancel_pending_enqueues=True))
        bg.join()
        assert isinstance(bg.error, af.errors.OutOfRangeError)
        assert s.run(b.incomplete_size()) == 0
        with pytest.raises(af.errors.CancelledError, match="cancel_pending_enqueues"):
            s.run(ins1, {keys: [b"a"], y: [1]})


def test_step_deadline_and_timeout_end_a_blocked_take_and_the_session_stays_usable() -> None:
    b, keys, x, y, ins0, ins1 = _barrier()
    take = b.take_many(1)[1]
    timed = b.take_many(1, timeout=50)[1]
    with af.Session() as s:
        opts = af.RunOptions(timeout_in_ms=100)
        with pytest.raises(af.errors.DeadlineExceededError):
            s.run(take, options=opts)
        with pytest.raises(af.errors.DeadlineExceededError, match="timed out after 50 ms"):
            s.run(timed)
        assert _resource(s, "bar").waits() == []
        s.run(ins0, {keys: [b"k"], x: [[1, 1]]})
        s.run(ins1, {keys: [b"k"], y: [1]})
        assert list(s.run(take)) == [b"k"]


def test_barrier_is_shared_by_name_between_sessions_of_a_server() -> None:
    server = af.Server.create_local_server()
    try:
        graphs = [af.Graph(), af.Graph()]
        ops = []
        for g in graphs:
            with g.as_default():
                b = af.Barrier([af.int32], shapes=[()], shared_name="shared_bar")
                ops.append((b.insert_many(0, ["a", "b"], [1, 2]), b.take_many(2)))
        with af.Session(server.target, graph=graphs[0]) as s0, \
                af.Session(server.target, graph=graphs[1]) as s1:
            s0.run(ops[0][0])
            _, k, (v,) = s1.run(ops[1][1])
            assert list(k) == [b"a", b"b"] and list(v) == [1, 2]
    finally:
        server.stop()
