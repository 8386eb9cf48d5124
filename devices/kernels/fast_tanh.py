"""float32 ``tanh`` as TensorFlow's CPU kernel computes it: Eigen's rational approximation
(an odd polynomial of degree 13 over an even one of degree 6 on the input clamped to
[-7.9053, 7.9053]), compiled by numba (`devices.kernels.f32_loops`) into one vectorised loop
that releases the GIL.

Why: NumPy's float32 ``tanh`` on this project's x86 machines is a scalar libm call, 7-8 ns
an element, about 30 times a multiply; the compiled approximation is ~1.3 ns (SIMD, fused
multiply-adds), so a tanh-heavy chain (an RNN cell, the issue-11 tanh layers) stops being
bound by it. See benchmarks/RESULTS.md, "Issue 11 (session 6): kernels".

Accuracy: at most ~3e-7 relative to the float64 ``tanh`` over the whole float32 line (NumPy's
float32 ``tanh``: ~1e-7; Eigen's: the same polynomial). Edge values: +-0 keep their sign,
|x| < 4e-4 (denormals included) returns x itself (exact to float32 there), |x| >= 7.9053 and
+-inf give exactly +-1, NaN gives NaN.

`tanh(x, out=None)` has the ufunc's call form (so `devices.intra_op.apply_split` and the fused
element-wise kernel call it as they call ``np.tanh``). Every float32 value, whatever its
array's size or layout (0-d, strided, a block of a fused chain), goes through the same
compiled operations, so fused, split and unfused runs agree bit for bit; other dtypes go to
``np.tanh``. The price on tiny arrays is numba's dispatch, ~3 us a call against NumPy's ~1.
The loops are loaded on first use: importing numba and its cached loops costs ~0.5-1 s once per
process (the first process of a checkout compiles them, a few seconds more), so importing
this module costs nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Eigen's generic_fast_tanh_float: numerator (odd, alpha_1..alpha_13), denominator (even,
# beta_0..beta_6), the clamp beyond which the approximation is 1, and the small-|x| cutoff
ALPHA = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
          5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
          -2.76076847742355e-16)
BETA = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
         1.19825839466702e-06)
CLAMP = 7.90531110763549805
TINY = 0.0004
_kernels: Any = None


def compiled() -> tuple[Any, Any, Any]:
    """The compiled float32 functions ``(x, out)``, ``(x)`` in place and of one value
    (`devices.kernels.f32_loops`), compiled or loaded from numba's cache on first call."""
    global _kernels
    if _kernels is None:
        from devices.kernels import f32_loops  # noqa: PLC0415 - numba's import costs ~0.3 s

        _kernels = (f32_loops.tanh_into, f32_loops.tanh_inplace, f32_loops.tanh_one)
    return _kernels


_F32 = np.dtype(np.float32)  # NumPy's dtype singleton: an identity test is the cheap check


def tanh(x: Any, out: np.ndarray | None = None) -> Any:
    """``np.tanh(x, out=out)``, with Eigen's approximation when `x` is float32 (an array of
    any layout or a NumPy float32 scalar): every float32 value goes through the same compiled
    operations, whatever its array's size, layout or block, so a fused or split chain gives
    the same bits as the unfused kernels. Other dtypes are NumPy's."""
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
