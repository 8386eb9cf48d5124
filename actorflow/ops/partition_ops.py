"""Partitioning ops (OSDI §4.2, Figure 3): `dynamic_partition` splits a tensor by a
per-element partition number, `dynamic_stitch` merges pieces back by index, and `range`.

They are what a lookup in a table sharded over parameter-server tasks is made of
(`actorflow.nn.embedding_lookup` with a list of shards): Part on the worker picks each id's
shard, a Gather runs where each shard lives (only the rows travel), and Stitch puts the rows
back in the ids' order. Their gradients route each row's gradient back to its shard, where it
arrives as `IndexedSlices`, so an optimizer updates only the rows that were read.

    parts = af.dynamic_partition(x, p, 2)          # x[p == 0], x[p == 1]
    y = af.dynamic_stitch([i0, i1], [a, b])        # y[i0] = a, y[i1] = b
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops.static_args import dense, rank_of
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["dynamic_partition", "dynamic_stitch", "range"]


def _int_tensor(x: Any, what: str) -> Tensor:
    t = convert_to_tensor(x, preferred_dtype=dtypes.int32)
    if not t.dtype.is_integer:
        raise InvalidArgumentError(f"{what} must be integers, got {t.dtype.name} ('{t.name}')")
    return t


# ---- dynamic_partition ----------------------------------------------------------------------
def _partition_infer(ins: list[Tensor], attrs: dict) -> list:
    data, parts = ins
    n = attrs["num_partitions"]
    rp = rank_of(parts)
    inner = None
    if data._shape is not None and rp is not None:
        if len(data._shape) < rp or not all(
                a is None or b is None or a == b
                for a, b in zip(data._shape[:rp], parts._shape, strict=False)):
            raise InvalidArgumentError(
                f"dynamic_partition: partitions {shapes.fmt(parts._shape)} must be a prefix of "
                f"data's shape {shapes.fmt(data._shape)}")
        inner = (None,) + tuple(data._shape[rp:])
    return [(data.dtype, inner)] * n


define_op("DynamicPartition", infer=_partition_infer)


def dynamic_partition(data: Any, partitions: Any, num_partitions: int,
                      name: str | None = None) -> list[Tensor]:
    """``num_partitions`` tensors: output ``p`` holds the elements of `data` whose entry of
    `partitions` (a prefix of data's shape, values in ``[0, num_partitions)``) is ``p``, in
    their order. Partition numbers out of range fail the step with InvalidArgument."""
    if type(num_partitions) is not int or num_partitions < 1:
        raise InvalidArgumentError(
            f"dynamic_partition: num_partitions must be an int >= 1, got {num_partitions!r}")
    d = convert_to_tensor(data)
    p = _int_tensor(partitions, "dynamic_partition: partitions")
    return list(apply_op("DynamicPartition", [d, p], {"num_partitions": num_partitions},
                         name=name or "DynamicPartition"))


def _partition_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(attrs["dtype"], attrs.get("shape"))]


define_op("DynamicPartitionGrad", infer=_partition_grad_infer)
no_gradient("DynamicPartitionGrad")


@register_gradient("DynamicPartition")
def _partition_grad(op: Operation, *grads: Any) -> list[Any]:
    from actorflow.ops import array_ops

    data, parts = op.inputs
    full = [dense(g) if g is not None else array_ops.zeros_like(out)
            for g, out in zip(grads, op.outputs, strict=True)]
    attrs = {"num_partitions": len(grads), "dtype": data.dtype,
             "shape": None if data._shape is None else tuple(data._shape)}
    g = apply_op("DynamicPartitionGrad", [array_ops.shape(data), parts, *full], attrs)[0]
    return [g, None]


# ---- dynamic_stitch ------------------------------------------------------------------------
def _stitch_infer(ins: list[Tensor], attrs: dict) -> list:
    n = attrs["N"]
    indices, data = ins[:n], ins[n:]
    dt = data[0].dtype
    inner = None
    for i, (idx, d) in enumerate(zip(indices, data, strict=True)):
        if d.dtype != dt:
            raise InvalidArgumentError(
                f"dynamic_stitch: data[{i}] is {d.dtype.name}, data[0] is {dt.name}")
        ri = rank_of(idx)
        if d._shape is not None and ri is not None:
            rest = tuple(d._shape[ri:])
            if inner is None:
                inner = rest
    return [(dt, None if inner is None else (None,) + inner)]


define_op("DynamicStitch", infer=_stitch_infer)


def dynamic_stitch(indices: list[Any], data: list[Any], name: str | None = None) -> Tensor:
    """Merge `data` by `indices`: ``out[indices[i][...]] = data[i][...]``, with
    ``max(index) + 1`` rows (a later piece wins on a repeated index; rows no index names are
    zero). ``data[i]``'s shape starts with ``indices[i]``'s."""
    if not isinstance(indices, list | tuple) or not isinstance(data, list | tuple) or \
            len(indices) != len(data) or not indices:
        raise InvalidArgumentError(
            "dynamic_stitch takes two lists of the same non-zero length: indices and data")
    idx = [_int_tensor(i, f"dynamic_stitch: indices[{k}]") for k, i in enumerate(indices)]
    dat = [convert_to_tensor(d) for d in data]
    return apply_op("DynamicStitch", [*idx, *dat], {"N": len(idx)},
                    name=name or "DynamicStitch")[0]


@register_gradient("DynamicStitch")
def _stitch_grad(op: Operation, grad: Any) -> list[Any]:
    from actorflow.ops.index_ops import gather

    n = op.attrs["N"]
    g = dense(grad)
    indices = op.inputs[:n]
    return [None] * n + [gather(g, i) for i in indices]


# ---- range ---------------------------------------------------------------------------------
def _range_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(attrs["dtype"], (None,))]


define_op("Range", infer=_range_infer)
no_gradient("Range")


def range(start: Any, limit: Any = None, delta: Any = 1, dtype: Any = None,  # noqa: A001
          name: str | None = None) -> Tensor:
    """``[start, start + delta, ...]`` up to (not including) `limit`; ``range(n)`` is
    ``[0, n)``."""
    if limit is None:
        start, limit = 0, start
    ins = [convert_to_tensor(v, preferred_dtype=dtypes.int32) for v in (start, limit, delta)]
    dt = dtypes.as_dtype(dtype) if dtype is not None else max(
        (t.dtype for t in ins), key=lambda d: (d.is_floating, d.size))
    from actorflow.ops.compare_ops import cast

    ins = [t if t.dtype == dt else cast(t, dt) for t in ins]
    return apply_op("Range", ins, {"dtype": dt}, name=name or "Range")[0]
