"""Symbolic differentiation (WP §4.1, OSDI §4.1): `gradients(ys, xs)` adds the backward graph.

Design
------
1. Find the nodes between `xs` and `ys`: reachable forward from the xs and backward from the
   ys (the only nodes whose gradient matters). A node is an op, or a whole while loop: every
   op of a loop (its Enters, Exits, body, nested loops) folds into one `LoopNode` whose inputs
   are what its Enters read and whose outputs are its Exits (`_nodes`).
2. Count, for each such node, how many of its consumers inside that set still owe it a
   gradient (`pending`).
3. Walk backwards from the ys (seeded with `grad_ys`, ones by default) in a ready queue: when
   all of a node's consumers have reported, sum the partial gradients of each output (all
   paths count), call its gradient function, and hand each input its part. A LoopNode's
   gradient is a gradient while loop (`control_flow_grad.while_loop_grad`), whose body is
   this same walk (`backprop`) over the forward loop's body.
4. Return the summed gradient of each x, or None where x does not reach any y.

Partial gradients are summed with add_n; sparse ones (`IndexedSlices`, from gather) stay sparse
when every path is sparse, so optimizers can apply them row by row. `stop_gradient` (and ops
registered with `no_gradient`) cut the walk. `op_def.register_gradient` extends it; a graph's
`gradient_override_map` replaces one op's gradient. A cond needs nothing special: the
gradients of its Merge and Switch ops are a Switch and a Merge (`control_flow_grad`).

    loss = af.reduce_mean(af.square(af.matmul(x, w) - y))
    dw, = af.gradients(loss, [w])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import convert_to_tensor, gradient_function
from actorflow.ops import compare_ops
from actorflow.ops import control_flow_context as cfc
from devices.errors import InvalidArgumentError

# ops whose gradient function takes None for outputs without a gradient (no zeros made)
_TAKES_NONE = frozenset({"Switch", "Merge"})


def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients",
              stop_gradients: Sequence[Any] | None = None) -> list[Any]:
    """The symbolic derivative of sum(ys) with respect to each of xs (None if unconnected)."""
    ys = [convert_to_tensor(y) for y in _as_list(ys)]
    xs_list = [convert_to_tensor(x) for x in _as_list(xs)]
    if grad_ys is None:
        grad_ys = [None] * len(ys)
    else:
        grad_ys = _as_list(grad_ys)
        if len(grad_ys) != len(ys):
            raise InvalidArgumentError(f"gradients: {len(ys)} ys but {len(grad_ys)} grad_ys")
    stops = {id(convert_to_tensor(s).op) for s in (stop_gradients or [])}
    graph = ys[0].graph
    xs_list = [_unfloated(x) for x in xs_list]
    with name_scope(name) as scope, cfc.building_gradients(scope):
        from actorflow.ops import array_ops
        seeds = []
        for y, gy in zip(ys, grad_ys, strict=True):
            if gy is None:
                if not y.dtype.is_floating:
                    raise InvalidArgumentError(
                        f"gradients of non-float tensor '{y.name}' ({y.dtype.name}) are not "
                        f"defined; cast it to a float type first")
                gy = array_ops.ones_like(y)
            else:
                gy = convert_to_tensor(gy, dtype=y.dtype)
            seeds.append(gy)
        scope_ctx = cfc.while_of(cfc.current(graph))
        return backprop(ys, seeds, xs_list, scope_ctx, stops)


def _unfloated(x: Tensor) -> Tensor:
    """`x`, or, for a constant that floats into a while loop or a cond branch (used there
    without an Enter or a Switch: see control_flow_context), an Identity of it at the top
    level that every consumer of `x` now reads, brought into each context the ordinary way:
    the gradient with respect to it then flows out of loops (as an invariant's running sum)
    and out of untaken branches (as zeros), and is the gradient with respect to `x`."""
    if not cfc.floating(x):
        return x
    graph = x.graph
    users = [op for op in graph._ops if any(t is x for t in op.inputs)]
    if all(cfc.ctx_of_op(op) is None for op in users):
        return x
    from actorflow.ops import core_ops
    with cfc.owned(graph, None), name_scope(None):
        xi = core_ops.identity(x, name=x.op.name + "_differentiated")
    for op in users:
        c = cfc.ctx_of_op(op)
        v = xi if c is None else cfc.resolve(xi, c)
        cfc.set_inputs(op, [v if t is x else t for t in op.inputs])
    return xi


class LoopNode:
    """A whole while loop as one node of the walk: `inputs` are the tensors its Enters read,
    `outputs` its Exits' tensors."""

    def __init__(self, ctx: cfc.WhileContext):
        self.ctx = ctx
        self.name = ctx.frame_name
        self.members: list[Operation] = []
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = [x.outputs[0] for x in ctx.exits]
        counter = ctx._counter
        if counter is not None:
            self.outputs.append(counter[1])

    def __repr__(self) -> str:
        return f"<LoopNode {self.name}>"


def _nodes(graph: Any, scope: cfc.WhileContext | None) -> dict[Operation, Any]:
    """op -> its node (the op, or the LoopNode of the outermost loop below `scope` holding
    it), for the ops inside `scope` (every op when scope is None) that are not part of
    scope's own loop machinery."""
    node_of: dict[Operation, Any] = {}
    loops: dict[int, LoopNode] = {}
    for op in graph._ops:
        if scope is not None and cfc._STRUCT.get(op) is scope:
            continue
        c = cfc.member_ctx(op)
        top = None
        while c is not scope:
            if c is None:
                break
            if isinstance(c, cfc.WhileContext):
                top = c
            c = c.outer
        if c is not scope:
            continue  # outside the scope
        if top is None:
            node_of[op] = op
            continue
        ln = loops.get(id(top))
        if ln is None:
            ln = loops[id(top)] = LoopNode(top)
        ln.members.append(op)
        node_of[op] = ln
    for ln in loops.values():
        seen: set[int] = set()
        for op in ln.members:
            for t in op.inputs:
                if node_of.get(t.op) is not ln and id(t) not in seen:
                    seen.add(id(t))
                    ln.inputs.append(t)
    return node_of


def backprop(ys: Sequence[Tensor], grad_ys: Sequence[Any], xs: Sequence[Tensor],
             scope: cfc.WhileContext | None, stops: set[int] | None = None) -> list[Any]:
    """The walk of the module doc over the nodes inside `scope` (a forward loop, for the body
    of its gradient loop; None for the whole graph). Returns one gradient (or None) per x."""
    with compare_ops.wrt(xs):
        return _backprop(ys, grad_ys, xs, scope, stops)


def _backprop(ys: Sequence[Tensor], grad_ys: Sequence[Any], xs: Sequence[Tensor],
              scope: cfc.WhileContext | None, stops: set[int] | None) -> list[Any]:
    stops = stops or set()
    graph = ys[0].graph if ys else xs[0].graph
    node_of = _nodes(graph, scope)
    consumers: dict[int, list[Any]] = {}    # id(tensor) -> consuming nodes
    for op, n in node_of.items():
        for t in op.inputs:
            if node_of.get(t.op) is not n:
                consumers.setdefault(id(t), []).append(n)

    def outputs(n: Any) -> Sequence[Tensor]:
        return n.outputs

    # 1. nodes between xs and ys
    forward: set[int] = set()
    queue: deque[Any] = deque()
    for x in xs:
        n = node_of.get(x.op)
        if n is not None:
            queue.append(n)
        queue.extend(consumers.get(id(x), ()))
    while queue:
        n = queue.popleft()
        if id(n) in forward:
            continue
        forward.add(id(n))
        for t in outputs(n):
            queue.extend(consumers.get(id(t), ()))
    between: set[int] = set()
    members: dict[int, Any] = {}
    queue = deque(node_of[y.op] for y in ys if y.op in node_of)
    while queue:
        n = queue.popleft()
        if id(n) in between or id(n) not in forward:
            continue
        between.add(id(n))
        members[id(n)] = n
        if _stopped(n, stops):
            continue
        queue.extend(node_of[t.op] for t in n.inputs if t.op in node_of)

    # 2. pending consumers per node
    pending: dict[int, int] = {}
    for n in members.values():
        if not _stopped(n, stops):
            for t in n.inputs:
                p = node_of.get(t.op)
                if p is not None and id(p) in between:
                    pending[id(p)] = pending.get(id(p), 0) + 1

    xs_ids = {id(x) for x in xs}
    grads: dict[Tensor, list[Any]] = {}
    for y, gy in zip(ys, grad_ys, strict=True):
        if gy is not None:
            grads.setdefault(y, []).append(gy)

    # 3. the backward walk
    from actorflow.ops import array_ops
    ready = deque(_unique(node_of[y.op] for y in ys if y.op in node_of
                          and pending.get(id(node_of[y.op]), 0) == 0))
    done: set[int] = set()
    while ready:
        n = ready.popleft()
        if id(n) in done:
            continue
        done.add(id(n))
        if id(n) not in between:
            continue
        out_grads = [_aggregate(grads.get(t)) for t in outputs(n)]
        wanted = [(p := node_of.get(t.op)) is not None and id(p) in between or id(t) in xs_ids
                  for t in n.inputs]
        if any(g is not None for g in out_grads) and not _stopped(n, stops) and any(wanted):
            if isinstance(n, LoopNode):
                from actorflow.ops import control_flow_grad
                with name_scope(n.name + "_grad"):
                    in_grads = control_flow_grad.while_loop_grad(n, out_grads, wanted)
            else:
                in_grads = _op_grad(n, out_grads, array_ops)
            if in_grads is not None:
                for t, g, w in zip(n.inputs, in_grads, wanted, strict=True):
                    if g is None or not w:
                        continue
                    if isinstance(g, Tensor) and t.dtype.is_floating and g.dtype is not t.dtype:
                        raise InvalidArgumentError(
                            f"gradient for input '{t.name}' of '{n.name}' has dtype "
                            f"{g.dtype.name}, expected {t.dtype.name}")
                    grads.setdefault(t, []).append(g)
        if _stopped(n, stops):
            continue
        for t in n.inputs:
            p = node_of.get(t.op)
            if p is not None and id(p) in pending:
                pending[id(p)] -= 1
                if pending[id(p)] == 0:
                    ready.append(p)

    return [_aggregate(grads.get(x)) for x in xs]


def _stopped(n: Any, stops: set[int]) -> bool:
    return id(n) in stops


def _op_grad(op: Operation, out_grads: list[Any], array_ops: Any) -> list[Any] | None:
    if not op.inputs:
        return None
    fn = gradient_function(op)
    if fn is None:
        return None
    if len(op.outputs) > 1 and op.type not in _TAKES_NONE:
        out_grads = [g if g is not None else array_ops.zeros_like(t)
                     for g, t in zip(out_grads, op.outputs, strict=True)]
    anchor = _cond_anchor(op)
    start = len(op.graph._ops)
    with name_scope(op.name + "_grad"):
        in_grads = list(fn(op, *out_grads))
    if anchor is not None:  # a cond's gradient stays on the cond's device, dead values too
        for new in op.graph._ops[start:]:
            cfc.colocate(new, anchor)
    if len(in_grads) != len(op.inputs):
        raise InvalidArgumentError(
            f"the gradient function of '{op.type}' returned {len(in_grads)} "
            f"gradients for {len(op.inputs)} inputs (op '{op.name}')")
    return in_grads


def _cond_anchor(op: Operation) -> str | None:
    """The anchor of the top-level cond `op` belongs to, if gradients are built at the top
    level (a gradient loop keeps all its ops on one device anyway)."""
    if cfc.current(op.graph) is not None:
        return None
    info = cfc._COND_MERGE.get(op) or cfc._COND_SWITCH.get(op)
    if info is not None:
        return info.pred.op.name
    c = cfc.member_ctx(op)
    return cfc.anchor_of(c) if isinstance(c, cfc.CondContext) else None


def _aggregate(parts: list[Any] | None) -> Any:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    from actorflow.ops import array_ops, math_ops
    if all(isinstance(p, IndexedSlices) for p in parts):
        return IndexedSlices(array_ops.concat([p.values for p in parts], 0),
                             array_ops.concat([p.indices for p in parts], 0),
                             parts[0].dense_shape)
    dense = [convert_to_tensor(p) if isinstance(p, IndexedSlices) else p for p in parts]
    return math_ops.add_n(dense)


def _as_list(v: Any) -> list[Any]:
    if isinstance(v, list | tuple):
        return list(v)
    return [v]


def _unique(nodes: Any) -> list[Any]:
    seen: set[int] = set()
    out = []
    for n in nodes:
        if id(n) not in seen:
            seen.add(id(n))
            out.append(n)
    return out
