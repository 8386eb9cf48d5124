"""Segment reductions beyond the sum: unsorted_segment_max/min/mean/prod,
segment_max/min/prod, sparse_segment_sum/mean/sqrt_n, and `embedding_lookup_sparse` (with
`SparseTensor`).

    af.unsorted_segment_max(data, ids, num_segments=3)
    af.segment_max(data, [0, 0, 1])             # ids sorted; num_segments = max(ids) + 1

Gradients of max/min go to the positions that hold the extreme of their segment, shared
equally among ties (as TF's). The sparse_segment ops read their rows through
`dense_gradient`, so their gradient is dense, as TF's SparseSegment*Grad;
embedding_lookup_sparse looks up each distinct id once, so its gradient is an IndexedSlices
over the unique ids, as TF's.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import array_ops, compare_ops, math_ops, reduction_ops
from actorflow.ops.reduction_ops import _segment_infer, unsorted_segment_sum
from actorflow.sparse_tensor import SparseTensor
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["unsorted_segment_max", "unsorted_segment_min", "unsorted_segment_mean",
           "unsorted_segment_prod", "segment_max", "segment_min", "segment_prod",
           "embedding_lookup_sparse", "sparse_segment_sum", "sparse_segment_mean",
           "sparse_segment_sqrt_n"]

define_op("UnsortedSegmentMax", infer=_segment_infer)
define_op("SortedSegmentIds", infer=lambda ins, attrs: [(ins[0].dtype, ins[0]._shape)])
no_gradient("SortedSegmentIds")
define_op("UnsortedSegmentMin", infer=_segment_infer)


def _args(data: Any, segment_ids: Any, num_segments: Any) -> list[Tensor]:
    d = convert_to_tensor(data)
    ids = convert_to_tensor(segment_ids, preferred_dtype=dtypes.int32)
    n = convert_to_tensor(num_segments, preferred_dtype=ids.dtype) \
        if not isinstance(num_segments, Tensor) else compare_ops.cast(num_segments, ids.dtype)
    return [d, ids, n]


def unsorted_segment_max(data: Any, segment_ids: Any, num_segments: Any,
                         name: str | None = None) -> Tensor:
    """out[i] = max of data[j] with segment_ids[j] == i (the lowest value when empty)."""
    return apply_op("UnsortedSegmentMax", _args(data, segment_ids, num_segments),
                    name=name or "UnsortedSegmentMax")[0]


def unsorted_segment_min(data: Any, segment_ids: Any, num_segments: Any,
                         name: str | None = None) -> Tensor:
    return apply_op("UnsortedSegmentMin", _args(data, segment_ids, num_segments),
                    name=name or "UnsortedSegmentMin")[0]


def _extreme_grad(op: Operation, grad: Tensor) -> list[Any]:
    data, ids, n = op.inputs
    y = op.outputs[0]
    picked = apply_op("GatherDropNegatives", [y, ids])[0]      # each row's segment extreme
    hit = compare_ops.cast(compare_ops.equal(data, picked), data.dtype)
    ties = unsorted_segment_sum(hit, ids, n)
    share = math_ops.truediv(apply_op("GatherDropNegatives", [grad, ids])[0],
                             apply_op("GatherDropNegatives", [math_ops.maximum(ties, 1.0),
                                                               ids])[0])
    return [math_ops.multiply(hit, share), None, None]


register_gradient("UnsortedSegmentMax")(_extreme_grad)
register_gradient("UnsortedSegmentMin")(_extreme_grad)


def unsorted_segment_mean(data: Any, segment_ids: Any, num_segments: Any,
                          name: str | None = None) -> Tensor:
    with name_scope(name, "UnsortedSegmentMean"):
        d, ids, n = _args(data, segment_ids, num_segments)
        s = unsorted_segment_sum(d, ids, n)
        c = unsorted_segment_sum(array_ops.ones_like(ids, dtype=d.dtype), ids, n)
        r = d.shape.rank
        c = math_ops.maximum(c, 1.0)
        if r is not None and ids.shape.rank is not None and r > ids.shape.rank:
            c = array_ops.reshape(c, [-1] + [1] * (r - ids.shape.rank))
        return math_ops.truediv(s, c)


def unsorted_segment_prod(data: Any, segment_ids: Any, num_segments: Any,
                          name: str | None = None) -> Tensor:
    """The product per segment (1 when empty), as exp of the sum of logs of |x| with the
    sign and zeros tracked."""
    with name_scope(name, "UnsortedSegmentProd"):
        d, ids, n = _args(data, segment_ids, num_segments)
        if not d.dtype.is_floating:
            raise InvalidArgumentError("unsorted_segment_prod supports floating data")
        zero = compare_ops.equal(d, 0.0)
        mag = math_ops.exp(unsorted_segment_sum(
            math_ops.log(compare_ops.where(zero, array_ops.ones_like(d), math_ops.abs(d))),
            ids, n))
        neg = unsorted_segment_sum(compare_ops.cast(compare_ops.less(d, 0.0), d.dtype), ids, n)
        sign = math_ops.subtract(1.0, math_ops.multiply(2.0, math_ops.floormod(neg, 2.0)))
        zeros = unsorted_segment_sum(compare_ops.cast(zero, d.dtype), ids, n)
        return math_ops.multiply(math_ops.multiply(mag, sign),
                                 compare_ops.cast(compare_ops.equal(zeros, 0.0), d.dtype))


def _sorted_n(segment_ids: Any) -> Tensor:
    ids = convert_to_tensor(segment_ids, preferred_dtype=dtypes.int32)
    return math_ops.maximum(math_ops.add(reduction_ops.reduce_max(ids), 1), 0)


def _empty_as_zero(out: Tensor, data: Any, segment_ids: Any, n: Tensor) -> Tensor:
    """The sorted segment_max/min's convention (TF's): an empty segment holds 0, not the
    dtype's lowest/highest value (the unsorted ops' convention)."""
    d = convert_to_tensor(data)
    ids = convert_to_tensor(segment_ids, preferred_dtype=dtypes.int32)
    count = unsorted_segment_sum(array_ops.ones_like(ids, dtype=d.dtype), ids, n)
    r = d.shape.rank
    if r is not None and ids.shape.rank is not None and r > ids.shape.rank:
        count = array_ops.reshape(count, [-1] + [1] * (r - ids.shape.rank))
    return compare_ops.where(compare_ops.greater(count, 0), out, array_ops.zeros_like(out))


def segment_max(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """out[i] = max of data[j] with segment_ids[j] == i (ids sorted; 0 when empty)."""
    with name_scope(name, "SegmentMax"):
        n = _sorted_n(segment_ids)
        return _empty_as_zero(unsorted_segment_max(data, segment_ids, n), data, segment_ids, n)


def segment_min(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """out[i] = min of data[j] with segment_ids[j] == i (ids sorted; 0 when empty)."""
    with name_scope(name, "SegmentMin"):
        n = _sorted_n(segment_ids)
        return _empty_as_zero(unsorted_segment_min(data, segment_ids, n), data, segment_ids, n)


def segment_prod(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    with name_scope(name, "SegmentProd"):
        return unsorted_segment_prod(data, segment_ids, _sorted_n(segment_ids))


def embedding_lookup_sparse(params: Any, sp_ids: SparseTensor, sp_weights: Any,
                            partition_strategy: str = "mod", name: str | None = None,
                            combiner: str = "mean", max_norm: Any = None) -> Tensor:
    """For each row of the sparse ids (a [batch, k] SparseTensor), the combination of the
    embeddings of its ids: "sum", "mean" (weighted mean) or "sqrtn" (sum / sqrt(sum w^2)).
    Rows are numbered up to the largest row present, as in TF."""
    if combiner not in ("sum", "mean", "sqrtn"):
        raise InvalidArgumentError(f"combiner must be 'sum', 'mean' or 'sqrtn', got "
                                   f"{combiner!r}")
    from actorflow.ops import index_ops, scan_sort_ops
    from actorflow.ops.nn_ops import embedding_lookup
    with name_scope(name, "embedding_lookup_sparse"):
        rows = index_ops.gather(array_ops.transpose(sp_ids.indices), 0)
        rows = compare_ops.cast(rows, dtypes.int32)
        n = math_ops.add(reduction_ops.reduce_max(rows), 1)
        uids, pos = scan_sort_ops.unique(sp_ids.values)
        emb = index_ops.gather(embedding_lookup(params, uids,
                                                partition_strategy=partition_strategy), pos)
        if sp_weights is None:
            w = array_ops.ones_like(rows, dtype=emb.dtype)
        else:
            w = compare_ops.cast(sp_weights.values, emb.dtype)
        summed = unsorted_segment_sum(math_ops.multiply(emb, array_ops.expand_dims(w, 1)),
                                      rows, n)
        if combiner == "sum":
            return summed
        if combiner == "mean":
            den = unsorted_segment_sum(w, rows, n)
        else:
            den = math_ops.sqrt(unsorted_segment_sum(math_ops.square(w), rows, n))
        return math_ops.truediv(summed, array_ops.expand_dims(math_ops.maximum(den, 1e-30), 1))


def _sparse_segment(data: Any, indices: Any, segment_ids: Any, num_segments: Any,
                    kind: str, name: str | None) -> Tensor:
    from actorflow.ops import index_ops
    from actorflow.ops.sparse_ops import dense_gradient
    with name_scope(name, "SparseSegment" + kind):
        d = convert_to_tensor(data)
        idx = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
        ids = apply_op("SortedSegmentIds", [convert_to_tensor(segment_ids,
                                                              preferred_dtype=dtypes.int32)])[0]
        n = _sorted_n(ids) if num_segments is None else compare_ops.cast(
            convert_to_tensor(num_segments, preferred_dtype=ids.dtype), ids.dtype)
        rows = index_ops.gather(dense_gradient(d), idx)
        out = unsorted_segment_sum(rows, ids, n)
        if kind == "Sum":
            return out
        count = math_ops.maximum(unsorted_segment_sum(
            array_ops.ones_like(ids, dtype=d.dtype), ids, n), 1.0)
        if kind == "SqrtN":
            count = math_ops.sqrt(count)
        r = d.shape.rank
        if r is not None and r > 1:
            count = array_ops.reshape(count, [-1] + [1] * (r - 1))
        return math_ops.truediv(out, count)


def sparse_segment_sum(data: Any, indices: Any, segment_ids: Any, name: str | None = None,
                       num_segments: Any = None) -> Tensor:
    """out[s] = sum of data[indices[j]] over j with segment_ids[j] == s (ids sorted;
    num_segments = max(ids) + 1 unless given)."""
    return _sparse_segment(data, indices, segment_ids, num_segments, "Sum", name)


def sparse_segment_mean(data: Any, indices: Any, segment_ids: Any, name: str | None = None,
                        num_segments: Any = None) -> Tensor:
    """The mean of the rows data[indices[j]] of each segment (0 for an empty segment)."""
    return _sparse_segment(data, indices, segment_ids, num_segments, "Mean", name)


def sparse_segment_sqrt_n(data: Any, indices: Any, segment_ids: Any, name: str | None = None,
                          num_segments: Any = None) -> Tensor:
    """The sum of each segment's rows divided by the square root of their count."""
    return _sparse_segment(data, indices, segment_ids, num_segments, "SqrtN", name)


def sparse_segment_sum_with_num_segments(data: Any, indices: Any, segment_ids: Any,
                                         num_segments: Any, name: str | None = None) -> Tensor:
    return sparse_segment_sum(data, indices, segment_ids, name, num_segments)


def sparse_segment_mean_with_num_segments(data: Any, indices: Any, segment_ids: Any,
                                          num_segments: Any, name: str | None = None) -> Tensor:
    return sparse_segment_mean(data, indices, segment_ids, name, num_segments)


def sparse_segment_sqrt_n_with_num_segments(data: Any, indices: Any, segment_ids: Any,
                                            num_segments: Any, name: str | None = None
                                            ) -> Tensor:
    return sparse_segment_sqrt_n(data, indices, segment_ids, name, num_segments)
