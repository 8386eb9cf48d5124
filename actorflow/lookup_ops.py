"""Lookup tables, as TF1 programs build vocabularies: `HashTable` with its initializers, the
`index_table_from_*` / `index_to_string_table_from_*` helpers, `MutableHashTable` and
`tables_initializer` (``af.contrib.lookup``, ``af.lookup``).

Design: a table is a resource on the device its handle op is placed on
(`devices.kernels.lookup`); the Python object holds the handle, its dtypes, its default value
and its initializer op, which joins the TABLE_INITIALIZERS collection that
`af.tables_initializer()` groups. Lookups are ops that read the handle, so a table is built
once and shared by every step and session of its device.

    table = af.contrib.lookup.index_table_from_tensor(["emerson", "lake", "palmer"],
                                                     num_oov_buckets=1)
    ids = table.lookup(af.constant(["emerson", "lake", "and", "palmer"]))   # [0, 1, 3, 2]
    sess.run(af.tables_initializer())

Out-of-vocabulary buckets hash with `StringToHashBucketFast`: FarmHash's Fingerprint64, as
TensorFlow's, so an OOV word lands in the same bucket as under TensorFlow.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import GraphKeys, Operation, Tensor, colocate_with, get_default_graph
from actorflow.op_def import apply_op, apply_op_op, convert_to_tensor, define_op, no_gradient
from actorflow.ops import core_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

define_op("HashTableV2", infer=lambda ins, a: [(dtypes.resource, ())], stateful=True)
define_op("MutableHashTableV2", infer=lambda ins, a: [(dtypes.resource, ())], stateful=True)
define_op("InitializeTableV2", infer=lambda ins, a: [], stateful=True)
define_op("InitializeTableFromTextFileV2", infer=lambda ins, a: [], stateful=True)
define_op("LookupTableInsertV2", infer=lambda ins, a: [], stateful=True)
define_op("LookupTableFindV2", infer=lambda ins, a: [(dtypes.as_dtype(a["value_dtype"]),
                                                      ins[1]._shape)], stateful=True)
define_op("LookupTableSizeV2", infer=lambda ins, a: [(dtypes.int64, ())], stateful=True)
define_op("StringToHashBucketFast", infer=lambda ins, a: [(dtypes.int64, ins[0]._shape)])
for _op in ("HashTableV2", "MutableHashTableV2", "InitializeTableV2",
            "InitializeTableFromTextFileV2", "LookupTableInsertV2", "LookupTableFindV2",
            "LookupTableSizeV2", "StringToHashBucketFast"):
    no_gradient(_op)


class KeyValueTensorInitializer:
    """Fills a table from a keys tensor and a values tensor of the same length."""

    def __init__(self, keys: Any, values: Any, key_dtype: Any = None, value_dtype: Any = None,
                 name: str | None = None):
        self.keys = convert_to_tensor(keys, dtype=key_dtype)
        self.values = convert_to_tensor(values, dtype=value_dtype)
        self.key_dtype, self.value_dtype = self.keys.dtype, self.values.dtype
        self._name = name

    def initialize(self, table: Tensor) -> Operation:
        with colocate_with(table.op):
            return apply_op_op("InitializeTableV2", [table, self.keys, self.values],
                               name=self._name or "table_init")


class TextFileIndex:
    WHOLE_LINE = -1
    LINE_NUMBER = -2


class TextFileInitializer:
    """Fills a table from a text file, one entry per line: the key and the value are the whole
    line (-1), the line number (-2) or a column split by `delimiter`."""

    def __init__(self, filename: Any, key_dtype: Any, key_index: int, value_dtype: Any,
                 value_index: int, vocab_size: int | None = None, delimiter: str = "\t",
                 name: str | None = None):
        self.filename = convert_to_tensor(filename, dtype=dtypes.string)
        self.key_dtype = dtypes.as_dtype(key_dtype)
        self.value_dtype = dtypes.as_dtype(value_dtype)
        self._attrs = {"key_index": int(key_index), "value_index": int(value_index),
                       "vocab_size": -1 if vocab_size is None else int(vocab_size),
                       "delimiter": delimiter}
        self._name = name

    def initialize(self, table: Tensor) -> Operation:
        with colocate_with(table.op):
            return apply_op_op("InitializeTableFromTextFileV2", [table, self.filename],
                               self._attrs, name=self._name or "table_init")


class TextFileIdTableInitializer(TextFileInitializer):
    """Whole lines -> line numbers (int64)."""

    def __init__(self, filename: Any, key_column_index: int = TextFileIndex.WHOLE_LINE,
                 value_column_index: int = TextFileIndex.LINE_NUMBER,
                 vocab_size: int | None = None, delimiter: str = "\t",
                 name: str = "text_file_id_table_init", key_dtype: Any = dtypes.string):
        super().__init__(filename, key_dtype, key_column_index, dtypes.int64, value_column_index,
                         vocab_size, delimiter, name)


class TextFileStringTableInitializer(TextFileInitializer):
    """Line numbers (int64) -> whole lines."""

    def __init__(self, filename: Any, key_column_index: int = TextFileIndex.LINE_NUMBER,
                 value_column_index: int = TextFileIndex.WHOLE_LINE,
                 vocab_size: int | None = None, delimiter: str = "\t",
                 name: str = "text_file_string_table_init"):
        super().__init__(filename, dtypes.int64, key_column_index, dtypes.string,
                         value_column_index, vocab_size, delimiter, name)


class _Table:
    def __init__(self, op_type: str, key_dtype: Any, value_dtype: Any, default_value: Any,
                 shared_name: str | None, name: str | None):
        self.key_dtype = dtypes.as_dtype(key_dtype)
        self.value_dtype = dtypes.as_dtype(value_dtype)
        self.resource_handle = apply_op(op_type, [], {
            "key_dtype": self.key_dtype, "value_dtype": self.value_dtype,
            "shared_name": shared_name or "", "container": ""}, name=name or op_type)[0]
        self.name = self.resource_handle.op.name
        self._default = convert_to_tensor(default_value, dtype=self.value_dtype)

    @property
    def default_value(self) -> Tensor:
        return self._default

    def lookup(self, keys: Any, name: str | None = None) -> Any:
        """The value of each key (any shape), or the default for keys the table lacks."""
        from actorflow.sparse_tensor import SparseTensor
        if isinstance(keys, SparseTensor):
            return SparseTensor(keys.indices, self.lookup(keys.values, name), keys.dense_shape)
        keys = convert_to_tensor(keys)
        if keys.dtype is not self.key_dtype:
            raise InvalidArgumentError(f"table '{self.name}' has {self.key_dtype.name} keys; "
                                       f"the lookup gave {keys.dtype.name} keys")
        with colocate_with(self.resource_handle.op):
            return apply_op("LookupTableFindV2", [self.resource_handle, keys, self._default],
                            {"value_dtype": self.value_dtype}, name=name or "lookup")[0]

    def size(self, name: str | None = None) -> Tensor:
        with colocate_with(self.resource_handle.op):
            return apply_op("LookupTableSizeV2", [self.resource_handle], name=name or "size")[0]


class HashTable(_Table):
    """An immutable table filled once by its initializer (TF1's HashTable/StaticHashTable)."""

    def __init__(self, initializer: Any, default_value: Any, shared_name: str | None = None,
                 name: str | None = None):
        super().__init__("HashTableV2", initializer.key_dtype, initializer.value_dtype,
                         default_value, shared_name, name)
        self._init_op = initializer.initialize(self.resource_handle)
        get_default_graph().add_to_collection(GraphKeys.TABLE_INITIALIZERS, self._init_op)

    @property
    def initializer(self) -> Operation:
        return self._init_op

    @property
    def init(self) -> Operation:
        return self._init_op


StaticHashTable = HashTable


class MutableHashTable(_Table):
    """A table that `insert` updates at any time (TF1's MutableHashTable)."""

    def __init__(self, key_dtype: Any, value_dtype: Any, default_value: Any,
                 shared_name: str | None = None, name: str = "MutableHashTable",
                 checkpoint: bool = True):
        super().__init__("MutableHashTableV2", key_dtype, value_dtype, default_value,
                         shared_name, name)

    def insert(self, keys: Any, values: Any, name: str | None = None) -> Operation:
        k = convert_to_tensor(keys, dtype=self.key_dtype)
        v = convert_to_tensor(values, dtype=self.value_dtype)
        with colocate_with(self.resource_handle.op):
            return apply_op_op("LookupTableInsertV2", [self.resource_handle, k, v],
                               name=name or "insert")


class _IdTableWithOov:
    """A vocabulary table plus `num_oov_buckets` hash buckets after it for unknown keys."""

    def __init__(self, table: HashTable, vocab_size: Tensor, num_oov_buckets: int):
        self._table, self._size, self._oov = table, vocab_size, num_oov_buckets
        self.key_dtype, self.value_dtype = table.key_dtype, table.value_dtype
        self.initializer = table.initializer
        self.init = table.initializer

    def lookup(self, keys: Any, name: str | None = None) -> Any:
        from actorflow.ops import compare_ops, math_ops
        from actorflow.sparse_tensor import SparseTensor
        if isinstance(keys, SparseTensor):
            return SparseTensor(keys.indices, self.lookup(keys.values, name), keys.dense_shape)
        keys = convert_to_tensor(keys)
        ids = self._table.lookup(keys)
        if keys.dtype.is_string:
            hashed = apply_op("StringToHashBucketFast", [keys],
                              {"num_buckets": self._oov})[0]
        else:
            hashed = math_ops.floormod(compare_ops.cast(keys, dtypes.int64), self._oov)
        oov = math_ops.add(hashed, self._size)
        return compare_ops.where(compare_ops.equal(ids, -1), oov, ids, name=name)

    def size(self, name: str | None = None) -> Tensor:
        from actorflow.ops import math_ops
        return math_ops.add(self._table.size(), self._oov, name=name)


def _check_oov(num_oov_buckets: int) -> None:
    if num_oov_buckets < 0:
        raise ValueError(f"num_oov_buckets must be >= 0, got {num_oov_buckets}")


def index_table_from_tensor(vocabulary_list: Any, num_oov_buckets: int = 0,
                            default_value: int = -1, hasher_spec: Any = None,
                            dtype: Any = dtypes.string, name: str | None = None) -> Any:
    """Keys -> their int64 position in `vocabulary_list`; unknown keys -> `default_value`, or to
    one of `num_oov_buckets` buckets after the vocabulary."""
    _check_oov(num_oov_buckets)
    from actorflow.ops import array_ops
    from actorflow.ops.partition_ops import range as af_range
    vocab = convert_to_tensor(vocabulary_list, dtype=dtype)
    n = array_ops.size(vocab, out_type=dtypes.int64)
    ids = af_range(n, dtype=dtypes.int64)
    table = HashTable(KeyValueTensorInitializer(vocab, ids), -1 if num_oov_buckets else
                      default_value, name=name or "hash_table")
    return _IdTableWithOov(table, n, num_oov_buckets) if num_oov_buckets else table


def index_table_from_file(vocabulary_file: Any = None, num_oov_buckets: int = 0,
                          vocab_size: int | None = None, default_value: int = -1,
                          hasher_spec: Any = None, key_dtype: Any = dtypes.string,
                          name: str | None = None, key_column_index: int = -1,
                          value_column_index: int = -2, delimiter: str = "\t") -> Any:
    """Keys -> their line number in a vocabulary file (one key per line)."""
    if vocabulary_file is None:
        raise ValueError("vocabulary_file must be specified and must not be empty")
    _check_oov(num_oov_buckets)
    init = TextFileInitializer(vocabulary_file, key_dtype, key_column_index, dtypes.int64,
                               value_column_index, vocab_size, delimiter)
    table = HashTable(init, -1 if num_oov_buckets else default_value,
                      name=name or "hash_table")
    return _IdTableWithOov(table, table.size(), num_oov_buckets) if num_oov_buckets else table


def index_to_string_table_from_tensor(vocabulary_list: Any, default_value: str = "UNK",
                                      name: str | None = None) -> HashTable:
    """int64 ids -> the vocabulary entry at that position; other ids -> `default_value`."""
    from actorflow.ops import array_ops
    from actorflow.ops.partition_ops import range as af_range
    vocab = convert_to_tensor(vocabulary_list, dtype=dtypes.string)
    ids = af_range(array_ops.size(vocab, out_type=dtypes.int64), dtype=dtypes.int64)
    return HashTable(KeyValueTensorInitializer(ids, vocab), default_value,
                     name=name or "hash_table")


def index_to_string_table_from_file(vocabulary_file: Any, vocab_size: int | None = None,
                                    default_value: str = "UNK", name: str | None = None,
                                    key_column_index: int = -2, value_column_index: int = -1,
                                    delimiter: str = "\t") -> HashTable:
    """int64 line numbers -> the lines of a vocabulary file."""
    init = TextFileInitializer(vocabulary_file, dtypes.int64, key_column_index, dtypes.string,
                               value_column_index, vocab_size, delimiter)
    return HashTable(init, default_value, name=name or "hash_table")


def string_to_hash_bucket_fast(input: Any, num_buckets: int, name: str | None = None) -> Tensor:
    """Each string's stable hash bucket in [0, num_buckets) (not TensorFlow's fingerprint)."""
    if num_buckets < 1:
        raise InvalidArgumentError(f"num_buckets must be >= 1, got {num_buckets}")
    return apply_op("StringToHashBucketFast", [convert_to_tensor(input, dtype=dtypes.string)],
                    {"num_buckets": int(num_buckets)}, name=name or "StringToHashBucketFast")[0]


def tables_initializer(name: str = "init_all_tables") -> Operation:
    """One op that initializes every table of the default graph."""
    return core_ops.group(*get_default_graph().get_collection(GraphKeys.TABLE_INITIALIZERS),
                          name=name)


initialize_all_tables = tables_initializer

__all__ = ["HashTable", "StaticHashTable", "MutableHashTable", "KeyValueTensorInitializer",
           "TextFileInitializer", "TextFileIdTableInitializer", "TextFileStringTableInitializer",
           "TextFileIndex", "index_table_from_tensor", "index_table_from_file",
           "index_to_string_table_from_tensor", "index_to_string_table_from_file",
           "string_to_hash_bucket_fast", "tables_initializer", "initialize_all_tables"]
