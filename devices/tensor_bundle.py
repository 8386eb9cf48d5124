"""TensorFlow's V2 checkpoint format (the "tensor bundle"): bytes and files, no graph knowledge.

A checkpoint with prefix P is

    P.index                     a sorted table (devices/sstable.py): key b"" -> BundleHeaderProto
                                {num_shards}, every other key -> BundleEntryProto {dtype, shape,
                                shard_id, offset, size, crc32c (masked)}
    P.data-0000k-of-0000n       shard k: the raw little-endian C-order bytes of its tensors,
                                concatenated

byte-compatible with TensorFlow 2.21 (`tensorflow/core/util/tensor_bundle/`). String tensors
(object arrays of bytes) use TensorFlow's layout: varint lengths, their masked CRC, the bytes.
A partitioned
variable is stored as slices: its full name's entry holds only dtype, shape and the list of
slices; each slice's bytes live under `slice_key(name, extents)` (TensorFlow's OrderedCode
encoding, which starts with a 0 byte so slice keys sort before every name).

Writing is split so that each parameter-server task can write its own shard from its own memory
and one writer merges the index last (TensorFlow's MergeV2Checkpoints):

    entries = write_data_file(data_path, [(name, array), ...], shard_id=k)   # on PS task k
    write_index(P + ".index", merged_entries, num_shards=n)                   # last, once

Speed: tensors are written from their own buffers (no copy) in CHUNK-sized pieces, each
CRC'd just before it is written (while it is in cache); a helper thread fdatasyncs the file
every FLUSH_EVERY bytes, so the disk writes back while later tensors are still being copied,
and the final fsync waits only for the tail. Reading (`BundleReader`, in
devices/bundle_reader.py, re-exported here) goes straight into the result array (`preadv`), or
into the caller's existing buffer (`read_into`: a restore over initialized
variables, whose pages need no faulting in), and for tensors of PIPELINE_BYTES or more a
helper thread reads chunk i+1 while the caller CRCs chunk i (the `crc32c` package releases
the GIL on large buffers).

Reading verifies each tensor's CRC32C: a truncated or bit-flipped file raises `DataLossError`
naming the file and the tensor, never returns wrong values. `verify(name)` checks a piece
without keeping its bytes (a two-chunk ring buffer), so a restore can check everything before
it writes anything; inside `with reader.pinned():` the data files stay open, and a later
`read_into(..., verified=True)` copies the bytes that were checked without a second CRC.
`BundleReader.read(name, extents)` reads only the stored pieces a requested slice overlaps
(byte ranges with `os.pread`), so a task restoring a few variables of a large checkpoint reads
only those bytes (a piece stored whole is read whole: its CRC covers all of it).

    BundleWriter("/tmp/m.ckpt").add("w", np.ones((2, 3), np.float32)).finish()
    BundleReader("/tmp/m.ckpt").read("w")  # array([[1., 1., 1.], [1., 1., 1.]], float32)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from devices import bundle_protos as bp
from devices import sstable
from devices.dtypes import as_dtype
from devices.errors import DataLossError, InvalidArgumentError, UnimplementedError

CHUNK = 1 << 20  # bytes per read/write call: each chunk's CRC reads it while it is in L2
PIPELINE_BYTES = 8 << 20  # tensors this large are read on a helper thread, CRC'd on this one
FLUSH_EVERY = 64 << 20  # a data file's writeback starts each time this much more was written
# An extent per dimension: (start, length), length -1 meaning the whole dimension.
Extents = Sequence[tuple[int, int]]


def data_path(prefix: str, shard_id: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


def index_path(prefix: str) -> str:
    return f"{prefix}.index"


# ---- OrderedCode, as TensorFlow's checkpoint::EncodeTensorNameSlice uses it -------------------

def _num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _signed_num_increasing(value: int) -> bytes:
    x = ~value if value < 0 else value
    length = min(x.bit_length() // 7 + 1, 10)
    raw = (value & ((1 << (8 * length)) - 1)).to_bytes(length, "big")
    header = ((1 << length) - 1) << (8 * length - length)
    return (int.from_bytes(raw, "big") ^ header).to_bytes(length, "big")


def _string(value: bytes) -> bytes:
    out = bytearray()
    for b in value:
        out += b"\x00\xff" if b == 0 else b"\xff\x00" if b == 0xFF else bytes([b])
    return bytes(out) + b"\x00\x01"


def slice_key(name: str, extents: Extents) -> bytes:
    """The table key of one stored slice of `name` (EncodeTensorNameSlice)."""
    out = _num_increasing(0) + _string(name.encode()) + _num_increasing(len(extents))
    for start, length in extents:
        out += _signed_num_increasing(start) + _signed_num_increasing(length)
    return out


# ---- entries ---------------------------------------------------------------------------------

def _shape_proto(shape: Sequence[int]):
    return bp.TensorShapeProto(dim=[bp.TensorShapeProto.Dim(size=int(d)) for d in shape])


def _dtype_enum(arr: np.ndarray, name: str) -> int:
    try:
        enum = bp.DTYPE_TO_ENUM[as_dtype(arr.dtype).name]
    except (InvalidArgumentError, KeyError):
        raise UnimplementedError(f"cannot checkpoint tensor '{name}' of dtype {arr.dtype}; "
                                 f"supported: {', '.join(bp.DTYPE_TO_ENUM)}") from None
    return enum


def _slice_proto(extents: Extents):
    out = bp.TensorSliceProto()
    for start, length in extents:
        e = out.extent.add()
        if length != -1:
            e.start = start
            e.length = length
    return out


def extents_of(proto, shape: Sequence[int]) -> list[tuple[int, int]]:
    out = []
    for d, e in enumerate(proto.extent):
        out.append((e.start, e.length) if e.HasField("length") else (0, shape[d]))
    out.extend((0, shape[d]) for d in range(len(proto.extent), len(shape)))
    return out


def write_data_file(path: str, tensors: Iterable[tuple[str | bytes, np.ndarray]],
                    shard_id: int = 0, *, fsync: bool = True) -> dict[bytes, bytes]:
    """Write the tensors' bytes to one data file; return {key: serialized BundleEntryProto}.

    Keys are names (str) or already-encoded slice keys (bytes). Arrays are written from their
    own buffers when C-contiguous (no copy)."""
    entries: dict[bytes, bytes] = {}
    offset = 0
    with open(path, "wb", buffering=0) as f, _Flusher(f.fileno(), fsync) as flusher:
        for key, arr in tensors:
            kb = key.encode() if isinstance(key, str) else key
            arr = np.asarray(arr)
            if arr.dtype.kind in "OSU":  # strings: TensorFlow's own layout, see _string_bytes
                data, crc = _string_bytes(arr, kb.decode(errors="replace"))
                f.write(data)
                entries[kb] = bp.BundleEntryProto(
                    dtype=bp.DT_STRING, shape=_shape_proto(arr.shape), shard_id=shard_id,
                    offset=offset, size=len(data), crc32c=sstable.mask_crc(crc)
                ).SerializeToString()
                offset += len(data)
                continue
            enum = _dtype_enum(arr, kb.decode(errors="replace"))
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            if not arr.flags.c_contiguous:
                arr = np.array(arr, order="C")
            buf = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
            crc = 0
            for start in range(0, len(buf), CHUNK):  # CRC each chunk while it is in cache
                chunk = buf[start:start + CHUNK]
                crc = sstable.crc32c(chunk, crc)
                written = 0
                while written < len(chunk):
                    written += f.write(chunk[written:])
                flusher.wrote(len(chunk))
            entries[kb] = bp.BundleEntryProto(
                dtype=enum, shape=_shape_proto(arr.shape), shard_id=shard_id, offset=offset,
                size=len(buf), crc32c=sstable.mask_crc(crc)).SerializeToString()
            offset += len(buf)
    return entries


class _Flusher:
    """Overlaps a data file's writeback with the writing of the rest of it: after every
    FLUSH_EVERY bytes, a helper thread runs fdatasync, so the disk is busy while later
    tensors are still being checksummed and copied into the page cache (instead of all the
    bytes waiting for one fsync at the end). Leaving the block fsyncs what remains and
    re-raises an error the helper met. Python has no sync_file_range; fdatasync on a thread
    does the same job here, and it releases the GIL while it waits."""

    def __init__(self, fd: int, enabled: bool):
        self.fd, self.enabled = fd, enabled
        self._pending = 0
        self._wake = threading.Event()
        self._done = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Flusher:
        return self

    def wrote(self, n: int) -> None:
        if not self.enabled:
            return
        self._pending += n
        if self._pending >= FLUSH_EVERY:
            self._pending = 0
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="checkpoint-flush")
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            try:
                os.fdatasync(self.fd)
            except OSError as e:
                self._error = e
                return

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._thread is not None:
            self._done = True
            self._wake.set()
            self._thread.join()
        if exc_type is None and self.enabled:
            if self._error is not None:
                raise self._error
            os.fsync(self.fd)


# ---- string tensors (TensorFlow's WriteStringTensor layout) ----------------------------------
# [varint64 len_0 .. len_n-1][uint32 masked CRC of the lengths][bytes_0 .. bytes_n-1]; the
# entry's CRC covers each length (as a 4-byte little-endian integer, 8 bytes past 4 GiB), the
# length checksum and the bytes.

def _len_crc(crc: int, n: int) -> int:
    return sstable.crc32c(n.to_bytes(4 if n <= 0xFFFFFFFF else 8, "little"), crc)


def _string_bytes(arr: np.ndarray, name: str) -> tuple[bytes, int]:
    items = []
    for x in arr.reshape(-1):
        if isinstance(x, str | np.str_):
            x = x.encode()
        if not isinstance(x, bytes | np.bytes_):
            raise InvalidArgumentError(f"string tensor '{name}' holds {type(x).__name__}; "
                                       f"only bytes or str can be checkpointed")
        items.append(bytes(x))
    lengths = bytearray()
    crc = 0
    for b in items:
        sstable.put_varint(lengths, len(b))
        crc = _len_crc(crc, len(b))
    check = sstable.mask_crc(crc).to_bytes(4, "little")
    crc = sstable.crc32c(check, crc)
    body = b"".join(items)
    return bytes(lengths) + check + body, sstable.crc32c(body, crc)


def parse_strings(raw: bytes, count: int, shape: tuple, stored_crc: int, where: str
                   ) -> np.ndarray:
    pos, crc, lens = 0, 0, []
    try:
        for _ in range(count):
            n, pos = sstable.get_varint(raw, pos)
            lens.append(n)
            crc = _len_crc(crc, n)
        check = raw[pos:pos + 4]
        if len(check) < 4 or int.from_bytes(check, "little") != sstable.mask_crc(crc):
            raise ValueError("length checksum mismatch")
        crc = sstable.crc32c(check, crc)
        pos += 4
        if pos + sum(lens) != len(raw):
            raise ValueError("lengths do not add up to the stored size")
    except (IndexError, ValueError) as e:
        raise DataLossError(f"string {where} is corrupt ({e})") from None
    if sstable.mask_crc(sstable.crc32c(raw[pos:], crc)) != stored_crc:
        raise DataLossError(f"checksum mismatch for string {where}; the checkpoint is corrupt")
    out = np.empty(count, dtype=object)
    for i, n in enumerate(lens):
        out[i] = raw[pos:pos + n]
        pos += n
    return out.reshape(shape)


def full_entry(dtype: np.dtype, full_shape: Sequence[int], slices: Iterable[Extents]) -> bytes:
    """The entry of a partitioned tensor's full name: dtype, shape and its stored slices."""
    enum = bp.DTYPE_TO_ENUM[as_dtype(np.dtype(dtype)).name]
    return bp.BundleEntryProto(dtype=enum, shape=_shape_proto(full_shape),
                               slices=[_slice_proto(s) for s in slices]).SerializeToString()


