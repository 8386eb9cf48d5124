"""The file sources of the input pipelines: the elements of `TFRecordDataset`,
`TextLineDataset` and `FixedLengthRecordDataset`, and the state of a queue-based reader
(`TFRecordReader`, `TextLineReader`, `FixedLengthRecordReader`), all reading files lazily
through `devices.tfrecord_io` and `devices.file_records`.

Dataset sources (descriptions in `devices.datasets`' chain), one scalar string per record:
    tfrecord {arrays: [file names], compression, parallel}          TFRecords
    textline {arrays: [file names], compression, parallel}          lines
    fixed_length {arrays: [file names], record_bytes, header_bytes, footer_bytes,
                  compression, parallel}                            fixed-length records
The files are read in order; with `parallel` > 1 that many files are open at once and their
records interleave one by one (TF's num_parallel_reads, in its deterministic order). An
uncompressed fixed-length file whose body is not whole records is refused, as TF does.

`RecordReaderState` is the resource behind those readers: the files it was handed (opened by
its `opener`: one of the record readers, by file name) and its position. Its owner (the
`ReaderReadV2` kernel, on the device's loop) asks it for the next record; when the current
file ends it needs the next file name from the queue of names, which the kernel dequeues
(waiting asynchronously if the queue is empty).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.file_records import FixedLengthRecords, TextLines
from devices.tfrecord_io import RecordReader


def _scalar(b: bytes) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = b
    return out


def _names(value: Any) -> list[str]:
    arr = np.asarray(value)
    if arr.ndim > 1:
        raise InvalidArgumentError(f"TFRecordDataset takes a file name or a vector of them, "
                                   f"got shape {list(arr.shape)}")
    out = []
    for v in arr.reshape(-1).tolist():
        if isinstance(v, bytes):
            v = v.decode()
        if not isinstance(v, str):
            raise InvalidArgumentError(f"TFRecordDataset's file names must be strings, got "
                                       f"{v!r}")
        out.append(v)
    return out


def opener(kind: str, attrs: dict) -> Callable[[str], Any]:
    """A function opening one file of `kind` ("tfrecord", "textline", "fixed_length") with
    `attrs` (compression, and the record layout of fixed-length files)."""
    compression = attrs.get("compression", "")
    if kind == "tfrecord":
        return lambda name: RecordReader(name, compression)
    if kind == "textline":
        skip = int(attrs.get("skip_header_lines") or 0)
        return lambda name: TextLines(name, compression, skip)
    if kind == "fixed_length":
        layout = [int(attrs.get(k) or 0) for k in ("record_bytes", "header_bytes",
                                                     "footer_bytes", "hop_bytes")]
        return lambda name: FixedLengthRecords(name, *layout, compression=compression)
    raise InvalidArgumentError(f"unknown kind of record file {kind!r}")


def records(desc: dict, device: Any = None, epoch: int = 0) -> Iterator[tuple]:
    """The elements of a ``tfrecord`` / ``textline`` / ``fixed_length`` description:
    (record,) per record."""
    names = _names(desc["arrays"][0])
    open_file = opener(desc["op"], desc)
    if desc["op"] == "fixed_length" and not desc.get("compression"):
        for name in names:
            _check_fixed_length(name, desc)
    parallel = max(1, int(desc.get("parallel") or 1))
    if parallel == 1:
        for name in names:
            for data in open_file(name):
                yield (_scalar(data),)
        return
    # TF's interleave, as its kernel walks it: a cycle of `parallel` slots; an empty slot takes
    # the next file and reads from it at once; a record moves on to the next slot, and so
    # does a file's end (its slot stays empty until the cycle comes back to it).
    pending = list(reversed(names))
    slots: list[Iterator[bytes] | None] = [None] * parallel
    i = n_open = 0
    while pending or n_open:
        it = slots[i]
        if it is None and pending:
            slots[i] = iter(open_file(pending.pop()))
            n_open += 1
            continue
        if it is not None:
            data = next(it, None)
            if data is not None:
                yield (_scalar(data),)
            else:
                slots[i] = None
                n_open -= 1
        i = (i + 1) % parallel


def _check_fixed_length(name: str, desc: dict) -> None:
    """A file of FixedLengthRecordDataset holds whole records between header and footer (TF
    refuses a partial one; the queue-based reader drops it)."""
    try:
        size = os.path.getsize(name)
    except OSError:
        return  # the reader names the missing file
    n, head, foot = desc["record_bytes"], desc.get("header_bytes", 0), desc.get("footer_bytes", 0)
    body = size - head - foot
    if body % n:
        raise InvalidArgumentError(
            f"excluding the header ({head} bytes) and footer ({foot} bytes), input file "
            f"'{name}' has body length {body} bytes, which is not an exact multiple of the "
            f"record length ({n} bytes)")


class RecordReaderState:
    """A `TFRecordReader`'s position: the files it was handed, the first one open, and counts.
    Owned by its device: only the device's kernels touch it. (Two concurrent reads that both
    found the reader out of records may each dequeue a name: both files are kept, in order.)"""

    def __init__(self, name: str, open_file: Callable[[str], Any]):
        self.name = name
        self._open_file = open_file
        self._files: deque[Any] = deque()
        self.records_produced = 0
        self.work_units_completed = 0

    def next_record(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(key b"file:number", value) from the current file, or None if a file is needed.
        (number: a TFRecord's offset, a line's number, a fixed-length record's index)"""
        while self._files:
            f = self._files[0]
            rec = f.read()
            if rec is not None:
                self.records_produced += 1
                return (_scalar(f"{f.path}:{rec[0]}".encode()), _scalar(rec[1]))
            f.close()
            self._files.popleft()
            self.work_units_completed += 1
        return None

    def next_records(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Up to `n` (keys, values) from the current file (fewer where the file ends, as TF's
        read_up_to gives), or None if a file is needed."""
        while self._files:
            f = self._files[0]
            recs: list[tuple[int, bytes]] = []
            while len(recs) < n and (rec := f.read()) is not None:
                recs.append(rec)
            if len(recs) < n:
                f.close()
                self._files.popleft()
                self.work_units_completed += 1
            if recs:
                self.records_produced += len(recs)
                keys = np.empty(len(recs), dtype=object)
                keys[:] = [f"{f.path}:{o}".encode() for o, _ in recs]
                values = np.empty(len(recs), dtype=object)
                values[:] = [d for _, d in recs]
                return keys, values
        return None

    def open(self, filename: Any) -> None:
        (name,) = _names(filename)
        self._files.append(self._open_file(name))

    def reset(self) -> None:
        while self._files:
            self._files.popleft().close()
        self.records_produced = self.work_units_completed = 0
