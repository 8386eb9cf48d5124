"""Comparisons, logic, selection, clipping and casts; and the conversion helpers every math
op shares (`convert_operands`, `check_kind`). Re-exported by `math_ops`, which imports this
module (never the other way round).

    mask = af.logical_and(x > 0, af.is_finite(x))     # Greater, IsFinite, LogicalAnd
    y = af.where(mask, x, 0.0)                         # SelectV2
    z = af.clip_by_value(af.cast(i, af.float32), -1.0, 1.0)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    check_same_dtype,
    constant,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import array_ops
from devices import dtypes
from devices.dtypes import DType
from devices.errors import InvalidArgumentError, OpError

__all__ = [
    "cast", "clip_by_value", "equal", "greater", "greater_equal", "is_finite", "is_inf",
    "is_nan", "less", "less_equal", "logical_and", "logical_not", "logical_or", "logical_xor",
    "not_equal", "where",
]

# dtype classes an op accepts
NUM, FLOAT, BOOL, ANY = "numeric", "floating-point", "bool", "any"


def check_kind(t: Tensor, kind: str, what: str) -> None:
    dt = t.dtype
    ok = (kind == ANY and not dt.is_resource
          or kind == NUM and (dt.is_floating or dt.is_integer)
          or kind == FLOAT and dt.is_floating
          or kind == BOOL and dt.is_bool)
    if not ok:
        fix = "; convert it with af.cast" if not dt.is_resource else ""
        raise InvalidArgumentError(
            f"{what} needs a {kind} tensor, got {dt.name} ('{t.name}'){fix}")


def is_tensor_like(v: Any) -> bool:
    return isinstance(v, Tensor) or hasattr(v, "_as_tensor")


def convert_operands(values: list[Any], what: str, dtype: Any = None) -> list[Tensor]:
    """Tensors for `values`: tensor-likes as they are, other values in the dtype of the first
    tensor (or of the first NumPy array when there is no tensor)."""
    vs = [convert_to_tensor(v) if is_tensor_like(v) else v for v in values]
    if dtype is None:
        dtype = next((v.dtype for v in vs if isinstance(v, Tensor)), None)
    if dtype is None:
        dtype = next((dtypes.as_dtype(v.dtype) for v in vs
                      if isinstance(v, np.ndarray | np.generic)), None)
    try:
        return [v if isinstance(v, Tensor) else convert_to_tensor(v, dtype=dtype) for v in vs]
    except OpError as e:
        fix = "; cast the tensor with af.cast" if "without loss" in e.message else ""
        raise InvalidArgumentError(f"while building op '{what}': {e.message}{fix}") from None


# ids of the tensors af.gradients differentiates with respect to, while it builds (`wrt`)
_WRT: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("wrt", default=frozenset())


@contextlib.contextmanager
def wrt(xs: Any) -> Iterator[None]:
    """While gradients with respect to `xs` are built, a constant among them needs one."""
    token = _WRT.set(frozenset(id(x) for x in xs))
    try:
        yield
    finally:
        _WRT.reset(token)


def is_constant(t: Tensor) -> bool:
    """True if `t` cannot need a gradient: a constant that is not one of the tensors the
    gradients being built are taken with respect to (as `af.gradients(y, [c])` for a
    constant c wants); its gradient is then not built."""
    return t.op.type == "Const" and id(t) not in _WRT.get()


def binary_infer(kind: str, out: DType | None = None) -> Any:
    """Inference of a broadcasting binary op: one dtype of class `kind`; output `out` or that
    dtype."""
    def infer(ins: list[Tensor], attrs: dict) -> list:
        x, y = ins
        if x.dtype is not y.dtype:
            raise InvalidArgumentError(
                f"the inputs have different dtypes: '{x.name}' is {x.dtype.name} and "
                f"'{y.name}' is {y.dtype.name}; convert one with af.cast")
        check_kind(x, kind, "this op")
        return [(out or x.dtype, shapes.broadcast(x._shape, y._shape))]
    return infer


def unary_infer(kind: str, out: DType | None = None) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        check_kind(ins[0], kind, "this op")
        return [(out or ins[0].dtype, ins[0]._shape)]
    return infer


def binary(op: str, x: Any, y: Any, name: str | None) -> Tensor:
    """Build the binary op `op` of x and y, converting Python values to the tensor's dtype."""
    x, y = convert_operands([x, y], name or op)
    return apply_op(op, [x, y], name=name or op)[0]


# ---- comparisons and logic --------------------------------------------------------------
for _t in ("Less", "LessEqual", "Greater", "GreaterEqual"):
    define_op(_t, infer=binary_infer(NUM, dtypes.bool_))
    no_gradient(_t)
for _t in ("Equal", "NotEqual"):
    define_op(_t, infer=binary_infer(ANY, dtypes.bool_))
    no_gradient(_t)
for _t in ("LogicalAnd", "LogicalOr"):
    define_op(_t, infer=binary_infer(BOOL))
    no_gradient(_t)
define_op("LogicalNot", infer=unary_infer(BOOL))
no_gradient("LogicalNot")
for _t in ("IsFinite", "IsNan", "IsInf"):
    define_op(_t, infer=unary_infer(FLOAT, dtypes.bool_))
    no_gradient(_t)


def equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Equal", x, y, name)


def not_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("NotEqual", x, y, name)


