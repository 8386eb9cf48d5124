"""The GPU device actor on CuPy: the same actor, executor and kernel bodies as the CPU, with
CuPy as the array module, CuPy's memory pool as the device pool and one CUDA stream.

CuPy is imported lazily: `gpu_count()` is 0 (never an exception) on a machine without a
usable GPU or without CuPy, so such a machine lists no GPU device, and asking for one with soft
placement off fails in the placer with the list of devices that exist.

Design
------
- Kernels are the shared ``k.xp`` bodies; they enqueue work on the device's stream, which the
  actor makes current whenever it runs (`activate`), so the trio loop never blocks on the GPU.
- Host-to-device copies (a `_Recv` on the GPU of a host value) go through pinned memory on the
  stream; device-to-host copies (`_Recv` on a CPU of a GPU value) record a CUDA event and the
  Recv waits for it with `wait_event`, polling with a backoff sleep instead of blocking.
- The pool wraps CuPy's device memory pool: `empty`, `release` (CuPy frees on refcount),
  `statistics()` and a limit (`set_limit`) whose overflow raises ResourceExhausted.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import trio

from devices.device import Device
from devices.errors import ResourceExhaustedError, UnavailableError
from devices.pool import PoolStatistics


@functools.lru_cache(maxsize=1)
def _cupy() -> Any:
    import cupy  # noqa: PLC0415 - lazy: CuPy is optional and slow to import

    return cupy


def gpu_count() -> int:
    """How many GPUs CuPy can use here; 0 without CuPy, a driver or a device."""
    try:
        cp = _cupy()
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - cupy raises CUDARuntimeError and others when absent
        return 0


class CupyPool:
    """The device pool of a GPU: CuPy's memory pool with our statistics and limit."""

    def __init__(self, ordinal: int, limit: int | None, name: str):
        cp = _cupy()
        self.name = name
        self.limit = limit
        self.min_bytes = 1 << 62  # every allocation goes through CuPy's own pool
        self._ordinal = ordinal
        with cp.cuda.Device(ordinal):
            self._pool = cp.get_default_memory_pool()
            if limit is not None:
                self._pool.set_limit(size=limit)
        self._peak = 0

    def empty(self, shape: Any, dtype: Any, node: str | None = None) -> Any:
        cp = _cupy()
        try:
            out = cp.empty(tuple(shape), dtype=dtype)
        except cp.cuda.memory.OutOfMemoryError as e:
            raise ResourceExhaustedError(
                f"out of GPU memory on {self.name}: {e}; raise the device's memory limit or "
                f"use smaller batches", node=node, device=self.name) from None
        used = self._pool.used_bytes()
        if used > self._peak:
            self._peak = used
        return out

    def release(self, value: Any) -> None:
        """CuPy returns a block to its pool when the last reference goes; nothing to do."""

    def reset_peak(self) -> None:
        self._peak = self._pool.used_bytes()

    def trim(self) -> None:
        self._pool.free_all_blocks()

    def statistics(self) -> PoolStatistics:
        used = self._pool.used_bytes()
        self._peak = max(self._peak, used)
        total = self._pool.total_bytes()
        return PoolStatistics(used, self._peak, total - used, self.limit, 0, 0,
                              self._pool.n_free_blocks())


class GpuDevice(Device):
    """A CUDA GPU driven by CuPy."""

    device_type = "GPU"

    def __init__(self, name: str, ordinal: int = 0, *, memory_limit: int | None = None,
                 **kwargs: Any):
        if ordinal >= gpu_count():
            raise UnavailableError(f"no GPU {ordinal} on this machine ({gpu_count()} found)")
        super().__init__(name, memory_limit=None, **kwargs)
        cp = _cupy()
        self.xp = cp
        self.ordinal = ordinal
        with cp.cuda.Device(ordinal):
            self.stream = cp.cuda.Stream(non_blocking=True)
        self.pool = CupyPool(ordinal, memory_limit, name)  # type: ignore[assignment]

    def thread_threshold_us(self) -> float:
        """Never: GPU kernels only enqueue work on the device's stream, which is current on
        the actor's thread alone (a worker thread would launch on its default stream)."""
        return float("inf")

    def activate(self) -> None:
        """Make this device and its stream current on the calling thread."""
        cp = _cupy()
        cp.cuda.Device(self.ordinal).use()
        self.stream.use()

    def to_device(self, host_value: Any) -> Any:
        """Copy a host array to this GPU on its stream, through pinned memory."""
        cp = _cupy()
        self.activate()
        host_value = np.ascontiguousarray(host_value)
        pinned = cp.cuda.alloc_pinned_memory(host_value.nbytes)
        staged = np.frombuffer(pinned, host_value.dtype, host_value.size).reshape(
            host_value.shape)
        staged[...] = host_value
        out = cp.empty(host_value.shape, host_value.dtype)
        out.set(staged, stream=self.stream)
        return out

    async def to_host(self, value: Any) -> np.ndarray:
        """Copy a GPU array to the host without blocking the trio loop."""
        cp = _cupy()
        self.activate()
        out = cp.cuda.alloc_pinned_memory(value.nbytes)
        host = np.frombuffer(out, value.dtype, value.size).reshape(value.shape)
        value.get(stream=self.stream, out=host, blocking=False)
        event = cp.cuda.Event(disable_timing=True)
        event.record(self.stream)
        await wait_event(event)
        return host.copy()


async def wait_event(event: Any, first_sleep: float = 2e-5, longest_sleep: float = 1e-3) -> None:
    """Wait for a CUDA event by polling with a growing sleep: the trio loop stays free."""
    delay = first_sleep
    while not event.done:
        await trio.sleep(delay)
        delay = min(delay * 2, longest_sleep)
