"""trio <-> ZeroMQ: one socket, driven by one pump task that is the only waiter on its fd.

What it owns: a `zmq.Socket` (its options, its fd, its close), a bounded inbox of received
multipart messages, and an outbox of messages that could not be sent at once.

Why a pump: ``ZMQ_FD`` signals only that ``ZMQ_EVENTS`` *may* have changed (it is edge-like),
and trio allows one waiter per fd. So exactly one task, the pump, ever awaits
``trio.lowlevel.wait_readable(fd)``; it re-reads ``EVENTS`` after every wake-up and after every
send or receive, and drains until the bits clear.

State (all touched only from the trio thread that entered the socket):
- ``_sock``: the socket. Options are set once on entry; closed only by the pump's ``finally``
  (``notify_closing(fd)`` then ``close(linger)``, no checkpoint between).
- ``_inbox_send`` / ``_inbox_recv``: a memory channel of ``config.inbox_size`` messages. The
  pump is the only sender; when it is full the pump stops reading (ZeroMQ's HWM then pushes back
  on the peer), so a consumer must not wait on its own socket's sends while the inbox is full.
  Closed by the pump on exit, so consumers see `trio.EndOfChannel`. With ``on_receive`` the
  inbox is unused: the pump calls ``on_receive(frames)`` itself, a synchronous callback that
  must not block (the RPC layer uses this to save a task hop per message).
- ``_outbox``: a FIFO of `_Outgoing` messages that a sender could not hand to libzmq at once
  (peer at its high-water mark, DEALER not yet connected with ``IMMEDIATE``). Senders append and
  wait on the entry's event; only the pump pops. While it is non-empty, new messages queue
  behind it, so per-socket order is kept.
- ``_wake`` / ``_parked``: the cancel scope around the pump's waits, and whether the pump is
  waiting on the fd now. A sender that needs the pump cancels the scope; the pump then makes a
  new one. One scope serves many waits because a cancel scope costs more than a message.

Sending takes a fast path: when the outbox is empty the sending task calls libzmq's send with
``DONTWAIT`` and ``copy=False`` itself (one trio thread, and it never waits on the fd, so the
one-waiter rule holds), then re-reads ``EVENTS`` and wakes the pump if the send made the socket
readable without a new fd signal. This saves a task hop per message and lets errors reach the
sender: a ROUTER has ``ROUTER_MANDATORY=1``, so a message to an unknown or departed peer raises
`UnavailableError` (libzmq's ``EHOSTUNREACH``) instead of vanishing.

    async with ZSocket(ctx, zmq.ROUTER, SocketConfig(linger_ms=100)) as server:
        endpoint = server.bind()                      # "tcp://127.0.0.1:<port>"
        async with ZSocket(ctx, zmq.DEALER, routing_id=b"w0") as client:
            client.connect(endpoint)
            await client.send([b"hello"])
            peer, body = await server.receive()       # [b"w0", b"hello"] as zmq.Frames
            await server.send([peer, b"hi"])
"""

from __future__ import annotations

import contextlib
import errno
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio
import zmq
import zmq.backend

from devices.errors import InvalidArgumentError, UnavailableError
from transport.keys import CurveKeys

# Plain ints: pyzmq's enum members cost microseconds per bitwise operation on the hot path.
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_DONTWAIT = int(zmq.DONTWAIT)
_SNDMORE = int(zmq.SNDMORE)
# pyzmq's Cython send, without the Python wrapper (routing_id/group for draft sockets, which we
# do not use); copy=False still copies frames under the socket's copy_threshold.
_zsend = zmq.backend.Socket.send

_KINDS = {
    zmq.ROUTER: "ROUTER",
    zmq.DEALER: "DEALER",
    zmq.PAIR: "PAIR",
    zmq.PUSH: "PUSH",
    zmq.PULL: "PULL",
}


