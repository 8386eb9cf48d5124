"""The door's busy policy for sync callers (issue 15, session 10; the door is issue 11's): a
thread that only waits for its step anyway and finds the device held by another thread waits
(bounded) for the baton and runs inline, on its own thread, instead of posting and waking the
device's trio thread. The trio thread never waits, a wait past its bound posts, and the holder
lets go after its slice while someone waits (`is_wanted`)."""

from __future__ import annotations

import threading
import time
from typing import Any

import trio
import trio.testing

from devices.device import CpuDevice


class _Item:
    """A work item recording the thread it ran on; `block` holds the device until `release`."""

    def __init__(self, log: list[tuple[str, int]], name: str,
                 holding: threading.Event | None = None,
                 release: threading.Event | None = None):
        self.log, self.name, self.holding, self.release = log, name, holding, release

    def run_slice(self, device: CpuDevice, on_loop: bool) -> None:
        if self.holding is not None and self.release is not None:
            self.holding.set()
            self.release.wait(10)
        self.log.append((self.name, threading.get_ident()))


def _until(cond: Any, what: str) -> None:
    deadline = time.perf_counter() + 10
    while not cond():  # polls another thread's state (bounded; not synchronisation)
        assert time.perf_counter() < deadline, f"timed out waiting for {what}"
        time.sleep(0.0005)


def _serve_and(body: Any) -> None:
    async def main() -> None:
        dev = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
        async with trio.open_nursery() as nursery:
            await nursery.start(dev.serve)
            await body(dev)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def _hold(dev: CpuDevice, log: list[tuple[str, int]]
                ) -> tuple[threading.Thread, threading.Event]:
    """A thread whose item holds `dev` (inline, as a sync caller) until the event is set;
    returns once it holds it."""
    holding, release = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=dev.run_or_post, args=(_Item(log, "holder", holding, release),))
    holder.start()
    await trio.to_thread.run_sync(holding.wait)
    return holder, release


def test_a_sync_caller_that_finds_the_device_held_waits_and_runs_inline() -> None:
    log: list[tuple[str, int]] = []

    async def body(dev: CpuDevice) -> None:
        holder, release = await _hold(dev, log)
        waiter_ident: list[int] = []

        def waiter() -> None:
            waiter_ident.append(threading.get_ident())
            dev.run_or_post(_Item(log, "waiter"), True, 10.0)

        t = threading.Thread(target=waiter)
        t.start()
        await trio.to_thread.run_sync(_until, dev.is_wanted, "the waiter")
        # it waits for the baton: nothing posted, and the holder is told it is wanted
        assert dev.statistics().mailbox_depth == 0 and dev.is_wanted()
        release.set()
        await trio.to_thread.run_sync(t.join, 10)
        await trio.to_thread.run_sync(holder.join, 10)
        assert [n for n, _ in log] == ["holder", "waiter"]
        assert log[1][1] == waiter_ident[0]  # inline, on the waiting thread
        assert dev.statistics().items_run == 0  # the actor ran nothing
        assert not dev.is_wanted()

    _serve_and(body)


def test_a_wait_past_its_bound_posts_and_the_actor_runs_the_item() -> None:
    log: list[tuple[str, int]] = []

    async def body(dev: CpuDevice) -> None:
        holder, release = await _hold(dev, log)
        t0 = time.perf_counter()
        await trio.to_thread.run_sync(dev.run_or_post, _Item(log, "late"), True, 0.02)
        assert time.perf_counter() - t0 >= 0.02  # it waited its bound, then posted
        assert dev.statistics().mailbox_depth == 1 and [n for n, _ in log] == []
        release.set()
        await trio.to_thread.run_sync(holder.join, 10)
        while len(log) < 2:
            await trio.testing.wait_all_tasks_blocked()
        assert [n for n, _ in log] == ["holder", "late"]
        assert log[1][1] == threading.get_ident()  # run by the actor, on the trio thread
        assert dev.statistics().items_run == 1

    _serve_and(body)


def test_the_devices_trio_thread_never_waits_for_the_baton() -> None:
    log: list[tuple[str, int]] = []

    async def body(dev: CpuDevice) -> None:
        holder, release = await _hold(dev, log)
        t0 = time.perf_counter()
        dev.run_or_post(_Item(log, "async"), True, 10.0)  # on the loop: posted at once
        assert time.perf_counter() - t0 < 1.0
        assert dev.statistics().mailbox_depth == 1
        release.set()
        await trio.to_thread.run_sync(holder.join, 10)
        while len(log) < 2:
            await trio.testing.wait_all_tasks_blocked()
        assert [n for n, _ in log] == ["holder", "async"]

    _serve_and(body)


def test_a_sync_caller_posts_when_the_awake_actor_holds_the_device() -> None:
    """The actor running an item is awake: a sync caller posts (no wait, no wake-up cost) and
    the actor runs its item next."""
    log: list[tuple[str, int]] = []
    holding, release, up = threading.Event(), threading.Event(), threading.Event()
    dev = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
    loop_ident: list[int] = []

    async def main() -> None:
        loop_ident.append(threading.get_ident())
        async with trio.open_nursery() as nursery:
            await nursery.start(dev.serve)
            up.set()

    loop = threading.Thread(target=trio.run, args=(main,))
    loop.start()
    try:
        assert up.wait(10)
        dev.run_or_post(_Item(log, "actor's", holding, release), False)  # the actor runs it
        assert holding.wait(10)
        t0 = time.perf_counter()
        dev.run_or_post(_Item(log, "sync"), True, 10.0)
        assert time.perf_counter() - t0 < 1.0  # posted, not waited for 10 s
        assert dev.statistics().mailbox_depth == 1
    finally:
        release.set()
        _until(lambda: len(log) == 2, "the posted item")
        dev.close()
        loop.join(10)
    assert [n for n, _ in log] == ["actor's", "sync"]
    assert {t for _, t in log} == {loop_ident[0]}
