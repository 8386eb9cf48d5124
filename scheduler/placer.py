"""The placer: a device for every node of a GraphDef (WP §3.2.1, §4.3; OSDI §3.3).

`place(graph, devices, ...)` returns ``{node name: canonical device string}`` in four steps:

1. **Hard constraints.** Each `NodeDef.device` is parsed once into a `DeviceSpec`; a partial
   spec ("/job:ps", "/device:GPU:*") matches a set of the available devices. Feed and fetch
   nodes (ops ``_Arg`` / ``_Retval``, or names starting ``_arg_`` / ``_retval_``) are pinned to
   the client device.
2. **Kernel feasibility.** A node may go only to devices whose kind has a kernel for its op
   (`device_types_for`, injectable; the kernel registry's by default). Executor primitives
   (`EXECUTOR_OPS`: feeds, fetches, Send/Recv, NoOp and the control-flow primitives) run on
   any device kind.
3. **Colocation.** Union-find joins each node with the targets of its ``_class`` attribute's
   ``"loc:@other"`` entries, and each consumer of a ``resource`` output with its producer (a
   stateful op lives with its variable). A target missing from the graph (pruned away) is
   ignored. Each group's feasible set is the intersection of its members'. A group whose
   members ask for incompatible devices, or whose intersection is empty, raises
   InvalidArgumentError naming every member, what it asked for, and the available devices,
   unless `allow_soft_placement`: then the group drops its device requests (first trying to
   stay in the requested task), keeps kernel feasibility, and stays together. A node whose op
   has no kernel on any available device always fails.
4. **Greedy simulation.** Nodes are visited in topological order from the sources
   (NextIteration back edges ignored) while simulating execution: each device has an
   available-at time, each node a finish time. A group is placed when its first member is
   visited, on the feasible device where that member would *finish earliest*: ``max(device
   free, inputs arrived) + compute``, inputs arriving after the cost model's transfer time.
   Ties go to the first device in the given order, so a graph that fits one device stays there.

State (all local to one `place` call; the inner loop works on ints and lists, not strings):
node index i -> `inputs[i]` ((src index, bytes) per data input), `controls[i]`, `root[i]` (its
colocation group), `feasible[root]` (device indices), `dev_of[i]`, `finish[i]`; device index
d -> `avail[d]`; and the cost model's ``lat[s][d]`` / ``per_byte[s][d]`` link matrices.

    >>> g = GraphDef([NodeDef("x", "Placeholder", out_dtypes=["float32"], out_shapes=[(4,)]),
    ...               NodeDef("y", "Neg", ["x"], out_dtypes=["float32"], out_shapes=[(4,)])])
    >>> place(g, ["/job:localhost/replica:0/task:0/device:CPU:0",
    ...           "/job:localhost/replica:0/task:0/device:CPU:1"],
    ...       device_types_for=lambda op: {"CPU"})      # a chain stays on the first device
    {'x': '/job:localhost/replica:0/task:0/device:CPU:0',
     'y': '/job:localhost/replica:0/task:0/device:CPU:0'}
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from devices.device_spec import DeviceSpec
from devices.errors import InvalidArgumentError
from devices.kernels import registry
from scheduler.cost_model import CostModel
from scheduler.graphdef import GraphDef, NodeDef, parse_input

FEED_FETCH_OPS: frozenset[str] = frozenset({"_Arg", "_Retval"})
# Run by the executor itself on any device, whether or not a kernel is registered.
EXECUTOR_OPS: frozenset[str] = frozenset({
    "_Arg", "_Retval", "_Send", "_Recv", "NoOp", "ControlTrigger",
    "Switch", "Merge", "Enter", "Exit", "NextIteration",
})
_BACK_EDGE_OPS = frozenset({"NextIteration"})
_MAX_LISTED = 10  # members listed in a colocation error before "... and N more"

DeviceTypesFor = Callable[[str], Iterable[str]]


def is_feed_or_fetch(node: NodeDef) -> bool:
    """True for nodes the client feeds or fetches: they live on the client device."""
    return node.op in FEED_FETCH_OPS or node.name.startswith(("_arg_", "_retval_"))


def place(graph: GraphDef, devices: Sequence[DeviceSpec | str], *,
          allow_soft_placement: bool = False, cost_model: CostModel | None = None,
          client_device: DeviceSpec | str | None = None,
          device_types_for: DeviceTypesFor = registry.device_types_for,
          log: Callable[[str], None] | None = None) -> dict[str, str]:
    """Assign every node of `graph` to one of `devices` (fully specified device names).

    `client_device` (default: the first CPU, else the first device; a partial spec picks the
    first match) holds feeds and fetches. `log`, if given, receives one ``"node -> device"``
    line per node (for ``log_device_placement``). Raises InvalidArgumentError for a device
    request no available device satisfies, conflicting colocated requests, or an op without a
    kernel on any available device.
    """
    cm = cost_model if cost_model is not None else CostModel()
    specs = _available(devices)
    ndev = len(specs)
    dev_strs = [s.to_string() for s in specs]
    client = _client_index(specs, client_device)
    nodes = graph.nodes
    n = len(nodes)
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if index.setdefault(node.name, i) != i:
            raise InvalidArgumentError(
                f"the graph has two nodes named '{node.name}'; node names must be unique",
                node=node.name)

    # -- edges: ints from here on -------------------------------------------------------------
    out_bytes = [cm.output_bytes(node) for node in nodes]
    default_bytes = cm.elements(None) * 4
    inputs: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    in_shapes: list[list] = [[] for _ in range(n)]
    controls: list[list[int]] = [[] for _ in range(n)]
    parent = list(range(n))
    for i, node in enumerate(nodes):
        ins, shapes = inputs[i], in_shapes[i]
        for spec in node.inputs:
            if spec.startswith("^"):
                controls[i].append(_lookup(index, spec[1:], node, spec))
                continue
            src_name, port = parse_input(spec)
            j = _lookup(index, src_name, node, spec)
            src = nodes[j]
            sizes = out_bytes[j]
            ins.append((j, sizes[port] if port < len(sizes) else default_bytes))
            shapes.append(src.out_shapes[port] if port < len(src.out_shapes) else None)
            if port < len(src.out_dtypes) and src.out_dtypes[port] == "resource":
                _union(parent, i, j)
        for j in _colocation_targets(node, index):
            _union(parent, i, j)
    root = [_find(parent, i) for i in range(n)]

    # -- feasible device sets, as bitmasks over device indices ----------------------------------
    all_mask = (1 << ndev) - 1
    kind_mask: dict[str, int] = {}
    for d, s in enumerate(specs):
        kind_mask[s.device_type] = kind_mask.get(s.device_type, 0) | (1 << d)
    op_mask: dict[str, int] = {}
    request_cache: dict[str, tuple[DeviceSpec, int]] = {}

    def kernel_mask(op: str) -> int:
        mask = op_mask.get(op)
        if mask is None:
            if op in EXECUTOR_OPS:
                mask = all_mask
            else:
                mask = 0
                for kind in device_types_for(op):
                    mask |= kind_mask.get(kind.upper(), 0)
            op_mask[op] = mask
        return mask

    def request(node: NodeDef) -> tuple[DeviceSpec, int] | None:
        if is_feed_or_fetch(node):
            return specs[client], 1 << client
        if not node.device:
            return None
        found = request_cache.get(node.device)
        if found is None:
            try:
                spec = DeviceSpec.parse(node.device)
            except InvalidArgumentError as e:
                raise InvalidArgumentError(f"node '{node.name}' (op {node.op}): {e.message}",
                                           node=node.name, device=node.device) from None
            found = (spec, _mask_of(spec, specs))
            request_cache[node.device] = found
        return found

    members: dict[int, list[int]] = {}
    for i, r in enumerate(root):
        members.setdefault(r, []).append(i)
    ctx = _Context(nodes, dev_strs, device_types_for, request)
    feasible: dict[int, list[int]] = {}
    mask_devices: dict[int, list[int]] = {}  # bitmask -> device indices, shared lists
    for r, group in members.items():
        kmask, rmask, merged, conflict = all_mask, all_mask, None, False
        for m in group:
            km = kernel_mask(nodes[m].op)
            if km == 0:
                raise ctx.no_kernel_error(m)
            kmask &= km
            req = request(nodes[m])
            if req is not None:
                rmask &= req[1]
                if merged is None:
                    merged = req[0]
                elif merged.is_compatible_with(req[0]):
                    merged = merged.merge(req[0])
                else:
                    conflict = True
        mask = rmask & kmask
        if conflict or mask == 0:
            if kmask == 0:
                raise ctx.group_error(group, "no available device has a kernel for every op of "
                                      "these colocated nodes", soft_helps=False)
            if not allow_soft_placement:
                raise ctx.constraint_error(group, conflict, rmask)
            mask = 0 if conflict or merged is None else _mask_of(merged.task_spec(), specs)
            mask &= kmask
            if mask == 0:
                mask = kmask
        devs = mask_devices.get(mask)
        if devs is None:
            devs = mask_devices[mask] = [d for d in range(ndev) if mask >> d & 1]
        feasible[r] = devs

    # -- greedy earliest-finish simulation in topological order ----------------------------------
    lat = [[0.0] * ndev for _ in range(ndev)]
    per_byte = [[0.0] * ndev for _ in range(ndev)]
    for s in range(ndev):
        for d in range(ndev):
            lat[s][d], per_byte[s][d] = cm.link(specs[s], specs[d])
    rates = [cm.rates(s.device_type) for s in specs]
    measured = cm.has_measurements()
    order = _topological_order(nodes, inputs, controls)
    avail = [0.0] * ndev
    finish = [0.0] * n
    dev_of = [-1] * n
    group_dev: dict[int, int] = {}
    inf = float("inf")
    for i in order:
        node = nodes[i]
        r = root[i]
        placed = group_dev.get(r)
        candidates = feasible[r] if placed is None else (placed,)
        flops, nbytes = cm.work(node, in_shapes[i], sum(b for _, b in inputs[i]), out_bytes[i])
        best, best_finish = candidates[0], inf
        for d in candidates:
            ready = 0.0
            for j, nb in inputs[i]:
                t = finish[j]
                sd = dev_of[j]
                if sd != d and sd >= 0:
                    t += lat[sd][d] + nb * per_byte[sd][d]
                if t > ready:
                    ready = t
            for j in controls[i]:
                t = finish[j]
                sd = dev_of[j]
                if sd != d and sd >= 0:
                    t += lat[sd][d]
                if t > ready:
                    ready = t
            start = avail[d] if avail[d] > ready else ready
            cost = cm.measured(node.name, specs[d]) if measured else None
            if cost is None:
                rt = rates[d]
                cost = rt.launch_s + max(flops / rt.flops_per_s, nbytes / rt.bytes_per_s)
            if start + cost < best_finish:
                best, best_finish = d, start + cost
        dev_of[i] = best
        finish[i] = best_finish
        avail[best] = best_finish
        group_dev[r] = best

    result = {node.name: dev_strs[dev_of[i]] for i, node in enumerate(nodes)}
    if log is not None:
        for name, dev in result.items():
            log(f"{name} -> {dev}")
    return result


# -- helpers ------------------------------------------------------------------------------------

def _available(devices: Sequence[DeviceSpec | str]) -> list[DeviceSpec]:
    if not devices:
        raise InvalidArgumentError("place() needs at least one available device")
    specs: list[DeviceSpec] = []
    for dev in devices:
        spec = DeviceSpec.from_any(dev)
        if not spec.is_fully_specified:
            raise InvalidArgumentError(
                f"available device '{dev}' is not fully specified; name each device as "
                "/job:J/replica:R/task:T/device:KIND:N")
        if spec not in specs:
            specs.append(spec)
    return specs


def _client_index(specs: list[DeviceSpec], client: DeviceSpec | str | None) -> int:
    if client is None:
        for d, s in enumerate(specs):
            if s.device_type == "CPU":
                return d
        return 0
    want = DeviceSpec.from_any(client)
    for d, s in enumerate(specs):
        if want.matches(s):
            return d
    raise InvalidArgumentError(
        f"client device '{client}' matches no available device; available devices: "
        + ", ".join(s.to_string() for s in specs))


def _mask_of(spec: DeviceSpec, specs: list[DeviceSpec]) -> int:
    mask = 0
    for d, s in enumerate(specs):
        if spec.matches(s):
            mask |= 1 << d
    return mask


def _lookup(index: dict[str, int], name: str, node: NodeDef, spec: str) -> int:
    j = index.get(name)
    if j is None:
        raise InvalidArgumentError(
            f"node '{node.name}' (op {node.op}) has input '{spec}', but the graph has no node "
            f"named '{name}'; add it or remove the input", node=node.name)
    return j


def _colocation_targets(node: NodeDef, index: dict[str, int]) -> list[int]:
    """Indices of the nodes named by `node`'s ``_class`` ``"loc:@name"`` entries (TF's
    colocation attribute); names not in the graph (pruned away) are skipped."""
    cls = node.attrs.get("_class") if node.attrs else None
    if not cls:
        return []
    out = []
    for entry in [cls] if isinstance(cls, str) else cls:
        if isinstance(entry, str) and entry.startswith("loc:@"):
            j = index.get(entry[5:])
            if j is not None:
                out.append(j)
    return out


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


def _union(parent: list[int], a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        # The smaller index becomes the root, so a group's root is its first member.
        if ra < rb:
            parent[rb] = ra
        else:
            parent[ra] = rb


def colocation_groups(graph: GraphDef) -> list[list[str]]:
    """The colocation groups of `graph` (``_class`` loc:@ and resource edges), as name lists
    in graph order, singletons included; the placer uses the same union-find."""
    nodes = graph.nodes
    index = {node.name: i for i, node in enumerate(nodes)}
    parent = list(range(len(nodes)))
    for i, node in enumerate(nodes):
        for spec in node.inputs:
            if spec.startswith("^"):
                continue
            src, port = parse_input(spec)
            j = index.get(src)
            if j is not None and port < len(nodes[j].out_dtypes) \
                    and nodes[j].out_dtypes[port] == "resource":
                _union(parent, i, j)
        for j in _colocation_targets(node, index):
            _union(parent, i, j)
    groups: dict[int, list[str]] = {}
    for i, node in enumerate(nodes):
        groups.setdefault(_find(parent, i), []).append(node.name)
    return list(groups.values())


def _topological_order(nodes: list[NodeDef], inputs: list[list[tuple[int, int]]],
                       controls: list[list[int]]) -> list[int]:
    """Kahn's algorithm from the sources, FIFO so independent branches interleave. Edges out of
    NextIteration (loop back edges) are ignored; nodes left on another cycle follow in graph
    order."""
    n = len(nodes)
    pending = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j, _ in inputs[i]:
            if nodes[j].op not in _BACK_EDGE_OPS:
                succ[j].append(i)
                pending[i] += 1
        for j in controls[i]:
            if nodes[j].op not in _BACK_EDGE_OPS:
                succ[j].append(i)
                pending[i] += 1
    ready = deque(i for i in range(n) if pending[i] == 0)
    order: list[int] = []
    while ready:  # the loop: pop a ready node, release its successors
        i = ready.popleft()
        order.append(i)
        for k in succ[i]:
            pending[k] -= 1
            if pending[k] == 0:
                ready.append(k)
    if len(order) < n:
        seen = set(order)
        order.extend(i for i in range(n) if i not in seen)
    return order


class _Context:
    """Builds the placer's error messages: each names the nodes, what they asked for, where
    their kernels exist and the available devices, and says what to do."""

    def __init__(self, nodes: list[NodeDef], dev_strs: list[str],
                 device_types_for: DeviceTypesFor,
                 request: Callable[[NodeDef], tuple[DeviceSpec, int] | None]) -> None:
        self.nodes = nodes
        self.dev_strs = dev_strs
        self.device_types_for = device_types_for
        self.request = request

    def available(self) -> str:
        return "available devices: " + ", ".join(self.dev_strs)

    def kernels(self, op: str) -> str:
        if op in EXECUTOR_OPS:
            return "any"
        kinds = sorted(k.upper() for k in self.device_types_for(op))
        return ", ".join(kinds) if kinds else "none"

    def describe(self, i: int) -> str:
        node = self.nodes[i]
        req = self.request(node)
        if req is None:
            asked = "no device request"
        elif is_feed_or_fetch(node):
            asked = f"feed/fetch on the client device '{req[0]}'"
        else:
            asked = f"asked for '{node.device}'"
        return f"'{node.name}' (op {node.op}, {asked}, kernels for: {self.kernels(node.op)})"

    def no_kernel_error(self, i: int) -> InvalidArgumentError:
        node = self.nodes[i]
        kinds = self.kernels(node.op)
        if kinds == "none":
            why = f"no kernel is registered for op '{node.op}'"
            fix = "register a kernel for it or import the module that does"
        else:
            why = f"op '{node.op}' has kernels only for: {kinds}"
            fix = f"add a device of kind {kinds} or register a kernel for an available kind"
        return InvalidArgumentError(
            f"cannot place node '{node.name}': {why}, and no available device has one; "
            f"{self.available()}; {fix}", node=node.name, device=node.device or None)

    def group_error(self, group: list[int], why: str, soft_helps: bool) -> InvalidArgumentError:
        listed = [self.describe(m) for m in group[:_MAX_LISTED]]
        if len(group) > _MAX_LISTED:
            listed.append(f"... and {len(group) - _MAX_LISTED} more")
        subject = "node" if len(group) == 1 else "colocated nodes"
        if not soft_helps:
            fix = "change the colocation or register kernels so one device kind runs them all"
        elif len(group) == 1:
            fix = "fix the device request or pass allow_soft_placement=True"
        else:
            fix = ("fix the device requests, the colocation ('_class' loc:@ attributes, "
                   "resource inputs), or pass allow_soft_placement=True")
        first = next((m for m in group if self.nodes[m].device), group[0])
        return InvalidArgumentError(
            f"cannot place {subject} {'; '.join(listed)}: {why}; {self.available()}; {fix}",
            node=self.nodes[first].name, device=self.nodes[first].device or None)

    def constraint_error(self, group: list[int], conflict: bool,
                         rmask: int) -> InvalidArgumentError:
        if conflict:
            why = "their device requests conflict"
        elif rmask == 0:
            why = ("the requested device matches no available device" if len(group) == 1 else
                   "no available device satisfies all their device requests")
        else:
            why = "no requested device has a kernel for " + (
                "its op" if len(group) == 1 else "every op of the group")
        return self.group_error(group, why, soft_helps=True)
