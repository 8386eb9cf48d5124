"""A partition compiled for its device: `Executable`, the node opcodes, `compile_partition`.

    exe = compile_partition(graph_def, device)   # once per partition and device

`compile_partition` turns a partition's NodeDefs into dense integer arrays: node i's compute
function `fns[i]`, its opcode (`kinds[i]`: how the executor calls it), the value slots it reads
(`in_slots[i]`), the slots its outputs go to (`out_slots[i]`), its successors (`succ[i]`, one
entry per edge, data and control) and its initial pending count (`pending0[i]`: the number of
incoming edges). Nothing in the executor's loop looks anything up by name. A partition with
Switch, Merge, Enter, Exit or NextIteration also gets its frames (`scheduler.control_flow`).

Consts are bound at compile time (a partition without frames): an input-less Const's value is
computed here once and pre-placed in the slots every step starts with (`values0`); its
consumers' pending counts do not count it, and it is never scheduled, so a graph of many
``x + c`` terms runs one node per term, not two (`bound` lists them, for the trace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices import dtypes
from devices.errors import InvalidArgumentError, OpError
from devices.kernels import registry
from devices.kernels.registry import KernelContext
from scheduler.control_flow import CF_OPS, ControlFlowInfo, analyze, plan_fused
from scheduler.graphdef import GraphDef, NodeDef, parse_input

# Kernel kinds: how the loop calls fns[i].
INLINE = 0   # outs = fn(*args)
ARG = 1      # outs = (ctx.args[fn],)               a feed (_Arg); fn is the feed index
RETVAL = 2   # ctx.rets[fn] = args[0]                a fetch (_Retval); fn is the fetch index
STEP = 3     # outs = fn(ctx, *args)                 needs the step (Send, stateful RNG ...)
ASYNC = 4    # outs = fn.poll(ctx, *args) if ready now, else await fn(ctx, *args) in the nursery
THREAD = 5   # outs = await device.run_in_thread(fn, *args)
# control-flow primitives, run by the executor itself (`frame_ops.FrameOps.special`)
SWITCH = 6
MERGE = 7
ENTER = 8
EXIT = 9
NEXTITER = 10
CTRIG = 11
IDENT = 12   # LoopCond and Identity in a graph with frames: forwarded by the loop itself
# The codes of the loop's fast path (`Executable.nodes`, never in `kinds`): an INLINE kernel
# of two (KERNEL2) or one (KERNEL1) inputs whose one output read by others is its port 0:
# ``values[out] = fn(values[a], values[b])[0]``.
KERNEL2 = -2
KERNEL1 = -1
FEED1 = -3   # an _Arg whose one read output is port 0: ``values[out] = ctx.args[fn]``
FETCH = -4   # a _Retval: ``ctx.rets[fn] = values[slot]``
# what a straight program may hold (`plan_straight`): kernels run inline, feeds, fetches (and
# an ASYNC kernel marked poll_first)
_STRAIGHT_CODES = frozenset({KERNEL2, KERNEL1, FEED1, FETCH, INLINE, ARG, RETVAL, STEP})
_CF_KINDS = {"Switch": SWITCH, "Merge": MERGE, "Enter": ENTER, "Exit": EXIT,
             "NextIteration": NEXTITER, "ControlTrigger": CTRIG}
_IDENT_OPS = frozenset({"LoopCond", "Identity", "StopGradient", "Snapshot"})


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
    zeros: list[int] = field(default_factory=list)  # dead-input counts of a frame-less run
    # What a frame-less step's value slots start as: the outputs of the Consts bound at
    # compile time (`_bind_consts`), None elsewhere.
    values0: list[Any] = field(default_factory=list)
    bound: tuple[int, ...] = ()  # those Consts (traced as having run when the step starts)
    # Per node, the input slots its run counts down (`refs`) and clears after their last
    # reader: `in_slots` less the slots that are never cleared (`_kept_slots`). Default:
    # `in_slots`.
    release_slots: list[tuple[int, ...]] = field(default_factory=list)
    # The ready loop's state where a straight program's poll-first kernel may hand the step
    # back to the loop (`plan_straight`): entry k is (pending, refs, ready stack) as the loop
    # would have them when it pops entry k of `straight` (that node on top).
    straight_resume: dict[int, tuple[list[int], list[int], list[int]]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        if not self.release_slots:
            self.release_slots = self.in_slots
        # What the executor's loop reads of node i, in one tuple (one index, one unpack):
        # (code, fn, in slots, outputs, successors, slots to release, late successors).
        # code is the kind, or a fast code (KERNEL2/KERNEL1/FEED1 with outputs the one slot
        # written, FETCH); else outputs are the (port, slot) pairs. `traced_nodes` has no
        # fast codes (every kernel through the general path, which records it).
        self.nodes: list[tuple] = []
        self.traced_nodes: list[tuple] = []
        for i, kind in enumerate(self.kinds):
            slots, outs = self.in_slots[i], self.out_slots[i]
            rest = (self.succ[i], self.release_slots[i],
                    self.succ_late[i] if self.succ_late else ())
            general = (kind, self.fns[i], slots, outs, *rest)
            self.traced_nodes.append(general)
            one_out = len(outs) == 1 and outs[0][0] == 0
            if kind == INLINE and len(slots) in (1, 2) and one_out:
                code = KERNEL2 if len(slots) == 2 else KERNEL1
                self.nodes.append((code, self.fns[i], slots, outs[0][1], *rest))
            elif kind == ARG and one_out:
                self.nodes.append((FEED1, self.fns[i], slots, outs[0][1], *rest))
            elif kind == RETVAL:
                self.nodes.append((FETCH, self.fns[i], slots, outs, *rest))
            else:
                self.nodes.append(general)
        # a frame-less partition of kernels run inline (and poll-first asynchronous ones):
        # its untraced steps run the ready loop's order straight (`scheduler.straight_run`);
        # None otherwise
        self.straight: list[tuple] | None = None if self.cf is not None else plan_straight(
            self.nodes, self.roots, self.pending0, self.refs0, self.straight_resume)


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
    values0: list[Any] = [None] * len(slot_of)
    bound: tuple[int, ...] = ()
    if cf is None:
        bound = _bind_consts(nodes, fns, kinds, out_slots, succ_lists, pending0, refs0,
                             values0)
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
    in_slots = [tuple(slot_of[p] for p in pairs) for pairs in in_pairs]
    kept = _kept_slots(nodes, slot_of, out_slots, bound)
    return Executable(
        device=device,
        names=[nd.name for nd in nodes],
        ops=[nd.op for nd in nodes],
        fns=fns,
        kinds=kinds,
        in_slots=in_slots,
        out_slots=[tuple(sorted(o)) for o in out_slots],
        release_slots=[tuple(s for s in slots if s not in kept) for slots in in_slots],
        succ=cf.succ if cf is not None else [
            tuple(j for j in s if j not in updates) for s in succ_lists],
        succ_late=[()] * n if cf is not None else [
            tuple(j for j in s if j in updates) for s in succ_lists],
        pending0=pending0,
        refs0=refs0,
        # reversed so the LIFO stack pops roots in graph order (ties broken by build order)
        roots=[j for j in reversed(range(n)) if pending0[j] == 0],
        n_slots=len(slot_of),
        values0=values0,
        bound=bound,
        n_args=n_args,
        n_rets=n_rets,
        index=index,
        cf=cf,
        zeros=[0] * n,
    )


def plan_straight(nodes: list[tuple], roots: list[int], pending0: list[int],
                  refs0: list[int], resume: dict[int, tuple] | None = None
                  ) -> list[tuple] | None:
    """The straight program of a frame-less partition (`Executable.nodes`, its roots, pending
    counts and slot refs), or None if some node is not a kernel run inline. Each entry is
    ``(code, fn, input slots, outputs, slots to clear after it, node)``, in the order the
    ready loop runs them. An ASYNC kernel whose function is marked ``poll_first`` (its `poll`
    answers at once in the usual case: a get_next of a pipeline in memory) may be part of it:
    `resume` gets, at its index in the program, the loop's state as it pops it (where the
    step goes on in the loop when the poll finds nothing ready: `straight_run`)."""
    if any(nd[0] not in _STRAIGHT_CODES and not (
            nd[0] == ASYNC and getattr(nd[1], "poll_first", False)) for nd in nodes):
        return None
    pending = pending0.copy()
    refs = refs0.copy()
    ready = roots.copy()
    prog = []
    while ready:  # the ready loop's scheduling, as in `StepRun._drain`
        if resume is not None and nodes[ready[-1]][0] == ASYNC:
            resume[len(prog)] = (pending.copy(), refs.copy(), ready.copy())
        i = ready.pop()
        code, fn, slots, outs, nexts, rel, late = nodes[i]
        last = []
        for s in rel:
            refs[s] -= 1
            if refs[s] == 0:
                last.append(s)
        for j in nexts:
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
        for j in late:
            pending[j] -= 1
            if pending[j] == 0:
                ready.insert(0, j)
        prog.append((code, fn, slots, outs, tuple(last), i))
    return prog


def _bind_consts(nodes: list[NodeDef], fns: list[Any], kinds: list[int],
                 out_slots: list[list[tuple[int, int]]], succ: list[list[int]],
                 pending0: list[int], refs0: list[int], values0: list[Any]
                 ) -> tuple[int, ...]:
    """Bind every input-less Const into its consumers (a graph without frames): its value is
    computed once here and pre-placed in `values0` (the slots a step starts with), its
    consumers' pending counts no longer wait for it, and it is never scheduled (no successors,
    never a root). Its slots get one extra ref, so no step clears them after the last reader;
    the values are the Executable's, as the Const kernel's own value is (never a pool block).
    Returns the bound nodes."""
    bound = []
    for j, nd in enumerate(nodes):
        if nd.op != "Const" or nd.inputs or kinds[j] != INLINE:
            continue
        try:
            outs = fns[j]()
        except Exception:  # noqa: BLE001 - it fails the same way when it runs in a step
            continue
        for port, s in out_slots[j]:
            values0[s] = outs[port]
            refs0[s] += 1
        for k in succ[j]:
            pending0[k] -= 1
        succ[j] = []
        pending0[j] = 1  # never ready: not a root, and nobody wakes it
        bound.append(j)
    return tuple(bound)


def _kept_slots(nodes: list[NodeDef], slot_of: dict[tuple[int, int], int],
                out_slots: list[list[tuple[int, int]]], bound: tuple[int, ...]) -> set[int]:
    """The slots a step never clears: the bound Consts' (never cleared anyway, so their readers
    skip the count) and the 0-d numeric outputs (a scalar, kept till its iteration or step
    ends: counting its readers down and clearing it would cost the loop more than it frees;
    it never holds a pool buffer, which only tensors of `HostPool.min_bytes` and up get)."""
    kept = {s for j in bound for _, s in out_slots[j]}
    for (src, port), s in slot_of.items():
        nd = nodes[src]
        if port < len(nd.out_shapes) and nd.out_shapes[port] == () and port < len(
                nd.out_dtypes):
            try:
                kind = dtypes.as_dtype(nd.out_dtypes[port]).np.kind
            except Exception:  # noqa: BLE001 - resources, variants: not plain numbers
                continue
            if kind in "biufc":
                kept.add(s)
    return kept


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
