"""Graphs as files: TensorFlow's ``GraphDef`` protobuf for actorflow graphs, and back.

Design
------
A graph leaves the process as TensorFlow's ``GraphDef`` message (tensorboardX's generated
``graph_pb2``, TensorFlow's field numbers), one ``NodeDef`` per op with TensorFlow's
conventions (``"x"`` for port 0, ``"x:1"``, ``"^x"`` for a control input, the device string)
and the attributes TensorFlow's tools read (``T``/``dtype``, ``_output_shapes``, small constant
values), so TensorBoard, ``tf.compat.v1.GraphDef.FromString`` and protobuf tooling read our
files. What actorflow needs to rebuild the op exactly (its attributes as the runtime keeps them,
each output's dtype and static shape) travels in one extra attribute per node, ``_af_node``:
msgpack bytes encoded with the IR's own allowlisted extension types
(`scheduler.graphdef.pack_value`), never pickled. Reading a GraphDef that lacks it (one
TensorFlow wrote) fails with an error naming the node: TensorFlow's attribute sets are not
actorflow's.

Import (`import_graph_def`, and `actorflow.meta_graph`) adds the nodes to a `Graph` in two
passes: every op is created first (names kept, or prefixed by the import scope; the stored
dtypes and shapes stand in for shape inference), then the inputs are wired, so the back edges
of while loops (NextIteration -> Merge) need no ordering. Import bypasses the op constructors'
Python-side bookkeeping: the forward graph runs, but gradients through the control flow of an
imported graph are not rebuilt (TensorFlow keeps them as WhileContextDef; we do not yet).

    gd = af.get_default_graph().as_graph_def()
    af.train.write_graph(gd, "/tmp/m", "graph.pb", as_text=False)
    with af.Graph().as_default() as g:
        y, = af.import_graph_def(gd, return_elements=["y:0"], name="m")   # "m/y:0"

`convert_variables_to_constants` freezes a graph for serving: each variable read becomes a
Const of the variable's value in the session, and only what the outputs need is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from actorflow.graph import Graph, Operation, Tensor, control_dependencies, get_default_graph
from devices.errors import InvalidArgumentError, NotFoundError
from scheduler.graphdef import GraphDef as IRGraphDef
from scheduler.graphdef import NodeDef, pack_value, parse_input, unpack_value

AF_ATTR = "_af_node"
_VARIABLE_READS = ("ReadVariableOp",)


def _pb() -> Any:
    from tensorboardX.proto import graph_pb2
    return graph_pb2


def graph_def_class() -> type:
    """TensorFlow's GraphDef message class (`af.GraphDef`)."""
    return _pb().GraphDef


# -- IR <-> proto -------------------------------------------------------------------------------
def to_proto(graph_or_def: Any) -> Any:
    """A TensorFlow GraphDef proto of an `af.Graph`, an IR GraphDef, or a GraphDef proto."""
    from google.protobuf.message import Message
    from tensorboardX.proto import attr_value_pb2

    from actorflow.summary.protos import graph_def_proto
    if isinstance(graph_or_def, Message):
        return graph_or_def
    ir = graph_or_def.as_graph_def() if isinstance(graph_or_def, Graph) else graph_or_def
    if not isinstance(ir, IRGraphDef):
        raise InvalidArgumentError(f"expected an af.Graph or a GraphDef, got "
                                   f"{type(graph_or_def).__name__}")
    proto = graph_def_proto(ir)
    for node, nd in zip(proto.node, ir.nodes, strict=True):
        try:
            extra = pack_value([nd.attrs, nd.out_dtypes,
                                [None if s is None else list(s) for s in nd.out_shapes]])
        except (InvalidArgumentError, TypeError) as e:
            raise InvalidArgumentError(
                f"op '{nd.name}' ({nd.op}) cannot be written to a GraphDef: {e}; ops holding "
                f"Python objects (py_func, from_generator) only live in their process") from None
        node.attr[AF_ATTR].CopyFrom(attr_value_pb2.AttrValue(s=extra))
    return proto


