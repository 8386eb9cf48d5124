"""The numba-compiled row loop of the sparse softmax cross-entropy kernel
(`devices.kernels.nn`, ``SparseSoftmaxCrossEntropyWithLogits``) on a CPU.

One pass per row of the ``[batch, classes]`` logits computes what NumPy needs eight calls and
two fancy-indexing temporaries for (~10 us of Python wrappers on a batch of 32): the row's
maximum, ``e = exp(x - max)`` and its sum, ``backprop = e / sum`` with 1 subtracted at the
label, and ``loss = log(sum) - (x[label] - max)``. The label check is in the same pass: the
loop stops at the first label outside ``[0, classes)`` and returns its row, which the kernel
turns into TF's error; otherwise it returns -1.

The sum is accumulated in float64 for both float32 and float64 logits (as exact as NumPy's
pairwise float32 sum or better; the results are rounded to the logits' dtype once).
Compiled for its four signatures when imported, with ``cache=True`` (numba caches under
``__pycache__``, keyed by this file); the kernel imports it on a background thread
(`devices.kernels.loop_loader`), as importing numba takes 0.3-3 s.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


def _signatures() -> list[Any]:
    """float32/float64 logits x int32/int64 labels; inputs typed read-only (a writable array
    matches too), all C-contiguous."""
    sigs = []
    for ft in (numba.float32, numba.float64):
        for it in (numba.int32, numba.int64):
            sigs.append(numba.int64(numba.types.Array(ft, 2, "C", readonly=True),
                                    numba.types.Array(it, 1, "C", readonly=True),
                                    ft[::1], ft[:, ::1]))
    return sigs


@numba.njit(_signatures(), nogil=True, cache=True, error_model="numpy")
def sparse_xent_rows(logits: Any, labels: Any, loss: Any,
                     backprop: Any) -> int:  # pragma: no cover - runs compiled
    """Fill `loss` [n] and `backprop` [n, c] from `logits` [n, c] and `labels` [n]; the
    first row whose label is out of range, or -1."""
    n, c = logits.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return i
        m = logits[i, 0]
        for j in range(1, c):
            v = logits[i, j]
            if v > m or v != v:  # NaN wins, as NumPy's maximum propagates it
                m = v
        s = 0.0
        for j in range(c):
            e = np.exp(logits[i, j] - m)
            backprop[i, j] = e
            s += e
        for j in range(c):
            backprop[i, j] = backprop[i, j] / s
        backprop[i, lab] -= 1.0
        loss[i] = np.log(s) - (logits[i, lab] - m)
    return -1
