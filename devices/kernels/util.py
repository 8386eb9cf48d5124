"""Small building blocks for kernel factories: pooled output buffers, ufunc kernels."""

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


# Relative cost per element of ufuncs against a plain add (transcendentals cost more).
_PASSES = {"tanh": 6.0, "exp": 4.0, "log": 4.0, "sqrt": 1.5, "power": 8.0, "sin": 6.0,
           "cos": 6.0, "divide": 1.5, "true_divide": 1.5, "arctan": 6.0, "expm1": 4.0,
           "log1p": 4.0}
_BYTES_PER_US = 4e3   # ~4 GB/s for a simple element-wise pass on one core


def elementwise_cost(k: KernelContext, passes: float = 1.0) -> float:
    """Estimated microseconds of an element-wise kernel from its static output size (0 when
    unknown, so such kernels stay inline)."""
    shape = k.out_shapes[0] if k.out_shapes else None
    if shape is None or any(d is None for d in shape):
        return 0.0
    n = k.out_dtypes[0].np.itemsize
    for d in shape:
        n *= d
    return passes * n / _BYTES_PER_US


def ufunc_kernel(name: str) -> Callable[[KernelContext], Any]:
    """A kernel factory applying ``xp.<name>`` (a ufunc) to the inputs, into a pooled buffer
    when the output is large and its shape known."""

    def factory(k: KernelContext) -> Any:
        f = getattr(k.xp, name)
        alloc = out_allocator(k)
        if alloc is None:
            return lambda *args: (f(*args),)
        return lambda *args: (f(*args, out=alloc()),)

    passes = _PASSES.get(name, 1.0)
    factory.default_cost = lambda k: elementwise_cost(k, passes)  # type: ignore[attr-defined]
    return factory
