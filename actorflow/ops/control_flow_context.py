"""Control-flow contexts: which ops a cond branch or a while loop owns, and how values enter.

Design
------
While `af.cond` builds a branch, or `af.while_loop` its condition and body, a *context*
(`CondContext`, `WhileContext`) is on the building stack of the graph. The ops the user's
function creates are *claimed* by the innermost context when they appear (`sync` runs before
anything needs to know; it scans the ops added since the last scan), and *processed* when the
function returns (`Context.process`):

* each input from outside comes in: a while loop `Enter`s it as a loop invariant, a cond
  branch `Switch`es it on the predicate (so that the untaken branch sees a dead value). An
  input from an enclosing context goes through every level (`resolve`);
* an op none of whose inputs depends on the context's pivot (it reads only constants and
  invariants) gets a control input from the pivot, so that it runs in the context's frame and
  is dead where the context is not taken (TF's `_MaybeAddControlDependency`). Constants read
  by a loop are the exception: they *float* (the executor puts them into every iteration's
  initial values), which costs nothing per iteration;
* a control input from outside a while loop comes in through a constant Enter.

Gradient code runs later, outside any user context, and needs *forward* values inside loops:
`resolve` hands such a value to a backward loop (`WhileContext.forward` set) through
`real_value`, which saves it per iteration in the forward loop (`_AccPush` into a per-step
store, keyed by the iteration counter `forward_index`) and reads it back in the gradient loop
(`_AccPop` at the same index, counting down). A forward value in a cond branch is popped only
where that branch's gradient runs (a guard from the branch's gradient Switch).

State (all keyed weakly by Operation, so graphs can go away):
  _OP_CTX   op -> the context it runs in (_TOP: the top level); absent: not yet claimed
  _OUT_CTX  op -> the contexts of its outputs, where they differ (Enter: the loop; Exit: the
            loop's outer context; a cond's Switch: (false branch, true branch))
  _STRUCT   op -> the loop it is a structural part of (Enter, Merge, Switch, Exit,
            NextIteration, LoopCond, the counter, pushes): left out of the body's gradient
  _building the contexts being built, innermost last (a contextvar: per thread and task)

`WhileContext` and the loop-variable shape check live in `while_context` (this module names
them lazily, so either module may be imported first).
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from actorflow.graph import (
    Graph,
    Operation,
    Tensor,
    control_dependencies,
    name_scope,
)
from actorflow.op_def import apply_op
from devices.errors import InvalidArgumentError

if TYPE_CHECKING:
    from actorflow.ops.while_context import WhileContext

_TOP: Any = object()  # _OP_CTX value of an op registered at the top level
_OP_CTX: weakref.WeakKeyDictionary[Operation, Any] = weakref.WeakKeyDictionary()
_OUT_CTX: weakref.WeakKeyDictionary[Operation, tuple[Any, ...]] = weakref.WeakKeyDictionary()
_STRUCT: weakref.WeakKeyDictionary[Operation, Any] = weakref.WeakKeyDictionary()
_COND_SWITCH: weakref.WeakKeyDictionary[Operation, Any] = weakref.WeakKeyDictionary()
_COND_MERGE: weakref.WeakKeyDictionary[Operation, Any] = weakref.WeakKeyDictionary()
_building: contextvars.ContextVar[tuple[Context, ...]] = contextvars.ContextVar(
    "af_control_flow_building", default=())
_in_gradients: contextvars.ContextVar[str] = contextvars.ContextVar(
    "af_building_gradients", default="")


@contextlib.contextmanager
def building_gradients(source: str = "gradients") -> Iterator[None]:
    """While af.gradients builds: gradient code may read a forward cond branch's values
    directly (same frame), and `gradient_source()` names this gradient computation."""
    token = _in_gradients.set(source or "gradients")
    try:
        yield
    finally:
        _in_gradients.reset(token)


def gradient_source() -> str:
    return _in_gradients.get() or "gradients"


# ------------------------------------------------------------------------------------------
# Where a tensor lives
# ------------------------------------------------------------------------------------------
def ctx_of_op(op: Operation) -> Context | None:
    """The context `op` runs in (None: the top level)."""
    c = _OP_CTX.get(op)
    return None if c is None or c is _TOP else c


def ctx_of(t: Tensor) -> Context | None:
    """The context in which tensor `t` is valid (None: the top level)."""
    outs = _OUT_CTX.get(t.op)
    if outs is not None:
        c = outs[t.value_index] if len(outs) > 1 else outs[0]
        return None if c is _TOP else c
    return ctx_of_op(t.op)


def member_ctx(op: Operation) -> Context | None:
    """The context `op` belongs to for gradients: a loop's Enter and Exit belong to the loop."""
    s = _STRUCT.get(op)
    if s is not None and op.type in ("Enter", "Exit"):
        return s
    return ctx_of_op(op)


