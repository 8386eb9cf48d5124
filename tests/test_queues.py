"""Queues as device resources: order, batching, blocking (asynchronously, on the device actor),
close, and the wait records a blocked kernel leaves for tools."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

import actorflow as af


@pytest.fixture(autouse=True)
def _fresh_graph() -> Any:
    with af.Graph().as_default() as g:
        yield g


def _resource(s: af.Session, name: str) -> Any:
    return s._runtime.devices[0].resources.lookup("", name)


def _wait_for(cond: Any, timeout: float = 10.0) -> None:
    """Poll a condition on in-process state with a bounded deadline."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


class _Bg:
    """Run a session call on a thread; keep its result or exception."""

    def __init__(self, fn: Any, *args: Any):
        self.result: Any = None
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self.t.start()

    def _run(self, fn: Any, *args: Any) -> None:
        try:
            self.result = fn(*args)
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def join(self, timeout: float = 20.0) -> None:
        self.t.join(timeout)
        assert not self.t.is_alive(), "background call did not finish"


def test_fifo_order_batches_and_names() -> None:
    rng = np.random.default_rng()
    data = rng.standard_normal((7, 3)).astype(np.float32)
    q = af.FIFOQueue(10, [af.float32, af.int64], shapes=[(3,), ()], names=["x", "i"])
    x = af.placeholder(af.float32, (None, 3))
    i = af.placeholder(af.int64, (None,))
    enq = q.enqueue_many({"x": x, "i": i})
    one = q.dequeue()
    many = q.dequeue_many(4)
    with af.Session() as s:
        s.run(enq, {x: data, i: np.arange(7)})
        assert s.run(q.size()) == 7
        got = s.run(one)
        np.testing.assert_array_equal(got["x"], data[0])
        assert got["i"] == 0
        got = s.run(many)
        np.testing.assert_array_equal(got["x"], data[1:5])
        np.testing.assert_array_equal(got["i"], [1, 2, 3, 4])
        s.run(q.close())
        assert s.run(q.is_closed())
        up = s.run(q.dequeue_up_to(5))
        np.testing.assert_array_equal(up["i"], [5, 6])
        with pytest.raises(af.errors.OutOfRangeError, match="is closed"):
            s.run(q.dequeue_up_to(5))
        with pytest.raises(af.errors.CancelledError, match="closed"):
            s.run(enq, {x: data, i: np.arange(7)})
    assert q.names == ["x", "i"] and q.dtypes == [af.float32, af.int64]


def test_blocked_dequeue_waits_on_the_actor_and_wakes_on_enqueue() -> None:
    q = af.FIFOQueue(4, [af.float32], shapes=[()])
    v = af.placeholder(af.float32, ())
    enq = q.enqueue(v)
    deq = q.dequeue()
    c = af.constant(5.0) * 2.0
    with af.Session() as s:
        bg = _Bg(s.run, deq)
        _wait_for(lambda: _has_waits(s, q.name))
        (w,) = _resource(s, "fifo_queue").waits()
        assert w.op == "dequeue" and w.node == "dequeue" and "FIFOQueue" in w.resource
        assert s.run(c) == 10.0  # the device runs other steps meanwhile
        s.run(enq, {v: 3.5})
        bg.join()
        assert bg.error is None and bg.result == 3.5
        assert _resource(s, "fifo_queue").waits() == []


def _has_waits(s: af.Session, name: str) -> bool:
    try:
        return bool(_resource(s, name).waits())
    except af.errors.NotFoundError:
        return False


def test_close_wakes_blocked_consumers_with_out_of_range() -> None:
    q = af.FIFOQueue(4, [af.int32], shapes=[()])
    deq = q.dequeue()
    many = q.dequeue_many(3)
    enq = q.enqueue(af.constant(1))
    with af.Session() as s:
        s.run(enq)
        bgs = [_Bg(s.run, deq), _Bg(s.run, many), _Bg(s.run, many)]
        # the first takes the element; two dequeue_many wait
        _wait_for(lambda: len(_resource(s, "fifo_queue").waits()) == 2)
        s.run(q.close())
        for b in bgs:
            b.join()
        assert bgs[0].error is None and bgs[0].result == 1
        for b in bgs[1:]:
            assert isinstance(b.error, af.errors.OutOfRangeError)
        assert _resource(s, "fifo_queue").waits() == []


def test_full_queue_blocks_enqueue_and_cancel_pending() -> None:
    q = af.FIFOQueue(2, [af.int32], shapes=[()])
    x = af.placeholder(af.int32, (None,))
    enq_many = q.enqueue_many(x)
    deq = q.dequeue()
    with af.Session() as s:
        bg = _Bg(s.run, enq_many, {x: np.arange(5)})  # 2 go in, 3 wait
        _wait_for(lambda: len(_resource(s, "fifo_queue").waits()) == 1)
        assert [s.run(deq) for _ in range(3)] == [0, 1, 2]
        _wait_for(lambda: s.run(q.size()) == 2)
        bg.join()
        assert bg.error is None
        assert [s.run(deq) for _ in range(2)] == [3, 4]
        s.run(enq_many, {x: np.arange(2)})
        bg = _Bg(s.run, enq_many, {x: np.arange(3)})
        _wait_for(lambda: len(_resource(s, "fifo_queue").waits()) == 1)
        s.run(q.close(cancel_pending_enqueues=True))
        bg.join()
        assert isinstance(bg.error, af.errors.CancelledError)
        assert [s.run(deq) for _ in range(2)] == [0, 1]
        with pytest.raises(af.errors.OutOfRangeError):
            s.run(deq)


