"""`gather` and `gather_nd` with ``batch_dims`` (TF's semantics), composed from the plain
ops so their gradients come from GatherNd's (a dense ScatterNd, as TF's batched gradient).

    af.gather(params, idx, axis=1, batch_dims=1)   # out[b, i] = params[b, idx[b, i]]
    af.gather_nd(params, idx, batch_dims=1)        # out[b, i] = params[b][idx[b, i, :]]

gather_nd with batch_dims=bd prepends to each index row the coordinates of its batch
position (a broadcast `range` per batch axis) and gathers with the full index; gather along
``axis == batch_dims`` is that with an index depth of 1; a larger axis is first transposed to
``batch_dims`` and the output transposed back (TF's output order
``params.shape[:axis] + indices.shape[batch_dims:] + params.shape[axis+1:]``).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["batch_gather_nd", "batch_gather"]


def _rank(t: Tensor, what: str) -> int:
    if t._shape is None:
        raise InvalidArgumentError(f"{what} with batch_dims needs '{t.name}' of known rank; "
                                   f"give it a static shape (af.reshape or set_shape)")
    return len(t._shape)


def batch_gather_nd(params: Any, indices: Any, batch_dims: int, name: str | None = None
                    ) -> Tensor:
    """gather_nd over the trailing axes, for each position of the first `batch_dims` axes."""
    from actorflow.ops import array_ops, compare_ops, join_ops, partition_ops
    from actorflow.ops.linalg_ops import gather_nd
    with name_scope(name, "GatherNdBatch"):
        p = convert_to_tensor(params)
        i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
        ri, rp = _rank(i, "gather_nd"), _rank(p, "gather_nd")
        bd = batch_dims + ri if batch_dims < 0 else batch_dims
        if not 0 <= bd < ri or bd >= rp:
            raise InvalidArgumentError(
                f"gather_nd: batch_dims={batch_dims} must be below the rank of indices ({ri}) "
                f"and of params ({rp})")
        if bd == 0:
            return gather_nd(p, i)
        ishape = array_ops.shape(i, out_type=i.dtype)
        lead = ishape[:-1]
        coords = []
        for d in range(bd):
            r = partition_ops.range(ishape[d], dtype=i.dtype)
            r = array_ops.reshape(r, [1] * d + [-1] + [1] * (ri - 2 - d))
            coords.append(array_ops.expand_dims(array_ops.broadcast_to(r, lead), -1))
        full = join_ops.concat([*coords, compare_ops.cast(i, i.dtype)], -1)
        return gather_nd(p, full)


def batch_gather(params: Any, indices: Any, axis: int, batch_dims: int,
                 name: str | None = None) -> Tensor:
    """gather along `axis` (>= batch_dims), one gather per position of the batch axes."""
    from actorflow.ops import array_ops
    with name_scope(name, "GatherBatch"):
        p = convert_to_tensor(params)
        i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
        rp, ri = _rank(p, "gather"), _rank(i, "gather")
        bd = batch_dims + ri if batch_dims < 0 else batch_dims
        ax = axis + rp if axis < 0 else axis
        if ax == 0 and bd > 0:  # TF: the default axis (None; 0 here) is batch_dims
            ax = bd
        if not 0 <= bd <= ri or bd > ax or ax >= rp:
            raise InvalidArgumentError(
                f"gather: batch_dims={batch_dims} must be in [0, rank(indices)={ri}] and not "
                f"above axis={axis} (params of rank {rp})")
        if bd == 0:
            from actorflow.ops.index_ops import gather
            return gather(p, i, axis=ax)
        if ax > bd:  # move the gathered axis to batch_dims, gather, move the middle back
            perm = list(range(bd)) + [ax] + list(range(bd, ax)) + list(range(ax + 1, rp))
            out = batch_gather(array_ops.transpose(p, perm), i, bd, bd)
            n_i, n_mid = ri - bd, ax - bd
            back = (list(range(bd)) + [bd + n_i + j for j in range(n_mid)]
                    + [bd + j for j in range(n_i)]
                    + list(range(bd + n_i + n_mid, rp - 1 + n_i)))
            return array_ops.transpose(out, back)
        return batch_gather_nd(p, array_ops.expand_dims(i, -1), bd)
