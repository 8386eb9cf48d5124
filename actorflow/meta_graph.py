"""MetaGraphs: a graph with its variables, collections and saver in one file (TF1's ``.meta``).

Design
------
`export_meta_graph` writes TensorFlow's ``MetaGraphDef`` message (TensorFlow's field numbers,
declared here through protobuf's descriptor API as `devices.bundle_protos` does, so the
``protobuf`` package encodes it; the ``graph_def`` field carries `actorflow.graph_io`'s
GraphDef bytes, which is the same wire form as the embedded message):

    MetaGraphDef  {MetaInfoDef meta_info_def = 1; GraphDef graph_def = 2; SaverDef saver_def = 3;
                   map<string, CollectionDef> collection_def = 4;
                   map<string, SignatureDef> signature_def = 5}
    SignatureDef  {map<string, TensorInfo> inputs = 1; outputs = 2; string method_name = 3}
    TensorInfo    {string name = 1; DataType dtype = 2; TensorShapeProto tensor_shape = 3;
                   CooSparse coo_sparse = 4}
    SavedModel    {int64 saved_model_schema_version = 1; repeated MetaGraphDef meta_graphs = 2}
    CollectionDef {oneof {NodeList node_list = 1; BytesList bytes_list = 2;
                          Int64List int64_list = 3; FloatList float_list = 4}}
    SaverDef      {filename_tensor_name = 1; save_tensor_name = 2; restore_op_name = 3;
                   max_to_keep = 4; sharded = 5; keep_checkpoint_every_n_hours = 6; version = 7}
    VariableDef   {variable_name = 1; initializer_name = 2; snapshot_name = 3;
                   SaveSliceInfoDef save_slice_info_def = 4; is_resource = 5;
                   initial_value_name = 6; trainable = 7}

Collections are written as TensorFlow writes them: variables as ``bytes_list`` of VariableDefs,
tensors and operations as ``node_list`` of names, Python numbers and strings as number and
bytes lists. Items of other kinds (queue runners, savers, control-flow contexts) are left out,
as TensorFlow leaves out what it cannot serialize.

`import_meta_graph` adds the graph to the default graph (`graph_io.add_nodes`), rebuilds each
`Variable` from its VariableDef (the same handle, initializer, snapshot and slice info, so
optimizers, `global_variables_initializer` and Savers work on it), refills the collections, and
returns a `Saver` bound to the saved saver's ops (or a new one when the file has no SaverDef and
the graph has variables). A Saver's `save` writes ``<prefix>.meta`` next to the checkpoint,
re-encoding the graph only when it changed since its last export. `actorflow.saved_model`
builds SavedModels from the same messages (TensorFlow 2.21 parses them and reads their
variables; it cannot run our graphs, whose attributes are actorflow's).

    saver.save(sess, "/tmp/m/model.ckpt", global_step=100)        # writes model.ckpt-100.meta
    with af.Graph().as_default():
        saver = af.train.import_meta_graph("/tmp/m/model.ckpt-100.meta")
        with af.Session() as sess:
            saver.restore(sess, "/tmp/m/model.ckpt-100")
            sess.run(af.get_collection("logits")[0], {"x:0": batch})
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from actorflow import graph_io
from actorflow.graph import Graph, Operation, Tensor, get_default_graph
from actorflow.variables import Variable

_VERSION = "actorflow-1"
_FIELDS: dict[str, list[tuple[str, int, int, int, str]]] = {
    # message -> [(name, number, type, label, type name)]; type: protobuf FieldType
    # (9 string, 12 bytes, 11 message, 5 int32, 3 int64, 8 bool, 2 float); label 3: repeated.
    # A type name "map:T" declares TensorFlow's map<string, T> (a nested map entry).
    "MetaInfoDef": [("meta_graph_version", 1, 9, 1, ""), ("tags", 4, 9, 3, ""),
                    ("tensorflow_version", 5, 9, 1, ""),
                    ("tensorflow_git_version", 6, 9, 1, "")],
    "NodeList": [("value", 1, 9, 3, "")],
    "BytesList": [("value", 1, 12, 3, "")],
    "Int64List": [("value", 1, 3, 3, "")],
    "FloatList": [("value", 1, 2, 3, "")],
    "CollectionDef": [("node_list", 1, 11, 1, "NodeList"), ("bytes_list", 2, 11, 1, "BytesList"),
                      ("int64_list", 3, 11, 1, "Int64List"),
                      ("float_list", 4, 11, 1, "FloatList")],
    "SaverDef": [("filename_tensor_name", 1, 9, 1, ""), ("save_tensor_name", 2, 9, 1, ""),
                 ("restore_op_name", 3, 9, 1, ""), ("max_to_keep", 4, 5, 1, ""),
                 ("sharded", 5, 8, 1, ""), ("keep_checkpoint_every_n_hours", 6, 2, 1, ""),
                 ("version", 7, 5, 1, "")],
    "SaveSliceInfoDef": [("full_name", 1, 9, 1, ""), ("full_shape", 2, 3, 3, ""),
                         ("var_offset", 3, 3, 3, ""), ("var_shape", 4, 3, 3, "")],
    "VariableDef": [("variable_name", 1, 9, 1, ""), ("initializer_name", 2, 9, 1, ""),
                    ("snapshot_name", 3, 9, 1, ""),
                    ("save_slice_info_def", 4, 11, 1, "SaveSliceInfoDef"),
                    ("is_resource", 5, 8, 1, ""), ("initial_value_name", 6, 9, 1, ""),
                    ("trainable", 7, 8, 1, "")],
    "Dim": [("size", 1, 3, 1, ""), ("name", 2, 9, 1, "")],
    "TensorShapeProto": [("dim", 2, 11, 3, "Dim"), ("unknown_rank", 3, 8, 1, "")],
    "CooSparse": [("values_tensor_name", 1, 9, 1, ""), ("indices_tensor_name", 2, 9, 1, ""),
                  ("dense_shape_tensor_name", 3, 9, 1, "")],
    "TensorInfo": [("name", 1, 9, 1, ""), ("dtype", 2, 5, 1, ""),
                   ("tensor_shape", 3, 11, 1, "TensorShapeProto"),
                   ("coo_sparse", 4, 11, 1, "CooSparse")],
    "SignatureDef": [("inputs", 1, 11, 3, "map:TensorInfo"),
                     ("outputs", 2, 11, 3, "map:TensorInfo"), ("method_name", 3, 9, 1, "")],
    "MetaGraphDef": [("meta_info_def", 1, 11, 1, "MetaInfoDef"), ("graph_def", 2, 12, 1, ""),
                     ("saver_def", 3, 11, 1, "SaverDef"),
                     ("collection_def", 4, 11, 3, "map:CollectionDef"),
                     ("signature_def", 5, 11, 3, "map:SignatureDef")],
    "SavedModel": [("saved_model_schema_version", 1, 3, 1, ""),
                   ("meta_graphs", 2, 11, 3, "MetaGraphDef")],
}
_ONEOF = {"CollectionDef": "kind"}


@cache
def protos() -> dict[str, Any]:
    """The message classes, by name (MetaGraphDef, CollectionDef, SaverDef, VariableDef,
    SignatureDef, TensorInfo, SavedModel, ...)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    fd = descriptor_pb2.FileDescriptorProto(name="actorflow/meta_graph.proto",
                                            package="actorflow.tf", syntax="proto3")
    for name, fields in _FIELDS.items():
        m = fd.message_type.add(name=name)
        if name in _ONEOF:
            m.oneof_decl.add(name=_ONEOF[name])
        for fname, num, typ, label, tname in fields:
            f = m.field.add(name=fname, number=num, type=typ, label=label)
            if tname.startswith("map:"):  # map<string, T>: a nested entry type, as protoc makes
                entry = m.nested_type.add(name=fname.title().replace("_", "") + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=9, label=1)
                entry.field.add(name="value", number=2, type=11, label=1,
                                type_name=f".actorflow.tf.{tname[4:]}")
                f.type_name = f".actorflow.tf.{name}.{entry.name}"
            elif tname:
                f.type_name = f".actorflow.tf.{tname}"
            if name in _ONEOF:
                f.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"actorflow.tf.{n}"))
            for n in _FIELDS}


