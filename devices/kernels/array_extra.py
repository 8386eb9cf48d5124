"""Kernels of TF1 array ops with no composition worth the name (NumPy, CPU):

- SearchSorted(sorted [..., N], values [..., M]; side, out_type): per row, the insertion
  points of values in the sorted row (np.searchsorted with TF's side).
- HistogramFixedWidth(values, value_range, nbins; dtype): counts in nbins equal bins over
  [lo, hi); values below lo count in the first bin, at or above hi in the last (TF's).
- UnravelIndex(indices, dims): the coordinates of flat indices, [len(dims), ...].
- UniqueWithCounts(x; out_idx): the distinct values in order of first occurrence, each
  element's position among them, and each distinct value's count.
- TensorScatterUpdate(tensor, indices, updates): a copy of tensor with the index rows of
  `indices` overwritten (a repeated index keeps its last update).
- EditDistance(hyp indices, values, shape, truth indices, values, shape; normalize): the
  Levenshtein distance of each pair of sequences (grouped by all but the last index).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


@register_kernel("SearchSorted", device_types=("CPU",))
def _searchsorted(k: KernelContext) -> Any:
    side = k.attr("side", "left")
    out = k.out_dtypes[0].np

    def compute(seq: Any, vals: Any) -> tuple[Any]:
        seq, vals = np.asarray(seq), np.asarray(vals)
        if seq.ndim == 0 or vals.ndim != seq.ndim or seq.shape[:-1] != vals.shape[:-1]:
            raise InvalidArgumentError(
                f"'{k.name}': sorted_sequence {list(seq.shape)} and values "
                f"{list(vals.shape)} must have the same leading dimensions")
        s2, v2 = seq.reshape(-1, seq.shape[-1]), vals.reshape(-1, vals.shape[-1])
        res = np.empty(v2.shape, out)
        for r in range(s2.shape[0]):
            res[r] = np.searchsorted(s2[r], v2[r], side=side)
        return (res.reshape(vals.shape),)
    return compute


@register_kernel("HistogramFixedWidth", device_types=("CPU",))
def _histogram(k: KernelContext) -> Any:
    out = k.out_dtypes[0].np

    def compute(values: Any, value_range: Any, nbins: Any) -> tuple[Any]:
        lo, hi = (float(v) for v in np.asarray(value_range).reshape(-1)[:2])
        n = int(nbins)
        if n <= 0 or not hi > lo:
            raise InvalidArgumentError(f"'{k.name}': nbins must be positive and value_range "
                                       f"[lo, hi] increasing, got nbins={n}, [{lo}, {hi}]")
        v = np.asarray(values, np.float64).reshape(-1)
        b = np.clip(np.floor((v - lo) / (hi - lo) * n), 0, n - 1).astype(np.int64)
        return (np.bincount(b, minlength=n).astype(out),)
    return compute


@register_kernel("UnravelIndex", device_types=("CPU",))
def _unravel(k: KernelContext) -> Any:
    def compute(indices: Any, dims: Any) -> tuple[Any]:
        i, d = np.asarray(indices), np.asarray(dims)
        total = int(np.prod(d))
        if i.size and (i.min() < 0 or i.max() >= total):
            bad = int(i.max() if i.max() >= total else i.min())
            raise InvalidArgumentError(f"'{k.name}': index {bad} "
                                       f"is out of bounds of dims {d.tolist()}")
        return (np.array(np.unravel_index(i, tuple(int(x) for x in d)), dtype=i.dtype),)
    return compute


@register_kernel("UniqueWithCounts", device_types=("CPU",))
def _unique_counts(k: KernelContext) -> Any:
    idx_t = k.out_dtypes[1].np

    def compute(x: Any) -> tuple[Any, Any, Any]:
        x = np.asarray(x)
        if x.size == 0:
            return x[:0], np.zeros(0, idx_t), np.zeros(0, idx_t)
        u, first, inv, cnt = np.unique(x, return_index=True, return_inverse=True,
                                       return_counts=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return u[order], rank[inv.reshape(-1)].astype(idx_t), cnt[order].astype(idx_t)
    return compute


@register_kernel("TensorScatterUpdate", device_types=("CPU",))
def _tensor_scatter_update(k: KernelContext) -> Any:
    def compute(t: Any, idx: Any, upd: Any) -> tuple[Any]:
        t, idx, upd = np.asarray(t), np.asarray(idx), np.asarray(upd)
        depth = idx.shape[-1]
        flat = idx.reshape(-1, depth)
        if depth > t.ndim or upd.shape != idx.shape[:-1] + t.shape[depth:]:
            raise InvalidArgumentError(
                f"'{k.name}': updates of shape {list(upd.shape)} do not match indices "
                f"{list(idx.shape)} into a tensor of shape {list(t.shape)} (expected "
                f"{list(idx.shape[:-1] + t.shape[depth:])})")
        if flat.size and (np.any(flat < 0) or np.any(flat >= np.array(t.shape[:depth]))):
            bad = flat[np.any((flat < 0) | (flat >= np.array(t.shape[:depth])), axis=1)][0]
            raise InvalidArgumentError(f"'{k.name}': index {bad.tolist()} is out of bounds "
                                       f"of shape {list(t.shape)}")
        out = t.copy()
        out[tuple(flat.T)] = upd.reshape((flat.shape[0],) + t.shape[depth:])
        return (out,)
    return compute


def _levenshtein(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def _sequences(idx: np.ndarray, vals: np.ndarray) -> dict[tuple, list]:
    order = np.lexsort(idx.T[::-1]) if idx.size else np.arange(idx.shape[0])
    seqs: dict[tuple, list] = {}
    for p in order:
        seqs.setdefault(tuple(int(v) for v in idx[p, :-1]), []).append(vals[p])
    return seqs


@register_kernel("EditDistance", device_types=("CPU",))
def _edit_distance(k: KernelContext) -> Any:
    normalize = bool(k.attr("normalize", True))

    def compute(hi: Any, hv: Any, hs: Any, ti: Any, tv: Any, ts: Any) -> tuple[Any]:
        hi, ti = np.asarray(hi, np.int64), np.asarray(ti, np.int64)
        hs, ts = np.asarray(hs, np.int64), np.asarray(ts, np.int64)
        if hs.size != ts.size or hs.size < 2:
            raise InvalidArgumentError(f"'{k.name}': hypothesis and truth must be "
                                       f"SparseTensors of one rank >= 2, got shapes "
                                       f"{hs.tolist()} and {ts.tolist()}")
        hseq, tseq = _sequences(hi, np.asarray(hv)), _sequences(ti, np.asarray(tv))
        out = np.zeros(tuple(np.maximum(hs, ts)[:-1]), np.float32)
        for key in set(hseq) | set(tseq):
            h, t = hseq.get(key, []), tseq.get(key, [])
            d = float(_levenshtein(h, t))
            if normalize:
                d = d / len(t) if t else np.inf
            out[key] = d
        return (out,)
    return compute
