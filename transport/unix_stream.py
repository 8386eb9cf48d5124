"""Multipart messages over Unix-domain stream sockets, driven straight from trio.

Why: between two processes of one host, a ZeroMQ message wakes four threads (the sender's
libzmq I/O thread, the receiver's I/O thread, then the receiver's own) where a plain socket
wakes one: the receiver. On a small VM those wake-ups are most of a small message's cost (a
round trip here: ~210 us through libzmq's ``ipc://``, ~125 us through a Unix socket read
from trio). So peers on one host talk through these sockets (`transport.local_ipc` picks
them), and ZeroMQ stays the transport between hosts. The RPC layer above cannot tell them
apart: `StreamRouter` and `StreamDealer` have `ZSocket`'s surface (``bind``/``connect``,
``send_nowait``/``send``, an ``on_receive`` callback), the way ROUTER and DEALER behave.

Framing: a message of n frames is ``<u32 n> <u64 len> * n`` then the frames' bytes. The sender
hands the kernel the prefix and the frames in one ``sendmsg`` (no copy in Python); what the
kernel does not take stays queued on the connection, and later messages queue behind it, so
messages never interleave. The reader receives into one buffer and cuts the messages out of
it; a frame of ``_BIG`` bytes or more is received straight into a buffer of its own. A peer
that breaks the framing or the limits (more than ``max_frames`` frames, a frame over
``max_frame_bytes``) is disconnected, like libzmq's ``MAXMSGSIZE``; the socket carries on.

Addresses: ``unix://@name`` is Linux's abstract namespace (no file; gone with the process);
``unix:///path`` a file, removed when the router closes.

Behaviour matched to the ZeroMQ sockets they stand in for:
- a router names each connection by an int (ZeroMQ's peers are bytes), delivers
  ``[peer, *frames]``, and raises `UnavailableError` for a send to a peer that has gone
  (``ROUTER_MANDATORY``);
- a dealer connects in the background and reconnects every ``retry_interval`` after the
  connection is lost; until it is connected, ``send_nowait`` raises `trio.WouldBlock`
  (``IMMEDIATE``); messages queued on a lost connection are dropped, as libzmq drops them.
  Unlike libzmq, it says so (``on_lost``): the RPC client fails the calls that were in flight
  at once, where over ZeroMQ only the heartbeat finds out;
- ``send_nowait`` raises `trio.WouldBlock` while ``sndhwm`` messages are queued for the
  kernel on that connection; ``send`` waits instead.

State (touched only from the trio thread that entered the socket, with one exception): per
connection (`_Conn`) the receive buffer and the partly parsed message, the queue of unsent
views and how many messages it holds; per socket its connections and a `trio.Event` that wakes
waiting senders when a connection opens, drains or closes. The exception: a dealer's
`send_from_thread` lets another thread send a message the kernel can take at once, so that a
sync caller's request leaves without waiting for the loop to wake. Each connection's lock
orders those sends with the loop's and with its closing.

    async with StreamRouter(SocketConfig(), on_receive=print) as server:
        endpoint = server.bind("unix://@demo")
        async with StreamDealer(SocketConfig(), on_receive=print) as client:
            client.connect(endpoint)
            await client.send([b"hello"])      # the server prints [1, b"hello"]
"""

from __future__ import annotations

import abc
import contextlib
import os
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import trio

from devices.errors import InvalidArgumentError, OpError, UnavailableError
from transport.runtime_dir import ensure_private_dir, is_private_dir, peer_allowed, peer_uid
from transport.zsocket import SocketConfig

SCHEME = "unix://"
_BIG = 64 * 1024  # frames this large are received into a buffer of their own
_BUF = 256 * 1024  # the shared receive buffer
_IOV = 512  # views per sendmsg (the kernel's IOV_MAX is 1024)
_SNDBUF = 4 << 20  # bytes the kernel may hold unread per direction (its default, ~208 KiB,
#                    makes a large tensor cross in ~200 KiB steps, each a pair of wake-ups)
_COUNT = struct.Struct("<I")
_PREFIX = [struct.Struct(f"<I{n}Q") for n in range(9)]  # count + lengths, for few frames
_LENGTHS = [struct.Struct(f"<{n}Q") for n in range(9)]


def address_of(endpoint: str) -> str:
    """The socket address of ``unix://@name`` (abstract) or ``unix:///path``."""
    if not endpoint.startswith(SCHEME) or len(endpoint) == len(SCHEME):
        raise InvalidArgumentError(
            f"{endpoint!r} is not a Unix-socket endpoint: use 'unix://@name' (abstract) or "
            "'unix:///path'")
    rest = endpoint[len(SCHEME):]
    return "\0" + rest[1:] if rest.startswith("@") else rest


