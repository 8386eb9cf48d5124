"""TensorFlow's `Example` protos (`tf.train.Example`, `SequenceExample`, `Features`, ...),
built in code with protobuf's descriptor API, byte-compatible with TensorFlow's.

TensorFlow's `feature.proto` and `example.proto` (proto3, package ``tensorflow``) declare:

    BytesList    {repeated bytes value = 1}
    FloatList    {repeated float value = 1 [packed]}
    Int64List    {repeated int64 value = 1 [packed]}
    Feature      {oneof kind {BytesList bytes_list = 1; FloatList float_list = 2;
                              Int64List int64_list = 3}}
    Features     {map<string, Feature> feature = 1}
    FeatureList  {repeated Feature feature = 1}
    FeatureLists {map<string, FeatureList> feature_list = 1}
    Example          {Features features = 1}
    SequenceExample  {Features context = 1; FeatureLists feature_lists = 2}

We declare the same messages, names, field numbers and wire types in a private descriptor pool
(no generated ``_pb2`` file, no TensorFlow), so the ``protobuf`` package encodes and decodes
them exactly as TensorFlow does; the full names are TensorFlow's (``tensorflow.Example``):

    ex = Example(features=Features(feature={
        "label": Feature(int64_list=Int64List(value=[3]))}))
    Example.FromString(ex.SerializeToString()) == ex       # True

The parsing kernels (`devices.kernels.parsing`) decode these; `actorflow.train` re-exports the
classes under TF's names.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["BytesList", "FloatList", "Int64List", "Feature", "Features", "FeatureList",
           "FeatureLists", "Example", "SequenceExample"]

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "tensorflow"


def _field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, ftype: int, *,
           repeated: bool = False, type_name: str | None = None, oneof: int | None = None,
           packed: bool = False) -> None:
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = f".{_PKG}.{type_name}"
    if oneof is not None:
        f.oneof_index = oneof
    if packed:
        f.options.packed = True


def _map(msg: descriptor_pb2.DescriptorProto, field: str, entry: str, value_type: str) -> None:
    """A ``map<string, value_type> field = 1``: a repeated nested map-entry message."""
    e = msg.nested_type.add(name=entry)
    e.options.map_entry = True
    _field(e, "key", 1, _F.TYPE_STRING)
    _field(e, "value", 2, _F.TYPE_MESSAGE, type_name=value_type)
    _field(msg, field, 1, _F.TYPE_MESSAGE, repeated=True,
           type_name=f"{msg.name}.{entry}")


def _build_files() -> list[descriptor_pb2.FileDescriptorProto]:
    feat = descriptor_pb2.FileDescriptorProto(name="tensorflow/core/example/feature.proto",
                                              package=_PKG, syntax="proto3")
    _field(feat.message_type.add(name="BytesList"), "value", 1, _F.TYPE_BYTES, repeated=True)
    _field(feat.message_type.add(name="FloatList"), "value", 1, _F.TYPE_FLOAT, repeated=True,
           packed=True)
    _field(feat.message_type.add(name="Int64List"), "value", 1, _F.TYPE_INT64, repeated=True,
           packed=True)
    f = feat.message_type.add(name="Feature")
    f.oneof_decl.add(name="kind")
    _field(f, "bytes_list", 1, _F.TYPE_MESSAGE, type_name="BytesList", oneof=0)
    _field(f, "float_list", 2, _F.TYPE_MESSAGE, type_name="FloatList", oneof=0)
    _field(f, "int64_list", 3, _F.TYPE_MESSAGE, type_name="Int64List", oneof=0)
    _map(feat.message_type.add(name="Features"), "feature", "FeatureEntry", "Feature")
    _field(feat.message_type.add(name="FeatureList"), "feature", 1, _F.TYPE_MESSAGE,
           repeated=True, type_name="Feature")
    _map(feat.message_type.add(name="FeatureLists"), "feature_list", "FeatureListEntry",
         "FeatureList")

    ex = descriptor_pb2.FileDescriptorProto(name="tensorflow/core/example/example.proto",
                                            package=_PKG, syntax="proto3",
                                            dependency=[feat.name])
    _field(ex.message_type.add(name="Example"), "features", 1, _F.TYPE_MESSAGE,
           type_name="Features")
    seq = ex.message_type.add(name="SequenceExample")
    _field(seq, "context", 1, _F.TYPE_MESSAGE, type_name="Features")
    _field(seq, "feature_lists", 2, _F.TYPE_MESSAGE, type_name="FeatureLists")
    return [feat, ex]


_POOL = descriptor_pool.DescriptorPool()
for _fd in _build_files():
    _POOL.Add(_fd)


def _cls(name: str) -> type:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PKG}.{name}"))


BytesList = _cls("BytesList")
FloatList = _cls("FloatList")
Int64List = _cls("Int64List")
Feature = _cls("Feature")
Features = _cls("Features")
FeatureList = _cls("FeatureList")
FeatureLists = _cls("FeatureLists")
Example = _cls("Example")
SequenceExample = _cls("SequenceExample")
