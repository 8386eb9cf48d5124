"""The numba-compiled loop of a synchronous step leader's update on a CPU (`SyncReplicaStepGD`,
`devices.kernels.accumulator`): ``w -= alpha * (total / count)`` in one pass, where `total`
is an accumulator's sum of `count` gradients. Each element is computed as the unfused ops
compute it (the accumulator's mean ``total / count`` rounded to the dtype, then
ResourceApplyGradientDescent's product rounded, then the difference: no fused multiply-add),
so the values are the same bits, in one call instead of three NumPy calls and a temporary.

Compiled for float32 and float64 when imported, with ``cache=True`` (numba caches under
``__pycache__``, keyed by this file); the kernel imports it on a background thread
(`devices.kernels.loop_loader`), as importing numba takes 0.3-3 s.
"""

from __future__ import annotations

from typing import Any

import numba


@numba.njit([numba.void(t[::1], numba.types.Array(t, 1, "C", readonly=True), t, t)
             for t in (numba.float32, numba.float64)], nogil=True, cache=True,
            error_model="numpy")
def subtract_scaled_mean(w: Any, total: Any, count: Any,
                         alpha: Any) -> None:  # pragma: no cover - compiled
    """``w[i] -= alpha * (total[i] / count)`` for 1-D C-contiguous `w` and `total` of one
    dtype and scalars `count` and `alpha` of that dtype."""
    for i in range(w.shape[0]):
        w[i] -= alpha * (total[i] / count)
