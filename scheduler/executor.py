"""The dataflow executor: runs one compiled partition for one step on its device actor.

Usage
-----
    exe = compile_partition(graph_def, device)          # once (scheduler.compile)
    run = StepRun(exe, device, ctx)                     # per step: ctx holds feeds, fetches,
    device.submit(run)                                  #   the step's rendezvous and its done()

Design
------
`compile_partition` turns a partition's NodeDefs into dense integer arrays (`Executable`):
node i's compute function `fns[i]`, its kind, the value slots it reads (`in_slots[i]`), the
slots its outputs go to (`out_slots[i]`), its successors (`succ[i]`, one entry per edge, data
and control) and its initial pending count (`pending0[i]`: the number of incoming edges).
Nothing in the loop looks anything up by name.

State (one `StepRun` per step per device; owned by the device actor's task):
  pending   per-node count of edges not yet satisfied, copied from pending0 per step
  values    per-slot values; a slot is cleared after its last consumer (refs hits 0) and its
            buffer released to the pool
  refs      per-slot count of consumers that have not run yet
  ready     LIFO stack of runnable nodes (finishes chains first, bounding memory)
  waiting   number of asynchronous kernels in flight (Recv, worker-thread kernels)
Frames (WP §4.4, OSDI §3.4): every (frame, iteration) of a loop gets its own pending/values/
refs and dead-input counts (`IterState`); a graph without control flow has one, the root, and
runs in `_drain`, a loop that knows nothing of frames. A graph with Switch/Merge/Enter/Exit/
NextIteration runs in `_drain_cf`: the same loop plus a dead-input check per node; the
primitives and dead nodes go to `_special`. `scheduler.control_flow.analyze` works out the
static part (each node's frame template, pending counts without back edges, initial values).
  - Switch sends its input to the port its predicate picks; the other port's consumers get a
    *dead* input. A node with a dead input is dead: it does not run, its consumers get dead
    inputs (and it is not traced). Merge runs on its first live input and is dead only when
    every data input is dead. A ControlTrigger is never dead.
  - Enter (in the parent frame) delivers into iteration 0 of the child frame instance of its
    parent iteration, created on first use; a constant Enter's value is a loop invariant,
    delivered to every iteration (kept in the frame's templates for later ones). Exit delivers
    into the parent iteration; a dead Exit is remembered and propagated, dead, when the frame
    finishes. NextIteration delivers into the next iteration, which is created if fewer than
    `parallel_iterations` are alive, else deferred until the oldest one finishes.
  - An iteration is finished when it has nothing ready or running, no live child frame, the
    previous iteration is finished (iteration 0: every Enter into the frame fired); it is then
    freed. A frame is finished when its last iteration is, and is removed from its parent.

The loop runs small kernels inline, a plain `while` over the ready stack, and checkpoints about
once a millisecond so other actors and sockets get the CPU. Asynchronous kernels run as tasks in
the device's nursery and re-enter the step through the mailbox (`_Resume`). The first error
wins: it names the node and device, aborts the step (and its rendezvous, waking every pending
Recv), and is reported through ctx.done(error).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from devices import dtypes
from devices.errors import (
    CancelledError,
    InternalError,
    InvalidArgumentError,
    OpError,
)
from devices.kernels import registry
from devices.kernels.registry import KernelContext
from scheduler.control_flow import CF_OPS, ControlFlowInfo, FrameInfo, analyze
from scheduler.graphdef import GraphDef, NodeDef, parse_input

# Kernel kinds: how the loop calls fns[i].
INLINE = 0   # outs = fn(*args)
ARG = 1      # outs = (ctx.args[fn],)               a feed (_Arg); fn is the feed index
RETVAL = 2   # ctx.rets[fn] = args[0]                a fetch (_Retval); fn is the fetch index
STEP = 3     # outs = fn(ctx, *args)                 needs the step (Send, stateful RNG ...)
ASYNC = 4    # outs = fn.poll(ctx, *args) if ready now, else await fn(ctx, *args) in the nursery
THREAD = 5   # outs = await device.run_in_thread(fn, *args)
# control-flow primitives, run by the executor itself (`StepRun._special`)
SWITCH = 6
MERGE = 7
ENTER = 8
EXIT = 9
NEXTITER = 10
CTRIG = 11
IDENT = 12   # LoopCond and Identity in a graph with frames: forwarded by the loop itself
_CF_KINDS = {"Switch": SWITCH, "Merge": MERGE, "Enter": ENTER, "Exit": EXIT,
             "NextIteration": NEXTITER, "ControlTrigger": CTRIG}
_IDENT_OPS = frozenset({"LoopCond", "Identity", "StopGradient", "Snapshot"})

_CHECKPOINT_EVERY = 0.001  # seconds of inline work between trio checkpoints


@dataclass
class Executable:
    """A partition compiled for one device. Immutable after compile; shared by all steps."""

    device: Any
    names: list[str]
    ops: list[str]
    fns: list[Any]
    kinds: list[int]
    in_slots: list[tuple[int, ...]]
    out_slots: list[tuple[tuple[int, int], ...]]   # (port, slot) for outputs someone reads
    succ: list[tuple[int, ...]]
    pending0: list[int]
    refs0: list[int]
    roots: list[int]
    n_slots: int
    n_args: int = 0
    n_rets: int = 0
    index: dict[str, int] = field(default_factory=dict)
    cf: ControlFlowInfo | None = None   # frames; None for a graph without control flow


class StepContext:
    """What a step shares among its partitions: feeds, fetch results, rendezvous, trace.

    Written by the session before the step and by RETVAL nodes during it; read after done.
    """

    __slots__ = ("step_id", "args", "rets", "rendezvous", "trace", "done", "error",
                 "_remaining", "on_abort", "options", "bytes_moved")

    def __init__(self, step_id: int, args: list[Any], n_rets: int, n_parts: int,
                 done: Callable[[OpError | None], None], rendezvous: Any = None,
                 trace: list | None = None, options: Any = None):
        self.step_id = step_id
        self.args = args
        self.rets: list[Any] = [None] * n_rets
        self.rendezvous = rendezvous
        self.trace = trace          # list of (node, device, start, end) when tracing
        self.done = done
        self.error: OpError | None = None
        self._remaining = n_parts
        self.on_abort: list[Callable[[OpError], None]] = []
        self.options = options
        self.bytes_moved = 0  # bytes put into the rendezvous by this step's Sends

    def abort(self, error: OpError) -> None:
        """First error wins: remember it and wake everything waiting for this step."""
        if self.error is not None:
            return
        self.error = error
        if self.rendezvous is not None:
            self.rendezvous.abort(error)
        for cb in self.on_abort:
            cb(error)

    def part_done(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            self.done(self.error)


class IterState:
    """Pending counts, values and ready nodes of one (frame, iteration).

    Owned by the device actor. `pending`/`dead` are indexed by node, `values`/`refs` by slot;
    `ready` is the LIFO stack of runnable nodes. With frames: `frame` and `iter` say which
    iteration this is, `waiting` counts its asynchronous kernels in flight, `children` maps
    child frame templates to live child frames, `queued` says it is in `StepRun.active`.
    """

    __slots__ = ("pending", "values", "refs", "ready", "dead", "frame", "iter", "waiting",
                 "children", "queued", "deleted")

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


class Frame:
    """One instance of a frame template: a loop run for one iteration of its parent frame.

    Owned by the device actor. Iterations `first`..`last` are alive in `iters`; `pend_t`,
    `vals_t`, `dead_t`, `ready_t` are what a new iteration starts from (the template's, plus
    the loop invariants that arrived); `deferred` holds NextIteration outputs waiting for room
    under `parallel_iterations`; `dead_exits` the dead Exit nodes of the newest iteration.
    """

    __slots__ = ("info", "parent", "iters", "first", "last", "pending_enters", "deferred",
                 "dead_exits", "pend_t", "vals_t", "dead_t", "ready_t")

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

    def new_iteration(self, queued: bool = True) -> IterState:
        k = self.last + 1
        st = IterState(self.pend_t.copy(), self.vals_t.copy(), self.info.refs0.copy(),
                       self.ready_t.copy(), self.dead_t.copy(), self, k, queued)
        self.iters[k] = st
        self.last = k
        self.dead_exits = []
        return st


class StepRun:
    """One step of one Executable on its device: a work item for the device actor.

    `active` lists the IterStates that have ready nodes (just the root without control flow).
    """

    __slots__ = ("exe", "ctx", "root", "active", "waiting", "finished", "handoff", "current",
                 "peak_iterations")

    def __init__(self, exe: Executable, ctx: StepContext):
        self.exe = exe
        self.ctx = ctx
        if exe.cf is None:
            self.root = IterState(exe.pending0.copy(), [None] * exe.n_slots, exe.refs0.copy(),
                                  exe.roots.copy())
        else:
            self.root = Frame(exe.cf.frames[0], None, exe.cf).new_iteration()
        self.active: list[IterState] = [self.root]
        self.waiting = 0
        self.finished = False
        self.handoff = False
        self.current: IterState | None = None  # the IterState `_drain_cf` is running
        self.peak_iterations = 1  # most iterations of one frame alive at once (statistics)

    async def run(self, device: Any) -> None:
        await self._drain(device)

    def run_inline(self, device: Any) -> bool:
        """Run on the caller's thread (holding the device's baton) as far as possible without
        waiting. Returns True if the step must be handed to the device actor to go on."""
        coro = self._drain(device, inline=True)
        try:
            coro.send(None)
        except StopIteration:
            return self.handoff
        coro.close()
        raise InternalError("the inline executor tried to wait")

    async def _drain(self, device: Any, inline: bool = False) -> None:
        if self.exe.cf is not None:
            await self._drain_cf(device, inline)
            return
        exe = self.exe
        fns, kinds, in_slots, out_slots, succ = (
            exe.fns, exe.kinds, exe.in_slots, exe.out_slots, exe.succ)
        ctx = self.ctx
        release = device.pool.release
        trace = ctx.trace
        clock = time.perf_counter
        ndarray = np.ndarray
        deadline = clock() + _CHECKPOINT_EVERY
        count = 0
        active = self.active
        device.activate()
        while active and ctx.error is None:
            st = active.pop()
            ready, values, refs, pending = st.ready, st.values, st.refs, st.pending
            # ---- the loop: pop a ready node, run it, pass its outputs on, wake successors ----
            while ready:
                i = ready.pop()
                slots = in_slots[i]
                args = [values[s] for s in slots] if slots else ()
                kind = kinds[i]
                try:
                    if trace is not None:
                        t0 = clock()
                    if kind == INLINE:
                        outs = fns[i](*args)
                    elif kind == ARG:
                        outs = (ctx.args[fns[i]],)
                    elif kind == RETVAL:
                        ctx.rets[fns[i]] = args[0]
                        outs = ()
                    elif kind == STEP:
                        outs = fns[i](ctx, *args)
                    elif kind == ASYNC and (outs := fns[i].poll(ctx, *args)) is not None:
                        pass  # an asynchronous kernel whose input is already there (a Recv)
                    elif inline:  # waiting needs the actor: hand the step over
                        ready.append(i)
                        active.append(st)
                        self.handoff = True
                        return
                    else:  # ASYNC or THREAD: continue when it is done (see _Resume)
                        self.waiting += 1
                        device.start_soon(self._run_async, device, i, st, args)
                        continue
                    if trace is not None:
                        trace.append((exe.names[i], device.name, t0, clock()))
                except Exception as e:  # noqa: BLE001 - every kernel failure aborts the step
                    ctx.abort(_node_error(e, exe.names[i], exe.ops[i], device.name, args))
                    break
                for port, s in out_slots[i]:
                    values[s] = outs[port]
                for s in slots:
                    r = refs[s] - 1
                    refs[s] = r
                    if r == 0:
                        v = values[s]
                        values[s] = None
                        if type(v) is ndarray:
                            release(v)
                for j in succ[i]:
                    p = pending[j] - 1
                    pending[j] = p
                    if p == 0:
                        ready.append(j)
                count += 1
                if not (count & 63) and not inline and clock() > deadline:
                    if ready:
                        active.append(st)
                    await trio.lowlevel.checkpoint()
                    device.activate()
                    deadline = clock() + _CHECKPOINT_EVERY
                    break
        self._maybe_finish()

    async def _drain_cf(self, device: Any, inline: bool = False) -> None:
        """`_drain` for a graph with frames: the same loop, plus a dead-input check per node.
        Merge, Switch and NextIteration run inline here (they are on every iteration's path);
        the other primitives and dead nodes go to `_special`."""
        exe = self.exe
        cf = exe.cf
        assert cf is not None
        fns, kinds, in_slots, out_slots, succ = (
            exe.fns, exe.kinds, exe.in_slots, exe.out_slots, exe.succ)
        switch_ports, n_data_in, merge_index = cf.switch_ports, cf.n_data_in, cf.merge_index
        ctx = self.ctx
        release = device.pool.release
        trace = ctx.trace
        clock = time.perf_counter
        ndarray = np.ndarray
        deadline = clock() + _CHECKPOINT_EVERY
        count = 0
        active = self.active
        special = self._special
        device.activate()
        while active and ctx.error is None:
            st = active.pop()  # st.queued stays True while it runs: deliveries into it only
            self.current = st  # push onto `ready`
            ready, values, refs, pending, dead = st.ready, st.values, st.refs, st.pending, st.dead
            # ---- the loop: pop a ready node, run it, pass its outputs on, wake successors ----
            pause = False
            while ready:
                i = ready.pop()
                kind = kinds[i]
                slots = in_slots[i]
                if kind > THREAD or dead[i]:  # a primitive, or a dead node
                    try:
                        if kind == IDENT and not dead[i]:  # LoopCond, Identity
                            v = values[slots[0]]
                            for _, s in out_slots[i]:
                                values[s] = v
                            nexts = succ[i]
                        elif kind == MERGE:  # its first live input, or dead if none
                            k = 0
                            v = values[slots[0]]
                            if v is None:
                                for k in range(1, n_data_in[i]):
                                    v = values[slots[k]]
                                    if v is not None:
                                        break
                                else:
                                    special(i, st, kind, device)
                                    count += 1
                                    continue
                            for port, s in out_slots[i]:
                                values[s] = v if port == 0 else merge_index[k]
                            nexts = succ[i]
                        elif kind == SWITCH and not dead[i]:  # one port live, the other dead
                            v = values[slots[0]]
                            live0, live1, dead0, dead1, s0, s1, exits0, exits1 = \
                                switch_ports[i]
                            if values[slots[1]]:
                                if s1 is not None:
                                    values[s1] = v
                                nexts, dead_edges, dead_exits = live1, dead0, exits0
                            else:
                                if s0 is not None:
                                    values[s0] = v
                                nexts, dead_edges, dead_exits = live0, dead1, exits1
                            if dead_edges:
                                self._deliver_dead(st, dead_edges)
                            if dead_exits and st.iter == st.frame.last:
                                st.frame.dead_exits.extend(dead_exits)
                        elif kind == NEXTITER and not dead[i]:  # into the next iteration
                            v = values[slots[0]]
                            f = st.frame
                            k = st.iter + 1
                            nxt = f.iters.get(k)
                            if nxt is None and k - f.first < f.info.parallel:
                                nxt = self._new_iteration(f)
                            if nxt is None:  # started when the oldest iteration ends
                                f.deferred.append((i, (v,)))
                            else:
                                nvalues, npending = nxt.values, nxt.pending
                                for _, s in out_slots[i]:
                                    nvalues[s] = v
                                for j in succ[i]:
                                    p = npending[j] - 1
                                    npending[j] = p
                                    if p == 0:
                                        nxt.ready.append(j)
                                if not nxt.queued and nxt.ready:
                                    nxt.queued = True
                                    active.append(nxt)
                            nexts = ()
                        else:
                            special(i, st, kind, device)
                            count += 1
                            continue
                    except Exception as e:  # noqa: BLE001
                        ctx.abort(_node_error(e, exe.names[i], exe.ops[i], device.name, None))
                        break
                    if trace is not None:
                        t0 = clock()
                        trace.append((exe.names[i], device.name, t0, t0))
                else:
                    args = [values[s] for s in slots] if slots else ()
                    try:
                        if trace is not None:
                            t0 = clock()
                        if kind == INLINE:
                            outs = fns[i](*args)
                        elif kind == ARG:
                            outs = (ctx.args[fns[i]],)
                        elif kind == RETVAL:
                            ctx.rets[fns[i]] = args[0]
                            outs = ()
                        elif kind == STEP:
                            outs = fns[i](ctx, *args)
                        elif kind == ASYNC and (outs := fns[i].poll(ctx, *args)) is not None:
                            pass
                        elif inline:  # waiting needs the actor: hand the step over
                            ready.append(i)
                            active.append(st)
                            self.current = None
                            self.handoff = True
                            return
                        else:  # ASYNC or THREAD: continue when it is done (see _Resume)
                            self.waiting += 1
                            st.waiting += 1
                            device.start_soon(self._run_async, device, i, st, args)
                            continue
                        if trace is not None:
                            trace.append((exe.names[i], device.name, t0, clock()))
                    except Exception as e:  # noqa: BLE001 - every kernel failure aborts the step
                        ctx.abort(_node_error(e, exe.names[i], exe.ops[i], device.name, args))
                        break
                    for port, s in out_slots[i]:
                        values[s] = outs[port]
                    nexts = succ[i]
                for s in slots:
                    r = refs[s] - 1
                    refs[s] = r
                    if r == 0:
                        v = values[s]
                        values[s] = None
                        if type(v) is ndarray:
                            release(v)
                for j in nexts:
                    p = pending[j] - 1
                    pending[j] = p
                    if p == 0:
                        ready.append(j)
                count += 1
                if not (count & 63) and not inline and clock() > deadline:
                    pause = True
                    break
            self.current = None
            if ctx.error is not None:
                break
            if ready:
                active.append(st)  # still queued
            else:
                st.queued = False
                if st.frame.parent is not None:
                    self._maybe_iter_done(st)
            if pause:
                await trio.lowlevel.checkpoint()
                device.activate()
                deadline = clock() + _CHECKPOINT_EVERY
        self._maybe_finish()

    # -- control flow -------------------------------------------------------------------------
    def _special(self, i: int, st: IterState, kind: int, device: Any) -> None:
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
            raise InternalError(f"live node {exe.names[i]} reached _special")
        else:  # Enter, Exit, NextIteration, Identity forward their input
            outs = (values[slots[0]],)
        if not is_dead and self.ctx.trace is not None:
            t = time.perf_counter()
            self.ctx.trace.append((exe.names[i], device.name, t, t))
        self._consume(st, slots)
        if is_dead:
            if kind == EXIT:
                f = st.frame
                if st.iter == f.last:
                    f.dead_exits.append(i)
            elif kind == NEXTITER:
                pass  # stops here: a dead value starts no iteration
            elif kind == ENTER:
                self._enter(i, st, None)
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
                self._deliver_dead(st, cf.dead_succ[i])
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
                self._wake(st, live1)
                self._deliver_dead(st, dead0)
                if exits0 and st.iter == f.last:
                    f.dead_exits.extend(exits0)
            else:
                if s0 is not None:
                    values[s0] = data
                self._wake(st, live0)
                self._deliver_dead(st, dead1)
                if exits1 and st.iter == f.last:
                    f.dead_exits.extend(exits1)
        elif kind == ENTER:
            self._enter(i, st, outs)
        elif kind == EXIT:
            self._deliver(st.frame.parent, i, outs)
        elif kind == NEXTITER:
            f = st.frame
            k = st.iter + 1
            nxt = f.iters.get(k)
            if nxt is None:
                if k - f.first >= f.info.parallel:
                    f.deferred.append((i, outs))  # started when the oldest iteration ends
                    return
                nxt = self._new_iteration(f)
            self._deliver(nxt, i, outs)
        else:  # Merge, ControlTrigger, Identity
            self._deliver(st, i, outs)

    def _consume(self, st: IterState, slots: tuple[int, ...]) -> None:
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

    def _queue(self, st: IterState) -> None:
        if not st.queued:
            st.queued = True
            self.active.append(st)

    def _wake(self, st: IterState, nodes: tuple[int, ...]) -> None:
        pending, ready = st.pending, st.ready
        for j in nodes:
            p = pending[j] - 1
            pending[j] = p
            if p == 0:
                ready.append(j)
        if ready and not st.queued:
            st.queued = True
            self.active.append(st)

    def _deliver(self, st: IterState, i: int, outs: Any) -> None:
        """Node i's live outputs into iteration `st`: values, pending counts, ready nodes."""
        values = st.values
        for port, s in self.exe.out_slots[i]:
            values[s] = outs[port]
        self._wake(st, self.exe.succ[i])

    def _deliver_dead(self, st: IterState, edges: Any, from_enter: bool = False) -> None:
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

    def _enter(self, i: int, st: IterState, outs: Any) -> None:
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
            self._new_iteration(f)
        if cf.enter_const[i]:  # a loop invariant: every iteration, now and later
            self._add_invariant(f, i, outs)
            for it in list(f.iters.values()):
                if outs is None:
                    self._deliver_dead(it, cf.dead_succ[i], True)
                else:
                    self._deliver(it, i, outs)
        else:
            it0 = f.iters.get(0)
            if it0 is None:
                raise InternalError(f"Enter '{self.exe.names[i]}' found its frame's first "
                                    f"iteration gone (please report)")
            if outs is None:
                self._deliver_dead(it0, cf.dead_succ[i], True)
            else:
                self._deliver(it0, i, outs)
        f.pending_enters -= 1
        if f.pending_enters == 0:
            first = f.iters.get(f.first)
            if first is not None:
                self._maybe_iter_done(first)

    def _add_invariant(self, f: Frame, i: int, outs: Any) -> None:
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

    def _new_iteration(self, f: Frame) -> IterState:
        st = f.new_iteration(False)
        if st.iter - f.first >= self.peak_iterations:
            self.peak_iterations = st.iter - f.first + 1
        if st.ready:
            st.queued = True
            self.active.append(st)
        return st

    def _maybe_iter_done(self, st: IterState) -> None:
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
                nxt = self._new_iteration(f)
                deferred, f.deferred = f.deferred, []
                for node, outs in deferred:
                    self._deliver(nxt, node, outs)
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
                self._deliver_dead(parent, cf.dead_succ[x])
            st = parent

    def _propagate(self, i: int, st: IterState, outs: Any) -> None:
        """Hand the outputs of node i (finished asynchronously) on, as the loop does."""
        values, refs, pending = st.values, st.refs, st.pending
        for port, s in self.exe.out_slots[i]:
            values[s] = outs[port]
        release = self.exe.device.pool.release
        for s in self.exe.in_slots[i]:
            r = refs[s] - 1
            refs[s] = r
            if r == 0:
                v = values[s]
                values[s] = None
                if type(v) is np.ndarray:
                    release(v)
        for j in self.exe.succ[i]:
            p = pending[j] - 1
            pending[j] = p
            if p == 0:
                st.ready.append(j)
        if self.exe.cf is not None:
            st.waiting -= 1
            self._queue(st)  # the loop checks whether its iteration is finished
        elif st.ready and st not in self.active:
            self.active.append(st)

    async def _run_async(self, device: Any, i: int, st: IterState, args: list[Any]) -> None:
        exe, ctx = self.exe, self.ctx
        try:
            t0 = time.perf_counter()
            if exe.kinds[i] == THREAD:
                outs = await device.run_in_thread(exe.fns[i], *args)
            else:
                outs = await exe.fns[i](ctx, *args)
            if ctx.trace is not None:
                ctx.trace.append((exe.names[i], device.name, t0, time.perf_counter()))
        except Exception as e:  # noqa: BLE001
            ctx.abort(_node_error(e, exe.names[i], exe.ops[i], device.name, args))
            outs = None
        device.submit(_Resume(self, i, st, outs))

    def _maybe_finish(self) -> None:
        if self.finished or self.waiting:
            return
        if self.ctx.error is None and any(st.ready for st in self.active):
            return
        self.finished = True
        self.active = []
        if self.ctx.error is None and self.exe.cf is not None and self.root.children:
            names = ", ".join(f"'{f.info.name}'" for f in self.root.children.values())
            self.ctx.abort(InternalError(
                f"the step ended with while loop frame(s) {names} unfinished: a node in them "
                f"waits for an input that never comes (please report)"))
        self.ctx.part_done()


class _Resume:
    """Continuation of a step after an asynchronous kernel finished (runs on the actor)."""

    __slots__ = ("run_", "i", "st", "outs")

    def __init__(self, run_: StepRun, i: int, st: IterState, outs: Any):
        self.run_, self.i, self.st, self.outs = run_, i, st, outs

    async def run(self, device: Any) -> None:
        r = self.run_
        r.waiting -= 1
        if self.outs is not None and r.ctx.error is None:
            r._propagate(self.i, self.st, self.outs)
            await r._drain(device)
        else:
            r._maybe_finish()


def _node_error(e: Exception, node: str, op: str, device: str, args: Any) -> OpError:
    if isinstance(e, OpError):
        return e.with_location(node=node, device=device)
    if isinstance(e, trio.Cancelled):
        return CancelledError("the step was cancelled", node=node, device=device)
    shapes_ = ", ".join(
        f"{getattr(a, 'dtype', type(a).__name__)}{list(getattr(a, 'shape', ()))}"
        for a in (args or ()))
    if isinstance(e, ValueError | TypeError | IndexError | ZeroDivisionError | FloatingPointError):
        err: OpError = InvalidArgumentError(
            f"{op} failed on inputs ({shapes_}): {e}", node=node, device=device)
    else:
        err = InternalError(f"{op} raised {type(e).__name__}: {e} on inputs ({shapes_})",
                            node=node, device=device)
    err.__cause__ = e
    return err


# ------------------------------------------------------------------------------------------
# Compilation of one partition
# ------------------------------------------------------------------------------------------
def compile_partition(graph: GraphDef, device: Any, *,
                      kernel_lookup: Callable[[str, str], Any] = registry.lookup) -> Executable:
    """Instantiate kernels and build the dense arrays for `graph` on `device`.

    Raises InvalidArgument for a cycle or a dangling input, NotFound for an op without a
    kernel on this device.
    """
    nodes = graph.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    n = len(nodes)
    # output slots: one per output port that has a reader
    readers: dict[tuple[int, int], int] = {}
    succ_lists: list[list[int]] = [[] for _ in range(n)]
    pending0 = [0] * n
    in_pairs: list[list[tuple[int, int]]] = []
    controls: list[list[int]] = []
    for j, nd in enumerate(nodes):
        pairs = []
        ctrl: list[int] = []
        controls.append(ctrl)
        for spec in nd.inputs:
            if spec.startswith("^"):
                src = _index_of(index, spec[1:], nd)
                succ_lists[src].append(j)
                pending0[j] += 1
                ctrl.append(src)
                continue
            name, port = parse_input(spec)
            src = _index_of(index, name, nd)
            readers[(src, port)] = readers.get((src, port), 0) + 1
            pairs.append((src, port))
            succ_lists[src].append(j)
            pending0[j] += 1
        in_pairs.append(pairs)
    slot_of: dict[tuple[int, int], int] = {}
    for key in sorted(readers):
        slot_of[key] = len(slot_of)
    refs0 = [0] * len(slot_of)
    for key, count in readers.items():
        refs0[slot_of[key]] = count
    out_slots: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for (src, port), s in slot_of.items():
        out_slots[src].append((port, s))
    cf = None
    if any(nd.op in CF_OPS for nd in nodes):
        cf = analyze(nodes, in_pairs, controls, slot_of, len(slot_of))
    else:
        _check_acyclic(nodes, succ_lists, pending0)

    fns: list[Any] = []
    kinds: list[int] = []
    n_args = n_rets = 0
    threshold = device.thread_threshold_us()
    for j, nd in enumerate(nodes):
        if nd.op == "_Arg":
            fns.append(int(nd.attrs["index"]))
            kinds.append(ARG)
            n_args = max(n_args, int(nd.attrs["index"]) + 1)
            continue
        if nd.op == "_Retval":
            fns.append(int(nd.attrs["index"]))
            kinds.append(RETVAL)
            n_rets = max(n_rets, int(nd.attrs["index"]) + 1)
            continue
        if nd.op in _CF_KINDS:  # run by the executor itself
            fns.append(None)
            kinds.append(_CF_KINDS[nd.op] if cf is not None else INLINE)
            if cf is None:  # a ControlTrigger in a graph without frames: a NoOp
                fns[-1] = _noop
            continue
        if cf is not None and nd.op in _IDENT_OPS and len(in_pairs[j]) == 1:
            fns.append(None)
            kinds.append(IDENT)
            continue
        kdef = kernel_lookup(nd.op, device.device_type)
        kctx = _kernel_context(nd, nodes, index, in_pairs[j], device)
        try:
            fn = kdef.factory(kctx)
        except OpError as e:
            raise e.with_location(node=nd.name, device=device.name) from None
        if kdef.is_async:
            kind = ASYNC
        elif getattr(fn, "needs_step", False):
            kind = STEP
        elif kdef.cost is not None and kdef.cost(kctx) > threshold:
            kind = THREAD
        else:
            kind = INLINE
        fns.append(fn)
        kinds.append(kind)
    return Executable(
        device=device,
        names=[nd.name for nd in nodes],
        ops=[nd.op for nd in nodes],
        fns=fns,
        kinds=kinds,
        in_slots=[tuple(slot_of[p] for p in pairs) for pairs in in_pairs],
        out_slots=[tuple(sorted(o)) for o in out_slots],
        succ=cf.succ if cf is not None else [tuple(s) for s in succ_lists],
        pending0=pending0,
        refs0=refs0,
        # reversed so the LIFO stack pops roots in graph order (ties broken by build order)
        roots=[j for j in reversed(range(n)) if pending0[j] == 0],
        n_slots=len(slot_of),
        n_args=n_args,
        n_rets=n_rets,
        index=index,
        cf=cf,
    )


def _noop(*args: Any) -> tuple:
    return ()


def _index_of(index: dict[str, int], name: str, nd: NodeDef) -> int:
    try:
        return index[name]
    except KeyError:
        raise InvalidArgumentError(
            f"node '{nd.name}' reads from '{name}', which is not in the graph") from None


def _kernel_context(nd: NodeDef, nodes: list[NodeDef], index: dict[str, int],
                    pairs: list[tuple[int, int]], device: Any) -> KernelContext:
    in_dtypes, in_shapes = [], []
    for src, port in pairs:
        s = nodes[src]
        in_dtypes.append(dtypes.as_dtype(s.out_dtypes[port]) if port < len(s.out_dtypes)
                         else None)
        in_shapes.append(s.out_shapes[port] if port < len(s.out_shapes) else None)
    return KernelContext(
        name=nd.name, op=nd.op, attrs=nd.attrs,
        out_dtypes=[dtypes.as_dtype(d) for d in nd.out_dtypes],
        out_shapes=list(nd.out_shapes), in_dtypes=in_dtypes, in_shapes=in_shapes,
        device=device)


def _check_acyclic(nodes: list[NodeDef], succ: list[list[int]], pending0: list[int]) -> None:
    error = cycle_error(nodes, succ, pending0)
    if error is not None:
        raise error


def cycle_error(nodes: list[NodeDef], succ: list[list[int]],
                pending0: list[int]) -> InvalidArgumentError | None:
    """None if the graph (edges `succ`, in-degrees `pending0`) has no cycle, else the error
    naming one."""
    pending = pending0.copy()
    stack = [i for i, p in enumerate(pending) if p == 0]
    seen = 0
    while stack:
        i = stack.pop()
        seen += 1
        for j in succ[i]:
            pending[j] -= 1
            if pending[j] == 0:
                stack.append(j)
    if seen == len(nodes):
        return None
    stuck = [i for i, p in enumerate(pending) if p > 0]
    cycle = _find_cycle(stuck, succ, set(stuck))
    path = " -> ".join(nodes[i].name for i in cycle)
    return InvalidArgumentError(
        f"the graph has a cycle: {path}; a node cannot depend on its own output (use "
        f"af.while_loop for iteration)")


def _find_cycle(stuck: list[int], succ: list[list[int]], allowed: set[int]) -> list[int]:
    start = stuck[0]
    path, on_path = [start], {start: 0}
    i = start
    for _ in range(len(allowed) + 1):
        nxt = next((j for j in succ[i] if j in allowed), None)
        if nxt is None:
            break
        if nxt in on_path:
            return path[on_path[nxt]:] + [nxt]
        on_path[nxt] = len(path)
        path.append(nxt)
        i = nxt
    return path
