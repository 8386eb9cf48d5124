"""Element-wise fusion: a linear chain of element-wise nodes becomes one `_FusedElementwise`
node whose kernel runs the whole chain block by block (TF's Grappler/XLA do the same for
chains of cwise ops).

Why: each node of a chain otherwise makes one memory pass over its whole output (2M floats
are 8 MB, far past the caches) and one trip through the executor. Fused, the kernel takes a
cache-sized block of the chain's first input, applies every op of the chain to that block in
place, and moves on; the blocks are split over the intra-op pool (`devices.intra_op`). The
values are the same as the unfused chain's (the same ufuncs on the same elements in the same
order), bit for bit.

What fuses: nodes of the ops in `FUSIBLE` (one ufunc each) whose output has a fully known
static shape S and a floating dtype D. A chain grows from a node to its reader when that
reader is the node's *only* reader (no control edges out of the node, no fetch of it), is
fusible, carries the same colocation constraint (``_class``, e.g. every node of a while loop's
body is colocated with its LoopCond) and no other node is colocated with the node (it
disappears into the fused node), sits on the same device, has no control
inputs, produces S and D, and each of its other operands has the static shape () or S (a
scalar or a same-shape tensor, cut with the blocks). Chains of fewer than `MIN_CHAIN` nodes
stay as they are.

The fused node keeps the *last* node's name (so its readers are unchanged), the first node's
device, colocation constraint and control inputs, and carries its program in the attribute
``program``: one step per fused node, ``[ufunc, a]`` or ``[ufunc, a, b]``, where an operand
is ``-1`` for the chain's running value and ``k >= 0`` for the fused node's k-th input.

    g = fuse_elementwise(g)      # after constant folding (scheduler.rewrite.optimize)
"""

from __future__ import annotations

from scheduler.graphdef import GraphDef, NodeDef, parse_input

# op -> (ufunc, arity): the element-wise ops a chain may hold
FUSIBLE: dict[str, tuple[str, int]] = {
    "Add": ("add", 2), "AddV2": ("add", 2), "Sub": ("subtract", 2), "Mul": ("multiply", 2),
    "RealDiv": ("true_divide", 2), "Maximum": ("maximum", 2), "Minimum": ("minimum", 2),
    "Neg": ("negative", 1), "Abs": ("absolute", 1), "Square": ("square", 1),
    "Reciprocal": ("reciprocal", 1), "Sqrt": ("sqrt", 1), "Exp": ("exp", 1),
    "Log": ("log", 1), "Tanh": ("tanh", 1), "Sin": ("sin", 1), "Cos": ("cos", 1),
    "Relu": ("relu", 1),
}
MIN_CHAIN = 2
_FLOATS = frozenset({"float16", "float32", "float64"})


def _static(shape: object) -> bool:
    return isinstance(shape, tuple | list) and all(isinstance(d, int) for d in shape)


def _fusible(nd: NodeDef) -> bool:
    spec = FUSIBLE.get(nd.op)
    if spec is None or len(nd.out_dtypes) != 1 or nd.out_dtypes[0] not in _FLOATS:
        return False
    data = [s for s in nd.inputs if not s.startswith("^")]
    return len(data) == spec[1] and bool(nd.out_shapes) and _static(nd.out_shapes[0])


def _colocation(nd: NodeDef) -> object:
    return nd.attrs.get("_class") if nd.attrs else None


