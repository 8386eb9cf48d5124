"""Kernels that turn serialized bytes into tensors: `Example` protos, raw bytes, TensorProtos.

    ParseExample(serialized: string[batch] (or [] with single)) -> for each sparse key
            indices int64[n, 2], values [n], dense_shape int64[2]; then each dense key's value
        attrs single (parse_single_example: no batch dimension in the outputs; sparse indices
              are [n, 1] and shapes [1]), sparse_keys, sparse_types, dense_keys, dense_types,
              dense_shapes, dense_defaults (None: the feature is required; else the flat
              default values), dense_sequence (FixedLenSequenceFeature: [batch, steps, *shape],
              padded with the default)
    ParseSingleSequenceExample(serialized: string[]) -> the context's outputs as
            ParseExample(single) gives them (attrs context_*), then each feature list's:
            VarLenFeature: indices int64[n, 2] of (step, position), values, shape [steps, max];
            FixedLenSequenceFeature: [steps, *shape] (attrs sequence_*)
    DecodeRaw(bytes: string[...]) -> out_type[..., n]     attrs out_type, little_endian
    DecodeCSV(records: string[...]) -> one tensor per column, the records' shape
        attrs types, defaults ([] : required), field_delim, use_quote_delim, na_value,
        select_cols (Python's csv module splits each record; an empty field or na_value takes
        its default)
    SerializeTensor(t) -> string[]  (a TensorProto)       ParseTensor(string[]) -> out_type

Values follow TF's rules: a feature's list kind must match its dtype (float32: float_list,
int64: int64_list, string: bytes_list), a FixedLenFeature needs exactly the number of values of
its shape, a missing feature takes its default or is an InvalidArgument naming it. Strings are
object arrays of bytes. CPU only: the bytes live in host memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.example_protos import Example, SequenceExample
from devices.kernels.registry import KernelContext, register_kernel

_KIND = {"float32": "float_list", "int64": "int64_list", "string": "bytes_list"}
_TF_TYPE = {"float_list": "float", "int64_list": "int64", "bytes_list": "string"}


def _np_dtype(name: str) -> Any:
    return object if name == "string" else np.dtype(name)


def _values(feature: Any, key: str, dtype: str, where: str) -> Any:
    """The values of one Feature (a sequence), its kind checked against `dtype`."""
    kind = feature.WhichOneof("kind")
    if kind is None:
        return []
    if kind != _KIND[dtype]:
        raise InvalidArgumentError(
            f"{where}, feature '{key}': data types don't match: the parser expects "
            f"{_TF_TYPE[_KIND[dtype]]}, the Example holds {_TF_TYPE[kind]}; declare the "
            f"feature with the dtype it was written with")
    return getattr(feature, kind).value  # protobuf's repeated container: len, iter, extend


def _array(vals: list, dtype: str, shape: tuple = (-1,)) -> np.ndarray:
    if dtype == "string":
        out = np.empty(len(vals), dtype=object)
        out[:] = vals
        return out.reshape(shape)
    return np.asarray(vals, dtype=dtype).reshape(shape)


def _default(values: list | None, dtype: str, shape: tuple, key: str) -> np.ndarray | None:
    if values is None:
        return None
    a = _array(list(values), dtype)
    n = int(np.prod(shape))
    if a.size == 1 and n != 1:
        a = np.full(n, a[0], dtype=a.dtype)
    if a.size != n:
        raise InvalidArgumentError(f"the default_value of feature '{key}' has {a.size} values, "
                                   f"its shape {list(shape)} needs {n}")
    return a.reshape(shape)


class _Spec:
    """The features one parse asks for (attrs ``<prefix>sparse_keys`` ... of the node)."""

    def __init__(self, attrs: dict, prefix: str = ""):
        a = {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}
        self.sp_keys, self.sp_types = list(a["sparse_keys"]), list(a["sparse_types"])
        self.d_keys, self.d_types = list(a["dense_keys"]), list(a["dense_types"])
        self.d_shapes = [tuple(s) for s in a["dense_shapes"]]
        self.d_seq = list(a.get("dense_sequence") or [False] * len(self.d_keys))
        self.d_defaults = [_default(v, t, (() if q else s), key) for v, t, s, q, key in zip(
            a["dense_defaults"], self.d_types, self.d_shapes, self.d_seq, self.d_keys,
            strict=True)]
        self.d_sizes = [int(np.prod(s)) for s in self.d_shapes]  # values per example / step


def _parse_features(feats: list, spec: _Spec, single: bool, node: str,
                    what: str = "example") -> tuple:
    """Sparse (indices*, values*, shapes*) then dense outputs of `spec` over `feats` (one
    Features map per example; `single`: one example, no batch dimension)."""
    b = len(feats)
    sp_out: list[list[np.ndarray]] = [[], [], []]
    for key, t in zip(spec.sp_keys, spec.sp_types, strict=True):
        idx, vals, longest = [], [], 0
        for i, f in enumerate(feats):
            v = _values(fv, key, t, f"{what} {i}") if (fv := f.get(key)) is not None else []
            idx.extend((i, j) for j in range(len(v)))
            vals.extend(v)
            longest = max(longest, len(v))
        ind = np.asarray(idx, dtype=np.int64).reshape(-1, 2)
        sp_out[0].append(ind[:, 1:] if single else ind)
        sp_out[1].append(_array(vals, t))
        sp_out[2].append(np.asarray([longest] if single else [b, longest], np.int64))
    dense = []
    for key, t, shape, seq, dflt, n in zip(spec.d_keys, spec.d_types, spec.d_shapes,
                                           spec.d_seq, spec.d_defaults, spec.d_sizes,
                                           strict=True):
        if not seq:  # the common case: one flat list of every example's values, one array
            flat: list = []
            for i, f in enumerate(feats):
                fv = f.get(key)  # one map lookup
                if fv is not None:
                    v = _values(fv, key, t, f"{what} {i}")
                    if len(v) != n:
                        raise InvalidArgumentError(
                            f"{what} {i}, feature '{key}': expected {n} values for shape "
                            f"{list(shape)}, got {len(v)}; use VarLenFeature or "
                            f"FixedLenSequenceFeature for a varying count", node=node)
                    flat.extend(v)
                elif dflt is None:
                    raise InvalidArgumentError(
                        f"{what} {i}: feature '{key}' (data type: {t}) is required but could "
                        f"not be found; give its FixedLenFeature a default_value", node=node)
                else:
                    flat.extend(dflt.reshape(-1).tolist())
            dense.append(_array(flat, t, shape if single else (b, *shape)))
            continue
        rows = []  # a FixedLenSequenceFeature: whole steps of `shape`, padded to the longest
        for i, f in enumerate(feats):
            v = _values(fv, key, t, f"{what} {i}") if (fv := f.get(key)) is not None else []
            if n == 0 or len(v) % n:
                raise InvalidArgumentError(
                    f"{what} {i}, feature '{key}': {len(v)} values do not make whole steps of "
                    f"shape {list(shape)}", node=node)
            rows.append(_array(list(v), t, (len(v) // n, *shape)))
        steps = max((r.shape[0] for r in rows), default=0)
        fill = dflt if dflt is not None else _array([b"" if t == "string" else 0], t, ())
        out = np.empty((b, steps, *shape), dtype=_np_dtype(t))
        out[...] = fill
        for i, r in enumerate(rows):
            out[i, :r.shape[0]] = r
        dense.append(out[0] if single else out)
    return (*sp_out[0], *sp_out[1], *sp_out[2], *dense)


def _serialized(x: Any, single: bool, node: str, what: str) -> list:
    arr = np.asarray(x)
    if single:
        if arr.ndim != 0:
            raise InvalidArgumentError(f"parse_single_{what} takes one serialized proto (a "
                                       f"scalar string), got shape {list(arr.shape)}", node=node)
        arr = arr.reshape(1)
    elif arr.ndim != 1:
        raise InvalidArgumentError(f"parse_{what} takes a vector of serialized protos, got "
                                   f"shape {list(arr.shape)}", node=node)
    return arr.tolist()


def _decode(cls: Any, data: Any, i: int, node: str) -> Any:
    try:
        return cls.FromString(bytes(data))
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise InvalidArgumentError(f"could not parse input {i}: its bytes are not a serialized "
                                   f"tf.train.{cls.DESCRIPTOR.name}", node=node) from None


@register_kernel("ParseExample", device_types=("CPU",))
def _parse_example(k: KernelContext) -> Any:
    single = bool(k.attrs.get("single"))
    spec = _Spec(k.attrs)

    def compute(serialized: Any) -> tuple:
        feats = [_decode(Example, s, i, k.name).features.feature
                 for i, s in enumerate(_serialized(serialized, single, k.name, "example"))]
        return _parse_features(feats, spec, single, k.name)
    return compute


@register_kernel("ParseSingleSequenceExample", device_types=("CPU",))
def _parse_sequence_example(k: KernelContext) -> Any:
    ctx_spec, seq_spec = _Spec(k.attrs, "context_"), _Spec(k.attrs, "sequence_")

    def compute(serialized: Any) -> tuple:
        (s,) = _serialized(serialized, True, k.name, "sequence_example")
        ex = _decode(SequenceExample, s, 0, k.name)
        ctx = _parse_features([ex.context.feature], ctx_spec, True, k.name, "context of")
        lists = ex.feature_lists.feature_list
        # each step of a feature list is one "example" of a batch: VarLen gives [steps, n],
        # a FixedLenSequenceFeature [steps, *shape] (its steps parsed as FixedLenFeatures)
        steps = {key: list(lists[key].feature) if key in lists else None
                 for key in seq_spec.sp_keys + seq_spec.d_keys}
        for key, allow in zip(seq_spec.d_keys, seq_spec.d_seq, strict=True):
            if steps[key] is None and not allow:
                raise InvalidArgumentError(f"feature list '{key}' is required but could not "
                                           f"be found; declare it with allow_missing=True",
                                           node=k.name)
        out = []
        sp = [_parse_features([{key: f} for f in steps[key] or []],
                              _one(seq_spec, key), False, k.name, "step")
              for key in seq_spec.sp_keys]
        for part in range(3):
            out += [o[part] for o in sp]
        for key, shape in zip(seq_spec.d_keys, seq_spec.d_shapes, strict=True):
            (dense,) = _parse_features([{key: f} for f in steps[key] or []],
                                       _one(seq_spec, key), False, k.name, "step")
            out.append(dense.reshape(-1, *shape))
        return (*ctx, *out)
    return compute


def _one(spec: _Spec, key: str) -> _Spec:
    """`spec` narrowed to one key, its sequence features parsed per step as fixed ones."""
    one = object.__new__(_Spec)
    if key in spec.sp_keys:
        i = spec.sp_keys.index(key)
        one.sp_keys, one.sp_types = [key], [spec.sp_types[i]]
        one.d_keys = one.d_types = one.d_shapes = one.d_seq = one.d_defaults = one.d_sizes = []
        return one
    i = spec.d_keys.index(key)
    one.sp_keys = one.sp_types = []
    one.d_keys, one.d_types, one.d_shapes = [key], [spec.d_types[i]], [spec.d_shapes[i]]
    one.d_seq, one.d_defaults, one.d_sizes = [False], [None], [spec.d_sizes[i]]
    return one


@register_kernel("DecodeRaw", device_types=("CPU",))
def _decode_raw(k: KernelContext) -> Any:
    out_t = np.dtype(k.attrs["out_type"].np)
    if not k.attrs.get("little_endian", True):
        out_t = out_t.newbyteorder(">")
    size = out_t.itemsize

    def compute(x: Any) -> tuple:
        arr = np.asarray(x)
        flat = arr.reshape(-1).tolist()
        n = len(flat[0]) if flat else 0
        for i, s in enumerate(flat):
            if len(s) % size:
                raise InvalidArgumentError(
                    f"input {i} to decode_raw has {len(s)} bytes, not a multiple of {size} "
                    f"(the size of {k.attrs['out_type'].name})", node=k.name)
            if len(s) != n:
                raise InvalidArgumentError(
                    f"decode_raw needs input strings all of the same size, but element {i} "
                    f"has {len(s)} bytes != {n}", node=k.name)
        data = np.frombuffer(b"".join(flat), dtype=out_t).astype(out_t.newbyteorder("="))
        return (data.reshape(*arr.shape, n // size),)
    return compute


_CODES = {"float16": 19, "float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5,
          "int8": 6, "string": 7, "int64": 9, "bool": 10, "uint16": 17, "uint32": 22,
          "uint64": 23}
_VAL_FIELD = {"float32": "float_val", "float64": "double_val", "int64": "int64_val",
              "bool": "bool_val", "string": "string_val", "uint32": "uint32_val",
              "uint64": "uint64_val"}


@register_kernel("SerializeTensor", device_types=("CPU",))
def _serialize_tensor(k: KernelContext) -> Any:
    from devices.kernels.summary import tensor_proto
    name = k.in_dtypes[0].name

    def compute(x: Any) -> tuple:
        out = np.empty((), dtype=object)
        out[()] = tensor_proto(np.asarray(x), name).SerializeToString()
        return (out,)
    return compute


@register_kernel("ParseTensor", device_types=("CPU",))
def _parse_tensor(k: KernelContext) -> Any:
    from tensorboardX.proto import tensor_pb2
    want = k.attrs["out_type"]

    def compute(x: Any) -> tuple:
        arr = np.asarray(x)
        try:
            t = tensor_pb2.TensorProto.FromString(bytes(arr.item()))
        except Exception:  # noqa: BLE001 - protobuf's DecodeError
            raise InvalidArgumentError("parse_tensor: the input is not a serialized "
                                       "TensorProto", node=k.name) from None
        if t.dtype != _CODES.get(want.name):
            found = {v: n for n, v in _CODES.items()}.get(t.dtype, str(t.dtype))
            raise InvalidArgumentError(f"parse_tensor: the tensor holds {found}, out_type is "
                                       f"{want.name}", node=k.name)
        shape = tuple(d.size for d in t.tensor_shape.dim)
        n = int(np.prod(shape))
        if want.name == "string":
            out = _array(list(t.string_val), "string", shape)
        elif t.tensor_content:
            out = np.frombuffer(t.tensor_content, dtype=np.dtype(want.np).newbyteorder("<")
                                ).astype(want.np).reshape(shape)
        else:
            field = _VAL_FIELD.get(want.name, "int_val" if want.is_integer else "half_val")
            vals = np.asarray(list(getattr(t, field)))
            if want.name in ("float16", "bfloat16") and vals.size:
                vals = vals.astype(np.uint16).view(np.float16)
            out = (np.full(n, vals[0] if vals.size else 0) if vals.size <= 1 else vals)
            out = out.astype(want.np).reshape(shape)
        return (out,)
    return compute



@register_kernel("DecodeCSV", device_types=("CPU",))
def _decode_csv(k: KernelContext) -> Any:
    """records: strings of any shape -> one tensor per column, the records' shape."""
    import csv

    types = list(k.attrs["types"])
    defaults = [None if not d else d[0] for d in k.attrs["defaults"]]
    delim = k.attrs.get("field_delim", ",")
    quoting = csv.QUOTE_MINIMAL if k.attrs.get("use_quote_delim", True) else csv.QUOTE_NONE
    na = k.attrs.get("na_value", "")
    cols = k.attrs.get("select_cols") or list(range(len(types)))
    want = None if k.attrs.get("select_cols") else len(types)

    def convert(field: str, c: int, t: str, r: int) -> Any:
        if field == "" or field == na:
            if defaults[c] is None:
                raise InvalidArgumentError(f"Field {cols[c]} is required but missing in record "
                                           f"{r}: give its record_defaults entry a value",
                                           node=k.name)
            return defaults[c]
        if t == "string":
            return field.encode()
        try:
            return int(field) if t.startswith("int") else float(field)
        except ValueError:
            raise InvalidArgumentError(f"Field {cols[c]} in record {r} is not a valid {t}: "
                                       f"{field!r}", node=k.name) from None

    def compute(records: Any) -> tuple:
        arr = np.asarray(records)
        flat = [b.decode() if isinstance(b, bytes) else str(b) for b in arr.reshape(-1).tolist()]
        columns: list[list] = [[] for _ in types]
        for r, line in enumerate(flat):
            fields = next(csv.reader([line], delimiter=delim, quoting=quoting,
                                     quotechar='"'), [""])
            if want is not None and len(fields) != want:
                raise InvalidArgumentError(f"Expect {want} fields but have {len(fields)} in "
                                           f"record {r}", node=k.name)
            if want is None and len(fields) <= max(cols):
                raise InvalidArgumentError(f"record {r} has {len(fields)} fields; select_cols "
                                           f"needs column {max(cols)}", node=k.name)
            for c, t in enumerate(types):
                columns[c].append(convert(fields[cols[c]], c, t, r))
        return tuple(_array(v, t, arr.shape) for v, t in zip(columns, types, strict=True))
    return compute