def less(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Less", x, y, name)


def less_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("LessEqual", x, y, name)


def greater(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Greater", x, y, name)


def greater_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("GreaterEqual", x, y, name)


def logical_and(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("LogicalAnd", x, y, name)


def logical_or(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("LogicalOr", x, y, name)


def logical_xor(x: Any, y: Any, name: str | None = None) -> Tensor:
    x, y = convert_operands([x, y], name or "LogicalXor", dtype=dtypes.bool_)
    return apply_op("NotEqual", [x, y], name=name or "LogicalXor")[0]



def _unary(op: str, x: Any, name: str | None) -> Tensor:
    return apply_op(op, [convert_to_tensor(x)], name=name or op)[0]


def is_finite(x: Any, name: str | None = None) -> Tensor:
    return _unary("IsFinite", x, name)


def is_nan(x: Any, name: str | None = None) -> Tensor:
    return _unary("IsNan", x, name)


def is_inf(x: Any, name: str | None = None) -> Tensor:
    return _unary("IsInf", x, name)


def logical_not(x: Any, name: str | None = None) -> Tensor:
    return _unary("LogicalNot", x, name)




# ---- cast -------------------------------------------------------------------------------
def _cast_infer(ins: list[Tensor], attrs: dict) -> list:
    check_kind(ins[0], ANY, "cast")
    return [(dtypes.as_dtype(attrs["DstT"]), ins[0]._shape)]


define_op("Cast", infer=_cast_infer)


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    """`x` converted element-wise to `dtype` (floats to ints truncate toward zero; non-zero
    becomes True). Returns `x` itself when it already has that dtype."""
    dt = dtypes.as_dtype(dtype)
    x = convert_to_tensor(x, preferred_dtype=dt) if not is_tensor_like(x) else \
        convert_to_tensor(x)
    if x.dtype is dt:
        return x
    return apply_op("Cast", [x], {"DstT": dt}, name=name or "Cast")[0]


@register_gradient("Cast")
def _cast_grad(op: Operation, grad: Tensor) -> list[Any]:
    src = op.inputs[0].dtype
    if src.is_floating and grad.dtype.is_floating:
        return [cast(grad, src)]
    return [None]


# ---- selection and clipping -------------------------------------------------------------
def _select_infer(ins: list[Tensor], attrs: dict) -> list:
    c, x, y = ins
    check_kind(c, BOOL, "the condition of where")
    if x.dtype is not y.dtype:
        raise InvalidArgumentError(
            f"where(cond, x, y) needs x and y of one dtype, got {x.dtype.name} ('{x.name}') "
            f"and {y.dtype.name} ('{y.name}'); convert one with af.cast")
    return [(x.dtype, shapes.broadcast_all([c._shape, x._shape, y._shape]))]


def _where_infer(ins: list[Tensor], attrs: dict) -> list:
    c = ins[0]
    check_kind(c, BOOL, "where(cond)")
    return [(dtypes.int64, (None, None if c._shape is None else len(c._shape)))]


define_op("SelectV2", infer=_select_infer)
define_op("Where", infer=_where_infer)
no_gradient("Where")


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    """Element-wise `x` where `condition` is true, else `y`, all three broadcast together.
    With only `condition`: the coordinates of its true elements, int64 [N, rank]."""
    if (x is None) != (y is None):
        raise InvalidArgumentError("where() takes both x and y, or neither")
    c = convert_to_tensor(condition) if is_tensor_like(condition) else \
        convert_to_tensor(condition, dtype=dtypes.bool_)
    if x is None:
        return apply_op("Where", [c], name=name or "Where")[0]
    x, y = convert_operands([x, y], name or "SelectV2")
    return apply_op("SelectV2", [c, x, y], name=name or "SelectV2")[0]


@register_gradient("SelectV2")
def _select_grad(op: Operation, grad: Tensor) -> list[Any]:
    c, x, y = op.inputs
    return [None] + select_grad_pair(c, grad, x, y)


def _clip_infer(ins: list[Tensor], attrs: dict) -> list:
    t, lo, hi = ins
    dt = check_same_dtype(ins, "clip_by_value")
    check_kind(t, NUM, "clip_by_value")
    return [(dt, shapes.broadcast_all([t._shape, lo._shape, hi._shape]))]


define_op("ClipByValue", infer=_clip_infer)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any,
                  name: str | None = None) -> Tensor:
    """`t` with every element limited to [clip_value_min, clip_value_max]."""
    ins = convert_operands([t, clip_value_min, clip_value_max], name or "ClipByValue")
    return apply_op("ClipByValue", ins, name=name or "ClipByValue")[0]


@register_gradient("ClipByValue")
def _clip_grad(op: Operation, grad: Tensor) -> list[Any]:
    t, lo, hi = op.inputs
    zero = constant(0, grad.dtype)
    below, above = less(t, lo), greater(t, hi)
    out: list[Any] = [array_ops.unbroadcast(where(logical_or(below, above), zero, grad), t)]
    out.append(None if is_constant(lo) else array_ops.unbroadcast(where(below, grad, zero), lo))
    out.append(None if is_constant(hi) else array_ops.unbroadcast(where(above, grad, zero), hi))
    return out


def select_grad_pair(mask: Tensor, grad: Tensor, x: Tensor, y: Tensor) -> list[Any]:
    """Gradients of x and y for an op that chose x where `mask`, else y (where, maximum)."""
    zero = constant(0, grad.dtype)
    return [None if is_constant(x) else array_ops.unbroadcast(where(mask, grad, zero), x),
            None if is_constant(y) else array_ops.unbroadcast(where(mask, zero, grad), y)]


