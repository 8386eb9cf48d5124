"""What one step shares among its partitions on the devices of a process: `StepContext`.

The runtime (or a worker service) makes one per step; every partition's `StepRun`
(`scheduler.executor`) reads its feeds and writes its fetches there, the first error aborts it
(waking the step's rendezvous and whatever registered in `on_abort`), and the last partition
to finish calls `done(error)`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from devices.errors import OpError


class StepContext:
    """What a step shares among its partitions: feeds, fetch results, rendezvous, trace.

    Written by the session before the step and by RETVAL nodes during it; read after done.
    """

    __slots__ = ("step_id", "args", "rets", "rendezvous", "trace", "done", "error",
                 "_remaining", "on_abort", "bytes_moved", "deadline")

    def __init__(self, step_id: int, args: list[Any], n_rets: int, n_parts: int,
                 done: Callable[[OpError | None], None], rendezvous: Any = None,
                 trace: list | None = None, timeout: float | None = None):
        self.step_id = step_id
        self.args = args
        self.rets: list[Any] = [None] * n_rets
        self.rendezvous = rendezvous
        self.trace = trace          # a StepTrace when tracing (scheduler.step_trace), else None
        self.done = done
        self.error: OpError | None = None
        self._remaining = n_parts
        self.on_abort: list[Callable[[OpError], None]] = []
        self.bytes_moved = 0  # bytes put into the rendezvous by this step's Sends
        # time.perf_counter() after which the step must be aborted (the runtime does it)
        self.deadline = math.inf if timeout is None else time.perf_counter() + timeout

    def abort(self, error: OpError) -> None:
        """First error wins: remember it and wake everything waiting for this step."""
        if self.error is not None:
            return
        self.error = error
        if self.rendezvous is not None:
            self.rendezvous.abort(error)
        for cb in self.on_abort:
            cb(error)

    def part_done(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            self.done(self.error)
