"""Same-host tensor payloads through shared memory, beside the ZeroMQ message that names them.

Why: between two processes of one machine, a large tensor sent over TCP loopback is copied
into the kernel, through the TCP stack and out again, with a wake-up per socket buffer's
worth (a 5 MiB tensor: 1.3-3 ms on a 2-vCPU VM). Through a shared segment it is one copy in
and one copy out (~0.3 ms each). The message still goes over ZeroMQ; it carries a small
descriptor instead of the tensor frame. Only peers on a loopback address use it, so both
ends surely see the same /dev/shm.

What it owns
------------
- `SegmentPool` (the sender's, one per peer): segments in /dev/shm named
  ``af<pid>x<32 hex digits>`` (128 random bits: unguessable; created ``O_EXCL`` with mode
  0600, so only this user can open one), each mapped once and reused: `put` copies an array
  into a free one (creating one while under ``max_bytes``) and marks it busy until the
  receiver reports it copied out (`free`); `close` unmaps and unlinks them all. A segment
  whose release never comes (the receiver died) stays busy, so the pool only shrinks what it
  can offer: `put` returns None and the caller sends the tensor over the socket instead.
- `SegmentReader` (the receiver's): a bounded cache of mapped segments by name; `take`
  checks a descriptor (name pattern, allowlisted dtype, shape, size against the segment and
  the limits) and copies the tensor out into a buffer the caller provides.
- `reap_orphans`: unlinks segments left by processes that died without closing their pool.

Descriptor (msgpack-able): ``[name, dtype name, shape, nbytes]``. Nothing is pickled.

    pool = SegmentPool(max_bytes=256 << 20)
    desc = pool.put(array)                  # None: no room, send the frame instead
    ...                                     # the receiver, in another process:
    out = reader.take(desc, limits, np.empty)   # then tells the sender: pool.free(desc[0])
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError, NotFoundError
from transport.codec import WIRE_DTYPES, Limits, wire_name

SHM_DIR = "/dev/shm"
_NAME = re.compile(r"af(\d{1,10})x[0-9a-f]{32}")
_ALIGN = 1 << 16  # segment sizes are rounded up to this


def available() -> bool:
    """Whether this machine has a POSIX shared-memory directory to put segments in."""
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


class _Segment:
    __slots__ = ("name", "size", "mm", "busy")

    def __init__(self, name: str, size: int, mm: mmap.mmap):
        self.name = name
        self.size = size
        self.mm = mm
        self.busy = False


class SegmentPool:
    """The sender's segments for one peer (see the module docstring)."""

    def __init__(self, max_bytes: int = 256 << 20, max_segments: int = 64):
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self._segments: dict[str, _Segment] = {}
        self._bytes = 0
        self.puts = 0
        self.fallbacks = 0  # puts refused (no free segment and no room for one)

    def put(self, array: np.ndarray) -> list | None:
        """Copy `array` into a free segment and return its descriptor, or None when there is
        none and no room for another (or the array's dtype cannot travel)."""
        name_of = wire_name(array.dtype)
        if name_of is None:
            return None
        nbytes = array.nbytes
        seg = self._free_segment(nbytes)
        if seg is None:
            self.fallbacks += 1
            return None
        dst = np.ndarray(array.shape, array.dtype, buffer=seg.mm)
        np.copyto(dst, array)
        del dst
        seg.busy = True
        self.puts += 1
        return [seg.name, name_of, list(array.shape), nbytes]

    def free(self, name: str) -> bool:
        """The receiver copied segment `name` out: it may be written again."""
        seg = self._segments.get(name)
        if seg is None or not seg.busy:
            return False
        seg.busy = False
        return True

    def _free_segment(self, nbytes: int) -> _Segment | None:
        best = None
        for seg in self._segments.values():
            if not seg.busy and nbytes <= seg.size <= 2 * max(nbytes, _ALIGN) and (
                    best is None or seg.size < best.size):
                best = seg
        if best is not None:
            return best
        size = max(_ALIGN, -(-nbytes // _ALIGN) * _ALIGN)
        if self._bytes + size > self.max_bytes or len(self._segments) >= self.max_segments:
            return None
        name = f"af{os.getpid()}x{secrets.token_hex(16)}"
        path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except OSError:
            return None
        try:
            # Reserve the pages now: on a full /dev/shm (a container's 64 MB, say) this fails
            # here with ENOSPC, where writing a sparse file's pages later would be a SIGBUS.
            fallocate = getattr(os, "posix_fallocate", None)
            if fallocate is None:  # no way to reserve the pages: use the socket
                raise OSError("os.posix_fallocate is not available here")
            fallocate(fd, 0, size)
            mm = mmap.mmap(fd, size)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        finally:
            os.close(fd)
        seg = self._segments[name] = _Segment(name, size, mm)
        self._bytes += size
        return seg

    @property
    def busy(self) -> int:
        return sum(seg.busy for seg in self._segments.values())

    def close(self) -> None:
        """Unmap and unlink every segment (a receiver's mapping stays valid until it unmaps)."""
        for seg in self._segments.values():
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(SHM_DIR, seg.name))
            with contextlib.suppress(BufferError, ValueError):
                seg.mm.close()
        self._segments.clear()
        self._bytes = 0


class SegmentReader:
    """The receiver's mapped segments, by name: at most `max_open` of them and `max_bytes`
    together, the least recently used unmapped first (a mapping keeps a segment's memory
    alive after its sender unlinked it)."""

    def __init__(self, max_open: int = 256, max_bytes: int = 1 << 30):
        self.max_open = max_open
        self.max_bytes = max_bytes
        self._open: OrderedDict[str, mmap.mmap] = OrderedDict()
        self._bytes = 0

    def take(self, desc: Any, limits: Limits,
             alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray]) -> np.ndarray:
        """The tensor `desc` describes, copied into ``alloc(shape, dtype)``. Raises
        InvalidArgument for a malformed descriptor, NotFound for a segment that is not there."""
        if not (isinstance(desc, list) and len(desc) == 4):
            raise InvalidArgumentError(
                f"shared-memory descriptor {str(desc)[:80]} is not [name, dtype, shape, nbytes]")
        name, dt_name, shape, nbytes = desc
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidArgumentError(f"shared-memory segment name {str(name)[:40]!r} is not "
                                       "one actorflow makes (af<pid>x<32 hex digits>)")
        dt = WIRE_DTYPES.get(dt_name) if isinstance(dt_name, str) else None
        if dt is None:
            raise InvalidArgumentError(f"shared-memory tensor has dtype {str(dt_name)[:20]!r}, "
                                       "which is not allowed on the wire")
        if (not isinstance(shape, list) or len(shape) > limits.max_ndim
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise InvalidArgumentError(f"shared-memory tensor shape {str(shape)[:60]} is not a "
                                       f"list of at most {limits.max_ndim} sizes")
        want = math.prod(shape) * dt.itemsize
        if type(nbytes) is not int or nbytes != want or want > limits.max_tensor_bytes:
            raise InvalidArgumentError(
                f"shared-memory tensor {dt_name}{shape} needs {want} bytes, the descriptor says "
                f"{nbytes} (limit {limits.max_tensor_bytes})")
        mm = self._map(name)
        if want > len(mm):
            raise InvalidArgumentError(
                f"shared-memory segment {name} holds {len(mm)} bytes, the tensor needs {want}")
        out = alloc(tuple(shape), np.dtype(dt))
        src = np.ndarray(tuple(shape), dt, buffer=mm)
        np.copyto(out, src)
        return out

    def _map(self, name: str) -> mmap.mmap:
        mm = self._open.get(name)
        if mm is not None:
            self._open.move_to_end(name)
            return mm
        try:
            fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
        except OSError as e:
            raise NotFoundError(f"shared-memory segment {name} is not there ({e.strerror}); "
                                "its sender is gone or not on this host") from None
        try:
            st = os.fstat(fd)
            if st.st_uid != os.getuid():  # planted by another user: never read it
                raise InvalidArgumentError(
                    f"shared-memory segment {name} belongs to uid {st.st_uid}, not this user")
            size = st.st_size
            if size == 0:
                raise InvalidArgumentError(f"shared-memory segment {name} is empty")
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._open[name] = mm
        self._bytes += size
        while len(self._open) > 1 and (len(self._open) > self.max_open
                                       or self._bytes > self.max_bytes):
            _, old = self._open.popitem(last=False)
            self._bytes -= len(old)
            with contextlib.suppress(BufferError, ValueError):
                old.close()
        return mm

    def close(self) -> None:
        for mm in self._open.values():
            with contextlib.suppress(BufferError, ValueError):
                mm.close()
        self._open.clear()
        self._bytes = 0


def reap_orphans() -> int:
    """Unlink segments of this user whose creating process is gone (it died without closing
    its pool). Returns how many. (Processes in another PID namespace sharing this /dev/shm
    would look dead: give such setups ``shm_min_bytes=0``.)"""
    n = 0
    uid = os.getuid()
    with contextlib.suppress(OSError):
        for entry in os.scandir(SHM_DIR):
            m = _NAME.fullmatch(entry.name)
            if m is None or _alive(int(m.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid != uid:
                    continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
