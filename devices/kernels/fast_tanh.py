"""float32 ``tanh`` as one compiled, vectorised loop: a rational function derived here from
Lambert's continued fraction, compiled by numba (`devices.kernels.f32_loops`) into a loop that
releases the GIL.

Why: NumPy's float32 ``tanh`` on this project's x86 machines is a scalar libm call, 7-8 ns
an element, about 30 times a multiply; a rational approximation compiles to SIMD fused
multiply-adds (~1.2-1.4 ns an element on this project's Zen cores, a third of it the one
division), so a tanh-heavy chain (an RNN cell, the issue-11 tanh layers) stops
being bound by it. TensorFlow's CPU kernel does the same kind of thing (a rational
approximation, through Eigen); the one here is our own derivation, below.

The approximation (nothing copied; every constant is computed by `_coefficients` at import):
- Lambert's continued fraction ``tanh h = h / (1 + z/(3 + z/(5 + ... + z/13)))`` with
  ``z = h*h``, truncated at depth 6, is the rational function ``h * P(z) / Q(z)`` with integer
  coefficients (P and Q of degree 3), evaluated by Horner's rule;
- it is applied to ``h = x/2`` and doubled with ``tanh x = 2t / (1 + t*t)``, which keeps the
  truncation error below float32's rounding over the whole range; with ``t = h*P/Q`` the two
  steps are one fraction, ``x*P*Q / (Q*Q + (h*P)**2)``: one division per element (the loop
  evaluates it from ``x*x`` with coefficients scaled by powers of two, which gives the same
  bits in two multiplies fewer: `f32_loops.tanh_one`);
- the input is clamped to ``[-CLAMP, CLAMP]`` (10) and the result to [-1, 1] by min/max (no
  branch, so the loop is straight SIMD code): at ``|x| = 10`` the fraction rounds to exactly
  1, so every ``|x| >= 10`` and +-inf give +-1 (float32's tanh is 1 from about 9.01 on);
- for ``|x| < TINY = 2**-12`` P and Q round to 1 and the denominator to 1, so the result is
  x itself, the correctly rounded tanh there (denormals stay exact, +-0 keep their sign).
Accuracy: at most ~2.6e-7 relative to the float64 ``tanh`` over the whole float32 line (NumPy's
float32 ``tanh``: ~1.1e-7), checked by tests/test_fast_tanh.py. NaN gives NaN.

`tanh(x, out=None)` has the ufunc's call form (so `devices.intra_op.apply_split` and the fused
element-wise kernel call it as they call ``np.tanh``). Every float32 value, whatever its
array's size or layout (0-d, strided, a block of a fused chain), goes through the same
compiled operations, so fused, split and unfused runs agree bit for bit; other dtypes go to
``np.tanh``. On tiny arrays a call costs ~2 us (the checks here and the loop's direct
entry, which skips numba's dispatcher) against NumPy's ~1; from a few hundred elements on
it is cheaper than NumPy (2048 elements: ~5 us against ~17).
The loops are loaded on first use: importing numba and its cached loops costs ~0.5-1 s once per
process (the first process of a checkout compiles them, a few seconds more), so importing
this module costs nothing.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np


def _coefficients(depth: int = 6) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(P, Q), lowest power first, with ``tanh h ~= h * P(h*h) / Q(h*h)``: Lambert's continued
    fraction ``h / (1 + z/(3 + z/(5 + ... z/(2*depth+1))))`` folded from the bottom into one
    fraction of polynomials in ``z = h*h`` (exact integers), scaled so that ``Q(0) = 1``."""
    num: list[Fraction] = [Fraction(2 * depth + 1)]  # the tail's value, num / den
    den: list[Fraction] = [Fraction(1)]
    for k in range(depth - 1, -1, -1):
        # (2k+1) + z / (num/den) = ((2k+1) * num + z * den) / num
        folded = [Fraction(2 * k + 1) * c for c in num] + [Fraction(0)]
        for i, c in enumerate(den):
            folded[i + 1] += c
        num, den = folded, num
    while not den[-1]:  # the folding pads with zero leading coefficients
        den.pop()
    while not num[-1]:
        num.pop()
    # tanh h = h / (num/den) = h * den / num
    return tuple(float(c / num[0]) for c in den), tuple(float(c / num[0]) for c in num)


