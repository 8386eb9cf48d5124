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
from scheduler.control_flow import CF_OPS, ControlFlowInfo, analyze
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
_CF_KINDS = {"Switch": SWITCH, "Merge": MERGE, "Enter": ENTER, "Exit": EXIT,
             "NextIteration": NEXTITER, "ControlTrigger": CTRIG}

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
    """Pending counts, values and ready nodes of one (frame, iteration)."""

    __slots__ = ("pending", "values", "refs", "ready")

    def __init__(self, exe: Executable):
        self.pending = exe.pending0.copy()
        self.values: list[Any] = [None] * exe.n_slots
        self.refs = exe.refs0.copy()
        self.ready: list[int] = []


class StepRun:
    """One step of one Executable on its device: a work item for the device actor.

    `active` lists the IterStates that have ready nodes (just the root without control flow).
    """

    __slots__ = ("exe", "ctx", "root", "active", "waiting", "finished", "handoff")

    def __init__(self, exe: Executable, ctx: StepContext):
        self.exe = exe
        self.ctx = ctx
        self.root = IterState(exe)
        self.root.ready = exe.roots.copy()
        self.active: list[IterState] = [self.root]
        self.waiting = 0
        self.finished = False
        self.handoff = False

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
        if st.ready and st not in self.active:
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
    for j, nd in enumerate(nodes):
        pairs = []
        for spec in nd.inputs:
            if spec.startswith("^"):
                src = _index_of(index, spec[1:], nd)
                succ_lists[src].append(j)
                pending0[j] += 1
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
        succ=[tuple(s) for s in succ_lists],
        pending0=pending0,
        refs0=refs0,
        # reversed so the LIFO stack pops roots in graph order (ties broken by build order)
        roots=[j for j in reversed(range(n)) if pending0[j] == 0],
        n_slots=len(slot_of),
        n_args=n_args,
        n_rets=n_rets,
        index=index,
    )


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
        return
    stuck = [i for i, p in enumerate(pending) if p > 0]
    cycle = _find_cycle(stuck, succ, set(stuck))
    path = " -> ".join(nodes[i].name for i in cycle)
    raise InvalidArgumentError(
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
