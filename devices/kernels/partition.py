"""Kernels of the ops that split a tensor by a per-element partition and merge pieces back
(OSDI §4.2, Figure 3: Part and Stitch around sharded gathers): DynamicPartition, its gradient
DynamicPartitionGrad, and DynamicStitch. Also Range.

Every index is checked against what it indexes before use (InvalidArgument naming the value
and the bound), as TF does; nothing is wrapped or clipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _check_partitions(xp: Any, data: Any, parts: Any, n: int) -> None:
    if tuple(data.shape[:parts.ndim]) != tuple(parts.shape):
        raise InvalidArgumentError(
            f"dynamic_partition: partitions of shape {tuple(parts.shape)} must be a prefix of "
            f"data's shape {tuple(data.shape)}")
    if parts.size:
        lo, hi = int(parts.min()), int(parts.max())
        if lo < 0 or hi >= n:
            raise InvalidArgumentError(
                f"dynamic_partition: partition {lo if lo < 0 else hi} is not in [0, {n}) "
                f"(num_partitions={n})")


@register_kernel("DynamicPartition")
def _dynamic_partition(k: KernelContext) -> Any:
    xp = k.xp
    n = int(k.attrs["num_partitions"])

    def compute(data: Any, parts: Any) -> tuple[Any, ...]:
        _check_partitions(xp, data, parts, n)
        if parts.ndim == 0:
            flat_data, flat_parts = data[None], parts.reshape(1)
        else:
            lead = int(np.prod(parts.shape, dtype=np.int64))
            flat_data = data.reshape((lead,) + tuple(data.shape[parts.ndim:]))
            flat_parts = parts.reshape(-1)
        order = xp.argsort(flat_parts, kind="stable")  # one pass instead of n masks
        counts = xp.bincount(flat_parts, minlength=n) if flat_parts.size else xp.zeros(n, int)
        ends = np.cumsum(counts.tolist() if xp is not np else counts)
        sorted_data = flat_data[order]
        start = 0
        outs = []
        for end in ends:
            outs.append(sorted_data[start:int(end)])
            start = int(end)
        return tuple(outs)
    return compute


@register_kernel("DynamicPartitionGrad")
def _dynamic_partition_grad(k: KernelContext) -> Any:
    """Inputs: data's shape, partitions, then one gradient per partition: scatters each
    partition's gradient back to where its elements came from."""
    xp = k.xp
    n = int(k.attrs["num_partitions"])
    dt = k.out_dtypes[0].np

    def compute(shape: Any, parts: Any, *grads: Any) -> tuple[Any]:
        out = xp.zeros(tuple(int(d) for d in shape), dtype=dt)
        if parts.ndim == 0:
            flat_out, flat_parts = out[None], parts.reshape(1)
        else:
            lead = int(np.prod(parts.shape, dtype=np.int64))
            flat_out = out.reshape((lead,) + tuple(out.shape[parts.ndim:]))
            flat_parts = parts.reshape(-1)
        for p in range(n):
            flat_out[flat_parts == p] = grads[p]
        return (out,)
    return compute


@register_kernel("DynamicStitch")
def _dynamic_stitch(k: KernelContext) -> Any:
    """Inputs: N index tensors then N data tensors. ``out[indices[i][j]] = data[i][j]``; the
    output has ``max(index) + 1`` rows (later pieces win on a repeated index, rows no index
    names are zero)."""
    xp = k.xp
    n = int(k.attrs["N"])
    dt = k.out_dtypes[0].np

    def compute(*ins: Any) -> tuple[Any]:
        indices, data = ins[:n], ins[n:]
        inner = None
        for i, (idx, d) in enumerate(zip(indices, data, strict=True)):
            if tuple(d.shape[:idx.ndim]) != tuple(idx.shape):
                raise InvalidArgumentError(
                    f"dynamic_stitch: data[{i}] of shape {tuple(d.shape)} does not start with "
                    f"the shape {tuple(idx.shape)} of indices[{i}]")
            rest = tuple(d.shape[idx.ndim:])
            if inner is None:
                inner = rest
            elif rest != inner:
                raise InvalidArgumentError(
                    f"dynamic_stitch: data[{i}] has element shape {rest}, data[0] has {inner}")
            if idx.size and int(idx.min()) < 0:
                raise InvalidArgumentError(
                    f"dynamic_stitch: indices[{i}] holds {int(idx.min())}; indices must be >= 0")
        rows = max((int(idx.max()) + 1 for idx in indices if idx.size), default=0)
        out = xp.zeros((rows,) + (inner or ()), dtype=dt)
        for idx, d in zip(indices, data, strict=True):
            if idx.size:
                out[idx.reshape(-1)] = d.reshape((idx.size,) + (inner or ()))
        return (out,)
    return compute


@register_kernel("Range")
def _range(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np

    def compute(start: Any, limit: Any, delta: Any) -> tuple[Any]:
        if delta == 0:
            raise InvalidArgumentError("range: delta must not be 0")
        if (delta > 0 and start > limit) or (delta < 0 and start < limit):
            raise InvalidArgumentError(
                f"range: start {start} does not reach limit {limit} with delta {delta}")
        return (xp.arange(start, limit, delta, dtype=dt),)
    return compute