def floating(t: Tensor) -> bool:
    """True for a plain constant: usable in any context (see the module doc)."""
    op = t.op
    return op.type == "Const" and not op.inputs and not op.control_inputs


def while_of(c: Context | None) -> WhileContext | None:
    """The innermost while loop around (or at) context `c`."""
    while c is not None and not c.is_while:
        c = c.outer
    return c


def is_within(c: Context | None, outer: Context | None) -> bool:
    """True if `c` is `outer` or nested inside it (everything is within the top level)."""
    while c is not None:
        if c is outer:
            return True
        c = c.outer
    return outer is None


def current(graph: Graph) -> Context | None:
    """The innermost context being built in `graph` (None at the top level)."""
    for c in reversed(_building.get()):
        if c.graph is graph:
            return c
    return None


def sync(graph: Graph) -> None:
    """Claim the ops added to `graph` since the last call for the innermost context."""
    top = current(graph)
    if top is None:
        return
    ops = graph._ops
    for k in range(top._synced, len(ops)):
        op = ops[k]
        if op not in _OP_CTX:
            _OP_CTX[op] = top
            top._claimed.append(op)
    top._synced = len(ops)


def register(op: Operation, ctx: Context | None, *, struct: Context | None = None,
             out: tuple[Any, ...] | None = None) -> Operation:
    """Record that `op` (made by this module) runs in `ctx`; it is not processed."""
    _OP_CTX[op] = ctx if ctx is not None else _TOP
    if struct is not None:
        _STRUCT[op] = struct
    if out is not None:
        _OUT_CTX[op] = tuple(_TOP if c is None else c for c in out)
    return op


@contextlib.contextmanager
def owned(graph: Graph, ctx: Context | None, *, process: bool = False,
          struct: Context | None = None, scope: str | None = None) -> Iterator[None]:
    """Ops made in the block run in `ctx` (processed there if `process`), free of the
    caller's control dependencies; `scope` re-enters a name scope."""
    sync(graph)
    start = len(graph._ops)
    with contextlib.ExitStack() as stack:
        stack.enter_context(control_dependencies(None))
        if scope is not None:
            stack.enter_context(name_scope(scope))
        yield
    made = [op for op in graph._ops[start:] if op not in _OP_CTX]
    for op in made:
        register(op, ctx, struct=struct)
    anchor = anchor_of(struct if struct is not None else ctx)
    if anchor is not None:
        for op in graph._ops[start:]:
            colocate(op, anchor)
    if process and ctx is not None:
        for op in made:
            if not floating_op(op):
                ctx.process(op)
    top = current(graph)
    if top is not None:
        top._synced = max(top._synced, len(graph._ops))
        # ops `process` made for `ctx` are registered already; anything else is top's
        for op in graph._ops[start:]:
            if op not in _OP_CTX:
                _OP_CTX[op] = top
                top._claimed.append(op)


def anchor_of(c: Context | None) -> str | None:
    """The op every op of `c` is colocated with (its outermost context's), once known."""
    anchor = None
    while c is not None:
        anchor = c.anchor or anchor
        c = c.outer
    return anchor


def colocate(op: Operation, anchor: str) -> None:
    """Keep `op` on the device of op `anchor` (a loop or cond runs on one device)."""
    entry = "loc:@" + anchor
    cls = op.attrs.get("_class")
    cls = [] if cls is None else ([cls] if isinstance(cls, str) else list(cls))
    if entry not in cls and op.name != anchor:
        op.attrs["_class"] = [*cls, entry]
        op._node_def = None
        op.graph._version += 1


