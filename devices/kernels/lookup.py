"""Lookup tables (TF1's HashTable family): a key -> value map kept as a device resource.

A `LookupTable` lives in the device's resource containers under its shared name, like a
variable, so every step (and every session of the device) sees the same table. It is filled
once by an initializer kernel (from two tensors, or from a text file: one entry per line, the
key and value being the whole line, the line number, or a delimited column), and read by
`LookupTableFindV2`, which maps every element of a keys tensor (any shape) to its value or the
default. `MutableHashTable`'s insert adds entries at any time. String keys are bytes objects, as
everywhere in the string dtype; numeric keys are Python scalars of the key dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import FailedPreconditionError, InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


class LookupTable:
    """A key -> value map on a device. `initialized` turns True when an initializer ran."""

    __slots__ = ("name", "key_dtype", "value_dtype", "data", "initialized")

    def __init__(self, name: str, key_dtype: Any, value_dtype: Any):
        self.name = name
        self.key_dtype = key_dtype
        self.value_dtype = value_dtype
        self.data: dict[Any, Any] = {}
        self.initialized = False

    def insert(self, keys: Any, values: Any) -> None:
        k, v = np.asarray(keys).reshape(-1), np.asarray(values).reshape(-1)
        if k.shape != v.shape:
            raise InvalidArgumentError(f"table '{self.name}': {k.size} keys but {v.size} values; "
                                       f"give one value per key")
        self.data.update(zip(k.tolist(), v.tolist(), strict=True))

    def find(self, keys: Any, default: Any) -> np.ndarray:
        k = np.asarray(keys)
        dflt = np.asarray(default).reshape(-1)[0] if np.size(default) else None
        get = self.data.get
        flat = [get(x, dflt) for x in k.reshape(-1).tolist()]
        out = np.empty(len(flat), dtype=self.value_dtype.np)
        out[:] = flat
        return out.reshape(k.shape)


def _table_kernel(op: str) -> Any:
    return register_kernel(op, device_types=("CPU",), stateful=True)


@_table_kernel("HashTableV2")
def _hash_table(k: KernelContext) -> Any:
    container = k.attrs.get("container", "") or ""
    name = k.attrs.get("shared_name") or k.name
    key_dt, value_dt = k.attrs["key_dtype"], k.attrs["value_dtype"]
    mgr = k.device.resources

    def create() -> LookupTable:
        return LookupTable(name, key_dt, value_dt)

    def compute() -> tuple[LookupTable]:
        table = mgr.lookup_or_create(container, name, create)
        if not isinstance(table, LookupTable):
            raise InvalidArgumentError(f"resource '{name}' is a {type(table).__name__}, not a "
                                       f"lookup table; give the table another shared_name")
        return (table,)
    return compute


_table_kernel("MutableHashTableV2")(_hash_table)


@_table_kernel("InitializeTableV2")
def _init_table(k: KernelContext) -> Any:
    def compute(table: LookupTable, keys: Any, values: Any) -> tuple:
        if not table.initialized:  # TF initializes a table once; running it again is a no-op
            table.insert(keys, values)
            table.initialized = True
        return ()
    return compute


def _column(line: bytes, number: int, index: int, delimiter: bytes, path: str) -> Any:
    if index == -2:
        return number
    if index == -1:
        return line
    cols = line.split(delimiter)
    if index >= len(cols):
        raise InvalidArgumentError(f"{path}:{number + 1} has {len(cols)} columns, fewer than "
                                   f"column index {index} needs")
    return cols[index]


def _typed(v: Any, dt: Any) -> Any:
    if dt.is_string:
        return v if isinstance(v, bytes) else str(v).encode()
    return dt.np.type(v.decode() if isinstance(v, bytes) else v)


@_table_kernel("InitializeTableFromTextFileV2")
def _init_from_file(k: KernelContext) -> Any:
    key_index, value_index = int(k.attrs["key_index"]), int(k.attrs["value_index"])
    delimiter = str(k.attrs.get("delimiter", "\t")).encode()
    vocab_size = int(k.attrs.get("vocab_size", -1))

    def compute(table: LookupTable, filename: Any) -> tuple:
        if table.initialized:
            return ()
        path = np.asarray(filename).reshape(-1)[0]
        path = path.decode() if isinstance(path, bytes) else str(path)
        try:
            with open(path, "rb") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise FailedPreconditionError(f"cannot read vocabulary file {path}: {e}") from None
        if vocab_size >= 0:
            if len(lines) < vocab_size:
                raise InvalidArgumentError(f"vocabulary file {path} has {len(lines)} lines, "
                                           f"fewer than vocab_size={vocab_size}")
            lines = lines[:vocab_size]
        keys = [_typed(_column(ln, i, key_index, delimiter, path), table.key_dtype)
                for i, ln in enumerate(lines)]
        values = [_typed(_column(ln, i, value_index, delimiter, path), table.value_dtype)
                  for i, ln in enumerate(lines)]
        table.data.update(zip(keys, values, strict=True))
        table.initialized = True
        return ()
    return compute


@_table_kernel("LookupTableInsertV2")
def _insert(k: KernelContext) -> Any:
    def compute(table: LookupTable, keys: Any, values: Any) -> tuple:
        table.insert(keys, values)
        table.initialized = True
        return ()
    return compute


@_table_kernel("LookupTableFindV2")
def _find(k: KernelContext) -> Any:
    def compute(table: LookupTable, keys: Any, default: Any) -> tuple[np.ndarray]:
        if not table.initialized:
            raise FailedPreconditionError(
                f"table '{table.name}' is not initialized: run af.tables_initializer() (or the "
                f"table's initializer) first")
        return (table.find(keys, default),)
    return compute


@_table_kernel("LookupTableSizeV2")
def _size(k: KernelContext) -> Any:
    return lambda table: (np.array(len(table.data), dtype=np.int64),)


@_table_kernel("StringToHashBucketFast")
def _hash_bucket(k: KernelContext) -> Any:
    """Each string's bucket in [0, num_buckets): FarmHash's Fingerprint64 of it modulo the
    bucket count, as TensorFlow's kernel (`devices.kernels.strings_hash`)."""
    from devices.kernels.strings_hash import fingerprint64
    n = int(k.attrs["num_buckets"])

    def bucket(s: bytes) -> int:
        return fingerprint64(s) % n

    def compute(x: Any) -> tuple[np.ndarray]:
        arr = np.asarray(x)
        out = np.fromiter((bucket(s) for s in arr.reshape(-1).tolist()), dtype=np.int64,
                          count=arr.size)
        return (out.reshape(arr.shape),)
    return compute

