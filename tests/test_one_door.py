"""The device's one door (issue 11): every run yields about once a millisecond, a long step on
a parameter server is slow, never dead, and shares the task fairly; RunOptions' deadline
cancels a step everywhere and leaves the session usable."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

import actorflow as af
from actorflow.cluster import LocalCluster
from devices.device import CpuDevice
from devices.errors import DeadlineExceededError


def _counting_loop(n: int | af.Tensor) -> tuple[af.Tensor, af.Tensor]:
    i, acc = af.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + 2),
                           (af.constant(0, af.int64), af.constant(0, af.int64)))
    return i, acc


def _endless_loop() -> af.Tensor:
    out = af.while_loop(lambda i: i >= 0, lambda i: i + 1, [af.constant(0, af.int64)])
    return out[0] if isinstance(out, list | tuple) else out


async def test_a_long_loop_through_the_async_api_lets_other_tasks_run() -> None:
    n = 200_000
    with af.Graph().as_default() as g:
        limit = af.placeholder(af.int64, ())
        i, acc = _counting_loop(limit)
    async with af.Session(graph=g) as s:
        assert await s.run([i, acc], {limit: 3}) == [3, 6]  # compiled (not timed)
        done = False
        gaps: list[float] = []
        ticking = trio.Event()

        # A gap is measured in CPU seconds of this thread (the trio loop's): the work done
        # between two turns of the ticker. Wall-clock gaps also hold the time the OS gave the
        # CPU to other processes, which on a loaded machine runs to tens of ms.
        async def ticker() -> None:
            last = time.thread_time()
            ticking.set()
            while not done:
                await trio.sleep(0)
                now = time.thread_time()
                gaps.append(now - last)
                last = now

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await ticking.wait()
            assert await s.run([i, acc], {limit: n}) == [n, 2 * n]
            done = True
        assert len(gaps) > 50  # the other task ran all along, not once at the end
        assert max(gaps) <= 0.010, f"another task waited for {max(gaps) * 1e3:.1f} ms of work"


def test_two_steps_on_one_device_share_it() -> None:
    """A short step posted while a long one runs finishes long before it (round robin)."""
    with af.Graph().as_default() as g:
        i, _ = _counting_loop(300_000)
        x = af.placeholder(af.float32, ())
        y = x * 2.0
    with af.Session(graph=g) as s:
        s.run(y, {x: 1.0})
        started = threading.Event()
        finished: dict[str, float] = {}

        def long_step() -> None:
            started.set()
            assert s.run(i) == 300_000
            finished["long"] = time.perf_counter()

        t = threading.Thread(target=long_step)
        t.start()
        started.wait()
        shorts = 0
        while "long" not in finished and shorts < 50:
            assert s.run(y, {x: 3.0}) == 6.0
            shorts += 1
        t.join()
        assert shorts >= 10, "the short steps waited for the long one"


class _Items:
    """Work items that record the order they ran in; one may block the device (on the thread
    running it) until `release` is set: the device is then busy, and items posted meanwhile
    wait in its mailbox."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.blocking = threading.Event()  # set while the blocking item holds the device
        self.release = threading.Event()

    def item(self, k: int, block: bool = False) -> Any:
        items = self

        class Item:
            def run_slice(self, device: CpuDevice, on_loop: bool) -> None:
                if block:
                    items.blocking.set()
                    items.release.wait(5)
                items.order.append(k)
        return Item()

    @contextlib.asynccontextmanager
    async def busy_device(self, mailbox_size: int) -> AsyncIterator[CpuDevice]:
        """A serving device whose one door item 0 holds (inline, on a thread of its own) until
        `release`; on exit, the holder has let go and the device is stopped."""
        dev = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0", mailbox_size=mailbox_size)
        async with trio.open_nursery() as nursery:
            await nursery.start(dev.serve)
            holder = threading.Thread(target=dev.run_or_post, args=(self.item(0, True),))
            holder.start()
            await trio.to_thread.run_sync(self.blocking.wait)
            try:
                yield dev
            finally:
                self.release.set()
                await trio.to_thread.run_sync(holder.join)
                nursery.cancel_scope.cancel()

    async def wait_for(self, n: int) -> None:
        """Until n items have run (the actor serves the mailbox in the same trio loop)."""
        while len(self.order) < n:
            await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
