"""The kernel of `_FusedElementwise`: a chain of element-wise ops run block by block
(`scheduler.elementwise_fusion` builds the node and documents its ``program``).

The output buffer is allocated once; each block of it (`BLOCK` elements, a few tens of KB, so
the block stays in the core's cache across the chain) gets the first op's result from the
block's operands, then every later op in place. Blocks are cut along the output's flat index
when the output and every full-size operand are contiguous, else along its outer axis
(`devices.intra_op.split_operands`), and spread over the device's intra-op pool when the
output is large (`IntraOpPool.worth_splitting`). Every element sees the same ufuncs in the
same order as in the unfused chain, so the values are identical.

A float32 chain whose steps all take the running value and at most a scalar (``tanh(h) * 1.5
+ c``, the usual activation chains) runs instead as one compiled loop over L1-sized blocks
(`devices.kernels.compiled_chain`, which says which programs qualify); its values are the
unfused kernels' too. float32 ``tanh`` on either path is `devices.kernels.fast_tanh`'s.
The program ``tanh(a + b)`` of two full-size float32 inputs (an RNN cell's ``tanh(h @ W +
x_t)``, once its MatMul has run) is one compiled pass too (`f32_loops.add_tanh`: the sum
rounded, then the same tanh, so again the unfused bits): on a 32 x 64 cell that is one ~3 us
call instead of an add, a tanh and a trip through the executor.

    program [["tanh", 0], ["multiply", -1, 1], ["add", -1, 2]]  # tanh(x) * a + b
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.device import elementwise_cost_us, shape_bytes
from devices.errors import InvalidArgumentError
from devices.intra_op import MIN_CHUNK_ELEMENTS, split_operands
from devices.kernels import compiled_chain, fast_tanh
from devices.kernels.loop_loader import imports_on_first_call
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext, register_kernel
from devices.kernels.ufunc import _PASSES, _SCALAR_OPERATORS, array_ufunc

# the ufuncs a program may name, with their number of operands (relu: maximum with 0)
_UFUNCS = {"add": 2, "subtract": 2, "multiply": 2, "true_divide": 2, "maximum": 2,
           "minimum": 2, "negative": 1, "absolute": 1, "square": 1, "reciprocal": 1, "sqrt": 1,
           "exp": 1, "log": 1, "tanh": 1, "sin": 1, "cos": 1, "relu": 1}
BLOCK = 1 << 14  # elements per block: 64 KB of float32, measured against 4K and 64K blocks


def _steps(k: KernelContext) -> list[tuple[Any, tuple[Any, ...]]]:
    """(ufunc, operands) per step; an operand is -1 (the running value), an input index, or
    a ('const', value) pair (Relu's zero)."""
    xp = k.xp
    steps = []
    n_in = len(k.in_dtypes)
    for step in k.attrs["program"]:
        name, *operands = step
        arity = _UFUNCS.get(name) if isinstance(name, str) else None
        if arity is None:
            raise InvalidArgumentError(
                f"'{k.name}': {name!r} is not an element-wise op a fused program may hold "
                f"(one of: {', '.join(sorted(_UFUNCS))})")
        if len(operands) != arity or any(type(a) is not int or not -1 <= a < n_in
                                         for a in operands):
            raise InvalidArgumentError(
                f"'{k.name}': fused step {step!r} needs {arity} operand(s), each -1 (the "
                f"running value) or an input index below {n_in}")
        if name == "relu":
            steps.append((xp.maximum, (*operands, ("const", k.out_dtypes[0].np.type(0)))))
            continue
        steps.append((array_ufunc(xp, name, k.out_dtypes[0].np), tuple(operands)))
    return steps


def _cost(k: KernelContext) -> float:
    shape = k.out_shapes[0] if k.out_shapes else None
    nbytes = shape_bytes(shape, k.out_dtypes[0].size)
    passes = sum(_PASSES.get(step[0], 1.0) for step in k.attrs["program"])
    return elementwise_cost_us(nbytes, passes)


def _scalar_program(k: KernelContext) -> Any:
    """The compute of a 0-d program on a CPU: one Python call per step on NumPy scalars (the
    operator where NumPy's scalar math has one, else the ufunc without ``out``), so a fused
    scalar chain costs ~0.1 us a step instead of a ufunc call into a 0-d buffer."""
    steps = []
    for f, operands in _steps(k):
        op = _SCALAR_OPERATORS.get(f.__name__) if len(operands) <= 2 else None
        steps.append((op or f, operands))
    if any(len(ops) != 2 for _, ops in steps):
        def general(*ins: Any) -> tuple[Any]:
            h = None
            for f, operands in steps:
                h = f(*[h if a == -1 else (a[1] if type(a) is tuple else ins[a])
                        for a in operands])
            return (h,)
        return general
    # all binary (the common case: x * a + b ...): no per-step list
    binary = [(f, a, b) for f, (a, b) in steps]

    def compute(*ins: Any) -> tuple[Any]:
        h = None
        for f, a, b in binary:
            h = f(h if a == -1 else (a[1] if type(a) is tuple else ins[a]),
                  h if b == -1 else (b[1] if type(b) is tuple else ins[b]))
        return (h,)
    return compute


_F32 = np.dtype(np.float32)
_add_tanh_entries: dict[int, Any] = {}  # rank -> the unchecked entry of f32_loops.add_tanh


def _add_tanh_inputs(k: KernelContext) -> tuple[int, int] | None:
    """The input indices (i, j) when the program is ``tanh(in_i + in_j)`` over float32 inputs
    of the output's static shape on a CPU, else None."""
    program = k.attrs["program"]
    shape = tuple(k.out_shapes[0])
    if (k.xp is not np or k.out_dtypes[0].np != np.float32 or len(program) != 2
            or list(program[1]) != ["tanh", -1] or program[0][0] != "add"
            or len(program[0]) != 3 or -1 in program[0][1:] or not 1 <= len(shape) <= 2):
        return None
    i, j = program[0][1], program[0][2]
    for x in (i, j):
        if (k.in_dtypes[x].np != np.float32 or k.in_shapes[x] is None
                or tuple(k.in_shapes[x]) != shape):
            return None
    return i, j


def _add_tanh_kernel(k: KernelContext, ij: tuple[int, int], general: Any) -> Any:
    """`tanh(a + b)` through `f32_loops.add_tanh`'s direct entry (the checks are here), split
    over the intra-op pool when large; anything unexpected at run time (a strided input)
    goes to `general`, the NumPy path."""
    i, j = ij
    shape = tuple(k.out_shapes[0])
    alloc = out_allocator(k)
    pool = k.device.intra_op
    size = int(np.prod(shape))
    split = pool is not None and pool.worth_splitting(size, 7.0)
    kind = object()  # this kernel's work, measured split and inline by the pool
    entries = _add_tanh_entries
    ndarray = np.ndarray
    imports_on_first_call(fast_tanh.LOOPS)

    def compute(*ins: Any) -> tuple[Any]:
        a, b = ins[i], ins[j]
        if (type(a) is not ndarray or type(b) is not ndarray or a.dtype is not _F32
                or b.dtype is not _F32 or a.shape != shape or b.shape != shape
                or not (a.flags.c_contiguous and b.flags.c_contiguous)):
            return general(*ins)
        if not entries:
            from devices.kernels import f32_loops  # noqa: PLC0415 - numba on first use

            entries.update(f32_loops.entry_points(f32_loops.add_tanh))
        out = alloc() if alloc is not None else np.empty(shape, _F32)
        if split:
            from devices.kernels import f32_loops  # noqa: PLC0415 - loaded above

            af, bf, of = a.reshape(-1), b.reshape(-1), out.reshape(-1)
            pool.parallel_for(size, lambda lo, hi: f32_loops.add_tanh(af[lo:hi], bf[lo:hi],
                                                                      of[lo:hi]),
                              max(1, MIN_CHUNK_ELEMENTS // 7), kind)
        else:
            entries[a.ndim](a, b, out)
        return (out,)
    return compute


@register_kernel("_FusedElementwise", cost=_cost)
def _fused_elementwise(k: KernelContext) -> Any:
    if k.xp is np and tuple(k.out_shapes[0]) == ():
        return _scalar_program(k)
    steps = _steps(k)
    xp = k.xp
    alloc = out_allocator(k)
    dt = k.out_dtypes[0].np
    shape = tuple(k.out_shapes[0])
    pool = k.device.intra_op if xp is np else None
    passes = sum(_PASSES.get(step[0], 1.0) for step in k.attrs["program"])
    kind = object()  # this kernel's work, measured split and inline by the pool

    def run_chain(p: compiled_chain.ChainPlan, ins: tuple[Any, ...], x: np.ndarray,
                  out: np.ndarray) -> None:
        loop = compiled_chain.compiled()
        xf = np.ascontiguousarray(x).reshape(-1)
        of = out.reshape(-1)
        cs = compiled_chain.constants(p, ins)
        if pool is not None and pool.worth_splitting(of.size, passes):
            pool.parallel_for(of.size, lambda lo, hi: loop(xf[lo:hi], of[lo:hi], p.heads, cs),
                              max(1, int(MIN_CHUNK_ELEMENTS / passes)), kind)
        else:
            loop(xf, of, p.heads, cs)

    def run(ins: list[Any], o: Any) -> None:
        for f, operands in steps:
            f(*[o if a == -1 else (a[1] if type(a) is tuple else ins[a]) for a in operands],
              out=o)

    fast = (compiled_chain.plan(k.attrs["program"], k.in_shapes, k.in_dtypes, dt)
            if xp is np else None)
    if fast is not None:
        imports_on_first_call(fast_tanh.LOOPS)

    def compute(*ins: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else xp.empty(shape, dt)
        if fast is not None and out.flags.c_contiguous:
            x = ins[fast.source]
            if type(x) is np.ndarray and x.shape == shape and x.dtype == np.float32:
                run_chain(fast, ins, x, out)
                return (out,)
        plan = split_operands(ins, out) if pool is not None and out.size > BLOCK else None
        if plan is None:
            run(list(ins), out)
            return (out,)
        o, ops, cut = plan
        row = o.size // o.shape[0]
        rows_per_block = max(1, BLOCK // row)

        def body(lo: int, hi: int) -> None:
            for b in range(lo, hi, rows_per_block):
                e = min(b + rows_per_block, hi)
                run([a[b:e] if c else a for a, c in zip(ops, cut, strict=True)], o[b:e])

        if pool.worth_splitting(o.size, passes):
            pool.parallel_for(o.shape[0], body,
                              max(1, int(MIN_CHUNK_ELEMENTS / passes) // row), kind)
        else:
            body(0, o.shape[0])
        return (out,)
    ij = _add_tanh_inputs(k)
    return compute if ij is None else _add_tanh_kernel(k, ij, compute)
