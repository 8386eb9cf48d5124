"""The rendezvous where a step's Send and Recv meet (OSDI §3.3), keyed by edge key.

A `Rendezvous` belongs to one step. `send(key, value)` never blocks; `await recv(key)` waits
until the value for `key` is there, and `subscribe(key, callback)` asks instead for a call
when it is (the executor's Recv uses this: no task per Recv). `abort(error)` makes every
pending and later `recv` raise that error and calls every subscriber, so a failed step never
leaves a Recv hanging. A remote transport delivers into it through the same `send`, with
``resume=True``: the subscriber may then go on with the step right there (the worker service
calls it from its socket's reader, where nothing else of the step's device is running).

State (owned by the trio thread of the step's devices):
  _values   key -> value sent but not yet received
  _waiters  key -> callback(resume: bool) of the one receiver waiting for it
  _since    key -> when its receiver began to wait (`time.monotonic`), written with
            ``_waiters`` (one clock read per Recv that has to wait, none for one whose value
            is there; the map itself is made by the first such Recv, so a step without one
            pays nothing); read only for keys in ``_waiters`` (`waiting`), never pruned
  _error    the first error, once aborted

What waits, and since when (the hang doctor, issue 16): `waiting()` lists the keys whose
receiver waits, each with the time it began to wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from devices.errors import AlreadyExistsError, InternalError, OpError

_monotonic = time.monotonic


class Rendezvous:
    _since: dict[str, float] | None = None  # made by the first Recv that waits (module doc)

    def __init__(self, step_id: int):
        self.step_id = step_id
        self._values: dict[str, Any] = {}
        self._waiters: dict[str, Callable[[bool], None]] = {}
        self._error: OpError | None = None

    def send(self, key: str, value: Any, *, resume: bool = False) -> None:
        """Put `value` under `key`; a waiting receiver is told (`resume`: see the module)."""
        if self._error is not None:
            return
        if key in self._values:
            raise AlreadyExistsError(f"step {self.step_id}: a value was already sent for "
                                     f"'{key}'")
        self._values[key] = value
        cb = self._waiters.pop(key, None)
        if cb is not None:
            cb(resume)

    def subscribe(self, key: str, callback: Callable[[bool], None]) -> None:
        """Call ``callback(resume)`` once `key` has a value or the step aborted (then
        `try_recv` gives the value or raises); at once if that is so already."""
        if key in self._values or self._error is not None:
            callback(False)
            return
        if key in self._waiters:
            raise InternalError(f"step {self.step_id}: two receivers wait for '{key}'")
        self._waiters[key] = callback
        since = self._since
        if since is None:
            since = self._since = {}
        since[key] = _monotonic()

    def waiting(self) -> list[tuple[str, float]]:
        """(key, since) for every receiver waiting now; `since` is `time.monotonic` seconds
        when it began to wait."""
        since = self._since or {}
        return [(key, since.get(key, 0.0)) for key in list(self._waiters)]

    async def recv(self, key: str) -> Any:
        if key not in self._values and self._error is None:
            ev = trio.Event()
            self.subscribe(key, lambda _resume: ev.set())
            await ev.wait()
        if self._error is not None:
            raise self._error
        return self._values.pop(key)

    def try_recv(self, key: str) -> Any:
        """The value for `key` if it is already here (taking it), else None."""
        if self._error is not None:
            raise self._error
        return self._values.pop(key, None)

    def abort(self, error: OpError) -> None:
        if self._error is not None:
            return
        self._error = error
        self._values.clear()
        waiters = list(self._waiters.values())
        self._waiters.clear()
        failed: BaseException | None = None
        for cb in waiters:  # every waiter hears of it, even if one of them fails
            try:
                cb(False)
            except Exception as e:  # noqa: BLE001 - re-raised once all were told
                failed = failed or e
        if failed is not None:
            raise failed
