"""Kernels of the sparse-tensor ops' index bookkeeping (NumPy, CPU).

Each kernel computes only *where* values go -- a permutation, the positions kept, the
segment of each entry -- never the values themselves: `actorflow.ops.sparse_ops` moves the
values with gather / segment sums, so their gradients are those ops' own.

- SparseOrder(indices) -> perm: the stable row-major (lexicographic) order of the entries.
- SparseReshape(indices, shape, new_shape) -> (new_indices, out_shape): TF's op (one -1
  is inferred; the element count must agree).
- SparseSliceKeep(indices, shape, start, size) -> (keep, new_indices, out_shape): the entries
  inside the box, in input order, re-based at `start`; out_shape clips the box to the shape.
- SparseFillEmptyRows(indices, shape) -> (new_indices, src, empty_row, reverse_map): rows
  sorted (stable), each empty row given one entry at column 0 (src = -1 there).
- SparseUnion(indices) -> (unique_indices, segment, count): the distinct index rows in
  row-major order, each entry's row among them, and each distinct row's multiplicity.
- SparseReduceGroups(indices, shape, axes) -> (group_indices, segment, group_shape, flat):
  the entries grouped by their index with `axes` dropped (attr keep_dims sets them to 0);
  flat is each group's row-major position in group_shape.
- SortedSegmentIds(ids) -> ids: checked non-decreasing and non-negative.
- DenseGradient(x) -> x (its gradient is made dense by its op definition).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel

I64 = np.int64


def _lexsort(idx: np.ndarray) -> np.ndarray:
    if idx.shape[0] == 0 or idx.shape[1] == 0:
        return np.arange(idx.shape[0], dtype=I64)
    return np.lexsort(idx.T[::-1]).astype(I64)


def _check(k: KernelContext, idx: np.ndarray, shape: np.ndarray) -> None:
    if idx.ndim != 2 or shape.ndim != 1 or idx.shape[1] != shape.shape[0]:
        raise InvalidArgumentError(
            f"'{k.name}': indices of shape {list(idx.shape)} do not match a dense_shape of "
            f"rank {shape.shape[0] if shape.ndim == 1 else shape.shape}; indices must be "
            f"[N, rank]")
    if idx.size and (np.any(idx < 0) or np.any(idx >= shape[None, :])):
        bad = int(np.argmax(np.any((idx < 0) | (idx >= shape[None, :]), axis=1)))
        raise InvalidArgumentError(
            f"'{k.name}': index {idx[bad].tolist()} is out of bounds of dense_shape "
            f"{shape.tolist()}")


@register_kernel("SparseOrder", device_types=("CPU",))
def _order(k: KernelContext) -> Any:
    return lambda idx: (_lexsort(np.asarray(idx, I64)),)


@register_kernel("SparseReshape", device_types=("CPU",))
def _reshape(k: KernelContext) -> Any:
    def compute(idx: Any, shape: Any, new: Any) -> tuple[Any, Any]:
        idx, shape, new = (np.asarray(a, I64) for a in (idx, shape, new))
        total = int(np.prod(shape))
        out = new.copy()
        unknown = np.flatnonzero(out == -1)
        if unknown.size > 1:
            raise InvalidArgumentError(f"'{k.name}': only one output dimension may be -1, "
                                       f"got shape {new.tolist()}")
        if unknown.size:
            known = int(np.prod(np.delete(out, unknown)))
            if known == 0 or total % known:
                raise InvalidArgumentError(
                    f"'{k.name}': cannot reshape a SparseTensor of {total} dense elements "
                    f"(shape {shape.tolist()}) into {new.tolist()}")
            out[unknown[0]] = total // known
        if int(np.prod(out)) != total:
            raise InvalidArgumentError(
                f"'{k.name}': cannot reshape a SparseTensor of shape {shape.tolist()} "
                f"({total} elements) into {out.tolist()} ({int(np.prod(out))} elements)")
        if idx.shape[0] == 0:
            return np.zeros((0, out.size), I64), out
        flat = np.ravel_multi_index(tuple(idx.T), tuple(shape)) if shape.size else \
            np.zeros(idx.shape[0], I64)
        new_idx = np.stack(np.unravel_index(flat, tuple(out)), axis=1).astype(I64) \
            if out.size else np.zeros((idx.shape[0], 0), I64)
        return new_idx, out
    return compute


@register_kernel("SparseSliceKeep", device_types=("CPU",))
def _slice(k: KernelContext) -> Any:
    def compute(idx: Any, shape: Any, start: Any, size: Any) -> tuple[Any, Any, Any]:
        idx, shape, start, size = (np.asarray(a, I64) for a in (idx, shape, start, size))
        if not start.shape == size.shape == shape.shape:
            raise InvalidArgumentError(
                f"'{k.name}': start {start.tolist()} and size {size.tolist()} must each "
                f"have one entry per dimension of dense_shape {shape.tolist()}")
        end = np.minimum(start + size, shape)
        inside = np.all((idx >= start) & (idx < end), axis=1) if idx.size else \
            np.zeros(idx.shape[0], bool)
        keep = np.flatnonzero(inside).astype(I64)
        return keep, idx[keep] - start, np.maximum(end - start, 0)
    return compute


@register_kernel("SparseFillEmptyRows", device_types=("CPU",))
def _fill_empty(k: KernelContext) -> Any:
    def compute(idx: Any, shape: Any) -> tuple[Any, Any, Any, Any]:
        idx, shape = np.asarray(idx, I64), np.asarray(shape, I64)
        _check(k, idx, shape)
        n_rows = int(shape[0]) if shape.size else 0
        rows = idx[:, 0] if idx.shape[0] else np.zeros(0, I64)
        empty = np.ones(n_rows, bool)
        empty[rows] = False
        fill = np.flatnonzero(empty).astype(I64)
        filled = np.zeros((fill.size, idx.shape[1]), I64)
        filled[:, 0] = fill
        all_idx = np.concatenate([idx, filled])
        src = np.concatenate([np.arange(idx.shape[0], dtype=I64), np.full(fill.size, -1, I64)])
        order = np.argsort(all_idx[:, 0], kind="stable")
        reverse = np.empty(idx.shape[0], I64)
        pos = np.arange(order.size, dtype=I64)
        mask = src[order] >= 0
        reverse[src[order][mask]] = pos[mask]
        return all_idx[order], src[order], empty, reverse
    return compute


@register_kernel("SparseUnion", device_types=("CPU",))
def _union(k: KernelContext) -> Any:
    def compute(idx: Any) -> tuple[Any, Any, Any]:
        idx = np.asarray(idx, I64)
        if idx.shape[0] == 0:
            return idx.reshape(0, idx.shape[1]), np.zeros(0, I64), np.zeros(0, I64)
        uniq, seg, count = np.unique(idx, axis=0, return_inverse=True, return_counts=True)
        return uniq.astype(I64), seg.reshape(-1).astype(I64), count.astype(I64)
    return compute


@register_kernel("SparseReduceGroups", device_types=("CPU",))
def _groups(k: KernelContext) -> Any:
    keep_dims = bool(k.attr("keep_dims", False))

    def compute(idx: Any, shape: Any, axes: Any) -> tuple[Any, Any, Any]:
        idx, shape = np.asarray(idx, I64), np.asarray(shape, I64)
        rank = shape.size
        ax = np.asarray(axes, I64).reshape(-1)
        if ax.size and (np.any(ax >= rank) or np.any(ax < -rank)):
            raise InvalidArgumentError(f"'{k.name}': reduction axes {ax.tolist()} are out of "
                                       f"range for a SparseTensor of rank {rank}")
        red = np.zeros(rank, bool)
        red[ax % rank if rank else ax] = True
        if keep_dims:
            key = np.where(red[None, :], 0, idx)
            out_shape = np.where(red, 1, shape)
        else:
            key, out_shape = idx[:, ~red], shape[~red]
        if key.shape[0] == 0:
            return (key.reshape(0, out_shape.size), np.zeros(0, I64), out_shape.astype(I64),
                    np.zeros(0, I64))
        if key.shape[1] == 0:  # every entry in the one group of a full reduction
            return (np.zeros((1, 0), I64), np.zeros(key.shape[0], I64), out_shape.astype(I64),
                    np.zeros(1, I64))
        uniq, seg = np.unique(key, axis=0, return_inverse=True)
        flat = np.ravel_multi_index(tuple(uniq.T), tuple(out_shape)).astype(I64)
        return uniq.astype(I64), seg.reshape(-1).astype(I64), out_shape.astype(I64), flat
    return compute


@register_kernel("SortedSegmentIds", device_types=("CPU",))
def _sorted_ids(k: KernelContext) -> Any:
    """The segment ids passed through, once checked non-decreasing and non-negative (TF's
    sorted segment ops require both)."""
    def compute(ids: Any) -> tuple[Any]:
        a = np.asarray(ids).reshape(-1)
        if a.size and a[0] < 0:
            raise InvalidArgumentError(f"'{k.name}': segment id {int(a[0])} is negative")
        if a.size > 1 and np.any(np.diff(a) < 0):
            at = int(np.argmax(np.diff(a) < 0))
            raise InvalidArgumentError(
                f"'{k.name}': segment ids are not sorted: {int(a[at])} is followed by "
                f"{int(a[at + 1])} at position {at + 1}; sort them or use "
                f"af.unsorted_segment_sum")
        return (ids,)
    return compute


@register_kernel("DenseGradient")
def _dense_gradient(k: KernelContext) -> Any:
    return lambda x: (x,)
