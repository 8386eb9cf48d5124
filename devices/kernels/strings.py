"""String kernels (CPU): splitting, joining, numbers from strings, slices, regular
expressions, case and length. A string tensor's memory is an object array of `bytes`
(`devices.dtypes.to_string_array`); every kernel returns that form.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _strings(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=object)


def _map(arr: np.ndarray, fn: Any, dtype: Any = object) -> np.ndarray:
    flat = [fn(v) for v in arr.reshape(-1).tolist()]
    out = np.empty(len(flat), dtype=dtype)
    out[:] = flat
    return out.reshape(arr.shape)


def _cpu(op: str) -> Any:
    return register_kernel(op, device_types=("CPU",))


def _sparse(rows: list[list[bytes]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = [(i, j) for i, r in enumerate(rows) for j in range(len(r))]
    vals = np.empty(len(idx), dtype=object)
    vals[:] = [v for r in rows for v in r]
    width = max((len(r) for r in rows), default=0)
    return (np.asarray(idx, dtype=np.int64).reshape(-1, 2), vals,
            np.array([len(rows), width], dtype=np.int64))


@_cpu("StringSplit")
def _string_split(k: KernelContext) -> Any:
    skip_empty = bool(k.attrs.get("skip_empty", True))

    def compute(source: Any, delimiter: Any) -> tuple:
        d = np.asarray(delimiter).reshape(-1)[0]
        rows = []
        for s in _strings(source).reshape(-1).tolist():
            if d == b"":
                parts = [bytes([c]) for c in s]
            else:  # TF1: every character of the delimiter splits
                parts = re.split(b"[" + re.escape(d) + b"]", s)
            rows.append([p for p in parts if p] if skip_empty else parts)
        return _sparse(rows)
    return compute


@_cpu("StringSplitV2")
def _string_split_v2(k: KernelContext) -> Any:
    maxsplit = int(k.attrs.get("maxsplit", -1))

    def compute(source: Any, sep: Any) -> tuple:
        d = np.asarray(sep).reshape(-1)[0]
        rows = [s.split(d or None, maxsplit) for s in _strings(source).reshape(-1).tolist()]
        return _sparse(rows)
    return compute


@_cpu("StringToNumber")
def _string_to_number(k: KernelContext) -> Any:
    dt = np.dtype(k.attrs["out_type"].np)

    def one(s: bytes) -> Any:
        try:
            return dt.type(float(s)) if dt.kind == "f" else int(s)
        except ValueError:
            raise InvalidArgumentError(f"StringToNumberOp could not correctly convert string: "
                                       f"{s.decode(errors='replace')}") from None
    return lambda x: (_map(_strings(x), one, dt),)


@_cpu("StringJoin")
def _string_join(k: KernelContext) -> Any:
    sep = str(k.attrs.get("separator", "")).encode()

    def compute(*inputs: Any) -> tuple:
        arrs = np.broadcast_arrays(*[_strings(x) for x in inputs])
        shape = arrs[0].shape
        cols = [a.reshape(-1).tolist() for a in arrs]
        out = np.empty(len(cols[0]), dtype=object)
        out[:] = [sep.join(parts) for parts in zip(*cols, strict=True)]
        return (out.reshape(shape),)
    return compute


@_cpu("ReduceJoin")
def _reduce_join(k: KernelContext) -> Any:
    sep = str(k.attrs.get("separator", "")).encode()
    keep = bool(k.attrs.get("keep_dims", False))

    def compute(x: Any, axis: Any) -> tuple:
        arr = _strings(x)
        axes = tuple(int(a) % max(arr.ndim, 1) for a in np.asarray(axis).reshape(-1)) \
            if np.size(axis) else tuple(range(arr.ndim))
        moved = np.moveaxis(arr, axes, tuple(range(arr.ndim - len(axes), arr.ndim)))
        lead = moved.shape[:arr.ndim - len(axes)]
        flat = moved.reshape(*lead, -1) if lead else moved.reshape(1, -1)
        out = np.empty(flat.shape[0], dtype=object)
        out[:] = [sep.join(row) for row in flat.tolist()]
        out = out.reshape(lead)
        if keep:
            for a in sorted(axes):
                out = np.expand_dims(out, a)
        return (out,)
    return compute


@_cpu("Substr")
def _substr(k: KernelContext) -> Any:
    def compute(x: Any, pos: Any, length: Any) -> tuple:
        arr, p, n = np.broadcast_arrays(_strings(x), np.asarray(pos), np.asarray(length))
        out = np.empty(arr.size, dtype=object)
        for i, (s, a, b) in enumerate(zip(arr.reshape(-1).tolist(), p.reshape(-1).tolist(),
                                          n.reshape(-1).tolist(), strict=True)):
            if a > len(s) or a < -len(s):
                raise InvalidArgumentError(f"Substr: pos {a} is out of range for string of "
                                           f"length {len(s)}")
            a = a % len(s) if a < 0 else a
            out[i] = s[a:a + b]
        return (out.reshape(arr.shape),)
    return compute


@_cpu("RegexReplace")
def _regex_replace(k: KernelContext) -> Any:
    count = 0 if k.attrs.get("replace_global", True) else 1

    def compute(x: Any, pattern: Any, rewrite: Any) -> tuple:
        pat = re.compile(np.asarray(pattern).reshape(-1)[0])
        rw = np.asarray(rewrite).reshape(-1)[0]
        return (_map(_strings(x), lambda s: pat.sub(rw, s, count=count)),)
    return compute


@_cpu("RegexFullMatch")
def _regex_full_match(k: KernelContext) -> Any:
    def compute(x: Any, pattern: Any) -> tuple:
        pat = re.compile(np.asarray(pattern).reshape(-1)[0])
        return (_map(_strings(x), lambda s: pat.fullmatch(s) is not None, np.bool_),)
    return compute


_CASE = {"StringLower": bytes.lower, "StringUpper": bytes.upper, "StringStrip": bytes.strip}
for _op, _fn in _CASE.items():
    def _factory(k: KernelContext, fn: Any = _fn) -> Any:
        return lambda x: (_map(_strings(x), fn),)
    _cpu(_op)(_factory)


@_cpu("StringLength")
def _string_length(k: KernelContext) -> Any:
    chars = k.attrs.get("unit", "BYTE") == "UTF8_CHAR"
    return lambda x: (_map(_strings(x), (lambda s: len(s.decode())) if chars else len,
                           np.int32),)
