"""Bit-level and saturating integer ops: `af.bitwise` (bitwise_and/or/xor, invert,
left_shift, right_shift), `bitcast` (TF's shape rule: a wider source gains a last axis of
size src/dst bytes, a narrower one loses a last axis that must have dst/src elements),
`saturate_cast` (clamp to the target's range, then cast) and `rint` (round half to even).
Kernels in `devices.kernels.bitwise`; none of these is differentiable (as in TF).

    af.bitwise.left_shift(af.constant([1, 2]), 3)      # [8, 16]
    af.bitcast(af.constant([1.0]), af.int32)           # [1065353216]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from actorflow.ops import compare_ops, math_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift",
           "bitcast", "saturate_cast", "rint"]


def _bcast(ins: list[Tensor], a: dict) -> list:
    from actorflow import shapes
    s0, s1 = ins[0]._shape, ins[1]._shape
    return [(ins[0].dtype, shapes.broadcast(s0, s1) if s0 is not None and s1 is not None
             else None)]


for _op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor", "LeftShift", "RightShift"):
    define_op(_op, infer=_bcast)
    no_gradient(_op)
define_op("Invert", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)])
no_gradient("Invert")


def _ints(x: Any, y: Any, what: str) -> list[Tensor]:
    a = convert_to_tensor(x)
    b = convert_to_tensor(y, dtype=a.dtype) if not isinstance(y, Tensor) else y
    for t in (a, b):
        if not t.dtype.is_integer:
            raise TypeError(f"{what} takes integer tensors, got {t.dtype.name}; cast first")
    if a.dtype is not b.dtype:
        raise TypeError(f"{what}: both inputs need one dtype, got {a.dtype.name} and "
                        f"{b.dtype.name}")
    return [a, b]


def _binary(op: str, what: str) -> Any:
    def fn(x: Any, y: Any, name: str | None = None) -> Tensor:
        return apply_op(op, _ints(x, y, what), name=name or op)[0]
    fn.__name__ = what
    fn.__doc__ = f"TF's {op}, element-wise with broadcasting, on integers."
    return fn


bitwise_and = _binary("BitwiseAnd", "bitwise_and")
bitwise_or = _binary("BitwiseOr", "bitwise_or")
bitwise_xor = _binary("BitwiseXor", "bitwise_xor")
left_shift = _binary("LeftShift", "left_shift")
right_shift = _binary("RightShift", "right_shift")


def invert(x: Any, name: str | None = None) -> Tensor:
    """Every bit flipped (TF's Invert), on integers."""
    t = convert_to_tensor(x)
    if not t.dtype.is_integer:
        raise TypeError(f"invert takes an integer tensor, got {t.dtype.name}")
    return apply_op("Invert", [t], name=name or "Invert")[0]


def _bitcast_infer(ins: list[Tensor], a: dict) -> list:
    x, out = ins[0], a["type"]
    s = x._shape
    src, dst = x.dtype.np.itemsize, np.dtype(out.np).itemsize
    if s is None or src == dst:
        return [(out, s)]
    if src > dst:
        return [(out, (*s, src // dst))]
    if not s or (s[-1] is not None and s[-1] != dst // src):
        raise InvalidArgumentError(
            f"bitcast from {x.dtype.name} to {out.name}: the input's last axis must have "
            f"{dst // src} elements, got shape {list(s)}")
    return [(out, tuple(s[:-1]))]


define_op("Bitcast", infer=_bitcast_infer)
no_gradient("Bitcast")


def bitcast(input: Any, type: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """The same bytes read as `type` (no data changes; TF's Bitcast)."""
    x = convert_to_tensor(input)
    dt = dtypes.as_dtype(type)
    if x.dtype.is_string or dt.is_string or x.dtype.is_bool or dt.is_bool:
        raise TypeError(f"bitcast takes numeric dtypes, got {x.dtype.name} -> {dt.name}")
    return apply_op("Bitcast", [x], {"type": dt, "T": x.dtype}, name=name or "Bitcast")[0]


def saturate_cast(value: Any, dtype: Any, name: str | None = None) -> Tensor:
    """`value` clamped to `dtype`'s range (where the source's range is wider), then cast."""
    dt = dtypes.as_dtype(dtype)
    with name_scope(name, "saturate_cast"):
        x = convert_to_tensor(value)
        src, dst = np.dtype(x.dtype.np), np.dtype(dt.np)
        if dst.kind in "iu" and src.kind in "iuf":
            info = np.iinfo(dst)
            lo_src = np.finfo(src).min if src.kind == "f" else np.iinfo(src).min
            hi_src = np.finfo(src).max if src.kind == "f" else np.iinfo(src).max
            if lo_src < info.min:
                x = math_ops.maximum(x, compare_ops.cast(np.asarray(info.min, src), x.dtype))
            if hi_src > info.max:
                hi = np.asarray(info.max, src)
                if src.kind == "f" and float(hi) > info.max:  # float rounded up past the max
                    hi = np.nextafter(hi, np.asarray(0, src))
                x = math_ops.minimum(x, compare_ops.cast(hi, x.dtype))
        elif dst.kind == "f" and src.kind == "f" and dst.itemsize < src.itemsize:
            info = np.finfo(dst)
            x = compare_ops.clip_by_value(x, float(info.min), float(info.max))
        return compare_ops.cast(x, dt)


def rint(x: Any, name: str | None = None) -> Tensor:
    """The nearest integer value, halves to even (TF's Rint)."""
    return math_ops.round(x, name=name or "Rint")