P, Q = _coefficients(6)
CLAMP = 10.0
TINY = 2.0 ** -12
LOOPS = "devices.kernels.f32_loops"  # the compiled module this one and its kin import on first use
_kernels: Any = None
_into: dict[int, Any] = {}     # rank -> the unchecked entry of f32_loops.tanh_into
_inplace: dict[int, Any] = {}  # rank -> the unchecked entry of f32_loops.tanh_inplace


def compiled() -> tuple[Any, Any, Any]:
    """The compiled float32 functions ``(x, out)``, ``(x)`` in place and of one value
    (`devices.kernels.f32_loops`), compiled or loaded from numba's cache on first call."""
    global _kernels
    if _kernels is None:
        from devices.kernels import f32_loops  # noqa: PLC0415 - numba's import costs ~0.3 s

        _into.update(f32_loops.entry_points(f32_loops.tanh_into))
        _inplace.update(f32_loops.entry_points(f32_loops.tanh_inplace))
        _kernels = (f32_loops.tanh_into, f32_loops.tanh_inplace, f32_loops.tanh_one)
    return _kernels


_F32 = np.dtype(np.float32)  # NumPy's dtype singleton: an identity test is the cheap check


def tanh(x: Any, out: np.ndarray | None = None) -> Any:
    """``np.tanh(x, out=out)``, with the compiled approximation when `x` is float32 (an array of
    any layout or a NumPy float32 scalar): every float32 value goes through the same compiled
    operations, whatever its array's size, layout or block, so a fused or split chain gives
    the same bits as the unfused kernels. Other dtypes are NumPy's.

    The common case first, with the fewest checks (a kernel's call on a small tensor is
    mostly this function's own cost): a C-contiguous float32 vector or matrix into a new
    array, into itself, or into a C-contiguous float32 `out` of its shape, through the loops'
    direct entries (`f32_loops.entry_points`), which check nothing themselves."""
    if type(x) is np.ndarray and x.dtype is _F32 and x.flags.c_contiguous:
        if _kernels is None:
            compiled()
        into = _into.get(x.ndim)
        if into is not None:
            if out is None:
                r = np.empty(x.shape, _F32)
                into(x, r)
                return r
            if out is x:
                if x.flags.writeable:
                    _inplace[x.ndim](x)
                    return out
            elif type(out) is np.ndarray and out.dtype is _F32 and out.shape == x.shape:
                flags = out.flags  # a new object per read: read once
                if flags.c_contiguous and flags.writeable:
                    into(x, out)
                    return out
    return _tanh_general(x, out)


def _tanh_general(x: Any, out: np.ndarray | None) -> Any:
    """`tanh` for every other case: scalars, 0-d, strided or high-rank arrays, other dtypes,
    broadcast or strided outputs (through the dispatcher, which checks its arguments)."""
    if type(x) is not np.ndarray:
        if type(x) is not np.float32:
            return np.tanh(x, out=out)
        r = np.float32((_kernels or compiled())[2](x))
        if out is None:
            return r
        out[...] = r
        return out
    if x.dtype is not _F32:
        return np.tanh(x, out=out)
    kernels = _kernels or compiled()
    if x.ndim != 1:
        if x.ndim == 0:
            r = np.float32(kernels[2](x[()]))
            if out is None:
                return np.asarray(r)
            out[...] = r
            return out
        # the loops take 1-d arrays: a flat view, of a contiguous copy if need be
        if out is x and x.flags.c_contiguous:
            kernels[1](x.reshape(-1))
            return out
        xf = np.ascontiguousarray(x).reshape(-1)
        if (out is not None and type(out) is np.ndarray and out.dtype is _F32
                and out.shape == x.shape and out.flags.c_contiguous):
            kernels[0](xf, out.reshape(-1))
            return out
        r = np.empty(x.shape, _F32)
        kernels[0](xf, r.reshape(-1))
        if out is None:
            return r
        np.copyto(out, r, casting="same_kind")
        return out
    if out is None:
        out = np.empty(x.shape, _F32)
        kernels[0](x if x.flags.c_contiguous else np.ascontiguousarray(x), out)
        return out
    if out is x:
        if x.flags.c_contiguous:
            kernels[1](x)
            return out
    elif (type(out) is np.ndarray and out.dtype is _F32 and out.shape == x.shape
          and out.ndim == 1 and out.flags.c_contiguous):
        kernels[0](x if x.flags.c_contiguous else np.ascontiguousarray(x), out)
        return out
    r = np.empty(x.shape, _F32)
    kernels[0](np.ascontiguousarray(x), r)
    np.copyto(out, r, casting="same_kind")  # a broadcast or strided `out`, as the ufunc would
    return out
