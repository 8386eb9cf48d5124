"""The placer: a device for every node of a GraphDef (WP §3.2.1, §4.3; OSDI §3.3).

`place(graph, devices, ...)` returns ``{node name: canonical device string}`` in four steps:

1. **Hard constraints.** Each `NodeDef.device` is parsed once into a `DeviceSpec`; a partial
   spec ("/job:ps", "/device:GPU:*") matches a set of the available devices. Feed and fetch
   nodes (ops ``_Arg`` / ``_Retval``, or names starting ``_arg_`` / ``_retval_``) are pinned to
   the client device, whatever their op's kernels.
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
   A source node whose consumers all sit in one group pinned to a single device goes there too
   (TF's generator heuristic: an initial value is made on the parameter server, not shipped).

State (all local to one `place` call; the inner loop works on ints and lists, not strings):
`_IndexedGraph` holds node index i -> `inputs[i]` ((src index, bytes) per data input),
`controls[i]`, `root[i]` (its colocation group); `_Constraints` turns requests and kernel
kinds into bitmasks over device indices (cached per op and per request string) and each group
into `feasible[root]` (device indices); `_simulate` keeps `avail[d]`, `finish[i]`, `dev_of[i]`
and the cost model's ``lat[s][d]`` / ``per_byte[s][d]`` link matrices.

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
    client = _client_index(specs, client_device)
    g = _IndexedGraph(graph.nodes, cm)
    constraints = _Constraints(g.nodes, specs, client, device_types_for)
    feasible = {r: constraints.feasible(group, allow_soft_placement)
                for r, group in g.groups().items()}
    _follow_consumers(g, feasible)
    dev_of = _simulate(g, specs, feasible, cm)
    dev_strs = [s.to_string() for s in specs]
    result = {node.name: dev_strs[dev_of[i]] for i, node in enumerate(g.nodes)}
    if log is not None:
        for name, dev in result.items():
            log(f"{name} -> {dev}")
    return result


class _IndexedGraph:
    """The graph as ints: node i's data inputs `inputs[i]` ((src index, bytes) pairs), their
    static shapes `in_shapes[i]`, control inputs `controls[i]`, output sizes `out_bytes[i]`,
    and colocation group `root[i]` (the union-find root: the group's first member)."""

    def __init__(self, nodes: list[NodeDef], cm: CostModel) -> None:
        n = len(nodes)
        self.nodes = nodes
        index: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if index.setdefault(node.name, i) != i:
                raise InvalidArgumentError(
                    f"the graph has two nodes named '{node.name}'; node names must be unique",
                    node=node.name)
        self.out_bytes = out_bytes = [cm.output_bytes(node) for node in nodes]
        default_bytes = cm.elements(None) * 4
        self.inputs: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        self.in_shapes: list[list] = [[] for _ in range(n)]
        self.controls: list[list[int]] = [[] for _ in range(n)]
        parent = list(range(n))
        for i, node in enumerate(nodes):
            ins, shapes = self.inputs[i], self.in_shapes[i]
            for spec in node.inputs:
                if spec.startswith("^"):
                    self.controls[i].append(_lookup(index, spec[1:], node, spec))
                    continue
                src_name, port = parse_input(spec)
                j = _lookup(index, src_name, node, spec)
                src = nodes[j]
                sizes = out_bytes[j]
                ins.append((j, sizes[port] if port < len(sizes) else default_bytes))
                shapes.append(src.out_shapes[port] if port < len(src.out_shapes) else None)
                if port < len(src.out_dtypes) and src.out_dtypes[port] == "resource":
                    _union(parent, i, j)  # a stateful consumer lives with its resource
            for j in _colocation_targets(node, index):
                _union(parent, i, j)
        self.root = [_find(parent, i) for i in range(n)]

    def groups(self) -> dict[int, list[int]]:
        """Colocation groups: root -> member indices in graph order."""
        members: dict[int, list[int]] = {}
        for i, r in enumerate(self.root):
            members.setdefault(r, []).append(i)
        return members


class _Constraints:
    """Feasible device sets as bitmasks over the available devices (bit d = device d), with
    caches per op (kernel kinds) and per requested device string (parsed once)."""

    def __init__(self, nodes: list[NodeDef], specs: list[DeviceSpec], client: int,
                 device_types_for: DeviceTypesFor) -> None:
        self.nodes = nodes
        self.specs = specs
        self.client = client
        self.device_types_for = device_types_for
        self.all_mask = (1 << len(specs)) - 1
        self.kind_mask: dict[str | None, int] = {}
        for d, s in enumerate(specs):
            self.kind_mask[s.device_type] = self.kind_mask.get(s.device_type, 0) | (1 << d)
        self.op_mask: dict[str, int] = {}
        self.request_cache: dict[str, tuple[DeviceSpec, int]] = {}
        self.mask_devices: dict[int, list[int]] = {}  # bitmask -> device indices (shared)
        self.errors = _Errors(nodes, [s.to_string() for s in specs], device_types_for,
                              self.request)

    def kernel_mask(self, node: NodeDef) -> int:
        if is_feed_or_fetch(node):
            return self.all_mask
        mask = self.op_mask.get(node.op)
        if mask is None:
            if node.op in EXECUTOR_OPS:
                mask = self.all_mask
            else:
                mask = 0
                for kind in self.device_types_for(node.op):
                    mask |= self.kind_mask.get(kind.upper(), 0)
            self.op_mask[node.op] = mask
        return mask

    def request(self, node: NodeDef) -> tuple[DeviceSpec, int] | None:
        """The node's device request and the mask of devices matching it, or None."""
        if is_feed_or_fetch(node):
            return self.specs[self.client], 1 << self.client
        if not node.device:
            return None
        found = self.request_cache.get(node.device)
        if found is None:
            try:
                spec = DeviceSpec.parse(node.device)
            except InvalidArgumentError as e:
                raise InvalidArgumentError(f"node '{node.name}' (op {node.op}): {e.message}",
                                           node=node.name, device=node.device) from None
            found = (spec, _mask_of(spec, self.specs))
            self.request_cache[node.device] = found
        return found

    def feasible(self, group: list[int], allow_soft_placement: bool) -> list[int]:
        """The device indices a colocation group may go to, or the error that says why none."""
        kmask, rmask, merged, conflict = self.all_mask, self.all_mask, None, False
        for m in group:
            km = self.kernel_mask(self.nodes[m])
            if km == 0:
                raise self.errors.no_kernel(m)
            kmask &= km
            req = self.request(self.nodes[m])
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
                raise self.errors.group(group, "no available device has a kernel for every op "
                                        "of these colocated nodes", soft_helps=False)
            if not allow_soft_placement:
                raise self.errors.constraint(group, conflict, rmask)
            # Soft placement: stay in the requested task if possible, else anywhere feasible.
            mask = 0 if conflict or merged is None else _mask_of(merged.task_spec(), self.specs)
            mask &= kmask
            if mask == 0:
                mask = kmask
        devs = self.mask_devices.get(mask)
        if devs is None:
            devs = [d for d in range(len(self.specs)) if mask >> d & 1]
            self.mask_devices[mask] = devs
        return devs


def _follow_consumers(g: _IndexedGraph, feasible: dict[int, list[int]]) -> None:
    """TF's generator heuristic: a source node (no inputs, alone in its group, no request)
    whose consumers all sit in one group pinned to a single device goes to that device too,
    so a constant feeding a pinned op (an initial value into an Assign on a parameter server)
    is made there instead of shipped there. (Joining an unpinned group instead would let the
    cheap source decide the whole group's device.)"""
    size: dict[int, int] = {}
    for r in g.root:
        size[r] = size.get(r, 0) + 1
    consumers: dict[int, set[int]] = {}
    for i, ins in enumerate(g.inputs):
        for j, _ in ins:
            if not g.nodes[j].inputs:
                consumers.setdefault(j, set()).add(g.root[i])
    for j, roots in consumers.items():
        node = g.nodes[j]
        if len(roots) != 1 or size[g.root[j]] != 1 or node.device or is_feed_or_fetch(node):
            continue
        (r,) = roots
        if len(feasible[r]) == 1 and feasible[r][0] in feasible[g.root[j]]:
            feasible[g.root[j]] = feasible[r]


def _simulate(g: _IndexedGraph, specs: list[DeviceSpec], feasible: dict[int, list[int]],
              cm: CostModel) -> list[int]:
    """The greedy earliest-finish simulation (WP §3.2.1): node index -> device index.

    State: `avail[d]`, when device d is next free; `finish[i]` and `dev_of[i]`, when and where
    node i finishes (set once, when it is visited); `group_dev[root]`, the device of a group
    whose first member was visited.
    """
    ndev = len(specs)
    lat = [[0.0] * ndev for _ in range(ndev)]
    per_byte = [[0.0] * ndev for _ in range(ndev)]
    for s in range(ndev):
        for d in range(ndev):
            lat[s][d], per_byte[s][d] = cm.link(specs[s], specs[d])
    rates = [cm.rates(s.device_type) for s in specs]
    measured = cm.has_measurements()
    nodes, inputs, controls, root = g.nodes, g.inputs, g.controls, g.root
    avail = [0.0] * ndev
    finish = [0.0] * len(nodes)
    dev_of = [-1] * len(nodes)
    group_dev: dict[int, int] = {}
    inf = float("inf")
    for i in _topological_order(nodes, inputs, controls):
        node = nodes[i]
        placed = group_dev.get(root[i])
        candidates = feasible[root[i]] if placed is None else (placed,)
        flops, nbytes = cm.work(node, g.in_shapes[i], sum(b for _, b in inputs[i]),
                                g.out_bytes[i])
        best, best_finish = candidates[0], inf
        for d in candidates:
            ready = 0.0  # when every input could be on device d
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
            if start + cost < best_finish:  # strict: ties keep the earlier device
                best, best_finish = d, start + cost
        dev_of[i] = best
        finish[i] = best_finish
        avail[best] = best_finish
        group_dev[root[i]] = best
    return dev_of


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
    """The colocation groups of `graph` (``_class`` loc:@ entries and resource edges) as name
    lists in graph order, singletons included: the placer's own union-find."""
    g = _IndexedGraph(graph.nodes, CostModel())
    return [[graph.nodes[m].name for m in group] for group in g.groups().values()]


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


class _Errors:
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

    def no_kernel(self, i: int) -> InvalidArgumentError:
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

    def group(self, group: list[int], why: str, soft_helps: bool) -> InvalidArgumentError:
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

    def constraint(self, group: list[int], conflict: bool,
                         rmask: int) -> InvalidArgumentError:
        if conflict:
            why = "their device requests conflict"
        elif rmask == 0:
            why = ("the requested device matches no available device" if len(group) == 1 else
                   "no available device satisfies all their device requests")
        else:
            why = "no requested device has a kernel for " + (
                "its op" if len(group) == 1 else "every op of the group")
        return self.group(group, why, soft_helps=True)
