"""Dynamic control flow (WP §4.4, OSDI §3.4): `cond`, `case`, `while_loop`, and (from
`functional_ops`) `map_fn`, `foldl`, `foldr`, `scan`, built on the executor's primitives.

    r = af.cond(x > 0, lambda: x * 2.0, lambda: -x)
    i, total = af.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, s + i), (0, 0))

A cond is `Switch`es of every value its branches read, on the predicate, and one `Merge` per
output: the untaken branch gets dead values and none of its ops runs. A while loop is, per loop
variable, ``Enter -> Merge -> Switch(LoopCond) -> (Exit | body -> NextIteration -> Merge)``; its
iterations are tagged with frames by the executor and up to `parallel_iterations` of them
overlap. Values the branches and bodies read from outside come in as described in
`control_flow_context`; gradients are in `control_flow_grad`.

Build-time checks: the predicate is a boolean scalar; both branches return the same structure
and dtypes; a loop variable keeps its shape across an iteration unless `shape_invariants`
relaxes it; the body returns the loop variables' structure and dtypes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import (
    Operation,
    Tensor,
    control_dependencies,
    get_default_graph,
    name_scope,
)
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import apply_op, apply_op_op, constant, convert_to_tensor, define_op
from actorflow.ops import control_flow_context as cfc
from actorflow.ops import nest
from actorflow.ops.tensor_array_ops import TensorArray
from devices import dtypes
from devices.errors import InvalidArgumentError


# ------------------------------------------------------------------------------------------
# The primitives
# ------------------------------------------------------------------------------------------
def _switch_infer(ins: list[Tensor], attrs: dict) -> list:
    pred = ins[1]
    if pred.dtype is not dtypes.bool_:
        raise InvalidArgumentError(f"the predicate of a Switch must be bool, got "
                                   f"{pred.dtype.name} ('{pred.name}')")
    return [(ins[0].dtype, ins[0]._shape)] * 2


def _merge_infer(ins: list[Tensor], attrs: dict) -> list:
    dt = ins[0].dtype
    shape = ins[0]._shape
    for t in ins[1:]:
        if t.dtype is not dt:
            raise InvalidArgumentError(f"Merge needs inputs of one dtype, got {dt.name} and "
                                       f"{t.dtype.name} ('{t.name}')")
        shape = _common_shape(shape, t._shape)
    return [(dt, shape), (dtypes.int32, ())]


def _common_shape(a: shapes.Shape, b: shapes.Shape) -> shapes.Shape:
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


def _same(ins: list[Tensor], attrs: dict) -> list:
    return [(ins[0].dtype, ins[0]._shape)]


define_op("Switch", infer=_switch_infer)
define_op("Merge", infer=_merge_infer)
define_op("Enter", infer=_same)
define_op("Exit", infer=_same)
define_op("NextIteration", infer=_same)
define_op("LoopCond", infer=lambda ins, a: [(dtypes.bool_, ())])
define_op("ControlTrigger", infer=lambda ins, a: [])
define_op("_AccStack", infer=lambda ins, a: [(dtypes.resource, ())], stateful=True)
define_op("_AccPush", infer=lambda ins, a: [], stateful=True)
define_op("_AccPop", infer=lambda ins, a: [(dtypes.as_dtype(a["dtype"]), a.get("shape"))],
          stateful=True)


def switch_op(data: Tensor, pred: Tensor, name: str = "Switch") -> Operation:
    """Switch(data, pred): output 1 is `data` if pred else dead; output 0 the other way."""
    return apply_op("Switch", [data, pred], name=name)[0].op


def merge_op(inputs: Sequence[Tensor], name: str = "Merge") -> Operation:
    """Merge: its first live input (output 0) and that input's index (output 1)."""
    return apply_op("Merge", list(inputs), name=name)[0].op


def enter(data: Tensor, frame_name: str, is_constant: bool = False,
          parallel_iterations: int = 10, name: str = "Enter") -> Tensor:
    """Enter `data` into the child frame `frame_name` (every iteration if `is_constant`)."""
    return apply_op("Enter", [data], {"frame_name": frame_name, "is_constant": is_constant,
                                      "parallel_iterations": int(parallel_iterations)},
                    name=name)[0]


def exit(data: Tensor, name: str = "Exit") -> Tensor:  # noqa: A001
    """Exit `data` from its frame into the parent frame."""
    return apply_op("Exit", [data], name=name)[0]


