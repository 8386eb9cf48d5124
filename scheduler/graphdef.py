"""The graph IR: a `GraphDef` of `NodeDef`s, the only form of a graph the runtime consumes.

A NodeDef names its op type, its inputs as ``"node:port"`` (``"node"`` means port 0) and
control inputs as ``"^node"``, the device it asked for, its attributes, and the dtype and static
shape of each output (``None`` for an unknown dimension, ``None`` for an unknown rank). The IR
round-trips through msgpack without pickling: attribute values are ints, floats, bools,
strings, bytes, lists, dicts, `DType`s (extension type 1) and NumPy arrays (extension type 2,
allowlisted dtypes only; a string array carries its elements as a msgpack list of bytes).

    >>> g = GraphDef([NodeDef("x", "Placeholder", out_dtypes=["float32"], out_shapes=[(None, 3)])])
    >>> GraphDef.from_bytes(g.to_bytes()).nodes[0].out_shapes
    [(None, 3)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from devices import dtypes
from devices.errors import InvalidArgumentError

Shape = tuple[int | None, ...] | None

_EXT_DTYPE = 1
_EXT_ARRAY = 2


@dataclass
class NodeDef:
    """One node of the IR. Plain data: build it, encode it, never execute it."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    device: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    out_dtypes: list[str] = field(default_factory=list)
    out_shapes: list[Shape] = field(default_factory=list)

    def data_inputs(self) -> list[tuple[str, int]]:
        """The (node, port) pairs this node reads, in order."""
        return [parse_input(s) for s in self.inputs if not s.startswith("^")]

    def control_inputs(self) -> list[str]:
        return [s[1:] for s in self.inputs if s.startswith("^")]


@dataclass
class GraphDef:
    """A list of NodeDefs with unique names, in any order."""

    nodes: list[NodeDef] = field(default_factory=list)
    version: int = 1

    def by_name(self) -> dict[str, NodeDef]:
        return {n.name: n for n in self.nodes}

    def to_bytes(self) -> bytes:
        doc = {
            "version": self.version,
            "nodes": [
                [n.name, n.op, n.inputs, n.device, n.attrs, n.out_dtypes,
                 [None if s is None else list(s) for s in n.out_shapes]]
                for n in self.nodes
            ],
        }
        return msgpack.packb(doc, default=_encode_ext, use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> GraphDef:
        try:
            doc = msgpack.unpackb(data, ext_hook=_decode_ext, raw=False, strict_map_key=False)
            nodes = [
                NodeDef(name, op, list(inputs), device, dict(attrs), list(dts),
                        [None if s is None else tuple(s) for s in shapes])
                for name, op, inputs, device, attrs, dts, shapes in doc["nodes"]
            ]
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as e:
            raise InvalidArgumentError(f"malformed GraphDef bytes: {e}") from None
        return cls(nodes, doc.get("version", 1))


def parse_input(spec: str) -> tuple[str, int]:
    """``"a:1"`` -> ("a", 1); ``"a"`` -> ("a", 0)."""
    name, sep, port = spec.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return spec, 0


def _encode_ext(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, dtypes.DType):
        return msgpack.ExtType(_EXT_DTYPE, obj.name.encode())
    if isinstance(obj, np.ndarray | np.generic):
        arr = np.asarray(obj)
        if arr.dtype.hasobject:  # a string constant: its elements travel as msgpack bytes
            items = dtypes.to_string_array(arr).reshape(-1).tolist()
            return msgpack.ExtType(_EXT_ARRAY, msgpack.packb(["string", list(arr.shape), items]))
        dt = dtypes.as_dtype(arr.dtype)
        body = msgpack.packb([dt.name, list(arr.shape), np.ascontiguousarray(arr).tobytes()])
        return msgpack.ExtType(_EXT_ARRAY, body)
    raise InvalidArgumentError(f"cannot encode attribute value of type {type(obj).__name__}")


def _string_attr(shape: Any, items: Any) -> np.ndarray:
    count = int(np.prod(shape)) if shape else 1
    if not isinstance(items, list) or len(items) != count or not all(
            type(v) is bytes for v in items):
        raise InvalidArgumentError(
            f"string array attribute declares shape {shape} but does not carry {count} bytes "
            f"values")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(shape)


def _decode_ext(code: int, data: bytes) -> Any:
    if code == _EXT_DTYPE:
        return dtypes.as_dtype(data.decode())
    if code == _EXT_ARRAY:
        name, shape, raw = msgpack.unpackb(data)
        dt = dtypes.as_dtype(name)
        if dt.is_resource:
            raise InvalidArgumentError("resource arrays cannot be attributes of a graph")
        if dt.is_string:
            return _string_attr(shape, raw)
        count = int(np.prod(shape)) if shape else 1
        if count * dt.size != len(raw):
            raise InvalidArgumentError(
                f"array attribute declares shape {shape} of {name} but carries {len(raw)} bytes")
        return np.frombuffer(raw, dt.np).reshape(shape).copy()
    raise InvalidArgumentError(f"unknown extension type {code} in a GraphDef")


def pack_value(value: Any) -> bytes:
    """msgpack bytes of an attribute-like value (the IR's allowlisted types; never pickled)."""
    return msgpack.packb(value, default=_encode_ext, use_bin_type=True)


def unpack_value(data: bytes) -> Any:
    """The value `pack_value` encoded; malformed bytes raise InvalidArgumentError."""
    try:
        return msgpack.unpackb(data, ext_hook=_decode_ext, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise InvalidArgumentError(f"malformed packed value: {e}") from None
