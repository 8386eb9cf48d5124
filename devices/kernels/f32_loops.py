"""The numba-compiled float32 loops of the CPU kernels, in one module so numba caches them
(module-level functions with module-level constants; ``cache=True`` writes them under
``__pycache__``, so only the first process of a checkout compiles). Imported on first use by
`devices.kernels.fast_tanh` and `devices.kernels.compiled_chain`, which document what they
compute; importing numba costs ~0.3 s, so nothing imports this module eagerly.

Every loop is built with ``error_model="numpy"`` (no zero-division check, so LLVM vectorises
the loop) and ``fastmath={"contract"}`` (fused multiply-adds inside one function), and
releases the GIL (``nogil``) so the intra-op pool's threads run them at once.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

# numba's cache is keyed by THIS file: after changing fast_tanh's constants, touch this file
from devices.kernels.fast_tanh import CLAMP, TINY, P, Q

_F = np.float32
_P0, _P1, _P2 = (_F(v) for v in P)
_Q0, _Q1, _Q2, _Q3 = (_F(v) for v in Q)
_CLAMP, _TINY, _ONE, _HALF = _F(CLAMP), _F(TINY), _F(1.0), _F(0.5)
BLOCK = 512  # elements of the chain's buffer: 2 KB, in L1 across the whole chain

_VEC = numba.float32[::1]
_READONLY = numba.types.Array(numba.float32, 1, "C", readonly=True)
_CODES = numba.types.Array(numba.int32, 1, "C", readonly=True)
# inputs are typed read-only: a writable array matches that signature too, so one compiled
# version per loop serves both
_OPTIONS: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy",
                            "fastmath": {"contract"}}


@numba.njit(numba.float32(numba.float32), inline="always", **_OPTIONS)
def tanh_one(v: Any) -> Any:  # pragma: no cover - runs compiled
    """The float32 tanh of one value (see fast_tanh: Lambert's fraction at v/2, doubled)."""
    c = v if v < _CLAMP else _CLAMP
    c = c if c > -_CLAMP else -_CLAMP
    h = c * _HALF
    z = h * h
    p = z * _P2 + _P1
    p = z * p + _P0
    q = z * _Q3 + _Q2
    q = z * q + _Q1
    q = z * q + _Q0
    t = h * p / q
    r = (t + t) / (t * t + _ONE)
    r = r if c < _CLAMP else _ONE
    r = r if c > -_CLAMP else -_ONE
    # NaN fails the compares and gives itself (the clamp above made r 1); tiny |x|: x
    return r if abs(v) >= _TINY else v


@numba.njit([numba.void(_READONLY, _VEC)], **_OPTIONS)
def tanh_into(x: Any, out: Any) -> None:  # pragma: no cover - runs compiled
    for i in range(x.shape[0]):
        out[i] = tanh_one(x[i])


# in place, one array: LLVM vectorises it (two arrays that alias take its scalar loop)
@numba.njit([numba.void(_VEC)], **_OPTIONS)
def tanh_inplace(x: Any) -> None:  # pragma: no cover - runs compiled
    for i in range(x.shape[0]):
        x[i] = tanh_one(x[i])


@numba.njit([numba.void(_READONLY, _VEC, _CODES, _READONLY)], **_OPTIONS)
def chain(x: Any, out: Any, ops: Any, cs: Any) -> None:  # pragma: no cover - runs compiled
    """`compiled_chain`'s loop: steps `ops` (its opcodes) with scalar operands `cs` applied to
    `x` block by block into `out`."""
    n = x.shape[0]
    buf = np.empty(BLOCK, np.float32)
    for lo in range(0, n, BLOCK):
        m = min(BLOCK, n - lo)
        for i in range(m):
            buf[i] = x[lo + i]
        for s in range(ops.shape[0]):
            op = ops[s]
            c = cs[s]
            if op == 0:
                for i in range(m):
                    buf[i] = buf[i] + c
            elif op == 1:
                for i in range(m):
                    buf[i] = buf[i] - c
            elif op == 2:
                for i in range(m):
                    buf[i] = buf[i] * c
            elif op == 3:
                for i in range(m):
                    buf[i] = buf[i] / c
            elif op == 4:
                for i in range(m):
                    buf[i] = c - buf[i]
            elif op == 5:
                for i in range(m):
                    buf[i] = c / buf[i]
            elif op == 6:
                for i in range(m):
                    buf[i] = -buf[i]
            elif op == 7:
                for i in range(m):
                    buf[i] = buf[i] * buf[i]
            else:
                for i in range(m):
                    buf[i] = tanh_one(buf[i])
        for i in range(m):
            out[lo + i] = buf[i]


# TanhGrad, ``dy * (1 - y * y)`` in one pass: no contraction, so the same bits as NumPy's three
# passes (each step one IEEE float32 operation)
@numba.njit([numba.void(_READONLY, _READONLY, _VEC)], nogil=True, cache=True,
            error_model="numpy")
def tanh_grad(y: Any, dy: Any, out: Any) -> None:  # pragma: no cover - runs compiled
    one = np.float32(1.0)
    for i in range(y.shape[0]):
        out[i] = (one - y[i] * y[i]) * dy[i]