def fuse_elementwise(graph: GraphDef) -> GraphDef:
    """Replace every chain of at least `MIN_CHAIN` fusible nodes by one `_FusedElementwise`."""
    readers: dict[str, int] = {}                 # edges (data and control) out of a node
    data_readers: dict[str, list[NodeDef]] = {}
    anchors: set[str] = set()                    # nodes some node is colocated with
    for nd in graph.nodes:
        cls = _colocation(nd)
        for entry in [cls] if isinstance(cls, str) else (cls or ()):
            if isinstance(entry, str) and entry.startswith("loc:@"):
                anchors.add(entry[5:])
        for s in nd.inputs:
            key = s[1:] if s.startswith("^") else parse_input(s)[0]
            readers[key] = readers.get(key, 0) + 1
            if not s.startswith("^"):
                data_readers.setdefault(key, []).append(nd)
    by_name = graph.by_name()

    def shape_of(spec: str) -> tuple | None:
        name, port = parse_input(spec)
        src = by_name.get(name)
        if src is None or port >= len(src.out_shapes) or not _static(src.out_shapes[port]):
            return None
        return tuple(src.out_shapes[port])

    def next_in_chain(nd: NodeDef) -> NodeDef | None:
        if readers.get(nd.name) != 1 or nd.name in anchors:
            return None
        (nxt,) = data_readers.get(nd.name, [None])
        if (nxt is None or not _fusible(nxt) or nxt.device != nd.device
                or _colocation(nxt) != _colocation(nd)
                or any(s.startswith("^") for s in nxt.inputs)
                or nxt.out_dtypes != nd.out_dtypes
                or tuple(nxt.out_shapes[0]) != tuple(nd.out_shapes[0])):
            return None
        shape = tuple(nd.out_shapes[0])
        for s in nxt.inputs:
            if parse_input(s)[0] != nd.name and shape_of(s) not in ((), shape):
                return None
        if any(parse_input(s) != (nd.name, 0) and parse_input(s)[0] == nd.name
               for s in nxt.inputs):
            return None  # reads another port of the chain's node: not element-wise
        return nxt

    in_chain: set[str] = set()
    replaced: dict[str, NodeDef] = {}
    for head in graph.nodes:
        if head.name in in_chain or not _fusible(head):
            continue
        shape = tuple(head.out_shapes[0])
        if any(not s.startswith("^") and shape_of(s) not in ((), shape) for s in head.inputs):
            continue
        chain = [head]
        while (nxt := next_in_chain(chain[-1])) is not None and nxt.name not in in_chain:
            chain.append(nxt)
        if len(chain) < MIN_CHAIN or _loops_back(chain):
            continue
        fused = _fuse(chain)
        in_chain.update(nd.name for nd in chain)
        replaced[chain[-1].name] = fused
    if not replaced:
        return graph
    out = [replaced.get(nd.name, nd) for nd in graph.nodes
           if nd.name not in in_chain or nd.name in replaced]
    return GraphDef(out, graph.version)


def _loops_back(chain: list[NodeDef]) -> bool:
    """True if the chain's head reads a later member (a cycle already in the graph: left
    unfused, so the executor's cycle error names the real nodes)."""
    names = {nd.name for nd in chain}
    return any((s[1:] if s.startswith("^") else parse_input(s)[0]) in names
               for s in chain[0].inputs)


def _fuse(chain: list[NodeDef]) -> NodeDef:
    """The `_FusedElementwise` node of `chain` (see the module docstring)."""
    inputs: list[str] = []
    program: list[list[object]] = []
    prev = None
    for nd in chain:
        ufunc = FUSIBLE[nd.op][0]
        operands: list[object] = [ufunc]
        for s in nd.inputs:
            if s.startswith("^"):
                continue
            if prev is not None and parse_input(s) == (prev, 0):
                operands.append(-1)
                continue
            spec = s if ":" in s else f"{s}:0"
            if spec not in inputs:
                inputs.append(spec)
            operands.append(inputs.index(spec))
        program.append(operands)
        prev = nd.name
    head, last = chain[0], chain[-1]
    controls = [s for s in head.inputs if s.startswith("^")]
    attrs: dict[str, object] = {"program": program, "fused": [nd.name for nd in chain]}
    if _colocation(head) is not None:
        attrs["_class"] = _colocation(head)
    return NodeDef(last.name, "_FusedElementwise", [*inputs, *controls], head.device, attrs,
                   list(last.out_dtypes), [tuple(last.out_shapes[0])])
