"""`confusion_matrix` (TF1's tf.confusion_matrix / tf.math.confusion_matrix) and the dense
form of sparse indices, `sparse_to_dense`: both scatter into a dense tensor with `scatter_nd`,
which sums duplicates."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, join_ops, math_ops, reduction_ops
from actorflow.ops.linalg_ops import scatter_nd
from devices import dtypes

__all__ = ["confusion_matrix", "sparse_to_dense"]


def confusion_matrix(labels: Any, predictions: Any, num_classes: Any = None,
                     dtype: Any = dtypes.int32, name: str | None = None,
                     weights: Any = None) -> Tensor:
    """[num_classes, num_classes]: entry (i, j) counts (or sums the weights of) the examples
    labelled i and predicted j; `num_classes` defaults to the largest label or prediction + 1."""
    with name_scope(name, "confusion_matrix"):
        dt = dtypes.as_dtype(dtype)
        lab = compare_ops.cast(array_ops.reshape(convert_to_tensor(labels), [-1]), dtypes.int64)
        pred = compare_ops.cast(array_ops.reshape(convert_to_tensor(predictions), [-1]),
                                dtypes.int64)
        if num_classes is None:
            n = math_ops.add(math_ops.maximum(reduction_ops.reduce_max(lab),
                                              reduction_ops.reduce_max(pred)), 1)
        else:
            n = compare_ops.cast(convert_to_tensor(num_classes), dtypes.int64)
        if weights is None:
            values = array_ops.ones_like(lab, dtype=dt)
        else:
            values = compare_ops.cast(array_ops.reshape(convert_to_tensor(weights), [-1]), dt)
        return scatter_nd(join_ops.stack([lab, pred], 1), values, join_ops.stack([n, n]))


def sparse_to_dense(sparse_indices: Any, output_shape: Any, sparse_values: Any,
                    default_value: Any = 0, validate_indices: bool = True,
                    name: str | None = None) -> Tensor:
    """A dense tensor of `output_shape` with `sparse_values` (a scalar for all, or one per
    index) at `sparse_indices` (a scalar, a vector of indices into a vector, or [n, rank]) and
    `default_value` elsewhere."""
    from actorflow.sparse_tensor import SparseTensor, sparse_tensor_to_dense
    with name_scope(name, "SparseToDense"):
        idx = compare_ops.cast(convert_to_tensor(sparse_indices), dtypes.int64)
        if idx.shape.rank is not None and idx.shape.rank < 2:
            idx = array_ops.reshape(idx, [-1, 1])
        vals = convert_to_tensor(sparse_values)
        if vals.shape.rank == 0:
            vals = math_ops.add(array_ops.zeros_like(idx[:, 0], dtype=vals.dtype), vals)
        shape = compare_ops.cast(array_ops.reshape(convert_to_tensor(output_shape), [-1]),
                                 dtypes.int64)
        return sparse_tensor_to_dense(SparseTensor(idx, vals, shape), default_value)
