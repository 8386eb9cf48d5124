"""The partitioner: one GraphDef per device, cross-device edges replaced by Send/Recv pairs
(WP §3.2.2; OSDI §3.3), with optional Recv scheduling (WP §5.2) and lossy marks (WP §5.5).

`partition(graph, placement)` copies every node into its device's GraphDef (its `device` set
to the assigned device) and rewrites each edge whose ends sit on different devices:

- **Data edge** ``src:port -> dst``: a `_Send` on src's device reads ``src:port``; a `_Recv` on
  dst's device produces it. **Canonicalization:** one pair per (tensor, destination device),
  shared by every consumer there, so a tensor crosses to a device once and is allocated once.
- **Control edge** ``^src -> dst``: if a data Recv from src already reaches that device, the
  consumer takes a control input on it; otherwise a dummy ``Const`` (an empty float32 vector,
  attrs ``value`` / ``dtype``) with a control input on src feeds a `_Send`, and the `_Recv` on
  the destination becomes a control input of the consumer. Again one pair per (src, device).

The attribute contract the executor's kernels rely on:

    _Send: inputs [tensor]; attrs key, send_device, recv_device, tensor_name
    _Recv: no inputs;       attrs key, send_device, recv_device, tensor_name, dtype;
                            out_dtypes [dtype], out_shapes [shape]

``key`` is ``"<tensor_name>-><recv_device>"``, unique per (tensor, destination) edge.
Control-edge pairs also carry ``control: True``. With ``lossy=True`` every float32 pair gets
``lossy: True`` on both ends (the kernels truncate to bfloat16 and zero-fill).

**Recv scheduling** (``schedule_recvs_alap=True``, WP §5.2, TF's ``AddControlEdges``): over
the whole placed graph (Send->Recv counted as an edge costing the transfer), an ASAP pass
simulates execution with the cost model (each device runs one node at a time) and an ALAP
pass finds each node's latest start that keeps the ASAP makespan. Each Recv then gets a
control input from the node on its device that, in the ASAP schedule, finishes last but no
later than ``ALAP start of the Recv - transfer time``, so the value arrives just before it is
needed and does not sit in memory meanwhile. Anchors are drawn only from nodes that precede
the Recv's first consumer in one fixed topological order of the whole graph, into which each
Recv is moved to just before that consumer; every added edge points forward in that order, so
no cycle can form. Graphs with control-flow primitives are left unscheduled (as in TF).

State: none kept between calls. Within a call: `placement` (node -> device), the output
node lists per device, and `pairs` ((tensor or ^src, destination) -> Recv name).

    >>> parts = partition(g, {"a": CPU0, "b": CPU1, "c": CPU1})   # a -> b, a -> c
    >>> [n.op for n in parts[CPU0].nodes], [n.op for n in parts[CPU1].nodes]
    (['X', '_Send'], ['_Recv', 'Y', 'Z'])
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping

import numpy as np

from devices.device_spec import DeviceSpec
from devices.errors import InvalidArgumentError
from scheduler.cost_model import CostModel
from scheduler.graphdef import GraphDef, NodeDef, parse_input

CONTROL_FLOW_OPS: frozenset[str] = frozenset(
    {"Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond"})
DUMMY_CONST_OP = "Const"


def partition(graph: GraphDef, placement: Mapping[str, str], *,
              schedule_recvs_alap: bool = False, lossy: bool = False,
              cost_model: CostModel | None = None) -> dict[str, GraphDef]:
    """Split `graph` by `placement` (node name -> device string) into per-device GraphDefs,
    keyed by device, with Send/Recv pairs on the cross-device edges (see the module doc)."""
    nodes = graph.nodes
    by_name: dict[str, NodeDef] = {}
    for node in nodes:
        if node.name in by_name:
            raise InvalidArgumentError(
                f"the graph has two nodes named '{node.name}'; node names must be unique",
                node=node.name)
        if node.name not in placement:
            raise InvalidArgumentError(
                f"node '{node.name}' (op {node.op}) has no device in the placement; place "
                "the whole graph before partitioning it", node=node.name)
        by_name[node.name] = node
    b = _Builder(by_name, placement, lossy)

    # Pass 1: one data pair per (tensor, destination device).
    for node in nodes:
        dst = placement[node.name]
        for spec in node.inputs:
            if spec.startswith("^"):
                continue
            src, port = parse_input(spec)
            if _device(by_name, placement, src, node, spec) != dst:
                b.data_pair(src, port, dst, node.name)
    # Pass 2: copy the nodes with rewritten inputs; control edges reuse data pairs if any.
    for node in nodes:
        dst = placement[node.name]
        new_inputs = []
        for spec in node.inputs:
            if spec.startswith("^"):
                src = spec[1:]
                if _device(by_name, placement, src, node, spec) != dst:
                    spec = "^" + b.control_pair(src, dst, node.name)
            else:
                src, port = parse_input(spec)
                if placement[src] != dst:
                    spec = b.data_pair(src, port, dst, node.name)
            if spec not in new_inputs or not spec.startswith("^"):
                new_inputs.append(spec)
        b.emit(NodeDef(node.name, node.op, new_inputs, dst, dict(node.attrs),
                       list(node.out_dtypes), list(node.out_shapes)))
    parts = b.parts
    if schedule_recvs_alap and b.recvs and not any(n.op in CONTROL_FLOW_OPS for n in nodes):
        _schedule_recvs(parts, cost_model if cost_model is not None else CostModel())
    return {dev: GraphDef(part, graph.version) for dev, part in parts.items()}


def _device(by_name: dict[str, NodeDef], placement: Mapping[str, str], src: str,
            node: NodeDef, spec: str) -> str:
    if src not in by_name:
        raise InvalidArgumentError(
            f"node '{node.name}' (op {node.op}) has input '{spec}', but the graph has no node "
            f"named '{src}'; the graph must contain every input of every node", node=node.name)
    return placement[src]


class _Builder:
    """Accumulates the partitions.

    `pairs`: (tensor name or "^src", destination) -> Recv name, the canonicalization table;
    `data_recv`: (src node, destination) -> one data Recv of src there (control edges reuse it);
    `sends_after[src]`: Sends (and dummies) to emit right after src, which is not emitted yet;
    `recvs_before[consumer]`: Recvs to emit just before their first consumer.
    """

    def __init__(self, by_name: dict[str, NodeDef], placement: Mapping[str, str],
                 lossy: bool) -> None:
        self.by_name = by_name
        self.placement = placement
        self.lossy = lossy
        self.used: set[str] = set(by_name)
        self.pairs: dict[tuple[str, str], str] = {}
        self.data_recv: dict[tuple[str, str], str] = {}
        self.sends_after: dict[str, list[NodeDef]] = {}
        self.recvs_before: dict[str, list[NodeDef]] = {}
        self.parts: dict[str, list[NodeDef]] = {}
        self.emitted: set[str] = set()
        self.recvs: list[str] = []
        self._tokens: dict[str, str] = {}
        tasks = {DeviceSpec.parse(d).task_spec() for d in set(placement.values())}
        self._one_task = len(tasks) <= 1

    def token(self, device: str) -> str:
        """A short name-safe form of a device: "CPU1", or "ps_0_2_CPU1" across tasks."""
        tok = self._tokens.get(device)
        if tok is None:
            s = DeviceSpec.parse(device)
            tok = f"{s.device_type}{'' if s.device_index is None else s.device_index}"
            if not self._one_task:
                tok = f"{s.job}_{s.replica}_{s.task}_{tok}"
            self._tokens[device] = tok
        return tok

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def _after(self, src: str, *new: NodeDef) -> None:
        """Emit `new` right after src: now if src is already out, else when it is."""
        if src in self.emitted:
            for node in new:
                self.parts.setdefault(node.device, []).append(node)
        else:
            self.sends_after.setdefault(src, []).extend(new)

    def _pair(self, tensor: str, src_dev: str, dst: str, dtype: str, shape: object,
              stem: str, extra: dict, consumer: str) -> tuple[NodeDef, NodeDef]:
        attrs = {"key": f"{tensor}->{dst}", "send_device": src_dev, "recv_device": dst,
                 "tensor_name": tensor, **extra}
        tok = self.token(dst)
        send = NodeDef(self.unique(f"_send_{stem}_to_{tok}"), "_Send", [tensor], src_dev,
                       dict(attrs))
        recv = NodeDef(self.unique(f"_recv_{stem}_on_{tok}"), "_Recv", [], dst,
                       {**attrs, "dtype": dtype}, [dtype], [shape])
        self.recvs_before.setdefault(consumer, []).append(recv)
        self.recvs.append(recv.name)
        return send, recv

    def data_pair(self, src: str, port: int, dst: str, consumer: str) -> str:
        tensor = f"{src}:{port}"
        name = self.pairs.get((tensor, dst))
        if name is not None:
            return name
        node = self.by_name[src]
        if port >= len(node.out_dtypes):
            raise InvalidArgumentError(
                f"node '{src}' (op {node.op}) declares {len(node.out_dtypes)} output dtype(s), "
                f"but output {port} crosses to {dst}; the partitioner needs its dtype to build "
                "the _Recv: fill in out_dtypes", node=src, device=self.placement[src])
        dtype = node.out_dtypes[port]
        shape = node.out_shapes[port] if port < len(node.out_shapes) else None
        extra = {"lossy": True} if self.lossy and dtype == "float32" else {}
        send, recv = self._pair(tensor, self.placement[src], dst, dtype, shape,
                                f"{src}_{port}", extra, consumer)
        self._after(src, send)
        self.pairs[(tensor, dst)] = recv.name
        self.data_recv.setdefault((src, dst), recv.name)
        return recv.name

    def control_pair(self, src: str, dst: str, consumer: str) -> str:
        name = self.data_recv.get((src, dst)) or self.pairs.get(("^" + src, dst))
        if name is not None:
            return name
        src_dev = self.placement[src]
        dummy = NodeDef(self.unique(f"_ctrl_{src}_to_{self.token(dst)}"), DUMMY_CONST_OP,
                        ["^" + src], src_dev,
                        {"value": np.zeros((0,), np.float32), "dtype": "float32"},
                        ["float32"], [(0,)])
        send, recv = self._pair(f"{dummy.name}:0", src_dev, dst, "float32", (0,),
                                f"ctrl_{src}", {"control": True}, consumer)
        self._after(src, dummy, send)
        self.pairs[("^" + src, dst)] = recv.name
        return recv.name

    def emit(self, node: NodeDef) -> None:
        part = self.parts.setdefault(node.device, [])
        recvs = self.recvs_before.pop(node.name, None)
        if recvs:
            part.extend(recvs)
        part.append(node)
        self.emitted.add(node.name)
        after = self.sends_after.pop(node.name, None)
        if after:
            for extra in after:
                self.parts.setdefault(extra.device, []).append(extra)


# -- Recv scheduling (WP §5.2) -------------------------------------------------------------------

def _schedule_recvs(parts: dict[str, list[NodeDef]], cm: CostModel) -> int:
    """Add ALAP control inputs to the `_Recv` nodes of `parts` in place (see the module doc);
    returns how many were added. The parts must hold no control-flow primitives."""
    nodes = [n for part in parts.values() for n in part]
    n = len(nodes)
    index = {node.name: i for i, node in enumerate(nodes)}
    send_of_key = {node.attrs["key"]: index[node.name] for node in nodes if node.op == "_Send"}
    out_bytes = [cm.output_bytes(node) for node in nodes]
    specs = {dev: DeviceSpec.parse(dev) for dev in parts}

    # Edges with their delays: on-device edges cost 0, Send -> Recv the transfer.
    preds: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    succs: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    cost = [0.0] * n
    default_bytes = cm.elements(None) * 4
    for i, node in enumerate(nodes):
        shapes = []
        in_bytes = 0
        for spec in node.inputs:
            name, port = (spec[1:], -1) if spec.startswith("^") else parse_input(spec)
            j = index[name]
            preds[i].append((j, 0.0))
            succs[j].append((i, 0.0))
            if port >= 0:
                src = nodes[j]
                shapes.append(src.out_shapes[port] if port < len(src.out_shapes) else None)
                in_bytes += out_bytes[j][port] if port < len(out_bytes[j]) else default_bytes
        if node.op == "_Recv":
            j = send_of_key.get(node.attrs["key"])
            if j is not None:
                sent = nodes[j].inputs[0]
                src_name, port = parse_input(sent)
                sizes = out_bytes[index[src_name]]
                nbytes = sizes[port] if port < len(sizes) else default_bytes
                delay = cm.transfer_time(nbytes, specs[nodes[j].device], specs[node.device])
                preds[i].append((j, delay))
                succs[j].append((i, delay))
        cost[i] = cm.compute_time(node, specs[node.device], shapes, in_bytes, out_bytes[i])

    order = _kahn(n, preds, succs)
    if len(order) < n:
        return 0  # a cycle already (not ours to report here); leave the graph alone
    pos = [0] * n
    for p, i in enumerate(order):
        pos[i] = p

    # ASAP: list scheduling, one node at a time per device.
    devs = [node.device for node in nodes]
    avail: dict[str, float] = dict.fromkeys(parts, 0.0)
    finish = [0.0] * n
    for i in order:
        ready = avail[devs[i]]
        for j, delay in preds[i]:
            t = finish[j] + delay
            if t > ready:
                ready = t
        finish[i] = avail[devs[i]] = ready + cost[i]
    makespan = max(finish, default=0.0)

    # ALAP: latest start of each node that keeps the makespan (no device contention).
    latest_start = [0.0] * n
    for i in reversed(order):
        lf = makespan
        for k, delay in succs[i]:
            t = latest_start[k] - delay
            if t < lf:
                lf = t
        latest_start[i] = lf - cost[i]

    # Per device, sweep the Recvs by the position of their first consumer (`limit`) while
    # inserting the candidate anchors (non-Recv nodes) in `order`; `fins` then holds, sorted,
    # the ASAP finish times of exactly the nodes before `limit`, and the anchor is the one
    # finishing last no later than `target`.
    anchors: dict[str, list[int]] = {}
    recvs: dict[str, list[tuple[int, int]]] = {}
    for i in order:
        if nodes[i].op != "_Recv":
            anchors.setdefault(devs[i], []).append(i)
        elif succs[i]:
            recvs.setdefault(devs[i], []).append((min(pos[k] for k, _ in succs[i]), i))
    added = 0
    for dev, pending in recvs.items():
        candidates = anchors.get(dev, [])
        fins: list[float] = []
        ids: list[int] = []
        p = 0
        for limit, r in sorted(pending):
            while p < len(candidates) and pos[candidates[p]] < limit:
                a = candidates[p]
                k = bisect.bisect_right(fins, finish[a])
                fins.insert(k, finish[a])
                ids.insert(k, a)
                p += 1
            transfer = max((d for _, d in preds[r]), default=0.0)
            target = latest_start[r] - transfer
            sent = max((finish[j] for j, _ in preds[r]), default=0.0)  # the Send's ASAP finish
            k = bisect.bisect_right(fins, target) - 1
            if k >= 0 and fins[k] > sent:  # an anchor done before the Send delays nothing
                nodes[r].inputs.append("^" + nodes[ids[k]].name)
                added += 1
    return added


def _kahn(n: int, preds: list[list[tuple[int, float]]],
          succs: list[list[tuple[int, float]]]) -> list[int]:
    pending = [len(p) for p in preds]
    ready = deque(i for i in range(n) if pending[i] == 0)
    order = []
    while ready:  # the loop: pop a ready node, release its successors
        i = ready.popleft()
        order.append(i)
        for k, _ in succs[i]:
            pending[k] -= 1
            if pending[k] == 0:
                ready.append(k)
    return order