def listening(endpoint: str) -> bool:
    """Whether something listens on `endpoint` now (a connection is made and dropped)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(address_of(endpoint))
    except BlockingIOError:
        return True  # its backlog is full, but it is there
    except OSError:
        return False
    finally:
        probe.close()
    return True


@dataclass(frozen=True)
class StreamStatistics:
    messages_received: int
    messages_sent: int
    connections: int
    dropped_connections: int  # connections cut for breaking the framing or the limits, or
    #                           after an error reading them (see `last_drop`)


class _Conn:
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
                            elif size >= _BIG:  # the rest goes straight into its own buffer
                                # np.empty, not bytearray: no zero fill, so the pages a peer
                                # declares cost memory only once its bytes really arrive.
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


def _uid_of(sock: socket.socket) -> int:
    try:
        return peer_uid(sock)
    except OSError:
        return -1  # not told: refused


def _prepare_path(path: str, name: str) -> None:
    """Before binding a socket file: its directory must be private to this user (created
    0700 if missing), and a socket file left there by a dead server is removed."""
    parent = os.path.dirname(path) or "."
    try:
        if not os.path.exists(parent):
            ensure_private_dir(parent)
    except (OSError, OpError) as exc:
        raise UnavailableError(f"{name} cannot make the directory {parent}: {exc}") from None
    if not is_private_dir(parent):
        raise UnavailableError(
            f"{name} will not listen in {parent}: other users may enter it (or it is not this "
            f"user's); use a directory of mode 0700 (chmod 700 {parent})")
    if os.path.exists(path) and not listening(SCHEME + path):
        with contextlib.suppress(OSError):
            os.unlink(path)  # left by a server that died: nobody listens there


class _StreamSocket(abc.ABC):
    """What a router and a dealer share: the nursery, the callback, the counters."""

    def __init__(self, config: SocketConfig | None = None, *, name: str = "",
                 on_receive: Callable[[list], None] | None = None) -> None:
        if on_receive is None:
            raise InvalidArgumentError("a stream socket delivers to an on_receive callback")
        self.config = config or SocketConfig()
        self.name = name or type(self).__name__
        self._on_receive = on_receive
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stack = contextlib.AsyncExitStack()
        self._changed = trio.Event()
        self._endpoints: list[str] = []
        self._open = False
        self.last_drop = ""  # why the last connection was dropped
        self._n_recv = self._n_sent = self._n_dropped = 0

    async def __aenter__(self):
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        self._token = trio.lowlevel.current_trio_token()
        self._open = True
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        self.close()
        await self._stack.aclose()
        return None

    def close(self) -> None:
        """Close every connection and stop; idempotent, never blocks."""
        self._open = False
        for conn in self._conns():
            conn.close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        self._changed_now()

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    def statistics(self) -> StreamStatistics:
        return StreamStatistics(self._n_recv, self._n_sent, len(self._conns()), self._n_dropped)

    async def send(self, frames: Sequence[object]) -> None:
        """Send one message, waiting while its connection is missing or full."""
        while True:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                self.send_nowait(frames)
            except trio.WouldBlock:
                await self._changed.wait()
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return

    def _check_open(self) -> None:
        if not self._open:
            raise trio.ClosedResourceError(f"{self.name} socket is closed")

    def _changed_now(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _drop(self, conn: _Conn, why: str) -> None:
        """Cut a connection whose peer broke the framing or the limits."""
        self._n_dropped += 1
        self.last_drop = f"{self.name} dropped a connection that sent {why}"
        conn.close()

    async def _read(self, conn: _Conn) -> None:
        """Run a connection's reader. A failure in it (the callback's included) costs that
        connection only, never the socket and its other peers: a daemon serves on."""
        try:
            await conn.read()
        except Exception as exc:  # noqa: BLE001 - recorded in last_drop and counted
            self._n_dropped += 1
            self.last_drop = (f"{self.name} dropped a connection after an error reading it: "
                              f"{type(exc).__name__}: {exc}")
            conn.close()

    @abc.abstractmethod
    def send_nowait(self, frames: Sequence[object]) -> None:
        """Send one message now (a router's starts with the peer), or `trio.WouldBlock`."""

    @abc.abstractmethod
    def _conns(self) -> list[_Conn]:
        """The open connections."""

    @abc.abstractmethod
    def _deliver(self, conn: _Conn, frames: list) -> None:
        """Hand one message read off `conn` to the callback."""

    def _closed_conn(self, conn: _Conn) -> None:
        self._changed_now()


class StreamRouter(_StreamSocket):
    """The serving end: accepts connections; each is a peer named by an int."""

    def __init__(self, config: SocketConfig | None = None, *, name: str = "",
                 on_receive: Callable[[list], None] | None = None) -> None:
        super().__init__(config, name=name, on_receive=on_receive)
        self._peers: dict[int, _Conn] = {}
        self._next_peer = 1
        self._paths: list[str] = []

    def bind(self, endpoint: str) -> str:
        """Listen on `endpoint` (``unix://@name`` or ``unix:///path``) and return it."""
        self._check_open()
        address = address_of(endpoint)
        if not address.startswith("\0"):
            _prepare_path(address, self.name)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(address)
            listener.listen(128)
        except OSError as exc:
            listener.close()
            raise UnavailableError(f"{self.name} cannot bind {endpoint!r}: {exc}") from None
        listener.setblocking(False)
        if not address.startswith("\0"):
            self._paths.append(address)
        self._endpoints.append(endpoint)
        self._nursery.start_soon(self._accept, listener)
        return endpoint

    async def _accept(self, listener: socket.socket) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(listener)
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue
                except OSError as exc:  # out of fds or memory: back off, keep listening
                    self.last_drop = f"{self.name} could not accept a connection: {exc}"
                    await trio.sleep(self.config.retry_interval)
                    continue
                uid = _uid_of(sock)
                if not peer_allowed(uid):
                    self._n_dropped += 1
                    self.last_drop = (f"{self.name} refused a connection from uid {uid}: only "
                                      f"this user ({os.getuid()}) may connect")
                    sock.close()
                    continue
                peer = self._next_peer
                self._next_peer += 1
                conn = _Conn(self, sock, peer)
                self._peers[peer] = conn
                self._nursery.start_soon(self._read, conn)
        finally:
            trio.lowlevel.notify_closing(listener)
            listener.close()
            for path in self._paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            self._paths.clear()

    def send_nowait(self, frames: Sequence[object]) -> None:
        """Send ``[peer, *frames]``; `UnavailableError` if that peer is not connected."""
        self._check_open()
        conn = self._peers.get(frames[0])
        if conn is None:
            raise UnavailableError(
                f"peer {frames[0]!r} is not connected to {self.name} "
                f"{', '.join(self._endpoints) or '(unbound)'}: it disconnected or never "
                "connected; the message was not sent")
        conn.send_nowait(frames[1:])

    def _conns(self) -> list[_Conn]:
        return list(self._peers.values())

    def _deliver(self, conn: _Conn, frames: list) -> None:
        self._n_recv += 1
        frames.insert(0, conn.peer)
        self._on_receive(frames)

    def _closed_conn(self, conn: _Conn) -> None:
        self._peers.pop(conn.peer, None)
        super()._closed_conn(conn)


class StreamDealer(_StreamSocket):
    """The calling end: one connection to a router, re-made after it is lost. `on_lost` is
    called (in the loop) when an established connection breaks while the socket is open: the
    router exited or dropped it, and what was sent on it and not answered is gone."""

    def __init__(self, config: SocketConfig | None = None, *, name: str = "",
                 on_receive: Callable[[list], None] | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
        super().__init__(config, name=name, on_receive=on_receive)
        self._conn: _Conn | None = None
        self._on_lost = on_lost

    def connect(self, endpoint: str) -> None:
        """Connect to `endpoint` in the background, and again whenever the link is lost."""
        self._check_open()
        if self._endpoints:
            raise InvalidArgumentError(f"{self.name} is already connected to {self._endpoints[0]}")
        address = address_of(endpoint)
        self._endpoints.append(endpoint)
        self._nursery.start_soon(self._keep_connected, address)

    async def _keep_connected(self, address: str) -> None:
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(address)  # a Unix socket connects at once or fails (EAGAIN: the
                #                        listener's backlog is full; try again later)
            except OSError:
                sock.close()
                await trio.sleep(self.config.retry_interval)
                continue
            uid = _uid_of(sock)
            if not peer_allowed(uid):  # not our user's server: never talk to it
                sock.close()
                self._n_dropped += 1
                self.last_drop = (f"{self.name}: the server at {self._endpoints[0]} runs as uid "
                                  f"{uid}, not this user ({os.getuid()}); not connecting")
                await trio.sleep(self.config.retry_interval)
                continue
            conn = self._conn = _Conn(self, sock, None)
            self._changed_now()
            await self._read(conn)
            self._conn = None
            if self._open and self._on_lost is not None:
                self._on_lost()
            await trio.sleep(self.config.retry_interval)

    def send_nowait(self, frames: Sequence[object]) -> None:
        """Send one message now, or raise `trio.WouldBlock` (not connected, or full)."""
        self._check_open()
        if not frames:
            raise InvalidArgumentError("cannot send a message with no frames")
        conn = self._conn
        if conn is None:
            raise trio.WouldBlock
        try:
            conn.send_nowait(frames)
        except UnavailableError:
            raise trio.WouldBlock from None  # lost: reconnecting

    def send_from_thread(self, frames: Sequence[object]) -> bool:
        """Send one message from a thread other than the loop's, if it can go at once:
        connected, with nothing queued ahead of it. False, with nothing sent, otherwise (send
        it from the loop then). Messages sent this way and from the loop never interleave."""
        conn = self._conn
        if not self._open or conn is None or not frames:
            return False
        return conn.send_from_thread(frames, self._token)

    def _conns(self) -> list[_Conn]:
        return [self._conn] if self._conn is not None else []

    def _deliver(self, conn: _Conn, frames: list) -> None:
        self._n_recv += 1
        self._on_receive(frames)