def next_iteration(data: Tensor, name: str = "NextIteration") -> Tensor:
    return apply_op("NextIteration", [data], name=name)[0]


def loop_cond(pred: Tensor, name: str = "LoopCond") -> Tensor:
    return apply_op("LoopCond", [pred], name=name)[0]


def control_trigger(name: str = "ControlTrigger") -> Operation:
    """A NoOp that runs even when its inputs are dead (orders pushes in a loop)."""
    return apply_op_op("ControlTrigger", [], name=name)


def acc_stack(name: str = "acc") -> Tensor:
    return apply_op("_AccStack", [], name=name)[0]


def acc_push(store: Tensor, value: Tensor, index: Tensor, name: str = "acc_push") -> Operation:
    return apply_op_op("_AccPush", [store, value, index], name=name)


def acc_pop(store: Tensor, index: Tensor, dtype: Any, shape: shapes.Shape,
            name: str = "acc_pop") -> Tensor:
    return apply_op("_AccPop", [store, index], {"dtype": dtype, "shape": shape}, name=name)[0]


# ------------------------------------------------------------------------------------------
# cond and case
# ------------------------------------------------------------------------------------------
def cond(pred: Any, true_fn: Callable[[], Any] | None = None,
         false_fn: Callable[[], Any] | None = None, strict: bool = False,
         name: str | None = None, fn1: Any = None, fn2: Any = None) -> Any:
    """`true_fn()` if `pred` else `false_fn()`; only the taken branch's ops run.

    Both functions take no argument and return the same nested structure of tensors (or
    operations), with the same dtypes; the result has that structure, each shape the most
    specific one both branches agree on.
    """
    true_fn = cfc.as_callable(true_fn if true_fn is not None else fn1, "af.cond's true_fn")
    false_fn = cfc.as_callable(false_fn if false_fn is not None else fn2, "af.cond's false_fn")
    g = get_default_graph()
    with name_scope(name, "cond") as scope:
        pred_t = _as_predicate(pred, "af.cond")
        outer = cfc.current(g)
        start = len(g._ops)
        pred_t = cfc.resolve(pred_t, outer)
        with cfc.owned(g, outer):
            pred_t = apply_op("Identity", [pred_t], name="pred_id")[0]  # the anchor
        info = cfc.CondInfo(pred_t, scope)
        branches = [cfc.CondContext(g, outer, info, 0), cfc.CondContext(g, outer, info, 1)]
        info.branches = branches
        for b in branches:
            b.anchor = pred_t.op.name
        results = []
        for ctx, fn in ((branches[1], true_fn), (branches[0], false_fn)):
            with ctx.building():
                res = fn()
            ctx.finish_claimed()
            results.append(res)
        res_t, res_f = results
        for which, res in (("true_fn", res_t), ("false_fn", res_f)):
            if res is None:
                raise InvalidArgumentError(
                    f"af.cond: {which} returned None; return the tensors (or operations) the "
                    f"cond should produce")
        try:
            nest.assert_same_structure(res_t, res_f)
        except ValueError as e:
            raise InvalidArgumentError(
                f"af.cond: true_fn and false_fn return different structures: {e}") from None
        flat_t = [_branch_output(x, branches[1]) for x in nest.flatten(res_t)]
        flat_f = [_branch_output(x, branches[0]) for x in nest.flatten(res_f)]
        merged = []
        for k, (a, b) in enumerate(zip(flat_t, flat_f, strict=True)):
            if a.dtype is not b.dtype:
                raise InvalidArgumentError(
                    f"af.cond: output {k} of true_fn is {a.dtype.name} ('{a.name}') but output "
                    f"{k} of false_fn is {b.dtype.name} ('{b.name}'); both branches must "
                    f"return the same dtypes (use af.cast)")
            with cfc.owned(g, outer):
                m = merge_op([b, a])
            cfc._COND_MERGE[m] = info
            merged.append(m)
        if cfc.anchor_of(outer) is None:  # (inside a loop, the loop's anchor covers it)
            for op in g._ops[start:]:
                cfc.colocate(op, pred_t.op.name)
        out = []
        for m, orig in zip(merged, nest.flatten(res_t), strict=True):
            if isinstance(orig, Operation):
                out.append(m)
            elif isinstance(orig, TensorArray):
                out.append(orig._with_flow(m.outputs[0]))
            else:
                out.append(m.outputs[0])
        return nest.pack_sequence_as(res_t, out)


