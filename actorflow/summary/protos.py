"""TensorBoard's messages for what actorflow hands it: the graph, run metadata, events.

- `graph_def_proto(graph_or_graphdef, placement)`: a TensorFlow ``GraphDef`` (tensorboardX's
  generated ``graph_pb2``) with one ``NodeDef`` per op: its name (name scopes are the ``/``
  parts, which TensorBoard folds into boxes), type, inputs (``^x`` control inputs), device (the
  placement when given, else the requested device), and attributes TensorBoard reads: ``dtype``
  / ``T`` and ``_output_shapes`` (edge labels); small constants keep their ``value``.
- `run_metadata_proto(run_metadata)`: a TensorFlow ``RunMetadata`` with ``step_stats`` (one
  ``DeviceStepStats`` per device, one ``NodeExecStats`` per executed node: start, duration,
  thread, outputs with dtype/shape/bytes, memory). tensorboardX ships no ``step_stats.proto``,
  so those messages are declared here as a protobuf ``FileDescriptorProto`` (field numbers as
  in TensorFlow's ``step_stats.proto`` / ``config.proto``) in a private descriptor pool and
  encoded by the protobuf library, never by hand.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from devices import dtypes
from devices.kernels.summary import _TB_DTYPE, tensor_proto
from scheduler.tracing import dtype_name

_SMALL_CONST = 16  # constants up to this many elements keep their value in the graph


def _shape_proto(shape: Any) -> Any:
    from tensorboardX.proto import tensor_shape_pb2
    if shape is None:
        return tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
    return tensor_shape_pb2.TensorShapeProto(dim=[
        tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else int(d)) for d in shape])


def graph_def_proto(graph: Any, placement: dict[str, str] | None = None) -> Any:
    """A TensorFlow GraphDef proto of an `af.Graph` or a `scheduler.graphdef.GraphDef`."""
    from tensorboardX.proto import attr_value_pb2, graph_pb2, node_def_pb2, versions_pb2
    ir = graph.as_graph_def() if hasattr(graph, "as_graph_def") else graph
    placement = placement or {}
    out = graph_pb2.GraphDef(versions=versions_pb2.VersionDef(producer=22))
    for nd in ir.nodes:
        inputs = [i[:-2] if i.endswith(":0") else i for i in nd.inputs]  # TF writes "x", not "x:0"
        node = node_def_pb2.NodeDef(name=nd.name, op=nd.op, input=inputs,
                                    device=placement.get(nd.name, nd.device or ""))
        if nd.out_dtypes:
            code = _TB_DTYPE.get(nd.out_dtypes[0])
            if code is not None:
                node.attr["T" if nd.op not in ("Const", "Placeholder") else "dtype"].CopyFrom(
                    attr_value_pb2.AttrValue(type=code))
            node.attr["_output_shapes"].CopyFrom(attr_value_pb2.AttrValue(
                list=attr_value_pb2.AttrValue.ListValue(
                    shape=[_shape_proto(s) for s in nd.out_shapes])))
        value = nd.attrs.get("value") if nd.op == "Const" else None
        if isinstance(value, np.ndarray) and value.size <= _SMALL_CONST and nd.out_dtypes:
            try:
                node.attr["value"].CopyFrom(attr_value_pb2.AttrValue(
                    tensor=tensor_proto(value, nd.out_dtypes[0])))
            except Exception:  # a dtype TensorProto has no code for: leave the value out
                pass
        for k, v in nd.attrs.items():
            if k.startswith("_") or k in ("value", "dtype", "T"):
                continue
            if isinstance(v, bool):
                node.attr[k].CopyFrom(attr_value_pb2.AttrValue(b=v))
            elif isinstance(v, int):
                node.attr[k].CopyFrom(attr_value_pb2.AttrValue(i=v))
            elif isinstance(v, float):
                node.attr[k].CopyFrom(attr_value_pb2.AttrValue(f=v))
            elif isinstance(v, str):
                node.attr[k].CopyFrom(attr_value_pb2.AttrValue(s=v.encode()))
            elif isinstance(v, dtypes.DType) and v.name in _TB_DTYPE:
                node.attr[k].CopyFrom(attr_value_pb2.AttrValue(type=_TB_DTYPE[v.name]))
        out.node.append(node)
    return out


# --- RunMetadata / StepStats (TensorFlow's field numbers) -----------------------------------
_FIELDS = {  # message -> [(name, number, type, label, type_name)]; type: protobuf FieldType
    "TensorShapeProto": [("dim", 2, 11, 3, "TensorShapeProto.Dim"), ("unknown_rank", 3, 8, 1, "")],
    "TensorShapeProto.Dim": [("size", 1, 3, 1, ""), ("name", 2, 9, 1, "")],
    "AllocationDescription": [("requested_bytes", 1, 3, 1, ""), ("allocated_bytes", 2, 3, 1, ""),
                              ("allocator_name", 3, 9, 1, "")],
    "TensorDescription": [("dtype", 1, 5, 1, ""), ("shape", 2, 11, 1, "TensorShapeProto"),
                          ("allocation_description", 4, 11, 1, "AllocationDescription")],
    "AllocatorMemoryUsed": [("allocator_name", 1, 9, 1, ""), ("total_bytes", 2, 3, 1, ""),
                            ("peak_bytes", 3, 3, 1, ""), ("live_bytes", 4, 3, 1, ""),
                            ("allocator_bytes_in_use", 5, 3, 1, "")],
    "NodeOutput": [("slot", 1, 5, 1, ""), ("tensor_description", 3, 11, 1, "TensorDescription")],
    "MemoryStats": [("temp_memory_size", 1, 3, 1, ""), ("persistent_memory_size", 3, 3, 1, "")],
    "NodeExecStats": [("node_name", 1, 9, 1, ""), ("all_start_micros", 2, 3, 1, ""),
                      ("op_start_rel_micros", 3, 3, 1, ""), ("op_end_rel_micros", 4, 3, 1, ""),
                      ("all_end_rel_micros", 5, 3, 1, ""),
                      ("memory", 6, 11, 3, "AllocatorMemoryUsed"),
                      ("output", 7, 11, 3, "NodeOutput"), ("timeline_label", 8, 9, 1, ""),
                      ("thread_id", 10, 13, 1, ""), ("memory_stats", 12, 11, 1, "MemoryStats"),
                      ("all_start_nanos", 13, 3, 1, ""), ("op_start_rel_nanos", 14, 3, 1, ""),
                      ("op_end_rel_nanos", 15, 3, 1, ""), ("all_end_rel_nanos", 16, 3, 1, "")],
    "DeviceStepStats": [("device", 1, 9, 1, ""), ("node_stats", 2, 11, 3, "NodeExecStats")],
    "StepStats": [("dev_stats", 1, 11, 3, "DeviceStepStats")],
    "RunMetadata": [("step_stats", 1, 11, 1, "StepStats")],
}


@cache
def _classes() -> dict[str, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    fd = descriptor_pb2.FileDescriptorProto(name="actorflow/step_stats.proto",
                                            package="actorflow.tf", syntax="proto3")
    msgs: dict[str, Any] = {}
    for full, fields in _FIELDS.items():
        outer, _, inner = full.partition(".")
        if inner:
            m = msgs[outer].nested_type.add(name=inner)
        else:
            m = fd.message_type.add(name=outer)
            msgs[outer] = m
        for name, num, typ, label, tname in fields:
            f = m.field.add(name=name, number=num, type=typ, label=label)
            if tname:
                f.type_name = ".actorflow.tf." + tname
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(
        "actorflow.tf." + name)) for name in _FIELDS}


def run_metadata_proto(run_metadata: Any) -> Any:
    """TensorFlow's RunMetadata proto for an `af.RunMetadata` (its step_stats)."""
    c = _classes()
    md = c["RunMetadata"]()
    for device, nodes in run_metadata.step_stats.by_device().items():
        dev = md.step_stats.dev_stats.add(device=device)
        for n in nodes:
            start_ns = int(n.start_s * 1e9)
            dur_ns = max(0, int((n.end_s - n.start_s) * 1e9))
            ns = dev.node_stats.add(
                node_name=n.node_name, all_start_micros=start_ns // 1000,
                op_start_rel_micros=0, op_end_rel_micros=dur_ns // 1000,
                all_end_rel_micros=dur_ns // 1000, all_start_nanos=start_ns,
                op_end_rel_nanos=dur_ns, all_end_rel_nanos=dur_ns,
                thread_id=int(getattr(n, "thread_id", 0) or 0) & 0xFFFFFFFF,
                timeline_label=f"{n.node_name} = {getattr(n, 'op', '') or ''}()")
            for slot, (dt, shape, nbytes) in enumerate(getattr(n, "outputs", ()) or ()):
                out = ns.output.add(slot=slot)
                td = out.tensor_description
                td.dtype = _TB_DTYPE.get(dtype_name(dt), 0)
                if shape is None:
                    td.shape.unknown_rank = True
                else:
                    for d in shape:
                        td.shape.dim.add(size=-1 if d is None else int(d))
                td.allocation_description.requested_bytes = int(nbytes)
                td.allocation_description.allocated_bytes = int(nbytes)
                td.allocation_description.allocator_name = "cpu"
            mem = int(getattr(n, "output_bytes", 0) or 0)
            pool = int(getattr(n, "pool_bytes", 0) or 0)
            if mem or pool:
                ns.memory.add(allocator_name="cpu", total_bytes=mem, peak_bytes=max(mem, pool),
                              allocator_bytes_in_use=pool)
                ns.memory_stats.temp_memory_size = mem
    return md
