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
NextIteration runs in `_drain_cf` (`scheduler.frames`): the same loop plus a dead-input check
per node; the primitives and dead nodes go to `_special`. `scheduler.control_flow.analyze`
works out the static part (each node's frame template, pending counts without back edges,
initial values).
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
  - Fused loops: a loop whose body is only synchronous kernels (no nested loop, no cond,
    nothing asynchronous: `control_flow.plan_fused`) gains nothing from overlapping
    iterations, since one actor runs them all anyway. Once every Enter has arrived,
    `_run_fused` runs it iteration after iteration over a fixed list of nodes, with one value
    per slot and no pending counts (a checkpoint every ~1 ms as usual), and delivers its Exits.

The loop runs small kernels inline, a plain `while` over the ready stack, and checkpoints about
once a millisecond so other actors and sockets get the CPU. Asynchronous kernels run as tasks in
the device's nursery and re-enter the step through the mailbox (`_Resume`). A Recv whose value
is not there yet needs no task: it subscribes to the rendezvous (`_on_value`), and the step
goes on from the callback, through the mailbox, or right there when the value came off the
wire (the worker service's reader) and the device is idle (`run_inline`). The first error
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
from devices.errors import InternalError, InvalidArgumentError, OpError
from devices.kernels import registry
from devices.kernels.registry import KernelContext
from scheduler import tracing
from scheduler.control_flow import CF_OPS, ControlFlowInfo, analyze, plan_fused
from scheduler.frames import Frame, FrameSteps, IterState
from scheduler.graphdef import GraphDef, NodeDef, parse_input
from scheduler.kinds import (  # noqa: F401  (the kinds are part of this module's interface)
    _CF_KINDS,
    _CHECKPOINT_EVERY,
    _IDENT_OPS,
    ARG,
    ASYNC,
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
from scheduler.kinds import node_error as _node_error


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
    # Successors that update state (variables): pushed under the ready stack, so readers that
    # are ready already run first and the update can stay in place (no copy-on-write).
    succ_late: list[tuple[int, ...]] = field(default_factory=list)


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
        self.trace = trace          # list of `scheduler.tracing` records when tracing
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


class StepRun(FrameSteps):
    """One step of one Executable on its device: a work item for the device actor.

    `active` lists the IterStates that have ready nodes (just the root without control flow).
    """

    __slots__ = ("exe", "ctx", "root", "active", "waiting", "finished", "handoff", "queued",
                 "current", "peak_iterations")

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
        self.queued = False  # in its device's mailbox (so it is not queued twice)
        self.current: IterState | None = None  # the IterState `_drain_cf` is running
        self.peak_iterations = 1  # most iterations of one frame alive at once (statistics)

    async def run(self, device: Any) -> None:
        self.queued = False
        await self._drain(device)

    def submit_to(self, device: Any) -> None:
        """Queue this step on its device actor (from the device's trio thread)."""
        self.queued = True
        device.submit(self)

    def run_inline(self, device: Any) -> bool:
        """Run on the caller's thread (holding the device's baton) as far as possible without
        waiting. Returns True if the step must now be submitted to the device actor to go on
        (and marks it queued: False when it is in the mailbox already)."""
        self.handoff = False
        coro = self._drain(device, inline=True)
        try:
            coro.send(None)
        except StopIteration:
            if self.handoff and not self.queued:
                self.queued = True
                return True
            return False
        coro.close()
        raise InternalError("the inline executor tried to wait")

    def _on_value(self, device: Any, i: int, st: IterState, t0: float
                  ) -> Callable[[Any, Exception | None, bool], None]:
        """The callback a waiting Recv (node i) calls with its outputs: the step goes on right
        there when the rendezvous says it may (``resume``: a tensor from the wire, read in the
        worker service's reader) and the device is idle; else through the mailbox."""

        def done(outs: Any, error: Exception | None, resume: bool) -> None:
            ctx = self.ctx
            if error is not None:
                ctx.abort(_node_error(error, self.exe.names[i], self.exe.ops[i], device.name,
                                      ()))
                outs = None
            elif ctx.trace is not None:  # (#16: the executor's trace hook, 1 of 3)
                ctx.trace.append(tracing.node_record(self.exe.names[i], device, t0,
                                                     time.perf_counter(), self.exe.ops[i], outs))
            if resume and device.baton.acquire(blocking=False):
                try:
                    self.waiting -= 1
                    if outs is None or ctx.error is not None:
                        self._maybe_finish()
                        return
                    self._propagate(i, st, outs)
                    handoff = self.run_inline(device)
                finally:
                    device.baton.release()
                if handoff:
                    device.submit(self)  # run_inline marked it queued
            else:
                device.submit(_Resume(self, i, st, outs))

        return done

    async def _drain(self, device: Any, inline: bool = False) -> None:
        if self.exe.cf is not None:
            await self._drain_cf(device, inline)
            return
        exe = self.exe
        fns, kinds, in_slots, out_slots, succ, late = (
            exe.fns, exe.kinds, exe.in_slots, exe.out_slots, exe.succ, exe.succ_late)
        ctx = self.ctx
        release = device.pool.release
        trace = ctx.trace
        clock = time.perf_counter
        ndarray = np.ndarray
        deadline = clock() + _CHECKPOINT_EVERY
        count = 0
        active = self.active
        parked: list[tuple[int, IterState]] = []   # inline only: kernels that must wait
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
                    elif kind == ASYNC and (sub := getattr(fns[i], "subscribe", None)):
                        self.waiting += 1  # a Recv: its callback goes on (`_on_value`)
                        sub(ctx, self._on_value(device, i, st, clock()))
                        continue
                    elif inline:  # waiting needs the actor: park it, run what else is ready
                        parked.append((i, st))  # (a Send a peer waits on goes out now)
                        continue
                    else:  # ASYNC or THREAD: continue when it is done (see _Resume)
                        self.waiting += 1
                        device.start_soon(self._run_async, device, i, st, args)
                        continue
                    if trace is not None:  # (#16: the executor's trace hook, 2 of 3)
                        trace.append(tracing.node_record(exe.names[i], device, t0, clock(),
                                                         exe.ops[i], outs))
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
                for j in late[i]:
                    p = pending[j] - 1
                    pending[j] = p
                    if p == 0:
                        ready.insert(0, j)
                count += 1
                if not (count & 63) and not inline and clock() > deadline:
                    if ready:
                        active.append(st)
                    await trio.lowlevel.checkpoint()
                    device.activate()
                    deadline = clock() + _CHECKPOINT_EVERY
                    break
        if parked and ctx.error is None:  # hand the step, parked kernels first, to the actor
            for i, st in parked:
                st.ready.append(i)
                if st not in active:
                    active.append(st)
            self.handoff = True
            return
        self._maybe_finish()

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
        for j in self.exe.succ_late[i]:
            p = pending[j] - 1
            pending[j] = p
            if p == 0:
                st.ready.insert(0, j)
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
            if ctx.trace is not None:  # (#16: the executor's trace hook, 3 of 3)
                ctx.trace.append(tracing.node_record(exe.names[i], device, t0,
                                                     time.perf_counter(), exe.ops[i], outs))
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
    updates: set[int] = set()   # ops that write a resource they are given
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
        if kdef.stateful and nd.op not in _READS and "resource" in (
                nodes[src].out_dtypes[port] for src, port in in_pairs[j]):
            updates.add(j)
    if cf is not None:
        min_bytes = getattr(device.pool, "min_bytes", 0)
        plain = [k in (INLINE, IDENT, STEP, CTRIG) for k in kinds]
        pooled = [_may_pool(nd, min_bytes) for nd in nodes]
        plan_fused(cf, nodes, in_pairs, controls, slot_of, plain, pooled)
        in_slots_t = [tuple(slot_of[p] for p in pairs) for pairs in in_pairs]
        out_slots_t = [tuple(sorted(o)) for o in out_slots]
        for f in cf.frames:
            if f.fused is not None:
                f.fused.pred_prog = [_fused_step(i, kinds[i], fns[i], in_slots_t[i],
                                                 out_slots_t[i], pooled[i])
                                     for i in f.fused.pred_nodes]
                f.fused.body_prog = [_fused_step(i, kinds[i], fns[i], in_slots_t[i],
                                                 out_slots_t[i], pooled[i])
                                     for i in f.fused.body_nodes]
    return Executable(
        device=device,
        names=[nd.name for nd in nodes],
        ops=[nd.op for nd in nodes],
        fns=fns,
        kinds=kinds,
        in_slots=[tuple(slot_of[p] for p in pairs) for pairs in in_pairs],
        out_slots=[tuple(sorted(o)) for o in out_slots],
        succ=cf.succ if cf is not None else [
            tuple(j for j in s if j not in updates) for s in succ_lists],
        succ_late=[()] * n if cf is not None else [
            tuple(j for j in s if j in updates) for s in succ_lists],
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


_READS = frozenset({"ReadVariableOp", "VarIsInitializedOp", "VarHandleOp", "ResourceGather"})


def _noop(*args: Any) -> tuple:
    return ()


def _fused_step(i: int, kind: int, fn: Any, slots: tuple[int, ...],
                outs: tuple[tuple[int, int], ...], pooled: bool) -> tuple[Any, ...]:
    """One node of a fused loop's program: (code, node, fn, input slots, output) with code
    0/1: a kernel of 1/2 inputs and one read output (slot `output`), 2: an identity (its
    output slots), 3: a kernel whose outputs nobody reads, 9: anything else."""
    if kind == IDENT:
        return (2, i, fn, slots, tuple(s for _, s in outs))
    if kind == INLINE and not pooled:
        if len(outs) == 1 and outs[0][0] == 0 and len(slots) in (1, 2):
            return (len(slots) - 1, i, fn, slots, outs[0][1])
        if not outs:
            return (3, i, fn, slots, None)
    return (9, i, fn, slots, None)


def _may_pool(nd: NodeDef, min_bytes: int) -> bool:
    """True if a kernel of `nd` may return a pool buffer (an output of unknown or big size)."""
    for dt, shape in zip(nd.out_dtypes, nd.out_shapes, strict=False):
        if shape is None or any(d is None for d in shape):
            return True
        try:
            size = dtypes.as_dtype(dt).size
        except Exception:  # noqa: BLE001 - resources and the like: not pooled
            continue
        n = size
        for d in shape:
            n *= d
        if n >= min_bytes:
            return True
    return False


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
