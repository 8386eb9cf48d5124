"""The numba-compiled loop of the dense gradient-descent update on a CPU
(``ResourceApplyGradientDescent``, `devices.kernels.state`): ``w -= alpha * delta`` in one
pass over both arrays, with no temporary. Each element is computed as NumPy's two ufuncs
compute it (the product rounded to the variable's dtype, then the difference: no fused
multiply-add), so the values are the same bits.

Compiled lazily per dtype with ``cache=True`` (numba caches under ``__pycache__``, keyed by
this file); importing numba costs ~0.3 s, so the kernel imports this module on the first
large update only.
"""

from __future__ import annotations

from typing import Any

import numba


@numba.njit(nogil=True, cache=True, error_model="numpy")
def subtract_scaled(w: Any, delta: Any, alpha: Any) -> None:  # pragma: no cover - compiled
    """``w[i] -= alpha * delta[i]`` for 1-D C-contiguous `w` and `delta` of one dtype and
    `alpha` a scalar of that dtype."""
    for i in range(w.shape[0]):
        w[i] -= alpha * delta[i]
