"""Reading the static arguments of array ops at build time: axes, lists of ints, constants.

Array ops keep what is static (an axis, a permutation, slice bounds) in attributes, so their
kernels parse it once per node instead of once per step. These helpers turn what users pass
(Python ints, lists, NumPy arrays, constant tensors) into plain ints, and say clearly when a
value is only known at run time.

    >>> normalize_axis(-1, 3, "concat")
    2
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor
from actorflow.op_def import constant_value, convert_to_tensor
from devices.errors import InvalidArgumentError


def has_tensor(value: Any) -> bool:
    """True if `value` is a tensor-like or a (nested) list holding one."""
    if isinstance(value, Tensor) or hasattr(value, "_as_tensor"):
        return True
    if isinstance(value, list | tuple):
        return any(has_tensor(v) for v in value)
    return False


def static_value(value: Any) -> np.ndarray | None:
    """`value` as a NumPy array if it is known when the graph is built, else None."""
    if isinstance(value, Tensor):
        return constant_value(value)
    if has_tensor(value):
        return constant_value(convert_to_tensor(value))
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise InvalidArgumentError(f"expected ints, got {value!r}")
    return arr


def static_int(value: Any, what: str) -> int | None:
    """A scalar int argument (a Python int or a constant tensor); None if only known later."""
    v = static_value(value)
    if v is None:
        return None
    if v.size != 1 or v.dtype.kind not in "iu":
        raise InvalidArgumentError(f"{what} must be a scalar int, got {value!r}")
    return int(v.reshape(()))


def static_ints(value: Any, what: str) -> list[int] | None:
    """A list of ints (a list, an array or a constant 1-D tensor); None if only known later."""
    v = static_value(value)
    if v is None:
        return None
    if v.size and v.dtype.kind not in "iu":
        raise InvalidArgumentError(f"{what} must be ints, got {value!r}")
    return [int(d) for d in v.reshape(-1)]


def required_axis(axis: Any, what: str) -> int:
    """A static axis argument; a tensor known only at run time raises with the fix."""
    a = static_int(axis, f"{what}: axis")
    if a is None:
        raise InvalidArgumentError(
            f"{what} needs an axis known when the graph is built (a Python int or a constant), "
            f"got tensor '{getattr(axis, 'name', axis)}'")
    return a


def normalize_axis(axis: int, rank: int | None, what: str, extra: int = 0) -> int:
    """`axis` in [0, rank + extra) when the rank is known; accepted negatives count from the
    end. With an unknown rank the axis is returned unchanged (kernels accept negatives)."""
    if rank is None:
        return axis
    n = rank + extra
    if not -n <= axis < n:
        raise InvalidArgumentError(
            f"{what}: axis {axis} is out of range for a tensor of rank {rank} "
            f"(use an axis in [{-n}, {n - 1}])")
    return axis % n


def axis_index(axis: int, key: Any) -> tuple[Any, ...]:
    """An index tuple applying `key` on `axis` (negative axes count from the end)."""
    if axis >= 0:
        return (slice(None),) * axis + (key,)
    return (Ellipsis, key) + (slice(None),) * (-axis - 1)


def rank_of(t: Tensor) -> int | None:
    return None if t._shape is None else len(t._shape)


def dense(grad: Any) -> Any:
    """A dense tensor for a gradient that may be `IndexedSlices` (None stays None)."""
    if grad is None or isinstance(grad, Tensor):
        return grad
    return convert_to_tensor(grad)


def partial_shape(t: Tensor) -> list[int | None] | None:
    """What is known at build time of the 1-D shape tensor `t`: a list of ints and None (for
    entries only known at run time), or None if even its length is unknown. Sees through
    constants, ``af.shape(x)`` (x's static dims) and stacks of scalars (``[af.shape(x)[0],
    3]``)."""
    v = constant_value(t)
    if v is not None:
        return [int(d) for d in v.reshape(-1)]
    op = t.op
    if op.type == "Shape":
        s = op.inputs[0]._shape
        return None if s is None else list(s)
    if op.type == "Pack" and op.attrs.get("axis") == 0:
        return [_scalar_dim(x) for x in op.inputs]
    n = t._shape[0] if t._shape else None
    return None if n is None else [None] * n


def _scalar_dim(t: Tensor) -> int | None:
    v = constant_value(t)
    if v is not None and v.size == 1:
        return int(v.reshape(()))
    op = t.op
    if op.type == "StridedSlice" and len(op.inputs) == 1 and op.inputs[0].op.type == "Shape":
        spec = op.attrs["spec"]
        dims = op.inputs[0].op.inputs[0]._shape
        if dims is not None and len(spec) == 1 and spec[0][0] == "i" and \
                isinstance(spec[0][1], int) and -len(dims) <= spec[0][1] < len(dims):
            return dims[spec[0][1]]
    return None
