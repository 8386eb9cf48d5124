"""Parsing ops: serialized `tf.train.Example`s and raw bytes into tensors (TF1 names).

    features = {"image": af.FixedLenFeature([64], af.float32),
                "label": af.FixedLenFeature([], af.int64, default_value=-1),
                "tags": af.VarLenFeature(af.string),
                "frames": af.FixedLenSequenceFeature([2], af.float32, allow_missing=True)}
    ex = af.parse_single_example(record, features)      # a dict: Tensors and SparseTensors
    batch = af.parse_example(records, features)          # the same with a batch dimension
    pixels = af.decode_raw(ex_bytes, af.uint8)           # bytes -> uint8 [..., n]

A FixedLenFeature gives a dense tensor of its shape (batch first in parse_example); a missing
feature takes `default_value`, or the step fails with InvalidArgument naming it. A VarLenFeature
gives a SparseTensor (indices [n, 2] of (example, position); [n, 1] for one example). A
FixedLenSequenceFeature (allow_missing=True) gives [batch, steps, *shape], padded with its
default (0 or b""). Feature dtypes are TF's three: float32, int64, string. The parsing itself
runs as one `ParseExample` kernel on the device (`devices/kernels/parsing.py`); none of these
ops has a gradient.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from actorflow.sparse_tensor import SparseTensor
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["FixedLenFeature", "VarLenFeature", "FixedLenSequenceFeature", "parse_example",
           "parse_single_example", "parse_single_sequence_example", "decode_csv", "decode_raw",
           "serialize_tensor", "parse_tensor"]

_FEATURE_DTYPES = ("float32", "int64", "string")


class FixedLenFeature(NamedTuple):
    """A feature with a fixed number of values: a dense tensor of `shape`."""

    shape: Any
    dtype: Any
    default_value: Any = None


class VarLenFeature(NamedTuple):
    """A feature with any number of values: a SparseTensor."""

    dtype: Any


class FixedLenSequenceFeature(NamedTuple):
    """A feature of any number of steps of `shape` each: [steps, *shape] (padded in a batch)."""

    shape: Any
    dtype: Any
    allow_missing: bool = False
    default_value: Any = None


def _dtype(d: Any, key: str) -> str:
    name = dtypes.as_dtype(d).name
    if name not in _FEATURE_DTYPES:
        raise InvalidArgumentError(f"feature '{key}' has dtype {name}; Example features are "
                                   f"float32, int64 or string: parse it as one of those and "
                                   f"af.cast it")
    return name


def _shape(s: Any, key: str) -> list[int]:
    dims = [s] if isinstance(s, int) else list(getattr(s, "as_list", lambda: s)())
    if any(d is None or int(d) < 0 for d in dims):
        raise InvalidArgumentError(f"feature '{key}' needs a fully defined shape, got {s}; use "
                                   f"VarLenFeature or FixedLenSequenceFeature for varying sizes")
    return [int(d) for d in dims]


def _flat_default(v: Any, dtype: str) -> list | None:
    if v is None:
        return None
    import numpy as np
    a = np.asarray(v, dtype=object if dtype == "string" else dtype).reshape(-1)
    if dtype == "string":
        return [x.encode() if isinstance(x, str) else bytes(x) for x in a.tolist()]
    return a.tolist()


def _infer(ins: list, a: dict, prefix: str = "", single: bool | None = None,
           steps: bool = False) -> list:
    """Output (dtype, shape)s: sparse indices, values, shapes, then dense values. `steps`:
    a SequenceExample's feature lists (no batch; [steps, n] sparse, [steps, *shape] dense)."""
    single = a.get("single", False) if single is None else single
    b = () if single or steps else ((ins[0]._shape[0] if ins[0]._shape else None),)
    rank = 2 if steps else 1 if single else 2
    n = len(a[f"{prefix}sparse_keys"])
    outs = [(dtypes.int64, (None, rank))] * n
    outs += [(dtypes.as_dtype(t), (None,)) for t in a[f"{prefix}sparse_types"]]
    outs += [(dtypes.int64, (rank,))] * n
    for t, s, seq in zip(a[f"{prefix}dense_types"], a[f"{prefix}dense_shapes"],
                         a[f"{prefix}dense_sequence"], strict=True):
        outs.append((dtypes.as_dtype(t), (*b, *((None,) if seq or steps else ()), *s)))
    return outs


define_op("ParseExample", infer=_infer)
define_op("ParseSingleSequenceExample", infer=lambda ins, a: [
    *_infer(ins, a, "context_", single=True),
    *_infer(ins, a, "sequence_", steps=True)])
define_op("DecodeCSV", infer=lambda ins, a: [(dtypes.as_dtype(t), ins[0]._shape)
                                             for t in a["types"]])
