"""The gradient of a loop invariant that a while loop's body multiplies once (W in an RNN's
``h @ W``), summed beside the gradient loop instead of in it.

Inside the loop, W's gradient is ``sum_t op(a_t) @ op(b_t)`` (for ``h @ W``: ``h_{t-1}^T @
dz_t``). As a running loop variable (`control_flow_grad._accumulate`) that is one product per
gradient iteration on the loop's own thread, although no later iteration reads it. Here the
gradient loop only hands each iteration's operands to a per-run `ProductSum`
(`devices.kernels.loop_sums`): `_ProductTerms` before the loop makes it, one
`_ProductTermPush` per iteration (ordered before the iteration's next counter value, so every
term is in when the loop exits) feeds it, and `_ProductSum` after the loop returns ``init +
the terms``. The products run on a background thread while the loop goes on (TensorFlow gets
the same overlap from its inter-op threads). The value is the running sum's up to the
summation order (terms are added in chunks, in push order: deterministic).

Which invariants: a float invariant of static 2-D shape whose only consumer in the forward loop
is one MatMul running in the loop's body itself (not in a cond or an inner loop).
Anything else (W used twice, inside a cond, a batched product) keeps the running sum. Should
the gradient term of a chosen invariant not turn out to be one product, the term itself is
pushed (the sum of plain terms).
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import apply_op, apply_op_op, define_op, no_gradient, register_gradient
from actorflow.ops import control_flow_context as cfc
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["hoistable", "InvariantSum"]


def _same(ins: list[Tensor], attrs: dict[str, Any]) -> list[Any]:
    return [(ins[0].dtype, ins[0]._shape)]


define_op("_ProductTerms", infer=lambda ins, a: [(dtypes.resource, ())], stateful=True)
define_op("_ProductTermPush", infer=lambda ins, a: [], stateful=True)
define_op("_ProductSum", infer=_same, stateful=True)
no_gradient("_ProductTerms")
no_gradient("_ProductTermPush")

for _op in ("_ProductSum",):
    @register_gradient(_op)
    def _no_second_order(op: Operation, grad: Any) -> list[Any]:
        raise InvalidArgumentError(
            f"cannot differentiate '{op.name}' ({op.type}) again: it is the gradient of a "
            f"while loop's invariant that the body multiplies once (W in h @ W), summed "
            f"beside the gradient loop, and that sum is not differentiable again; to take "
            f"a second derivative, unroll the loop (a Python for loop building the body's "
            f"ops T times)")


def hoistable(e: Operation, w: cfc.WhileContext) -> bool:
    """Whether the gradient of invariant Enter `e` of loop `w` is summed after the loop."""
    out = e.outputs[0]
    if not out.dtype.is_floating or not _rank2(out):
        return False
    users = [op for op in out.graph._ops if any(t is out for t in op.inputs)]
    if len(users) != 1 or users[0].control_inputs:
        return False
    mm = users[0]
    return (mm.type == "MatMul" and cfc.ctx_of_op(mm) is w
            and sum(t is out for t in mm.inputs) == 1)


def _rank2(t: Tensor) -> bool:
    return t._shape is not None and len(t._shape) == 2 and shapes.is_fully_defined(t._shape)


class InvariantSum:
    """One invariant's gradient summed beside its gradient loop: the terms' resource made
    before the loop, the pushes made in its body (`add_term`), the sum made after it."""

    def __init__(self, init: Tensor):
        self.init = init  # zeros of the invariant's shape: the sum of no terms
        self.terms = apply_op("_ProductTerms", [], name="grad_terms")[0]
        self.used = False

    def add_term(self, g: Any) -> list[Operation]:
        """In the gradient loop's body: hand this iteration's term `g` over; returns the push
        the iteration's counter must wait for."""
        op = g.op if isinstance(g, Tensor) else None
        self.used = True
        if op is not None and op.type == "MatMul" and g.dtype == self.init.dtype:
            attrs = {"transpose_a": bool(op.attrs.get("transpose_a")),
                     "transpose_b": bool(op.attrs.get("transpose_b"))}
            return [apply_op_op("_ProductTermPush", [self.terms, *op.inputs], attrs,
                                name="grad_term_push")]
        from actorflow.ops.control_flow_grad import _dense
        return [apply_op_op("_ProductTermPush", [self.terms, _dense(g)], {},
                            name="grad_term_push")]

    def result(self, loop_out: Tensor) -> Tensor:
        """After the gradient loop. `loop_out`, a float Exit of that loop, is an input the
        kernel does not read: it orders the sum after the loop's last push, and it puts the
        sum on every gradient path through the loop, so that differentiating the sum again
        meets `_no_second_order` instead of silently missing the terms' dependence."""
        if not self.used:
            return self.init  # the loop's body does not reach this invariant
        return apply_op("_ProductSum", [self.init, self.terms, loop_out], name="grad_sum")[0]
