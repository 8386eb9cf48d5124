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
it; a frame of 64 KiB or more is received straight into a buffer of its own, once 64 KiB
of it have arrived (never on the peer's word alone). The per-connection mechanics (framing,
queue, reader) are `transport.stream_conn.Conn`; this module holds the sockets.

Limits, per connection: every declared size is checked before anything is allocated; a peer
that breaks the framing or the limits (more than ``max_frames`` frames, a frame over
``max_frame_bytes``, a first frame (the codec header) over ``first_frame_bytes``, a message
over ``max_message_bytes``) is disconnected, like libzmq's ``MAXMSGSIZE``, and the socket
carries on. So a connection holds at most the receive buffer, one message being received
(allocated without zero fill: its pages cost memory as its bytes arrive) and ``sndhwm``
queued replies; the requests it may have in flight are the RPC server's to bound
(``RpcConfig.max_inflight_per_peer``). Its reader is its own task: a stalled or hostile
connection holds up no other. A router keeps at most ``max_connections`` connections.

Trust: both ends read the other's uid from the kernel (``SO_PEERCRED``,
`transport.runtime_dir.peer_allowed`): a router drops, and a dealer refuses, any process of
another user, before reading a byte.

Addresses: ``unix:///path`` a file, whose directory must be private to this user (made 0700
if missing; a socket file left by a dead server is replaced), removed when the router closes;
``unix://@name`` is Linux's abstract namespace (no file, no permissions: the uid check is all
that guards it; the daemons use files in `transport.runtime_dir`).

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
connection (`Conn`) the receive buffer and the partly parsed message, the queue of unsent
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from devices.errors import InvalidArgumentError, OpError, UnavailableError
from transport.runtime_dir import ensure_private_dir, is_private_dir, peer_allowed, peer_uid
from transport.stream_conn import Conn
from transport.zsocket import SocketConfig

SCHEME = "unix://"


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

    def _drop(self, conn: Conn, why: str) -> None:
        """Cut a connection whose peer broke the framing or the limits."""
        self._n_dropped += 1
        self.last_drop = f"{self.name} dropped a connection that sent {why}"
        conn.close()

    async def _read(self, conn: Conn) -> None:
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
    def _conns(self) -> list[Conn]:
        """The open connections."""

    @abc.abstractmethod
    def _deliver(self, conn: Conn, frames: list) -> None:
        """Hand one message read off `conn` to the callback."""

    def _closed_conn(self, conn: Conn) -> None:
        self._changed_now()


class StreamRouter(_StreamSocket):
    """The serving end: accepts connections; each is a peer named by an int."""

    def __init__(self, config: SocketConfig | None = None, *, name: str = "",
                 on_receive: Callable[[list], None] | None = None) -> None:
        super().__init__(config, name=name, on_receive=on_receive)
        self._peers: dict[int, Conn] = {}
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
                if len(self._peers) >= self.config.max_connections:
                    self._n_dropped += 1
                    self.last_drop = (f"{self.name} refused a connection: it has "
                                      f"{len(self._peers)}, its limit (max_connections)")
                    sock.close()
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
                conn = Conn(self, sock, peer)
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

    def _conns(self) -> list[Conn]:
        return list(self._peers.values())

    def connected(self, peer: int) -> bool:
        """Whether `peer`'s connection is still open (the RPC server's connection ages)."""
        return peer in self._peers

    def _deliver(self, conn: Conn, frames: list) -> None:
        self._n_recv += 1
        frames.insert(0, conn.peer)
        self._on_receive(frames)

    def _closed_conn(self, conn: Conn) -> None:
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
        self._conn: Conn | None = None
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
            conn = self._conn = Conn(self, sock, None)
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

    def _conns(self) -> list[Conn]:
        return [self._conn] if self._conn is not None else []

    def _deliver(self, conn: Conn, frames: list) -> None:
        self._n_recv += 1
        self._on_receive(frames)
