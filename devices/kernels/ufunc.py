"""Element-wise kernels built from NumPy/CuPy ufuncs: their cost estimate, their scalar fast
path (0-d inputs through Python's operators) and their intra-op split over the device's pool
of threads (`devices.intra_op`)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from devices.intra_op import apply_split
from devices.kernels import fast_tanh
from devices.kernels.loop_loader import imports_on_first_call
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext


def _static_elements(k: KernelContext, index: int = 0) -> int:
    """Elements of output `index` from its static shape (0 when not fully known)."""
    shape = k.out_shapes[index] if index < len(k.out_shapes) else None
    if shape is None or any(d is None for d in shape):
        return 0
    return math.prod(shape)


# Relative cost per element of ufuncs against a plain add (transcendentals cost more).
_PASSES = {"tanh": 6.0, "exp": 4.0, "log": 4.0, "sqrt": 1.5, "power": 8.0, "sin": 6.0,
           "cos": 6.0, "divide": 1.5, "true_divide": 1.5, "arctan": 6.0, "expm1": 4.0,
           "log1p": 4.0}
_BYTES_PER_US = 4e3   # ~4 GB/s for a simple element-wise pass on one core


def elementwise_cost(k: KernelContext, passes: float = 1.0) -> float:
    """Estimated microseconds of an element-wise kernel from its static output size (0 when
    unknown, so such kernels stay inline)."""
    shape = k.out_shapes[0] if k.out_shapes else None
    if shape is None or any(d is None for d in shape):
        return 0.0
    n = k.out_dtypes[0].np.itemsize
    for d in shape:
        n *= d
    return passes * n / _BYTES_PER_US


# Ufuncs with a Python operator that NumPy scalars implement without the ufunc machinery
# (about 80 ns instead of 0.5-2 us a call): the kernels of scalar ops use them.
_SCALAR_OPERATORS: dict[str, Callable[..., Any]] = {
    "add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
    "true_divide": operator.truediv, "divide": operator.truediv, "less": operator.lt,
    "less_equal": operator.le, "greater": operator.gt, "greater_equal": operator.ge,
    "equal": operator.eq, "not_equal": operator.ne, "negative": operator.neg,
    "absolute": operator.abs,
}


def is_scalar_kernel(k: KernelContext) -> bool:
    """True on a CPU when every input and the output are statically 0-d, of a plain NumPy
    number kind (not bfloat16 and friends, whose scalars are not NumPy's)."""
    if k.xp is not np or not k.out_shapes or k.out_shapes[0] != ():
        return False
    if not k.in_shapes or any(s != () for s in k.in_shapes):
        return False
    return all(dt is not None and dt.np.kind in "fiub" for dt in (*k.in_dtypes, k.out_dtypes[0]))


def scalar_operator(name: str, k: KernelContext) -> Callable[..., Any] | None:
    """The compute of a 0-d ufunc op through its Python operator, or None. On NumPy scalars
    the operator gives the same value and dtype as the ufunc (NumPy's scalar math); a 0-d
    array operand still goes through the ufunc, so a fed 0-d value is handled too. The one
    difference: an integer overflow warns (NumPy's scalar rule) where the ufunc wraps
    silently; the value is the same wrapped one."""
    op = _SCALAR_OPERATORS.get(name)
    if op is None or not is_scalar_kernel(k):
        return None
    if name == "true_divide" and not k.out_dtypes[0].is_floating:
        return None
    if len(k.in_shapes) == 2:
        if op is operator.add:
            return lambda a, b: (a + b,)
        if op is operator.mul:
            return lambda a, b: (a * b,)
        if op is operator.sub:
            return lambda a, b: (a - b,)
        return lambda a, b: (op(a, b),)
    if len(k.in_shapes) == 1 and name in ("negative", "absolute"):
        return lambda a: (op(a),)
    return None


def array_ufunc(xp: Any, name: str, dtype: Any) -> Callable[..., Any]:
    """``xp.<name>``, or on a CPU the faster function of the same call form where there is
    one for `dtype` (float32 ``tanh``: our rational approximation, `devices.kernels.fast_tanh`)."""
    if xp is np and name == "tanh" and dtype == np.float32:
        imports_on_first_call(fast_tanh.LOOPS)
        return fast_tanh.tanh
    return getattr(xp, name)


def ufunc_kernel(name: str) -> Callable[[KernelContext], Any]:
    """A kernel factory applying ``xp.<name>`` (a ufunc) to the inputs: through the Python
    operator on 0-d inputs (`scalar_operator`), into a pooled buffer when the output is large
    and its shape known, split over the device's intra-op pool when it is larger still."""

    def factory(k: KernelContext) -> Any:
        f = array_ufunc(k.xp, name, k.out_dtypes[0].np)
        fast = scalar_operator(name, k)
        if fast is not None:
            return fast
        alloc = out_allocator(k)
        if alloc is None:  # small: no pool, no split; a fixed arity skips packing *args
            if len(k.in_dtypes) == 2:
                return lambda a, b: (f(a, b),)
            if len(k.in_dtypes) == 1:
                return lambda a: (f(a),)
            return lambda *args: (f(*args),)
        pool = k.device.intra_op if k.xp is np else None
        if pool is not None and pool.worth_splitting(_static_elements(k), passes):
            kind = object()  # this kernel's work, measured split and inline by the pool
            return lambda *args: (apply_split(pool, f, args, alloc(), passes, kind),)
        return lambda *args: (f(*args, out=alloc()),)

    passes = _PASSES.get(name, 1.0)
    factory.default_cost = lambda k: elementwise_cost(k, passes)  # type: ignore[attr-defined]
    return factory
