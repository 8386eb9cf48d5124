"""Queues as device resources (WP §4.6, OSDI §3.1): FIFO, padding FIFO, random shuffle and
priority queues, living in a device's containers and shared by name across sessions.

An element is a tuple of arrays (one per component). A queue holds elements up to
`capacity` (None: unbounded). Enqueue blocks while the queue is full, dequeue while it holds
too few elements; both are asynchronous (see `devices.waits`): a blocked operation is a
`Waiter` in `_enq` / `_deq`, served in arrival order by `_pump`, never a held device.

State (guarded by `_lock`: the nowait paths run on whichever thread holds the device's baton,
the waits are completed from any thread that changes the state):
  _items     the elements (a deque; a list for the shuffle queue; a heap for priority)
  _enq       blocked enqueues, oldest first; payload = [elements not yet in]
  _deq       blocked dequeues, oldest first; payload = (n, mode)
  closed     no more enqueues; dequeues that cannot be served fail with OutOfRange
Modes of a dequeue: ONE (one element), MANY (exactly n, stacked), UP_TO (n, or fewer once the
queue is closed).

    q = FIFOQueue("q", capacity=2, dtypes=[np.float32], shapes=[()], device=name)
    q.try_enqueue([(np.float32(1),)])      # True: it went in
    q.try_dequeue(1, ONE)                  # (array(1.),)
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from typing import Any

import numpy as np

from devices.errors import CancelledError, InvalidArgumentError, OpError, OutOfRangeError
from devices.waits import Wait, Waiter

ONE, MANY, UP_TO = 0, 1, 2


class QueueBase:
    """Shared logic; subclasses say how elements are stored, taken and batched."""

    kind = "FIFOQueue"

    def __init__(self, name: str, capacity: int | None, dtypes: list[np.dtype],
                 shapes: list[tuple | None] | None, device: str):
        self.name = name
        self.capacity = None if capacity is None or capacity < 0 else int(capacity)
        self.dtypes = [np.dtype(d) for d in dtypes]
        self.shapes = shapes
        self.device = device
        self.closed = False
        self._cancel_enqueues = False
        self._lock = threading.Lock()
        self._enq: deque[Waiter] = deque()
        self._deq: deque[Waiter] = deque()
        self._init_items()
        # counters (statistics): elements in and out, waits begun
        self.enqueued = 0
        self.dequeued = 0
        self.waits_begun = 0

    # ---- what subclasses provide -----------------------------------------------------------
    def _init_items(self) -> None:
        self._items: Any = deque()

    def _put(self, elem: tuple) -> None:
        self._items.append(elem)

    def _take(self) -> tuple:
        return self._items.popleft()

    def _size(self) -> int:
        return len(self._items)

    def _available(self) -> int:
        """How many elements a dequeue may take now (the shuffle queue keeps a reserve)."""
        return len(self._items)

    def _batch(self, elems: list[tuple]) -> tuple:
        # np.array builds the stacked batch in one pass (np.stack is ~20x slower on
        # scalars); object (string) components keep np.stack, which never nests silently
        return tuple(np.stack([e[c] for e in elems]) if dt.kind == "O" else
                     np.array([e[c] for e in elems], dtype=dt)
                     for c, dt in enumerate(self.dtypes))

    # ---- checks ------------------------------------------------------------------------------
    def describe(self) -> str:
        cap = "unbounded" if self.capacity is None else f"capacity {self.capacity}"
        return f"{self.kind} '{self.name}' ({self._size()} elements, {cap})"

    def check(self, kind: str, dtypes: list[np.dtype], capacity: int | None) -> None:
        """A handle built elsewhere must agree with the queue it found by name."""
        cap = None if capacity is None or capacity < 0 else int(capacity)
        same = [np.dtype(d) for d in dtypes] == self.dtypes
        if kind != self.kind or not same or cap != self.capacity:
            raise InvalidArgumentError(
                f"shared queue '{self.name}' exists as a {self.describe()} of dtypes "
                f"{[d.name for d in self.dtypes]}; this handle asks for a {kind} of dtypes "
                f"{[np.dtype(d).name for d in dtypes]} and capacity {cap}: use another "
                f"shared_name or the same definition", device=self.device)

    def check_element(self, comps: tuple, many: bool) -> list[tuple]:
        """Split enqueue inputs into elements, checking dtypes and shapes."""
        if len(comps) != len(self.dtypes):
            raise InvalidArgumentError(
                f"{self.describe()} has {len(self.dtypes)} components, got {len(comps)}")
        # copies: the queue owns its elements (a step's buffers go back to its pool)
        comps = tuple(np.array(c, dtype=d) for c, d in zip(comps, self.dtypes, strict=True))
        if not many:
            self._check_shapes(comps)
            return [comps]
        n = {c.shape[0] if c.ndim else -1 for c in comps}
        if len(n) != 1 or -1 in n:
            raise InvalidArgumentError(
                f"enqueue_many into {self.describe()} needs every component to have the same "
                f"first dimension, got shapes {[c.shape for c in comps]}")
        elems = list(zip(*comps, strict=True))  # a tuple of rows (views) per element
        for e in elems[:1]:
            self._check_shapes(e)
        return elems

    def _check_shapes(self, comps: tuple) -> None:
        if not self.shapes:
            return
        for i, (c, s) in enumerate(zip(comps, self.shapes, strict=True)):
            # np.ndim/np.shape: a row of a string component is a bytes object, not an array
            if s is not None and (len(s) != np.ndim(c) or any(
                    w is not None and w != g for w, g in zip(s, np.shape(c), strict=True))):
                raise InvalidArgumentError(
                    f"component {i} of an element for {self.describe()} has shape "
                    f"{np.shape(c)}, the queue holds shape {s}")

    # ---- operations ----------------------------------------------------------------------------
    def try_enqueue(self, elems: list[tuple]) -> bool:
        """Enqueue all of `elems` now if nothing is waiting ahead and they fit; else False."""
        with self._lock:
            if self.closed:
                raise CancelledError(f"{self.describe()} is closed; it takes no more elements",
                                     device=self.device)
            if self._enq or (self.capacity is not None
                             and self._size() + len(elems) > self.capacity):
                return False
            for e in elems:
                self._put(e)
            self.enqueued += len(elems)
            self._pump()
            return True

    def try_dequeue(self, n: int, mode: int) -> tuple | None:
        """The dequeue's result now if nothing waits ahead and enough is there; else None."""
        with self._lock:
            if self._deq:
                return None
            out = self._serve(n, mode)
            if out is not None:
                self._pump()
            return out

    def register(self, w: Waiter) -> None:
        """Queue a blocked operation (payload: ("enq", elems) or ("deq", n, mode)); it may
        complete at once."""
        with self._lock:
            self.waits_begun += 1
            if w.payload[0] == "enq":
                if self.closed:
                    w.fail(CancelledError(f"{self.describe()} is closed", device=self.device))
                    return
                w.payload = ["enq", deque(w.payload[1])]
                self._enq.append(w)
            else:
                self._deq.append(w)
            self._pump()

    def cancel(self, w: Waiter, error: OpError) -> None:
        """Remove a waiter (its step was aborted or its task cancelled) and fail it."""
        with self._lock:
            for lst in (self._enq, self._deq):
                try:
                    lst.remove(w)
                except ValueError:
                    pass
            w.fail(error)
            self._pump()  # a removed head may have blocked the ones behind it

    def close(self, cancel_pending_enqueues: bool) -> None:
        with self._lock:
            self.closed = True
            self._cancel_enqueues = self._cancel_enqueues or cancel_pending_enqueues
            self._pump()

    def size(self) -> int:
        with self._lock:
            return self._size()

    def waits(self) -> list[Wait]:
        with self._lock:
            return [w.record for w in (*self._enq, *self._deq)]

    # ---- the state machine (under _lock) ----------------------------------------------------
    def _serve(self, n: int, mode: int) -> tuple | None:
        avail = self._available()
        if mode == ONE:
            if avail >= 1:
                self.dequeued += 1
                return self._take()
        elif avail >= n or (mode == UP_TO and self.closed and avail > 0):
            k = min(n, avail)
            self.dequeued += k
            return self._batch([self._take() for _ in range(k)])
        return None

    def _room(self) -> bool:
        return self.capacity is None or self._size() < self.capacity

    def _pump(self) -> None:
        """Serve blocked operations in arrival order until none can progress."""
        progress = True
        while progress:
            progress = False
            while self._enq:
                w = self._enq[0]
                if self._cancel_enqueues:
                    self._enq.popleft()
                    w.fail(CancelledError(f"{self.describe()} was closed with "
                                          f"cancel_pending_enqueues=True", device=self.device))
                    continue
                rest = w.payload[1]
                while rest and self._room():
                    self._put(rest.popleft())
                    self.enqueued += 1
                    progress = True
                if rest:
                    break
                self._enq.popleft()
                w.finish(())
            while self._deq:
                w = self._deq[0]
                out = self._serve(w.payload[1], w.payload[2])
                if out is None:
                    break
                self._deq.popleft()
                w.finish(out)
                progress = True
        if self.closed:
            # what is left can never be served once nothing more can come in
            while self._deq and not self._enq:
                w = self._deq.popleft()
                n, mode = w.payload[1], w.payload[2]
                w.fail(OutOfRangeError(
                    f"{self.describe()} is closed and has insufficient elements (requested "
                    f"{n if mode != ONE else 1}, current size {self._size()})",
                    device=self.device))


