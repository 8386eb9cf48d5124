"""An immutable sorted string table: the layout of a TensorFlow checkpoint's `.index` file.

TensorFlow writes a checkpoint's index with its copy of LevelDB's table format
(`tensorflow/core/lib/io/table_builder.cc`, `block_builder.cc`, `format.cc`), uncompressed.
This module writes and reads that layout, byte for byte as TensorFlow's builder does:

    file   := data_block* metaindex_block index_block footer
    block  := entry* restart:uint32* num_restarts:uint32 | trailer (type:u8=0, masked crc32c:u32)
    entry  := shared:varint non_shared:varint value_len:varint key_delta value
    footer := metaindex_handle index_handle (varint offset, varint size; padded to 40 bytes)
              magic:fixed64 = 0xdb4775248b80fb57

Keys are added in strictly increasing bytewise order; a restart point (a full key) every 16
entries in data blocks, every entry in the index block; a data block is cut once it holds about
256 KiB. Each index entry maps a short separator key (>= the block's last key, < the next
block's first) to the block's handle. The reader verifies every block's CRC32C and raises
`DataLossError` naming the file on any mismatch or truncation.

    w = TableWriter(); w.add(b"", header); w.add(b"w", entry); data = w.finish()
    dict(read_table(data, "model.ckpt.index"))  # {b"": header, b"w": entry}
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import crc32c as _crc32c

from devices.errors import DataLossError, InvalidArgumentError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
BLOCK_SIZE = 262144
RESTART_INTERVAL = 16
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes | memoryview, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of `data`, continuing from `value`."""
    return _crc32c.crc32c(data, value)


def mask_crc(crc: int) -> int:
    """TensorFlow's/LevelDB's masked CRC (stored CRCs are masked so CRCs of CRCs stay strong)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def get_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at `pos`; return (value, next position). Raises IndexError if cut."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


class _BlockBuilder:
    def __init__(self, restart_interval: int):
        self.interval = restart_interval
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            limit = min(len(self.last_key), len(key))
            while shared < limit and self.last_key[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        put_varint(self.buf, shared)
        put_varint(self.buf, len(key) - shared)
        put_varint(self.buf, len(value))
        self.buf += key[shared:]
        self.buf += value
        self.last_key = key
        self.counter += 1

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def empty(self) -> bool:
        return not self.buf

    def finish(self) -> bytes:
        tail = struct.pack(f"<{len(self.restarts) + 1}I", *self.restarts, len(self.restarts))
        return bytes(self.buf) + tail


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def _handle(offset: int, size: int) -> bytes:
    out = bytearray()
    put_varint(out, offset)
    put_varint(out, size)
    return bytes(out)


class TableWriter:
    """Builds a table in memory (an index is small); `finish()` returns the file's bytes."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._data = _BlockBuilder(RESTART_INTERVAL)
        self._index = _BlockBuilder(1)
        self._last_key: bytes | None = None
        self._pending: bytes | None = None  # handle of the block awaiting its index entry

    def add(self, key: bytes, value: bytes) -> None:
        if self._last_key is not None and key <= self._last_key:
            raise InvalidArgumentError(f"table keys must be added in increasing order: "
                                       f"{key!r} after {self._last_key!r}")
        if self._pending is not None:
            self._index.add(_shortest_separator(self._last_key or b"", key), self._pending)
            self._pending = None
        self._data.add(key, value)
        self._last_key = key
        if self._data.size_estimate() >= BLOCK_SIZE:
            self._flush()

    def _write_block(self, contents: bytes) -> bytes:
        offset = len(self._out)
        crc = mask_crc(crc32c(b"\x00", crc32c(contents)))
        self._out += contents
        self._out += b"\x00" + struct.pack("<I", crc)
        return _handle(offset, len(contents))

    def _flush(self) -> None:
        if self._data.empty():
            return
        self._pending = self._write_block(self._data.finish())
        self._data = _BlockBuilder(RESTART_INTERVAL)

    def finish(self) -> bytes:
        self._flush()
        if self._pending is not None:
            self._index.add(_short_successor(self._last_key or b""), self._pending)
            self._pending = None
        meta = self._write_block(_BlockBuilder(RESTART_INTERVAL).finish())
        index = self._write_block(self._index.finish())
        footer = (meta + index).ljust(FOOTER_SIZE - 8, b"\x00")
        self._out += footer + struct.pack("<Q", MAGIC)
        return bytes(self._out)


def _read_block(buf: bytes, offset: int, size: int, filename: str) -> memoryview:
    end = offset + size + BLOCK_TRAILER_SIZE
    if end > len(buf) - FOOTER_SIZE:
        raise DataLossError(f"checkpoint index '{filename}' is truncated: a block at byte "
                            f"{offset} ends past the file's end; the file is corrupt")
    contents = memoryview(buf)[offset:offset + size]
    kind = buf[offset + size]
    (stored,) = struct.unpack_from("<I", buf, offset + size + 1)
    if kind != 0:
        raise DataLossError(f"checkpoint index '{filename}': block at byte {offset} is "
                            f"compressed (type {kind}); only uncompressed tables are supported")
    if mask_crc(crc32c(b"\x00", crc32c(contents))) != stored:
        raise DataLossError(f"checkpoint index '{filename}': checksum mismatch in the block at "
                            f"byte {offset}; the file is corrupt")
    return contents


def _block_entries(block: memoryview, filename: str) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise DataLossError(f"checkpoint index '{filename}': a block is too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise DataLossError(f"checkpoint index '{filename}': bad restart count in a block")
    pos, key = 0, b""
    try:
        while pos < limit:
            shared, pos = get_varint(block, pos)
            non_shared, pos = get_varint(block, pos)
            vlen, pos = get_varint(block, pos)
            if shared > len(key) or pos + non_shared + vlen > limit:
                raise ValueError("entry overruns its block")
            key = key[:shared] + bytes(block[pos:pos + non_shared])
            pos += non_shared
            yield key, bytes(block[pos:pos + vlen])
            pos += vlen
    except (IndexError, ValueError) as e:
        raise DataLossError(f"checkpoint index '{filename}': malformed block entry ({e})") from e


def read_table(buf: bytes, filename: str) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a table file's bytes, in key order; checksums verified."""
    if len(buf) < FOOTER_SIZE:
        raise DataLossError(f"checkpoint index '{filename}' is truncated ({len(buf)} bytes, "
                            f"shorter than a table footer)")
    (magic,) = struct.unpack_from("<Q", buf, len(buf) - 8)
    if magic != MAGIC:
        raise DataLossError(f"checkpoint index '{filename}' is not a table file (bad magic "
                            f"number; truncated or not a checkpoint index)")
    footer = buf[len(buf) - FOOTER_SIZE:]
    meta_off, pos = get_varint(footer, 0)
    meta_size, pos = get_varint(footer, pos)
    _read_block(buf, meta_off, meta_size, filename)  # unused (no filters), but checked
    index_off, pos = get_varint(footer, pos)
    index_size, pos = get_varint(footer, pos)
    index = _read_block(buf, index_off, index_size, filename)
    for _, handle in _block_entries(index, filename):
        off, p = get_varint(handle, 0)
        size, _ = get_varint(handle, p)
        yield from _block_entries(_read_block(buf, off, size, filename), filename)
