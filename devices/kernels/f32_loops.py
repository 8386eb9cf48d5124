"""The numba-compiled float32 loops of the CPU kernels, in one module so numba caches them
(module-level functions with module-level constants; ``cache=True`` writes them under
``__pycache__``, so only the first process of a checkout compiles). Imported on first use by
`devices.kernels.fast_tanh`, `devices.kernels.compiled_chain`, the TanhGrad kernel
(`devices.kernels.math`) and the fused ``tanh(a + b)`` kernel (`devices.kernels.fused`), which
document what they compute; importing numba costs ~0.3 s, so nothing imports this module
eagerly.

Every loop is built with ``error_model="numpy"`` (no zero-division check, so LLVM vectorises
the loop) and releases the GIL (``nogil``) so the intra-op pool's threads run them at once.
`tanh_one` alone is built with ``fastmath={"contract"}`` (fused multiply-adds inside the
approximation) and is an ordinary call that LLVM inlines: its instructions keep its own flags
wherever it is inlined, so every caller computes the same bits, and the callers' own
arithmetic (the chain's ``* a + b``) is never contracted into it (each step rounds as NumPy's
ufunc does).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

# numba's cache is keyed by THIS file: after changing fast_tanh's constants, touch this file
from devices.kernels.fast_tanh import CLAMP, P, Q

_F = np.float32
# P and Q in z = h*h, h = c/2, rewritten in c*c (= 4z): P's k-th coefficient over 4**k, and
# 2 Q's over 4**k / 2; scaling by powers of two is exact, so each Horner step gives the bits of
# the step in h scaled by that power (tanh_one)
_S0, _S1, _S2, _S3 = (_F(v) / _F(4 ** k) for k, v in enumerate(P))
_T0, _T1, _T2, _T3 = (_F(v) * _F(2) / _F(4 ** k) for k, v in enumerate(Q))
_CLAMP, _ONE = _F(CLAMP), _F(1.0)
BLOCK = 512  # elements of the chain's buffer: 2 KB, in L1 across the whole chain

_VEC = numba.float32[::1]
_READONLY = numba.types.Array(numba.float32, 1, "C", readonly=True)
_MAT = numba.float32[:, ::1]
_READONLY_MAT = numba.types.Array(numba.float32, 2, "C", readonly=True)
_TABLE = _READONLY_MAT
_CODES = numba.types.Array(numba.int32, 1, "C", readonly=True)
# inputs are typed read-only: a writable array matches that signature too, so one compiled
# version per loop serves both
_OPTIONS: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy"}


@numba.njit(numba.float32(numba.float32), fastmath={"contract"}, **_OPTIONS)
def tanh_one(v: Any) -> Any:  # pragma: no cover - runs compiled
    """The float32 tanh of one value (see fast_tanh: Lambert's fraction at v/2, doubled, as
    one fraction). No branch: min/max clamp (NaN passes through them) and bound it.

    The fraction is ``c*p*q / (q*q + (h*p)**2)`` with ``h = c/2``, ``p = P(h*h)``, ``q =
    Q(h*h)``; it is computed with numerator and denominator both times 4, from ``z = c*c``,
    ``q2 = 2q`` and ``cp = c*p``: ``cp * 4q / (q2*q2 + cp*cp)``. Every step is the unscaled
    one times a power of two (exact: float32's rounding commutes with it), so the quotient has
    the same bits as the plain evaluation (checked over all 2**32 inputs, RESULTS.md "Session 9:
    chain"), in 11 multiplies and fused multiply-adds instead of 13."""
    c = min(max(v, -_CLAMP), _CLAMP)
    z = c * c
    p = ((z * _S3 + _S2) * z + _S1) * z + _S0
    q2 = ((z * _T3 + _T2) * z + _T1) * z + _T0
    cp = c * p
    # tanh c = 2t / (1 + t*t) with t = h*p/q; for tiny |c| p = 1 and q2 = 2 exactly, so the
    # result is 4c / 4, c itself (denormals and signed zeros included)
    r = (cp * (q2 + q2)) / (q2 * q2 + cp * cp)
    return min(max(r, -_ONE), _ONE)


# The element-wise loops take C-contiguous vectors or matrices (an RNN's batch of states),
# flattened inside: no reshape call from Python. `entry_points` gives their direct entries.
@numba.njit([numba.void(_READONLY, _VEC), numba.void(_READONLY_MAT, _MAT)], **_OPTIONS)
def tanh_into(x: Any, out: Any) -> None:  # pragma: no cover - runs compiled
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.shape[0]):
        of[i] = tanh_one(xf[i])


# in place, one array: LLVM vectorises it (two arrays that alias take its scalar loop)
@numba.njit([numba.void(_VEC), numba.void(_MAT)], **_OPTIONS)
def tanh_inplace(x: Any) -> None:  # pragma: no cover - runs compiled
    xf = x.reshape(-1)
    for i in range(xf.shape[0]):
        xf[i] = tanh_one(xf[i])


@numba.njit([numba.void(_READONLY, _VEC, _CODES, _TABLE)], **_OPTIONS)
def chain(x: Any, out: Any, heads: Any, dab: Any) -> None:  # pragma: no cover - runs compiled
    """`compiled_chain`'s loop: pass s computes ``head(h, d) * a + b`` with its head opcode
    ``heads[s]`` and ``(d, a, b) = dab[s]``, over `x` block by block into `out`; the multiply
    and the add round separately (no contraction: this function has no fastmath)."""
    n = x.shape[0]
    buf = np.empty(BLOCK, np.float32)
    for lo in range(0, n, BLOCK):
        m = min(BLOCK, n - lo)
        for i in range(m):
            buf[i] = x[lo + i]
        for s in range(heads.shape[0]):
            op = heads[s]
            d = dab[s, 0]
            a = dab[s, 1]
            b = dab[s, 2]
            if op == 0:
                for i in range(m):
                    buf[i] = buf[i] * a + b
            elif op == 1:  # four independent streams: the tanh's long chain of dependent
                q = m >> 2     # vector operations overlaps four ways; the tail in its own
                for i in range(q):  # loop (together: 1.6 -> 1.3 ns an element on Zen)
                    buf[i] = tanh_one(buf[i])
                    buf[i + q] = tanh_one(buf[i + q])
                    buf[i + 2 * q] = tanh_one(buf[i + 2 * q])
                    buf[i + 3 * q] = tanh_one(buf[i + 3 * q])
                for i in range(4 * q, m):
                    buf[i] = tanh_one(buf[i])
                for i in range(m):
                    buf[i] = buf[i] * a + b
            elif op == 2:
                for i in range(m):
                    buf[i] = (buf[i] * buf[i]) * a + b
            elif op == 3:
                for i in range(m):
                    buf[i] = (buf[i] / d) * a + b
            else:
                for i in range(m):
                    buf[i] = (d / buf[i]) * a + b
        for i in range(m):
            out[lo + i] = buf[i]


# ``tanh(a + b)`` in one pass (a fused Add -> Tanh: an RNN cell's ``tanh(h @ W + x)``): the
# sum rounds to float32 first, as NumPy's add does, then the same tanh_one, so the same bits
# as the two kernels
@numba.njit([numba.void(_READONLY, _READONLY, _VEC),
             numba.void(_READONLY_MAT, _READONLY_MAT, _MAT)], **_OPTIONS)
def add_tanh(a: Any, b: Any, out: Any) -> None:  # pragma: no cover - runs compiled
    af = a.reshape(-1)
    bf = b.reshape(-1)
    of = out.reshape(-1)
    for i in range(af.shape[0]):
        of[i] = tanh_one(af[i] + bf[i])


# TanhGrad, ``dy * (1 - y * y)`` in one pass: no contraction, so the same bits as NumPy's three
# passes (each step one IEEE float32 operation)
@numba.njit([numba.void(_READONLY, _READONLY, _VEC),
             numba.void(_READONLY_MAT, _READONLY_MAT, _MAT)], **_OPTIONS)
def tanh_grad(y: Any, dy: Any, out: Any) -> None:  # pragma: no cover - runs compiled
    one = np.float32(1.0)
    yf = y.reshape(-1)
    df = dy.reshape(-1)
    of = out.reshape(-1)
    for i in range(yf.shape[0]):
        of[i] = (one - yf[i] * yf[i]) * df[i]


def entry_points(loop: Any) -> dict[int, Any]:
    """The compiled entries of `loop` by the rank of its first argument: each takes the
    arguments of its signature *unchecked* (~0.4 us less than the dispatcher's call, which
    checks types), so callers pass only float32 C-contiguous arrays of that rank."""
    return {sig[0].ndim: cres.entry_point for sig, cres in loop.overloads.items()}
