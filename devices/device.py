"""The device actor: one trio task per device, owning its kernels, memory pool and resources.

Design
------
A `Device` is an actor: one task, `serve()`, owns its state (pool, resources, kernels), and
there is exactly one door into it, `run_or_post(item)`. A *work item* is any object with
``run_slice(device, on_loop) -> WorkItem | None`` (the scheduler's executor supplies them: a
step to start or to go on with, the continuation of a step after an asynchronous kernel
finished). A slice runs what is ready for at most `SLICE_S` of work (about 1 ms), never blocks
on anything, and returns what must run next on this device (the same step, posted again to
the back of the mailbox so that other steps get their turn) or None.

The door:
  - when the device is idle (nobody holds it, the mailbox is empty), the caller runs one slice
    *inline*, on its own thread, holding the device: most steps are shorter than the ~100 us
    that waking the actor's thread costs here. What the slice leaves over is posted. (A sync
    caller, off the device's trio thread, may run further slices while nobody else wants the
    device, `is_wanted`: it holds up no trio loop.)
  - when the device is busy the item is posted to the mailbox, and the actor runs it in turn;
    except for a *sync caller* (`wait_s` > 0: a thread that would only block on its step's end
    anyway, `LocalRuntime.run`) that finds the mailbox empty and the device held by another
    sync caller's thread: it waits for the baton, at most `BATON_WAIT_S`, and then runs inline
    as above. (When the actor holds it, `_actor_holds`, the actor is awake: the post wakes
    nobody and the item runs next.)
    Posting would wake the actor's trio thread (~100 us), and once the actor runs one such
    step the next caller finds it busy too: two replica threads of one Session then kept
    handing every step to the actor (0.35 ms of its CPU a global step, `benchmarks/RESULTS.md`
    "Session 10: sync"). A waiting caller counts in `is_wanted`, so the holder lets go after
    its slice (every run still yields); a wait past its bound posts (a long step never starves
    the waiter: it gets its round-robin turn); the device's trio thread never waits (an async
    caller never blocks the loop), nor does anything but a step's first entry.
Whoever runs a slice holds the device's *baton* (a `threading.Lock`: the actor's identity for
that moment). Only a sync caller waits on it, bounded; everybody else try-acquires it and posts
when it is taken, and the actor waits on an event that the holder sets when it lets go. The
baton is the sole mutual exclusion between the actor's thread and a sync caller's.

Every run yields: a slice lasts about a millisecond, the actor runs one slice per mailbox turn
and checkpoints at least every `SLICE_S`, so RPC readers, heartbeats and other steps progress
during a long step, and the steps sharing a device get a fair (round-robin) share of it. A
busy actor also hands the GIL to the process's other threads once per switch interval (a
`HANDOFF_S` sleep): its checkpoints alone would starve them (see HANDOFF_S).

The mailbox is a deque. Continuations always go in (refusing one would strand a step half
run); new steps are admitted while it holds fewer than `mailbox_size` items: an async caller
waits for room (`wait_for_room`), a sync caller's thread blocks until the actor has made room
(`wait_for_room_blocking`, bounded by the step's deadline): back-pressure, not a task per item
and not a mailbox that grows without bound.

State (owned by whoever holds the baton, unless said otherwise):
  pool        the memory pool (`statistics()`, limit -> ResourceExhausted)
  resources   containers of variables and other long-lived state
  _mailbox    deque of work items; appended by any thread, popped only by the actor
  _baton_waiters  the sync callers waiting for the baton now (any thread appends/removes)
  _actor_holds    True while the actor runs a slice (written by the actor only)
  _waker      the event the actor sleeps on (set by posts and by an inline holder letting go);
              written by the actor only
  _room_cv    the condition threads waiting for room in the mailbox block on (its own lock)
  _nursery    where asynchronous kernels wait (`start_soon`, counted in
              async_kernels_waiting while they run); cancelled when the device closes
  intra_op    the process's shared pool of threads that large kernels split their work over
              (`devices.intra_op`; ConfigProto.intra_op_parallelism_threads); not owned

    async with trio.open_nursery() as nursery:
        dev = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
        await nursery.start(dev.serve)
        dev.run_or_post(item)               # from any thread, the trio thread included
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import trio

from devices.errors import UnavailableError
from devices.intra_op import shared_pool
from devices.pool import HostPool, PoolStatistics
from devices.resources import ResourceMgr

_get_ident = threading.get_ident
SLICE_S = 0.001  # seconds of work a slice runs before it gives the device (and the loop) back
# A busy actor sleeps this long once per GIL switch interval, so that the process's other
# threads get the GIL: its checkpoint every slice releases and retakes the GIL (trio's
# epoll), which wakes a waiting thread before its switch interval has run out, so that thread
# never asks for the GIL and could wait out the whole step (a sync caller whose short step
# the actor finished long ago: the test_one_door fairness flake).
HANDOFF_S = 0.0002
# The longest a sync caller that finds the device held (and the mailbox empty) waits for the
# baton before it posts: a holder's slice plus its hand-over (see the module doc).
BATON_WAIT_S = 2 * SLICE_S


class WorkItem(Protocol):
    """What a device runs: one slice of work, then what to run next here (or None)."""

    def run_slice(self, device: Device, on_loop: bool) -> WorkItem | None:
        """Run for at most `SLICE_S`; `on_loop` says the caller is on the device's trio thread
        (so it may start tasks in the device's nursery)."""
        ...


@dataclass(frozen=True)
class DeviceStatistics:
    name: str
    mailbox_depth: int
    items_run: int
    async_kernels_waiting: int
    pool: PoolStatistics
    # per variable on this device that took updates carrying a read version (issue 17):
    # {name: {count, mean, max, hist, version}} (`ResourceMgr.staleness`)
    staleness: dict[str, dict[str, Any]] = field(default_factory=dict)


class Device:
    """Base of the device actors. Subclasses set `device_type`, `xp` and the pool."""

    device_type = "CPU"
    xp: Any = np

    def __init__(self, name: str, *, memory_limit: int | None = None, mailbox_size: int = 4096,
                 worker_threads: int = 2, thread_threshold_us: float = 1000.0,
                 intra_op_threads: int = 0):
        self.name = name
        # the process's pool that large kernels split their work over (devices.intra_op)
        self.intra_op = shared_pool(intra_op_threads)
        self._thread_threshold_us = thread_threshold_us
        self.pool = HostPool(limit=memory_limit, name=name)
        self.resources = ResourceMgr(name)
        self._mailbox: deque[WorkItem] = deque()
        self._capacity = mailbox_size
        self._waker: trio.Event | None = None
        self._room: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._loop_thread: int | None = None
        self._threads = trio.CapacityLimiter(worker_threads)
        self._items_run = 0
        self._waiting = 0
        self._closed = False
        self._baton = threading.Lock()
        self._actor_holds = False  # the actor (awake) holds the baton: a post wakes nobody
        # the sync callers blocked in `_wait_baton` (is_wanted); a list: append and remove are
        # atomic under the GIL, where a counter's += is not
        self._baton_waiters: list[int] = []
        # threads blocked in `wait_for_room_blocking` (the actor notifies them as it pops)
        self._room_cv = threading.Condition(threading.Lock())
        self._room_waiters = 0
        # True when `activate` does something (a GPU's stream), so a CPU's runs skip the call
        self.has_stream = type(self).activate is not Device.activate

    # -- the door ---------------------------------------------------------------------------
    def run_or_post(self, item: WorkItem, may_inline: bool = True, wait_s: float = 0.0
                    ) -> None:
        """The one way into the device, from any thread: run a slice of `item` right here when
        the device is idle (and `may_inline`), posting what is left; else post it. A sync
        caller (`wait_s` > 0: a thread that would only block on its step's end) that finds
        the device held and the mailbox empty waits up to `wait_s` for the baton, then runs
        inline; only then posts (see the module doc)."""
        if self._closed:
            raise UnavailableError(f"device {self.name} is closed", device=self.name)
        if may_inline and not self._mailbox and (self._baton.acquire(False) or (
                wait_s > 0.0 and not self._actor_holds and self._wait_baton(wait_s))):
            try:
                nxt = item.run_slice(self, _get_ident() == self._loop_thread)
            finally:
                self._baton.release()
            if nxt is not None:
                self._mailbox.append(nxt)
            if self._mailbox:  # posted meanwhile, or just now: the actor goes on
                self._wake()
        else:
            self._mailbox.append(item)
            self._wake()

    def _wait_baton(self, wait_s: float) -> bool:
        """Block this thread (never the device's trio thread) up to `wait_s` for the baton,
        counted in `_baton_waiters` so that the holder lets go after its slice. True: held."""
        if _get_ident() == self._loop_thread:
            return False
        me = _get_ident()
        self._baton_waiters.append(me)
        try:
            return self._baton.acquire(True, wait_s)
        finally:
            self._baton_waiters.remove(me)

    def is_wanted(self) -> bool:
        """True if items wait in the mailbox or a sync caller waits for the baton (an inline
        holder should let the device go)."""
        return bool(self._mailbox) or bool(self._baton_waiters)

    def has_room(self) -> bool:
        """True while the mailbox admits new steps (see the module doc)."""
        return len(self._mailbox) < self._capacity

    async def wait_for_room(self) -> None:
        """Wait (in the device's trio loop) until the mailbox admits new steps."""
        while not self.has_room() and not self._closed:
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()

    def wait_for_room_blocking(self, timeout: float | None = None) -> bool:
        """Block the calling thread (not the device's trio thread) until the mailbox admits new
        steps: the back-pressure a sync caller gets. False if `timeout` seconds passed first;
        True at once when the device is closed (the door then says so)."""
        if self.has_room() or self._closed:
            return True
        with self._room_cv:
            self._room_waiters += 1
            try:
                return self._room_cv.wait_for(lambda: self.has_room() or self._closed, timeout)
            finally:
                self._room_waiters -= 1

    @property
    def room_waiters(self) -> int:
        """How many threads are blocked in `wait_for_room_blocking` now."""
        return self._room_waiters

    def _notify_room(self) -> None:
        with self._room_cv:
            self._room_cv.notify_all()

    def _wake(self) -> None:
        ev = self._waker
        if ev is None:
            return
        if threading.get_ident() == self._loop_thread:
            ev.set()
        elif self._token is not None:
            try:
                self._token.run_sync_soon(ev.set)
            except trio.RunFinishedError:
                pass

    # -- the actor --------------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run work items until the device is closed (cancel the surrounding nursery)."""
        self._token = trio.lowlevel.current_trio_token()
        self._loop_thread = threading.get_ident()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            try:
                await self._serve_mailbox()
            finally:
                self._closed = True
                self._notify_room()
                nursery.cancel_scope.cancel()

    async def _serve_mailbox(self) -> None:
        mailbox, baton = self._mailbox, self._baton
        clock = time.perf_counter
        yield_at = clock() + SLICE_S
        handoff_at = clock() + sys.getswitchinterval()
        # ---- the actor's loop: the oldest item, one slice of it, a checkpoint every slice ----
        while not (self._closed and not mailbox):
            if not mailbox or not baton.acquire(False):
                await self._wait_for_work()
                yield_at = clock() + SLICE_S
                handoff_at = clock() + sys.getswitchinterval()
                continue
            self._actor_holds = True
            try:
                item = mailbox.popleft()
                self._items_run += 1
                nxt = item.run_slice(self, True)
            finally:
                self._actor_holds = False
                baton.release()
            if nxt is not None:
                mailbox.append(nxt)  # to the back: the other items get their turn first
            if self._room is not None and self.has_room():
                self._room.set()
                self._room = None
            if self._room_waiters and self.has_room():
                self._notify_room()
            if clock() >= yield_at:
                await trio.lowlevel.checkpoint()
                yield_at = clock() + SLICE_S
                if yield_at >= handoff_at:  # busy for a switch interval: other threads' turn
                    time.sleep(HANDOFF_S)
                    handoff_at = clock() + sys.getswitchinterval()

    async def _wait_for_work(self) -> None:
        """Sleep until an item is posted or an inline holder lets the device go."""
        ev = trio.Event()
        self._waker = ev
        try:
            if self._mailbox and not self._baton.locked():
                await trio.lowlevel.checkpoint()  # (re-checked after publishing the event)
                return
            await ev.wait()
        finally:
            self._waker = None

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start an asynchronous kernel's wait in the device's nursery (on its trio thread);
        it counts in `statistics().async_kernels_waiting` until it returns."""
        assert self._nursery is not None, "device is not serving"
        self._nursery.start_soon(self._counted, fn, args)

    async def _counted(self, fn: Callable[..., Awaitable[Any]], args: tuple) -> None:
        self._waiting += 1
        try:
            await fn(*args)
        finally:
            self._waiting -= 1

    def call_on_loop(self, fn: Callable[[], Any]) -> None:
        """Call `fn` on the device's trio thread: now if this is it, else soon (from any
        thread); nothing once the loop has ended."""
        if threading.get_ident() == self._loop_thread:
            fn()
        elif self._token is not None:
            try:
                self._token.run_sync_soon(fn)
            except trio.RunFinishedError:
                pass

    async def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a large kernel on a worker thread (NumPy releases the GIL) so branches overlap."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._threads)

    def activate(self) -> None:
        """Make this device current on the calling thread (a GPU sets its stream)."""

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self.name, len(self._mailbox), self._items_run, self._waiting,
                                self.pool.statistics(), self.resources.staleness())

    def close(self) -> None:
        self._closed = True
        self._wake()

    # -- numbers for the cost model ------------------------------------------------------------
    def thread_threshold_us(self) -> float:
        """Kernels estimated above this many microseconds go to a worker thread."""
        return self._thread_threshold_us


class CpuDevice(Device):
    device_type = "CPU"
    xp = np


def elementwise_cost_us(nbytes: int | None, passes: float = 1.0) -> float:
    """A rough kernel-time estimate: memory-bound at ~4 GB/s per pass."""
    if nbytes is None:
        return 0.0
    return passes * nbytes / 4e3


def matmul_cost_us(m: int | None, k: int | None, n: int | None) -> float:
    if None in (m, k, n):
        return 0.0
    return 2.0 * m * k * n / 2e4  # ~20 GFLOP/s single core  # type: ignore[operator]


def shape_bytes(shape: Any, itemsize: int) -> int | None:
    if shape is None or any(d is None for d in shape):
        return None
    return math.prod(shape) * itemsize