@dataclass(frozen=True)
class SocketConfig:
    """Options for one socket; every one is set explicitly (no library defaults)."""

    linger_ms: int = 0  # ZMQ_LINGER: how long libzmq keeps unsent messages after close
    sndhwm: int = 1000  # ZMQ_SNDHWM, in messages (not bytes)
    rcvhwm: int = 1000  # ZMQ_RCVHWM, in messages
    max_frame_bytes: int = -1  # ZMQ_MAXMSGSIZE: a peer sending a larger frame is cut off
    max_frames: int = 4096  # frames kept per received message; the rest are discarded
    inbox_size: int = 1024  # received messages buffered before the pump stops reading
    retry_interval: float = 0.01  # a blocked outbox is retried at least this often (seconds)
    batch: int = 64  # the pump yields after moving this many messages in a row
    immediate: bool = True  # DEALER/PUSH: ZMQ_IMMEDIATE, queue only to live connections
    router_handover: bool = True  # ROUTER: a reconnecting peer may take over its routing id
    zmtp_heartbeat_ms: int = 0  # ZMQ_HEARTBEAT_IVL/TIMEOUT (0: off; rpc has its own)
    # Unix streams (`transport.unix_stream`) also cap a whole message's declared bytes and
    # its first frame (the codec header) before allocating anything (-1: no cap).
    max_message_bytes: int = -1
    first_frame_bytes: int = -1
    max_connections: int = 1024  # a Unix-stream router's connections at once
    # CURVE (`transport.keys`): a ROUTER serves with the server keys and asks the ZAP handler
    # of its context (domain `zap_domain`) about every client; a DEALER/PUSH proves itself
    # with the client keys and checks the server's. None: plain TCP.
    curve: CurveKeys | None = None
    zap_domain: str = "actorflow"

    def __post_init__(self) -> None:
        if self.inbox_size < 1 or self.max_frames < 1 or self.batch < 1:
            raise InvalidArgumentError("SocketConfig.inbox_size, max_frames and batch must be >= 1")
        if not self.retry_interval > 0:
            raise InvalidArgumentError("SocketConfig.retry_interval must be > 0 seconds")


def _set_curve(sock: zmq.Socket, socket_type: int, c: SocketConfig) -> None:
    """Make `sock` a CURVE server (ROUTER) or client (DEALER, PUSH) with `c.curve`."""
    keys = c.curve
    if socket_type == zmq.ROUTER:
        keys.require_server()
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.server_secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.server_public)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.ZAP_DOMAIN, c.zap_domain.encode())
        # No ZAP handler answering: refuse everyone (libzmq would let everyone in).
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    elif socket_type in (zmq.DEALER, zmq.PUSH):
        keys.require_client()
        sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.client_public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.client_secret)


@dataclass(frozen=True)
class SocketStatistics:
    """A snapshot of one socket's counters (`ZSocket.statistics`)."""

    messages_received: int
    messages_sent: int
    inbox_depth: int  # received, not yet taken by `receive`
    outbox_depth: int  # waiting for the pump to hand them to libzmq
    unroutable: int  # ROUTER sends refused because the peer is unknown or gone
    frames_discarded: int  # frames beyond `max_frames` dropped from received messages


class _Outgoing:
    """A message the pump must send. Invariant: `done` is set exactly once, by the pump or at
    close; `error` is set before it when the send failed. `abandoned` is set by a cancelled
    sender; the pump then drops the message unsent."""

    __slots__ = ("frames", "done", "error", "abandoned")

    def __init__(self, frames: Sequence[object]):
        self.frames = frames
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.abandoned = False


