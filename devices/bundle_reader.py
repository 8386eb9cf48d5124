"""Reading TensorFlow's V2 checkpoints (the format and the writing half: devices/tensor_bundle.py,
which re-exports `BundleReader`): a checkpoint's entries at open, tensor bytes on demand, every
tensor's CRC32C verified.

    r = BundleReader(prefix)
    r.read("w")                       # the whole tensor, or r.read("w", extents) a slice of it
    r.read_into("w", buf)             # straight into an existing buffer of its shape
    with r.pinned():                  # data files kept open: verify everything, then copy
        r.verify("w"); r.read_into("w", buf, verified=True)

Reads go straight into the result array (`preadv`, chunk by chunk, each chunk CRC'd while in
cache; for tensors of PIPELINE_BYTES or more a helper thread reads chunk i+1 while this one
checksums chunk i). `verify` checks a piece through a two-chunk ring buffer without keeping its
bytes, so a restore can check every piece before it writes any.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from devices import bundle_protos as bp
from devices import sstable
from devices import tensor_bundle as tb
from devices.dtypes import as_dtype
from devices.errors import DataLossError, InvalidArgumentError, NotFoundError, UnimplementedError

__all__ = ["BundleReader"]


class BundleReader:
    """Reads a checkpoint: its entries at open, tensor bytes on demand, checksums verified."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        path = tb.index_path(prefix)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFoundError(f"no checkpoint at '{prefix}': '{path}' does not exist; pass "
                                f"the prefix a Saver returned (or latest_checkpoint(dir))"
                                ) from None
        self.entries: dict[bytes, object] = {}
        header = None
        for key, value in sstable.read_table(raw, path):
            if key == b"":
                header = bp.BundleHeaderProto()
                header.ParseFromString(value)
                continue
            entry = bp.BundleEntryProto()
            try:
                entry.ParseFromString(value)
            except Exception as e:
                raise DataLossError(f"checkpoint index '{path}': entry of tensor "
                                    f"'{key.decode(errors='replace')}' does not parse") from e
            self.entries[key] = entry
        if header is None:
            raise DataLossError(f"checkpoint index '{path}' has no header entry")
        if header.endianness != bp.LITTLE_ENDIAN:
            raise UnimplementedError(f"checkpoint '{prefix}' is big-endian")
        self.num_shards = header.num_shards
        self._fds: dict[str, int] | None = None  # open data files while `pinned`

    @contextlib.contextmanager
    def pinned(self) -> Iterator[BundleReader]:
        """Keep each data file open from its first read to the end of the block, so that
        every read in it sees the same file (one that is renamed over or unlinked meanwhile
        stays readable): `verify` then `read_into(..., verified=True)` read the same bytes."""
        self._fds = {}
        try:
            yield self
        finally:
            fds, self._fds = self._fds, None
            for fd in fds.values():
                os.close(fd)

    # -- metadata ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The tensors' names (slice keys, which start with a 0 byte, left out)."""
        return [k.decode() for k in self.entries if not k.startswith(b"\x00")]

    def _entry(self, name: str):
        entry = self.entries.get(name.encode())
        if entry is None:
            near = ", ".join(sorted(self.names())[:20])
            raise NotFoundError(f"tensor '{name}' is not in checkpoint '{self.prefix}'; it "
                                f"holds: {near}")
        return entry

    def shape(self, name: str) -> list[int]:
        return [d.size for d in self._entry(name).shape.dim]

    def dtype(self, name: str) -> np.dtype:
        enum = self._entry(name).dtype
        if enum == bp.DT_STRING:
            return np.dtype(object)
        if enum not in bp.ENUM_TO_DTYPE:
            raise UnimplementedError(f"tensor '{name}' in checkpoint '{self.prefix}' has "
                                     f"TensorFlow dtype enum {enum}, which actorflow cannot read")
        return as_dtype(bp.ENUM_TO_DTYPE[enum]).np

    # -- data ----------------------------------------------------------------------------------
    def _read_stored(self, key: bytes, name: str, out: np.ndarray | None = None, *,
                     checksum: bool = True):
        entry = self.entries[key]
        shape = tuple(d.size for d in entry.shape.dim)
        path = tb.data_path(self.prefix, entry.shard_id, self.num_shards)
        if entry.dtype == bp.DT_STRING:
            raw = np.empty(entry.size, np.uint8)
            self._read_bytes(path, entry, memoryview(raw), name)
            return tb.parse_strings(raw.tobytes(), int(np.prod(shape)), shape, entry.crc32c,
                                  f"tensor '{name}' in data file '{path}'")
        if out is None:
            out = np.empty(shape, as_dtype(bp.ENUM_TO_DTYPE[entry.dtype]).np)
        view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
        if len(view) != entry.size:
            raise DataLossError(f"tensor '{name}' in '{path}': the index says {entry.size} "
                                f"bytes, but its dtype and shape need {len(view)}")
        crc = self._read_bytes(path, entry, view, name, checksum=checksum)
        if checksum:
            self._check_crc(crc, entry, name, path)
        return out

    def _check_crc(self, crc: int, entry: Any, name: str, path: str) -> None:
        if sstable.mask_crc(crc) != entry.crc32c:
            raise DataLossError(f"checksum mismatch for tensor '{name}' in data file '{path}' "
                                f"(offset {entry.offset}, {entry.size} bytes); the checkpoint "
                                f"is corrupt")

    def _open(self, path: str, name: str) -> int:
        fd = None if self._fds is None else self._fds.get(path)
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise DataLossError(f"data file '{path}' of checkpoint '{self.prefix}' is "
                                    f"missing (needed for tensor '{name}')") from None
            if self._fds is not None:
                self._fds[path] = fd
        return fd

    def _read_bytes(self, path: str, entry: Any, view: memoryview, name: str, *,
                    checksum: bool = True) -> int:
        """Read the entry's bytes into `view`; return their (unmasked) CRC32C (0 without
        `checksum`). A `view` shorter than the entry is a ring of two CHUNKs that each chunk
        overwrites in turn (`verify`: the checksum without keeping the bytes).

        Chunk by chunk, each CRC'd right after it arrived (while it is in cache); for a large
        tensor a helper thread reads chunk i+1 while this one checksums chunk i (both release
        the GIL), so where a core is free the checksum costs no time."""
        fd = self._open(path, name)
        ring = len(view)

        def fill(start: int) -> int:  # chunk [start, start + tb.CHUNK) of the tensor, in full
            end = min(start + tb.CHUNK, entry.size)
            got = start
            while got < end:
                n = os.preadv(fd, [view[got % ring:(got % ring) + end - got]],
                              entry.offset + got)
                if n == 0:
                    raise DataLossError(
                        f"data file '{path}' is truncated: tensor '{name}' needs bytes "
                        f"{entry.offset}..{entry.offset + entry.size}")
                got += n
            return end

        def crc_of(start: int, end: int, crc: int) -> int:
            return sstable.crc32c(view[start % ring:(start % ring) + end - start], crc)

        crc = 0
        try:
            if not checksum or entry.size < tb.PIPELINE_BYTES:
                start = 0
                while start < entry.size:
                    end = fill(start)
                    if checksum:
                        crc = crc_of(start, end, crc)
                    start = end
                return crc
            with ThreadPoolExecutor(1, thread_name_prefix="checkpoint-read") as reader:
                pending = reader.submit(fill, 0)
                start = 0
                while start < entry.size:
                    end = pending.result()
                    if end < entry.size:
                        pending = reader.submit(fill, end)
                    crc = crc_of(start, end, crc)
                    start = end
            return crc
        finally:
            if self._fds is None:
                os.close(fd)

    def verify(self, name: str, extents: tb.Extents | None = None) -> None:
        """Check the CRC32C of the one stored piece of tensor `name` (or its slice `extents`,
        see `piece`) without keeping its bytes: DataLossError on a mismatch or a short file.
        Read through a reused two-chunk buffer, so it allocates and faults in almost nothing;
        a restore verifies every piece first and writes only when all are sound."""
        key = self.piece(name, extents)
        if key is None:
            raise InvalidArgumentError(f"tensor '{name}' is not stored as one piece in "
                                       f"checkpoint '{self.prefix}'; read it with read()")
        entry = self.entries[key]
        path = tb.data_path(self.prefix, entry.shard_id, self.num_shards)
        if entry.size == 0:
            crc = 0
        else:
            ring = np.empty(min(entry.size, 2 * tb.CHUNK), np.uint8)
            crc = self._read_bytes(path, entry, memoryview(ring), name)
        self._check_crc(crc, entry, name, path)

    def piece(self, name: str, extents: tb.Extents | None = None) -> bytes | None:
        """The key of the one stored piece that is exactly tensor `name` (or its slice
        `extents`): the whole tensor, or a slice saved with these extents (TensorFlow's "-"
        spelling of a whole dimension included); None when it would have to be assembled."""
        entry = self._entry(name)
        if entry.dtype == bp.DT_STRING:
            return None
        full_shape = [d.size for d in entry.shape.dim]
        want = [(0, n) for n in full_shape] if extents is None else [
            (s, full_shape[d] if n == -1 else n) for d, (s, n) in enumerate(extents)]
        if want == [(0, n) for n in full_shape] and not entry.slices:
            return name.encode()
        for key in (tb.slice_key(name, want),
                    tb.slice_key(name, [(0, -1) if (s, n) == (0, full_shape[d]) else (s, n)
                                     for d, (s, n) in enumerate(want)])):
            stored = self.entries.get(key)
            if stored is not None and [d.size for d in stored.shape.dim] == [n for _, n in want]:
                return key
        return None

    def read_into(self, name: str, out: np.ndarray, extents: tb.Extents | None = None, *,
                  verified: bool = False) -> bool:
        """Read the tensor `name` (or its slice `extents`) straight into `out`, a C-contiguous
        array of its dtype and shape, when it is stored as one piece (`piece`); return False,
        reading nothing, when it is not (then `read` assembles it). Checksum verified, unless
        `verified` says `verify` already checked these bytes (in the same `pinned` block): on
        a DataLossError `out` holds partial bytes."""
        key = self.piece(name, extents)
        if key is None or not out.flags.c_contiguous or out.dtype != self.dtype(name) or \
                list(out.shape) != [d.size for d in self.entries[key].shape.dim]:
            return False
        self._read_stored(key, name, out, checksum=not verified)
        return True

    def read(self, name: str, extents: tb.Extents | None = None) -> np.ndarray:
        """The tensor `name`, or the slice `extents` of it; assembles partitioned tensors."""
        entry = self._entry(name)
        full_shape = [d.size for d in entry.shape.dim]
        want = [(0, n) for n in full_shape] if extents is None else [
            (s, full_shape[d] if n == -1 else n) for d, (s, n) in enumerate(extents)]
        if not entry.slices:
            arr = self._read_stored(name.encode(), name)
            if extents is None:
                return arr
            # a slice of a tensor stored whole (its CRC covers all of it, so all is read):
            # copied, so the caller owns a compact buffer, not a view pinning the whole
            return arr[tuple(slice(s, s + n) for s, n in want)].copy()
        dtype = as_dtype(bp.ENUM_TO_DTYPE[entry.dtype]).np
        out = np.empty([n for _, n in want], dtype)
        covered = 0
        for sp in entry.slices:
            have = tb.extents_of(sp, full_shape)
            lo = [max(s, hs) for (s, _), (hs, _) in zip(want, have, strict=True)]
            hi = [min(s + n, hs + hn) for (s, n), (hs, hn) in zip(want, have, strict=True)]
            if any(a >= b for a, b in zip(lo, hi, strict=True)) and out.size:
                continue
            key = tb.slice_key(name, [(s, n) if sp.extent[d].HasField("length") else (0, -1)
                                   for d, (s, n) in enumerate(have)])
            if key not in self.entries:
                raise DataLossError(f"checkpoint '{self.prefix}' lists a slice of '{name}' "
                                    f"that it does not store")
            piece = self._read_stored(key, name)
            src = tuple(slice(a - hs, b - hs) for a, b, (hs, _) in zip(lo, hi, have, strict=True))
            dst = tuple(slice(a - s, b - s) for a, b, (s, _) in zip(lo, hi, want, strict=True))
            out[dst] = piece[src]
            covered += int(np.prod([b - a for a, b in zip(lo, hi, strict=True)]))
        if covered < out.size:
            raise NotFoundError(f"the stored slices of '{name}' in '{self.prefix}' do not cover "
                                f"the requested slice {list(want)}")
        return out
