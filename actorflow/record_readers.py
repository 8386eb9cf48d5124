"""TF1's queue-based readers: `TFRecordReader`, `TextLineReader`, `FixedLengthRecordReader`.
`read(queue)` gives (key, value) for the next record, taking the next file name from `queue`
(a queue of file names: `af.train.string_input_producer`) when a file ends; the end of the
epochs is the queue's OutOfRangeError, as in TF:

    names = af.train.string_input_producer(["a.tfrecord"], num_epochs=1)
    key, record = af.TFRecordReader().read(names)      # key: b"a.tfrecord:<offset>"
    key, line = af.TextLineReader(skip_header_lines=1).read(csv_names)   # b"file:<line>"
    key, value = af.FixedLengthRecordReader(record_bytes=3073).read(bin_names)  # b"file:<i>"

The reader is a resource on the queue's device (`devices.kernels.readers`); its files
are read lazily (`devices.tfrecord_io`, `devices.file_records`).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, define_op, no_gradient
from actorflow.tfrecord import _options
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["ReaderBase", "TFRecordReader", "TextLineReader", "FixedLengthRecordReader"]

for _op in ("TFRecordReaderV2", "TextLineReaderV2", "FixedLengthRecordReaderV2"):
    define_op(_op, infer=lambda ins, a: [(dtypes.resource, ())], stateful=True)
define_op("ReaderReadV2", infer=lambda ins, a: [(dtypes.string, ()), (dtypes.string, ())],
          stateful=True)
define_op("ReaderReadUpToV2", infer=lambda ins, a: [(dtypes.string, (None,)),
                                                   (dtypes.string, (None,))], stateful=True)
define_op("ReaderNumRecordsProducedV2", infer=lambda ins, a: [(dtypes.int64, ())],
          stateful=True)
define_op("ReaderResetV2", infer=lambda ins, a: [], stateful=True)
for _op in ("TFRecordReaderV2", "TextLineReaderV2", "FixedLengthRecordReaderV2", "ReaderReadV2",
            "ReaderReadUpToV2", "ReaderNumRecordsProducedV2", "ReaderResetV2"):
    no_gradient(_op)


def _queue_ref(queue: Any) -> Tensor:
    ref = getattr(queue, "queue_ref", queue)
    if not isinstance(ref, Tensor) or ref.dtype is not dtypes.resource:
        raise InvalidArgumentError(f"a reader reads file names from a queue (e.g. "
                                   f"af.train.string_input_producer([...])), got "
                                   f"{type(queue).__name__}")
    return ref


class ReaderBase:
    """A reader: `op` (its handle op) with `attrs`, made on first use beside the queue."""

    def __init__(self, op: str, attrs: dict, name: str | None = None):
        self._op, self._attrs = op, attrs
        self._name = name or op
        self._ref: Tensor | None = None

    @property
    def reader_ref(self) -> Tensor:
        if self._ref is None:
            self._ref = apply_op(self._op, [], self._attrs, name=self._name)[0]
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




class TFRecordReader(ReaderBase):
    """Reads the records of TFRecord files; keys b"<file>:<offset>"."""

    def __init__(self, name: str | None = None, options: Any = None):
        super().__init__("TFRecordReaderV2", {"compression_type": _options(options)[0]}, name)


class TextLineReader(ReaderBase):
    """Reads the lines of text files (without newlines); keys b"<file>:<line number>"."""

    def __init__(self, skip_header_lines: int | None = None, name: str | None = None):
        super().__init__("TextLineReaderV2",
                         {"skip_header_lines": int(skip_header_lines or 0)}, name)


class FixedLengthRecordReader(ReaderBase):
    """Reads records of `record_bytes` bytes, after `header_bytes` and before `footer_bytes`,
    one every `hop_bytes` (default: back to back); keys b"<file>:<record index>".
    `encoding` is a compression ("", "ZLIB" or "GZIP")."""

    def __init__(self, record_bytes: int, header_bytes: int | None = None,
                 footer_bytes: int | None = None, hop_bytes: int | None = None,
                 name: str | None = None, encoding: str | None = None):
        if int(record_bytes) <= 0:
            raise InvalidArgumentError(f"FixedLengthRecordReader needs record_bytes > 0, got "
                                       f"{record_bytes}")
        super().__init__("FixedLengthRecordReaderV2", {
            "record_bytes": int(record_bytes), "header_bytes": int(header_bytes or 0),
            "footer_bytes": int(footer_bytes or 0), "hop_bytes": int(hop_bytes or 0),
            "encoding": _options(encoding)[0]}, name)
