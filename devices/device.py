"""The device actor: one trio task per device, owning its kernels, memory pool and resources.

Design
------
A `Device` is driven by one task, `serve()`, that takes *work items* from a bounded mailbox
(a trio memory channel) and runs them one at a time. Only the actor touches the device's state
(pool, resources, kernels), so kernels need no locks.

A work item is any object with ``async def run(device)``; the scheduler's executor supplies them
(a step to start, the continuation of a step after an asynchronous kernel finished). A work item
never blocks on other devices: it runs what is ready, parks what waits (a Recv, a worker-thread
kernel) as a task in the device's nursery, and returns; that task posts a continuation when it
is done.

The actor's identity is its *baton* (`baton`, a lock): whoever holds it is the actor for that
moment. Normally that is the serve task, which takes it around every work item. A synchronous
caller may take it too and run a step that needs no waiting inline on its own thread (the same
executor code), which saves two thread wake-ups per step (~100 us on a small VM); the moment
that step would wait (an asynchronous kernel), it hands the step to the serve task.

State (owned by the serve task):
  pool        the memory pool (`statistics()`, limit -> ResourceExhausted)
  resources   containers of variables and other long-lived state
  _mailbox    bounded channel of work items; depth shows in `statistics()`
  _nursery    where asynchronous kernels wait; cancelled when the device closes

    async with trio.open_nursery() as nursery:
        dev = CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
        await nursery.start(dev.serve)
        dev.submit(item)                    # from the trio thread
        dev.submit_threadsafe(item)         # from any other thread
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from devices.errors import UnavailableError
from devices.intra_op import shared_pool
from devices.pool import HostPool, PoolStatistics
from devices.resources import ResourceMgr


@dataclass(frozen=True)
class DeviceStatistics:
    name: str
    mailbox_depth: int
    items_run: int
    async_kernels_waiting: int
    pool: PoolStatistics


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
        self._send, self._recv = trio.open_memory_channel[Any](mailbox_size)
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._threads = trio.CapacityLimiter(worker_threads)
        self._items_run = 0
        self._waiting = 0
        self._closed = False
        self.baton = threading.Lock()

    # -- the actor --------------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run work items until the device is closed (cancel the surrounding nursery)."""
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            try:
                async for item in self._recv:
                    self._items_run += 1
                    await self._take_baton()
                    try:
                        await item.run(self)
                    finally:
                        self.baton.release()
            finally:
                self._closed = True
                nursery.cancel_scope.cancel()

    async def _take_baton(self) -> None:
        """Wait (without blocking the trio loop) while a sync caller is running inline."""
        delay = 2e-5
        while not self.baton.acquire(blocking=False):
            await trio.sleep(delay)
            delay = min(delay * 2, 1e-3)

    def submit(self, item: Any) -> None:
        """Queue a work item; call from the device's trio thread."""
        if self._closed:
            raise UnavailableError(f"device {self.name} is closed", device=self.name)
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            assert self._nursery is not None
            self._nursery.start_soon(self._send.send, item)

    def submit_threadsafe(self, item: Any) -> None:
        """Queue a work item from any thread (a sync API call, a worker thread)."""
        if self._token is None or self._closed:
            raise UnavailableError(f"device {self.name} is not running", device=self.name)
        self._token.run_sync_soon(self.submit, item)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start an asynchronous kernel's wait in the device's nursery."""
        assert self._nursery is not None, "device is not serving"
        self._nursery.start_soon(fn, *args)

    async def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a large kernel on a worker thread (NumPy releases the GIL) so branches overlap."""
        self._waiting += 1
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._threads)
        finally:
            self._waiting -= 1

    def activate(self) -> None:
        """Make this device current on the calling thread (a GPU sets its stream)."""

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self.name, self._send.statistics().current_buffer_used,
                                self._items_run, self._waiting, self.pool.statistics())

    def close(self) -> None:
        self._closed = True
        self._send.close()

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
