"""TFRecord files in TF1's API: writing and iterating in Python (`tf.python_io`, `tf.io`),
reading in a graph (`tf.TFRecordReader` in `actorflow.record_readers`;
`tf.data.TFRecordDataset` in `actorflow.data.file_datasets`), and event files
(`tf.train.summary_iterator`). The framing is `devices.tfrecord_io`'s.

    with af.python_io.TFRecordWriter("train.tfrecord") as w:
        w.write(example.SerializeToString())
    for record in af.python_io.tf_record_iterator("train.tfrecord"): ...

`TFRecordOptions(compression_type)` takes TF's spellings ("", "ZLIB", "GZIP", or a
`TFRecordCompressionType`). A corrupt or truncated record raises DataLossError naming the file
and the record's offset, in Python and in the graph alike.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from devices.tfrecord_io import RecordWriter, iter_records, normalize_compression

__all__ = ["TFRecordCompressionType", "TFRecordOptions", "TFRecordWriter",
           "tf_record_iterator", "summary_iterator", "python_io"]


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


python_io = types.SimpleNamespace(
    TFRecordWriter=TFRecordWriter, tf_record_iterator=tf_record_iterator,
    TFRecordOptions=TFRecordOptions, TFRecordCompressionType=TFRecordCompressionType)
