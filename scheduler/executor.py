"""The dataflow executor: runs one compiled partition for one step on its device actor.

Usage
-----
    exe = compile_partition(graph_def, device)               # once (scheduler.executable)
    ctx = StepContext(step_id, feeds, n_rets, n_parts=1, done=on_done)   # per step
    device.run_or_post(StepRun(exe, ctx))                    # the device's one door
    # ... on_done(error) is called once every partition of the step has finished

Design
------
A `StepRun` is a work item for the device (`devices.device`): `run_slice` runs ready nodes
for at most one slice (`SLICE_S`, ~1 ms) and returns itself if there is more to run now (the
device posts it to the back of its mailbox: other steps get their turn, the trio loop its
checkpoint), or None when the step finished or waits for an asynchronous kernel. The same
code runs inline on a caller's thread and on the actor; off the device's trio thread it cannot
start tasks, so a kernel that must wait there is *parked* and the step handed to the actor.

State (one `StepRun` per step per device; owned by whoever holds the device):
  active    LIFO list of the IterStates with ready nodes (just the root without frames)
  frames    the step's `scheduler.frame_ops.FrameOps`, a component sharing `active` (made
            when first needed in a graph without frames)
  tasks     the cancel scopes of its asynchronous kernels in flight
  IterState per (frame, iteration) (`scheduler.frame_ops`):
    pending   per-node count of edges not yet satisfied, copied from pending0 per step
    dead      per-node count of dead inputs (all zeros, shared, without control flow)
    values    per-slot values, copied from the Executable's `values0` (the bound Consts); a
              slot is cleared after its last consumer (refs hits 0) and its buffer released
              to the pool, except the 0-d numbers and bound Consts, kept till the iteration
              or step ends (`Executable.release_slots`)
    refs      per-slot count of consumers that have not run yet (of the slots released)
    ready     LIFO stack of runnable nodes (finishes chains first, bounding memory)
  waiting   number of asynchronous kernels in flight (Recv, worker-thread kernels)
  queued    True while the StepRun sits in its device's mailbox (so it is posted once)
  caller    the thread that started the step (which threads may finish it: `_on_value`)
  pc        a straight run: the index of the next node of `Executable.straight` (-1: the
            ready loop runs this step); `values` its slots (it has no IterState)

One ready loop (`_drain`) runs every graph: a graph without control flow is a root frame with
one iteration. Frames (WP §4.4, OSDI §3.4): every (frame, iteration) of a loop gets its own
`IterState`; `scheduler.control_flow.analyze` works out the static part (each node's frame
template, pending counts without back edges, initial values). The loop runs kernels and the
per-iteration primitives (Merge, Switch, NextIteration, Identity) itself; Enter, Exit, dead
nodes and the rest go to `FrameOps.special`.
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
  - Fused loops: a loop whose body is only synchronous kernels (`control_flow.plan_fused`)
    gains nothing from overlapping iterations, since one actor runs them all anyway. Once
    every Enter has arrived, `FrameOps.run_fused` runs it iteration after iteration over a
    fixed list of nodes, one value per slot and no pending counts (a scalar counting loop:
    181-193k iterations per CPU second fused, 45-46k through the ready loop), within the
    same slices, and delivers its Exits through the same `deliver` as everything else.
  - Straight runs: a partition without frames whose every node is a kernel run inline (no
    ASYNC or THREAD kernel, but for a poll-first one: an `af.data` get_next, polled in its
    place, the step handed to this loop when it finds nothing) is run by this loop in an
    order that depends on the graph alone.
    `Executable.straight` is that order, worked out at compile time by this loop's
    scheduling without kernels; an untraced step runs it as a list (`scheduler.straight_run`):
    the same kernels in the same order, the same stores, releases and errors, without
    pending counts, refs or a ready stack per step (`pc` says where the next slice starts).
    A scalar ``x + 1.0`` costs ~0.35 us a node so, against ~0.7 through the loop.

The bookkeeping after a node ran (store its outputs, release inputs after their last reader,
decrement successors' pending counts) is written once in the loop and once as a function
(`_propagate` / `FrameOps.wake`, `consume`) for work that arrives from outside the loop:
calling a function per node would cost the loop ~0.1 us a node.

The loop reads all it needs of node i in one unpack of `Executable.nodes[i]` (its code,
function, input slots, outputs, successors, slots to release, late successors); an inline
kernel of one or two inputs whose one read output is port 0 has its own code (KERNEL1/2), and
so do feeds and fetches (FEED1, FETCH): the first branch of the loop, ``values[out] =
fn(a, b)[0]``. A traced step reads
`traced_nodes`, without those codes (every kernel through the general branch, which records
it). Any other inline kernel is called with its arguments read straight from their slots, by arity
(a list of them per call would cost more than a scalar kernel does).

Asynchronous kernels run as tasks in the device's nursery and re-enter the step through the
door (`_Resume`). Each runs under a cancel scope of its step: an aborted step (a deadline, an
error elsewhere, a cancelled caller) cancels them on the device's loop, so no wait of a dead
step lingers (`async_kernels_waiting` goes back to 0, a dequeue takes nothing).
A kernel with a ``subscribe(ctx, done, *inputs)`` needs no task: a Recv whose value is not
there yet subscribes to the rendezvous, a wait at a sync gate or an accumulator's take
watches its waiter (`devices.waits`); the step goes on from the callback (`_on_value`),
inline when the value came off the wire (the worker service's reader) and the device is
idle, else through the mailbox -- unless the thread completing it holds the device (a gate's
release in another step's slice): the continuation then runs on that thread right after its
slice, the device still held (`_holders`, `run_slice`), and wakes no thread but the waiting
step's caller. Such a thread takes it only for a step whose done-callback takes any thread
(one started off the device's trio thread, or when it is the trio thread).
The first error wins: it names the node and device, aborts the step (and its rendezvous,
waking every pending Recv), and is reported through ctx.done(error).

Tracing: ``ctx.trace`` is None or a `scheduler.step_trace.StepTrace`; the loop records one
`scheduler.tracing.node_record` per node run there (frame primitives and nodes in frames too).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from threading import get_ident
from typing import Any

import numpy as np
import trio

from devices.device import SLICE_S
from devices.errors import InternalError, OpError
from scheduler import tracing
from scheduler.executable import (  # noqa: F401  (Executable, compile_partition: re-exported)
    ARG,
    ASYNC,
    FEED1,
    IDENT,
    INLINE,
    KERNEL1,
    KERNEL2,
    MERGE,
    NEXTITER,
    RETVAL,
    STEP,
    SWITCH,
    THREAD,
    Executable,
    compile_partition,
    cycle_error,
)
from scheduler.frame_ops import Frame, FrameOps, IterState
from scheduler.node_errors import node_error
from scheduler.step_context import StepContext  # noqa: F401  (re-exported)
from scheduler.straight_run import run_straight

_NDARRAY = np.ndarray


class StepRun:
    """One step of one Executable on its device: a work item for the device actor."""

    __slots__ = ("exe", "ctx", "root", "active", "frames", "waiting", "finished", "queued",
                 "parked", "tasks", "caller", "pc", "values")

    def __init__(self, exe: Executable, ctx: StepContext):
        self.exe = exe
        self.ctx = ctx
        self.waiting = 0
        self.finished = False
        self.queued = False  # in its device's mailbox (so it is not posted twice)
        self.parked: list[tuple[int, IterState]] = []  # kernels left for the actor to start
        # the cancel scopes of this step's asynchronous kernels in flight (on the device's
        # trio thread): an aborted step cancels them, so no wait of it outlives it
        self.tasks: set[trio.CancelScope] | None = None
        self.frames: FrameOps | None = None
        if exe.straight is not None and ctx.trace is None:
            # a straight run (scheduler.straight_run): its values and where the next slice
            # starts; no IterState, no asynchronous kernel (so no caller to know)
            self.values: list[Any] = exe.values0.copy()
            self.pc = 0
            self.active: list[IterState] = []
            self.caller = 0
            return
        self.pc = -1  # the ready loop's
        if exe.cf is None:  # the root frame, with its one iteration
            self.root = IterState(exe.pending0.copy(), exe.values0.copy(), exe.refs0.copy(),
                                  exe.roots.copy(), exe.zeros)
            if ctx.trace is not None and exe.bound:
                self._trace_bound(exe, ctx.trace)
        else:
            self.root = Frame(exe.cf.frames[0], None, exe.cf).new_iteration()
        self.active = [self.root]
        if exe.cf is not None:  # the frames' operations (its component); made when first
            self.frames = FrameOps(exe, ctx, self.active)  # needed without frames
        self.caller = get_ident()  # the thread that started the step (`_on_value`)

    @property
    def peak_iterations(self) -> int:
        """Most iterations of one frame alive at once in this step (statistics)."""
        return self.frames.peak_iterations if self.frames is not None else 1

    def _frame_ops(self) -> FrameOps:
        frames = self.frames
        if frames is None:
            frames = self.frames = FrameOps(self.exe, self.ctx, self.active)
        return frames

    @staticmethod
    def _trace_bound(exe: Executable, trace: Any) -> None:
        """The Consts bound at compile time, traced as having run as the step starts."""
        t = time.perf_counter()
        for j in exe.bound:
            outs = tuple(exe.values0[s] for _, s in exe.out_slots[j])
            trace.append(tracing.node_record(exe.names[j], exe.device, t, t, exe.ops[j], outs))

    def run_slice(self, device: Any, on_loop: bool) -> StepRun | None:
        """One slice of the step (see `devices.device.WorkItem`): itself if there is more
        to run now, None when it finished or waits. On a sync caller's thread, slices follow
        each other there until someone else wants the device (or the step's deadline).
        Continuations handed to this thread during the slice (`_on_value`) run after it, the
        device still held: what they leave over is posted."""
        _holders[device] = get_ident()
        try:
            self.queued = False
            if self.finished:
                return None
            while self._drain(device, on_loop):
                if on_loop or self.parked or device.is_wanted() or (
                        time.perf_counter() > self.ctx.deadline):
                    self.queued = True
                    return self
                # Off the device's trio thread, with nobody waiting for the device, the
                # caller's thread goes on (the loop it would yield to is not this thread's).
            return None
        finally:
            del _holders[device]  # (no entry kept: the dict must not keep a device alive)
            if _later and (later := _later.pop(device, None)):
                for item in later:  # (each resumed step runs its own slice, and so on)
                    rest = item.run_slice(device, on_loop)
                    if rest is not None:
                        device.run_or_post(rest, False)

    def _on_value(self, device: Any, i: int, st: IterState, t0: float, on_loop: bool
                  ) -> Callable[[Any, Exception | None, bool], None]:
        """The callback a subscribed asynchronous kernel (node i: a Recv, a watched wait)
        calls with its outputs, from the thread that completed it: the step goes on through
        the device's door, right there if the kernel allows it (``resume``: a tensor from the
        wire, read in the worker service's reader) and the device is idle. When the thread
        completing it is the one holding this device (a release run by another step), the
        continuation runs on it after its slice (`run_slice`), no thread woken: on the
        device's trio thread always, on another thread only for a step whose done-callback
        takes any thread (one started off the trio thread: a sync caller's)."""
        anywhere = not on_loop or self.caller != get_ident()

        def done(outs: Any, error: Exception | None, resume: bool) -> None:
            ctx = self.ctx
            if error is not None:
                ctx.abort(node_error(error, self.exe.names[i], self.exe.ops[i], device.name,
                                     ()))
                outs = None
            elif ctx.trace is not None:  # (#16: the trace hook, 1 of 3)
                ctx.trace.append(tracing.node_record(self.exe.names[i], device, t0,
                                                     time.perf_counter(), self.exe.ops[i], outs))
            me = get_ident()
            if error is None and _holders.get(device) == me and (anywhere or me == self.caller):
                _later.setdefault(device, []).append(_Resume(self, i, st, outs))
            else:  # (a step started on the trio thread is finished only there: its caller)
                device.run_or_post(_Resume(self, i, st, outs), resume)

        return done

    def _drain(self, device: Any, on_loop: bool) -> bool:
        """Run ready nodes for one slice. True if the step has more to run now (the slice is
        spent, or a parked kernel waits for the actor), False when it finished or waits."""
        exe = self.exe
        ctx = self.ctx
        if self.pc >= 0:  # the loop's order, precomputed (scheduler.straight_run)
            if device.has_stream:
                device.activate()
            if run_straight(self, device):
                return True
            if ctx.error is not None:
                self._maybe_finish()
            elif not self.finished:
                self.finished = True
                ctx.part_done()
            return False
        trace = ctx.trace
        nodes = exe.nodes if trace is None else exe.traced_nodes
        cf = exe.cf
        if cf is not None:
            switch_ports, n_data_in, merge_index = cf.switch_ports, cf.n_data_in, cf.merge_index
        clock = time.perf_counter
        deadline = clock() + SLICE_S
        count = 0
        more = False
        active = self.active
        frames = self.frames
        parked = self.parked
        if parked and on_loop:  # kernels parked by an inline slice: the actor starts them
            for i, st in parked:
                st.waiting -= 1
                st.ready.append(i)
                self._frame_ops().queue(st)
            parked.clear()
        if device.has_stream:  # a GPU: make its stream current on this thread
            device.activate()
        # ---- the ready loop: an IterState with ready nodes; pop a node, run it, pass its
        # ---- outputs on, wake its successors; until nothing is ready or the slice is spent
        while active and ctx.error is None:
            st = active.pop()  # st.queued stays True while it runs: deliveries into it only
            if st.fused is not None:  # a whole simple loop at once
                if not frames.run_fused(st, device, deadline):
                    active.append(st)
                    more = True
                    break
                continue
            if frames is not None:
                frames.current = st  # (an iteration running is not finished)
            ready, values, refs, pending, dead = st.ready, st.values, st.refs, st.pending, st.dead
            pause = False
            while ready:
                i = ready.pop()
                kind, fn, slots, outs_to, nexts, rel, lt = nodes[i]
                if kind < 0 and not dead[i]:  # the fast path: a kernel of 2 or 1 inputs,
                    try:  # a feed, a fetch (outs_to: the one slot its output goes to)
                        if kind == KERNEL2:
                            values[outs_to] = fn(values[slots[0]], values[slots[1]])[0]
                        elif kind == KERNEL1:
                            values[outs_to] = fn(values[slots[0]])[0]
                        elif kind == FEED1:
                            values[outs_to] = ctx.args[fn]
                        else:  # FETCH
                            ctx.rets[fn] = values[slots[0]]
                    except Exception as e:  # noqa: BLE001 - every kernel failure aborts the step
                        ctx.abort(node_error(e, exe.names[i], exe.ops[i], device.name,
                                             [values[s] for s in slots]))
                        break
                elif kind > THREAD or dead[i]:  # a control-flow primitive, or a dead node
                    try:
                        if kind == IDENT and not dead[i]:  # LoopCond, Identity
                            v = values[slots[0]]
                            for _, s in outs_to:
                                values[s] = v
                        elif kind == MERGE:  # its first live input, or dead if none
                            k = 0
                            v = values[slots[0]]
                            if v is None:
                                for k in range(1, n_data_in[i]):
                                    v = values[slots[k]]
                                    if v is not None:
                                        break
                                else:
                                    frames.special(i, st, kind, device)
                                    count += 1
                                    continue
                            for port, s in outs_to:
                                values[s] = v if port == 0 else merge_index[k]
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
                                frames.deliver_dead(st, dead_edges)
                            if dead_exits and st.iter == st.frame.last:
                                st.frame.dead_exits.extend(dead_exits)
                        elif kind == NEXTITER and not dead[i]:  # into the next iteration
                            f = st.frame
                            k = st.iter + 1
                            nxt = f.iters.get(k)
                            if nxt is None and k - f.first < f.info.parallel:
                                nxt = frames.new_iteration(f)
                            if nxt is None:  # started when the oldest iteration ends
                                f.deferred.append((i, (values[slots[0]],)))
                            else:
                                frames.deliver(nxt, i, (values[slots[0]],))
                            nexts = ()
                        else:
                            frames.special(i, st, exe.kinds[i], device)
                            count += 1
                            continue
                    except Exception as e:  # noqa: BLE001
                        ctx.abort(node_error(e, exe.names[i], exe.ops[i], device.name, None))
                        break
                    if trace is not None:  # a frame primitive: a full record too (#16)
                        t0 = clock()
                        trace.append(tracing.node_record(
                            exe.names[i], device, t0, t0, exe.ops[i],
                            (values[slots[k] if kind == MERGE else slots[0]],)))
                else:  # a kernel (every kernel when tracing)
                    args = None
                    try:
                        if trace is not None:
                            t0 = clock()
                        if kind == INLINE:  # by arity: a list of the arguments would cost
                            n_in = len(slots)  # more than a scalar kernel itself
                            if n_in == 2:
                                outs = fn(values[slots[0]], values[slots[1]])
                            elif n_in == 1:
                                outs = fn(values[slots[0]])
                            elif n_in == 0:
                                outs = fn()
                            else:
                                outs = fn(*[values[s] for s in slots])
                        elif kind == ARG:
                            outs = (ctx.args[fn],)
                        elif kind == RETVAL:
                            ctx.rets[fn] = values[slots[0]]
                            outs = ()
                        else:  # the kinds that take a list of their arguments
                            args = [values[s] for s in slots]
                            if kind == STEP:
                                outs = fn(ctx, *args)
                            elif kind == ASYNC and (outs := fn.poll(ctx, *args)) is not None:
                                pass  # an asynchronous kernel whose input is already there
                            elif kind == ASYNC and (sub := getattr(fn, "subscribe", None)):
                                self.waiting += 1  # a Recv: its callback goes on (`_on_value`)
                                st.waiting += 1
                                sub(ctx, self._on_value(device, i, st, clock(), on_loop),
                                    *args)
                                continue
                            elif not on_loop:  # starting a task needs the device's trio
                                parked.append((i, st))  # thread: park it, run what else is
                                st.waiting += 1  # ready
                                continue
                            else:  # ASYNC or THREAD: continue when it is done (see _Resume)
                                self.waiting += 1
                                st.waiting += 1
                                device.start_soon(self._run_async, device, i, st, args)
                                continue
                        if trace is not None:  # (#16: the trace hook, 2 of 3)
                            trace.append(tracing.node_record(exe.names[i], device, t0, clock(),
                                                             exe.ops[i], outs))
                    except Exception as e:  # noqa: BLE001 - every kernel failure aborts the step
                        if args is None:
                            args = [values[s] for s in slots]
                        ctx.abort(node_error(e, exe.names[i], exe.ops[i], device.name, args))
                        break
                    for port, s in outs_to:
                        values[s] = outs[port]
                for s in rel:  # inputs after their last reader: cleared, buffers released
                    r = refs[s] - 1
                    refs[s] = r
                    if r == 0:
                        v = values[s]
                        values[s] = None
                        if type(v) is _NDARRAY:
                            device.pool.release(v)
                for j in nexts:  # successors: one edge satisfied; ready when none is left
                    p = pending[j] - 1
                    pending[j] = p
                    if p == 0:
                        ready.append(j)
                if lt:  # state updates: under the stack, after the readers ready now
                    for j in lt:
                        p = pending[j] - 1
                        pending[j] = p
                        if p == 0:
                            ready.insert(0, j)
                count += 1
                if not (count & 15) and clock() > deadline:
                    pause = True
                    break
            if frames is not None:
                frames.current = None
            if ctx.error is not None:
                break
            if ready:
                active.append(st)  # still queued
            else:
                st.queued = False
                if st.frame is not None and st.frame.parent is not None:
                    frames.maybe_iter_done(st)
            if pause:
                more = True
                break
        if ctx.error is None and (more or parked):
            return True
        if parked:
            for _, st in parked:
                st.waiting -= 1
            parked.clear()
        if active or self.waiting or ctx.error is not None or exe.cf is not None:
            self._maybe_finish()
        elif not self.finished:  # (the common end of a step without frames)
            self.finished = True
            ctx.part_done()
        return False

    def _propagate(self, i: int, st: IterState, outs: Any) -> None:
        """Hand on the outputs of node i (finished asynchronously), as the loop does."""
        frames = self._frame_ops()
        frames.consume(st, self.exe.release_slots[i])
        frames.deliver(st, i, outs)
        late = self.exe.succ_late[i]
        if late:
            pending = st.pending
            for j in late:
                p = pending[j] - 1
                pending[j] = p
                if p == 0:
                    st.ready.insert(0, j)
        st.waiting -= 1
        frames.queue(st)  # the loop checks whether its iteration is finished

    async def _run_async(self, device: Any, i: int, st: IterState, args: list[Any]) -> None:
        """Node i's asynchronous kernel, a task in the device's nursery (its trio thread),
        under a cancel scope the step's abort cancels; then the step goes on (`_Resume`)."""
        exe, ctx = self.exe, self.ctx
        tasks = self.tasks
        if tasks is None:  # (the callback holds the device and the set, not the run: no
            tasks = self.tasks = set()  # cycle keeping a finished step's values alive)
            ctx.on_abort.append(functools.partial(_cancel_tasks, device, tasks))
        outs = None
        with trio.CancelScope() as scope:
            tasks.add(scope)
            if ctx.error is not None:  # aborted before the task started
                scope.cancel()
            try:
                t0 = time.perf_counter()
                if exe.kinds[i] == THREAD:
                    outs = await device.run_in_thread(exe.fns[i], *args)
                else:
                    outs = await exe.fns[i](ctx, *args)
                if ctx.trace is not None:  # (#16: the trace hook, 3 of 3)
                    ctx.trace.append(tracing.node_record(exe.names[i], device, t0,
                                                         time.perf_counter(), exe.ops[i], outs))
            except Exception as e:  # noqa: BLE001
                ctx.abort(node_error(e, exe.names[i], exe.ops[i], device.name, args))
                outs = None
            finally:
                tasks.discard(scope)
        device.run_or_post(_Resume(self, i, st, outs))


    def _maybe_finish(self) -> None:
        if self.finished or self.waiting:
            return
        if self.ctx.error is None and any(st.ready for st in self.active):
            return
        self.finished = True
        self.active.clear()  # (the list FrameOps shares)
        if self.ctx.error is None and self.exe.cf is not None and self.root.children:
            names = ", ".join(f"'{f.info.name}'" for f in self.root.children.values())
            self.ctx.abort(InternalError(
                f"the step ended with while loop frame(s) {names} unfinished: a node in them "
                f"waits for an input that never comes (please report)"))
        self.ctx.part_done()


# The thread running a slice of each device now (no entry: none), and the continuations
# handed to it meanwhile (`StepRun._on_value`), run after its slice (`StepRun.run_slice`).
# Entry d of each is written only by the thread holding device d, and removed after its slice.
_holders: dict[Any, int] = {}
_later: dict[Any, list[_Resume]] = {}


def _cancel_tasks(device: Any, tasks: set[trio.CancelScope], error: OpError) -> None:
    """A step was aborted (from any thread): cancel its asynchronous kernels' waits, on the
    device's trio thread."""

    def cancel() -> None:
        for scope in list(tasks):
            scope.cancel()
    device.call_on_loop(cancel)


class _Resume:
    """Continuation of a step after an asynchronous kernel finished (a work item)."""

    __slots__ = ("run_", "i", "st", "outs")

    def __init__(self, run_: StepRun, i: int, st: IterState, outs: Any):
        self.run_, self.i, self.st, self.outs = run_, i, st, outs

    def run_slice(self, device: Any, on_loop: bool) -> StepRun | None:
        r = self.run_
        r.waiting -= 1
        if self.outs is not None and r.ctx.error is None:
            r._propagate(self.i, self.st, self.outs)
            if r.queued:  # in the mailbox already: it goes on in its turn
                return None
            return r.run_slice(device, on_loop)
        self.st.waiting -= 1
        r._maybe_finish()
        return None
