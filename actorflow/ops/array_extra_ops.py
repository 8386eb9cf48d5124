"""TF1 array ops: searchsorted, histogram_fixed_width, unravel_index, unique_with_counts,
tensor_scatter_nd_update/add/sub (and the tensor_scatter_* aliases), batch_scatter_update,
edit_distance, identity_n.

tensor_scatter_nd_add/sub are ``tensor +/- scatter_nd(indices, updates)``, so their
gradients are those ops'. tensor_scatter_nd_update is its own op (a repeated index keeps
its last update, as TF's) with TF's gradient: the tensor gets ``grad`` with the updated
positions zeroed, the updates get ``gather_nd(grad, indices)``. batch_scatter_update writes
``tensor_scatter_nd_update(ref, [batch coords, indices], updates)`` into the variable.
The others have kernels in `devices.kernels.array_extra` and no gradient (integer outputs).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import (
    apply_op,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import array_ops, join_ops, math_ops, partition_ops
from actorflow.ops.linalg_ops import gather_nd, scatter_nd
from actorflow.sparse_tensor import SparseTensor
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["searchsorted", "histogram_fixed_width", "unravel_index", "unique_with_counts",
           "tensor_scatter_nd_update", "tensor_scatter_nd_add", "tensor_scatter_nd_sub",
           "tensor_scatter_update", "tensor_scatter_add", "tensor_scatter_sub",
           "batch_scatter_update", "edit_distance", "identity_n"]


def _vals_shape(ins: list[Tensor], attrs: dict) -> list:
    return [(attrs["out_type"], ins[1]._shape)]


def _hist_infer(ins: list[Tensor], attrs: dict) -> list:
    n = constant_value(ins[2])
    return [(attrs["dtype"], (None if n is None else int(n),))]


def _unravel_infer(ins: list[Tensor], attrs: dict) -> list:
    i, d = ins
    if i._shape is not None and len(i._shape) > 1:
        raise InvalidArgumentError(f"unravel_index: indices must be a scalar or a vector, got "
                                   f"shape {list(i._shape)}; reshape them to [-1] first")
    nd = None if d._shape is None else d._shape[0]
    return [(i.dtype, None if i._shape is None else (nd, *i._shape))]


define_op("SearchSorted", infer=_vals_shape)
define_op("HistogramFixedWidth", infer=_hist_infer)
define_op("UnravelIndex", infer=_unravel_infer)
define_op("UniqueWithCounts", infer=lambda ins, a: [
    (ins[0].dtype, (None,)), (a["out_idx"], ins[0]._shape), (a["out_idx"], (None,))])
define_op("TensorScatterUpdate", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)])
define_op("EditDistance", infer=lambda ins, a: [(dtypes.float32, None)])
for _t in ("SearchSorted", "HistogramFixedWidth", "UnravelIndex", "UniqueWithCounts",
           "EditDistance"):
    no_gradient(_t)


def searchsorted(sorted_sequence: Any, values: Any, side: str = "left",
                 out_type: Any = dtypes.int32, name: str | None = None) -> Tensor:
    """For each row, where each value would be inserted to keep the row sorted."""
    if side not in ("left", "right"):
        raise InvalidArgumentError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    s = convert_to_tensor(sorted_sequence)
    v = convert_to_tensor(values, dtype=s.dtype)
    return apply_op("SearchSorted", [s, v], {"side": side,
                                             "out_type": dtypes.as_dtype(out_type)},
                    name=name or "SearchSorted")[0]


def histogram_fixed_width(values: Any, value_range: Any, nbins: Any = 100,
                          dtype: Any = dtypes.int32, name: str | None = None) -> Tensor:
    """Counts of `values` in `nbins` equal bins over value_range (ends clamp into the edge
    bins)."""
    v = convert_to_tensor(values)
    r = convert_to_tensor(value_range, dtype=v.dtype)
    n = convert_to_tensor(nbins, dtype=dtypes.int32) if not isinstance(nbins, Tensor) else nbins
    return apply_op("HistogramFixedWidth", [v, r, n], {"dtype": dtypes.as_dtype(dtype)},
                    name=name or "HistogramFixedWidth")[0]


def unravel_index(indices: Any, dims: Any, name: str | None = None) -> Tensor:
    """The coordinates of flat `indices` in an array of shape `dims`: [len(dims), ...]."""
    i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
    d = convert_to_tensor(dims, dtype=i.dtype) if not isinstance(dims, Tensor) else dims
    return apply_op("UnravelIndex", [i, d], name=name or "UnravelIndex")[0]


def unique_with_counts(x: Any, out_idx: Any = dtypes.int32, name: str | None = None
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """(y, idx, count): the distinct values of 1-D x in order of first occurrence, each
    element's index in y, and how often each distinct value occurs."""
    t = convert_to_tensor(x)
    return apply_op("UniqueWithCounts", [t], {"out_idx": dtypes.as_dtype(out_idx)},
                    name=name or "UniqueWithCounts")


