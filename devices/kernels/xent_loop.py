"""The numba-compiled loop of SparseSoftmaxCrossEntropyWithLogits on a CPU (`devices.kernels.nn`
documents the op): the label check, the loss and the backprop of 2-D logits in one pass per
row, instead of ~12 NumPy calls (each ~1-3 us on a 32x10 batch, most of the kernel's time).

Per row, as the NumPy path computes it: ``m = max(x)``, ``e = exp(x - m)``, ``s = sum(e)``,
``backprop = e / s`` with 1 subtracted at the label, ``loss = log(s) - (x[label] - m)``, each
in the logits' dtype. The values agree with the NumPy path to float rounding: NumPy sums a
row pairwise in 8 lanes and its SIMD ``exp`` may differ from LLVM's in the last bit. NaN,
-inf and +inf logits propagate as in NumPy (``-inf - -inf`` is NaN).

Compiled for float32/float64 logits with int32/int64 labels when imported, with
``cache=True`` (numba caches under ``__pycache__``, keyed by this file); the kernel imports it
on a background thread (`devices.kernels.loop_loader`), as importing numba takes 0.3-3 s.
"""

from __future__ import annotations

import math
from typing import Any

import numba


def _signatures() -> list[Any]:
    sigs = []
    for t in (numba.float32, numba.float64):
        for lt in (numba.int32, numba.int64):
            sigs.append(numba.int64(numba.types.Array(t, 2, "C", readonly=True),
                                    numba.types.Array(lt, 1, "C", readonly=True),
                                    t[::1], t[:, ::1]))
    return sigs


@numba.njit(_signatures(), nogil=True, cache=True, error_model="numpy")
def sparse_xent(logits: Any, labels: Any, loss: Any, backprop: Any) -> int:  # pragma: no cover
    """Fill `loss` [n] and `backprop` [n, c] from C-contiguous `logits` [n, c] and `labels`
    [n]. Returns -1, or (writing nothing) the flat index of the first label outside [0, c)."""
    n, c = logits.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return i
    for i in range(n):
        row = logits[i]
        out = backprop[i]
        m = row[0]
        for j in range(1, c):
            v = row[j]
            if v > m or v != v:  # NaN wins, as NumPy's maximum propagates it
                m = v
        s = math.exp(row[0] - m)  # (the sum starts from the first term: the logits' dtype)
        out[0] = s
        for j in range(1, c):
            e = math.exp(row[j] - m)
            out[j] = e
            s += e
        for j in range(c):
            out[j] = out[j] / s
        lab = labels[i]
        loss[i] = math.log(s) - (row[lab] - m)
        out[lab] -= 1
    return -1
