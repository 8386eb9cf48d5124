"""TF1's Barrier as a device resource: a map from string keys to elements of several
components, each component inserted separately (by whichever step has it); an element whose
every component is in is *complete* and can be taken, in batches, in insertion order.

It is the way graph code blocks until a condition on shared state holds (issue 15): a
`take_many` that cannot be served is an asynchronous wait (`devices.waits.Waiter`), never a
held device or a poll, woken by the insert that completes enough elements, by `close`, by
its step's abort (deadline, cancellation) or by its own `timeout`.

State (guarded by `_lock`; the nowait paths run on the device's thread, waits are completed
by whichever thread changes the state; the lock, the waiter list, `register`, `cancel` and
`waits` are `devices.waits.WaitList`'s):
  _incomplete  key -> [index, seq, [component or None, ...]]  (elements still missing parts)
  _ready       heap of (index, seq, key, components): complete elements, oldest first
  _waiters     blocked take_many waiters, oldest first; payload = (n, allow_small_batch)
  closed       no new keys; `cancelled` (close(cancel_pending_enqueues=True)) also refuses
               the parts of incomplete elements and drops those elements
An element's *index* is the number of the insert_many call that created its key (TF's
"batch in which each element was originally inserted"); complete elements leave in
(index, creation order).

    b = Barrier("b", dtypes=[np.float32, np.int64], shapes=[(), ()], device=name)
    b.insert_many(0, [b"k"], np.array([1.0], np.float32))
    b.insert_many(1, [b"k"], np.array([7]))
    b.try_take(1, False)       # (indices [0], keys [b"k"], [array([1.]), array([7])])
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

import numpy as np

from devices.errors import CancelledError, InvalidArgumentError, OutOfRangeError
from devices.waits import WaitList


class Barrier(WaitList):
    kind = "Barrier"

    def __init__(self, name: str, dtypes: list[np.dtype], shapes: list[tuple | None] | None,
                 device: str):
        self.name = name
        self.dtypes = [np.dtype(d) for d in dtypes]
        self.shapes = shapes or None
        self.device = device
        self.closed = False
        self.cancelled = False
        super().__init__()
        self._incomplete: dict[bytes, list] = {}
        self._ready: list[tuple] = []
        self._calls = itertools.count()   # insert_many calls: an element's index
        self._seq = itertools.count()     # key creation order (ties within one call)

    def describe(self) -> str:
        return (f"Barrier '{self.name}' ({len(self._ready)} ready, "
                f"{len(self._incomplete)} incomplete{', closed' if self.closed else ''})")

    def check(self, dtypes: list[np.dtype]) -> None:
        if [np.dtype(d) for d in dtypes] != self.dtypes:
            raise InvalidArgumentError(
                f"shared barrier '{self.name}' holds components of dtypes "
                f"{[d.name for d in self.dtypes]}; this handle asks for "
                f"{[np.dtype(d).name for d in dtypes]}: use another shared_name or the same "
                f"definition", device=self.device)

    # ---- operations ----------------------------------------------------------------------
    def insert_many(self, component: int, keys: Any, values: Any) -> None:
        """Set component `component` of the elements named by `keys` (a 1-D array of bytes)
        to the slices of `values` along dimension 0."""
        ncomp = len(self.dtypes)
        if not 0 <= component < ncomp:
            raise InvalidArgumentError(
                f"insert_many into {self.describe()}: component_index {component} is out of "
                f"range; the barrier has {ncomp} components (0..{ncomp - 1})",
                device=self.device)
        keys = [bytes(k) if not isinstance(k, str) else k.encode()
                for k in np.asarray(keys, dtype=object).reshape(-1)]
        values = np.asarray(values, dtype=self.dtypes[component])
        if values.ndim == 0 or values.shape[0] != len(keys):
            raise InvalidArgumentError(
                f"insert_many into {self.describe()}: values of shape {values.shape} need "
                f"dimension 0 equal to the number of keys ({len(keys)})", device=self.device)
        want = self.shapes[component] if self.shapes else None
        if want is not None and (len(want) != values.ndim - 1 or any(
                w is not None and w != g for w, g in zip(want, values.shape[1:], strict=True))):
            raise InvalidArgumentError(
                f"insert_many into {self.describe()}: component {component} holds elements of "
                f"shape {tuple(want)}, got values of shape {values.shape[1:]} per key",
                device=self.device)
        with self._lock:
            index = next(self._calls)
            for i, key in enumerate(keys):
                elem = self._incomplete.get(key)
                if elem is None:
                    if self.closed:
                        raise CancelledError(
                            f"{self.describe()} is closed: it takes no new key ({key!r}); "
                            + ("it was closed with cancel_pending_enqueues=True, so no parts "
                               "either" if self.cancelled else
                               "only parts of incomplete elements"), device=self.device)
                    elem = [index, next(self._seq), [None] * ncomp]
                    self._incomplete[key] = elem
                elif self.cancelled:
                    raise CancelledError(
                        f"{self.describe()} was closed with cancel_pending_enqueues=True: "
                        f"key {key!r} can no longer be completed", device=self.device)
                if elem[2][component] is not None:
                    raise InvalidArgumentError(
                        f"insert_many into {self.describe()}: key {key!r} already has "
                        f"component {component}; each component of a key is inserted once",
                        device=self.device)
                elem[2][component] = values[i].copy()
                if all(c is not None for c in elem[2]):
                    del self._incomplete[key]
                    heapq.heappush(self._ready, (elem[0], elem[1], key, tuple(elem[2])))
            self._pump()

    def try_take(self, n: int, allow_small_batch: bool) -> tuple | None:
        """The take's result now (or its OutOfRange error raised) if nothing waits ahead;
        else None (it must wait)."""
        with self._lock:
            if self._waiters:
                return None
            return self._serve(n, allow_small_batch)

    def close(self, cancel_pending_enqueues: bool) -> None:
        with self._lock:
            self.closed = True
            if cancel_pending_enqueues:
                self.cancelled = True
                self._incomplete.clear()
            self._pump()

    def ready_size(self) -> int:
        with self._lock:
            return len(self._ready)

    def incomplete_size(self) -> int:
        with self._lock:
            return len(self._incomplete)

    # ---- the state machine (under _lock) --------------------------------------------------
    def _serve(self, n: int, allow_small_batch: bool) -> tuple | None:
        ready = len(self._ready)
        if ready >= n:
            return self._take(n)
        pending = len(self._incomplete)
        if self.closed and (pending == 0 or ready + pending < n):
            # no more keys can come: what is not ready now may never be
            if allow_small_batch and ready > 0 and pending == 0:
                return self._take(ready)
            if not allow_small_batch or pending == 0:
                raise OutOfRangeError(
                    f"{self.describe()} is closed and has insufficient elements (requested "
                    f"{n}, ready {ready}, incomplete {pending})", device=self.device)
        return None

    def _take(self, n: int) -> tuple:
        elems = [heapq.heappop(self._ready) for _ in range(n)]
        indices = np.array([e[0] for e in elems], dtype=np.int64)
        keys = np.empty(n, dtype=object)
        keys[:] = [e[2] for e in elems]
        comps = tuple(np.stack([e[3][c] for e in elems]) if elems else
                      np.zeros((0, *(d or 0 for d in ((self.shapes or [None] * len(
                          self.dtypes))[c] or ()))), dtype=dt)
                      for c, dt in enumerate(self.dtypes))
        return (indices, keys, *comps)

    def _pump(self) -> None:
        while self._waiters:
            w = self._waiters[0]
            try:
                out = self._serve(*w.payload)
            except OutOfRangeError as e:
                self._waiters.popleft()
                w.fail(e)
                continue
            if out is None:
                break
            self._waiters.popleft()
            w.finish(out)
