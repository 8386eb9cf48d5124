"""One connection of a Unix-domain stream socket (`transport.unix_stream`): the framing.

What it owns: one connected socket, its reader (run as a task by its owner, a
`StreamRouter` or `StreamDealer`), and its queue of unsent bytes. The framing, the limits
checked before anything is allocated and the threading rule are the owner module's
docstring; this module is its mechanics.

State: the receive buffer and the partly parsed message (locals of `read`), ``out``/``ends``
(unsent views, and for each queued message the views left until its end), ``writing`` (a
flush task runs), ``closed``; ``lock`` orders the loop's sends with another thread's
(`send_from_thread`) and with closing.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import trio

from devices.errors import UnavailableError

if TYPE_CHECKING:
    from transport.unix_stream import _StreamSocket

_BIG = 64 * 1024  # frames this large are received into a buffer of their own
_BUF = 256 * 1024  # the shared receive buffer
_IOV = 512  # views per sendmsg (the kernel's IOV_MAX is 1024)
_SNDBUF = 4 << 20  # bytes the kernel may hold unread per direction (its default, ~208 KiB,
#                    makes a large tensor cross in ~200 KiB steps, each a pair of wake-ups)
_COUNT = struct.Struct("<I")
_PREFIX = [struct.Struct(f"<I{n}Q") for n in range(9)]  # count + lengths, for few frames
_LENGTHS = [struct.Struct(f"<{n}Q") for n in range(9)]


class Conn:
    """One connected stream: its reader (run as a task) and its queue of unsent bytes."""

    def __init__(self, owner: _StreamSocket, sock: socket.socket, peer: int | None) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # the kernel caps it (net.core.wmem_max)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
        self.owner = owner
        self.sock = sock
        self.peer = peer  # the router's name for it; None on a dealer
        self.out: deque[memoryview] = deque()  # unsent views; message ends are in `ends`
        self.ends: deque[int] = deque()  # for each queued message: views left until its end
        self.writing = False  # a flush task is running (or is about to)
        self.closed = False
        # Orders the sends of the loop and of other threads (`send_from_thread`) on this
        # socket, and its closing: the queue, `writing` and the fd change only holding it.
        self.lock = threading.Lock()

    # -- sending ---------------------------------------------------------------------------------

    def send_nowait(self, frames: Sequence[object]) -> None:
        """Queue one message, sending what the kernel takes now. `UnavailableError` once the
        connection is closed, `trio.WouldBlock` while ``sndhwm`` messages wait."""
        if self.closed:
            raise UnavailableError("the connection is closed")
        if len(self.ends) >= self.owner.config.sndhwm:
            raise trio.WouldBlock
        with self.lock:
            try:
                flush = self._send(frames)
            except OSError as exc:
                broken = exc
            else:
                broken = None
                self.owner._n_sent += 1
        if broken is not None:
            self.close()
            raise UnavailableError(f"the connection broke: {broken}") from None
        if flush:
            self.owner._nursery.start_soon(self._flush)

    def send_from_thread(self, frames: Sequence[object], token: trio.lowlevel.TrioToken) -> bool:
        """`send_nowait` from a thread other than the loop's, when nothing is queued ahead:
        True once the message is the kernel's (what it did not take yet, the loop's flush
        task sends). False, with nothing sent, when the connection is closed or busy."""
        with self.lock:
            if self.closed or self.out:
                return False
            try:
                flush = self._send(frames)
            except OSError:
                return False  # broken: the loop's own send finds out and closes it
            self.owner._n_sent += 1
            if flush:
                with contextlib.suppress(trio.RunFinishedError):  # the loop is gone: so is
                    token.run_sync_soon(self._start_flush)  # the connection
        return True

    def _start_flush(self) -> None:
        """(In the loop.) Start the flush task that a send from another thread asked for."""
        with contextlib.suppress(RuntimeError):  # the socket closed meanwhile (and with it
            self.owner._nursery.start_soon(self._flush)  # this connection): nothing to send

    def _send(self, frames: Sequence[object]) -> bool:
        """Hand one message to the kernel, queueing what it does not take (or all of it, behind
        a queue); True when a flush task must start. Holding ``lock``."""
        sizes = [len(f) if type(f) is bytes else _nbytes(f) for f in frames]
        prefix = _PREFIX[len(sizes)].pack(len(sizes), *sizes) if len(sizes) < len(_PREFIX) \
            else struct.pack(f"<I{len(sizes)}Q", len(sizes), *sizes)
        sent = 0
        if not self.out:
            try:
                if len(frames) < _IOV:
                    sent = self.sock.sendmsg([prefix, *frames])
                    if sent == len(prefix) + sum(sizes):
                        return False  # the usual case: the kernel took all of it
            except BlockingIOError:
                pass
        views = _skip([memoryview(prefix), *(_view(f) for f in frames)], sent)
        self.out.extend(views)
        self.ends.append(len(views))
        if self.writing:
            return False
        self.writing = True
        return True

    async def _flush(self) -> None:
        """Hand the queued views to the kernel as it takes them."""
        try:
            while True:
                with self.lock:
                    if not self.out or self.closed:
                        self.writing = False
                        break
                try:
                    await trio.lowlevel.wait_writable(self.sock)
                except trio.ClosedResourceError:
                    return
                with self.lock:
                    views = [self.out[i] for i in range(min(len(self.out), _IOV))]
                    try:
                        sent = self.sock.sendmsg(views)
                    except BlockingIOError:
                        continue
                    except OSError:
                        sent = -1
                    else:
                        self._consume(sent)
                if sent < 0:
                    self.close()
                    return
        finally:
            self.writing = False
            self.owner._changed_now()

    def _consume(self, sent: int) -> None:
        out, ends = self.out, self.ends
        while sent:
            v = out[0]
            if v.nbytes > sent:
                out[0] = v[sent:]
                return
            sent -= v.nbytes
            out.popleft()
            ends[0] -= 1
            if ends[0] == 0:
                ends.popleft()
        while out and out[0].nbytes == 0:  # empty frames at the head
            out.popleft()
            ends[0] -= 1
            if ends[0] == 0:
                ends.popleft()

    # -- receiving -------------------------------------------------------------------------------

    async def read(self) -> None:
        """Receive until the peer hangs up or breaks the framing; deliver every message."""
        owner = self.owner
        cfg = owner.config
        max_frames = cfg.max_frames
        max_bytes = cfg.max_frame_bytes if cfg.max_frame_bytes > 0 else 1 << 62
        max_total = cfg.max_message_bytes if cfg.max_message_bytes > 0 else 1 << 62
        max_first = cfg.first_frame_bytes if cfg.first_frame_bytes > 0 else 1 << 62
        deliver = owner._deliver
        recv_into = self.sock.recv_into
        wait = trio.lowlevel.wait_readable
        buf = bytearray(_BUF)
        view = memoryview(buf)
        start = end = 0  # unparsed bytes are buf[start:end]
        lengths: tuple[int, ...] = ()  # the frame lengths of the message being cut out
        frames: list[object] = []  # its frames so far; complete when as many as `lengths`
        big: np.ndarray | None = None  # a large frame being received into its own buffer
        filled = 0
        moved = 0
        try:
            while not self.closed:
                # Receive. A short read means the socket is drained: wait before the next.
                try:
                    if big is not None:
                        want = len(big) - filled
                        n = recv_into(big[filled:])
                    else:
                        if end == _BUF:  # compact: move the partial message to the front
                            view[:end - start] = view[start:end]
                            end -= start
                            start = 0
                        want = _BUF - end
                        n = recv_into(view[end:])
                except BlockingIOError:
                    n = want = -1
                except OSError:
                    return
                if n == 0:
                    return  # the peer hung up
                if n > 0:
                    if big is not None:
                        filled += n
                        if filled == len(big):
                            frames.append(big)
                            big = None
                    else:
                        end += n
                    # Cut out every complete message.
                    while big is None:
                        if not lengths:
                            if end - start < 12:  # a count and at least one length
                                break
                            (count,) = _COUNT.unpack_from(buf, start)
                            if not 0 < count <= max_frames:
                                owner._drop(self, f"a message of {count} frames (at most "
                                                  f"{max_frames})")
                                return
                            need = 4 + 8 * count
                            if end - start < need:
                                break
                            lengths = (_LENGTHS[count] if count < len(_LENGTHS)
                                       else struct.Struct(f"<{count}Q")).unpack_from(buf, start + 4)
                            # Every declared size is checked before a byte is allocated.
                            if max(lengths) > max_bytes:
                                owner._drop(self, f"a frame of {max(lengths)} bytes (at most "
                                                  f"{max_bytes})")
                                return
                            if lengths[0] > max_first or sum(lengths) > max_total:
                                owner._drop(self, f"a message of {sum(lengths)} bytes, first "
                                                  f"frame {lengths[0]} (at most {max_total}, "
                                                  f"{max_first})")
                                return
                            start += need
                        k = len(frames)
                        while k < len(lengths):
                            size = lengths[k]
                            if end - start >= size:
                                frames.append(view[start:start + size].tobytes())
                                start += size
                                k += 1
                            elif size >= _BIG and end - start >= _BIG:
                                # The rest goes straight into a buffer of its own, made once
                                # the peer has sent _BIG bytes of the frame (not on its word
                                # alone), with np.empty, not bytearray: no zero fill, so the
                                # declared pages cost memory only as the bytes arrive.
                                big = np.empty(size, np.uint8)
                                filled = end - start
                                big[:filled] = view[start:end]
                                start = end = 0
                                break
                            else:
                                break
                        if k < len(lengths):
                            break
                        msg, frames, lengths = frames, [], ()
                        deliver(self, msg)
                        if self.closed:  # the callback closed it (a reply hit a broken pipe)
                            return
                        moved += 1
                        if moved >= cfg.batch:
                            moved = 0
                            await trio.lowlevel.checkpoint()
                            if self.closed:
                                return
                    if start == end:
                        start = end = 0
                    if n == want:
                        continue  # the buffer was filled: there may be more right now
                moved = 0
                if self.closed:
                    return
                try:
                    await wait(self.sock)
                except trio.ClosedResourceError:
                    return
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self.lock:
            self.out.clear()
            self.ends.clear()
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()
        self.owner._closed_conn(self)


def _nbytes(frame: object) -> int:
    return frame.nbytes if type(frame) is np.ndarray else memoryview(frame).nbytes


def _view(frame: object) -> memoryview:
    v = memoryview(frame)
    return v if v.format == "B" and v.ndim == 1 else v.cast("B")


def _skip(views: list[memoryview], sent: int) -> list[memoryview]:
    """The views left once the kernel took `sent` bytes."""
    i = 0
    while i < len(views) and views[i].nbytes <= sent:
        sent -= views[i].nbytes
        i += 1
    rest = views[i:]
    if rest and sent:
        rest[0] = rest[0][sent:]
    return rest
