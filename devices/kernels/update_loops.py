"""The numba-compiled loop of the dense gradient-descent update on a CPU
(``ResourceApplyGradientDescent``, `devices.kernels.state`): ``w -= alpha * delta`` in one
pass over both arrays, with no temporary. Each element is computed as NumPy's two ufuncs
compute it (the product rounded to the variable's dtype, then the difference: no fused
multiply-add), so the values are the same bits.

Compiled for float32 and float64 when imported, with ``cache=True`` (numba caches under
``__pycache__``, keyed by this file); the kernel imports it on a background thread
(`devices.kernels.loop_loader`), as importing numba takes 0.3-3 s.
"""

from __future__ import annotations

from typing import Any

import numba


@numba.njit([numba.void(t[::1], numba.types.Array(t, 1, "C", readonly=True), t)
             for t in (numba.float32, numba.float64)], nogil=True, cache=True,
            error_model="numpy")
def subtract_scaled(w: Any, delta: Any, alpha: Any) -> None:  # pragma: no cover - compiled
    """``w[i] -= alpha * delta[i]`` for 1-D C-contiguous `w` and `delta` of one dtype and
    `alpha` a scalar of that dtype."""
    for i in range(w.shape[0]):
        w[i] -= alpha * delta[i]
