"""Structural ops: constants, placeholders, identity, stop_gradient, no_op and group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor, control_dependencies, name_scope
from actorflow.op_def import (
    apply_op,
    apply_op_op,
    constant,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
    same_as_input,
)
from devices import dtypes

define_op("Const", infer=lambda ins, a: [(dtypes.as_dtype(a["dtype"]), tuple(a["value"].shape))])
define_op("Placeholder", infer=lambda ins, a: [(dtypes.as_dtype(a["dtype"]), a.get("shape"))])
define_op("PlaceholderWithDefault", infer=lambda ins, a: [(ins[0].dtype, a.get("shape"))])
define_op("Identity", infer=same_as_input)
define_op("StopGradient", infer=same_as_input)
define_op("NoOp", infer=lambda ins, a: [])
no_gradient("Const")
no_gradient("Placeholder")
no_gradient("StopGradient")
no_gradient("NoOp")


@register_gradient("Identity")
def _identity_grad(op: Operation, grad: Any) -> list[Any]:
    return [grad]


@register_gradient("PlaceholderWithDefault")
def _pwd_grad(op: Operation, grad: Any) -> list[Any]:
    return [grad]


def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor whose value must be fed at run time (``feed_dict={x: value}``)."""
    dt = dtypes.as_dtype(dtype)
    return apply_op("Placeholder", [], {"dtype": dt, "shape": shapes.as_shape(shape)},
                    name=name or "Placeholder")[0]


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """A tensor that is `input` unless fed."""
    x = convert_to_tensor(input)
    shp = shapes.as_shape(shape)
    if not shapes.is_compatible(shp, x._shape):
        raise ValueError(f"default of shape {shapes.fmt(x._shape)} does not fit shape "
                         f"{shapes.fmt(shp)}")
    return apply_op("PlaceholderWithDefault", [x], {"shape": shp},
                    name=name or "PlaceholderWithDefault")[0]


def identity(input: Any, name: str | None = None) -> Tensor:
    return apply_op("Identity", [convert_to_tensor(input)], name=name or "Identity")[0]


def stop_gradient(input: Any, name: str | None = None) -> Tensor:
    """The same value, but gradients do not flow through it."""
    return apply_op("StopGradient", [convert_to_tensor(input)], name=name or "StopGradient")[0]


def no_op(name: str | None = None) -> Operation:
    return apply_op_op("NoOp", [], name=name or "NoOp")


def group(*inputs: Any, name: str | None = None) -> Operation:
    """An op that runs after all of `inputs` (ops or tensors) and produces nothing."""
    flat: list[Any] = []
    for x in inputs:
        if isinstance(x, list | tuple):
            flat.extend(x)
        else:
            flat.append(x)
    with control_dependencies([x for x in flat if x is not None]):
        return no_op(name=name or "group_deps")


def tuple_(tensors: Sequence[Any], name: str | None = None) -> list[Tensor]:
    """Each tensor, available only after all of them are computed."""
    tensors = [convert_to_tensor(t) for t in tensors]
    with name_scope(name, "tuple"):
        gate = group(*tensors)
        with control_dependencies([gate]):
            return [identity(t) for t in tensors]


__all__ = ["constant", "placeholder", "placeholder_with_default", "identity", "stop_gradient",
           "no_op", "group", "tuple_"]
