"""Waits: what a blocked asynchronous kernel waits on, and the machinery that wakes it.

A kernel that must block (a dequeue on an empty queue, an enqueue on a full one, a take from
an accumulator that has too few gradients) never holds its device: it registers a `Waiter`
with the resource and awaits it in a task of the device's nursery, while the device runs
everything else. The resource completes the waiter (`finish` / `fail`) from whatever thread
changed its state; the waiting task wakes on the device's trio loop.

Every waiter carries a `Wait`: a small frozen record of what it waits for (the resource, the
operation, the node, the step, since when), which the resource lists in ``waits()`` so a hang
doctor can say *why* a step is stuck. A waiter is removed from its resource when it completes,
when its step is aborted (deadline, cancellation, an error elsewhere: `ctx.on_abort`), and when
its task is cancelled (the device closing) — a wait never leaks.

    w = Waiter(Wait("dequeue", "queue 'q'", node, device, step_id))
    queue.register(w)                 # may complete it at once
    outs = await w.wait(ctx, queue.cancel)

A waiter can instead be *watched*, with no task at all: made with ``on_done``, it calls
``on_done(waiter)`` on the thread that completes it (the one that changed the resource's
state), once that thread has let go of the resource's lock (the callback may abort the step,
which cancels its other waits). The executor then posts the kernel's continuation through its
device's door, or leaves it to the thread that holds the device to run after its slice (see
`scheduler.executor`). The kernels of the sync
gate and of the accumulators' take do this (their ``subscribe``), so the wake-up of a replica
waiting for its global step costs no hop through the device's trio thread.

    w = Waiter(Wait("wait_for_step", ...), target, on_done=callback)
    gate.register(w)                  # may complete it at once (the callback runs here)
    w.watch(ctx, gate.cancel)         # its step's abort cancels it

`WaitList` is the base of the resources with one list of blocked waiters (Barrier, the
accumulators, the SyncGate): the lock (a `WaitLock`: it calls the watched waiters completed
while it was held once it is released), the list, ``register``, ``cancel`` and ``waits``;
each resource supplies ``_pump`` (under the lock: complete what its state now allows).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from devices.errors import CancelledError, OpError


@dataclass(frozen=True)
class Wait:
    """What one blocked kernel waits on. Read by tools (``resource.waits()``)."""

    op: str            # "dequeue", "enqueue", "take_grad", ...
    resource: str      # e.g. "FIFOQueue 'fifo_queue' (3 of 10 elements)" at registration
    node: str
    device: str
    step_id: int
    since: float = field(default_factory=time.time)   # wall clock, seconds


class Waiter:
    """One blocked operation. `finish`/`fail` may be called from any thread, once; the first
    completion wins. Fields: `record` (the Wait), `result` / `error` (set on completion),
    `payload` (what the operation carries: elements to enqueue, a count to take), `on_done`
    (a watched waiter's callback, see the module doc; None for one that is awaited)."""

    __slots__ = ("record", "payload", "result", "error", "done", "on_done", "lock", "_token",
                 "_event")

    def __init__(self, wait: Wait, payload: Any = None,
                 on_done: Callable[[Waiter], None] | None = None):
        self.record = wait
        self.payload = payload
        self.result: Any = None
        self.error: OpError | None = None
        self.done = False
        self.on_done = on_done
        self.lock: WaitLock | None = None  # a watched waiter's resource lock, once registered
        self._token: trio.lowlevel.TrioToken | None = None
        self._event: trio.Event | None = None

    def finish(self, result: Any) -> None:
        if self.done:
            return
        self.result = result
        self.done = True
        self._wake()

    def fail(self, error: OpError) -> None:
        if self.done:
            return
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        if self.on_done is not None:
            if self.lock is not None and self.lock.held():
                self.lock.due.append(self)  # called once the lock is let go
            else:
                self.on_done(self)
        elif self._token is not None:
            try:
                self._token.run_sync_soon(self._event.set)  # type: ignore[union-attr]
            except trio.RunFinishedError:
                pass

    async def wait(self, ctx: Any, cancel: Callable[[Waiter, OpError], None]) -> Any:
        """Block this task until completed; `cancel(waiter, error)` removes it from its
        resource on abort or cancellation. Returns the result or raises the error."""
        if not self.done:
            self._event = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            if ctx is not None:
                ctx.on_abort.append(lambda e: cancel(self, e))
                if ctx.error is not None:
                    cancel(self, ctx.error)
            if not self.done:  # (a completion racing with the lines above sets the event)
                try:
                    await self._event.wait()
                except trio.Cancelled:
                    cancel(self, CancelledError(f"the wait for {self.record.resource} was "
                                                f"cancelled (its device is shutting down)"))
                    raise
        if self.error is not None:
            raise self.error
        return self.result

    def watch(self, ctx: Any, cancel: Callable[[Waiter, OpError], None]) -> None:
        """For a watched waiter, after its registration: its step's abort (deadline, error,
        cancelled caller) calls `cancel(waiter, error)`, which fails it (`on_done` runs)."""
        if ctx is not None and not self.done:
            ctx.on_abort.append(lambda e: cancel(self, e))
            if ctx.error is not None:
                cancel(self, ctx.error)


class WaitLock:
    """A WaitList's lock (``with lock:``); the watched waiters completed while it was held
    (`due`, appended by the holder) get their ``on_done`` right after it is released."""

    __slots__ = ("_lock", "_owner", "due")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = 0
        self.due: list[Waiter] = []

    def held(self) -> bool:
        """True on the thread that holds it."""
        return self._owner == threading.get_ident()

    def __enter__(self) -> None:
        self._lock.acquire()
        self._owner = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        due = self.due
        self._owner = 0
        if due:
            self.due = []
            self._lock.release()
            for w in due:
                w.on_done(w)  # type: ignore[misc]
        else:
            self._lock.release()


class WaitList(ABC):
    """Base of a resource with one list of blocked waiters, oldest first (see the module
    doc). Subclasses call ``super().__init__()`` and define `_pump`."""

    def __init__(self) -> None:
        self._lock = WaitLock()
        self._waiters: deque[Waiter] = deque()

    def register(self, w: Waiter) -> None:
        """Add a blocked operation; it may complete at once (`_pump`)."""
        with self._lock:
            w.lock = self._lock
            self._waiters.append(w)
            self._pump()

    def cancel(self, w: Waiter, error: OpError) -> None:
        """Remove `w` (aborted or cancelled) and fail it; those behind it may now be served."""
        with self._lock:
            try:
                self._waiters.remove(w)
            except ValueError:
                pass
            w.fail(error)
            self._pump()

    def waits(self) -> list[Wait]:
        with self._lock:
            return [w.record for w in self._waiters]

    @abstractmethod
    def _pump(self) -> None:
        """(Under the lock) complete the waiters the resource's state now allows."""
