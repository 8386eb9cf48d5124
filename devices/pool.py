"""The host memory pool of a CPU device: reusable buffers, accounting and a limit.

Kernels ask for output buffers with `empty(shape, dtype)`; buffers of at least `min_bytes`
come from the pool, smaller ones straight from NumPy (the pool costs more than malloc there).
A pooled buffer is a view of a uint8 *block*. The executor calls `release(value)` after a
value's last consumer; the block goes back to the free list only when nothing else refers to
it — no view, no variable, no fetched result — which `sys.getrefcount` tells exactly, so reuse
never corrupts a live view.

State (owned by the device actor; one lock, because kernels the actor moves to worker threads
allocate their outputs here too):
  _live:     id(block) -> (block, size) for blocks handed out and possibly referenced
  _released: ids the executor released; checked for real freedom at the next allocation
  _free:     size -> [block] blocks nobody references, ready for reuse
  _in_use:   bytes of live blocks; _peak: its maximum since `reset_peak()`

    pool = HostPool(limit=1 << 30, name="/cpu:0")
    out = pool.empty((256, 1024), np.float32)   # np.matmul(a, b, out=out)
    pool.release(out); del out                  # the block is reusable from now on
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from devices.errors import ResourceExhaustedError

_ALIGN = 4096
# Refcount of a block held only by the pool: the _live tuple, the local name, getrefcount's arg.
_FREE_REFS = 3


@dataclass(frozen=True)
class PoolStatistics:
    bytes_in_use: int
    peak_bytes_in_use: int
    bytes_cached: int
    limit: int | None
    hits: int
    misses: int
    live_blocks: int


class HostPool:
    """A size-class pool of host buffers with view-safe reuse and a hard limit."""

    def __init__(self, limit: int | None = None, name: str = "/cpu:0", min_bytes: int = 65536):
        self.limit = limit
        self.name = name
        self.min_bytes = min_bytes
        self._live: dict[int, tuple[np.ndarray, int]] = {}
        self._released: list[int] = []
        self._free: dict[int, list[np.ndarray]] = {}
        self._cached = 0
        self._in_use = 0
        self._peak = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def empty(self, shape: Any, dtype: Any, node: str | None = None) -> np.ndarray:
        """An uninitialised array of `shape` and `dtype`, pooled if large enough."""
        dt = np.dtype(dtype)
        shape = tuple(shape)
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dt.itemsize
        if nbytes < self.min_bytes or dt.hasobject:  # string tensors hold references: never pooled
            return np.empty(shape, dt)
        size = -(-nbytes // _ALIGN) * _ALIGN
        with self._lock:
            if self._released:
                self._reclaim()
            free = self._free.get(size)
            if free:
                block = free.pop()
                self._cached -= size
                self._hits += 1
            else:
                self._check_limit(size, node)
                block = np.empty(size, np.uint8)
                self._misses += 1
            self._live[id(block)] = (block, size)
            self._in_use += size
            if self._in_use > self._peak:
                self._peak = self._in_use
        return block[:nbytes].view(dt).reshape(shape)

    def release(self, value: Any) -> None:
        """The executor is done with `value`; reuse its block once nothing refers to it."""
        base = getattr(value, "base", None)
        if base is not None and id(base) in self._live:
            with self._lock:
                self._released.append(id(base))

    def _reclaim(self, everything: bool = False) -> None:
        ids = list(self._live) if everything else self._released
        keep = []
        for bid in ids:
            entry = self._live.get(bid)
            if entry is None:
                continue
            block, size = entry
            del entry
            if sys.getrefcount(block) <= _FREE_REFS:
                del self._live[bid]
                self._in_use -= size
                self._free.setdefault(size, []).append(block)
                self._cached += size
            elif not everything:
                keep.append(bid)
        self._released = [] if everything else keep[-256:]

    def _check_limit(self, size: int, node: str | None) -> None:
        if self.limit is None or self._in_use + self._cached + size <= self.limit:
            return
        self._reclaim(everything=True)
        if self._in_use + self._cached + size > self.limit:
            self.trim()
        if self._in_use + size > self.limit:
            raise ResourceExhaustedError(
                f"out of memory on {self.name}: allocating {size:,} bytes with {self._in_use:,} "
                f"in use would pass the limit of {self.limit:,} bytes; raise the device's memory "
                f"limit (ConfigProto) or use smaller batches", node=node, device=self.name)

    def collect(self) -> int:
        """Return to the free list every live block nothing refers to any more (the values of
        an aborted step, which the executor never released); returns the bytes freed."""
        with self._lock:
            before = self._in_use
            self._reclaim(everything=True)
            return before - self._in_use

    def trim(self) -> None:
        """Drop every cached free block (call with the lock held, or from the actor)."""
        self._free.clear()
        self._cached = 0

    def reset_peak(self) -> None:
        with self._lock:
            self._reclaim(everything=True)
            self._peak = self._in_use

    def statistics(self) -> PoolStatistics:
        with self._lock:
            self._reclaim(everything=True)
            return PoolStatistics(self._in_use, self._peak, self._cached, self.limit,
                                  self._hits, self._misses, len(self._live))
