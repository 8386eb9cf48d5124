"""TF1's SparseTensor ops: reorder, reshape, slice, retain, fill_empty_rows, concat, add,
maximum/minimum, reduce_max (+ the ``_sparse`` reductions), softmax, split, to_indicator,
transpose, expand_dims, eye, from_dense.

The kernels (`devices.kernels.sparse_ops`) compute only index bookkeeping -- a permutation,
the entries kept, each entry's segment -- and the values are moved here with gather and
segment sums, so gradients with respect to the values are those ops' own:

    perm = SparseOrder(indices)            ->  values[perm]               (sparse_reorder)
    uniq, seg, count = SparseUnion(idx)    ->  unsorted_segment_sum(v, seg)  (sparse_add)

Outputs follow TF: reorder/concat/add/maximum/transpose/reduce_*_sparse come out in row-major
order; reshape, slice, retain, split and softmax keep the input's order; fill_empty_rows
sorts rows stably. Bad input is an InvalidArgumentError naming the problem: an index outside
dense_shape (fill_empty_rows), a reshape whose element count disagrees, dense shapes that
disagree when known at build (add, maximum, concat without expand_nonconcat_dim).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import (
    apply_op,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import (
    array_ops,
    compare_ops,
    index_ops,
    join_ops,
    math_ops,
    partition_ops,
    reduction_ops,
)
from actorflow.ops.linalg_ops import gather_nd, scatter_nd
from actorflow.ops.reduction_ops import unsorted_segment_sum
from actorflow.ops.static_args import dense
from actorflow.sparse_tensor import SparseTensor
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["sparse_reorder", "sparse_reshape", "sparse_slice", "sparse_retain",
           "sparse_fill_empty_rows", "sparse_concat", "sparse_add", "sparse_maximum",
           "sparse_minimum", "sparse_reduce_max", "sparse_reduce_max_sparse",
           "sparse_reduce_sum_sparse", "sparse_softmax", "sparse_split", "sparse_to_indicator",
           "sparse_transpose", "sparse_expand_dims", "sparse_eye", "sparse_from_dense",
           "dense_gradient"]

I64 = dtypes.int64


define_op("SparseOrder", infer=lambda ins, a: [(I64, (ins[0]._shape or (None,))[:1])])
define_op("SparseReshape", infer=lambda ins, a: [
    (I64, (None, None if ins[2]._shape is None else ins[2]._shape[0])), (I64, ins[2]._shape)])
define_op("SparseSliceKeep", infer=lambda ins, a: [
    (I64, (None,)), (I64, ins[0]._shape and (None, ins[0]._shape[1])), (I64, ins[1]._shape)])
define_op("SparseFillEmptyRows", infer=lambda ins, a: [
    (I64, ins[0]._shape and (None, ins[0]._shape[1])), (I64, (None,)),
    (dtypes.bool_, (None,)), (I64, (None,))])
define_op("SparseUnion", infer=lambda ins, a: [
    (I64, ins[0]._shape and (None, ins[0]._shape[1])), (I64, (None,)), (I64, (None,))])
define_op("SparseReduceGroups", infer=lambda ins, a: [(I64, (None, None)), (I64, (None,)),
                                                      (I64, (None,)), (I64, (None,))])
define_op("DenseGradient", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)])


@register_gradient("DenseGradient")
def _dense_gradient_grad(op: Any, grad: Any) -> list[Any]:
    return [dense(grad)]


def dense_gradient(x: Tensor) -> Tensor:
    """x unchanged; the gradient flowing back through it is made dense (an IndexedSlices from
    a gather is summed into a tensor), as TF's sparse ops give dense gradients."""
    return apply_op("DenseGradient", [x])[0]


for _t in ("SparseOrder", "SparseReshape", "SparseSliceKeep", "SparseFillEmptyRows",
           "SparseUnion", "SparseReduceGroups"):
    no_gradient(_t)


def _sp(x: Any, what: str) -> SparseTensor:
    if isinstance(x, SparseTensor):
        return x
    if hasattr(x, "indices") and hasattr(x, "dense_shape"):  # a SparseTensorValue
        return SparseTensor(x.indices, x.values, x.dense_shape)
    raise InvalidArgumentError(f"{what} needs a SparseTensor, got {type(x).__name__}; make "
                               f"one with af.SparseTensor(indices, values, dense_shape)")


def _rank(sp: SparseTensor, what: str) -> int:
    s = sp.dense_shape._shape
    if s is not None and s[0] is not None:
        return int(s[0])
    s = sp.indices._shape
    if s is not None and len(s) == 2 and s[1] is not None:
        return int(s[1])
    raise InvalidArgumentError(f"{what} needs a SparseTensor of known rank")


