"""Kernels of the math ops, written once against the device's array module (NumPy/CuPy)."""

from __future__ import annotations

from typing import Any

from devices.kernels.registry import KernelContext, register_kernel
from devices.kernels.util import out_allocator, ufunc_kernel

for _op, _ufunc in (("Add", "add"), ("Sub", "subtract"), ("Mul", "multiply"),
                    ("Neg", "negative")):
    register_kernel(_op)(ufunc_kernel(_ufunc))


@register_kernel("AddN")
def _add_n(k: KernelContext) -> Any:
    xp = k.xp
    alloc = out_allocator(k)

    def compute(*xs: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else None
        acc = xp.add(xs[0], xs[1], out=out)
        for x in xs[2:]:
            xp.add(acc, x, out=acc)
        return (acc,)
    return compute


def _reduction(name: str) -> Any:
    def factory(k: KernelContext) -> Any:
        f = getattr(k.xp, name)
        keep = bool(k.attrs.get("keepdims", False))
        if len(k.in_dtypes) > 1:
            return lambda x, axes: (k.xp.asarray(f(x, axis=tuple(int(a) for a in
                                    k.xp.reshape(axes, -1)), keepdims=keep)),)
        axis = k.attrs.get("axis")
        axis = None if axis is None else tuple(axis)
        xp = k.xp
        return lambda x: (xp.asarray(f(x, axis=axis, keepdims=keep)),)
    return factory


register_kernel("Sum")(_reduction("sum"))
