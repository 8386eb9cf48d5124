"""Kernels of scans, sorting and reversal: Cumsum, Cumprod (exclusive / reverse), TopKV2,
Unique, ReverseV2; and the element-wise special functions Lgamma, Digamma, Polygamma, Erf,
Erfc (SciPy's on a CPU).

Axes and flags are static attributes; k for TopKV2 is an input (a scalar), as in TF.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _scan(name: str) -> Any:
    def factory(k: KernelContext) -> Any:
        xp = k.xp
        f = getattr(xp, name)
        exclusive = bool(k.attrs.get("exclusive", False))
        reverse = bool(k.attrs.get("reverse", False))
        ident = 0 if name == "cumsum" else 1

        def compute(x: Any, axis: Any) -> tuple[Any]:
            if x.ndim == 0:
                raise InvalidArgumentError(f"{name} needs a tensor of rank >= 1, got a scalar")
            ax = int(axis)
            if not -x.ndim <= ax < x.ndim:
                raise InvalidArgumentError(f"{name}: axis {ax} is out of range for rank "
                                           f"{x.ndim}")
            y = xp.flip(x, ax) if reverse else x
            out = f(y, axis=ax, dtype=x.dtype)
            if exclusive:
                out = xp.roll(out, 1, axis=ax)
                idx = [slice(None)] * x.ndim
                idx[ax] = slice(0, 1)
                out[tuple(idx)] = ident
            if reverse:
                out = xp.flip(out, ax)
            return (xp.ascontiguousarray(out),)
        return compute
    return factory


register_kernel("Cumsum")(_scan("cumsum"))
register_kernel("Cumprod")(_scan("cumprod"))


@register_kernel("TopKV2")
def _top_k(k: KernelContext) -> Any:
    xp = k.xp
    out_idx = k.out_dtypes[1].np

    def compute(x: Any, kk: Any) -> tuple[Any, Any]:
        n = int(kk)
        if x.ndim == 0:
            raise InvalidArgumentError("top_k needs a tensor of rank >= 1, got a scalar")
        if n < 0 or n > x.shape[-1]:
            raise InvalidArgumentError(f"top_k: k={n} must be in [0, {x.shape[-1]}] (the last "
                                       f"dimension)")
        # a stable sort of -x keeps the lower index first among equal values, as TF does
        key = -x.astype(np.float64) if x.dtype.kind in "iub" else -x
        order = xp.argsort(key, axis=-1, kind="stable")[..., :n]
        vals = xp.take_along_axis(x, order, axis=-1)
        return vals, order.astype(out_idx)
    return compute


@register_kernel("Unique")
def _unique(k: KernelContext) -> Any:
    xp = k.xp
    idx_dt = k.out_dtypes[1].np

    def compute(x: Any) -> tuple[Any, Any]:
        if x.ndim != 1:
            raise InvalidArgumentError(f"unique needs a 1-D tensor, got shape {x.shape}")
        vals, first, inv = np.unique(x, return_index=True, return_inverse=True)
        # TF orders the unique values by first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return xp.asarray(vals[order]), xp.asarray(rank[inv.reshape(-1)].astype(idx_dt))
    return compute


@register_kernel("ReverseV2")
def _reverse(k: KernelContext) -> Any:
    xp = k.xp

    def compute(x: Any, axis: Any) -> tuple[Any]:
        axes = tuple(int(a) for a in np.reshape(np.asarray(axis), -1))
        for a in axes:
            if not -x.ndim <= a < x.ndim:
                raise InvalidArgumentError(f"reverse: axis {a} is out of range for rank "
                                           f"{x.ndim}")
        return (xp.ascontiguousarray(xp.flip(x, axes)) if axes else x,)
    return compute


def _special(fn: str) -> Any:
    def factory(k: KernelContext) -> Any:
        import scipy.special as sp
        f = {"lgamma": sp.gammaln, "digamma": sp.digamma, "erf": sp.erf,
             "erfc": sp.erfc}[fn]
        dt = k.out_dtypes[0].np
        return lambda x: (np.asarray(f(x), dtype=dt),)
    return factory


for _op, _fn in (("Lgamma", "lgamma"), ("Digamma", "digamma"), ("Erf", "erf"),
                 ("Erfc", "erfc")):
    register_kernel(_op, device_types=("CPU",))(_special(_fn))


@register_kernel("Polygamma", device_types=("CPU",))
def _polygamma(k: KernelContext) -> Any:
    import scipy.special as sp
    dt = k.out_dtypes[0].np

    def compute(a: Any, x: Any) -> tuple[Any]:
        n = np.asarray(a)
        if np.any(n != np.floor(n)) or np.any(n < 0):
            raise InvalidArgumentError("polygamma: the order a must be a non-negative integer")
        return (np.asarray(sp.polygamma(n.astype(np.int64), x), dtype=dt),)
    return compute
