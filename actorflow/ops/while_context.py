"""The context of one `af.while_loop` while it is built (`WhileContext`), and the check of a
loop variable's shape against its invariant.

A WhileContext is a `control_flow_context.Context` (claims, captures, pivots: see that
module's design) plus what a loop adds: its frame name and parallel iterations, the
Enter/Merge/Switch/Exit/NextIteration ops of its loop variables, an iteration counter
(`forward_index`), and, for a gradient loop (`forward` set), how forward values reach it:
`real_value` saves a forward value per iteration in the forward loop (`_AccPush`, keyed by the
counter) and pops it back at the same index in the gradient loop, guarded by the gradient of
the cond branch it came from (`_guard_for`).
"""

from __future__ import annotations

from actorflow import shapes
from actorflow.graph import Graph, Operation, Tensor, control_dependencies
from actorflow.op_def import apply_op, constant
from actorflow.ops.control_flow_context import (
    _OUT_CTX,
    _STRUCT,
    CondContext,
    Context,
    _identity,
    ctx_of,
    owned,
    resolve,
    run_ctx,
    set_inputs,
    while_of,
)
from devices import dtypes
from devices.errors import InvalidArgumentError


class WhileContext(Context):
    """One af.while_loop (or a gradient loop: `forward` is the loop it differentiates)."""

    is_while = True

    def __init__(self, graph: Graph, outer: Context | None, scope: str, parallel: int,
                 forward: WhileContext | None = None):
        super().__init__(graph, outer, scope)
        self.frame_name = scope[:-1]
        self.parallel = parallel
        self.forward = forward
        self.back_prop = True  # False: gradients do not flow through this loop
        self.phase = "pred"
        self.enters: list[Operation] = []     # loop variables' Enters
        self.merges: list[Operation] = []
        self.switches: list[Operation] = []
        self.exits: list[Operation] = []
        self.body_inputs: list[Tensor] = []
        self.body_outputs: list[Tensor] = []
        self.loop_cond: Tensor | None = None
        self.invariants: list[Operation] = []  # constant Enters made by capture
        self._pivot_body: Operation | None = None
        self._control_enters: dict[Operation, Operation] = {}
        # gradients: the iteration counter, saved values, and (gradient loops) the index
        self._counter: tuple[Tensor, Tensor, Operation] | None = None  # index, count, sync
        self._saved: dict[Tensor, Tensor] = {}
        self.index: Tensor | None = None      # gradient loop: the forward iteration index
        self._real: dict[Tensor, Tensor] = {}

    def describe(self) -> str:
        kind = "gradient while loop" if self.forward is not None else "while loop"
        return f"{kind} '{self.frame_name}'"

    # -- entering values ------------------------------------------------------------------
    def capture(self, t: Tensor) -> Tensor:
        hit = self._captured.get(t)
        if hit is not None:
            return hit
        v = resolve(t, self.outer)
        from actorflow.ops.control_flow_ops import enter
        with owned(self.graph, self.outer, struct=self, scope=self.scope):
            e = enter(v, self.frame_name, is_constant=True, parallel_iterations=self.parallel)
        _OUT_CTX[e.op] = (self,)
        self.invariants.append(e.op)
        self._captured[t] = e
        return e

    def capture_control(self, dep: Operation) -> Operation:
        hit = self._control_enters.get(dep)
        if hit is not None:
            return hit
        outer_frame = while_of(self.outer)
        outer_dep = dep
        if while_of(run_ctx(dep)) is not outer_frame:
            assert outer_frame is not None
            outer_dep = outer_frame.capture_control(dep)
        from actorflow.ops.control_flow_ops import enter
        with owned(self.graph, self.outer, struct=self, scope=self.scope):
            with control_dependencies([outer_dep]):
                e = enter(constant(0, dtypes.int32, name="control_value"), self.frame_name,
                          is_constant=True, parallel_iterations=self.parallel,
                          name="control_enter")
        _OUT_CTX[e.op] = (self,)
        self._control_enters[dep] = e.op
        return e.op

    def pivot_op(self) -> Operation:
        if self.phase == "pred":
            return self.merges[0]
        if self._pivot_body is None:
            with owned(self.graph, self, struct=self, scope=self.scope):
                self._pivot_body = _identity(self.switches[0].outputs[1], "pivot_body").op
        return self._pivot_body

    # -- gradients: the counter and saved values -------------------------------------------
    def counter(self) -> tuple[Tensor, Tensor, Operation]:
        """(index in the body, iteration count after the loop, the sync ControlTrigger that
        every push of an iteration precedes), built on first use."""
        if self._counter is None:
            from actorflow.ops import control_flow_ops as cfo
            g = self.graph
            with owned(g, self.outer, struct=self, scope=self.scope):
                init = constant(0, dtypes.int32, name="f_count_init")
                deps = [self.outer.pivot_op()] if self.outer is not None else []
                with control_dependencies(deps):
                    e = cfo.enter(init, self.frame_name, is_constant=False,
                                  parallel_iterations=self.parallel, name="f_count")
            _OUT_CTX[e.op] = (self,)
            with owned(g, self, struct=self, scope=self.scope):
                m = cfo.merge_op([e, e], name="f_count")
                sw = cfo.switch_op(m.outputs[0], self.loop_cond, name="f_count")
                one = constant(1, dtypes.int32, name="one")
                index = _identity(sw.outputs[1], "f_index")
                with control_dependencies([index.op]):
                    sync_op = cfo.control_trigger(name="f_sync")
                with control_dependencies([sync_op]):
                    nxt_val = apply_op("Add", [index, one], name="f_next")[0]
                nxt = cfo.next_iteration(nxt_val, name="f_count")
                set_inputs(m, [e, nxt])
                x = cfo.exit(sw.outputs[0], name="f_count")
            _OUT_CTX[x.op] = (self.outer,)
            self._counter = (index, x, sync_op)
        return self._counter

    def save(self, t: Tensor) -> Tensor:
        """The store (a per-step resource, valid in the outer context) into which every
        iteration pushes its value of `t` (a tensor of this loop or of a cond in it)."""
        hit = self._saved.get(t)
        if hit is not None:
            return hit
        from actorflow.ops import control_flow_ops as cfo
        index, _, sync_op = self.counter()
        g = self.graph
        with owned(g, self.outer, process=True, scope=self.scope):
            store = cfo.acc_stack(name="f_acc")
        tc = ctx_of(t)
        with owned(g, tc, struct=self, process=True, scope=self.scope):
            push = cfo.acc_push(store, t, index)
        sync_op._add_control_inputs([push])
        self._saved[t] = store
        return store

    def real_value(self, t: Tensor) -> Tensor:
        """Gradient loop: the value `t` of the forward loop had in the iteration this one
        differentiates (valid in this loop)."""
        hit = self._real.get(t)
        if hit is not None:
            return hit
        fwd = self.forward
        assert fwd is not None and self.index is not None
        tc = ctx_of(t)
        if while_of(tc) is not fwd:
            raise InvalidArgumentError(
                f"internal: gradient loop '{self.frame_name}' needs '{t.name}' from "
                f"{tc.describe() if tc else 'the top level'} (please report)")
        op = t.op
        if op.type == "Enter" and _STRUCT.get(op) is fwd and op.attrs.get("is_constant"):
            v = resolve(op.inputs[0], self)  # a loop invariant: its value outside
        elif op.type == "Const" and not op.inputs:
            v = t
        elif op.type == "Const":
            with owned(self.graph, None):
                v = constant(op.attrs["value"], dtype=t.dtype, name="const_clone")
        else:
            store = fwd.save(t)
            from actorflow.ops import control_flow_ops as cfo
            guard = _guard_for(self, tc)
            with owned(self.graph, self, process=False, scope=self.scope):
                deps = [guard] if guard is not None else []
                with control_dependencies(deps):
                    v = cfo.acc_pop(resolve(store, self), self.index, t.dtype, t._shape)
        self._real[t] = v
        return v


