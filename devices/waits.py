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
"""

from __future__ import annotations

import time
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
    `payload` (what the operation carries: elements to enqueue, a count to take)."""

    __slots__ = ("record", "payload", "result", "error", "done", "_token", "_event")

    def __init__(self, wait: Wait, payload: Any = None):
        self.record = wait
        self.payload = payload
        self.result: Any = None
        self.error: OpError | None = None
        self.done = False
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
        if self._token is not None:
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
