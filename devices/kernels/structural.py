"""Kernels of the structural ops: constants, placeholders, identity, no-op, group."""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


@register_kernel("Const")
def _const(k: KernelContext) -> Any:
    value = k.attrs["value"]
    if k.device.device_type != "CPU":
        value = k.xp.asarray(value)
    elif type(value) is np.ndarray and value.ndim == 0 and value.dtype.kind in "fiub":
        # a NumPy scalar: the scalar kernels it feeds then run NumPy's scalar math (~80 ns)
        # instead of the ufunc machinery (0.5-2 us); it reads like a 0-d array everywhere
        value = value[()]
    out = (value,)
    return lambda: out


@register_kernel("Placeholder")
def _placeholder(k: KernelContext) -> Any:
    shape = k.attrs.get("shape")
    dims = "<unknown>" if shape is None else "(" + ", ".join(
        "?" if d is None else str(d) for d in shape) + ")"
    raise InvalidArgumentError(
        f"you must feed a value for placeholder '{k.name}' with dtype "
        f"{k.out_dtypes[0].name} and shape {dims}: pass it in feed_dict", node=k.name)


def _identity_factory(k: KernelContext) -> Any:
    return lambda x: (x,)


for _op in ("Identity", "StopGradient", "PreventGradient", "Snapshot", "PlaceholderWithDefault"):
    register_kernel(_op)(_identity_factory)


def _noop_factory(k: KernelContext) -> Any:
    return lambda *args: ()


for _op in ("NoOp",):
    register_kernel(_op)(_noop_factory)