def items() -> Iterator[_Items]:
    it = _Items()
    yield it
    it.release.set()  # (a failed test never leaves a thread blocked)


def test_the_device_runs_posted_items_in_turn_with_no_task_per_item(items: _Items) -> None:
    """Items posted to a busy device wait in its mailbox, in order; the actor serves them."""

    async def main() -> None:
        async with items.busy_device(mailbox_size=4) as dev:
            before = len(trio.lowlevel.current_root_task().child_nurseries[0].child_tasks)
            for k in range(1, 5):
                dev.run_or_post(items.item(k))  # busy: posted, not run
            assert items.order == [] and dev.statistics().mailbox_depth == 4
            assert not dev.has_room()
            after = len(trio.lowlevel.current_root_task().child_nurseries[0].child_tasks)
            assert after == before  # no task per item
            items.release.set()
            await dev.wait_for_room()
            await items.wait_for(5)
            assert items.order == [0, 1, 2, 3, 4]

    trio.run(main)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_step_past_its_deadline_fails_and_the_session_goes_on(mode: str) -> None:
    with af.Graph().as_default() as g:
        forever = _endless_loop()
        x = af.placeholder(af.float32, ())
        y = x + 1.0
    options = af.RunOptions(timeout_in_ms=300)
    if mode == "sync":
        with af.Session(graph=g) as s:
            t0 = time.perf_counter()
            with pytest.raises(DeadlineExceededError, match="deadline|in time"):
                s.run(forever, options=options)
            assert time.perf_counter() - t0 < 0.6
            assert s.run(y, {x: 1.0}) == 2.0  # usable: the device is free again
            assert s.statistics()[0].mailbox_depth == 0
        return

    async def main() -> None:
        async with af.Session(graph=g) as s:
            t0 = time.perf_counter()
            with pytest.raises(DeadlineExceededError, match="deadline|in time"):
                await s.run(forever, options=options)
            assert time.perf_counter() - t0 < 0.6
            assert await s.run(y, {x: 1.0}) == 2.0

    trio.run(main)


def test_trace_level_reaches_the_step_trace() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (), name="x")
        y = af.identity(x * 3.0, name="y")
    with af.Session(graph=g) as s:
        md = af.RunMetadata()
        opts = af.RunOptions(trace_level=af.RunOptions.FULL_TRACE)
        assert s.run(y, {x: 2.0}, options=opts, run_metadata=md) == 6.0
        assert "y" in md.step_stats.node_names()


@pytest.mark.multiprocess
def test_a_long_loop_on_a_ps_task_is_slow_not_dead_and_shares_the_task() -> None:
    """A loop of seconds on /job:ps/task:0 outlives the heartbeat timeout; it completes with the
    right value while another client's small steps on the same PS keep succeeding."""
    heartbeat = af.RPCOptions(heartbeat_interval=0.2, heartbeat_timeout=1.0)
    with LocalCluster(ps=1, workers=1) as cluster:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                n = af.placeholder(af.int64, (), name="n")
                i, acc = af.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + 2),
                                       (af.constant(0, af.int64), af.constant(0, af.int64)))
                v = af.Variable(np.float32(0.0), name="v")
                bump = v.assign_add(1.0)
                forever = _endless_loop()
            init = af.global_variables_initializer()
        config = af.ConfigProto(rpc_options=heartbeat)
        target = cluster.target("worker", 0)
        with af.Session(target, graph=g, config=config) as s:
            s.run(init)
            # the loop's length from this machine's speed: about 2 s alone (twice the heartbeat
            # timeout; longer while it shares the task), whatever the machine
            t0 = time.perf_counter()
            s.run([i, acc], {n: 50_000})
            per_iteration = (time.perf_counter() - t0) / 50_000
        iterations = int(min(5_000_000, max(300_000, 2.0 / per_iteration)))
        result: dict[str, object] = {}

        def long_client() -> None:
            try:
                with af.Session(target, graph=g, config=config) as s:
                    t0 = time.perf_counter()
                    result["value"] = s.run([i, acc], {n: iterations})
                    result["seconds"] = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                result["error"] = e

        t = threading.Thread(target=long_client)
        t.start()
        bumps = 0
        with af.Session(target, graph=g, config=config) as s:
            while t.is_alive():
                s.run(bump)  # another client's small steps on the busy PS
                bumps += 1
            t.join()
            assert "error" not in result, result
            assert result["value"] == [iterations, 2 * iterations]
            assert result["seconds"] > 1.0  # longer than the heartbeat timeout
            assert bumps >= 10, f"only {bumps} small steps ran during the long one"
            assert s.run(v) == bumps
            # a deadline aborts the step on the PS task too, which then serves the next step
            t0 = time.perf_counter()
            with pytest.raises(DeadlineExceededError, match="deadline|in time"):
                s.run(forever, options=af.RunOptions(timeout_in_ms=500))
            assert time.perf_counter() - t0 < 1.0
            assert s.run(bump) == bumps + 1


