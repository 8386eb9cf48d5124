"""Kernels of the element-wise math ops, casts, selection, clipping and matmul, written once
against the device's array module (NumPy on a CPU, CuPy on a GPU).

Large outputs with a static shape go into pooled buffers (`out_allocator`); each
registration carries a `cost` estimate so the executor moves big kernels (over ~2 ms) to a
worker thread, where NumPy releases the GIL and independent branches overlap. Small float32
products of a static shape (an RNN's, a loop's) call OpenBLAS's sgemm directly once its
compiled call is loaded (`_small_sgemm`, `devices.kernels.sgemm_loop`): NumPy's bits without
NumPy's per-call machinery.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devices.device import elementwise_cost_us, matmul_cost_us, shape_bytes
from devices.errors import InvalidArgumentError
from devices.kernels import fast_tanh
from devices.kernels.loop_loader import LoopLoader, imports_on_first_call
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext, register_kernel
from devices.kernels.ufunc import ufunc_kernel


def _elementwise_cost(passes: float = 1.0) -> Any:
    """A `cost` function for a kernel making `passes` memory passes over its output."""
    def cost(k: KernelContext) -> float:
        shape = k.out_shapes[0] if k.out_shapes else None
        return elementwise_cost_us(shape_bytes(shape, k.out_dtypes[0].size), passes)
    return cost


_COST1, _COST2, _COST3 = _elementwise_cost(1.0), _elementwise_cost(2.0), _elementwise_cost(3.0)

# ---- plain ufuncs -----------------------------------------------------------------------
_UFUNCS = {
    "Add": "add", "Sub": "subtract", "Mul": "multiply", "RealDiv": "true_divide",
    "Pow": "power", "Maximum": "maximum", "Minimum": "minimum",
    "Less": "less", "LessEqual": "less_equal", "Greater": "greater",
    "GreaterEqual": "greater_equal", "Equal": "equal", "NotEqual": "not_equal",
    "LogicalAnd": "logical_and", "LogicalOr": "logical_or", "LogicalNot": "logical_not",
    "Neg": "negative", "Abs": "absolute", "Sign": "sign", "Square": "square",
    "Reciprocal": "reciprocal", "Sqrt": "sqrt", "Exp": "exp", "Expm1": "expm1", "Log": "log",
    "Log1p": "log1p", "Tanh": "tanh", "Sin": "sin", "Cos": "cos", "Floor": "floor",
    "Ceil": "ceil", "Round": "rint", "IsFinite": "isfinite", "IsNan": "isnan",
    "IsInf": "isinf",
}
for _op, _ufunc in _UFUNCS.items():
    register_kernel(_op, cost=_COST1)(ufunc_kernel(_ufunc))


def _integer_division(name: str) -> Any:
    """floor_divide / remainder, raising on an integer division by zero (as TF does) instead
    of NumPy's silent 0 and warning."""
    plain = ufunc_kernel(name)

    def factory(k: KernelContext) -> Any:
        if not k.out_dtypes[0].is_integer:
            return plain(k)
        f = getattr(k.xp, name)
        count_nonzero = k.xp.count_nonzero
        alloc = out_allocator(k)

        def compute(x: Any, y: Any) -> tuple[Any]:
            if count_nonzero(y) != y.size:  # y.all() costs ~1 us more on a small y
                raise InvalidArgumentError(
                    f"integer division by zero in '{k.name}' ({k.op}): the divisor has a zero")
            return (f(x, y) if alloc is None else f(x, y, out=alloc()),)
        return compute
    return factory


register_kernel("FloorDiv", cost=_COST1)(_integer_division("floor_divide"))
register_kernel("FloorMod", cost=_COST1)(_integer_division("remainder"))


