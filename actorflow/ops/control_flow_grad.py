"""Gradients of control flow (WP §4.4, OSDI §4.1): "recording the forward decisions and
replaying them in reverse".

* cond: the gradient of a Merge is a Switch of the incoming gradient on the cond's predicate
  (each branch's gradient runs only where that branch ran forward); the gradient of a Switch
  is a Merge of its two ports' gradients, with zeros for a branch that did not use the value,
  made live only where that branch was taken.
* while_loop (`while_loop_grad`): a gradient loop that runs as many iterations as the forward
  loop did (its counter, `WhileContext.counter`), counting the forward iteration index down.
  Its loop variables are the gradients of the float loop variables and the running sums of
  the gradients of the loop invariants that need one; its body is the backward walk
  (`gradients.backprop`) over the forward body. A running sum whose new term is a fresh
  MatMul nothing else reads (an RNN's ``dW += h^T @ dz``) is one `_AccumulateMatMul` node,
  ``acc + a @ b``: the product's buffer takes the sum in place (one node, one buffer and one
  pass fewer per iteration; the same bits as MatMul then Add). Forward values that body needs
  are saved per iteration in the forward loop and read back by index
  (`WhileContext.real_value`), so nested loops and conds inside loops work the same way,
  level by level.
* TensorArray: a read's gradient is a write into the gradient array and the other way
  round; stack and unstack are each other's gradient; flows carry the order.
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor, get_default_graph, name_scope
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import control_flow_context as cfc
from actorflow.ops import control_flow_ops as cfo
from actorflow.ops.tensor_array_ops import TensorArray
from devices.errors import InvalidArgumentError

for _op in ("LoopCond", "ControlTrigger", "_AccStack", "_AccPush", "_AccPop",
            "TensorArrayV3", "TensorArrayGradV3", "TensorArraySizeV3"):
    no_gradient(_op)


def _dense(g: Any) -> Any:
    return convert_to_tensor(g) if isinstance(g, IndexedSlices) else g


def _zeros_for(t: Tensor, like: Tensor | None = None) -> Tensor:
    """Zeros of t's shape: a constant if the static shape is known, else zeros_like(like)."""
    from actorflow.ops import array_ops
    if shapes.is_fully_defined(t._shape):
        return array_ops.zeros(t._shape, dtype=t.dtype)
    return array_ops.zeros_like(like if like is not None else t)


# ------------------------------------------------------------------------------------------
# cond
# ------------------------------------------------------------------------------------------
@register_gradient("Merge")
def _merge_grad(op: Operation, grad: Any, _index_grad: Any = None) -> list[Any]:
    info = cfc._COND_MERGE.get(op)
    if info is None:
        raise InvalidArgumentError(
            f"cannot differentiate Merge '{op.name}': it is not the output of an af.cond "
            f"(a while loop's Merge is differentiated with its loop)")
    if grad is None:
        return [None] * len(op.inputs)
    sw = cfo.switch_op(_dense(grad), info.pred, name="cond_grad")
    c = cfc.current(op.graph)
    if isinstance(c, cfc.WhileContext) and c.forward is not None:
        c.guards.setdefault((id(info), 0), sw.outputs[0])
        c.guards.setdefault((id(info), 1), sw.outputs[1])
    return [sw.outputs[0], sw.outputs[1]]  # inputs: (false branch, true branch)


@register_gradient("Switch")
def _switch_grad(op: Operation, g_false: Any, g_true: Any) -> list[Any]:
    if cfc._STRUCT.get(op) is not None:
        raise InvalidArgumentError(
            f"cannot differentiate Switch '{op.name}' alone: it belongs to a while loop, "
            f"which is differentiated as a whole")
    if g_false is None and g_true is None:
        return [None, None]
    x, pred = op.inputs
    parts = []
    for port, g in ((0, g_false), (1, g_true)):
        if g is None:  # the branch did not use x: zeros, live where that branch was taken
            z = cfo.switch_op(_zeros_for(x), pred, name="cond_zeros").outputs[port]
            parts.append(z)
        else:
            parts.append(_dense(g))
    return [cfo.merge_op(parts, name="cond_grad").outputs[0], None]


