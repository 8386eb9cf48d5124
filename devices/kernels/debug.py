"""Kernels of the debugging ops: Print (writes its data to stderr, passes its input through),
Assert (raises InvalidArgument when its condition is false) and CheckNumerics (raises on a
NaN or infinity). All stateful: never merged or folded away."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _show(v: Any, summarize: int) -> str:
    a = np.asarray(v).reshape(-1)
    items = [str(x) for x in a[:summarize]]
    more = "..." if a.size > summarize else ""
    return "[" + " ".join(items) + more + "]" if np.ndim(v) else str(np.asarray(v)[()])


@register_kernel("Print", stateful=True, device_types=("CPU",))
def _print(k: KernelContext) -> Any:
    message = str(k.attrs.get("message") or "")
    first_n = int(k.attrs.get("first_n") or -1)
    summarize = int(k.attrs.get("summarize") or 3)
    count = [0]

    def compute(x: Any, *data: Any) -> tuple[Any]:
        if first_n < 0 or count[0] < first_n:
            count[0] += 1
            sys.stderr.write(message + "".join(_show(d, summarize) for d in data) + "\n")
            sys.stderr.flush()
        return (x,)
    return compute


@register_kernel("Assert", stateful=True, device_types=("CPU",))
def _assert(k: KernelContext) -> Any:
    summarize = int(k.attrs.get("summarize") or 3)

    def compute(cond: Any, *data: Any) -> tuple:
        if not bool(np.asarray(cond)):
            shown = ", ".join(_show(d, summarize) for d in data)
            raise InvalidArgumentError(f"assertion failed: [{shown}]")
        return ()
    return compute


@register_kernel("CheckNumerics", stateful=True)
def _check_numerics(k: KernelContext) -> Any:
    xp = k.xp
    message = str(k.attrs.get("message") or "")

    def compute(x: Any) -> tuple[Any]:
        if not bool(xp.isfinite(x).all()):
            what = "NaN" if bool(xp.isnan(x).any()) else "Inf"
            raise InvalidArgumentError(f"{message} : Tensor had {what} values")
        return (x,)
    return compute