@register_kernel("Rsqrt", cost=_COST2)
def _rsqrt(k: KernelContext) -> Any:
    xp = k.xp
    alloc = out_allocator(k)

    def compute(x: Any) -> tuple[Any]:
        # an explicit buffer: a 0-d input would give a NumPy scalar, which takes no out=
        out = xp.sqrt(x, out=xp.empty_like(x) if alloc is None else alloc())
        return (xp.reciprocal(out, out=out),)
    return compute


@register_kernel("Sigmoid", cost=_elementwise_cost(4.0))
def _sigmoid(k: KernelContext) -> Any:
    # 1 / (1 + exp(-x)) in one buffer; exp overflows to inf for very negative x, which gives
    # exactly 0 (the overflow warning is silenced). Three to four times faster than
    # scipy.special.expit, which does not vectorise.
    xp = k.xp
    alloc = out_allocator(k)
    on_cpu = xp is np

    def compute(x: Any) -> tuple[Any]:
        out = xp.negative(x, out=xp.empty_like(x) if alloc is None else alloc())
        if on_cpu:
            with np.errstate(over="ignore"):
                xp.exp(out, out=out)
        else:
            xp.exp(out, out=out)
        xp.add(out, 1, out=out)
        return (xp.reciprocal(out, out=out),)
    return compute


# ---- fused gradient kernels: (y, dy) -> one output buffer -------------------------------
def _fused(body: Any) -> Any:
    def factory(k: KernelContext) -> Any:
        xp = k.xp
        alloc = out_allocator(k)
        dt = k.out_dtypes[0].np

        def compute(y: Any, dy: Any) -> tuple[Any]:
            if alloc is not None:
                o = alloc()
            else:
                shape = y.shape if y.shape == dy.shape else np.broadcast_shapes(y.shape,
                                                                                dy.shape)
                o = xp.empty(shape, dt)
            body(xp, o, y, dy)
            return (o,)
        return compute
    return factory


def _tanh_grad(xp: Any, o: Any, y: Any, dy: Any) -> None:  # dy * (1 - y^2)
    xp.multiply(y, y, out=o)
    xp.subtract(1, o, out=o)
    xp.multiply(o, dy, out=o)


def _sigmoid_grad(xp: Any, o: Any, y: Any, dy: Any) -> None:  # dy * y * (1 - y)
    xp.subtract(1, y, out=o)
    xp.multiply(o, y, out=o)
    xp.multiply(o, dy, out=o)


def _sqrt_grad(xp: Any, o: Any, y: Any, dy: Any) -> None:  # dy / (2 y)
    xp.divide(dy, y, out=o)
    xp.multiply(o, 0.5, out=o)


def _rsqrt_grad(xp: Any, o: Any, y: Any, dy: Any) -> None:  # -dy * y^3 / 2
    xp.multiply(y, y, out=o)
    xp.multiply(o, y, out=o)
    xp.multiply(o, dy, out=o)
    xp.multiply(o, -0.5, out=o)


def _reciprocal_grad(xp: Any, o: Any, y: Any, dy: Any) -> None:  # -dy * y^2
    xp.multiply(y, y, out=o)
    xp.multiply(o, dy, out=o)
    xp.negative(o, out=o)


_F32 = np.dtype(np.float32)


_tanh_grad_entries: dict[int, Any] = {}  # {0: f32_loops.tanh_grad} once loaded


def _tanh_grad_factory(k: KernelContext) -> Any:
    """TanhGrad: on a CPU, float32 operands of one shape, C-contiguous vectors or matrices,
    take one compiled pass (`devices.kernels.f32_loops.tanh_grad`, the same bits as the three
    NumPy passes) through numba's dispatcher, whose signatures check the dtype, layout and rank
    (~0.4 us, against ~0.9 us for the same checks in Python here); anything else, NumPy."""
    general = _fused(_tanh_grad)(k)
    if k.xp is not np or k.out_dtypes[0].np != np.float32:
        return general
    alloc = out_allocator(k)
    entries = _tanh_grad_entries
    imports_on_first_call(fast_tanh.LOOPS)
    ndarray, empty = np.ndarray, np.empty

    def compute(y: Any, dy: Any) -> tuple[Any]:
        if type(y) is not ndarray or type(dy) is not ndarray or y.shape != dy.shape:
            return general(y, dy)
        if not entries:
            from devices.kernels import f32_loops  # noqa: PLC0415 - numba on first use

            entries[0] = f32_loops.tanh_grad
        o = alloc() if alloc is not None else empty(y.shape, _F32)
        try:  # numba's dispatcher checks the rest: float32, C-contiguous, rank 1 or 2
            entries[0](y, dy, o)
        except TypeError:
            return general(y, dy)
        return (o,)
    return compute


