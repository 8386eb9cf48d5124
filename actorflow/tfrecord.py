"""TFRecord files in TF1's API: writing and iterating in Python (`tf.python_io`, `tf.io`),
reading in a graph (`tf.TFRecordReader`; `tf.data.TFRecordDataset` is in
`actorflow.data.tfrecord_dataset`), and event files
(`tf.train.summary_iterator`). The framing is `devices.tfrecord_io`'s.

    with af.python_io.TFRecordWriter("train.tfrecord") as w:
        w.write(example.SerializeToString())
    for record in af.python_io.tf_record_iterator("train.tfrecord"): ...

    ds = af.data.TFRecordDataset(["a.tfrecord", "b.tfrecord"], compression_type="GZIP")
    ds = ds.map(lambda r: af.parse_single_example(r, features)).batch(32)

    names = af.train.string_input_producer(["a.tfrecord"])
    key, record = af.TFRecordReader().read(names)      # key: b"a.tfrecord:<offset>"

`TFRecordOptions(compression_type)` takes TF's spellings ("", "ZLIB", "GZIP", or a
`TFRecordCompressionType`). A corrupt or truncated record raises DataLossError naming the file
and the record's offset, in Python and in the graph alike.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, define_op, no_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError
from devices.tfrecord_io import RecordWriter, iter_records, normalize_compression

__all__ = ["TFRecordCompressionType", "TFRecordOptions", "TFRecordWriter",
           "tf_record_iterator", "TFRecordReader", "summary_iterator", "python_io"]


class TFRecordCompressionType:
    """The compression of a TFRecord file (TF's enum values)."""

    NONE = 0
    ZLIB = 1
    GZIP = 2


class TFRecordOptions:
    """How a TFRecord file is compressed. Of zlib's tuning knobs, `compression_level` is used;
    the others are accepted for compatibility (zlib's defaults apply)."""

    compression_type_map = {TFRecordCompressionType.ZLIB: "ZLIB",
                            TFRecordCompressionType.GZIP: "GZIP",
                            TFRecordCompressionType.NONE: ""}

    def __init__(self, compression_type: Any = None, flush_mode: Any = None,
                 input_buffer_size: Any = None, output_buffer_size: Any = None,
                 window_bits: Any = None, compression_level: int | None = None,
                 compression_method: Any = None, mem_level: Any = None,
                 compression_strategy: Any = None):
        self.compression_type = normalize_compression(compression_type)
        self.flush_mode = flush_mode
        self.input_buffer_size = input_buffer_size
        self.output_buffer_size = output_buffer_size
        self.window_bits = window_bits
        self.compression_level = compression_level
        self.compression_method = compression_method
        self.mem_level = mem_level
        self.compression_strategy = compression_strategy

    @classmethod
    def get_compression_type_string(cls, options: Any) -> str:
        """"", "ZLIB" or "GZIP" for a TFRecordOptions, a type, a string or None."""
        if isinstance(options, TFRecordOptions):
            return options.compression_type
        return normalize_compression(options)


def _options(options: Any) -> tuple[str, int | None]:
    if isinstance(options, TFRecordOptions):
        return options.compression_type, options.compression_level
    return normalize_compression(options), None


def _path(path: Any) -> str:
    import os
    return os.fspath(path.decode() if isinstance(path, bytes) else path)


class TFRecordWriter:
    """Writes records to a TFRecord file (a context manager, like a file)."""

    def __init__(self, path: Any, options: Any = None):
        compression, level = _options(options)
        self._w = RecordWriter(_path(path), compression, level)

    def write(self, record: Any) -> None:
        """Append one record (bytes; a str is written as its UTF-8)."""
        if isinstance(record, str):
            record = record.encode()
        if not isinstance(record, bytes | bytearray | memoryview):
            raise TypeError(f"TFRecordWriter.write takes bytes (e.g. "
                            f"example.SerializeToString()), got {type(record).__name__}")
        self._w.write(bytes(record))

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tf_record_iterator(path: Any, options: Any = None) -> Iterator[bytes]:
    """The records of the TFRecord file `path`, read lazily."""
    return iter_records(_path(path), _options(options)[0])


def summary_iterator(path: Any) -> Iterator[Any]:
    """The `Event` protos of an event file (ours or TensorFlow's), in order."""
    from tensorboardX.proto import event_pb2
    for record in iter_records(_path(path)):
        yield event_pb2.Event.FromString(record)


# ---- the queue-based reader ------------------------------------------------------------------
define_op("TFRecordReaderV2", infer=lambda ins, a: [(dtypes.resource, ())], stateful=True)
define_op("ReaderReadV2", infer=lambda ins, a: [(dtypes.string, ()), (dtypes.string, ())],
          stateful=True)
define_op("ReaderReadUpToV2", infer=lambda ins, a: [(dtypes.string, (None,)),
                                                   (dtypes.string, (None,))], stateful=True)
define_op("ReaderNumRecordsProducedV2", infer=lambda ins, a: [(dtypes.int64, ())],
          stateful=True)
define_op("ReaderResetV2", infer=lambda ins, a: [], stateful=True)
for _op in ("TFRecordReaderV2", "ReaderReadV2", "ReaderReadUpToV2", "ReaderNumRecordsProducedV2",
            "ReaderResetV2"):
    no_gradient(_op)


def _queue_ref(queue: Any) -> Tensor:
    ref = getattr(queue, "queue_ref", queue)
    if not isinstance(ref, Tensor) or ref.dtype is not dtypes.resource:
        raise InvalidArgumentError(f"a reader reads file names from a queue (e.g. "
                                   f"af.train.string_input_producer([...])), got "
                                   f"{type(queue).__name__}")
    return ref


class TFRecordReader:
    """TF1's reader of TFRecord files: `read(queue)` gives (key, record) for the next record,
    taking the next file name from `queue` when a file ends."""

    def __init__(self, name: str | None = None, options: Any = None):
        self._name = name or "TFRecordReaderV2"
        self._compression = _options(options)[0]
        self._ref: Tensor | None = None

    @property
    def reader_ref(self) -> Tensor:
        if self._ref is None:
            self._ref = apply_op("TFRecordReaderV2", [], {"compression_type": self._compression},
                                 name=self._name)[0]
        return self._ref

    @property
    def supports_serialize(self) -> bool:
        return False

    def read(self, queue: Any, name: str | None = None) -> tuple[Tensor, Tensor]:
        """(key, value): scalar strings, key b"<file>:<offset>"."""
        from actorflow.graph import colocate_with
        q = _queue_ref(queue)
        with colocate_with(q.op):
            ref = self.reader_ref
            key, value = apply_op("ReaderReadV2", [ref, q], name=name or "ReaderReadV2")
        return key, value

    def read_up_to(self, queue: Any, num_records: Any, name: str | None = None
                   ) -> tuple[Tensor, Tensor]:
        """(keys, values): string vectors of 1 to `num_records` records of one file (fewer
        where a file ends)."""
        from actorflow.graph import colocate_with
        from actorflow.op_def import convert_to_tensor
        q = _queue_ref(queue)
        with colocate_with(q.op):
            ref = self.reader_ref
            keys, values = apply_op("ReaderReadUpToV2", [
                ref, q, convert_to_tensor(num_records, dtype=dtypes.int64)],
                name=name or "ReaderReadUpToV2")
        return keys, values

    def num_records_produced(self, name: str | None = None) -> Tensor:
        return apply_op("ReaderNumRecordsProducedV2", [self.reader_ref],
                        name=name or "ReaderNumRecordsProducedV2")[0]

    def reset(self, name: str | None = None) -> Any:
        from actorflow.op_def import apply_op_op
        return apply_op_op("ReaderResetV2", [self.reader_ref], name=name or "ReaderResetV2")


python_io = types.SimpleNamespace(
    TFRecordWriter=TFRecordWriter, tf_record_iterator=tf_record_iterator,
    TFRecordOptions=TFRecordOptions, TFRecordCompressionType=TFRecordCompressionType)
