"""The numba-compiled loops of the in-memory shuffle (`devices.dataset_index`): the window's
pass over a block of inputs and the drain at the end of the input, each one sequential pass
over int64 row indices, computing what the element path computes (``int(u * n)`` of the
same float64 draws), so the sequence is the same.

Compiled when imported, with ``cache=True`` (numba caches under ``__pycache__``, keyed by
this file); `devices.dataset_index` imports it on a background thread
(`devices.kernels.loop_loader`) and uses its NumPy form until it is there.
"""

from __future__ import annotations

from typing import Any

import numba

_I64 = numba.types.Array(numba.int64, 1, "C")
_I64_RO = numba.types.Array(numba.int64, 1, "A", readonly=True)
_F64 = numba.types.Array(numba.float64, 1, "A", readonly=True)


@numba.njit(numba.void(_I64, _I64_RO, _F64, numba.int64, _I64), nogil=True, cache=True)
def window_pass(window: Any, inputs: Any, draws: Any, size: Any,
                out: Any) -> None:  # pragma: no cover - compiled
    """The full window of `size` places (`window`: its first size - 1) for `inputs`, one draw
    each: output t is the input itself when the place drawn is the last, else the member
    drawn, whose place the input takes."""
    last = size - 1
    for t in range(inputs.shape[0]):
        j = int(draws[t] * size)
        if j == last:
            out[t] = inputs[t]
        else:
            out[t] = window[j]
            window[j] = inputs[t]


@numba.njit(numba.void(_I64, _F64, _I64), nogil=True, cache=True)
def drain(left: Any, draws: Any, out: Any) -> None:  # pragma: no cover - compiled
    """The window's members drawn out one by one: from n left, place ``int(u * n)``, whose
    place the last member takes."""
    n = left.shape[0]
    for t in range(n):
        m = n - t
        i = int(draws[t] * m)
        out[t] = left[i]
        left[i] = left[m - 1]