# -- export -------------------------------------------------------------------------------------
def _variable_def(v: Variable) -> Any:
    p = protos()
    vd = p["VariableDef"](variable_name=v.handle.name, initializer_name=v.initializer.name,
                          snapshot_name=v.value().name, is_resource=True,
                          initial_value_name=v.initial_value.name, trainable=v.trainable)
    info = getattr(v, "_save_slice_info", None)
    if info is not None:
        vd.save_slice_info_def.CopyFrom(p["SaveSliceInfoDef"](
            full_name=info.full_name, full_shape=info.full_shape, var_offset=info.var_offset,
            var_shape=info.var_shape))
    return vd


def _collection_def(items: list[Any]) -> Any | None:
    p = protos()
    if items and all(isinstance(i, Variable) for i in items):
        return p["CollectionDef"](bytes_list=p["BytesList"](
            value=[_variable_def(v).SerializeToString() for v in items]))
    if items and all(isinstance(i, Tensor | Operation) for i in items):
        return p["CollectionDef"](node_list=p["NodeList"](value=[i.name for i in items]))
    if items and all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return p["CollectionDef"](int64_list=p["Int64List"](value=items))
    if items and all(isinstance(i, float) for i in items):
        return p["CollectionDef"](float_list=p["FloatList"](value=items))
    if items and all(isinstance(i, str | bytes) for i in items):
        return p["CollectionDef"](bytes_list=p["BytesList"](
            value=[i.encode() if isinstance(i, str) else i for i in items]))
    return None  # queue runners, savers, contexts, mixed lists: not serializable, left out