def to_ir(proto: Any) -> IRGraphDef:
    """The IR GraphDef of a GraphDef proto (or its bytes) written by actorflow."""
    if isinstance(proto, bytes | bytearray | memoryview):
        proto = parse_graph_def(bytes(proto))
    if isinstance(proto, IRGraphDef):
        return proto
    nodes = []
    for node in proto.node:
        if AF_ATTR not in node.attr:
            raise InvalidArgumentError(
                f"GraphDef node '{node.name}' ({node.op}) was not written by actorflow (it has "
                f"no '{AF_ATTR}' attribute): actorflow imports the graphs it exports "
                f"(Graph.as_graph_def, export_meta_graph, write_graph); rebuild the model with "
                f"actorflow and restore its checkpoint instead")
        attrs, dts, shapes = unpack_value(node.attr[AF_ATTR].s)
        inputs = [i if i.startswith("^") or ":" in i else i + ":0" for i in node.input]
        nodes.append(NodeDef(node.name, node.op, inputs, node.device, dict(attrs), list(dts),
                             [None if s is None else tuple(s) for s in shapes]))
    return IRGraphDef(nodes)


def parse_message(data: bytes, cls: type, what: str) -> Any:
    """A protobuf message of class `cls` from its binary or text form (`what` names it in the
    error)."""
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError
    try:
        return cls.FromString(data)
    except DecodeError:
        try:
            return text_format.Parse(data.decode(), cls())
        except (UnicodeDecodeError, text_format.ParseError) as e:
            raise InvalidArgumentError(f"{what} is not a {cls.__name__} (binary or text): "
                                       f"{e}") from None


def write_message(path: str, message: Any, as_text: bool) -> None:
    """Write a protobuf message as text or binary, atomically (a temporary name, replaced)."""
    from google.protobuf import text_format
    data = text_format.MessageToString(message).encode() if as_text \
        else message.SerializeToString()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def parse_graph_def(data: bytes) -> Any:
    """A GraphDef proto from its binary or text form."""
    return parse_message(data, graph_def_class(), "the data")


def write_graph(graph_or_graph_def: Any, logdir: str, name: str, as_text: bool = True) -> str:
    """Write a graph to ``logdir/name`` (text protobuf by default), as TF1's tf.train.write_graph;
    return the path."""
    path = os.path.join(logdir, name)
    write_message(path, to_proto(graph_or_graph_def), as_text)
    return path


# -- import into a Graph ------------------------------------------------------------------------
def _scoped(name: str, prefix: str) -> str:
    return prefix + name if prefix else name


def _has_op(graph: Graph, name: str) -> bool:
    try:
        graph.get_operation_by_name(name)
    except (KeyError, NotFoundError, InvalidArgumentError):
        return False
    return True


def add_nodes(graph: Graph, ir: IRGraphDef, prefix: str = "", clear_devices: bool = False,
              input_map: dict[str, Tensor] | None = None) -> dict[str, Operation]:
    """Create the ops of `ir` in `graph` (names prefixed by `prefix`); return them by IR name.

    `input_map` maps IR tensor names ("x:0") to tensors of `graph` that replace them as inputs.
    """
    input_map = dict(input_map or {})
    taken = [nd.name for nd in ir.nodes if _has_op(graph, _scoped(nd.name, prefix))]
    if taken:
        raise InvalidArgumentError(
            f"importing would duplicate op names already in the graph ({', '.join(taken[:3])}"
            f"{', ...' if len(taken) > 3 else ''}); pass an import scope (name=...) or import "
            f"into a new af.Graph()")
    from devices import dtypes
    created: dict[str, Operation] = {}
    with control_dependencies(None):
        for nd in ir.nodes:
            outs = [(dtypes.as_dtype(dt), sh) for dt, sh in zip(nd.out_dtypes, nd.out_shapes,
                                                               strict=True)]
            op = graph.create_op(nd.op, [], nd.attrs, outs, name=_scoped(nd.name, prefix))
            if op.name != _scoped(nd.name, prefix):
                raise InvalidArgumentError(f"op name '{nd.name}' is not unique in the GraphDef")
            op.device = "" if clear_devices else nd.device
            created[nd.name] = op
    for nd in ir.nodes:
        op = created[nd.name]
        ins: list[Tensor] = []
        for spec in nd.inputs:
            if spec.startswith("^"):
                continue
            src, port = parse_input(spec)
            mapped = input_map.pop(f"{src}:{port}", None)
            if mapped is not None:
                ins.append(mapped)
                continue
            if src not in created:
                raise InvalidArgumentError(f"GraphDef node '{nd.name}' reads '{spec}', which is "
                                           f"not in the GraphDef")
            ins.append(created[src].outputs[port])
        graph.set_op_inputs(op, ins, [created[c] for c in nd.control_inputs() if c in created])
    if input_map:
        raise ValueError(f"input_map names tensors the GraphDef does not have: "
                         f"{sorted(input_map)}")
    return created


