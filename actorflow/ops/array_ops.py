"""Array ops: shapes, reshaping, filling, broadcasting; and the gradient helpers that undo
broadcasting (`unbroadcast`) and re-insert reduced dimensions (`restore_reduced_dims`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    constant,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
    same_as_input,
)
from devices import dtypes
from devices.errors import InvalidArgumentError


# ---- shape ------------------------------------------------------------------------------
def _shape_infer(ins: list[Tensor], attrs: dict) -> list:
    rank = None if ins[0]._shape is None else len(ins[0]._shape)
    return [(dtypes.as_dtype(attrs.get("out_type", dtypes.int32)), (rank,))]


define_op("Shape", infer=_shape_infer)
no_gradient("Shape")


def shape(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    """The shape of `input` as a 1-D int tensor (known at run time)."""
    return apply_op("Shape", [convert_to_tensor(input)],
                    {"out_type": dtypes.as_dtype(out_type)}, name=name or "Shape")[0]


# ---- reshape ----------------------------------------------------------------------------
def _reshape_static(x_shape: shapes.Shape, target: np.ndarray, name: str) -> shapes.Shape:
    dims = [int(d) for d in target.reshape(-1)]
    if dims.count(-1) > 1:
        raise InvalidArgumentError(f"reshape to {dims}: only one dimension may be -1")
    n = shapes.num_elements(x_shape)
    known = 1
    for d in dims:
        if d != -1:
            known *= d
    if -1 in dims:
        if n is not None:
            if known == 0 or n % known:
                raise InvalidArgumentError(
                    f"cannot reshape a tensor of {n} elements (shape {shapes.fmt(x_shape)}) "
                    f"to {dims}")
            dims[dims.index(-1)] = n // known
            return tuple(dims)
        return tuple(None if d == -1 else d for d in dims)
    if n is not None and n != known:
        raise InvalidArgumentError(
            f"cannot reshape a tensor of {n} elements (shape {shapes.fmt(x_shape)}) to "
            f"{dims} ({known} elements)")
    return tuple(dims)


def _reshape_infer(ins: list[Tensor], attrs: dict) -> list:
    x, s = ins
    value = constant_value(s)
    if value is not None:
        return [(x.dtype, _reshape_static(x._shape, value, "Reshape"))]
    n = s._shape[0] if s._shape else None
    return [(x.dtype, None if n is None else (None,) * n)]


define_op("Reshape", infer=_reshape_infer)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    s = shape if isinstance(shape, Tensor) else constant(
        np.asarray(shape, dtype=np.int32).reshape(-1), name="shape")
    return apply_op("Reshape", [x, s], name=name or "Reshape")[0]


@register_gradient("Reshape")
def _reshape_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    target = x._shape if shapes.is_fully_defined(x._shape) else shape(x)
    return [reshape(grad, target), None]


# ---- fill / zeros / ones ----------------------------------------------------------------
def _fill_infer(ins: list[Tensor], attrs: dict) -> list:
    dims, value = ins
    v = constant_value(dims)
    if v is not None:
        return [(value.dtype, tuple(int(d) for d in v.reshape(-1)))]
    n = dims._shape[0] if dims._shape else None
    return [(value.dtype, None if n is None else (None,) * n)]


define_op("Fill", infer=_fill_infer)
no_gradient("Fill")
define_op("ZerosLike", infer=same_as_input)
define_op("OnesLike", infer=same_as_input)
no_gradient("ZerosLike")
no_gradient("OnesLike")


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    d = dims if isinstance(dims, Tensor) else constant(
        np.asarray(dims, dtype=np.int32).reshape(-1), name="dims")
    return apply_op("Fill", [d, convert_to_tensor(value)], name=name or "Fill")[0]


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        return zeros(shape(x), dtype, name=name)
    return apply_op("ZerosLike", [x], name=name or "ZerosLike")[0]


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        return ones(shape(x), dtype, name=name)
    return apply_op("OnesLike", [x], name=name or "OnesLike")[0]


def zeros(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if isinstance(shape, Tensor):
        return fill(shape, constant(0, dt), name=name or "zeros")
    return constant(np.zeros(shapes.as_shape(shape), dt.np), name=name or "zeros")


def ones(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if isinstance(shape, Tensor):
        return fill(shape, constant(1, dt), name=name or "ones")
    return constant(np.ones(shapes.as_shape(shape), dt.np), name=name or "ones")


# ---- broadcasting -----------------------------------------------------------------------
def _broadcast_to_infer(ins: list[Tensor], attrs: dict) -> list:
    x, s = ins
    v = constant_value(s)
    if v is None:
        n = s._shape[0] if s._shape else None
        return [(x.dtype, None if n is None else (None,) * n)]
    target = tuple(int(d) for d in v.reshape(-1))
    if shapes.broadcast(x._shape, target) != target and x._shape is not None and \
            shapes.is_fully_defined(x._shape):
        raise InvalidArgumentError(
            f"cannot broadcast shape {shapes.fmt(x._shape)} to {shapes.fmt(target)}")
    return [(x.dtype, target)]


define_op("BroadcastTo", infer=_broadcast_to_infer)


def broadcast_to(input: Any, shape: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    s = shape if isinstance(shape, Tensor) else constant(
        np.asarray(shape, dtype=np.int32).reshape(-1), name="shape")
    return apply_op("BroadcastTo", [x, s], name=name or "BroadcastTo")[0]


@register_gradient("BroadcastTo")
def _broadcast_to_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [unbroadcast(grad, op.inputs[0]), None]


define_op("BroadcastGradientArgs", infer=lambda ins, a: [(dtypes.int32, (None,)),
                                                          (dtypes.int32, (None,))])
no_gradient("BroadcastGradientArgs")


def unbroadcast(grad: Tensor, x: Tensor) -> Tensor:
    """Sum `grad` (of the broadcast shape) down to the shape of `x`."""
    from actorflow.ops import math_ops

    gs, xs = grad._shape, x._shape
    if gs is not None and shapes.is_fully_defined(xs) and len(gs) >= len(xs):  # type: ignore
        if gs == xs:
            return grad
        # Summing over an axis where x has size 1 is right whether or not it was broadcast.
        lead = len(gs) - len(xs)  # type: ignore[arg-type]
        axes = list(range(lead)) + [lead + i for i, d in enumerate(xs) if d == 1]  # type: ignore
        out = math_ops.reduce_sum(grad, axes) if axes else grad
        return out if out._shape == xs else reshape(out, xs)
    rx, _ = apply_op("BroadcastGradientArgs", [shape(x), shape(grad)])
    return reshape(math_ops.reduce_sum(grad, rx), shape(x))


def restore_reduced_dims(grad: Tensor, op: Operation) -> Tensor:
    """Reshape the gradient of a reduction so it broadcasts against the reduced input."""
    x = op.inputs[0]
    if op.attrs.get("keepdims"):
        return grad
    if len(op.inputs) == 1 and x._shape is not None:
        axes = op.attrs.get("axis")
        rank = len(x._shape)
        axes = range(rank) if axes is None else axes
        kept = [1 if i in axes else d for i, d in enumerate(x._shape)]
        if None not in kept:
            return reshape(grad, kept)
        kept_t = [1 if i in axes else None for i in range(rank)]
        return reshape(grad, _dynamic_kept(x, kept_t))
    # dynamic axes: keep every dim of x except the reduced ones, computed at run time
    return reshape(grad, apply_op("ReducedShape", [shape(x), op.inputs[1]])[0])


def _dynamic_kept(x: Tensor, kept: list[int | None]) -> Tensor:
    from actorflow.ops import math_ops
    s = shape(x)
    mask = constant(np.array([0 if k == 1 else 1 for k in kept], np.int32))
    ones_ = constant(np.array([1 if k == 1 else 0 for k in kept], np.int32))
    return math_ops.add(math_ops.multiply(s, mask), ones_)


define_op("ReducedShape", infer=lambda ins, a: [(dtypes.int32, ins[0]._shape)])
no_gradient("ReducedShape")
