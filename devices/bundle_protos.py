"""The protobuf messages of TensorFlow's V2 checkpoint index, built in code.

TensorFlow's `tensor_bundle.proto` (with `tensor_shape.proto`, `tensor_slice.proto` and
`versions.proto`) describes what each value of a checkpoint's `.index` table holds. We declare
the same fields with the same numbers and wire types through protobuf's descriptor API, so the
`protobuf` package encodes and decodes them (no generated `_pb2` files, no TensorFlow):

    BundleHeaderProto  {int32 num_shards = 1; Endianness endianness = 2; VersionDef version = 3}
    BundleEntryProto   {DataType dtype = 1; TensorShapeProto shape = 2; int32 shard_id = 3;
                        int64 offset = 4; int64 size = 5; fixed32 crc32c = 6;
                        repeated TensorSliceProto slices = 7}
    TensorShapeProto   {repeated Dim dim = 2 {int64 size = 1; string name = 2};
                        bool unknown_rank = 3}
    TensorSliceProto   {repeated Extent extent = 1 {int64 start = 1; oneof {int64 length = 2}}}
    VersionDef         {int32 producer = 1; int32 min_consumer = 2;
                        repeated int32 bad_consumers = 3}

Enums (DataType, Endianness) travel as varints on the wire, exactly like int32, so they are
declared as int32 here and mapped by `DTYPE_TO_ENUM` / `ENUM_TO_DTYPE` (TensorFlow's numbers).

    >>> BundleEntryProto(dtype=1, shard_id=0, offset=0, size=4).SerializeToString()
    b'\\x08\\x01(\\x04'
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, ftype: int,
           *, repeated: bool = False, type_name: str | None = None,
           oneof: int | None = None) -> None:
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="actorflow/tensor_bundle.proto",
                                            package="actorflow.bundle", syntax="proto3")
    version = fd.message_type.add(name="VersionDef")
    _field(version, "producer", 1, _F.TYPE_INT32)
    _field(version, "min_consumer", 2, _F.TYPE_INT32)
    _field(version, "bad_consumers", 3, _F.TYPE_INT32, repeated=True)

    shape = fd.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    _field(dim, "size", 1, _F.TYPE_INT64)
    _field(dim, "name", 2, _F.TYPE_STRING)
    _field(shape, "dim", 2, _F.TYPE_MESSAGE, repeated=True,
           type_name=".actorflow.bundle.TensorShapeProto.Dim")
    _field(shape, "unknown_rank", 3, _F.TYPE_BOOL)

    sl = fd.message_type.add(name="TensorSliceProto")
    extent = sl.nested_type.add(name="Extent")
    extent.oneof_decl.add(name="has_length")
    _field(extent, "start", 1, _F.TYPE_INT64)
    _field(extent, "length", 2, _F.TYPE_INT64, oneof=0)
    _field(sl, "extent", 1, _F.TYPE_MESSAGE, repeated=True,
           type_name=".actorflow.bundle.TensorSliceProto.Extent")

    header = fd.message_type.add(name="BundleHeaderProto")
    _field(header, "num_shards", 1, _F.TYPE_INT32)
    _field(header, "endianness", 2, _F.TYPE_INT32)
    _field(header, "version", 3, _F.TYPE_MESSAGE, type_name=".actorflow.bundle.VersionDef")

    entry = fd.message_type.add(name="BundleEntryProto")
    _field(entry, "dtype", 1, _F.TYPE_INT32)
    _field(entry, "shape", 2, _F.TYPE_MESSAGE, type_name=".actorflow.bundle.TensorShapeProto")
    _field(entry, "shard_id", 3, _F.TYPE_INT32)
    _field(entry, "offset", 4, _F.TYPE_INT64)
    _field(entry, "size", 5, _F.TYPE_INT64)
    _field(entry, "crc32c", 6, _F.TYPE_FIXED32)
    _field(entry, "slices", 7, _F.TYPE_MESSAGE, repeated=True,
           type_name=".actorflow.bundle.TensorSliceProto")
    return fd


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build_file())


def _cls(name: str) -> type:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"actorflow.bundle.{name}"))


VersionDef = _cls("VersionDef")
TensorShapeProto = _cls("TensorShapeProto")
TensorSliceProto = _cls("TensorSliceProto")
BundleHeaderProto = _cls("BundleHeaderProto")
BundleEntryProto = _cls("BundleEntryProto")

# TensorFlow's DataType enum numbers (tensorflow/core/framework/types.proto), by our dtype name.
DTYPE_TO_ENUM: dict[str, int] = {
    "float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6,
    "int64": 9, "bool": 10, "bfloat16": 14, "uint16": 17, "float16": 19,
    "uint32": 22, "uint64": 23,
}
ENUM_TO_DTYPE: dict[int, str] = {v: k for k, v in DTYPE_TO_ENUM.items()}
DT_STRING = 7
# BundleHeaderProto.Endianness.LITTLE; the bundle format's version (kTensorBundleVersion).
LITTLE_ENDIAN = 0
BUNDLE_VERSION = 1