def _as_predicate(pred: Any, what: str) -> Tensor:
    if isinstance(pred, bool | np.bool_):
        pred = constant(bool(pred), dtypes.bool_, name="pred")
    t = convert_to_tensor(pred)
    if t.dtype is not dtypes.bool_:
        raise InvalidArgumentError(
            f"{what} needs a boolean predicate, got {t.dtype.name} tensor '{t.name}'; compare "
            f"it (e.g. x > 0) or af.cast it to af.bool")
    if t._shape is not None and len(t._shape) != 0:
        raise InvalidArgumentError(
            f"{what} needs a scalar predicate, got '{t.name}' of shape {shapes.fmt(t._shape)}; "
            f"reduce it (af.reduce_all / af.reduce_any) or use af.where for an element-wise "
            f"choice")
    return t


def _branch_output(x: Any, ctx: cfc.CondContext) -> Tensor:
    """A branch's result as a tensor that is live only where the branch is taken."""
    g = ctx.graph
    if isinstance(x, Operation):
        with cfc.owned(g, ctx, scope=ctx.scope):
            with control_dependencies([x]):
                return apply_op("Identity", [ctx.pivot_op().inputs[0]], name="op_output")[0]
    if isinstance(x, TensorArray):
        x = x.flow
    if isinstance(x, IndexedSlices):
        x = convert_to_tensor(x)
    t = convert_to_tensor(x)
    t = cfc.resolve(t, ctx)
    if not cfc.pivoted(t, ctx):
        with cfc.owned(g, ctx, scope=ctx.scope):
            with control_dependencies([ctx.pivot_op()]):
                t = apply_op("Identity", [t], name="output")[0]
    return t


def case(pred_fn_pairs: Any, default: Callable[[], Any] | None = None,
         exclusive: bool = False, strict: bool = False, name: str = "case") -> Any:
    """The result of the first `fn` whose `pred` is true (in order), else of `default`.

    `pred_fn_pairs` is a list of (boolean scalar, function) pairs or a dict; without a
    default, the last pair's function is the default. Only the chosen function's ops run.
    """
    pairs = list(pred_fn_pairs.items()) if isinstance(pred_fn_pairs, dict) else \
        list(pred_fn_pairs)
    if not pairs:
        if default is None:
            raise InvalidArgumentError("af.case needs at least one (pred, fn) pair or a default")
        return default()
    for k, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InvalidArgumentError(f"af.case: entry {k} is not a (pred, fn) pair")
        cfc.as_callable(pair[1], f"af.case's function {k}")
    if default is None:
        *pairs, (_, default) = pairs
        if not pairs:
            return default()
    default = cfc.as_callable(default, "af.case's default")
    with name_scope(name, "case"):
        preds = [_as_predicate(p, "af.case") for p, _ in pairs]

        def chain(k: int) -> Any:
            if k == len(pairs):
                return default()
            return cond(preds[k], pairs[k][1], lambda: chain(k + 1), name=f"case_{k}")
        return chain(0)