def _pick(values: Tensor, keep: Tensor) -> Tensor:
    """values[keep] by GatherNd, whose gradient is dense (TF's sparse ops' value gradients
    are dense; an IndexedSlices would not flow back through a segment sum)."""
    return gather_nd(values, array_ops.expand_dims(keep, 1))


def _take(sp: SparseTensor, keep: Tensor) -> SparseTensor:
    return SparseTensor(index_ops.gather(sp.indices, keep), _pick(sp.values, keep),
                        sp.dense_shape)


def _nrows(t: Tensor) -> Tensor:
    return array_ops.shape(t, out_type=I64)[0]


def sparse_reorder(sp_input: Any, name: str | None = None) -> SparseTensor:
    """The same SparseTensor with its entries in row-major order."""
    sp = _sp(sp_input, "sparse_reorder")
    with name_scope(name, "SparseReorder"):
        return _take(sp, apply_op("SparseOrder", [sp.indices])[0])


def sparse_reshape(sp_input: Any, shape: Any, name: str | None = None) -> SparseTensor:
    """The entries at their positions in a dense tensor of `shape` (one -1 inferred)."""
    sp = _sp(sp_input, "sparse_reshape")
    with name_scope(name, "SparseReshape"):
        new = convert_to_tensor(shape, dtype=I64) if not isinstance(shape, Tensor) \
            else compare_ops.cast(shape, I64)
        idx, out_shape = apply_op("SparseReshape", [sp.indices, sp.dense_shape, new])
        return SparseTensor(idx, sp.values, out_shape)


def sparse_slice(sp_input: Any, start: Any, size: Any, name: str | None = None) -> SparseTensor:
    """The entries inside the box [start, start + size), re-based at `start`."""
    sp = _sp(sp_input, "sparse_slice")
    with name_scope(name, "SparseSlice"):
        st, sz = (convert_to_tensor(v, dtype=I64) if not isinstance(v, Tensor)
                  else compare_ops.cast(v, I64) for v in (start, size))
        keep, idx, shape = apply_op("SparseSliceKeep", [sp.indices, sp.dense_shape, st, sz])
        return SparseTensor(idx, _pick(sp.values, keep), shape)


def sparse_retain(sp_input: Any, to_retain: Any) -> SparseTensor:
    """The entries i with to_retain[i] True (a bool vector, one per entry)."""
    sp = _sp(sp_input, "sparse_retain")
    with name_scope(None, "SparseRetain"):
        keep = array_ops.reshape(compare_ops.where(convert_to_tensor(to_retain)), [-1])
        return _take(sp, keep)


def sparse_fill_empty_rows(sp_input: Any, default_value: Any, name: str | None = None
                           ) -> tuple[SparseTensor, Tensor]:
    """(filled, empty_row_indicator): every empty row gets `default_value` at column 0."""
    sp = _sp(sp_input, "sparse_fill_empty_rows")
    with name_scope(name, "SparseFillEmptyRows"):
        idx, src, empty, _ = apply_op("SparseFillEmptyRows", [sp.indices, sp.dense_shape])
        dflt = array_ops.reshape(convert_to_tensor(default_value, dtype=sp.dtype), [1])
        ext = join_ops.concat([sp.values, dflt], 0)  # the default sits after the values
        pos = compare_ops.where(compare_ops.greater_equal(src, 0), src, _nrows(sp.values)
                                + array_ops.zeros_like(src))
        vals = gather_nd(ext, array_ops.expand_dims(pos, 1))
        return SparseTensor(idx, vals, sp.dense_shape), empty


