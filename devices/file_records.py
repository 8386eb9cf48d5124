"""Records of plain files other than TFRecords, read lazily: text lines (`TextLineReader`,
`TextLineDataset`) and fixed-length records (`FixedLengthRecordReader`,
`FixedLengthRecordDataset`, the CIFAR-10 binary format). Each reader has the interface of
`devices.tfrecord_io.RecordReader`: ``read() -> (key number, bytes) | None``, ``path``,
``close()``, and iteration over the records' bytes.

    TextLines(path, compression="", skip_header_lines=0)
        one record per line, without its "\\n" (or "\\r\\n"); the key number is the line's
        1-based number in the file (header lines counted), as TF's TextLineReader keys it
    FixedLengthRecords(path, record_bytes, header_bytes=0, footer_bytes=0, hop_bytes=0,
                       compression="")
        after `header_bytes`, records of `record_bytes` every `hop_bytes` (0: back to back)
        until the last `footer_bytes`; the key number is the record's 0-based index. A tail
        shorter than a record is dropped, as in TF.

Compression ("", "ZLIB", "GZIP") is `devices.tfrecord_io`'s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from devices.errors import InvalidArgumentError
from devices.tfrecord_io import normalize_compression, open_for_reading

__all__ = ["TextLines", "FixedLengthRecords"]


class _Records(ABC):
    path: str

    @abstractmethod
    def read(self) -> tuple[int, bytes] | None:
        """The next (offset, record), or None at the end of the file."""

    def close(self) -> None:
        self._f.close()

    def __iter__(self) -> Iterator[bytes]:
        try:
            while (rec := self.read()) is not None:
                yield rec[1]
        finally:
            self.close()


class TextLines(_Records):
    def __init__(self, path: str, compression: Any = "", skip_header_lines: int = 0):
        self.path = path
        self._f = open_for_reading(path, normalize_compression(compression))
        self._buf = b""
        self._eof = False
        self.line = 0
        for _ in range(int(skip_header_lines or 0)):
            if self._next_line() is None:
                break

    def _next_line(self) -> bytes | None:
        while b"\n" not in self._buf and not self._eof:
            chunk = self._f.read(1 << 16)
            if not chunk:
                self._eof = True
            self._buf += chunk
        if not self._buf:
            return None
        line, sep, self._buf = self._buf.partition(b"\n")
        self.line += 1
        return line[:-1] if line.endswith(b"\r") else line

    def read(self) -> tuple[int, bytes] | None:
        line = self._next_line()
        return None if line is None else (self.line, line)


class FixedLengthRecords(_Records):
    def __init__(self, path: str, record_bytes: int, header_bytes: int = 0,
                 footer_bytes: int = 0, hop_bytes: int = 0, compression: Any = ""):
        if int(record_bytes) <= 0:
            raise InvalidArgumentError(f"record_bytes must be > 0, got {record_bytes}")
        self.path = path
        self._n, self._hop = int(record_bytes), int(hop_bytes or 0)
        self._footer = int(footer_bytes or 0)
        self._f = open_for_reading(path, normalize_compression(compression))
        self._buf = b""
        self._eof = False
        self.index = 0
        self._skip = int(header_bytes or 0)

    def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._eof:
            chunk = self._f.read(max(1 << 16, n))
            if not chunk:
                self._eof = True
            self._buf += chunk

    def read(self) -> tuple[int, bytes] | None:
        if self._skip:
            self._fill(self._skip)
            self._buf = self._buf[self._skip:]
            self._skip = 0
        # a record needs its bytes and the footer after them still in the file
        self._fill(self._n + self._footer)
        if len(self._buf) < self._n + self._footer:
            return None
        data = self._buf[:self._n]
        step = self._hop or self._n
        if step <= len(self._buf):
            self._buf = self._buf[step:]
        else:  # a hop past what is buffered: skip the rest before the next record
            self._skip, self._buf = step - len(self._buf), b""
        self.index += 1
        return self.index - 1, data
