"""Symbolic differentiation (WP §4.1, OSDI §4.1): `gradients(ys, xs)` adds the backward graph.

Design
------
1. Find the ops between `xs` and `ys`: reachable forward from the xs' ops and backward from
   the ys' ops (the only ops whose gradient matters).
2. Count, for each such op, how many of its consumers inside that set still owe it a
   gradient (`pending`).
3. Walk backwards from the ys (seeded with `grad_ys`, ones by default) in a ready queue: when
   all of an op's consumers have reported, sum the partial gradients of each output (all paths
   count), call the op's registered gradient function, and hand each input its part.
4. Return the summed gradient of each x, or None where x does not reach any y.

Partial gradients are summed with add_n; sparse ones (`IndexedSlices`, from gather) stay sparse
when every path is sparse, so optimizers can apply them row by row. `stop_gradient` (and ops
registered with `no_gradient`) cut the walk. `op_def.register_gradient` extends it; a graph's
`gradient_override_map` replaces one op's gradient.

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
from devices.errors import InvalidArgumentError


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
    consumers: dict[int, list[Operation]] = {}
    for op in graph._ops:
        for t in op.inputs:
            consumers.setdefault(id(t.op), []).append(op)

    # 1. ops between xs and ys
    forward: set[int] = set()
    queue = deque(x.op for x in xs_list)
    while queue:
        op = queue.popleft()
        if id(op) in forward:
            continue
        forward.add(id(op))
        queue.extend(consumers.get(id(op), ()))
    between: set[int] = set()
    queue = deque(y.op for y in ys)
    while queue:
        op = queue.popleft()
        if id(op) in between or id(op) not in forward:
            continue
        between.add(id(op))
        if id(op) in stops:
            continue
        queue.extend(t.op for t in op.inputs)

    # 2. pending consumers per op
    pending: dict[int, int] = {}
    for op in graph._ops:
        if id(op) in between and id(op) not in stops:
            for t in op.inputs:
                if id(t.op) in between:
                    pending[id(t.op)] = pending.get(id(t.op), 0) + 1

    grads: dict[Tensor, list[Any]] = {}
    with name_scope(name):
        from actorflow.ops import array_ops
        for y, gy in zip(ys, grad_ys, strict=True):
            if gy is None:
                if not y.dtype.is_floating:
                    raise InvalidArgumentError(
                        f"gradients of non-float tensor '{y.name}' ({y.dtype.name}) are not "
                        f"defined; cast it to a float type first")
                gy = array_ops.ones_like(y)
            else:
                gy = convert_to_tensor(gy, dtype=y.dtype)
            grads.setdefault(y, []).append(gy)

        # 3. the backward walk
        ready = deque(op for op in _unique(y.op for y in ys) if pending.get(id(op), 0) == 0)
        done: set[int] = set()
        while ready:
            op = ready.popleft()
            if id(op) in done:
                continue
            done.add(id(op))
            if id(op) not in between:
                continue
            out_grads = [_aggregate(grads.get(t)) for t in op.outputs]
            has_grad = any(g is not None for g in out_grads)
            if has_grad and id(op) not in stops and op.inputs:
                fn = gradient_function(op)
                if fn is not None:
                    if len(op.outputs) > 1:
                        out_grads = [g if g is not None else array_ops.zeros_like(t)
                                     for g, t in zip(out_grads, op.outputs, strict=True)]
                    with name_scope(op.name + "_grad"):
                        in_grads = fn(op, *out_grads)
                    in_grads = list(in_grads)
                    if len(in_grads) != len(op.inputs):
                        raise InvalidArgumentError(
                            f"the gradient function of '{op.type}' returned {len(in_grads)} "
                            f"gradients for {len(op.inputs)} inputs (op '{op.name}')")
                    for t, g in zip(op.inputs, in_grads, strict=True):
                        if g is not None and id(t.op) in between:
                            if isinstance(g, Tensor) and t.dtype.is_floating and \
                                    g.dtype is not t.dtype:
                                raise InvalidArgumentError(
                                    f"gradient for input '{t.name}' of '{op.name}' has dtype "
                                    f"{g.dtype.name}, expected {t.dtype.name}")
                            grads.setdefault(t, []).append(g)
            if id(op) in stops:
                continue
            for t in op.inputs:
                key = id(t.op)
                if key in pending:
                    pending[key] -= 1
                    if pending[key] == 0:
                        ready.append(t.op)

        return [_aggregate(grads.get(x)) for x in xs_list]


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


def _unique(ops: Any) -> list[Operation]:
    seen: set[int] = set()
    out = []
    for op in ops:
        if id(op) not in seen:
            seen.add(id(op))
            out.append(op)
    return out