def _scatter_args(tensor: Any, indices: Any, updates: Any) -> tuple[Tensor, Tensor, Tensor]:
    t = convert_to_tensor(tensor)
    i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
    u = convert_to_tensor(updates, dtype=t.dtype)
    return t, i, u


def tensor_scatter_nd_update(tensor: Any, indices: Any, updates: Any,
                             name: str | None = None) -> Tensor:
    """A copy of `tensor` with tensor[indices[j]] = updates[j]."""
    return apply_op("TensorScatterUpdate", list(_scatter_args(tensor, indices, updates)),
                    name=name or "TensorScatterUpdate")[0]


@register_gradient("TensorScatterUpdate")
def _tensor_scatter_update_grad(op: Operation, grad: Tensor) -> list[Any]:
    _, i, u = op.inputs
    return [tensor_scatter_nd_update(grad, i, array_ops.zeros_like(u)), None,
            gather_nd(grad, i)]


def tensor_scatter_nd_add(tensor: Any, indices: Any, updates: Any,
                          name: str | None = None) -> Tensor:
    """tensor + the updates added at `indices` (repeated indices add up)."""
    with name_scope(name, "TensorScatterAdd"):
        t, i, u = _scatter_args(tensor, indices, updates)
        return math_ops.add(t, scatter_nd(i, u, array_ops.shape(t, out_type=i.dtype)))


def tensor_scatter_nd_sub(tensor: Any, indices: Any, updates: Any,
                          name: str | None = None) -> Tensor:
    """tensor - the updates at `indices` (repeated indices add up)."""
    with name_scope(name, "TensorScatterSub"):
        t, i, u = _scatter_args(tensor, indices, updates)
        return math_ops.subtract(t, scatter_nd(i, u, array_ops.shape(t, out_type=i.dtype)))


tensor_scatter_update = tensor_scatter_nd_update
tensor_scatter_add = tensor_scatter_nd_add
tensor_scatter_sub = tensor_scatter_nd_sub


def batch_scatter_update(ref: Any, indices: Any, updates: Any, use_locking: bool = True,
                         name: str | None = None) -> Tensor:
    """ref[i..., indices[i..., j]] = updates[i..., j] for every batch position i...; returns
    the variable's new value."""
    from actorflow.ops import state_ops
    with name_scope(name, "BatchScatterUpdate"):
        i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
        if i._shape is None:
            raise InvalidArgumentError("batch_scatter_update needs indices of known rank")
        ri = len(i._shape)
        ishape = array_ops.shape(i, out_type=i.dtype)
        coords = []
        for d in range(ri - 1):
            r = array_ops.reshape(partition_ops.range(ishape[d], dtype=i.dtype),
                                  [1] * d + [-1] + [1] * (ri - 1 - d))
            coords.append(array_ops.expand_dims(array_ops.broadcast_to(r, ishape), -1))
        nd = join_ops.concat([*coords, array_ops.expand_dims(i, -1)], -1)
        value = convert_to_tensor(ref)
        new = tensor_scatter_nd_update(value, nd, convert_to_tensor(updates, dtype=value.dtype))
        return state_ops.assign(ref, new, use_locking=use_locking)


def edit_distance(hypothesis: SparseTensor, truth: SparseTensor, normalize: bool = True,
                  name: str = "edit_distance") -> Tensor:
    """The Levenshtein distance between the sequences of `hypothesis` and `truth` (grouped by
    all but the last index), divided by the truth's length when `normalize`."""
    for what, s in (("hypothesis", hypothesis), ("truth", truth)):
        if not isinstance(s, SparseTensor):
            raise InvalidArgumentError(f"edit_distance: {what} must be a SparseTensor, got "
                                       f"{type(s).__name__}")
    if hypothesis.dtype is not truth.dtype:
        raise InvalidArgumentError(f"edit_distance: hypothesis ({hypothesis.dtype.name}) and "
                                   f"truth ({truth.dtype.name}) must have one dtype")
    ins = [hypothesis.indices, hypothesis.values, hypothesis.dense_shape,
           truth.indices, truth.values, truth.dense_shape]
    return apply_op("EditDistance", ins, {"normalize": bool(normalize)}, name=name)[0]


def identity_n(input: list[Any], name: str | None = None) -> list[Tensor]:  # noqa: A002
    """Each input passed through unchanged (gradients pass through too)."""
    from actorflow.ops.core_ops import identity
    with name_scope(name, "IdentityN"):
        return [identity(x) for x in input]