# ------------------------------------------------------------------------------------------
# while_loop
# ------------------------------------------------------------------------------------------
def while_loop(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any,
               shape_invariants: Any = None, parallel_iterations: int = 10,
               back_prop: bool = True, swap_memory: bool = False, name: str | None = None,
               maximum_iterations: Any = None, return_same_structure: bool = False) -> Any:
    """Repeat ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)``; return loop_vars.

    `loop_vars` is a nested structure (tuples, lists, dicts, namedtuples) of tensors,
    values and TensorArrays; `body` returns the same structure with the same dtypes, and the
    same static shapes unless `shape_invariants` (same structure, shapes with None where a
    size changes) allows more. Up to `parallel_iterations` iterations run at once.
    `maximum_iterations` stops the loop after that many iterations. With `back_prop=False`
    no gradient flows through the loop. As in TF1 a one-element list of loop variables gives
    back its element unless `return_same_structure`.
    """
    cond = cfc.as_callable(cond, "af.while_loop's cond")
    body = cfc.as_callable(body, "af.while_loop's body")
    if int(parallel_iterations) < 1:
        raise InvalidArgumentError(
            f"af.while_loop: parallel_iterations must be at least 1, got {parallel_iterations}")
    if loop_vars is None or (isinstance(loop_vars, list | tuple) and not loop_vars):
        raise InvalidArgumentError("af.while_loop needs at least one loop variable")
    with name_scope(name, "while") as scope:
        structure = loop_vars
        flat = nest.flatten(loop_vars)
        if shape_invariants is not None:
            try:
                given = nest.flatten_up_to(loop_vars, shape_invariants)
            except ValueError as e:
                raise InvalidArgumentError(
                    f"af.while_loop: shape_invariants must have the structure of loop_vars: "
                    f"{e}") from None
            invs = [shapes.as_shape(_shape_of(s)) for s in given]
        else:
            invs = None
        tensors = [_loop_var_tensor(v, k) for k, v in enumerate(flat)]
        counted = maximum_iterations is not None
        if counted:
            limit = convert_to_tensor(maximum_iterations, dtype=dtypes.int32, name="max_iter")
            tensors = [constant(0, dtypes.int32, name="iteration"), *tensors]
            if invs is not None:
                invs = [(), *invs]

        def rebuild(values: Sequence[Tensor]) -> Any:
            leaves = [v._with_flow(t) if isinstance(v, TensorArray) else t
                      for v, t in zip(flat, values, strict=True)]
            return nest.pack_sequence_as(structure, leaves)

        def cond_flat(*vals: Tensor) -> Tensor:
            user = vals[1:] if counted else vals
            c = _as_predicate(_call(cond, rebuild(user)), "af.while_loop's cond")
            if counted:
                from actorflow.ops import math_ops
                c = math_ops.logical_and(math_ops.less(vals[0], limit), c)
            return c

        def body_flat(*vals: Tensor) -> list[Tensor]:
            user = vals[1:] if counted else vals
            res = _call(body, rebuild(user))
            if isinstance(structure, list | tuple) and len(structure) == 1 and \
                    _matches(structure[0], res) and not _matches(structure, res):
                res = type(structure)([res])  # [x] in, x out: TF1 allows it
            try:
                nest.assert_same_structure(structure, res)
            except ValueError as e:
                raise InvalidArgumentError(
                    f"af.while_loop: the body must return the structure of loop_vars: {e}"
                    ) from None
            out = [_loop_var_tensor(v, k) for k, v in enumerate(nest.flatten(res))]
            if counted:
                from actorflow.ops import math_ops
                out = [math_ops.add(vals[0], 1), *out]
            return out

        w, exits = build_loop(cond_flat, body_flat, tensors, invs, int(parallel_iterations),
                              scope, names=(["iteration"] if counted else []) +
                              [f"{k}" for k in range(len(flat))])
        w.back_prop = bool(back_prop)
        if counted:
            exits = exits[1:]
        result = rebuild(exits)
        if not return_same_structure:
            if isinstance(structure, list | tuple) and len(structure) == 1:
                return result[0]  # [x] in, x out (TF1)
            if len(flat) == 1:
                return nest.flatten(result)[0]
        return result


def _matches(a: Any, b: Any) -> bool:
    try:
        nest.assert_same_structure(a, b)
    except ValueError:
        return False
    return True


def _shape_of(s: Any) -> Any:
    if hasattr(s, "dims"):
        return s.dims
    return s


def _call(fn: Callable[..., Any], args: Any) -> Any:
    if isinstance(args, tuple) and not hasattr(args, "_fields"):
        return fn(*args)
    if isinstance(args, list):
        return fn(*args)
    return fn(args)


def _loop_var_tensor(v: Any, k: int) -> Tensor:
    if isinstance(v, TensorArray):
        return v.flow
    if isinstance(v, IndexedSlices):
        raise InvalidArgumentError(
            f"af.while_loop: loop variable {k} is an IndexedSlices; densify it first")
    if isinstance(v, Operation):
        raise InvalidArgumentError(
            f"af.while_loop: loop variable {k} is an operation ('{v.name}'), not a value")
    try:
        return convert_to_tensor(v)
    except InvalidArgumentError as e:
        raise InvalidArgumentError(f"af.while_loop: loop variable {k}: {e.message}") from None