def export_meta_graph(filename: str | None = None, meta_info_def: Any = None,
                      graph_def: Any = None, saver_def: Any = None,
                      collection_list: list[str] | None = None, as_text: bool = False,
                      graph: Graph | None = None, export_scope: str | None = None,
                      clear_devices: bool = False, clear_extraneous_savers: bool = False,
                      strip_default_attrs: bool = False, save_debug_info: bool = False,
                      saver: Any = None, **kwargs: Any) -> Any:
    """The MetaGraphDef of `graph` (default: the default graph); written to `filename` when
    given (binary, or text protobuf with `as_text`), as TF1's tf.train.export_meta_graph."""
    p = protos()
    g = graph or get_default_graph()
    gd = graph_io.to_proto(graph_def if graph_def is not None else g)
    if clear_devices:
        for node in gd.node:
            node.device = ""
    meta = p["MetaGraphDef"](graph_def=gd.SerializeToString())
    meta.meta_info_def.CopyFrom(meta_info_def or p["MetaInfoDef"](
        meta_graph_version=_VERSION, tensorflow_version="actorflow"))
    if saver_def is None and saver is not None:
        saver_def = saver.as_saver_def()
    if saver_def is not None:
        if isinstance(saver_def, dict):
            saver_def = p["SaverDef"](**{k: v for k, v in saver_def.items() if v is not None})
        meta.saver_def.CopyFrom(saver_def)
    for key in (collection_list if collection_list is not None else g.get_all_collection_keys()):
        cd = _collection_def(g.get_collection(key))
        if cd is not None:
            meta.collection_def[key].CopyFrom(cd)
    if filename:
        graph_io.write_message(filename, meta, as_text)
    return meta


def read_meta_graph_file(filename: str) -> Any:
    """The MetaGraphDef in `filename` (binary or text)."""
    if not os.path.exists(filename):
        raise OSError(f"File {filename} does not exist (a .meta file is written by "
                      f"Saver.save or af.train.export_meta_graph)")
    with open(filename, "rb") as f:
        return graph_io.parse_message(f.read(), protos()["MetaGraphDef"], filename)


# -- import -------------------------------------------------------------------------------------
def _variable(g: Graph, vd: Any, prefix: str) -> Variable:
    from actorflow.variable_scope import SaveSliceInfo
    v = Variable._from_graph(
        handle=g.get_tensor_by_name(prefix + vd.variable_name),
        initializer=g.get_operation_by_name(prefix + vd.initializer_name),
        snapshot=g.get_tensor_by_name(prefix + vd.snapshot_name),
        initial_value=(g.get_tensor_by_name(prefix + vd.initial_value_name)
                       if vd.initial_value_name else None),
        trainable=vd.trainable)
    if vd.HasField("save_slice_info_def"):
        s = vd.save_slice_info_def
        v._save_slice_info = SaveSliceInfo(prefix + s.full_name, list(s.full_shape),
                                           list(s.var_offset), list(s.var_shape))
    return v


def import_meta_graph(meta_graph_or_file: Any, clear_devices: bool = False,
                      import_scope: str | None = None, **kwargs: Any) -> Any:
    """Add a MetaGraph's graph and collections to the default graph and return a Saver for its
    variables (None when it has none), as TF1's tf.train.import_meta_graph."""
    from actorflow.train.saver import Saver
    meta = (read_meta_graph_file(meta_graph_or_file) if isinstance(meta_graph_or_file, str)
            else meta_graph_or_file)
    g = get_default_graph()
    prefix = import_scope.rstrip("/") + "/" if import_scope else ""
    ir = graph_io.to_ir(graph_io.parse_graph_def(meta.graph_def))
    graph_io.add_nodes(g, ir, prefix, clear_devices=clear_devices)
    variables: dict[str, Variable] = {}
    for key in sorted(meta.collection_def):
        cd = meta.collection_def[key]
        kind = cd.WhichOneof("kind")
        if kind == "node_list":
            items: list[Any] = [g.as_graph_element(prefix + n) for n in cd.node_list.value]
        elif kind == "bytes_list" and _holds_variables(cd):
            items = []
            for raw in cd.bytes_list.value:
                vd = protos()["VariableDef"].FromString(raw)
                if vd.variable_name not in variables:
                    variables[vd.variable_name] = _variable(g, vd, prefix)
                items.append(variables[vd.variable_name])
        elif kind == "bytes_list":
            items = [b.decode() if _is_text(b) else b for b in cd.bytes_list.value]
        elif kind == "int64_list":
            items = list(cd.int64_list.value)
        elif kind == "float_list":
            items = list(cd.float_list.value)
        else:
            continue
        for item in items:
            g.add_to_collection(key, item)
    if meta.HasField("saver_def") and meta.saver_def.restore_op_name:
        return Saver.from_saver_def(meta.saver_def, prefix)
    if variables:
        return Saver()
    return None


def _holds_variables(cd: Any) -> bool:
    if not cd.bytes_list.value:
        return False
    try:
        vd = protos()["VariableDef"].FromString(cd.bytes_list.value[0])
    except Exception:  # plain bytes items (a collection of strings)
        return False
    return bool(vd.variable_name and vd.initializer_name and vd.is_resource)


def _is_text(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True

