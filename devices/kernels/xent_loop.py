"""The numba-compiled loops of SparseSoftmaxCrossEntropyWithLogits on a CPU (`devices.kernels.nn`
documents the op) for 2-D logits of 8 to 128 classes: the label check, the row maxima, the
shift, the row sums, the division and the label's entries in two compiled passes around
NumPy's own ``exp`` and ``log`` (whose SIMD results LLVM's would not match bit for bit), so
five calls instead of ~12 NumPy calls (each ~1-3 us on a 32x10 batch).

The values are the NumPy path's, bit for bit: per row ``m = max(x)``, ``sh = x - m``,
``e = exp(sh)`` (NumPy), ``s`` = NumPy's pairwise sum of ``e`` (its 8-lane unrolled block for
8 to 128 elements, started from 0: the order `_row_sum` reproduces; checked against
``np.add.reduce``), ``backprop = e / s`` with 1 subtracted at the label, and ``loss =
log(s) - sh[label]`` (NumPy's log). A run replayed in another process, where the loop loaded
at another step, ends at the same bits.

Compiled for float32/float64 logits with int32/int64 labels when imported, with
``cache=True`` (numba caches under ``__pycache__``, keyed by this file); the kernel imports it
on a background thread (`devices.kernels.loop_loader`), as importing numba takes 0.3-3 s.
"""

from __future__ import annotations

from typing import Any

import numba

MIN_CLASSES, MAX_CLASSES = 8, 128  # NumPy's unrolled pairwise block (one per row)


def _shift_signatures() -> list[Any]:
    return [numba.int64(numba.types.Array(t, 2, "C", readonly=True),
                        numba.types.Array(lt, 1, "C", readonly=True), t[:, ::1], t[::1])
            for t in (numba.float32, numba.float64) for lt in (numba.int32, numba.int64)]


def _finish_signatures() -> list[Any]:
    return [numba.void(numba.types.Array(lt, 1, "C", readonly=True), t[:, ::1], t[::1])
            for t in (numba.float32, numba.float64) for lt in (numba.int32, numba.int64)]


_OPTIONS: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy"}


@numba.njit(_shift_signatures(), **_OPTIONS)
def shift(logits: Any, labels: Any, sh: Any, shifted_label: Any) -> int:  # pragma: no cover
    """``sh = logits - rowmax`` and ``shifted_label[i] = sh[i, labels[i]]``, for C-contiguous
    `logits` [n, c] and `labels` [n]. Returns -1, or (writing nothing) the flat index of the
    first label outside [0, c)."""
    n, c = logits.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return i
    for i in range(n):
        row = logits[i]
        m = row[0]
        for j in range(1, c):
            v = row[j]
            if v > m or v != v:  # NaN wins, as NumPy's maximum propagates it
                m = v
        out = sh[i]
        for j in range(c):
            out[j] = row[j] - m
        shifted_label[i] = out[labels[i]]
    return -1


@numba.njit(**_OPTIONS)
def _row_sum(a: Any) -> Any:  # pragma: no cover - compiled
    """NumPy's pairwise sum of a row of 8 to 128 elements, from 0, in its order."""
    n = a.shape[0]
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    top = n - n % 8
    while i < top:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return a[0] * 0 + res  # 0 + the sum, as NumPy's reduction starts from its identity


@numba.njit(_finish_signatures(), **_OPTIONS)
def finish(labels: Any, e: Any, sums: Any) -> None:  # pragma: no cover - compiled
    """Given ``e = exp(sh)``: ``sums[i]`` = the row's sum, ``e /= sums`` per row, and 1
    subtracted at each row's label."""
    n = e.shape[0]
    for i in range(n):
        row = e[i]
        s = _row_sum(row)
        sums[i] = s
        for j in range(row.shape[0]):
            row[j] = row[j] / s
        row[labels[i]] -= 1


LOOPS = (shift, finish)  # what the kernel loads (`devices.kernels.nn`)
