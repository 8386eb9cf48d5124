"""Graph rewrites before placement: common-subexpression elimination, constant folding and
the fusions (MatMul+bias[+ReLU], variable gathers, chains of element-wise ops:
`scheduler.elementwise_fusion`).

CSE (WP §5.1) merges nodes of the same op, device, attributes and inputs (after earlier merges)
into the first of them; constant folding (OSDI §5) evaluates nodes whose inputs are all
constants, with the CPU kernel, and replaces them by `Const` nodes. Neither touches stateful
ops (variables, random numbers), asynchronous kernels, feeds or fetches.

    g = optimize(pruned_graph)        # both rewrites, in one pass each
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import OpError
from devices.kernels import registry
from scheduler.elementwise_fusion import fuse_elementwise
from scheduler.graphdef import GraphDef, NodeDef, parse_input

_NEVER = {"_Arg", "_Retval", "_Send", "_Recv", "Placeholder", "Const", "NoOp"}
_MAX_FOLD_ELEMENTS = 1 << 16


def optimize(graph: GraphDef, *, cse: bool = True, fold: bool = True) -> GraphDef:
    if cse:
        graph = eliminate_common_subexpressions(graph)
    if fold:
        graph = fold_constants(graph)
        graph = fuse_matmul_bias(graph)
        graph = gather_from_variables(graph)
        graph = fuse_elementwise(graph)
    return graph


def gather_from_variables(graph: GraphDef) -> GraphDef:
    """ReadVariableOp -> GatherV2 (axis 0) becomes one `ResourceGather` (TF's resource gather):
    the rows are read when the indices arrive, so a step waiting for them (indices from
    another task) holds no snapshot of the whole table, which would make every update to it
    meanwhile copy the table. Only where the gather is the read's one reader; the fused node
    keeps the gather's name and takes the read's device, colocation and control inputs."""
    readers: dict[str, int] = {}
    for nd in graph.nodes:
        for s in nd.inputs:
            key = s[1:] if s.startswith("^") else parse_input(s)[0]
            readers[key] = readers.get(key, 0) + 1
    by_name = graph.by_name()
    replaced: dict[str, NodeDef] = {}
    dropped: set[str] = set()
    for nd in graph.nodes:
        if nd.op != "GatherV2" or int(nd.attrs.get("axis", 0)) != 0:
            continue
        data = [s for s in nd.inputs if not s.startswith("^")]
        if len(data) != 2:
            continue
        rname, rport = parse_input(data[0])
        read = by_name.get(rname)
        if (read is None or read.op != "ReadVariableOp" or rport != 0
                or readers.get(rname) != 1 or (nd.device and read.device
                                               and nd.device != read.device)):
            continue
        handle = [s for s in read.inputs if not s.startswith("^")]
        controls = [s for s in (*read.inputs, *nd.inputs) if s.startswith("^")]
        attrs = {"axis": 0}
        if read.attrs and "_class" in read.attrs:
            attrs["_class"] = read.attrs["_class"]
        replaced[nd.name] = NodeDef(nd.name, "ResourceGather", [*handle, data[1], *controls],
                                    read.device or nd.device, attrs, list(nd.out_dtypes),
                                    list(nd.out_shapes))
        dropped.add(rname)
    if not replaced:
        return graph
    out = [replaced.get(nd.name, nd) for nd in graph.nodes if nd.name not in dropped]
    return GraphDef(out, graph.version)


def fuse_matmul_bias(graph: GraphDef) -> GraphDef:
    """MatMul -> Add/BiasAdd of a bias vector [-> Relu] becomes one `_FusedMatMul` node (TF's
    remapper): the bias and the ReLU are applied in place on the product, so the layer writes
    one buffer instead of three. Only where nothing else reads the intermediate results; the
    fused node keeps the name of the last node it replaces, so its readers are unchanged."""
    readers: dict[str, int] = {}                 # edges (data and control) out of a node
    data_readers: dict[str, list[NodeDef]] = {}  # nodes reading a node's data outputs
    for nd in graph.nodes:
        for s in nd.inputs:
            key = s[1:] if s.startswith("^") else parse_input(s)[0]
            readers[key] = readers.get(key, 0) + 1
            if not s.startswith("^"):
                data_readers.setdefault(key, []).append(nd)
    by_name = graph.by_name()
    replaced: dict[str, NodeDef] = {}
    dropped: set[str] = set()
    for nd in graph.nodes:
        if nd.op not in ("Add", "AddV2", "BiasAdd") or len(nd.inputs) != 2 or nd.name in dropped:
            continue
        names = [parse_input(s) for s in nd.inputs]
        for mm_at in (0, 1):
            (mname, mport), (bname, bport) = names[mm_at], names[1 - mm_at]
            mm = by_name.get(mname)
            if (mm is None or mm.op != "MatMul" or mport != 0 or readers.get(mname) != 1
                    or mm.device != nd.device or any(s.startswith("^") for s in mm.inputs)
                    or mm.out_dtypes != nd.out_dtypes or mm.out_shapes[0] is None
                    or mm.out_shapes != nd.out_shapes or nd.op == "BiasAdd" and mm_at != 0):
                continue
            bias = by_name.get(bname)
            bshape = bias.out_shapes[bport] if bias is not None else None
            if bshape is None or len(bshape) != 1 or bshape[0] != mm.out_shapes[0][-1]:
                continue
            last, relu = nd, False
            consumers = data_readers.get(nd.name, [])
            if (readers.get(nd.name) == 1 and len(consumers) == 1
                    and consumers[0].op == "Relu" and consumers[0].device == nd.device
                    and not any(s.startswith("^") for s in consumers[0].inputs)):
                last, relu = consumers[0], True
            fused = NodeDef(last.name, "_FusedMatMul",
                            [*mm.inputs, nd.inputs[1 - mm_at]], nd.device,
                            {"transpose_a": bool(mm.attrs.get("transpose_a")),
                             "transpose_b": bool(mm.attrs.get("transpose_b")), "relu": relu},
                            list(last.out_dtypes), list(last.out_shapes))
            replaced[last.name] = fused
            dropped.update({mm.name, nd.name} - {last.name})
            break
    if not replaced:
        return graph
    out = [replaced.get(nd.name, nd) for nd in graph.nodes if nd.name not in dropped]
    return GraphDef(out, graph.version)


def _rewritable(nd: NodeDef) -> bool:
    if nd.op in _NEVER or "resource" in nd.out_dtypes:
        return False
    kdefs = [registry.lookup(nd.op, d) for d in registry.device_types_for(nd.op)]
    return bool(kdefs) and not any(k.stateful or k.is_async for k in kdefs)


def _attr_key(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        if v.size > 64:
            return ("array", id(v))
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, list | tuple):
        return tuple(_attr_key(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _attr_key(x)) for k, x in v.items()))
    return v


def eliminate_common_subexpressions(graph: GraphDef) -> GraphDef:
    rename: dict[str, str] = {}
    seen: dict[Any, str] = {}
    out: list[NodeDef] = []
    for nd in _topological(graph):
        ins = [_renamed(s, rename) for s in nd.inputs]
        if ins != nd.inputs:
            nd = NodeDef(nd.name, nd.op, ins, nd.device, nd.attrs, nd.out_dtypes, nd.out_shapes)
        if _rewritable(nd) or nd.op == "Const":
            data = tuple(s for s in ins if not s.startswith("^"))
            ctrl = tuple(sorted(s for s in ins if s.startswith("^")))
            key = (nd.op, nd.device, data, ctrl, _attr_key(nd.attrs))
            first = seen.get(key)
            if first is not None:
                rename[nd.name] = first
                continue
            seen[key] = nd.name
        out.append(nd)
    return GraphDef(out, graph.version)


def _renamed(spec: str, rename: dict[str, str]) -> str:
    if spec.startswith("^"):
        return "^" + rename.get(spec[1:], spec[1:])
    name, port = parse_input(spec)
    return f"{rename.get(name, name)}:{port}" if name in rename else spec


def fold_constants(graph: GraphDef) -> GraphDef:
    from devices.device import CpuDevice  # a scratch device: no actor, no state

    scratch = None
    consts: dict[str, np.ndarray] = {
        nd.name: nd.attrs["value"] for nd in graph.nodes if nd.op == "Const"}
    out: list[NodeDef] = []
    by_name = graph.by_name()
    const_ctrl: dict[str, list[str]] = {
        nd.name: [s for s in nd.inputs if s.startswith("^")] for nd in graph.nodes
        if nd.op == "Const"}
    for nd in _topological(graph):
        static = _static_shape_value(nd, by_name)
        if static is not None:
            consts[nd.name] = static
            nd = NodeDef(nd.name, "Const", [s for s in nd.inputs if s.startswith("^")],
                         nd.device, {"value": static, "dtype": nd.out_dtypes[0]},
                         nd.out_dtypes, [tuple(static.shape)])
        elif (nd.op not in _NEVER and len(nd.out_dtypes) == 1 and nd.inputs
                and all(not s.startswith("^") and parse_input(s)[1] == 0
                        and parse_input(s)[0] in consts for s in nd.inputs)
                and _rewritable(nd)):
            scratch = scratch or CpuDevice("/job:localhost/replica:0/task:0/device:CPU:0")
            value = _evaluate(nd, graph, consts, scratch)
            if value is not None:
                consts[nd.name] = value
                # the folded constant keeps its inputs' control edges (as TF does), so a
                # constant gated by a predicate or a dependency stays gated
                ctrl = sorted({c for s in nd.inputs for c in const_ctrl.get(parse_input(s)[0], ())})
                nd = NodeDef(nd.name, "Const", ctrl, nd.device, {"value": value,
                             "dtype": nd.out_dtypes[0]}, nd.out_dtypes,
                             [tuple(value.shape)])
        if nd.op == "Const":
            const_ctrl[nd.name] = [s for s in nd.inputs if s.startswith("^")]
        out.append(nd)
    # constants whose every consumer was folded away have nothing left to do
    read = {s[1:] if s.startswith("^") else parse_input(s)[0] for nd in out for s in nd.inputs}
    targets = _originally_unread(graph)
    out = [nd for nd in out if nd.op != "Const" or nd.name in read
           or nd.name not in consts or nd.name in targets]
    return GraphDef(out, graph.version)


def _originally_unread(graph: GraphDef) -> set[str]:
    """Consts nobody read before folding: targets of the step, kept."""
    read = {s[1:] if s.startswith("^") else parse_input(s)[0]
            for nd in graph.nodes for s in nd.inputs}
    return {nd.name for nd in graph.nodes if nd.op == "Const" and nd.name not in read}


def _static_shape_value(nd: NodeDef, by_name: dict[str, NodeDef]) -> np.ndarray | None:
    """Shape/Size/Rank of a tensor whose static shape is fully known: a constant."""
    if nd.op not in ("Shape", "Size", "Rank") or not nd.inputs:
        return None
    name, port = parse_input(nd.inputs[0])
    src = by_name.get(name)
    if src is None or port >= len(src.out_shapes):
        return None
    shape = src.out_shapes[port]
    if shape is None or any(d is None for d in shape):
        return None
    dt = np.dtype(nd.out_dtypes[0]) if nd.out_dtypes[0] != "bfloat16" else None
    if dt is None:
        return None
    if nd.op == "Shape":
        value = np.array(shape, dtype=dt)
    elif nd.op == "Size":
        value = np.array(int(np.prod(shape)), dtype=dt)
    else:
        value = np.array(len(shape), dtype=dt)
    value.setflags(write=False)
    return value


def _evaluate(nd: NodeDef, graph: GraphDef, consts: dict[str, np.ndarray],
              device: Any) -> np.ndarray | None:
    from scheduler.executable import _kernel_context
    try:
        kdef = registry.lookup(nd.op, "CPU")
        index = {n.name: i for i, n in enumerate(graph.nodes)}
        pairs = [(index[parse_input(s)[0]], 0) for s in nd.inputs]
        fn = kdef.factory(_kernel_context(nd, graph.nodes, index, pairs, device))
        if getattr(fn, "needs_step", False):
            return None
        (value,) = fn(*[consts[parse_input(s)[0]] for s in nd.inputs])
    except (OpError, ValueError, TypeError, KeyError):
        return None  # leave it to run time, where the error names the step
    value = np.asarray(value)
    if value.size > _MAX_FOLD_ELEMENTS or value.dtype.hasobject:
        return None
    value = np.array(value)  # own the memory: kernels may return views of their inputs
    value.setflags(write=False)
    return value


def _topological(graph: GraphDef) -> list[NodeDef]:
    """Nodes in an order where inputs come first (graph order if already so)."""
    by_name = graph.by_name()
    order: list[NodeDef] = []
    state: dict[str, int] = {}
    for root in graph.nodes:
        if root.name in state:
            continue
        stack = [(root, False)]
        while stack:
            nd, done = stack.pop()
            if done:
                state[nd.name] = 2
                order.append(nd)
                continue
            if state.get(nd.name):
                continue
            state[nd.name] = 1
            stack.append((nd, True))
            for spec in reversed(nd.inputs):
                name = spec[1:] if spec.startswith("^") else parse_input(spec)[0]
                dep = by_name.get(name)
                if dep is not None and not state.get(name):
                    stack.append((dep, False))
    return order
