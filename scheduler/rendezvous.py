"""The rendezvous where a step's Send and Recv meet (OSDI §3.3), keyed by edge key.

A `Rendezvous` belongs to one step. `send(key, value)` never blocks; `await recv(key)` waits
until the value for `key` is there. `abort(error)` makes every pending and later `recv` raise
that error, so a failed step never leaves a Recv hanging. A remote transport delivers into it
through the same `send`.

State (owned by the trio thread of the step's devices):
  _values   key -> value sent but not yet received
  _waiters  key -> trio.Event of a recv waiting for it
  _error    the first error, once aborted
"""

from __future__ import annotations

from typing import Any

import trio

from devices.errors import AlreadyExistsError, OpError


class Rendezvous:
    def __init__(self, step_id: int):
        self.step_id = step_id
        self._values: dict[str, Any] = {}
        self._waiters: dict[str, trio.Event] = {}
        self._error: OpError | None = None

    def send(self, key: str, value: Any) -> None:
        if self._error is not None:
            return
        if key in self._values:
            raise AlreadyExistsError(f"step {self.step_id}: a value was already sent for "
                                     f"'{key}'")
        self._values[key] = value
        ev = self._waiters.pop(key, None)
        if ev is not None:
            ev.set()

    async def recv(self, key: str) -> Any:
        if key not in self._values and self._error is None:
            ev = self._waiters.setdefault(key, trio.Event())
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
        for ev in self._waiters.values():
            ev.set()
        self._waiters.clear()
