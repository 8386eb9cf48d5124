"""``af.feature_column``: TF1's dense feature columns (numeric ones) and `input_layer`, what
the premade-estimator programs use to turn a features dict into the first layer:

    cols = [af.feature_column.numeric_column(k) for k in ("SepalLength", "SepalWidth")]
    net = af.feature_column.input_layer(features, cols)     # float32 [batch, 2]

`input_layer` concatenates the columns in the order of their names (TF sorts them), each
reshaped to [batch, prod(shape)] and cast to float32 (after its `normalizer_fn`).
Categorical columns are not built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, join_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["numeric_column", "input_layer", "NumericColumn"]


class NumericColumn(NamedTuple):
    key: str
    shape: tuple[int, ...] = (1,)
    default_value: Any = None
    dtype: Any = dtypes.float32
    normalizer_fn: Callable[[Tensor], Tensor] | None = None

    @property
    def name(self) -> str:
        return self.key


def numeric_column(key: str, shape: Any = (1,), default_value: Any = None,
                   dtype: Any = dtypes.float32,
                   normalizer_fn: Callable[[Tensor], Tensor] | None = None) -> NumericColumn:
    """A column of real values read from `features[key]` (each example of `shape`)."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"numeric_column's key must be a non-empty string, got "
                                   f"{key!r}")
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)
    dt = dtypes.as_dtype(dtype)
    if not (dt.is_floating or dt.is_integer):
        raise InvalidArgumentError(f"numeric_column '{key}' needs a numeric dtype, got "
                                   f"{dt.name}")
    return NumericColumn(key, shape, default_value, dt, normalizer_fn)


def input_layer(features: dict, feature_columns: Sequence[Any], weight_collections: Any = None,
                trainable: bool = True, cols_to_vars: Any = None) -> Tensor:
    """The columns' values side by side: float32 [batch, sum of their sizes]."""
    cols = list(feature_columns)
    if not cols:
        raise InvalidArgumentError("input_layer needs at least one feature column")
    out = []
    with name_scope(None, "input_layer"):
        for col in sorted(cols, key=lambda c: c.name):
            if not isinstance(col, NumericColumn):
                raise InvalidArgumentError(f"input_layer: only numeric columns are built, got "
                                           f"{type(col).__name__}")
            if col.key not in features:
                raise InvalidArgumentError(f"input_layer: no feature '{col.key}' in the "
                                           f"features dict; it has {sorted(features)}")
            with name_scope(col.key):
                v = convert_to_tensor(features[col.key])
                if v.dtype is not col.dtype and v.dtype.is_floating != col.dtype.is_floating:
                    v = compare_ops.cast(v, col.dtype)
                if col.normalizer_fn is not None:
                    v = col.normalizer_fn(v)
                v = compare_ops.cast(v, dtypes.float32) if v.dtype is not dtypes.float32 else v
                out.append(array_ops.reshape(v, [-1, math.prod(col.shape)]))
        return out[0] if len(out) == 1 else join_ops.concat(out, 1)