for _op in ("Enter", "Exit", "NextIteration"):
    @register_gradient(_op)
    def _loop_part_grad(op: Operation, *grads: Any) -> list[Any]:
        raise InvalidArgumentError(
            f"cannot differentiate {op.type} '{op.name}' alone: it belongs to a while loop, "
            f"which is differentiated as a whole (build loops with af.while_loop; a loop "
            f"imported from a GraphDef or MetaGraph runs but has no gradient: build the model "
            f"in Python and restore its checkpoint to differentiate it)")


# ------------------------------------------------------------------------------------------
# while_loop
# ------------------------------------------------------------------------------------------
def _accumulate_matmul_infer(ins: list[Tensor], attrs: dict[str, Any]) -> list[Any]:
    from actorflow.ops import math_ops
    acc = ins[0]
    (dtype, shape), = math_ops._matmul_infer(ins[1:], attrs)
    if acc.dtype != dtype or (shape is not None and acc._shape is not None
                              and tuple(acc._shape) != tuple(shape)):
        raise InvalidArgumentError(
            f"_AccumulateMatMul: the running sum ({acc.dtype.name}, {shapes.fmt(acc._shape)}) "
            f"must have the product's dtype and shape ({dtype.name}, {shapes.fmt(shape)})")
    return [(dtype, shape if shape is not None else acc._shape)]


define_op("_AccumulateMatMul", infer=_accumulate_matmul_infer)


class _MatMulPart:
    """The MatMul inside an `_AccumulateMatMul`, as `math_ops._matmul_grad` reads an op."""

    def __init__(self, op: Operation):
        self.inputs = op.inputs[1:]
        self.attrs = op.attrs
        self.type = "MatMul"


@register_gradient("_AccumulateMatMul")
def _accumulate_matmul_grad(op: Operation, grad: Any) -> list[Any]:
    from actorflow.ops import math_ops
    return [grad, *math_ops._matmul_grad(_MatMulPart(op), grad)]  # type: ignore[arg-type]


def _accumulate(acc: Tensor, g: Any) -> Tensor:
    """``acc + g``; one `_AccumulateMatMul` when `g` is a 2-D MatMul made for this sum alone
    (the gradient of a loop invariant used once in the body, as W in ``h @ W``)."""
    from actorflow.ops import math_ops
    op = g.op if isinstance(g, Tensor) else None
    if (op is not None and op.type == "MatMul" and acc.dtype == g.dtype
            and acc._shape is not None and g._shape is not None
            and tuple(acc._shape) == tuple(g._shape)):
        ops = op.graph._ops
        start = len(ops) - 1
        while start >= 0 and ops[start] is not op:
            start -= 1
        if start >= 0 and not any(t is g for later in ops[start + 1:] for t in later.inputs):
            return apply_op("_AccumulateMatMul", [acc, *op.inputs], dict(op.attrs),
                            name="accumulate")[0]
    return math_ops.add(acc, _dense(g))