def colocate_range(graph: Graph, start: int, ctx: Context) -> None:
    """Colocate every op made since `start` that belongs to `ctx` with its anchor."""
    anchor = anchor_of(ctx)
    if anchor is None:
        return
    for op in graph._ops[start:]:
        c = member_ctx(op)
        if c is None and op.type == "Enter":
            c = _STRUCT.get(op)
        if c is not None and is_within(c, ctx) or _STRUCT.get(op) is ctx:
            colocate(op, anchor)


def floating_op(op: Operation) -> bool:
    return op.type == "Const" and not op.inputs and not op.control_inputs


# ------------------------------------------------------------------------------------------
# Bringing a value into a context
# ------------------------------------------------------------------------------------------
def resolve(t: Tensor, c: Context | None) -> Tensor:
    """A tensor usable by ops running in context `c` for the value of `t` (see the module
    doc): `t` itself, or `t` brought in through Enter/Switch, or, for gradient code, the
    forward value saved per iteration."""
    sync(t.graph)
    tc = ctx_of(t)
    if tc is c or floating(t):
        return t
    if c is not None and is_within(c, tc):
        return c.capture(t)
    if _in_gradients.get() and while_of(tc) is while_of(c) and not isinstance(c, CondContext):
        return t  # gradient code: a cond branch's value, in the same frame
    b = c
    while b is not None:
        if b.is_while and b.forward is not None and is_within(tc, b.forward):  # type: ignore[attr-defined]
            return resolve(b.real_value(t), c)
        b = b.outer
    if _in_gradients.get() and c is not None:
        return c.capture(t)  # gradient code: a value usable further out (a cond's branch)
    raise InvalidArgumentError(_misuse(t, tc, c))


def _misuse(t: Tensor, tc: Context | None, c: Context | None) -> str:
    where = tc.describe() if tc is not None else "the top level"
    here = c.describe() if c is not None else "the top level"
    return (f"tensor '{t.name}' is made in {where} and cannot be used in {here}: a value made "
            f"inside a while loop or a cond branch leaves it only through the loop's or the "
            f"cond's outputs; return it from the body or the branch")


def pivoted(t: Tensor, c: Context) -> bool:
    """True if `t`, valid in `c`, already depends on the context's pivot. A constant never
    counts, even one with a control input: constant folding would fold an op reading only
    constants into a new, inputless constant, live everywhere; the op gets its own control
    input from the pivot instead, which keeps it from being folded."""
    op = t.op
    if op.type == "Const":
        return False
    if op.type == "Enter" and _STRUCT.get(op) is c and op.attrs.get("is_constant"):
        return False
    return ctx_of(t) is c


def set_inputs(op: Operation, inputs: list[Tensor]) -> None:
    """Replace the data inputs of `op` (same dtypes; the static shapes stay as inferred)."""
    op.inputs = tuple(inputs)
    op._node_def = None
    op.graph._version += 1


