"""Output buffers of kernels: a kernel whose output's static shape is known takes its buffer
from the device's memory pool (`devices.pool`), so steps reuse memory instead of allocating."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devices.kernels.registry import KernelContext


def out_allocator(k: KernelContext, index: int = 0) -> Callable[[], Any] | None:
    """A function returning a pooled output buffer for output `index`, or None when the
    static shape is not fully known or the buffer is too small to be worth pooling."""
    shape = k.out_shapes[index] if index < len(k.out_shapes) else None
    if shape is None or any(d is None for d in shape):
        return None
    dtype = k.out_dtypes[index].np
    n = dtype.itemsize
    for d in shape:
        n *= d
    pool = k.device.pool
    if n < pool.min_bytes:
        return None
    name = k.name
    shape = tuple(shape)
    return lambda: pool.empty(shape, dtype, name)