def test_random_shuffle_queue_counts_exact_and_seeded() -> None:
    def drain(seed: int) -> list[int]:
        g = af.Graph()
        with g.as_default():
            q = af.RandomShuffleQueue(50, 10, [af.int64], shapes=[()], seed=seed)
            x = af.placeholder(af.int64, (None,))
            enq = q.enqueue_many(x)
            deq = q.dequeue_up_to(7)
            out: list[int] = []
            with af.Session(graph=g) as s:
                for _epoch in range(3):  # 3 epochs of 20
                    s.run(enq, {x: np.arange(20)})
                    out += s.run(q.dequeue_many(5)).tolist()
                s.run(q.close())
                while True:
                    try:
                        out += s.run(deq).tolist()
                    except af.errors.OutOfRangeError:
                        break
        return out

    a, b, c = drain(7), drain(7), drain(8)
    assert Counter(a) == {i: 3 for i in range(20)}
    assert a == b and a != c
    assert a[:20] != sorted(a[:20])


def test_random_shuffle_queue_keeps_min_after_dequeue() -> None:
    q = af.RandomShuffleQueue(10, 3, [af.int32], shapes=[()], seed=1)
    with af.Session() as s:
        s.run(q.enqueue_many(af.constant([1, 2, 3, 4])))
        s.run(q.dequeue())  # 4 > 3: one may leave
        bg = _Bg(s.run, q.dequeue())  # 3 left: must wait
        _wait_for(lambda: len(_resource(s, "random_shuffle_queue").waits()) == 1)
        s.run(q.close())  # closing releases the reserve
        bg.join()
        assert bg.error is None and s.run(q.size()) == 2


def test_priority_and_padding_queues() -> None:
    pq = af.PriorityQueue(10, [af.int32], shapes=[()])
    pri = af.placeholder(af.int64, (None,))
    val = af.placeholder(af.int32, (None,))
    pad = af.PaddingFIFOQueue(5, [af.float32], shapes=[(None,)])
    v = af.placeholder(af.float32, (None,))
    with af.Session() as s:
        s.run(pq.enqueue_many([pri, val]), {pri: [5, 1, 3, 1], val: [50, 10, 30, 11]})
        got = [s.run(pq.dequeue()) for _ in range(4)]
        assert [(int(p), int(x)) for p, x in got] == [(1, 10), (1, 11), (3, 30), (5, 50)]
        enq = pad.enqueue(v)
        for row in ([1.0], [2.0, 3.0, 4.0], [5.0, 6.0]):
            s.run(enq, {v: row})
        np.testing.assert_array_equal(
            s.run(pad.dequeue_many(3)), [[1, 0, 0], [2, 3, 4], [5, 6, 0]])


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(af.errors.InvalidArgumentError, match="2 dtypes but 1 shapes"):
        af.FIFOQueue(3, [af.float32, af.int32], shapes=[()])
    q = af.FIFOQueue(3, [af.float32], shapes=[(2,)])
    with pytest.raises(af.errors.InvalidArgumentError, match="1 components, got 2"):
        q.enqueue([1.0, 2.0])
    x = af.placeholder(af.float32, None)
    with af.Session() as s:
        with pytest.raises(af.errors.InvalidArgumentError, match="shape"):
            s.run(q.enqueue(x), {x: np.zeros(3, np.float32)})
    with pytest.raises(af.errors.InvalidArgumentError, match="min_after_dequeue"):
        af.RandomShuffleQueue(3, 5, [af.float32])


def test_device_lists_every_wait() -> None:
    q = af.FIFOQueue(1, [af.int32], shapes=[()], shared_name="lonely")
    acc = af.ConditionalAccumulator(af.float32, (), shared_name="acc")
    with af.Session() as s:
        bgs = [_Bg(s.run, q.dequeue()), _Bg(s.run, acc.take_grad(1))]
        dev = s._runtime.devices[0]
        _wait_for(lambda: len(dev.resources.waits()) == 2)
        assert sorted(w.op for w in dev.resources.waits()) == ["dequeue", "take_grad"]
        s.run([q.close(), acc.close()])
        for b in bgs:
            b.join()
            assert isinstance(b.error, af.errors.OutOfRangeError)
        assert dev.resources.waits() == []


def test_run_options_timeout_wakes_a_blocked_dequeue() -> None:
    """A dequeue on an empty queue with RunOptions(timeout_in_ms) raises DeadlineExceeded,
    leaves no waiter behind, and the session stays usable."""
    q = af.FIFOQueue(2, [af.int32], shapes=[()])
    deq = q.dequeue()
    with af.Session() as s:
        bg = _Bg(s.run, deq, None, af.RunOptions(timeout_in_ms=300))
        bg.t.join(10)
        if bg.t.is_alive():  # unblock it before failing, so the session can close
            s.run(q.close())
            bg.join()
            raise AssertionError("RunOptions(timeout_in_ms) did not end the blocked dequeue")
        assert isinstance(bg.error, af.errors.DeadlineExceededError), bg.error
        assert _resource(s, q.name).waits() == []
        s.run(q.enqueue(af.constant(4)))
        assert s.run(deq) == 4  # the timed-out dequeue took nothing; the session goes on