def import_graph_def(graph_def: Any, input_map: dict[str, Any] | None = None,
                     return_elements: Sequence[str] | None = None, name: str | None = None,
                     op_dict: Any = None, producer_op_list: Any = None) -> list[Any] | None:
    """Add a GraphDef's ops to the default graph under the scope `name` ("import" by default,
    "" for none), as TF1's tf.import_graph_def; return the `return_elements` ("op" or "t:0")."""
    from actorflow.op_def import convert_to_tensor
    ir = to_ir(graph_def)
    prefix = "import/" if name is None else (name.rstrip("/") + "/" if name else "")
    g = get_default_graph()
    imap = {}
    for k, v in (input_map or {}).items():
        key = k if ":" in k else k + ":0"
        imap[key] = convert_to_tensor(v)
    created = add_nodes(g, ir, prefix, input_map=imap)
    if return_elements is None:
        return None
    out: list[Any] = []
    for el in return_elements:
        src, _, port = el.partition(":")
        if src not in created:
            raise ValueError(f"Requested return_element '{el}' not found in graph_def")
        out.append(created[src].outputs[int(port)] if port else created[src])
    return out


# -- freezing -----------------------------------------------------------------------------------
def _needed(ir: IRGraphDef, outputs: Iterable[str]) -> list[NodeDef]:
    by_name = ir.by_name()
    keep: set[str] = set()
    stack = [o.split(":")[0] for o in outputs]
    for o in stack:
        if o not in by_name:
            raise NotFoundError(f"output node '{o}' is not in the graph")
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        keep.add(n)
        nd = by_name[n]
        stack.extend(parse_input(i)[0] if not i.startswith("^") else i[1:] for i in nd.inputs)
    return [nd for nd in ir.nodes if nd.name in keep]


def extract_sub_graph(graph_def: Any, dest_nodes: Sequence[str]) -> Any:
    """The part of a GraphDef that `dest_nodes` need (TF1's graph_util.extract_sub_graph)."""
    ir = to_ir(graph_def)
    return to_proto(IRGraphDef(_needed(ir, dest_nodes)))


def convert_variables_to_constants(sess: Any, input_graph_def: Any,
                                   output_node_names: Sequence[str],
                                   variable_names_whitelist: Sequence[str] | None = None,
                                   variable_names_blacklist: Sequence[str] | None = None) -> Any:
    """Freeze a graph: each variable read the outputs need becomes a Const holding the value it
    has in `sess`; the result keeps only what `output_node_names` need (TF1's
    graph_util.convert_variables_to_constants)."""
    ir = to_ir(input_graph_def) if not isinstance(input_graph_def, Graph) \
        else input_graph_def.as_graph_def()
    needed = _needed(ir, output_node_names)
    by_name = ir.by_name()
    allow = set(variable_names_whitelist) if variable_names_whitelist is not None else None
    deny = set(variable_names_blacklist or ())
    reads = []
    for nd in needed:
        if nd.op not in _VARIABLE_READS or not nd.inputs:
            continue
        var = parse_input(nd.inputs[0])[0]
        if by_name[var].op != "VarHandleOp" or var in deny or (allow is not None
                                                              and var not in allow):
            continue
        reads.append(nd)
    values = sess.run([f"{nd.name}:0" for nd in reads]) if reads else []
    frozen = {nd.name: NodeDef(nd.name, "Const", [], nd.device,
                               {"value": np.asarray(v), "dtype": _dt(nd.out_dtypes[0])},
                               list(nd.out_dtypes), [tuple(np.shape(v))])
              for nd, v in zip(reads, values, strict=True)}
    out = IRGraphDef([frozen.get(nd.name, nd) for nd in needed])
    return to_proto(IRGraphDef(_needed(out, output_node_names)))


def _dt(name: str) -> Any:
    from devices import dtypes
    return dtypes.as_dtype(name)