register_kernel("TanhGrad", cost=_COST3)(_tanh_grad_factory)
register_kernel("SigmoidGrad", cost=_COST3)(_fused(_sigmoid_grad))
register_kernel("SqrtGrad", cost=_COST2)(_fused(_sqrt_grad))
register_kernel("RsqrtGrad", cost=_COST3)(_fused(_rsqrt_grad))
register_kernel("ReciprocalGrad", cost=_COST3)(_fused(_reciprocal_grad))


# ---- n-ary, cast, selection, clipping ---------------------------------------------------
def _add_n_cost(k: KernelContext) -> float:
    return _elementwise_cost(max(len(k.in_dtypes) - 1, 1))(k)


@register_kernel("AddN", cost=_add_n_cost)
def _add_n(k: KernelContext) -> Any:
    xp = k.xp
    alloc = out_allocator(k)

    def compute(*xs: Any) -> tuple[Any]:
        if xs[0].ndim == 0 and xp is np:
            # 0-d terms: a few are scalar adds in order (~0.07 us a term, against ~2.6 for an
            # add into a 0-d array); many go into one array first and NumPy's pairwise sum
            # adds them in their dtype (~0.015 us a term, and rounds no worse)
            if len(xs) < 16:
                return (sum(xs[1:], xs[0]),)
            dt = xs[0].dtype
            return (np.add.reduce(np.fromiter(xs, dt, len(xs)), dtype=dt),)
        acc = xp.add(xs[0], xs[1]) if alloc is None else xp.add(xs[0], xs[1], out=alloc())
        if len(xs) > 2 and not isinstance(acc, xp.ndarray):
            acc = xp.asarray(acc)  # 0-d inputs give a NumPy scalar, which takes no out=
        for x in xs[2:]:
            xp.add(acc, x, out=acc)
        return (acc,)
    return compute


