"""``af.sparse``: TF's sparse namespace over `actorflow.sparse_tensor` and
`actorflow.ops.confusion_ops` (to_dense, placeholder, matmul, reduce_sum, SparseTensor)."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.ops import reduction_ops
from actorflow.sparse_tensor import SparseTensor, SparseTensorValue
from actorflow.sparse_tensor import sparse_placeholder as placeholder
from actorflow.sparse_tensor import sparse_tensor_dense_matmul as matmul
from actorflow.sparse_tensor import sparse_tensor_to_dense as to_dense

__all__ = ["SparseTensor", "SparseTensorValue", "placeholder", "matmul", "to_dense",
           "reduce_sum", "sparse_reduce_sum"]


def reduce_sum(sp_input: SparseTensor, axis: Any = None, keepdims: bool | None = None,
               reduction_axes: Any = None, keep_dims: bool | None = None,
               name: str | None = None) -> Tensor:
    """The sum of a SparseTensor's values along `axis` (all axes when None), as a dense
    tensor: the sum of its dense form, whose absent entries are zeros."""
    ax = axis if axis is not None else reduction_axes
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "SparseReduceSum"):
        return reduction_ops.reduce_sum(to_dense(sp_input), ax, keepdims=keep)


sparse_reduce_sum = reduce_sum
