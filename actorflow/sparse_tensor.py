"""`SparseTensor`: TF1's sparse value (indices [n, rank] int64, values [n], dense_shape
[rank]) as three tensors, and `SparseTensorValue`, its fetched value.

    sp = af.SparseTensor(indices=[[0, 0], [1, 2]], values=[3, 7], dense_shape=[2, 4])
    dense = af.sparse_tensor_to_dense(sp)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from actorflow.graph import Tensor
from actorflow.op_def import convert_to_tensor
from devices import dtypes

__all__ = ["SparseTensor", "SparseTensorValue", "sparse_tensor_to_dense"]


class SparseTensorValue(NamedTuple):
    indices: Any
    values: Any
    dense_shape: Any


class SparseTensor:
    """values[i] sits at indices[i] of a dense tensor of `dense_shape` (the rest is 0)."""

    def __init__(self, indices: Any, values: Any, dense_shape: Any):
        self.indices: Tensor = convert_to_tensor(indices, dtype=dtypes.int64) \
            if not isinstance(indices, Tensor) else indices
        self.values: Tensor = convert_to_tensor(values)
        self.dense_shape: Tensor = convert_to_tensor(dense_shape, dtype=dtypes.int64) \
            if not isinstance(dense_shape, Tensor) else dense_shape

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    @property
    def graph(self) -> Any:
        return self.values.graph

    def __repr__(self) -> str:
        return (f"SparseTensor(indices={self.indices!r}, values={self.values!r}, "
                f"dense_shape={self.dense_shape!r})")


def sparse_tensor_to_dense(sp_input: SparseTensor, default_value: Any = 0,
                           validate_indices: bool = True, name: str | None = None) -> Tensor:
    """The dense tensor (duplicates sum; `default_value` elsewhere)."""
    from actorflow.graph import name_scope
    from actorflow.ops import compare_ops, math_ops
    from actorflow.ops.linalg_ops import scatter_nd
    with name_scope(name, "SparseToDense"):
        dense = scatter_nd(sp_input.indices, sp_input.values, sp_input.dense_shape)
        if default_value == 0:
            return dense
        mask = scatter_nd(sp_input.indices,
                          compare_ops.cast(math_ops.add(math_ops.multiply(sp_input.values, 0),
                                                        1), sp_input.dtype),
                          sp_input.dense_shape)
        return compare_ops.where(compare_ops.equal(mask, 0),
                                 math_ops.add(math_ops.multiply(dense, 0), default_value),
                                 dense)
