"""Compile-time analysis of dynamic control flow for the executor (WP §4.4, OSDI §3.4).

A partition that contains Switch, Merge, Enter, Exit or NextIteration runs with *frames*: every
node belongs statically to a frame *template* (the root, or one loop, nested in its parent
loop), and at run time each template has instances (one per iteration of the enclosing frame)
whose iterations each keep their own pending counts, values and dead-input counts. This module
works out everything that does not change from step to step:

    info = analyze(nodes, in_pairs, controls, slot_of, n_slots)

* `frame_of[i]`: node i's template. An edge u -> v puts v in u's template, except that an
  Enter's successors are in the child template named by its ``frame_name`` attribute and an
  Exit's successors in the parent template. Every input of a node must agree (else the error
  names the node and the two loops). NextIteration -> Merge edges (the back edges) are left
  out of the topological order and of every pending count; they must stay in one template.
* Inputless ``Const`` nodes *float*: a constant read inside a loop is put, once, into the
  initial values of the reading template (nothing runs per iteration for it). Constant
  folding may leave such constants behind, and `af.while_loop` builds them on purpose.
* `pending0[i]`: incoming edges, less back edges and floating constants; a Merge counts only
  its control inputs plus one for "a live data input arrived" (TF's scheme).
* Per template: `values0`/`refs0` (initial values and reader counts per slot) and `roots`
  (nodes ready when an iteration starts), the number of Enter nodes that feed one instance
  (`n_enters`; iteration 0 is not finished before all of them fired) and
  `parallel_iterations`.
* `dead_succ[i]`: (successor, is a data edge into a Merge) pairs, for dead propagation; for
  Switch nodes the successors split by port (`switch_ports`).
* `plan_fused` (called once the kernels' kinds are known): a `FusedPlan` for each loop whose
  body is only synchronous kernels, which the executor runs without pending counts.

Feeds, fetches, Send and Recv must stay in the root template: a fetch inside a loop would have
one value per iteration, and a loop whose body spans devices needs per-partition loop control
that this runtime does not build (af.while_loop keeps each loop on one device).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from scheduler.graphdef import NodeDef

CF_OPS = frozenset({"Switch", "Merge", "Enter", "Exit", "NextIteration", "ControlTrigger"})
_ROOT_ONLY = frozenset({"_Arg", "_Retval", "_Send", "_Recv"})
_NEVER_RELEASED = 1 << 40  # reader count of a floating constant's slot: never cleared


def _floating_value(value: Any) -> Any:
    """A floating constant's value as the Const kernel gives it on a CPU: a 0-d number as a
    NumPy scalar, so the scalar kernels it feeds (a loop's ``i + 1``, ``i < n``) take NumPy's
    scalar math (~0.1 us) instead of the ufunc machinery on a 0-d array (~1.5-3 us)."""
    if type(value) is np.ndarray and value.ndim == 0 and value.dtype.kind in "fiub":
        return value[()]
    return value


@dataclass
class FrameInfo:
    """One frame template: the root (id 0) or a loop nested in `parent`."""

    id: int
    parent: int
    name: str
    parallel: int = 10
    n_enters: int = 0
    values0: list[Any] = field(default_factory=list)
    refs0: list[int] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    fused: FusedPlan | None = None  # set by plan_fused for a loop simple enough


@dataclass
class FusedPlan:
    """How to run a simple loop (see `plan_fused`) iteration after iteration, without
    pending counts: per loop variable k, the slot its Enter's value arrives in, its Merge's
    output slot, the slot the body reads it from (Switch port 1), the slot its NextIteration
    reads and its Exit node; the nodes computing the predicate and the body, in order."""

    enter_slot: list[int]
    merge_slot: list[int | None]
    merge_index_slot: list[int | None]
    body_slot: list[int | None]
    exit_slot: list[int | None]
    next_slot: list[int]
    exits: list[int | None]
    pred_slot: int
    pred_nodes: list[int]
    body_nodes: list[int]
    pooled: list[bool]  # node -> its outputs may be pool buffers (release when overwritten)
    # the executor's programs for the two parts: (node, kind, fn, input slots,
    # (port, slot) outputs, pooled) per node, filled in when the kernels exist
    pred_prog: list[tuple[Any, ...]] = field(default_factory=list)
    body_prog: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class ControlFlowInfo:
    """What the executor needs to run a partition with frames (immutable after analyze)."""

    frames: list[FrameInfo]
    frame_of: list[int]
    pending0: list[int]
    enter_child: list[int]                      # Enter -> child template, else -1
    enter_const: list[bool]                     # Enter: a loop invariant
    n_data_in: list[int]
    dead_succ: list[tuple[tuple[int, bool], ...]]
    # Switch -> (live succ port 0 and control succ, live succ port 1 and control succ, dead
    #            succ port 0, dead succ port 1, slot of port 0, slot of port 1, Exits reading
    #            only port 0, Exits reading only port 1: dead at once when that port is)
    switch_ports: dict[int, tuple[Any, ...]]
    merge_index: list[np.ndarray]               # value_index outputs of a Merge, as int32
    input_names: list[str]                      # first data input of each node (messages)
    succ: list[tuple[int, ...]]                 # successors, less floating constants' edges
    zeros: list[int] = field(default_factory=list)  # dead counts of a new iteration


def analyze(nodes: list[NodeDef], in_pairs: list[list[tuple[int, int]]],
            controls: list[list[int]], slot_of: dict[tuple[int, int], int],
            n_slots: int) -> ControlFlowInfo:
    """Frame templates, pending counts and per-template initial state (see the module doc).

    Raises InvalidArgumentError for an ill-formed loop: a node reading from two frames, a back
    edge that is not NextIteration -> Merge, an Exit outside any loop, a feed, fetch, Send or
    Recv inside a loop, or a cycle that does not go through NextIteration.
    """
    n = len(nodes)
    ops = [nd.op for nd in nodes]
    floating = [op == "Const" and not nodes[i].inputs for i, op in enumerate(ops)]
    back = [op == "NextIteration" for op in ops]
    # incoming edges: (src, is_control, port)
    incoming: list[list[tuple[int, bool, int]]] = [[] for _ in range(n)]
    out_edges: list[list[tuple[int, bool, int]]] = [[] for _ in range(n)]
    for j in range(n):
        for src, port in in_pairs[j]:
            incoming[j].append((src, False, port))
            out_edges[src].append((j, False, port))
        for src in controls[j]:
            incoming[j].append((src, True, -1))
            out_edges[src].append((j, True, -1))

    order = _topological(n, incoming, back)
    if len(order) < n:
        from scheduler.executable import cycle_error
        succ = [[j for j, _, _ in out_edges[i]] if not back[i] else [] for i in range(n)]
        pend = [sum(1 for s, _, _ in incoming[j] if not back[s]) for j in range(n)]
        error = cycle_error(nodes, succ, pend)
        assert error is not None
        raise error

    # -- frame templates ----------------------------------------------------------------------
    frames = [FrameInfo(0, -1, "")]
    child_of: dict[tuple[int, str], int] = {}
    frame_of = [0] * n
    enter_child = [-1] * n
    enter_const = [False] * n

    def out_frame(u: int) -> int:
        if ops[u] == "Enter":
            return enter_child[u]
        if ops[u] == "Exit":
            return frames[frame_of[u]].parent if frame_of[u] else -2
        return frame_of[u]

    for j in order:
        implied = -1
        via = -1
        for src, _, _ in incoming[j]:
            if back[src] or floating[src]:
                continue
            t = out_frame(src)
            if implied == -1:
                implied, via = t, src
            elif t != implied:
                raise InvalidArgumentError(
                    f"node '{nodes[j].name}' ({ops[j]}) reads from '{nodes[via].name}' in "
                    f"{_frame_desc(frames, implied)} and from '{nodes[src].name}' in "
                    f"{_frame_desc(frames, t)}; a value made inside a while loop can only "
                    f"leave it through the loop's outputs, and an outside value enters it "
                    f"through an Enter (af.while_loop does both)", node=nodes[j].name)
        if implied == -2:
            raise InvalidArgumentError(
                f"node '{nodes[via].name}' is an Exit outside any while loop; it must follow "
                f"a loop's Switch", node=nodes[via].name)
        frame_of[j] = max(implied, 0)
        if ops[j] == "Enter":
            name = str(nodes[j].attrs.get("frame_name", ""))
            key = (frame_of[j], name)
            c = child_of.get(key)
            if c is None:
                c = len(frames)
                child_of[key] = c
                frames.append(FrameInfo(c, frame_of[j], name,
                                        max(1, int(nodes[j].attrs.get("parallel_iterations",
                                                                      10)))))
            enter_child[j] = c
            enter_const[j] = bool(nodes[j].attrs.get("is_constant", False))
            frames[c].n_enters += 1
    for j in range(n):
        if frame_of[j] and ops[j] in _ROOT_ONLY:
            what = {"_Arg": "fed", "_Retval": "fetched"}.get(ops[j])
            src = nodes[j].inputs[0] if ops[j] == "_Retval" and nodes[j].inputs else nodes[j].name
            if what == "fetched":
                msg = (f"cannot fetch '{src}': it is inside while loop "
                       f"'{frames[frame_of[j]].name}' and has one value per iteration; fetch "
                       f"the loop's outputs, or carry the value out in a loop variable")
            elif what == "fed":
                msg = (f"cannot feed a tensor read inside while loop "
                       f"'{frames[frame_of[j]].name}' directly; feed a tensor outside the "
                       f"loop and use it in the body")
            else:
                msg = (f"node '{nodes[j].name}' ({ops[j]}) is inside while loop "
                       f"'{frames[frame_of[j]].name}': a loop's body must stay on one device; "
                       f"place the whole loop with one af.device scope")
            raise InvalidArgumentError(msg, node=nodes[j].name)
        if ops[j] == "Exit" and frame_of[j] == 0:
            raise InvalidArgumentError(
                f"node '{nodes[j].name}' is an Exit outside any while loop; it must follow a "
                f"loop's Switch", node=nodes[j].name)
        if back[j]:
            for dst, _, _ in out_edges[j]:
                if ops[dst] != "Merge" or frame_of[dst] != frame_of[j]:
                    raise InvalidArgumentError(
                        f"NextIteration '{nodes[j].name}' feeds '{nodes[dst].name}' "
                        f"({ops[dst]}); a NextIteration must feed the Merge of its own loop",
                        node=nodes[j].name)

    # -- pending counts, initial values and reader counts per template -----------------------
    pending0 = [0] * n
    n_data_in = [len(p) for p in in_pairs]
    for f in frames:
        f.values0 = [None] * n_slots
        f.refs0 = [0] * n_slots
    for j in range(n):
        fj = frame_of[j]
        ctrl = 0
        for src, is_ctrl, port in incoming[j]:
            if back[src]:
                continue
            if floating[src] and fj != frame_of[src]:
                if ops[j] in ("Merge", "NextIteration"):
                    raise InvalidArgumentError(
                        f"constant '{nodes[src].name}' feeds '{nodes[j].name}' ({ops[j]}) "
                        f"inside a loop directly; pass it through af.identity in the body",
                        node=nodes[j].name)
                if not is_ctrl:
                    s = slot_of[(src, port)]
                    frames[fj].values0[s] = _floating_value(nodes[src].attrs["value"])
                    frames[fj].refs0[s] = _NEVER_RELEASED
                continue
            if is_ctrl:
                ctrl += 1
            else:
                frames[fj].refs0[slot_of[(src, port)]] += 1
            pending0[j] += 1
        if ops[j] == "Merge":
            pending0[j] = ctrl + 1
    succ: list[tuple[int, ...]] = []
    for i in range(n):
        succ.append(tuple(j for j, _, _ in out_edges[i]
                          if not (floating[i] and frame_of[j] != frame_of[i])))
    for j in range(n):
        if pending0[j] == 0 and ops[j] != "Merge" and not (floating[j] and not succ[j]
                                                           and out_edges[j]):
            frames[frame_of[j]].roots.append(j)
    # roots pop in graph order from a LIFO stack
    for f in frames:
        f.roots.reverse()

    # -- dead propagation and Switch ports ---------------------------------------------------
    is_merge = [op == "Merge" for op in ops]
    dead_succ: list[tuple[tuple[int, bool], ...]] = []
    switch_ports: dict[int, tuple[Any, ...]] = {}
    for i in range(n):
        edges = [(j, c, p) for j, c, p in out_edges[i]
                 if not (floating[i] and frame_of[j] != frame_of[i])]
        dead_succ.append(tuple((j, is_merge[j] and not c) for j, c, _ in edges))
        if ops[i] == "Switch":
            live0 = tuple(j for j, c, p in edges if not c and p == 0)
            live1 = tuple(j for j, c, p in edges if not c and p == 1)
            ctrl_s = tuple(j for j, c, p in edges if c)
            # an Exit reading only this port is dead at once: recorded, never queued
            direct = {j for j in live0 + live1 if ops[j] == "Exit" and len(incoming[j]) == 1}
            dead0 = tuple((j, is_merge[j]) for j in live0 if j not in direct)
            dead1 = tuple((j, is_merge[j]) for j in live1 if j not in direct)
            exits0 = tuple(j for j in live0 if j in direct)
            exits1 = tuple(j for j in live1 if j in direct)
            switch_ports[i] = (live0 + ctrl_s, live1 + ctrl_s, dead0, dead1,
                               slot_of.get((i, 0)), slot_of.get((i, 1)), exits0, exits1)
    merge_index = [np.array(k, np.int32) for k in range(max(n_data_in, default=0) + 1)]
    for a in merge_index:
        a.setflags(write=False)
    input_names = [nd.inputs[0] if nd.inputs else "" for nd in nodes]
    return ControlFlowInfo(frames, frame_of, pending0, enter_child, enter_const, n_data_in,
                           dead_succ, switch_ports, merge_index, input_names, succ, [0] * n)


def _topological(n: int, incoming: list[list[tuple[int, bool, int]]],
                 back: list[bool]) -> list[int]:
    pend = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for j in range(n):
        for src, _, _ in incoming[j]:
            if not back[src]:
                pend[j] += 1
                succ[src].append(j)
    stack = [j for j in reversed(range(n)) if pend[j] == 0]
    order = []
    while stack:
        i = stack.pop()
        order.append(i)
        for j in succ[i]:
            pend[j] -= 1
            if pend[j] == 0:
                stack.append(j)
    return order


def _frame_desc(frames: list[FrameInfo], t: int) -> str:
    if t == -2:
        return "no frame (an Exit outside any loop)"
    if t == 0:
        return "the top level (outside every loop)"
    return f"while loop '{frames[t].name}'"


def plan_fused(info: ControlFlowInfo, nodes: list[NodeDef],
               in_pairs: list[list[tuple[int, int]]], controls: list[list[int]],
               slot_of: dict[tuple[int, int], int], plain: list[bool],
               pooled: list[bool]) -> None:
    """Give each loop template whose iterations need no scheduling a `FusedPlan`.

    A loop qualifies when every node in it is a loop variable's Merge, Switch, Exit or
    NextIteration (the pattern af.while_loop builds: Merge(Enter, NextIteration), Switch on
    the one LoopCond, Exit on port 0) or a `plain` node (a synchronous kernel: no nested loop,
    no cond, nothing asynchronous). Such a loop cannot gain from overlapping iterations; run
    in order, each iteration is one pass over a fixed list of nodes.
    """
    n = len(nodes)
    ops = [nd.op for nd in nodes]
    members: dict[int, list[int]] = {}
    for j, t in enumerate(info.frame_of):
        if t:
            members.setdefault(t, []).append(j)
    consumers: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (node, port read)
    for j in range(n):
        for src, port in in_pairs[j]:
            consumers[src].append((j, port))
    for t, nodes_t in members.items():
        info.frames[t].fused = _plan(t, nodes_t, ops, info, in_pairs, controls, consumers,
                                     slot_of, plain, pooled)


def _plan(t: int, nodes_t: list[int], ops: list[str], info: ControlFlowInfo,
          in_pairs: list[list[tuple[int, int]]], controls: list[list[int]],
          consumers: list[list[tuple[int, int]]], slot_of: dict[tuple[int, int], int],
          plain: list[bool], pooled: list[bool]) -> FusedPlan | None:
    merges = [j for j in nodes_t if ops[j] == "Merge"]
    if not merges:
        return None
    frame_of = info.frame_of
    prims = set()
    enter_slot, merge_slot, merge_index_slot, body_slot, exit_slot = [], [], [], [], []
    next_slot, exits = [], []
    pred_slot = None
    switches = []
    for m in merges:
        ins = in_pairs[m]
        if len(ins) != 2 or controls[m]:
            return None
        kinds = [ops[src] for src, _ in ins]
        if sorted(kinds) != ["Enter", "NextIteration"]:
            return None
        e, nx = (ins[0][0], ins[1][0]) if kinds[0] == "Enter" else (ins[1][0], ins[0][0])
        if info.enter_const[e] or info.enter_child[e] != t:
            return None
        sws = [j for j, port in consumers[m] if ops[j] == "Switch" and port == 0]
        if len(sws) != 1 or in_pairs[sws[0]][0] != (m, 0):
            return None
        sw = sws[0]
        ps = slot_of.get(in_pairs[sw][1])
        if ps is None or (pred_slot is not None and ps != pred_slot):
            return None
        pred_slot = ps
        xs = [j for j, port in consumers[sw] if port == 0]
        if len(xs) > 1 or (xs and (ops[xs[0]] != "Exit" or len(in_pairs[xs[0]]) != 1
                                   or controls[xs[0]])):
            return None
        x = xs[0] if xs else None
        if not in_pairs[nx] or controls[nx]:
            return None
        prims.update((m, sw, nx) if x is None else (m, sw, nx, x))
        switches.append(sw)
        enter_slot.append(slot_of[(e, 0)])
        merge_slot.append(slot_of.get((m, 0)))
        merge_index_slot.append(slot_of.get((m, 1)))
        body_slot.append(slot_of.get((sw, 1)))
        exit_slot.append(slot_of.get((sw, 0)))
        next_slot.append(slot_of[in_pairs[nx][0]])
        exits.append(x)
    rest = [j for j in nodes_t if j not in prims]
    if any(not plain[j] for j in rest):
        return None
    for j in rest:  # a control edge from a Merge is met; from the others, not modelled
        if any(c in prims and ops[c] != "Merge" for c in controls[j]):
            return None
    # body: what the Switches' port 1 (or their control edges) reach inside the frame
    in_body = set()
    stack = list(switches)
    rest_set = set(rest)
    while stack:
        u = stack.pop()
        for j, port in consumers[u]:
            if j in rest_set and j not in in_body and not (u in switches and port == 0):
                in_body.add(j)
                stack.append(j)
        if u not in switches:
            for j in rest_set:
                if u in controls[j] and j not in in_body:
                    in_body.add(j)
                    stack.append(j)
    pred = [j for j in rest if j not in in_body]
    for j in pred:  # the predicate's part may not wait on the body
        if any(src in in_body for src, _ in in_pairs[j]) or any(c in in_body
                                                               for c in controls[j]):
            return None
    order = _order(rest, in_pairs, controls, frame_of, t)
    if order is None:
        return None
    return FusedPlan(enter_slot, merge_slot, merge_index_slot, body_slot, exit_slot,
                     next_slot, exits, pred_slot,
                     [j for j in order if j not in in_body],
                     [j for j in order if j in in_body], pooled)


def _order(nodes_t: list[int], in_pairs: list[list[tuple[int, int]]],
           controls: list[list[int]], frame_of: list[int], t: int) -> list[int] | None:
    """`nodes_t` in an order where every node comes after its inputs inside the set."""
    inside = set(nodes_t)
    pend = {j: 0 for j in nodes_t}
    succ: dict[int, list[int]] = {j: [] for j in nodes_t}
    for j in nodes_t:
        for src in [s for s, _ in in_pairs[j]] + controls[j]:
            if src in inside:
                pend[j] += 1
                succ[src].append(j)
    stack = [j for j in reversed(nodes_t) if pend[j] == 0]
    order = []
    while stack:
        u = stack.pop()
        order.append(u)
        for j in succ[u]:
            pend[j] -= 1
            if pend[j] == 0:
                stack.append(j)
    return order if len(order) == len(nodes_t) else None