class ZSocket:
    """One ZeroMQ socket driven from trio. Use it as ``async with`` (it runs its pump inside).

    `routing_id` (DEALER) is set before any connect. All methods must be called from the trio
    thread that entered the socket.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        socket_type: int,
        config: SocketConfig | None = None,
        *,
        routing_id: bytes | None = None,
        name: str = "",
        on_receive: Callable[[list[zmq.Frame]], None] | None = None,
    ):
        self.config = config or SocketConfig()
        self._on_receive = on_receive
        self.socket_type = socket_type
        self.name = name or _KINDS.get(socket_type, f"socket type {socket_type}")
        self._ctx = ctx
        self._routing_id = routing_id
        self._sock: zmq.Socket | None = None
        self._fd = -1
        self._closed = False
        self._outbox: deque[_Outgoing] = deque()
        self._wake: trio.CancelScope | None = None
        self._parked = False
        self._inbox_send, self._inbox_recv = trio.open_memory_channel(self.config.inbox_size)
        self._stack = contextlib.AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._endpoints: list[str] = []
        # counters (written only by this socket's methods and its pump)
        self._n_recv = self._n_sent = self._n_unroutable = self._n_discarded = 0

    # -- lifetime --------------------------------------------------------------------------------

    async def __aenter__(self) -> ZSocket:
        if self._sock is not None or self._closed:
            raise RuntimeError(f"{self.name} socket can be entered only once")
        self._sock = self._make_socket()
        try:
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._pump, name=f"zsocket pump ({self.name})")
        except BaseException:
            self._close_now()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        self.close()
        # The body's exception is not passed into our nursery, which would wrap it in an
        # ExceptionGroup: it propagates unchanged once our tasks have stopped.
        await self._stack.aclose()
        return None

    def close(self) -> None:
        """Stop the pump; the socket closes as the pump exits. Idempotent, never blocks."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _make_socket(self) -> zmq.Socket:
        c = self.config
        sock = self._ctx.socket(self.socket_type)
        try:
            sock.setsockopt(zmq.LINGER, c.linger_ms)
            sock.setsockopt(zmq.SNDHWM, c.sndhwm)
            sock.setsockopt(zmq.RCVHWM, c.rcvhwm)
            sock.setsockopt(zmq.MAXMSGSIZE, c.max_frame_bytes)
            if c.zmtp_heartbeat_ms > 0:
                sock.setsockopt(zmq.HEARTBEAT_IVL, c.zmtp_heartbeat_ms)
                sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * c.zmtp_heartbeat_ms)
            if self.socket_type == zmq.ROUTER:
                sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
                sock.setsockopt(zmq.ROUTER_HANDOVER, int(c.router_handover))
            if self.socket_type in (zmq.DEALER, zmq.PUSH):
                sock.setsockopt(zmq.IMMEDIATE, int(c.immediate))
            if self._routing_id is not None:
                sock.setsockopt(zmq.ROUTING_ID, self._routing_id)
            if c.curve is not None:
                _set_curve(sock, self.socket_type, c)
            self._fd = sock.getsockopt(zmq.FD)
        except BaseException:
            sock.close(linger=0)
            raise
        return sock

    def _close_now(self) -> None:
        """Close the socket. Called by the pump as it exits: no checkpoint in here."""
        if self._closed:
            return
        self._closed = True
        if self._sock is not None:
            trio.lowlevel.notify_closing(self._fd)
            self._sock.close(linger=self.config.linger_ms)
        self._inbox_send.close()
        err = trio.ClosedResourceError(f"{self.name} socket closed before the message was sent")
        while self._outbox:
            entry = self._outbox.popleft()
            entry.error = err
            entry.done.set()

    def _check_open(self) -> zmq.Socket:
        if self._closed:
            raise trio.ClosedResourceError(f"{self.name} socket is closed")
        if self._sock is None:
            raise RuntimeError(f"use 'async with' on the {self.name} socket before using it")
        return self._sock

    # -- endpoints -------------------------------------------------------------------------------

    def bind(self, endpoint: str = "tcp://127.0.0.1:*") -> str:
        """Bind and return the endpoint actually bound (``LAST_ENDPOINT``, port filled in)."""
        sock = self._check_open()
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise UnavailableError(f"{self.name} cannot bind {endpoint!r}: {exc}") from None
        bound = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._endpoints.append(bound)
        return bound

    def connect(self, endpoint: str) -> None:
        """Start connecting (ZeroMQ connects and reconnects in the background)."""
        sock = self._check_open()
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise InvalidArgumentError(
                f"{self.name} cannot connect to {endpoint!r}: {exc}"
            ) from None
        self._endpoints.append(endpoint)

    def monitor(self, endpoint: str, events: int) -> None:
        """Publish this socket's `events` (``zmq.EVENT_*``) on inproc `endpoint` (a PAIR of
        the same context reads them; see `zmq.utils.monitor.parse_monitor_message`)."""
        self._check_open().monitor(endpoint, events)

    def disconnect(self, endpoint: str) -> None:
        self._check_open().disconnect(endpoint)
        with contextlib.suppress(ValueError):
            self._endpoints.remove(endpoint)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    # -- sending ---------------------------------------------------------------------------------

    def send_nowait(self, frames: Sequence[object]) -> None:
        """Hand one multipart message to libzmq now, or raise `trio.WouldBlock`.

        Raises `UnavailableError` when a ROUTER has no connected peer with that routing id.
        """
        sock = self._check_open()
        if self._outbox:
            raise trio.WouldBlock  # keep order behind queued messages
        try:
            self._send_frames(sock, frames)
        except zmq.Again:
            raise trio.WouldBlock from None
        finally:
            # The send may have processed libzmq commands (consuming the fd's signal) and made
            # the socket readable with no new edge: the pump must look again.
            if self._parked and sock.getsockopt(_EVENTS) & _POLLIN:
                self._wake.cancel()
        self._n_sent += 1

    async def send(self, frames: Sequence[object]) -> None:
        """Send one multipart message, waiting while the peer (or the connection) is not ready.

        Returns once libzmq has the message (it still has to reach the wire). Raises
        `UnavailableError` for a ROUTER message to an unknown peer, `trio.ClosedResourceError`
        if the socket closes first. Cancelled before the pump sent it, the message is dropped.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.send_nowait(frames)
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        entry = _Outgoing(frames)
        self._outbox.append(entry)
        if self._parked:
            self._wake.cancel()
        try:
            await entry.done.wait()
        except BaseException:
            if not entry.done.is_set():
                entry.abandoned = True
            raise
        if entry.error is not None:
            raise entry.error

    def _send_frames(self, sock: zmq.Socket, frames: Sequence[object]) -> None:
        """`send_multipart` without its per-call checks; maps EHOSTUNREACH to Unavailable.

        Only the first frame can fail with EAGAIN: libzmq counts a message against the HWM when
        its last frame is written, so once the first frame is accepted the rest are too.
        """
        last = len(frames) - 1
        if last < 0:
            raise InvalidArgumentError("cannot send a message with no frames")
        try:
            for i, f in enumerate(frames):
                _zsend(sock, f, _DONTWAIT | _SNDMORE if i < last else _DONTWAIT, False)
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                self._n_unroutable += 1
                peer = bytes(frames[0]) if self.socket_type == zmq.ROUTER else b"?"
                raise UnavailableError(
                    f"no peer with routing id {peer!r} is connected to {self.name} "
                    f"{', '.join(self._endpoints) or '(unbound)'}: it disconnected or never "
                    "connected; the message was not sent"
                ) from None
            raise

    # -- receiving -------------------------------------------------------------------------------

    async def receive(self) -> list[zmq.Frame]:
        """The next multipart message, as `zmq.Frame` objects (use ``.buffer`` / ``.bytes``).

        Raises `trio.EndOfChannel` once the socket has closed and every message was taken.
        """
        if self._on_receive is not None:
            raise RuntimeError(f"{self.name} delivers to its on_receive callback, not receive()")
        return await self._inbox_recv.receive()

    def receive_nowait(self) -> list[zmq.Frame]:
        return self._inbox_recv.receive_nowait()

    def __aiter__(self) -> ZSocket:
        return self

    async def __anext__(self) -> list[zmq.Frame]:
        try:
            return await self._inbox_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    def statistics(self) -> SocketStatistics:
        return SocketStatistics(
            messages_received=self._n_recv,
            messages_sent=self._n_sent,
            inbox_depth=self._inbox_recv.statistics().current_buffer_used,
            outbox_depth=len(self._outbox),
            unroutable=self._n_unroutable,
            frames_discarded=self._n_discarded,
        )

    # -- the pump --------------------------------------------------------------------------------

    def _recv_message(self, sock: zmq.Socket) -> list[zmq.Frame]:
        """Read every frame of one message (libzmq delivers them together); cap their number."""
        frame = sock.recv(_DONTWAIT, copy=False)
        frames = [frame]
        cap = self.config.max_frames
        while frame.more:
            frame = sock.recv(_DONTWAIT, copy=False)
            if len(frames) < cap:
                frames.append(frame)
            else:
                self._n_discarded += 1
        return frames

    def _send_head(self, sock: zmq.Socket) -> bool:
        """Try to hand the oldest queued message to libzmq. True if the outbox moved."""
        entry = self._outbox[0]
        if not entry.abandoned:  # an abandoned head is dropped even without POLLOUT
            try:
                self._send_frames(sock, entry.frames)
            except zmq.Again:
                return False
            except (UnavailableError, InvalidArgumentError) as exc:
                entry.error = exc
            else:
                self._n_sent += 1
        self._outbox.popleft()
        entry.done.set()
        return True

    async def _pump(self) -> None:
        """The loop: read EVENTS, move at most one message each way, repeat; when nothing
        moved, wait for the fd (or a sender's wake-up, or the retry timer)."""
        sock = self._sock
        assert sock is not None
        fd = self._fd
        inbox = self._inbox_send
        on_receive = self._on_receive
        batch = self.config.batch
        retry = self.config.retry_interval
        held = None  # a received message the inbox had no room for
        try:
            while True:
                # One wake scope serves many waits: a cancel scope costs more than a message
                # here, so a fresh one is made only after a sender (or the retry timer) used it.
                with trio.CancelScope() as wake:
                    self._wake = wake
                    moved = 0
                    while True:
                        if held is not None:
                            await inbox.send(held)  # the consumer is behind: stop reading until
                            held = None  # it catches up (this is the back-pressure)
                        events = sock.getsockopt(_EVENTS)
                        progressed = False
                        if events & _POLLIN:
                            msg = self._recv_message(sock)
                            self._n_recv += 1
                            progressed = True
                            if on_receive is not None:
                                on_receive(msg)
                            else:
                                try:
                                    inbox.send_nowait(msg)
                                except trio.WouldBlock:
                                    held = msg
                        if (
                            self._outbox
                            and (events & _POLLOUT or self._outbox[0].abandoned)
                            and self._send_head(sock)
                        ):
                            progressed = True
                        if progressed:
                            moved += 1
                            if moved >= batch:
                                moved = 0
                                await trio.lowlevel.checkpoint()
                            continue
                        # Nothing moved: wait for the fd's signal. A queued send also retries
                        # on a timer, since a ROUTER's POLLOUT says only that *some* peer has
                        # room. Cancelling `wake` (a sender, the timer) ends this scope.
                        moved = 0
                        if self._outbox:
                            wake.deadline = trio.current_time() + retry
                        self._parked = True
                        try:
                            await trio.lowlevel.wait_readable(fd)
                        finally:
                            self._parked = False
        finally:
            self._wake = None
            self._parked = False
            self._close_now()
