"""Integer bit kernels (CPU): TF's BitwiseAnd/Or/Xor, Invert, LeftShift, RightShift (shift
counts outside [0, bits) are clamped into it, as TF's kernels do) and Bitcast (the same bytes
read as another dtype: NumPy's `view`, reshaped as TF's op shapes it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.kernels.registry import KernelContext, register_kernel

_BINARY = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
           "BitwiseXor": np.bitwise_xor}


def _binary(fn: Any) -> Any:
    def factory(k: KernelContext) -> Any:
        return lambda x, y: (fn(np.asarray(x), np.asarray(y)),)
    return factory


for _op, _fn in _BINARY.items():
    register_kernel(_op, device_types=("CPU",))(_binary(_fn))


@register_kernel("Invert", device_types=("CPU",))
def _invert(k: KernelContext) -> Any:
    return lambda x: (np.invert(np.asarray(x)),)


def _shift(left: bool) -> Any:
    def factory(k: KernelContext) -> Any:
        def compute(x: Any, y: Any) -> tuple:
            x = np.asarray(x)
            bits = x.dtype.itemsize * 8
            s = np.clip(np.asarray(y), 0, bits - 1).astype(x.dtype)
            return ((np.left_shift(x, s) if left else np.right_shift(x, s)).astype(x.dtype),)
        return compute
    return factory


register_kernel("LeftShift", device_types=("CPU",))(_shift(True))
register_kernel("RightShift", device_types=("CPU",))(_shift(False))


@register_kernel("Bitcast", device_types=("CPU",))
def _bitcast(k: KernelContext) -> Any:
    out = np.dtype(k.attrs["type"].np)

    def compute(x: Any) -> tuple:
        a = np.ascontiguousarray(np.asarray(x))
        src = a.dtype.itemsize
        if src == out.itemsize:
            return (a.view(out),)
        if src > out.itemsize:
            return (a.reshape(*a.shape, 1).view(out).reshape(*a.shape, src // out.itemsize),)
        return (a.view(out).reshape(a.shape[:-1]),)
    return compute