def while_loop_grad(node: Any, out_grads: list[Any], wanted: list[bool]) -> list[Any] | None:
    """Gradients for the inputs of `node` (a gradients.LoopNode) given its Exits' gradients.

    Builds the gradient loop in the current context (see the module doc)."""
    from actorflow.gradients import backprop
    from actorflow.ops import array_ops, math_ops
    w: cfc.WhileContext = node.ctx
    if not w.back_prop:
        return None
    g = get_default_graph()
    outer = cfc.current(g)
    exits = [x.outputs[0] for x in w.exits]
    by_out = {id(t): gr for t, gr in zip(node.outputs, out_grads, strict=True)}
    var_ks = [k for k, t in enumerate(exits) if t.dtype.is_floating]
    exit_grads = [by_out.get(id(exits[k])) for k in var_ks]
    if all(gr is None for gr in exit_grads):
        return None
    # the invariants whose gradient is wanted
    wanted_ids = {id(t) for t, ok in zip(node.inputs, wanted, strict=True) if ok}
    invs = [e for e in w.invariants
            if e.outputs[0].dtype.is_floating and id(e.inputs[0]) in wanted_ids]
    count = cfc.resolve(w.counter()[1], outer)
    inits: list[Tensor] = [count]
    invariants: list[shapes.Shape] = [()]
    for k, gr in zip(var_ks, exit_grads, strict=True):
        t = exits[k]
        if gr is None:
            gr = _zeros_for(t, cfc.resolve(t, outer))
        inits.append(_dense(gr))
        invariants.append(w.merges[k].outputs[0]._shape)
    for e in invs:
        x = e.inputs[0]
        inits.append(_zeros_for(x, cfc.resolve(x, outer) if not shapes.is_fully_defined(
            x._shape) else None))
        invariants.append(x._shape)
    ys_b = [w.body_outputs[k] for k in var_ks]
    xs_b = [w.body_inputs[k] for k in var_ks] + [e.outputs[0] for e in invs]
    nv = len(var_ks)

    def cond_fn(c: Tensor, *rest: Tensor) -> Tensor:
        return math_ops.greater(c, 0)

    def body_fn(c: Tensor, *vals: Tensor) -> list[Tensor]:
        b = cfc.current(g)
        assert isinstance(b, cfc.WhileContext)
        idx = math_ops.subtract(c, 1, name="index")
        b.index = idx
        gv, accs = list(vals[:nv]), list(vals[nv:])
        grads = backprop(ys_b, gv, xs_b, w)
        new_gv = []
        for k in range(nv):
            gk = grads[k]
            new_gv.append(_dense(gk) if gk is not None else array_ops.zeros_like(gv[k]))
        new_acc = []
        for j, acc in enumerate(accs):
            gj = grads[nv + j]
            new_acc.append(acc if gj is None else _accumulate(acc, gj))
        return [idx, *new_gv, *new_acc]

    with name_scope("while") as scope:
        _, outs = cfo.build_loop(cond_fn, body_fn, inits, invariants, w.parallel, scope,
                                 forward=w)
    var_out = {k: outs[1 + j] for j, k in enumerate(var_ks)}
    inv_out = {id(e): outs[1 + nv + j] for j, e in enumerate(invs)}
    result: list[Any] = []
    for t, ok in zip(node.inputs, wanted, strict=True):
        if not ok:
            result.append(None)
            continue
        parts = [var_out[k] for k, e in enumerate(w.enters)
                 if k in var_out and e.inputs[0] is t]
        parts += [inv_out[id(e)] for e in invs if e.inputs[0] is t]
        result.append(parts[0] if len(parts) == 1 else (math_ops.add_n(parts) if parts
                                                         else None))
    return result


# ------------------------------------------------------------------------------------------
# TensorArray
# ------------------------------------------------------------------------------------------
def _grad_array(op: Operation, flow: Tensor, dtype: Any) -> TensorArray:
    ta = TensorArray(dtype, handle=op.inputs[0], flow=flow)
    return ta.grad(cfc.gradient_source(), flow)


@register_gradient("TensorArrayReadV3")
def _ta_read_grad(op: Operation, grad: Any) -> list[Any]:
    handle, index, flow = op.inputs
    g_ta = _grad_array(op, flow, op.attrs["dtype"])
    return [None, None, g_ta.write(index, _dense(grad)).flow]


@register_gradient("TensorArrayWriteV3")
def _ta_write_grad(op: Operation, flow_grad: Any) -> list[Any]:
    handle, index, value, _ = op.inputs
    if flow_grad is None:
        return [None, None, None, None]
    g_ta = _grad_array(op, flow_grad, value.dtype)
    return [None, None, g_ta.read(index), flow_grad]


@register_gradient("TensorArrayStackV3")
def _ta_stack_grad(op: Operation, grad: Any) -> list[Any]:
    handle, flow = op.inputs
    g_ta = _grad_array(op, flow, op.attrs["dtype"])
    return [None, g_ta.unstack(_dense(grad)).flow]


@register_gradient("TensorArrayUnstackV3")
def _ta_unstack_grad(op: Operation, flow_grad: Any) -> list[Any]:
    handle, value, _ = op.inputs
    if flow_grad is None:
        return [None, None, None]
    g_ta = _grad_array(op, flow_grad, value.dtype)
    out = g_ta.stack()
    if value._shape is not None:
        out._shape = value._shape
    return [None, out, flow_grad]