def sparse_concat(axis: Any, sp_inputs: list[Any], name: str | None = None,
                  expand_nonconcat_dim: bool = False, concat_dim: Any = None,
                  expand_nonconcat_dims: Any = None) -> SparseTensor:
    """The SparseTensors joined along `axis` (row-major output). With expand_nonconcat_dim the
    other dimensions are the largest of the inputs'; otherwise they must agree."""
    ax = axis if concat_dim is None else concat_dim
    expand = bool(expand_nonconcat_dim or expand_nonconcat_dims)
    sps = [_sp(s, "sparse_concat") for s in sp_inputs]
    if not sps:
        raise InvalidArgumentError("sparse_concat needs at least one SparseTensor")
    r = _rank(sps[0], "sparse_concat")
    ax = int(ax) + r if int(ax) < 0 else int(ax)
    if not 0 <= ax < r:
        raise InvalidArgumentError(f"sparse_concat: axis {axis} is out of range for rank {r}")
    with name_scope(name, "SparseConcat"):
        hot = convert_to_tensor([1 if d == ax else 0 for d in range(r)], dtype=I64)
        offset = convert_to_tensor(0, dtype=I64)
        idx, total = [], convert_to_tensor(0, dtype=I64)
        for s in sps:
            idx.append(math_ops.add(s.indices, math_ops.multiply(hot, offset)))
            offset = math_ops.add(offset, s.dense_shape[ax])
        total = offset
        if expand:
            shape = sps[0].dense_shape
            for s in sps[1:]:
                shape = math_ops.maximum(shape, s.dense_shape)
        else:
            _check_same_shape(sps, ax)
            shape = sps[0].dense_shape
        shape = math_ops.add(math_ops.multiply(shape, 1 - hot), math_ops.multiply(hot, total))
        joined = SparseTensor(join_ops.concat(idx, 0),
                              join_ops.concat([s.values for s in sps], 0), shape)
        return sparse_reorder(joined)


def _check_same_shape(sps: list[SparseTensor], skip: int | None) -> None:
    known = [constant_value(s.dense_shape) for s in sps]
    if any(k is None for k in known):
        return
    for s, k in zip(sps[1:], known[1:], strict=True):
        a, b = list(known[0]), list(k)
        if skip is not None:
            a, b = a[:skip] + a[skip + 1:], b[:skip] + b[skip + 1:]
        if a != b:
            raise InvalidArgumentError(
                f"SparseTensors' dense shapes disagree: {list(known[0])} and {list(k)}"
                f"{'' if skip is None else f' (outside axis {skip})'}; "
                f"{'use expand_nonconcat_dim=True' if skip is not None else 'they must match'}")
        del s


def sparse_add(a: Any, b: Any, thresh: Any = 0, threshold: Any = None,
               name: str | None = None) -> Any:
    """a + b. Sparse + sparse is sparse (row-major; a sum of two entries whose magnitude is
    below `thresh` is dropped, as TF's); sparse + dense is dense."""
    th = thresh if threshold is None else threshold
    from actorflow.sparse_tensor import sparse_tensor_to_dense
    a_sp, b_sp = isinstance(a, SparseTensor), isinstance(b, SparseTensor)
    with name_scope(name, "SparseAdd"):
        if not (a_sp and b_sp):
            if not (a_sp or b_sp):
                raise InvalidArgumentError("sparse_add needs at least one SparseTensor")
            sp, d = (a, b) if a_sp else (b, a)
            return math_ops.add(convert_to_tensor(d, dtype=sp.dtype), sparse_tensor_to_dense(sp))
        _check_same_shape([a, b], None)
        uniq, seg, count = apply_op("SparseUnion", [join_ops.concat([a.indices, b.indices], 0)])
        summed = unsorted_segment_sum(join_ops.concat([a.values, b.values], 0), seg,
                                      _nrows(count))
        thr = convert_to_tensor(th, dtype=summed.dtype)
        keep = compare_ops.logical_or(compare_ops.equal(count, 1),
                                      compare_ops.greater_equal(math_ops.abs(summed), thr))
        keep = array_ops.reshape(compare_ops.where(keep), [-1])
        return SparseTensor(index_ops.gather(uniq, keep), _pick(summed, keep), a.dense_shape)


def _sparse_binary(a: Any, b: Any, fn: Any, what: str) -> SparseTensor:
    a, b = _sp(a, what), _sp(b, what)
    _check_same_shape([a, b], None)
    uniq, seg, count = apply_op("SparseUnion", [join_ops.concat([a.indices, b.indices], 0)])
    n = _nrows(count)
    za, zb = array_ops.zeros_like(a.values), array_ops.zeros_like(b.values)
    va = unsorted_segment_sum(join_ops.concat([a.values, zb], 0), seg, n)
    vb = unsorted_segment_sum(join_ops.concat([za, b.values], 0), seg, n)
    return SparseTensor(uniq, fn(va, vb), a.dense_shape)


def sparse_maximum(sp_a: Any, sp_b: Any, name: str | None = None) -> SparseTensor:
    """Element-wise max over the union of both index sets (an absent entry counts as 0)."""
    with name_scope(name, "SparseSparseMaximum"):
        return _sparse_binary(sp_a, sp_b, math_ops.maximum, "sparse_maximum")


def sparse_minimum(sp_a: Any, sp_b: Any, name: str | None = None) -> SparseTensor:
    """Element-wise min over the union of both index sets (an absent entry counts as 0)."""
    with name_scope(name, "SparseSparseMinimum"):
        return _sparse_binary(sp_a, sp_b, math_ops.minimum, "sparse_minimum")


