"""A numba-compiled call of OpenBLAS's ``cblas_sgemm``, the one NumPy's ``matmul`` makes for a
float32 matrix product, without NumPy's ufunc machinery around it (~0.5-2 us of a ~14 us
32x64x64 product: an RNN's three products an iteration, 300 a T=100 forward+gradient run).

`gemm(fptr, a, b, c, ta, tb, beta)` computes ``c = op(a) @ op(b) + beta * c`` (``op``
transposes when `ta`/`tb` is 1) for C-contiguous float32 matrices by calling the function at
address `fptr` (`sgemm_address`: NumPy's bundled OpenBLAS, its ILP64 CBLAS symbol). It
returns False, touching nothing, when the shapes do not chain, a dimension is 0 or 1 (NumPy
takes gemv/dot there, other bits), or the product is big enough for OpenBLAS to thread it
(over 2^18 multiply-adds; NumPy's call then does the same work anyway): the caller takes
NumPy's path. With ``beta = 1`` the product is added to `c` inside the kernel: for ``k <= 256``
(one block of OpenBLAS's K loop) that rounds as ``(a @ b) + c`` does, so `ACC_MAX_K` bounds it.

The address is an argument (an intrinsic casts it to the function type), so numba caches the
compiled function like `f32_loops` does; the module is imported off the step's thread through
`devices.kernels.loop_loader.LoopLoader` (importing numba costs ~0.3 s).
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

MAX_WORK = 1 << 18   # OpenBLAS threads a product over 65536 * 4 multiply-adds
ACC_MAX_K = 256      # beta = 1 rounds as product-then-add for one K block (see the doc)

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def sgemm_address() -> int | None:
    """The address of ``cblas_sgemm`` (64-bit integers) in the OpenBLAS NumPy was built with,
    or None when this NumPy carries none (another BLAS: the kernels keep NumPy's path)."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*"))):
        try:
            fn = ctypes.CDLL(path).scipy_cblas_sgemm64_
        except (OSError, AttributeError):
            continue
        return ctypes.cast(fn, ctypes.c_void_p).value
    return None


@intrinsic
def _sgemm(typingctx: Any, fptr: Any, ta: Any, tb: Any, m: Any, n: Any, k: Any, a: Any,
           lda: Any, b: Any, ldb: Any, beta: Any, c: Any, ldc: Any) -> Any:
    """cblas_sgemm(RowMajor, ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc) at `fptr`."""
    sig = numba.types.void(fptr, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> None:
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        vp = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, vp, i64,
                                               vp, i64, f32, vp, i64])
        (fp, ta_, tb_, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_) = args
        fn = builder.inttoptr(fp, fnty.as_pointer())
        builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), builder.trunc(ta_, i32),
                          builder.trunc(tb_, i32), m_, n_, k_, ir.Constant(f32, 1.0),
                          builder.inttoptr(a_, vp), lda_, builder.inttoptr(b_, vp), ldb_,
                          beta_, builder.inttoptr(c_, vp), ldc_])
    return sig, codegen


_IN = numba.types.Array(numba.float32, 2, "C", readonly=True)  # a writable array matches too
_OUT = numba.float32[:, ::1]


@numba.njit(numba.boolean(numba.int64, _IN, _IN, _OUT, numba.int64, numba.int64,
                          numba.float32), nogil=True, cache=True, error_model="numpy")
def gemm(fptr: Any, a: Any, b: Any, c: Any, ta: Any, tb: Any,
         beta: Any) -> bool:  # pragma: no cover - runs compiled
    m = a.shape[1] if ta else a.shape[0]
    k = a.shape[0] if ta else a.shape[1]
    kb = b.shape[1] if tb else b.shape[0]
    n = b.shape[0] if tb else b.shape[1]
    if (kb != k or c.shape[0] != m or c.shape[1] != n or m < 2 or n < 2 or k < 2
            or m * n * k > MAX_WORK or (beta != 0 and k > ACC_MAX_K)):
        return False
    _sgemm(fptr, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k,
           a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], beta, c.ctypes.data, n)
    return True
