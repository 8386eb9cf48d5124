"""``af.sparse``: TF1's sparse namespace over `actorflow.sparse_tensor`,
`actorflow.ops.sparse_ops` and `actorflow.ops.segment_ops` (SparseTensor, placeholder,
to_dense, matmul / sparse_dense_matmul, reduce_sum/max(_sparse), add, concat, reorder,
reshape, slice, retain, split, transpose, maximum, minimum, softmax, fill_empty_rows,
to_indicator, expand_dims, eye, from_dense, segment_sum/mean/sqrt_n)."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.ops import reduction_ops

# --- s9sparse: TF1's tf.sparse names over actorflow.ops.sparse_ops / segment_ops ---
from actorflow.ops.segment_ops import sparse_segment_mean as segment_mean  # noqa: E402
from actorflow.ops.segment_ops import sparse_segment_sqrt_n as segment_sqrt_n  # noqa: E402
from actorflow.ops.segment_ops import sparse_segment_sum as segment_sum  # noqa: E402
from actorflow.ops.sparse_ops import sparse_add as add  # noqa: E402
from actorflow.ops.sparse_ops import sparse_concat as concat  # noqa: E402
from actorflow.ops.sparse_ops import sparse_expand_dims as expand_dims  # noqa: E402
from actorflow.ops.sparse_ops import sparse_eye as eye  # noqa: E402
from actorflow.ops.sparse_ops import sparse_fill_empty_rows as fill_empty_rows  # noqa: E402
from actorflow.ops.sparse_ops import sparse_from_dense as from_dense  # noqa: E402
from actorflow.ops.sparse_ops import sparse_maximum as maximum  # noqa: E402
from actorflow.ops.sparse_ops import sparse_minimum as minimum  # noqa: E402
from actorflow.ops.sparse_ops import sparse_reduce_max as reduce_max  # noqa: E402
from actorflow.ops.sparse_ops import sparse_reduce_max_sparse as reduce_max_sparse  # noqa: E402
from actorflow.ops.sparse_ops import sparse_reduce_sum_sparse as reduce_sum_sparse  # noqa: E402
from actorflow.ops.sparse_ops import sparse_reorder as reorder  # noqa: E402
from actorflow.ops.sparse_ops import sparse_reshape as reshape  # noqa: E402
from actorflow.ops.sparse_ops import sparse_retain as retain  # noqa: E402
from actorflow.ops.sparse_ops import sparse_slice as slice  # noqa: E402, A004
from actorflow.ops.sparse_ops import sparse_softmax as softmax  # noqa: E402
from actorflow.ops.sparse_ops import sparse_split as split  # noqa: E402
from actorflow.ops.sparse_ops import sparse_to_indicator as to_indicator  # noqa: E402
from actorflow.ops.sparse_ops import sparse_transpose as transpose  # noqa: E402
from actorflow.sparse_tensor import SparseTensor, SparseTensorValue
from actorflow.sparse_tensor import sparse_placeholder as placeholder
from actorflow.sparse_tensor import sparse_tensor_dense_matmul as matmul
from actorflow.sparse_tensor import sparse_tensor_to_dense as to_dense

sparse_dense_matmul = matmul

__all__ = ["SparseTensor", "SparseTensorValue", "placeholder", "matmul", "to_dense",
           "reduce_sum", "sparse_reduce_sum", "sparse_dense_matmul", "segment_mean",
           "segment_sqrt_n", "segment_sum", "add", "concat", "expand_dims", "eye",
           "fill_empty_rows", "from_dense", "maximum", "minimum", "reduce_max",
           "reduce_max_sparse", "reduce_sum_sparse", "reorder", "reshape", "retain", "slice",
           "softmax", "split", "to_indicator", "transpose"]


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