class FIFOQueue(QueueBase):
    kind = "FIFOQueue"


class PaddingFIFOQueue(QueueBase):
    """A FIFO queue whose batches pad each component to the largest shape in the batch (with
    zeros); `shapes` may have unknown (None) dimensions."""

    kind = "PaddingFIFOQueue"

    def _batch(self, elems: list[tuple]) -> tuple:
        out = []
        for c in range(len(self.dtypes)):
            parts = [e[c] for e in elems]
            shape = tuple(max(p.shape[d] for p in parts) for d in range(parts[0].ndim))
            arr = np.zeros((len(parts), *shape), dtype=self.dtypes[c])
            for i, p in enumerate(parts):
                arr[(i, *(slice(0, s) for s in p.shape))] = p
            out.append(arr)
        return tuple(out)


class RandomShuffleQueue(QueueBase):
    """Dequeues a uniformly random element, keeping `min_after_dequeue` elements in reserve
    until closed (so the mix stays wide). Seeded: the same seed gives the same order for the
    same sequence of operations."""

    kind = "RandomShuffleQueue"

    def __init__(self, name: str, capacity: int | None, dtypes: list[np.dtype],
                 shapes: list[tuple | None] | None, device: str, min_after_dequeue: int = 0,
                 seed: int | None = None):
        super().__init__(name, capacity, dtypes, shapes, device)
        self.min_after_dequeue = int(min_after_dequeue)
        self._rng = np.random.default_rng(seed)

    def _init_items(self) -> None:
        self._items = []

    def _take(self) -> tuple:
        items = self._items
        i = int(self._rng.integers(len(items)))
        items[i], items[-1] = items[-1], items[i]
        return items.pop()

    def _available(self) -> int:
        if self.closed:
            return len(self._items)
        return max(0, len(self._items) - self.min_after_dequeue)


class PriorityQueue(QueueBase):
    """Dequeues the element with the smallest priority (component 0, an int64 scalar) first;
    ties in arrival order."""

    kind = "PriorityQueue"

    def _init_items(self) -> None:
        self._items = []
        self._seq = 0

    def _put(self, elem: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._items, (int(elem[0]), self._seq, elem))

    def _take(self) -> tuple:
        return heapq.heappop(self._items)[2]

    def _check_shapes(self, comps: tuple) -> None:
        if comps[0].shape != ():
            raise InvalidArgumentError(
                f"the priority (component 0) of an element for {self.describe()} must be an "
                f"int64 scalar, got shape {comps[0].shape}")
        super()._check_shapes(comps)


QUEUE_KINDS = {c.kind: c for c in (FIFOQueue, PaddingFIFOQueue, RandomShuffleQueue,
                                   PriorityQueue)}