def _guard_for(b: WhileContext, tc: Context | None) -> Operation | None:
    """An op of gradient loop `b` that is dead unless the forward cond branch `tc` (the
    innermost one) was taken in the iteration being differentiated; None if `tc` is the loop
    itself. It reads that branch's port of the cond's gradient Switch."""
    if not isinstance(tc, CondContext):
        return None
    key = (id(tc.info), tc.branch)
    port = b.guards.get(key)
    if port is None:
        raise InvalidArgumentError(
            f"internal: no gradient of {tc.describe()} was built in '{b.frame_name}' "
            f"(please report)")
    if isinstance(port, Tensor):
        with owned(b.graph, b, scope=b.scope):
            port = _identity(port, "branch_guard").op
        b.guards[key] = port
    return port


def check_shape_invariant(name: str, before: shapes.Shape, after: shapes.Shape,
                          invariant_given: bool) -> None:
    """Raise if a loop variable of static shape `before` comes out of the body as `after`."""
    if _less_specific_or_equal(before, after):
        return
    fix = ("widen its entry in shape_invariants (None where the size changes)"
           if invariant_given else
           "pass shape_invariants with None in the dimensions that change, e.g. "
           + shapes.fmt(None if after is None or before is None or len(after) != len(before)
                        else tuple(None if a != b else a for a, b in zip(before, after,
                                                                        strict=True))))
    raise InvalidArgumentError(
        f"loop variable {name} enters the loop with shape {shapes.fmt(before)} but has shape "
        f"{shapes.fmt(after)} after one iteration; to let its shape change, {fix}")


def _less_specific_or_equal(inv: shapes.Shape, s: shapes.Shape) -> bool:
    if inv is None:
        return True
    if s is None or len(inv) != len(s):
        return False
    return all(a is None or a == b for a, b in zip(inv, s, strict=True))
