"""`SparseTensor`: TF1's sparse value (indices [n, rank] int64, values [n], dense_shape
[rank]) as three tensors, and `SparseTensorValue`, its fetched value.

    sp = af.SparseTensor(indices=[[0, 0], [1, 2]], values=[3, 7], dense_shape=[2, 4])
    dense = af.sparse_tensor_to_dense(sp)

`sparse_placeholder` is a SparseTensor of three placeholders; a feed_dict entry whose key is a
SparseTensor (its value a SparseTensorValue or an (indices, values, dense_shape) tuple) feeds
the three (`expand_sparse_feeds`, called by Session.run).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from actorflow.graph import Tensor
from actorflow.op_def import convert_to_tensor
from devices import dtypes

__all__ = ["SparseTensor", "SparseTensorValue", "sparse_tensor_to_dense", "sparse_placeholder",
           "sparse_tensor_dense_matmul"]


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
    def shape(self) -> Any:
        """The static dense shape: the placeholder's `shape`, else the constant's value."""
        from actorflow.op_def import constant_value
        from actorflow.tensor import TensorShape
        static = getattr(self, "_static_shape", None)
        if static is None:
            v = constant_value(self.dense_shape)
            static = tuple(int(d) for d in v) if v is not None else (
                None if self.dense_shape._shape is None or self.dense_shape._shape[0] is None
                else (None,) * self.dense_shape._shape[0])
        return TensorShape(static)

    def get_shape(self) -> Any:
        return self.shape

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


def sparse_placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> SparseTensor:
    """A SparseTensor to feed (`{sp: SparseTensorValue(indices, values, dense_shape)}`).
    With a fully known `shape`, dense_shape defaults to it and need not be fed."""
    from actorflow import shapes
    from actorflow.graph import name_scope
    from actorflow.ops.core_ops import placeholder, placeholder_with_default
    static = shapes.as_shape(shape) if shape is not None else None
    rank = None if static is None else len(static)
    with name_scope(name, "SparsePlaceholder") as scope:
        values = placeholder(dtype, [None], name="values")
        indices = placeholder(dtypes.int64, [None, rank], name="indices")
        if static is not None and all(d is not None for d in static):
            dense_shape = placeholder_with_default(
                convert_to_tensor(list(static), dtype=dtypes.int64), [rank], name="shape")
        else:
            dense_shape = placeholder(dtypes.int64, [rank], name="shape")
    sp = SparseTensor(indices, values, dense_shape)
    sp._static_shape = static  # type: ignore[attr-defined]
    del scope
    return sp


def expand_sparse_feeds(feed_dict: dict) -> dict:
    """`feed_dict` with each SparseTensor key replaced by its three component tensors."""
    if not any(isinstance(k, SparseTensor) for k in feed_dict):
        return feed_dict
    out: dict = {}
    for k, v in feed_dict.items():
        if not isinstance(k, SparseTensor):
            out[k] = v
            continue
        if isinstance(v, SparseTensor) or not isinstance(v, tuple | list) or len(v) != 3:
            from devices.errors import InvalidArgumentError
            raise InvalidArgumentError(
                f"a SparseTensor is fed a SparseTensorValue(indices, values, dense_shape) or "
                f"a 3-tuple of arrays, got {type(v).__name__}")
        out[k.indices], out[k.values], out[k.dense_shape] = v
    return out


def sparse_tensor_dense_matmul(sp_a: SparseTensor, b: Any, adjoint_a: bool = False,
                               adjoint_b: bool = False, name: str | None = None) -> Tensor:
    """The dense product of a rank-2 SparseTensor and a dense matrix: out[r] is the sum of
    values[k] * b[col_k] over the entries k of row r (differentiable in values and b; both
    gradients dense, as TF's)."""
    from actorflow.graph import name_scope
    from actorflow.ops import array_ops, index_ops, math_ops
    from actorflow.ops.segment_ops import unsorted_segment_sum
    with name_scope(name, "SparseTensorDenseMatMul"):
        b = convert_to_tensor(b)
        if adjoint_b:
            b = array_ops.transpose(b)
        rows = index_ops.gather(sp_a.indices, 1 if adjoint_a else 0, axis=1)
        cols = index_ops.gather(sp_a.indices, 0 if adjoint_a else 1, axis=1)
        from actorflow.ops.sparse_ops import dense_gradient  # d/db dense, as TF's
        contrib = math_ops.multiply(array_ops.expand_dims(sp_a.values, 1),
                                    index_ops.gather(dense_gradient(b), cols))
        n_rows = index_ops.gather(sp_a.dense_shape, 1 if adjoint_a else 0)
        return unsorted_segment_sum(contrib, rows, n_rows)
