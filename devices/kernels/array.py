"""Kernels of the array ops (shapes, reshape, fill, broadcasting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.kernels.registry import KernelContext, register_kernel


@register_kernel("Shape")
def _shape(k: KernelContext) -> Any:
    dt = k.out_dtypes[0].np
    return lambda x: (np.array(x.shape, dtype=dt),)


@register_kernel("Reshape")
def _reshape(k: KernelContext) -> Any:
    xp = k.xp
    return lambda x, s: (xp.reshape(x, [int(d) for d in s]),)


@register_kernel("Fill")
def _fill(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    return lambda dims, v: (xp.full([int(d) for d in dims], v, dtype=dt),)


@register_kernel("ZerosLike")
def _zeros_like(k: KernelContext) -> Any:
    xp = k.xp
    return lambda x: (xp.zeros_like(x),)


@register_kernel("OnesLike")
def _ones_like(k: KernelContext) -> Any:
    xp = k.xp
    return lambda x: (xp.ones_like(x),)


@register_kernel("BroadcastTo")
def _broadcast_to(k: KernelContext) -> Any:
    xp = k.xp
    return lambda x, s: (xp.broadcast_to(x, [int(d) for d in s]),)


@register_kernel("BroadcastGradientArgs")
def _bcast_grad_args(k: KernelContext) -> Any:
    def compute(sx: Any, sy: Any) -> tuple[Any, Any]:
        sx, sy = [int(d) for d in sx], [int(d) for d in sy]
        n = max(len(sx), len(sy))
        px, py = [1] * (n - len(sx)) + sx, [1] * (n - len(sy)) + sy
        rx = [i for i in range(n) if px[i] == 1 and py[i] != 1 or i < n - len(sx)]
        ry = [i for i in range(n) if py[i] == 1 and px[i] != 1 or i < n - len(sy)]
        return np.array(rx, np.int32), np.array(ry, np.int32)
    return compute


@register_kernel("ReducedShape")
def _reduced_shape(k: KernelContext) -> Any:
    def compute(s: Any, axes: Any) -> tuple[Any]:
        out = np.array(s, np.int32).copy()
        rank = len(out)
        out[[int(a) % rank for a in np.reshape(axes, -1)]] = 1
        return (out,)
    return compute
