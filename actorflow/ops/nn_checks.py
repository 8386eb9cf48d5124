"""Static checks shared by the builders of ``af.nn`` (`nn_ops`, `nn_loss_ops`): dtype, rank
and axis of an input, each raising InvalidArgument that names the tensor and the fix."""

from __future__ import annotations

from actorflow import shapes
from actorflow.graph import Tensor
from actorflow.op_def import check_same_dtype
from devices import dtypes
from devices.errors import InvalidArgumentError

Infer = list[tuple[dtypes.DType, shapes.Shape]]


def _float(t: Tensor, what: str) -> dtypes.DType:
    if not t.dtype.is_floating:
        raise InvalidArgumentError(
            f"{what} needs a floating-point tensor, got {t.dtype.name} ('{t.name}'); convert "
            f"it with af.cast(x, af.float32)")
    return t.dtype


def _rank_at_least(t: Tensor, n: int, what: str) -> None:
    if t._shape is not None and len(t._shape) < n:
        raise InvalidArgumentError(
            f"{what} needs a tensor of rank >= {n}, got shape {shapes.fmt(t._shape)} ('{t.name}')")


def _rank_is(t: Tensor, n: int, what: str, role: str) -> shapes.Shape:
    if t._shape is None:
        return (None,) * n
    if len(t._shape) != n:
        raise InvalidArgumentError(
            f"{what} needs a {role} of rank {n}, got shape {shapes.fmt(t._shape)} ('{t.name}')")
    return t._shape


def _check_axis(t: Tensor, axis: int, what: str) -> int:
    if t._shape is not None and not -len(t._shape) <= axis < len(t._shape):
        raise InvalidArgumentError(
            f"{what}: axis {axis} is out of range for shape {shapes.fmt(t._shape)}")
    return int(axis)


def _same_dtype(a: Tensor, b: Tensor, what: str) -> dtypes.DType:
    return check_same_dtype([a, b], what)
