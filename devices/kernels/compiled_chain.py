"""A fused element-wise chain over float32 as one compiled loop (numba): the fast path of
`_FusedElementwise` (`devices.kernels.fused`) for the chains activations are made of, such as
``tanh(h) * 1.5 + c``.

Which chains: float32 in and out, the first step reading one full-size input (or a scalar),
every later step combining the running value with at most one *scalar* operand (a 0-d input),
each step one of `OPCODES` (add, subtract, multiply, true_divide, negative, square, tanh).
Anything else (a full-size second operand, max/min/relu, exp, sqrt...) keeps the NumPy path of
`fused.py`. `plan(k)` says at compile time whether a node's program qualifies.

How: the loop (`devices.kernels.f32_loops.chain`) takes the input `BLOCK` (512) elements at a
time into a small buffer (it stays in the L1 cache), applies every step to the buffer in turn (one
vectorised loop per step, no call per step), and writes the buffer out. The caller cuts the
work into ranges over the intra-op pool as for the NumPy path; the loop releases the GIL.

Values: the same bits as the unfused kernels. Each step is one IEEE float32 operation per
element, as NumPy's ufunc makes it (no contraction across steps: each step is its own loop),
and tanh is `devices.kernels.fast_tanh`'s, the same compiled function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# opcodes of a step; the "R" forms take the scalar as the left operand (c - h, c / h)
OPCODES = {"add": 0, "subtract": 1, "multiply": 2, "true_divide": 3, "negative": 6,
           "square": 7, "tanh": 8}
_RSUB, _RDIV = 4, 5


@dataclass(frozen=True)
class ChainPlan:
    """A program the compiled loop runs: per step its opcode and the input index of its
    scalar operand (-1: none); `source` is the input index the chain starts from."""

    source: int
    opcodes: np.ndarray   # int32 per step
    scalars: tuple[int, ...]


def plan(program: list[list[Any]], in_shapes: list[Any], in_dtypes: list[Any],
         out_dtype: Any) -> ChainPlan | None:
    """The plan of a fused program, or None when the compiled loop cannot run it."""
    if out_dtype != np.float32 or any(dt is None or dt.np != np.float32 for dt in in_dtypes):
        return None
    def scalar(i: int) -> bool:
        return i != -1 and in_shapes[i] is not None and tuple(in_shapes[i]) == ()

    source = None
    codes: list[int] = []
    scalars: list[int] = []
    for i, (name, *operands) in enumerate(program):
        code = OPCODES.get(name) if isinstance(name, str) else None
        if code is None or not operands:
            return None
        if i == 0:  # the first step reads the chain's one full-size input
            full = [a for a in operands if not scalar(a)]
            if len(full) != 1 or full[0] == -1:
                return None
            source = full[0]
            operands = [-1 if a == source else a for a in operands]
        if operands.count(-1) != 1:
            return None
        other = [a for a in operands if a != -1]
        if other and not scalar(other[0]):
            return None
        if other and operands[0] != -1:  # scalar on the left: c - h, c / h, c + h, c * h
            code = {1: _RSUB, 3: _RDIV}.get(code, code)
        codes.append(code)
        scalars.append(other[0] if other else -1)
    if source is None:
        return None
    opcodes = np.asarray(codes, np.int32)
    opcodes.flags.writeable = False  # the loop's signature takes it read-only
    return ChainPlan(source, opcodes, tuple(scalars))


def compiled() -> Any:
    """The compiled chain loop ``(x, out, opcodes, constants)`` (`devices.kernels.f32_loops`),
    compiled or loaded from numba's cache on first call."""
    from devices.kernels import f32_loops  # noqa: PLC0415 - numba's import costs ~0.3 s

    return f32_loops.chain


def constants(p: ChainPlan, ins: tuple[Any, ...] | list[Any]) -> np.ndarray:
    """Each step's scalar operand from the step's inputs, as float32 (0 where none)."""
    return np.asarray([ins[i] if i >= 0 else 0 for i in p.scalars], np.float32)