def build_loop(cond_fn: Callable[..., Tensor], body_fn: Callable[..., Sequence[Tensor]],
               init: Sequence[Tensor], invariants: Sequence[shapes.Shape] | None,
               parallel_iterations: int, scope: str, names: Sequence[str] | None = None,
               forward: cfc.WhileContext | None = None,
               ) -> tuple[cfc.WhileContext, list[Tensor]]:
    """The loop itself, on flat lists of tensors; returns its context and its Exit tensors.

    `forward` makes it the gradient loop of that loop (see control_flow_context)."""
    g = get_default_graph()
    outer = cfc.current(g)
    start = len(g._ops)
    w = cfc.WhileContext(g, outer, scope, parallel_iterations, forward)
    names = list(names) if names is not None else [str(k) for k in range(len(init))]
    given = invariants is not None
    invs = list(invariants) if invariants is not None else [t._shape for t in init]
    inits = []
    for k, t in enumerate(init):
        t = cfc.resolve(t, outer)
        if not shapes.is_compatible(invs[k], t._shape) or not _fits(invs[k], t._shape):
            raise InvalidArgumentError(
                f"af.while_loop: loop variable {names[k]} has shape {shapes.fmt(t._shape)}, "
                f"which its shape invariant {shapes.fmt(invs[k])} does not allow")
        inits.append(t)
    # Enters run in the outer context, after whatever the caller's control_dependencies name
    enters = []
    for k, t in enumerate(inits):
        deps = [outer.pivot_op()] if outer is not None and not cfc.pivoted(t, outer) else []
        with name_scope(scope):
            with control_dependencies(deps):
                e = enter(t, w.frame_name, False, parallel_iterations, name="Enter")
        cfc.register(e.op, outer, struct=w, out=(w,))
        e._shape = invs[k]
        enters.append(e)
    w.enters = [e.op for e in enters]
    with cfc.owned(g, w, struct=w, scope=scope):
        merges = [merge_op([e, e], name="Merge") for e in enters]
    for m, s in zip(merges, invs, strict=True):
        m.outputs[0]._shape = s
    w.merges = merges
    w.phase = "pred"
    with w.building():
        pred = cond_fn(*[m.outputs[0] for m in merges])
    w.finish_claimed()
    pred = cfc.resolve(pred, w)
    with cfc.owned(g, w, struct=w, scope=scope):
        if not cfc.pivoted(pred, w):
            with control_dependencies([w.pivot_op()]):
                pred = apply_op("Identity", [pred], name="pred")[0]
        lc = loop_cond(pred)
        switches = [switch_op(m.outputs[0], lc) for m in merges]
    w.loop_cond = lc
    w.switches = switches
    if cfc.anchor_of(outer) is None:
        w.anchor = lc.op.name
    exits = []
    for sw in switches:
        with cfc.owned(g, w, struct=w, scope=scope):
            x = exit(sw.outputs[0])
        cfc._OUT_CTX[x.op] = (outer if outer is not None else cfc._TOP,)
        exits.append(x)
    w.exits = [x.op for x in exits]
    w.phase = "body"
    w.body_inputs = [sw.outputs[1] for sw in switches]
    with w.building():
        outs = list(body_fn(*w.body_inputs))
    w.finish_claimed()
    if len(outs) != len(init):
        raise InvalidArgumentError(
            f"internal: the loop body returned {len(outs)} values for {len(init)} loop "
            f"variables (please report)")
    final = []
    for k, (o, e) in enumerate(zip(outs, enters, strict=True)):
        o = convert_to_tensor(o)
        if o.dtype is not e.dtype:
            raise InvalidArgumentError(
                f"af.while_loop: loop variable {names[k]} enters the loop as {e.dtype.name} "
                f"but the body returns {o.dtype.name} ('{o.name}'); cast it (af.cast) so the "
                f"dtype stays the same")
        cfc.check_shape_invariant(names[k], invs[k], o._shape, given)
        o = cfc.resolve(o, w)
        if not cfc.pivoted(o, w):
            with cfc.owned(g, w, scope=scope):
                with control_dependencies([w.pivot_op()]):
                    o = apply_op("Identity", [o], name="body_output")[0]
        final.append(o)
    w.body_outputs = final
    with cfc.owned(g, w, struct=w, scope=scope):
        for m, e, o in zip(merges, enters, final, strict=True):
            n = next_iteration(o)
            cfc.set_inputs(m, [e, n])
    w.phase = "done"
    for x in exits:
        x._shape = x.op.inputs[0]._shape
    cfc.colocate_range(g, start, w)
    return w, exits


def _fits(inv: shapes.Shape, s: shapes.Shape) -> bool:
    if inv is None:
        return True
    if s is None:
        return False
    return len(inv) == len(s) and all(a is None or a == b for a, b in zip(inv, s, strict=True))


from actorflow.ops import control_flow_grad  # noqa: E402,F401  (registers the gradients)
from actorflow.ops.functional_ops import foldl, foldr, map_fn, scan  # noqa: E402

__all__ = ["cond", "case", "while_loop", "map_fn", "foldl", "foldr", "scan", "TensorArray"]