def _waiting(s: af.Session) -> int:
    return sum(d.async_kernels_waiting for d in s.statistics())


def test_an_aborted_steps_waiting_kernels_are_cancelled() -> None:
    """A dequeue on an empty queue waits in the device's nursery (counted); the step's deadline
    cancels the wait, so nothing stays waiting and a later element is not taken by it."""
    with af.Graph().as_default() as g:
        q = af.FIFOQueue(4, [af.float32], shapes=[()])
        v = af.placeholder(af.float32, ())
        enq = q.enqueue(v)
        deq = q.dequeue()

    async def main() -> None:
        async with af.Session(graph=g) as s:
            errors: list[Exception] = []

            async def blocked() -> None:
                try:
                    await s.run(deq, options=af.RunOptions(timeout_in_ms=300))
                except DeadlineExceededError as e:
                    errors.append(e)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked)
                await trio.testing.wait_all_tasks_blocked()
                assert s.statistics()[0].async_kernels_waiting == 1
            assert len(errors) == 1
            await trio.testing.wait_all_tasks_blocked()
            assert s.statistics()[0].async_kernels_waiting == 0
            await s.run(enq, {v: 3.0})
            assert await s.run(deq) == 3.0  # the aborted dequeue took nothing

    trio.run(main)


def test_a_failing_node_aborts_the_waits_of_its_step() -> None:
    """An error elsewhere in the step aborts it: its waiting dequeue is cancelled at once (not
    left for a later enqueue), from a sync caller's thread as well."""
    with af.Graph().as_default() as g:
        q = af.FIFOQueue(4, [af.float32], shapes=[()])
        v = af.placeholder(af.float32, ())
        enq = q.enqueue(v)
        deq = q.dequeue()
        idx = af.placeholder(af.int32, ())
        bad = af.gather(af.constant([1.0, 2.0]), idx)
        with af.control_dependencies([q.size()]):  # the dequeue starts waiting first
            bad = af.identity(bad)
    with af.Session(graph=g) as s:
        with pytest.raises(af.errors.InvalidArgumentError):
            s.run([deq, bad], {idx: 7})
        deadline = time.perf_counter() + 5.0
        while _waiting(s) and time.perf_counter() < deadline:  # cancelled on the actor's loop
            time.sleep(0.001)
        assert _waiting(s) == 0
        s.run(enq, {v: 4.0})
        assert s.run(deq) == 4.0


def test_a_full_mailbox_blocks_a_posting_thread_until_the_actor_makes_room(
        items: _Items) -> None:
    """Back-pressure for sync callers: a thread that finds the mailbox full blocks (bounded
    by its timeout) instead of growing the mailbox, and goes on once the actor made room."""

    async def main() -> None:
        async with items.busy_device(mailbox_size=2) as dev:
            dev.run_or_post(items.item(1))
            dev.run_or_post(items.item(2))
            assert not dev.has_room()
            assert dev.wait_for_room_blocking(0.01) is False  # the timeout bounds the wait
            admitted: list[bool] = []

            def poster() -> None:
                admitted.append(dev.wait_for_room_blocking(10))
                dev.run_or_post(items.item(3))

            t = threading.Thread(target=poster)
            t.start()
            deadline = time.perf_counter() + 5
            while dev.room_waiters == 0 and time.perf_counter() < deadline:
                await trio.sleep(0.001)  # polls the thread's state (not synchronisation)
            assert dev.room_waiters == 1 and dev.statistics().mailbox_depth == 2
            items.release.set()
            await trio.to_thread.run_sync(t.join, 10)
            assert admitted == [True]
            await items.wait_for(4)
            assert items.order == [0, 1, 2, 3]

    trio.run(main)