class Context:
    """What CondContext and WhileContext share: the claimed ops and their processing."""

    is_while = False  # True for a WhileContext (`while_context`), tested without importing it

    def __init__(self, graph: Graph, outer: Context | None, scope: str):
        self.graph = graph
        self.outer = outer
        self.scope = scope          # name scope (with '/'), re-entered for ops made later
        self.anchor: str | None = None  # the op this context's ops are colocated with
        self._synced = len(graph._ops)
        self._claimed: list[Operation] = []
        self._captured: dict[Tensor, Tensor] = {}
        # gradient loops: (cond, branch) -> its gradient Switch's port (later: an Identity op
        # reading it, live only where the branch was taken)
        self.guards: dict[tuple[int, int], Any] = {}

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Make this the innermost context while the block runs the user's function."""
        sync(self.graph)
        self._synced = len(self.graph._ops)
        token = _building.set(_building.get() + (self,))
        try:
            yield
            sync(self.graph)
        finally:
            _building.reset(token)

    def finish_claimed(self) -> None:
        """Process every op claimed so far (called when the user's function returned)."""
        while True:
            sync_for(self)
            todo, self._claimed = self._claimed, []
            if not todo:
                return
            for op in todo:
                if not floating_op(op) or not self.is_while:
                    self.process(op)

    def process(self, op: Operation) -> None:
        """Bring `op`'s inputs into this context and tie it to the pivot if it needs it."""
        new = [resolve(t, self) for t in op.inputs]
        if any(a is not b for a, b in zip(new, op.inputs, strict=True)):
            set_inputs(op, new)
        controls = []
        changed = False
        pinned = any(pivoted(t, self) for t in new)
        here = while_of(self)
        for dep in op.control_inputs:
            dc = run_ctx(dep)
            there = while_of(dc)
            if there is here:
                controls.append(dep)
                pinned = pinned or (dc is not None and is_within(dc, self))
            elif here is not None and is_within(here, there):
                controls.append(here.capture_control(dep))
                changed = True
            else:
                raise InvalidArgumentError(
                    f"op '{op.name}' in {self.describe()} has a control input '{dep.name}' "
                    f"from {dc.describe() if dc is not None else 'the top level'}, which it "
                    f"cannot wait for; use a value the loop or cond returns instead")
        if not pinned:
            controls.append(self.pivot_op())
            changed = True
        if changed:
            op.control_inputs[:] = []
            op._add_control_inputs(controls)

    # subclasses
    def capture(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def capture_control(self, dep: Operation) -> Operation:
        return dep

    def pivot_op(self) -> Operation:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def sync_for(ctx: Context) -> None:
    if current(ctx.graph) is ctx:
        sync(ctx.graph)


def run_ctx(op: Operation) -> Context | None:
    """The context in which a control edge out of `op` arrives: an Enter's is its loop, an
    Exit's the loop's outer context, else where `op` runs."""
    outs = _OUT_CTX.get(op)
    if outs and op.type in ("Enter", "Exit"):
        return None if outs[0] is _TOP else outs[0]
    return ctx_of_op(op)


# ------------------------------------------------------------------------------------------
# Cond
# ------------------------------------------------------------------------------------------
class CondInfo:
    """One af.cond: its predicate (valid outside) and its two branch contexts."""

    def __init__(self, pred: Tensor, scope: str):
        self.pred = pred
        self.scope = scope
        self.branches: list[CondContext] = []
        self.switches: dict[Tensor, Operation] = {}  # captured value -> its Switch
        self.pred_switch: Operation | None = None


class CondContext(Context):
    """One branch of an af.cond (`branch` 1: taken when the predicate is true)."""

    def __init__(self, graph: Graph, outer: Context | None, info: CondInfo, branch: int):
        super().__init__(graph, outer, info.scope)
        self.info = info
        self.branch = branch
        self._pivot: Operation | None = None

    def describe(self) -> str:
        return f"the {'true' if self.branch else 'false'} branch of cond '{self.info.scope[:-1]}'"

    def capture(self, t: Tensor) -> Tensor:
        hit = self._captured.get(t)
        if hit is not None:
            return hit
        v = resolve(t, self.outer)
        sw = self.info.switches.get(v)
        if sw is None:
            from actorflow.ops.control_flow_ops import switch_op
            with owned(self.graph, self.outer, scope=self.scope):
                sw = switch_op(v, self.info.pred)
            _OUT_CTX[sw] = tuple(self.info.branches)
            _COND_SWITCH[sw] = self.info
            self.info.switches[v] = sw
        out = sw.outputs[self.branch]
        self._captured[t] = out
        return out

    def pivot_op(self) -> Operation:
        if self._pivot is None:
            from actorflow.ops.control_flow_ops import switch_op
            info = self.info
            if info.pred_switch is None:
                with owned(self.graph, self.outer, scope=self.scope):
                    info.pred_switch = switch_op(info.pred, info.pred, name="pivots")
                _OUT_CTX[info.pred_switch] = tuple(info.branches)
            with owned(self.graph, self, scope=self.scope):
                self._pivot = _identity(info.pred_switch.outputs[self.branch],
                                        "pivot_t" if self.branch else "pivot_f").op
        return self._pivot


def _identity(t: Tensor, name: str) -> Tensor:
    return apply_op("Identity", [t], name=name)[0]


def building_stack() -> tuple[Context, ...]:
    return _building.get()


def as_callable(fn: Any, what: str) -> Callable[..., Any]:
    if not callable(fn):
        raise InvalidArgumentError(f"{what} must be callable (a function), got "
                                   f"{type(fn).__name__}")
    return fn


def __getattr__(name: str) -> Any:  # WhileContext, check_shape_invariant: see while_context
    if name in ("WhileContext", "check_shape_invariant"):
        from actorflow.ops import while_context
        return getattr(while_context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