define_op("DecodeRaw", infer=lambda ins, a: [
    (a["out_type"], None if ins[0]._shape is None else (*ins[0]._shape, None))])
define_op("SerializeTensor", infer=lambda ins, a: [(dtypes.string, ())])
define_op("ParseTensor", infer=lambda ins, a: [(a["out_type"], None)])
for _op in ("ParseExample", "ParseSingleSequenceExample", "DecodeCSV", "DecodeRaw",
            "SerializeTensor", "ParseTensor"):
    no_gradient(_op)


def _string(x: Any, what: str) -> Tensor:
    t = x if isinstance(x, Tensor) else convert_to_tensor(x, dtype=dtypes.string)
    if t.dtype is not dtypes.string:
        raise InvalidArgumentError(f"{what} takes string tensors (serialized protos), got "
                                   f"{t.dtype.name}")
    return t


def _spec(features: dict | None, sequence: bool, prefix: str = "") -> dict:
    """The ParseExample-style attrs of `features` (keys sorted, as TF orders them)."""
    sp_keys, sp_types = [], []
    d_keys, d_types, d_shapes, d_defaults, d_seq = [], [], [], [], []
    for key in sorted(features or {}):
        f = features[key]  # type: ignore[index]
        if isinstance(f, VarLenFeature):
            sp_keys.append(key)
            sp_types.append(_dtype(f.dtype, key))
        elif isinstance(f, FixedLenFeature | FixedLenSequenceFeature):
            seq = isinstance(f, FixedLenSequenceFeature)
            if seq and not f.allow_missing and not sequence:
                raise InvalidArgumentError(
                    f"FixedLenSequenceFeature '{key}': allow_missing must be True (as TF "
                    f"requires for parse_example and parse_single_example)")
            if sequence and not seq:
                raise InvalidArgumentError(
                    f"sequence feature '{key}' is a FixedLenFeature: declare feature lists "
                    f"with FixedLenSequenceFeature or VarLenFeature")
            t = _dtype(f.dtype, key)
            d_keys.append(key)
            d_types.append(t)
            d_shapes.append(_shape(f.shape, key))
            d_defaults.append(_flat_default(f.default_value, t))
            d_seq.append(bool(f.allow_missing) if sequence else seq)
        else:
            raise InvalidArgumentError(
                f"feature '{key}' is a {type(f).__name__}: use FixedLenFeature, VarLenFeature "
                f"or FixedLenSequenceFeature")
    return {f"{prefix}sparse_keys": sp_keys, f"{prefix}sparse_types": sp_types,
            f"{prefix}dense_keys": d_keys, f"{prefix}dense_types": d_types,
            f"{prefix}dense_shapes": d_shapes, f"{prefix}dense_defaults": d_defaults,
            f"{prefix}dense_sequence": d_seq}


def _parse(serialized: Any, features: dict, single: bool, name: str) -> dict[str, Any]:
    if not isinstance(features, dict) or not features:
        raise InvalidArgumentError(f"{name} needs `features`: a non-empty dict from feature "
                                   f"key to FixedLenFeature / VarLenFeature / "
                                   f"FixedLenSequenceFeature")
    s = _string(serialized, name)
    want_rank = 0 if single else 1
    if s._shape is not None and len(s._shape) != want_rank:
        raise InvalidArgumentError(
            f"{name} takes {'one serialized Example (a scalar string)' if single else 'a vector of serialized Examples'}, "  # noqa: E501
            f"got shape {list(s._shape)}")
    attrs = {"single": single, **_spec(features, sequence=False)}
    outs = apply_op("ParseExample", [s], attrs, name=name)
    return _outputs(list(outs), attrs)


def _outputs(outs: list, attrs: dict, prefix: str = "") -> dict[str, Any]:
    """The dict of a parse's outputs (consumed from the front of `outs`)."""
    sp_keys, d_keys = attrs[f"{prefix}sparse_keys"], attrs[f"{prefix}dense_keys"]
    n = len(sp_keys)
    result: dict[str, Any] = {}
    for i, key in enumerate(sp_keys):
        result[key] = SparseTensor(outs[i], outs[n + i], outs[2 * n + i])
    for i, key in enumerate(d_keys):
        result[key] = outs[3 * n + i]
    del outs[:3 * n + len(d_keys)]
    return result


def parse_example(serialized: Any, features: dict, name: str | None = None,
                  example_names: Any = None) -> dict[str, Any]:
    """A batch of serialized Examples (a string vector) parsed by `features`."""
    return _parse(serialized, features, False, name or "ParseExample")


def parse_single_example(serialized: Any, features: dict, name: str | None = None,
                         example_names: Any = None) -> dict[str, Any]:
    """One serialized Example (a scalar string) parsed by `features` (no batch dimension)."""
    return _parse(serialized, features, True, name or "ParseSingleExample")


