"""A fused element-wise chain over float32 as one compiled loop (numba): the fast path of
`_FusedElementwise` (`devices.kernels.fused`) for the chains activations are made of, such as
``tanh(h) * 1.5 + c``.

Which chains: float32 in and out, the first step reading one full-size input (or a scalar),
every later step combining the running value with at most one *scalar* operand (a 0-d input),
each step one of `OPCODES` (add, subtract, multiply, true_divide, negative, square, tanh).
Anything else (a full-size second operand, max/min/relu, exp, sqrt...) keeps the NumPy path of
`fused.py`. `plan(k)` says at compile time whether a node's program qualifies.

How: `plan` folds the steps into *passes*, each ``head(h, d) * a + b``: a head (none, tanh,
square, ``h / d``, ``d / h``) followed by an affine tail. A multiply by a scalar, then an add or
subtract of one, fold into the tail of the pass before them (``tanh(h) * 1.5 + c`` is one
pass); a negation or ``c - h`` folds in as a sign. Folding is exact: ``h * a + b`` rounds the
product and then the sum, as the two NumPy kernels do, ``h - c`` is ``h + (-c)`` and
``-(h * a)`` is ``h * (-a)`` in IEEE arithmetic, and a missing factor is 1 and a missing term
-0 (``x * 1`` and ``x + -0`` are x, signed zeros included). A pass after a finished tail (its
``+ b`` set) starts a new pass, since ``-(x + b)`` may differ from ``-x - b`` in a zero's sign.

The loop (`devices.kernels.f32_loops.chain`) takes the input `BLOCK` (512) elements at a time
into a small buffer (it stays in the L1 cache), applies every pass to the buffer in turn (one
vectorised loop per pass, no call per pass; a tanh pass runs its tanh as four interleaved
streams of the buffer, so four independent chains of dependent vector operations overlap, then
its affine tail as a loop of its own: 1.6 -> 1.3 ns an element on Zen), and writes the buffer
out: the 24 tanh layers of issue 11 are 24 passes over an L1 block, one memory pass over the
array (2M elements: ~67 ms of one core). The caller cuts the work into ranges over the
intra-op pool as for the NumPy path (a job this long in up to 8 chunks per thread:
`devices.intra_op.chunk_count`); the loop releases the GIL.

Values: the same bits as the unfused kernels (above; tanh is `devices.kernels.fast_tanh`'s,
the same compiled function, never contracted with the tail), but for a NaN's sign bit: a
folded negation multiplies by -1, which keeps a NaN's sign where NumPy's ``negative`` flips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# the program's ufuncs the loop runs
OPCODES = ("add", "subtract", "multiply", "true_divide", "negative", "square", "tanh")
# head opcodes of a pass (f32_loops.chain)
NONE, TANH, SQUARE, DIV, RDIV = 0, 1, 2, 3, 4
_HEADS = {"tanh": TANH, "square": SQUARE}

# A term of a pass: (input index, sign), the signed value of that 0-d input; index -1 is the
# literal 1 (a factor) or -0 (a summand): the pass's identity.
_ONE = (-1, 1.0)


@dataclass(frozen=True)
class ChainPlan:
    """A program the compiled loop runs: `source` is the input index the chain starts from;
    per pass its head opcode (`heads`, int32) and its ``(d, a, b)`` terms (`terms`)."""

    source: int
    heads: np.ndarray   # int32 per pass
    terms: tuple[tuple[tuple[int, float], ...], ...]


class _Pass:
    __slots__ = ("head", "d", "a", "b")

    def __init__(self, head: int, d: tuple[int, float] = _ONE):
        self.head, self.d, self.a, self.b = head, d, _ONE, None


def plan(program: list[list[Any]], in_shapes: list[Any], in_dtypes: list[Any],
         out_dtype: Any) -> ChainPlan | None:
    """The plan of a fused program, or None when the compiled loop cannot run it."""
    if out_dtype != np.float32 or any(dt is None or dt.np != np.float32 for dt in in_dtypes):
        return None

    def scalar(i: int) -> bool:
        return i != -1 and in_shapes[i] is not None and tuple(in_shapes[i]) == ()

    source = None
    passes: list[_Pass] = []
    for i, (name, *operands) in enumerate(program):
        if name not in OPCODES or not operands:
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
        c = other[0] if other else -1
        if not _fold(passes, name, c, left=bool(other) and operands[0] != -1):
            return None
    if source is None:
        return None
    heads = np.asarray([p.head for p in passes], np.int32)
    heads.flags.writeable = False  # the loop's signature takes it read-only
    terms = tuple((p.d, p.a, p.b if p.b is not None else _ONE) for p in passes)
    return ChainPlan(source, heads, terms)


def _fold(passes: list[_Pass], name: str, c: int, left: bool) -> bool:
    """Add step `name` (scalar operand input `c`, -1: none; `left`: the scalar is the left
    operand) to `passes`, folding it into the last pass where exact (module docstring)."""
    if name in _HEADS:
        passes.append(_Pass(_HEADS[name]))
        return True
    if name == "true_divide":
        passes.append(_Pass(RDIV if left else DIV, (c, 1.0)))
        return True
    last = passes[-1] if passes and passes[-1].b is None else None
    if last is None:
        last = _Pass(NONE)
        passes.append(last)
    if name == "multiply":
        if last.a[0] != -1:  # a factor is set already: ((h * a) * c) rounds twice
            last = _Pass(NONE)
            passes.append(last)
        last.a = (c, last.a[1])
    elif name == "add":
        last.b = (c, 1.0)
    elif name == "subtract" and not left:
        last.b = (c, -1.0)
    elif name == "subtract":  # c - h = (-h) + c
        last.a = (last.a[0], -last.a[1])
        last.b = (c, 1.0)
    elif name == "negative":
        last.a = (last.a[0], -last.a[1])
    else:
        return False
    return True


def compiled() -> Any:
    """The compiled chain loop ``(x, out, heads, dab)`` (`devices.kernels.f32_loops`),
    compiled or loaded from numba's cache on first call."""
    from devices.kernels import f32_loops  # noqa: PLC0415 - numba's import costs ~0.3 s

    return f32_loops.chain


def constants(p: ChainPlan, ins: tuple[Any, ...] | list[Any]) -> np.ndarray:
    """The ``(d, a, b)`` of every pass from the step inputs, float32, shape (passes, 3): a
    term's input times its sign; without an input, the sign as a factor, -0 as a summand."""
    table = np.empty((len(p.terms), 3), np.float32)
    for s, terms in enumerate(p.terms):
        for j, (index, sign) in enumerate(terms):
            if index < 0:
                table[s, j] = -0.0 if j == 2 else sign
            else:
                v = np.float32(ins[index])
                table[s, j] = -v if sign < 0 else v
    table.flags.writeable = False
    return table