def _groups(sp: SparseTensor, axis: Any, keep: bool) -> tuple[Tensor, Tensor, Tensor]:
    if axis is None:
        axes = partition_ops.range(array_ops.size(sp.dense_shape), dtype=I64)
    else:
        axes = convert_to_tensor(axis, dtype=I64) if not isinstance(axis, Tensor) \
            else compare_ops.cast(axis, I64)
    return apply_op("SparseReduceGroups", [sp.indices, sp.dense_shape, axes],
                    {"keep_dims": keep})


def _reduce(sp_input: Any, axis: Any, keepdims: Any, reduction_axes: Any, keep_dims: Any,
            what: str, sparse_out: bool, name: str | None) -> Any:
    from actorflow.ops.segment_ops import unsorted_segment_max
    sp = _sp(sp_input, what)
    ax = axis if axis is not None else reduction_axes
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, what):
        gidx, seg, gshape, flat = _groups(sp, ax, keep)
        n = _nrows(gidx)
        vals = unsorted_segment_max(sp.values, seg, n) if "Max" in what \
            else unsorted_segment_sum(sp.values, seg, n)
        if sparse_out:
            return SparseTensor(gidx, vals, gshape)
        size = array_ops.reshape(reduction_ops.reduce_prod(gshape), [1])  # rank 0 included
        return array_ops.reshape(scatter_nd(array_ops.expand_dims(flat, 1), vals, size),
                                 gshape)


def sparse_reduce_max(sp_input: Any, axis: Any = None, keepdims: Any = None,
                      reduction_axes: Any = None, keep_dims: Any = None,
                      name: str | None = None) -> Tensor:
    """The max of the *present* values along `axis`, dense (0 where a group has none)."""
    return _reduce(sp_input, axis, keepdims, reduction_axes, keep_dims, "SparseReduceMax",
                   False, name)


def sparse_reduce_max_sparse(sp_input: Any, axis: Any = None, keepdims: Any = None,
                             reduction_axes: Any = None, keep_dims: Any = None,
                             name: str | None = None) -> SparseTensor:
    """sparse_reduce_max as a SparseTensor holding only the groups that have values."""
    return _reduce(sp_input, axis, keepdims, reduction_axes, keep_dims,
                   "SparseReduceMaxSparse", True, name)


def sparse_reduce_sum_sparse(sp_input: Any, axis: Any = None, keepdims: Any = None,
                             reduction_axes: Any = None, keep_dims: Any = None,
                             name: str | None = None) -> SparseTensor:
    """The sum along `axis` as a SparseTensor holding only the groups that have values."""
    return _reduce(sp_input, axis, keepdims, reduction_axes, keep_dims,
                   "SparseReduceSumSparse", True, name)


def sparse_softmax(sp_input: Any, name: str | None = None) -> SparseTensor:
    """Softmax over the present entries of each innermost row (input order kept)."""
    from actorflow.ops.core_ops import stop_gradient
    from actorflow.ops.segment_ops import unsorted_segment_max
    sp = _sp(sp_input, "sparse_softmax")
    with name_scope(name, "SparseSoftmax"):
        gidx, seg, _, _ = _groups(sp, [-1], False)
        n = _nrows(gidx)
        top = stop_gradient(unsorted_segment_max(sp.values, seg, n))
        back = array_ops.expand_dims(seg, 1)  # GatherNd: a dense gradient to the sums
        e = math_ops.exp(math_ops.subtract(sp.values, gather_nd(top, back)))
        tot = unsorted_segment_sum(e, seg, n)
        return SparseTensor(sp.indices, math_ops.truediv(e, gather_nd(tot, back)),
                            sp.dense_shape)


def sparse_split(keyword_required: Any = None, sp_input: Any = None, num_split: Any = None,
                 axis: Any = None, name: str | None = None, split_dim: Any = None
                 ) -> list[SparseTensor]:
    """`num_split` SparseTensors along `axis`; the first dim % num_split get one extra."""
    if keyword_required is not None:
        raise InvalidArgumentError("sparse_split takes keyword arguments: "
                                   "sparse_split(sp_input=..., num_split=..., axis=...)")
    sp = _sp(sp_input, "sparse_split")
    ax = axis if axis is not None else split_dim
    if ax is None or num_split is None:
        raise InvalidArgumentError("sparse_split needs num_split and axis")
    r = _rank(sp, "sparse_split")
    ax, k = int(ax) % r, int(num_split)
    with name_scope(name, "SparseSplit"):
        dim = sp.dense_shape[ax]
        base, rem = math_ops.floordiv(dim, k), math_ops.floormod(dim, k)
        hot = convert_to_tensor([1 if d == ax else 0 for d in range(r)], dtype=I64)
        out = []
        for i in range(k):
            start = math_ops.add(math_ops.multiply(base, i), math_ops.minimum(rem, i))
            size = math_ops.add(base, compare_ops.cast(compare_ops.less(
                convert_to_tensor(i, dtype=I64), rem), I64))
            out.append(sparse_slice(sp, math_ops.multiply(hot, start),
                                    math_ops.add(math_ops.multiply(sp.dense_shape, 1 - hot),
                                                 math_ops.multiply(hot, size))))
        return out