def parse_single_sequence_example(serialized: Any, context_features: dict | None = None,
                                  sequence_features: dict | None = None,
                                  example_name: Any = None, name: str | None = None
                                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One serialized SequenceExample: (context dict, sequence dict). Context features parse
    as in parse_single_example; feature lists give [steps, *shape] for a
    FixedLenSequenceFeature and a SparseTensor [steps, n] for a VarLenFeature."""
    s = _string(serialized, "parse_single_sequence_example")
    if s._shape is not None and len(s._shape) != 0:
        raise InvalidArgumentError(f"parse_single_sequence_example takes one serialized "
                                   f"SequenceExample (a scalar string), got shape "
                                   f"{list(s._shape)}")
    attrs = {**_spec(context_features, False, "context_"),
             **_spec(sequence_features, True, "sequence_")}
    outs = list(apply_op("ParseSingleSequenceExample", [s], attrs,
                         name=name or "ParseSingleSequenceExample"))
    return _outputs(outs, attrs, "context_"), _outputs(outs, attrs, "sequence_")


def decode_csv(records: Any, record_defaults: Any, field_delim: str = ",",
               use_quote_delim: bool = True, name: str | None = None, na_value: str = "",
               select_cols: Any = None) -> list[Tensor]:
    """The CSV fields of each string of `records` (any shape): one tensor per column, of
    the dtype of its `record_defaults` entry (a one-value list or tensor; an empty one makes
    the field required)."""
    from actorflow.op_def import constant_value
    r = _string(records, "decode_csv")
    types, defaults = [], []
    for i, d in enumerate(record_defaults):
        t = d if isinstance(d, Tensor) else convert_to_tensor(d)
        v = constant_value(t)
        if v is None:
            raise InvalidArgumentError(f"decode_csv's record_defaults[{i}] must be a constant")
        if t.dtype.name not in ("float32", "float64", "int32", "int64", "string"):
            raise InvalidArgumentError(f"decode_csv's record_defaults[{i}] has dtype "
                                       f"{t.dtype.name}; use float32, float64, int32, int64 "
                                       f"or string")
        flat = _flat_default(v, t.dtype.name) or []
        if len(flat) > 1:
            raise InvalidArgumentError(f"decode_csv's record_defaults[{i}] has {len(flat)} "
                                       f"values; give one (or none for a required field)")
        types.append(dtypes.as_dtype(t.dtype))
        defaults.append(flat)
    if select_cols is not None and len(list(select_cols)) != len(types):
        raise InvalidArgumentError("decode_csv: select_cols and record_defaults need the same "
                                   "length")
    if len(field_delim) != 1:
        raise InvalidArgumentError(f"decode_csv's field_delim is one character, got "
                                   f"{field_delim!r}")
    attrs = {"types": [t.name for t in types], "defaults": defaults,
             "field_delim": field_delim, "use_quote_delim": bool(use_quote_delim),
             "na_value": na_value,
             "select_cols": None if select_cols is None else [int(c) for c in select_cols]}
    return list(apply_op("DecodeCSV", [r], attrs, name=name or "DecodeCSV"))


def decode_raw(input_bytes: Any = None, out_type: Any = None, little_endian: bool = True,
               name: str | None = None, bytes: Any = None) -> Tensor:  # noqa: A002
    """The bytes of each string reinterpreted as `out_type` values: shape [..., n]. Every
    string must have the same length, a multiple of the type's size."""
    if input_bytes is None:
        input_bytes = bytes
    if input_bytes is None or out_type is None:
        raise InvalidArgumentError("decode_raw needs input_bytes and out_type")
    t = dtypes.as_dtype(out_type)
    if t.is_string or t is dtypes.resource:
        raise InvalidArgumentError(f"decode_raw's out_type must be a number type, got {t.name}")
    return apply_op("DecodeRaw", [_string(input_bytes, "decode_raw")],
                    {"out_type": t, "little_endian": bool(little_endian)},
                    name=name or "DecodeRaw")[0]


def serialize_tensor(tensor: Any, name: str | None = None) -> Tensor:
    """`tensor` as a serialized TensorProto (a scalar string), as TF writes it."""
    return apply_op("SerializeTensor", [convert_to_tensor(tensor)],
                    name=name or "SerializeTensor")[0]


def parse_tensor(serialized: Any, out_type: Any, name: str | None = None) -> Tensor:
    """The tensor of a serialized TensorProto; its dtype must be `out_type`."""
    return apply_op("ParseTensor", [_string(serialized, "parse_tensor")],
                    {"out_type": dtypes.as_dtype(out_type)}, name=name or "ParseTensor")[0]
