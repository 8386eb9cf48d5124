"""Math ops: element-wise arithmetic, reductions, matmul, comparisons, and the Tensor
operator overloads (``+ - * / ** @``, unary minus, ordering comparisons).

Binary element-wise ops broadcast like NumPy; their gradients un-broadcast (sum over the
broadcast axes) with `array_ops.unbroadcast`.
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    broadcast_binary,
    check_same_dtype,
    convert_n,
    convert_to_tensor,
    define_op,
    register_gradient,
    same_as_input,
)
from actorflow.ops import array_ops
from devices.errors import InvalidArgumentError

# ---- element-wise binary ----------------------------------------------------------------
for _t in ("Add", "Sub", "Mul"):
    define_op(_t, infer=broadcast_binary)


def add(x: Any, y: Any, name: str | None = None) -> Tensor:
    x, y = convert_n([x, y])
    return apply_op("Add", [x, y], name=name or "Add")[0]


def subtract(x: Any, y: Any, name: str | None = None) -> Tensor:
    x, y = convert_n([x, y])
    return apply_op("Sub", [x, y], name=name or "Sub")[0]


def multiply(x: Any, y: Any, name: str | None = None) -> Tensor:
    x, y = convert_n([x, y])
    return apply_op("Mul", [x, y], name=name or "Mul")[0]


@register_gradient("Add")
def _add_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [array_ops.unbroadcast(grad, x), array_ops.unbroadcast(grad, y)]


@register_gradient("Sub")
def _sub_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [array_ops.unbroadcast(grad, x), array_ops.unbroadcast(negative(grad), y)]


@register_gradient("Mul")
def _mul_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [array_ops.unbroadcast(multiply(grad, y), x),
            array_ops.unbroadcast(multiply(x, grad), y)]


# ---- element-wise unary -----------------------------------------------------------------
define_op("Neg", infer=same_as_input)


def negative(x: Any, name: str | None = None) -> Tensor:
    return apply_op("Neg", [convert_to_tensor(x)], name=name or "Neg")[0]


@register_gradient("Neg")
def _neg_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [negative(grad)]


# ---- n-ary ------------------------------------------------------------------------------
def _add_n_infer(ins: list[Tensor], attrs: dict) -> list:
    dt = check_same_dtype(ins, "add_n")
    shape = ins[0]._shape
    for t in ins[1:]:
        if not shapes.is_compatible(shape, t._shape):
            raise InvalidArgumentError(
                f"add_n needs inputs of one shape, got {shapes.fmt(shape)} and "
                f"{shapes.fmt(t._shape)} ('{t.name}')")
        shape = shapes.merge(shape, t._shape)
    return [(dt, shape)]


define_op("AddN", infer=_add_n_infer)


def add_n(inputs: list[Any], name: str | None = None) -> Tensor:
    """Sum a list of tensors of the same shape and dtype."""
    if not inputs:
        raise InvalidArgumentError("add_n needs at least one input")
    ins = convert_n(inputs)
    if len(ins) == 1:
        return ins[0]
    return apply_op("AddN", ins, name=name or "AddN")[0]


@register_gradient("AddN")
def _add_n_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [grad] * len(op.inputs)


# ---- reductions -------------------------------------------------------------------------
def _axes(axis: Any, rank: int | None) -> tuple[int, ...] | None:
    """Normalise a static axis argument; None means all axes."""
    if axis is None:
        return None
    ax = [int(a) for a in (axis if isinstance(axis, list | tuple) else [axis])]
    if rank is not None:
        for a in ax:
            if not -rank <= a < rank:
                raise InvalidArgumentError(f"axis {a} is out of range for a tensor of rank {rank}")
        ax = [a % rank for a in ax]
    return tuple(sorted(set(ax)))


def _reduce_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    keep = attrs.get("keepdims", False)
    if len(ins) > 1 or x._shape is None:
        return [(x.dtype, None)]
    axes = attrs.get("axis")
    rank = len(x._shape)
    axes = tuple(range(rank)) if axes is None else axes
    if keep:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x._shape))
    else:
        shape = tuple(d for i, d in enumerate(x._shape) if i not in axes)
    return [(x.dtype, shape)]


define_op("Sum", infer=_reduce_infer)


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: bool = False,
               name: str | None = None) -> Tensor:
    return _reduce("Sum", input_tensor, axis, keepdims, name)


def _reduce(op: str, x: Any, axis: Any, keepdims: bool, name: str | None) -> Tensor:
    x = convert_to_tensor(x)
    if isinstance(axis, Tensor):
        return apply_op(op, [x, axis], {"keepdims": bool(keepdims)}, name=name or op)[0]
    rank = None if x._shape is None else len(x._shape)
    return apply_op(op, [x], {"axis": _axes(axis, rank), "keepdims": bool(keepdims)},
                    name=name or op)[0]


@register_gradient("Sum")
def _sum_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    g = array_ops.restore_reduced_dims(grad, op)
    out: list[Any] = [array_ops.broadcast_to(g, array_ops.shape(x))]
    return out + [None] * (len(op.inputs) - 1)


# ---- operator overloads -----------------------------------------------------------------
def _binary_overload(fn: Any) -> tuple[Any, Any]:
    def forward(a: Tensor, b: Any) -> Tensor:
        return fn(a, b)

    def reverse(a: Tensor, b: Any) -> Tensor:
        return fn(b, a)

    return forward, reverse


for _name, _fn in (("add", add), ("sub", subtract), ("mul", multiply)):
    _f, _r = _binary_overload(_fn)
    Tensor._override_operator(f"__{_name}__", _f)
    Tensor._override_operator(f"__r{_name}__", _r)
Tensor._override_operator("__neg__", lambda a: negative(a))
