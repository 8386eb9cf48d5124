"""Frames at run time (WP §4.4, OSDI §3.4): the state of each (frame, iteration), and the
operations that move values between iterations and frames: delivering outputs, dead values,
Enter/Exit/NextIteration, finishing iterations and frames, and running fused loops.

`FrameOps` is a component of `scheduler.executor.StepRun` (one per run, sharing its list of
active IterStates): the executor's one ready loop calls these operations for everything beyond
running a kernel and waking its successors. A graph without control flow is a root frame with
one `IterState` and never needs more of them than `deliver`, `consume` and `queue` (for work
that finishes outside the loop). The static part (frame templates, pending counts
without back edges, fused loop plans) comes from `scheduler.control_flow`; the semantics are
described in `scheduler.executor`'s docstring.

State (owned by the device actor, per step):
  IterState  one (frame, iteration): pending, dead-input counts, values, refs, ready stack,
             the asynchronous kernels in flight and the live child frames
  Frame      one run of a loop for one iteration of its parent: its live iterations, the
             templates new iterations start from (loop invariants included), deferred
             NextIteration outputs, dead Exits, Enters still to come
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from devices.errors import InternalError, InvalidArgumentError
from scheduler import tracing
from scheduler.control_flow import ControlFlowInfo, FrameInfo, FusedPlan
from scheduler.executable import (
    CTRIG,
    ENTER,
    EXIT,
    IDENT,
    INLINE,
    MERGE,
    NEXTITER,
    RETVAL,
    STEP,
    SWITCH,
    THREAD,
)
from scheduler.node_errors import node_error


class IterState:
    """Pending counts, values and ready nodes of one (frame, iteration).

    Owned by the device actor. `pending`/`dead` are indexed by node, `values`/`refs` by slot;
    `ready` is the LIFO stack of runnable nodes. With frames: `frame` and `iter` say which
    iteration this is, `waiting` counts its asynchronous kernels in flight, `children` maps
    child frame templates to live child frames, `queued` says it is in `StepRun.active`.
    """

    __slots__ = ("pending", "values", "refs", "ready", "dead", "frame", "iter", "waiting",
                 "children", "queued", "deleted", "fused")

    def __init__(self, pending: list[int], values: list[Any], refs: list[int],
                 ready: list[int], dead: list[int] | None = None, frame: Frame | None = None,
                 iter_: int = 0, queued: bool = True):
        self.pending = pending
        self.values = values
        self.refs = refs
        self.ready = ready
        self.dead = dead
        self.frame = frame
        self.iter = iter_
        self.waiting = 0
        self.children: dict[int, Frame] | None = None
        self.queued = queued
        self.deleted = False
        self.fused: FusedPlan | None = None  # a fused loop's run (see `run_fused`)


class Frame:
    """One instance of a frame template: a loop run for one iteration of its parent frame.

    Owned by the device actor. Iterations `first`..`last` are alive in `iters`; `pend_t`,
    `vals_t`, `dead_t`, `ready_t` are what a new iteration starts from (the template's, plus
    the loop invariants that arrived); `deferred` holds NextIteration outputs waiting for room
    under `parallel_iterations`; `dead_exits` the dead Exit nodes of the newest iteration.
    """

    __slots__ = ("info", "parent", "iters", "first", "last", "pending_enters", "deferred",
                 "dead_exits", "pend_t", "vals_t", "dead_t", "ready_t", "dead_entry")

    def __init__(self, info: FrameInfo, parent: IterState | None, cf: ControlFlowInfo):
        self.info = info
        self.parent = parent
        self.iters: dict[int, IterState] = {}
        self.first = 0
        self.last = -1
        self.pending_enters = info.n_enters
        self.deferred: list[tuple[int, Any]] = []
        self.dead_exits: list[int] = []
        self.pend_t = cf.pending0
        self.vals_t = info.values0
        self.dead_t: list[int] = cf.zeros
        self.ready_t = info.roots
        self.dead_entry = False  # a fused loop: an Enter arrived dead (the loop is dead)

    def new_iteration(self, queued: bool = True) -> IterState:
        k = self.last + 1
        st = IterState(self.pend_t.copy(), self.vals_t.copy(), self.info.refs0.copy(),
                       self.ready_t.copy(), self.dead_t.copy(), self, k, queued)
        self.iters[k] = st
        self.last = k
        self.dead_exits = []
        return st


class FrameOps:
    """The frame operations of one step on one device: a component its `StepRun` owns (see
    the module doc). Shares the run's `active` list (the IterStates with work); `current` is
    the IterState the run's loop is in (set by the loop)."""

    __slots__ = ("exe", "ctx", "active", "current", "peak_iterations")

    def __init__(self, exe: Any, ctx: Any, active: list[IterState]):
        self.exe = exe
        self.ctx = ctx
        self.active = active
        self.current: IterState | None = None
        self.peak_iterations = 1  # most iterations of one frame alive at once (statistics)

    # -- control flow -------------------------------------------------------------------------
    def special(self, i: int, st: IterState, kind: int, device: Any) -> None:
        """Run control-flow primitive or dead node i of iteration `st` (see the module doc)."""
        exe = self.exe
        cf = exe.cf
        assert cf is not None
        values = st.values
        slots = exe.in_slots[i]
        is_dead = st.dead[i] > 0
        if kind == MERGE:
            v = None
            for k in range(cf.n_data_in[i]):
                v = values[slots[k]]
                if v is not None:
                    break
            if v is not None:
                outs: Any = (v, cf.merge_index[k])
                is_dead = False
            else:
                is_dead = True
        elif kind == CTRIG:
            is_dead = False
            outs = ()
        elif is_dead:
            outs = None
        elif kind == SWITCH:
            outs = (values[slots[0]], values[slots[1]])
        elif kind <= THREAD:
            raise InternalError(f"live node {exe.names[i]} reached special")
        else:  # Enter, Exit, NextIteration, Identity forward their input
            outs = (values[slots[0]],)
        if not is_dead and self.ctx.trace is not None:  # a full record, as in the loop (#16)
            t = time.perf_counter()
            self.ctx.trace.append(tracing.node_record(exe.names[i], device, t, t, exe.ops[i],
                                                      outs))
        self.consume(st, exe.release_slots[i])
        if is_dead:
            if kind == EXIT:
                f = st.frame
                if st.iter == f.last:
                    f.dead_exits.append(i)
            elif kind == NEXTITER:
                pass  # stops here: a dead value starts no iteration
            elif kind == ENTER:
                self.enter(i, st, None)
            elif kind == RETVAL:
                raise InvalidArgumentError(
                    f"fetched tensor '{cf.input_names[i]}' has no value in this step: it is on "
                    f"the side of a cond that was not taken (its Switch sent it a dead value); "
                    f"fetch the cond's outputs instead")
            elif exe.ops[i] == "_Send":
                raise InvalidArgumentError(
                    f"a dead value (the untaken side of a cond) would cross devices at "
                    f"'{exe.names[i]}'; keep the cond's branches on one device")
            else:
                self.deliver_dead(st, cf.dead_succ[i])
            return
        if kind == SWITCH:
            data, pred = outs
            if getattr(pred, "size", 1) != 1:
                raise InvalidArgumentError(
                    f"the predicate of Switch '{exe.names[i]}' must be a scalar bool, got shape "
                    f"{tuple(pred.shape)}")
            live0, live1, dead0, dead1, s0, s1, exits0, exits1 = cf.switch_ports[i]
            f = st.frame
            if pred:
                if s1 is not None:
                    values[s1] = data
                self.wake(st, live1)
                self.deliver_dead(st, dead0)
                if exits0 and st.iter == f.last:
                    f.dead_exits.extend(exits0)
            else:
                if s0 is not None:
                    values[s0] = data
                self.wake(st, live0)
                self.deliver_dead(st, dead1)
                if exits1 and st.iter == f.last:
                    f.dead_exits.extend(exits1)
        elif kind == ENTER:
            self.enter(i, st, outs)
        elif kind == EXIT:
            self.deliver(st.frame.parent, i, outs)
        elif kind == NEXTITER:
            f = st.frame
            k = st.iter + 1
            nxt = f.iters.get(k)
            if nxt is None:
                if k - f.first >= f.info.parallel:
                    f.deferred.append((i, outs))  # started when the oldest iteration ends
                    return
                nxt = self.new_iteration(f)
            self.deliver(nxt, i, outs)
        else:  # Merge, ControlTrigger, Identity
            self.deliver(st, i, outs)

    def consume(self, st: IterState, slots: tuple[int, ...]) -> None:
        values, refs = st.values, st.refs
        release = self.exe.device.pool.release
        for s in slots:
            r = refs[s] - 1
            refs[s] = r
            if r == 0:
                v = values[s]
                values[s] = None
                if type(v) is np.ndarray:
                    release(v)

    def queue(self, st: IterState) -> None:
        if not st.queued:
            st.queued = True
            self.active.append(st)

    def wake(self, st: IterState, nodes: tuple[int, ...]) -> None:
        pending, ready = st.pending, st.ready
        for j in nodes:
            p = pending[j] - 1
            pending[j] = p
            if p == 0:
                ready.append(j)
        if ready and not st.queued:
            st.queued = True
            self.active.append(st)

    def deliver(self, st: IterState, i: int, outs: Any) -> None:
        """Node i's live outputs into iteration `st`: values, pending counts, ready nodes."""
        values = st.values
        for port, s in self.exe.out_slots[i]:
            values[s] = outs[port]
        self.wake(st, self.exe.succ[i])

    def deliver_dead(self, st: IterState, edges: Any, from_enter: bool = False) -> None:
        """A dead output along `edges` ((node, is data edge into a Merge) pairs) into `st`."""
        cf = self.exe.cf
        assert cf is not None
        pending, dead, ready = st.pending, st.dead, st.ready
        for j, merge in edges:
            d = dead[j] + 1
            dead[j] = d
            if merge and d != cf.n_data_in[j] and not from_enter:
                continue  # a Merge waits for a live input while one may come
            p = pending[j] - 1
            pending[j] = p
            if p == 0:
                ready.append(j)
        if ready and not st.queued:
            st.queued = True
            self.active.append(st)

    def enter(self, i: int, st: IterState, outs: Any) -> None:
        """Enter node i fired in `st` (dead if outs is None): into the child frame."""
        cf = self.exe.cf
        assert cf is not None
        child = cf.enter_child[i]
        children = st.children
        if children is None:
            children = st.children = {}
        f = children.get(child)
        if f is None:
            f = children[child] = Frame(cf.frames[child], st, cf)
            if f.info.fused is None:
                self.new_iteration(f)
        if f.info.fused is not None:  # gather the Enters; run the loop when all are in
            if f.vals_t is f.info.values0:
                f.vals_t = f.info.values0.copy()
            if outs is None:
                f.dead_entry = True
            else:
                for port, s in self.exe.out_slots[i]:
                    f.vals_t[s] = outs[port]
            f.pending_enters -= 1
            if f.pending_enters == 0:
                run = IterState([], f.vals_t, [], [], None, f, 0, True)
                run.fused = f.info.fused
                f.iters[0] = run
                f.last = 0
                self.active.append(run)
            return
        if cf.enter_const[i]:  # a loop invariant: every iteration, now and later
            self.add_invariant(f, i, outs)
            for it in list(f.iters.values()):
                if outs is None:
                    self.deliver_dead(it, cf.dead_succ[i], True)
                else:
                    self.deliver(it, i, outs)
        else:
            it0 = f.iters.get(0)
            if it0 is None:
                raise InternalError(f"Enter '{self.exe.names[i]}' found its frame's first "
                                    f"iteration gone (please report)")
            if outs is None:
                self.deliver_dead(it0, cf.dead_succ[i], True)
            else:
                self.deliver(it0, i, outs)
        f.pending_enters -= 1
        if f.pending_enters == 0:
            first = f.iters.get(f.first)
            if first is not None:
                self.maybe_iter_done(first)

    def run_fused(self, st: IterState, device: Any, deadline: float) -> bool:
        """Run the fused loop of `st` (see control_flow.plan_fused) from where it stopped;
        False if it paused at `deadline` for a checkpoint, True when the loop is over."""
        plan = st.fused
        f = st.frame
        assert plan is not None and f is not None and f.parent is not None
        exe, ctx = self.exe, self.ctx
        cf = exe.cf
        assert cf is not None
        vals = st.values
        if f.dead_entry:  # the whole loop is dead (on an untaken side of a cond)
            self.fused_done(st, None)
            return True
        kinds, out_slots, pooled = exe.kinds, exe.out_slots, plan.pooled
        release = device.pool.release
        ndarray = np.ndarray
        trace = ctx.trace
        clock = time.perf_counter
        get = vals.__getitem__
        merge_slot, body_slot, next_slot = plan.merge_slot, plan.body_slot, plan.next_slot
        pred_slot = plan.pred_slot
        nvars = range(len(merge_slot))
        if st.iter == 0 and not st.waiting:  # first entry: the Merges take the Enters' values
            for k in nvars:
                vals[merge_slot[k]] = vals[plan.enter_slot[k]]
                if plan.merge_index_slot[k] is not None:
                    vals[plan.merge_index_slot[k]] = cf.merge_index[0]
            st.waiting = 1  # (marks "started")
        pred_prog, body_prog = plan.pred_prog, plan.body_prog
        general = trace is not None  # tracing: every node through the general path
        i = -1
        try:
            while True:  # ---- one iteration: the predicate, then the body ----
                for prog in (pred_prog, body_prog):
                    for code, i, fn, slots, out in prog:
                        if general:
                            code = 9
                        if code == 1:  # a kernel of two inputs, one output
                            vals[out] = fn(vals[slots[0]], vals[slots[1]])[0]
                        elif code == 0:  # a kernel of one input, one output
                            vals[out] = fn(vals[slots[0]])[0]
                        elif code == 2:  # Identity, LoopCond
                            v = vals[slots[0]]
                            for s in out:
                                vals[s] = v
                        elif code == 3:  # a kernel whose outputs nobody reads (a push)
                            fn(*map(get, slots))
                        else:  # the rest: steps, ControlTriggers, several or pooled outputs
                            if trace is not None:
                                t0 = clock()
                            kind = kinds[i]
                            if kind == IDENT:
                                v = vals[slots[0]]
                                for _, s in out_slots[i]:
                                    vals[s] = v
                                outs = None
                            elif kind == INLINE:
                                outs = fn(*map(get, slots))
                            elif kind == STEP:
                                outs = fn(ctx, *map(get, slots))
                            else:  # ControlTrigger
                                outs = None
                            if outs is not None:
                                if pooled[i]:
                                    for port, s in out_slots[i]:
                                        old = vals[s]
                                        if type(old) is ndarray:
                                            release(old)
                                        vals[s] = outs[port]
                                else:
                                    for port, s in out_slots[i]:
                                        vals[s] = outs[port]
                            if trace is not None:  # a full record, as in the loop (#16)
                                trace.append(tracing.node_record(
                                    exe.names[i], device, t0, clock(), exe.ops[i],
                                    outs if outs is not None else
                                    (vals[slots[0]],) if kind == IDENT else ()))
                    if prog is pred_prog:
                        if not vals[pred_slot]:
                            break
                        for k in nvars:
                            if body_slot[k] is not None:
                                vals[body_slot[k]] = vals[merge_slot[k]]
                else:  # the body ran: on to the next iteration
                    for k in nvars:
                        vals[merge_slot[k]] = vals[next_slot[k]]
                    if st.iter == 0:
                        for k in nvars:
                            if plan.merge_index_slot[k] is not None:
                                vals[plan.merge_index_slot[k]] = cf.merge_index[1]
                    st.iter += 1
                    if not (st.iter & 7) and clock() > deadline:
                        return False
                    continue
                break
        except Exception as e:  # noqa: BLE001 - every kernel failure aborts the step
            ctx.abort(node_error(e, exe.names[i], exe.ops[i], device.name, None))
            return True
        self.fused_done(st, [vals[merge_slot[k]] for k in nvars])
        for v in vals:
            if type(v) is ndarray:
                release(v)
        return True

    def fused_done(self, st: IterState, results: list[Any] | None) -> None:
        """A fused loop ended: its Exits deliver (dead if `results` is None) into the parent
        iteration, and the frame goes."""
        plan, f, cf = st.fused, st.frame, self.exe.cf
        assert plan is not None and f is not None and cf is not None
        parent = f.parent
        assert parent is not None and parent.children is not None
        del parent.children[f.info.id]
        if not parent.children:
            parent.children = None
        del f.iters[0]
        st.deleted = True
        for k, x in enumerate(plan.exits):
            if x is None:
                continue
            if results is None:
                self.deliver_dead(parent, cf.dead_succ[x])
            else:
                self.deliver(parent, x, (results[k],))
        if parent.frame is not None and parent.frame.parent is not None:
            self.maybe_iter_done(parent)

    def add_invariant(self, f: Frame, i: int, outs: Any) -> None:
        """Record invariant Enter i in frame f's templates, for iterations still to come."""
        exe, cf = self.exe, self.exe.cf
        assert cf is not None
        if f.pend_t is cf.pending0:
            f.pend_t = cf.pending0.copy()
            f.vals_t = f.info.values0.copy()
            f.ready_t = f.info.roots.copy()
        pend = f.pend_t
        if outs is None:
            if f.dead_t is cf.zeros:
                f.dead_t = cf.zeros.copy()
            for j, _ in cf.dead_succ[i]:
                f.dead_t[j] += 1
                pend[j] -= 1
                if pend[j] == 0:
                    f.ready_t.append(j)
            return
        for port, s in exe.out_slots[i]:
            f.vals_t[s] = outs[port]
        for j in exe.succ[i]:
            pend[j] -= 1
            if pend[j] == 0:
                f.ready_t.append(j)

    def new_iteration(self, f: Frame) -> IterState:
        st = f.new_iteration(False)
        if st.iter - f.first >= self.peak_iterations:
            self.peak_iterations = st.iter - f.first + 1
        if st.ready:
            st.queued = True
            self.active.append(st)
        return st

    def maybe_iter_done(self, st: IterState) -> None:
        """Free `st` if its iteration is finished, then whatever that finishes in turn: the
        next iteration, the frame, the parent iteration (see the module doc)."""
        while True:
            f = st.frame
            assert f is not None
            if (f.parent is None or st.deleted or st.ready or st.waiting or st.children
                    or st is self.current or st.iter != f.first
                    or (st.iter == 0 and f.pending_enters)):
                return
            del f.iters[st.iter]
            st.deleted = True
            st.values = st.refs = st.pending = []  # type: ignore[assignment]
            f.first = st.iter + 1
            if f.deferred and f.last + 1 - f.first < f.info.parallel:
                nxt = self.new_iteration(f)
                deferred, f.deferred = f.deferred, []
                for node, outs in deferred:
                    self.deliver(nxt, node, outs)
            nxt = f.iters.get(f.first)
            if nxt is not None:
                st = nxt
                continue
            if f.pending_enters or f.deferred:
                return
            parent = f.parent
            assert parent.children is not None
            del parent.children[f.info.id]
            if not parent.children:
                parent.children = None
            cf = self.exe.cf
            assert cf is not None
            for x in f.dead_exits:
                self.deliver_dead(parent, cf.dead_succ[x])
            st = parent

