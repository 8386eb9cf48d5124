"""TFRecord files: the record framing TensorFlow writes and reads (`tf.io.TFRecordWriter`,
`TFRecordDataset`, `TFRecordReader`, event files), with its three compressions.

A file is a plain concatenation of records, each

    uint64 length                  little-endian
    uint32 masked_crc32c(length)   the CRC-32C of those 8 bytes, masked
    byte   data[length]
    uint32 masked_crc32c(data)

(the mask is LevelDB's, `devices.sstable.mask_crc`). A compressed file is the same byte
stream through zlib: "ZLIB" a zlib stream (RFC 1950), "GZIP" a gzip member (RFC 1952), "" or
"NONE" none. Files are read lazily, one record at a time, so a file far larger than memory
streams through.

    with RecordWriter("data.tfrecord", "GZIP") as w:
        w.write(b"first")
    r = RecordReader("data.tfrecord", "GZIP")
    r.read()     # (0, b"first"): the record's offset in the (uncompressed) stream, its bytes
    r.read()     # None: the end

A bad length CRC, a bad data CRC or a truncated record is a DataLossError naming the file and
the record's offset (TF's "corrupted record at N" / "truncated record at N"). This module is
the only place that knows the framing: the dataset source (`devices.file_sources`), the
reader kernels (`devices.kernels.readers`) and the user API (`actorflow.tfrecord`) share it.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import IO, Any

from devices.errors import DataLossError, InvalidArgumentError, NotFoundError
from devices.sstable import crc32c, mask_crc

__all__ = ["COMPRESSIONS", "RecordReader", "RecordWriter", "encode_record", "iter_records",
           "normalize_compression", "open_for_reading"]

COMPRESSIONS = ("", "ZLIB", "GZIP")
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def normalize_compression(compression: Any) -> str:
    """"", "ZLIB" or "GZIP" from TF's spellings: None, "", "NONE", "ZLIB", "GZIP" (any case),
    or TFRecordCompressionType's numbers 0, 1, 2."""
    if compression is None:
        return ""
    if isinstance(compression, bytes):
        compression = compression.decode()
    if isinstance(compression, int) and not isinstance(compression, bool):
        if 0 <= compression < len(COMPRESSIONS):
            return COMPRESSIONS[compression]
    elif isinstance(compression, str):
        c = compression.upper()
        if c in ("", "NONE"):
            return ""
        if c in COMPRESSIONS:
            return c
    raise InvalidArgumentError(f"unknown TFRecord compression type {compression!r}: use '' "
                               f"(none), 'ZLIB' or 'GZIP' (or TFRecordCompressionType)")


def encode_record(data: bytes) -> bytes:
    """One framed record."""
    head = struct.pack("<Q", len(data))
    return b"".join((head, _FOOTER.pack(mask_crc(crc32c(head))), data,
                     _FOOTER.pack(mask_crc(crc32c(data)))))


class _ZlibReader:
    """A file-like `read(n)` over a zlib stream (gzip.open serves GZIP)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._z = zlib.decompressobj()
        self._buf = b""

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and not self._z.eof:
            chunk = self._raw.read(1 << 16)
            if not chunk:
                break
            self._buf += self._z.decompress(chunk)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def close(self) -> None:
        self._raw.close()


def open_for_reading(path: str, compression: str) -> Any:
    """A binary file-like `read(n)` over `path`'s (decompressed) bytes."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - the reader owns and closes it
    except FileNotFoundError:
        raise NotFoundError(f"file '{path}' does not exist") from None
    except IsADirectoryError:
        raise InvalidArgumentError(f"'{path}' is a directory, not a file") from None
    if compression == "GZIP":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "ZLIB":
        return _ZlibReader(raw)
    return raw


class RecordReader:
    """Reads the records of one file in order; `read()` gives (offset, data) or None."""

    def __init__(self, path: str, compression: Any = ""):
        self.path = path
        self.compression = normalize_compression(compression)
        self._f = open_for_reading(path, self.compression)
        self.offset = 0  # the next record's offset in the uncompressed stream

    def _read_exact(self, n: int, start: int) -> bytes:
        try:
            b = self._f.read(n)
        except (OSError, EOFError, zlib.error) as e:
            raise DataLossError(f"corrupted {self.compression or 'uncompressed'} stream in "
                                f"TFRecord file '{self.path}' near record offset {start}: "
                                f"{e}") from None
        return b

    def read(self) -> tuple[int, bytes] | None:
        start = self.offset
        head = self._read_exact(12, start)
        if not head:
            return None
        if len(head) < 12:
            raise DataLossError(f"truncated record at offset {start} of TFRecord file "
                                f"'{self.path}' (the file ends inside a record header)")
        length, length_crc = _HEADER.unpack(head)
        if mask_crc(crc32c(head[:8])) != length_crc:
            raise DataLossError(f"corrupted record at offset {start} of TFRecord file "
                                f"'{self.path}': the length's checksum does not match (is "
                                f"the compression type right? this file was opened as "
                                f"{self.compression or 'uncompressed'})")
        body = self._read_exact(length + 4, start)
        if len(body) < length + 4:
            raise DataLossError(f"truncated record at offset {start} of TFRecord file "
                                f"'{self.path}': {length} bytes announced, "
                                f"{max(0, len(body) - 4)} present")
        data = body[:length]
        if mask_crc(crc32c(data)) != _FOOTER.unpack(body[length:])[0]:
            raise DataLossError(f"corrupted record at offset {start} of TFRecord file "
                                f"'{self.path}': the data's checksum does not match")
        self.offset = start + 16 + length
        return start, data

    def close(self) -> None:
        self._f.close()

    def __iter__(self) -> Any:
        try:
            while (rec := self.read()) is not None:
                yield rec[1]
        finally:
            self.close()


def iter_records(path: str, compression: Any = "") -> Any:
    """The records of `path`, lazily, as bytes."""
    return iter(RecordReader(path, compression))


class RecordWriter:
    """Appends framed records to a new file (replacing one there)."""

    def __init__(self, path: str, compression: Any = "", level: int | None = None):
        self.path = path
        self.compression = normalize_compression(compression)
        lvl = zlib.Z_DEFAULT_COMPRESSION if level is None or level < 0 else int(level)
        try:
            self._raw = open(path, "wb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise NotFoundError(f"cannot create TFRecord file '{path}': its directory does "
                                f"not exist") from None
        self._gz = (gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6 if lvl < 0
                                  else lvl, mtime=0)
                    if self.compression == "GZIP" else None)
        self._z = zlib.compressobj(lvl) if self.compression == "ZLIB" else None
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise InvalidArgumentError(f"TFRecordWriter for '{self.path}' is closed")
        rec = encode_record(bytes(data))
        if self._gz is not None:
            self._gz.write(rec)
        elif self._z is not None:
            self._raw.write(self._z.compress(rec))
        else:
            self._raw.write(rec)

    def flush(self) -> None:
        if self.closed:
            return
        if self._gz is not None:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
        elif self._z is not None:
            self._raw.write(self._z.flush(zlib.Z_SYNC_FLUSH))
        self._raw.flush()

    def close(self) -> None:
        if self.closed:
            return
        if self._gz is not None:
            self._gz.close()
        elif self._z is not None:
            self._raw.write(self._z.flush(zlib.Z_FINISH))
        self._raw.close()
        self.closed = True

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