def merge_entries(parts: Iterable[dict[bytes, bytes]]) -> dict[bytes, bytes]:
    """Merge several shards' entries: entries for the same full tensor join their slices."""
    merged: dict[bytes, bytes] = {}
    for part in parts:
        for key, value in part.items():
            if key in merged:
                a, b = bp.BundleEntryProto(), bp.BundleEntryProto()
                a.ParseFromString(merged[key])
                b.ParseFromString(value)
                if not a.slices or not b.slices or a.dtype != b.dtype or a.shape != b.shape:
                    raise InvalidArgumentError(f"tensor '{key.decode(errors='replace')}' is "
                                               f"saved twice; give every variable one name")
                a.slices.extend(b.slices)
                merged[key] = a.SerializeToString()
            else:
                merged[key] = value
    return merged


def write_index(path: str, entries: dict[bytes, bytes], num_shards: int, *,
                fsync: bool = True) -> None:
    """Write the `.index` table (header first) through a temporary name, then rename."""
    header = bp.BundleHeaderProto(num_shards=num_shards, endianness=bp.LITTLE_ENDIAN,
                                  version=bp.VersionDef(producer=bp.BUNDLE_VERSION))
    table = sstable.TableWriter()
    table.add(b"", header.SerializeToString())
    for key in sorted(entries):
        if key == b"":
            raise InvalidArgumentError("a tensor may not have an empty name")
        table.add(key, entries[key])
    tmp = f"{path}.tempstate{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(table.finish())
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)


class BundleWriter:
    """A single-shard checkpoint written by one process (tests, tools, the fixture path)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._tensors: list[tuple[bytes, np.ndarray]] = []
        self._full: dict[str, tuple[np.dtype, tuple[int, ...], list[Extents]]] = {}

    def add(self, name: str, array: np.ndarray) -> BundleWriter:
        self._tensors.append((name.encode(), np.asarray(array)))
        return self

    def add_slice(self, name: str, full_shape: Sequence[int], extents: Extents,
                  array: np.ndarray) -> BundleWriter:
        arr = np.asarray(array)
        dtype, shape, slices = self._full.setdefault(name, (arr.dtype, tuple(full_shape), []))
        slices.append(list(extents))
        self._tensors.append((slice_key(name, extents), arr))
        return self

    def finish(self) -> str:
        entries = write_data_file(data_path(self.prefix, 0, 1), self._tensors)
        for name, (dtype, shape, slices) in self._full.items():
            entries[name.encode()] = full_entry(dtype, shape, slices)
        write_index(index_path(self.prefix), entries, 1)
        return self.prefix


# the reading half: devices/bundle_reader.py (imports this module's format helpers)
from devices.bundle_reader import BundleReader  # noqa: E402,F401
