"""The numba-compiled loop of a synchronous step leader's update on a CPU (`SyncReplicaStepGD`,
`devices.kernels.accumulator`): ``w - alpha * (total / count)`` in one pass, where `total`
is an accumulator's sum of `count` gradients, written over `w` or (when the step's reads
still hold `w`) straight into the variable's other buffer (`ResourceVariable.update`).

Each element is computed as the unfused ops compute it (the accumulator's mean
``total / count`` rounded to the dtype, then ResourceApplyGradientDescent's product rounded,
then the difference: no fused multiply-add), so the values are the same bits, in one call
instead of a copy, three NumPy calls and a temporary.

Compiled for float32 and float64 when imported, with ``cache=True`` (numba caches under
``__pycache__``, keyed by this file); the kernel imports it on a background thread
(`devices.kernels.loop_loader`), as importing numba takes 0.3-3 s.
"""

from __future__ import annotations

from typing import Any

import numba


@numba.njit([numba.void(numba.types.Array(t, 1, "C", readonly=True),
                         numba.types.Array(t, 1, "C", readonly=True), t, t, t[::1])
             for t in (numba.float32, numba.float64)], nogil=True, cache=True,
            error_model="numpy")
def scaled_mean_difference(w: Any, total: Any, count: Any, alpha: Any,
                           out: Any) -> None:  # pragma: no cover - compiled
    """``out[i] = w[i] - alpha * (total[i] / count)`` for 1-D C-contiguous arrays of one
    dtype and scalars `count` and `alpha` of that dtype (`out` may be `w`: in place)."""
    for i in range(w.shape[0]):
        out[i] = w[i] - alpha * (total[i] / count)