def sparse_to_indicator(sp_input: Any, vocab_size: Any, name: str | None = None) -> Tensor:
    """A dense bool tensor [..., vocab_size]: True at [i..., id] for each id in row i..."""
    sp = _sp(sp_input, "sparse_to_indicator")
    if not sp.dtype.is_integer:
        raise InvalidArgumentError(f"sparse_to_indicator needs integer ids, got "
                                   f"{sp.dtype.name}")
    with name_scope(name, "SparseToIndicator"):
        ids = array_ops.expand_dims(compare_ops.cast(sp.values, I64), 1)
        idx = join_ops.concat([sp.indices[:, :-1], ids], 1)
        shape = join_ops.concat([sp.dense_shape[:-1],
                                 array_ops.reshape(compare_ops.cast(vocab_size, I64), [1])], 0)
        hits = scatter_nd(idx, array_ops.ones_like(sp.values, dtype=dtypes.int32), shape)
        return compare_ops.greater(hits, 0)


def sparse_transpose(sp_input: Any, perm: Any = None, name: str | None = None) -> SparseTensor:
    """The SparseTensor with its dimensions permuted (reversed by default), row-major."""
    sp = _sp(sp_input, "sparse_transpose")
    with name_scope(name, "SparseTranspose"):
        if perm is None:
            perm = list(range(_rank(sp, "sparse_transpose")))[::-1]
        p = convert_to_tensor(perm, dtype=dtypes.int32) if not isinstance(perm, Tensor) \
            else perm
        moved = SparseTensor(index_ops.gather(sp.indices, p, axis=1), sp.values,
                             index_ops.gather(sp.dense_shape, p))
        return sparse_reorder(moved)


def sparse_expand_dims(sp_input: Any, axis: Any = None, name: str | None = None
                       ) -> SparseTensor:
    """A dimension of size 1 inserted at `axis` (negative counts from the end)."""
    sp = _sp(sp_input, "sparse.expand_dims")
    r = _rank(sp, "sparse.expand_dims")
    a = int(axis if axis is not None else 0)
    a = a + r + 1 if a < 0 else a
    if not 0 <= a <= r:
        raise InvalidArgumentError(f"sparse.expand_dims: axis {axis} is out of range for a "
                                   f"SparseTensor of rank {r}")
    with name_scope(name, "ExpandDims"):
        zero = array_ops.zeros_like(sp.indices[:, :1])
        idx = join_ops.concat([sp.indices[:, :a], zero, sp.indices[:, a:]], 1)
        shape = join_ops.concat([sp.dense_shape[:a], convert_to_tensor([1], dtype=I64),
                                 sp.dense_shape[a:]], 0)
        return SparseTensor(idx, sp.values, shape)


def sparse_eye(num_rows: Any, num_columns: Any = None, dtype: Any = dtypes.float32,
               name: str | None = None) -> SparseTensor:
    """The identity matrix [num_rows, num_columns] as a SparseTensor."""
    with name_scope(name, "eye"):
        r = compare_ops.cast(convert_to_tensor(num_rows), I64)
        c = r if num_columns is None else compare_ops.cast(convert_to_tensor(num_columns), I64)
        diag = partition_ops.range(math_ops.minimum(r, c), dtype=I64)
        idx = join_ops.stack([diag, diag], axis=1)
        return SparseTensor(idx, array_ops.ones_like(diag, dtype=dtype),
                            join_ops.stack([r, c]))


def sparse_from_dense(tensor: Any, name: str | None = None) -> SparseTensor:
    """The non-zero entries of a dense tensor, row-major."""
    with name_scope(name, "dense_to_sparse"):
        t = convert_to_tensor(tensor)
        idx = compare_ops.where(compare_ops.not_equal(t, array_ops.zeros_like(t)))
        return SparseTensor(idx, gather_nd(t, idx), array_ops.shape(t, out_type=I64))