@register_kernel("Cast", cost=_COST1)
def _cast(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    alloc = out_allocator(k)
    if alloc is None:
        return lambda x: (x.astype(dt, copy=False),)

    def compute(x: Any) -> tuple[Any]:
        if x.dtype == dt:
            return (x,)
        out = alloc()
        xp.copyto(out, x, casting="unsafe")
        return (out,)
    return compute


@register_kernel("SelectV2", cost=_COST2)
def _select(k: KernelContext) -> Any:
    xp = k.xp
    alloc = out_allocator(k)
    if alloc is None:
        return lambda c, x, y: (xp.where(c, x, y),)

    def compute(c: Any, x: Any, y: Any) -> tuple[Any]:
        out = alloc()
        xp.copyto(out, y)
        xp.copyto(out, x, where=c)
        return (out,)
    return compute


@register_kernel("Where")
def _where(k: KernelContext) -> Any:
    xp = k.xp
    return lambda c: (xp.argwhere(c).astype(np.int64, copy=False),)


@register_kernel("ClipByValue", cost=_COST1)
def _clip(k: KernelContext) -> Any:
    xp = k.xp
    alloc = out_allocator(k)
    if alloc is None:
        return lambda t, lo, hi: (xp.clip(t, lo, hi),)
    return lambda t, lo, hi: (xp.clip(t, lo, hi, out=alloc()),)


# ---- matmul -----------------------------------------------------------------------------
def _matmul_cost(k: KernelContext) -> float:
    out, a = k.out_shapes[0], k.in_shapes[0] if k.in_shapes else None
    if out is None or a is None or None in out or None in a:
        return 0.0
    inner = a[-2] if k.attrs.get("transpose_a") else a[-1]
    return matmul_cost_us(out[-2], inner, out[-1]) * math.prod(out[:-2])  # type: ignore


SGEMM_LOOP = LoopLoader("devices.kernels.sgemm_loop", "gemm")
SGEMM_MAX_WORK = 1 << 18  # = sgemm_loop.MAX_WORK (that module imports numba: not here)
_sgemm_fptr: list[int | None] = []  # [address of NumPy's OpenBLAS cblas_sgemm, or None]


def _small_sgemm(k: KernelContext, ta: bool, tb: bool, accumulate: bool = False) -> Any:
    """MatMul (or ``acc + a @ b`` with `accumulate`) of small float32 matrices of a static
    output shape through `devices.kernels.sgemm_loop.gemm`: the same OpenBLAS call NumPy's
    matmul makes (the same bits), without its ufunc machinery; the sum of `accumulate` inside
    the call (beta = 1) instead of a second pass over a new product. Until the compiled call
    is loaded (`LoopLoader`, off this thread), and for anything it declines (a strided or
    float64 operand, shapes that do not chain, vectors, a product OpenBLAS would thread, see
    its module), NumPy's path. None when the static shape is unknown."""
    shape = k.out_shapes[0] if k.out_shapes else None
    if shape is None or len(shape) != 2 or None in shape or min(shape) < 2:
        return None
    shape = (int(shape[0]), int(shape[1]))  # type: ignore[arg-type]
    a_shape = k.in_shapes[1 if accumulate else 0] if k.in_shapes else None
    if a_shape is not None and len(a_shape) == 2 and a_shape[0 if ta else 1] is not None:
        inner = int(a_shape[0 if ta else 1])  # type: ignore[arg-type]
        if inner < 2 or shape[0] * shape[1] * inner > SGEMM_MAX_WORK:
            return None  # declined at every call anyway (see sgemm_loop.gemm)
    f32, ndarray, empty, prod, add = np.float32, np.ndarray, np.empty, np.matmul, np.add
    ta_i, tb_i = int(ta), int(tb)
    loader = SGEMM_LOOP

    def plain(a: Any, b: Any) -> Any:
        r = prod(a.T if ta else a, b.T if tb else b)
        return r if r.dtype == f32 else r.astype(f32)

    def ready() -> Any:
        if not _sgemm_fptr:
            from devices.kernels.sgemm_loop import sgemm_address  # noqa: PLC0415 - loaded

            _sgemm_fptr.append(sgemm_address())
        return _sgemm_fptr[0]

    def address(a: Any, b: Any) -> int | None:
        """The call's address when it is loaded and may take (a, b); None: NumPy's path (the
        call's loading started). a @ a.T is NumPy's syrk, other bits: never taken here."""
        if loader.fn is None:
            loader.start()
            return None
        if a is b:
            return None
        return _sgemm_fptr[0] if _sgemm_fptr else ready()

    def direct(fp: int, a: Any, b: Any, out: Any, beta: float) -> bool:
        """True when the compiled call computed `out`; False when it declined the shapes or a
        strided or float64 operand failed its signature (TypeError): NumPy's path."""
        try:
            return bool(loader.fn(fp, a, b, out, ta_i, tb_i, beta))
        except TypeError:
            return False

    if accumulate:
        def compute_acc(acc: Any, a: Any, b: Any) -> tuple[Any]:
            if type(acc) is ndarray and acc.shape == shape and (fp := address(a, b)):
                out = acc.astype(f32, order="C")  # a new array: acc is someone's value
                if direct(fp, a, b, out, 1.0):
                    return (out,)
            out = plain(a, b)
            add(out, acc, out=out)
            return (out,)
        return compute_acc

    def compute(a: Any, b: Any) -> tuple[Any]:
        if fp := address(a, b):
            out = empty(shape, f32)
            if direct(fp, a, b, out, 0.0):
                return (out,)
        return (plain(a, b),)
    return compute


def _matmul_factory(k: KernelContext) -> Any:
    xp = k.xp
    ta, tb = bool(k.attrs.get("transpose_a")), bool(k.attrs.get("transpose_b"))
    alloc = out_allocator(k)
    dt = k.out_dtypes[0].np
    two_d = k.op == "MatMul"
    # np.matmul takes out= and covers batches; it measured 1-3% faster than np.dot on the
    # 2-D products of an MLP step here. It returns float32 for bfloat16 inputs (cast back).
    prod = xp.matmul
    if two_d and xp is np and alloc is None and dt == np.float32:
        small = _small_sgemm(k, ta, tb)
        if small is not None:
            return small
    if two_d and not (ta or tb) and alloc is None and dt in (np.float32, np.float64):
        # the small products of loops and RNN cells: NumPy's product of two float32 (float64)
        # matrices is float32 (float64), so nothing to check or cast (~0.3 us of a ~15 us call)
        return lambda a, b: (prod(a, b),)

    def compute(a: Any, b: Any) -> tuple[Any]:
        if ta:
            a = a.T if two_d else xp.swapaxes(a, -1, -2)
        if tb:
            b = b.T if two_d else xp.swapaxes(b, -1, -2)
        if alloc is not None:
            return (prod(a, b, out=alloc()),)
        r = prod(a, b)
        return (r if r.dtype == dt else r.astype(dt),)
    return compute


@register_kernel("_FusedMatMul")
def _fused_matmul(k: KernelContext) -> Any:
    """MatMul, then + bias and optionally ReLU in place on the product (see
    `scheduler.rewrite.fuse_matmul_bias`)."""
    xp = k.xp
    ta, tb = bool(k.attrs.get("transpose_a")), bool(k.attrs.get("transpose_b"))
    relu = bool(k.attrs.get("relu"))
    alloc = out_allocator(k)

    def compute(a: Any, b: Any, bias: Any) -> tuple[Any]:
        out = xp.matmul(a.T if ta else a, b.T if tb else b,
                        out=alloc() if alloc is not None else None)
        out += bias
        if relu:
            xp.maximum(out, 0, out=out)
        return (out,)
    return compute


@register_kernel("_AccumulateMatMul")
def _accumulate_matmul(k: KernelContext) -> Any:
    """``acc + a @ b`` (a gradient loop's running sum, `actorflow.ops.control_flow_grad`): the
    product into a new buffer, then the sum in place on it, as MatMul then Add compute it."""
    xp = k.xp
    ta, tb = bool(k.attrs.get("transpose_a")), bool(k.attrs.get("transpose_b"))
    alloc = out_allocator(k)
    dt = k.out_dtypes[0].np
    if xp is np and alloc is None and dt == np.float32:
        small = _small_sgemm(k, ta, tb, accumulate=True)
        if small is not None:
            return small

    def compute(acc: Any, a: Any, b: Any) -> tuple[Any]:
        out = xp.matmul(a.T if ta else a, b.T if tb else b,
                        out=alloc() if alloc is not None else None)
        if out.dtype != dt:  # bfloat16 operands: NumPy's product is float32
            out = out.astype(dt)
        xp.add(out, acc, out=out)
        return (out,)
    return compute


# No `cost=` (so never moved to a worker thread): BLAS already spreads one product over every
# core, and two products at once on worker threads only oversubscribe them (measured: the
# 784-1024-1024 MLP step took 1.9x longer with its matmuls on threads).
register_kernel("MatMul")(_matmul_factory)
register_kernel("BatchMatMulV2")(_matmul_factory)
