"""String ops: `as_string` (numbers and bools formatted as string tensors, TF's AsString).

    af.as_string(class_ids)          # int64 [batch, 1] -> string [batch, 1]: b"0", b"2", ...

Formatting follows TF's defaults: integers in decimal, floats with `precision` digits after
the point (6 when -1, as C's "%f"), or in scientific notation / shortest form when asked,
padded to `width` with `fill`; bools as b"true"/b"false". Not differentiable.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["as_string"]

define_op("AsString", infer=lambda ins, a: [(dtypes.string, ins[0]._shape)])
no_gradient("AsString")


def as_string(input: Any, precision: int = -1, scientific: bool = False,
              shortest: bool = False, width: int = -1, fill: str = "",
              name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    if x.dtype.is_string:
        raise InvalidArgumentError("as_string formats numbers and bools; its input is already "
                                   "a string tensor")
    if scientific and shortest:
        raise InvalidArgumentError("as_string: give scientific or shortest, not both")
    if len(fill) > 1:
        raise InvalidArgumentError(f"as_string's fill is one character, got {fill!r}")
    return apply_op("AsString", [x], {"precision": int(precision), "scientific": scientific,
                                      "shortest": shortest, "width": int(width),
                                      "fill": fill}, name=name or "AsString")[0]
