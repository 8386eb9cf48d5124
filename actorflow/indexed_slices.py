"""`IndexedSlices`: a sparse gradient, rows `values` at `indices` of a dense tensor.

The gradient of gather/embedding_lookup is one of these, so that optimizers update only the
rows that were read (OSDI §4.2) with scatter ops instead of touching the whole table.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from actorflow.graph import Tensor


class IndexedSlices:
    """values[i] is the slice of the dense tensor at row indices[i] (rows may repeat: sum)."""

    def __init__(self, values: Tensor, indices: Tensor, dense_shape: Tensor | None = None):
        self.values = values
        self.indices = indices
        self.dense_shape = dense_shape

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    @property
    def graph(self) -> Any:
        return self.values.graph

    @property
    def op(self) -> Any:
        return self.values.op

    @property
    def name(self) -> str:
        return self.values.name

    def _as_tensor(self) -> Tensor:
        return to_dense(self)

    def __repr__(self) -> str:
        return f"IndexedSlices(values={self.values!r}, indices={self.indices!r})"


def to_dense(s: IndexedSlices) -> Tensor:
    """Sum the slices into a dense tensor of `dense_shape`."""
    from actorflow.ops import array_ops, math_ops

    if s.dense_shape is None:
        raise ValueError("cannot densify IndexedSlices without a dense_shape")
    rows = array_ops.gather(s.dense_shape, 0)
    return math_ops.unsorted_segment_sum(s.values, s.indices, rows)


class IndexedSlicesValue(NamedTuple):
    """The fetched value of an `IndexedSlices` (``Session.run`` returns one, as TF does)."""

    values: Any
    indices: Any
    dense_shape: Any = None
