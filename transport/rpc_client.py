"""The RPC client: a DEALER with many calls in flight, deadlines and heartbeats.

What it owns: its DEALER (a `ZSocket`, or a `StreamDealer` for a ``unix://`` endpoint: a server
on this host) connected to one server, the table of calls in flight,
a heartbeat task and the deadline timer for its calls.

State (touched only by its trio tasks, but for `start_call_from_thread`, which inserts into
``_pending`` from another thread and then sends through `StreamDealer.send_from_thread`):
- ``_pending``: request id -> `_Call`; inserted by `call` or `start_call`, completed by the
  reader (a reply), by the deadline timer, or by the heartbeat task (server declared dead);
  removed by `call` when it is cancelled from outside, or by `cancel_call`.
- ``_alive`` / ``_last_traffic`` / ``_ready``: the reader (``on_receive``, inside the socket's
  pump) stamps every message that arrives; the heartbeat task pings after each
  ``heartbeat_interval`` of silence and, after ``heartbeat_timeout`` with no message at all,
  declares the server dead: every pending call fails with `UnavailableError` and new calls fail
  at once, until any message arrives again (pings continue meanwhile). A same-host stream
  that breaks (``_lost``: the server exited or dropped us) declares it dead at once.
- ``_who`` / ``_announce``: who this client tells the server it is (``{"name", "pid",
  "id"}``: its name, this process, and ``client_id``, which a master shares among its
  connections), sent with every ping and with the first request after the client starts,
  after each heartbeat interval (the heartbeat task sets ``_announce``: a server that
  restarted under a busy client learns who it is within an interval), and after the server
  went dead or the stream broke; the server lists it in `RpcServer.connections`.
- ``_deadlines``: one timer task for every call's deadline (`DeadlineTimer`); on expiry the
  call raises `DeadlineExceededError` and the server is told to cancel the handler.
- ``_refused``: over ZeroMQ, why the server refused our handshake (its CURVE keys do not
  allow ours, or it speaks CURVE and we hold no keys), read from the DEALER's monitor; set,
  it fails every call at once with that reason until a handshake succeeds.

    async with RpcClient("tcp://127.0.0.1:5555", config=RpcConfig()) as client:
        await client.wait_ready()
        header, tensors = await client.call("echo", {"x": 1}, [np.ones(3)], timeout=5)
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio
import zmq
from zmq.utils.monitor import parse_monitor_message

from devices.errors import DeadlineExceededError, InvalidArgumentError, UnavailableError
from transport.codec import Tensors, decode_message, encode
from transport.local_ipc import dealer
from transport.rpc_core import (
    CANCEL,
    PING,
    PONG,
    REPLY,
    DeadlineTimer,
    RpcConfig,
    owned_context,
    request_frames,
)
from transport.unix_stream import StreamDealer
from transport.zsocket import SocketConfig, ZSocket

_HANDSHAKE_EVENTS = int(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)

_DEFAULT: Any = object()  # "use config.default_timeout"


@dataclass(frozen=True)
class ClientStatistics:
    calls: int
    pending: int
    alive: bool
    seconds_since_traffic: float
    late_replies: int  # replies for calls that had already given up
    malformed: int


class _Call:
    """One call in flight, settled once (`RpcClient._settle`) after `header`/`tensors`, `error`
    or `expired` are set: by setting `event` (a `call`) or by calling `then` (a `start_call`).
    `scope` exists only while the request waits in the socket's outbox."""

    __slots__ = ("event", "then", "method", "header", "tensors", "error", "expired", "deadline",
                 "scope")

    def __init__(self, deadline: float, method: str, then: Any = None) -> None:
        self.event = trio.Event() if then is None else None
        self.then = then
        self.method = method
        self.header: Any = None
        self.tensors: Tensors = []
        self.error: BaseException | None = None
        self.expired = False
        self.deadline = deadline
        self.scope: trio.CancelScope | None = None


class RpcClient:
    """A DEALER talking to one `RpcServer`. Use as ``async with``; many `call`s may run at once."""

    def __init__(
        self,
        endpoint: str,
        *,
        config: RpcConfig | None = None,
        ctx: zmq.Context | None = None,
        routing_id: bytes | None = None,
        name: str | None = None,
        client_id: int | None = None,
    ):
        self.config = config or RpcConfig()
        self.endpoint = endpoint
        self.name = name or f"rpc client of {endpoint}"
        # Routing ids starting with a zero byte are reserved by libzmq.
        self.routing_id = routing_id or b"af" + os.urandom(10)
        if not self.routing_id or self.routing_id[0] == 0 or len(self.routing_id) > 255:
            raise InvalidArgumentError(
                f"routing_id {self.routing_id!r} must be 1-255 bytes, not starting with a zero"
            )
        if client_id is None:
            client_id = int.from_bytes(os.urandom(8), "little") >> 1
        self._who = {"name": self.name, "pid": os.getpid(), "id": int(client_id)}
        self._announce = True  # the next request carries `_who`
        self._ctx_arg = ctx
        self._sock: ZSocket | StreamDealer | None = None
        self._nursery: trio.Nursery | None = None
        self._stack = contextlib.AsyncExitStack()
        self._pending: dict[int, _Call] = {}
        self._deadlines = DeadlineTimer(self._expire)
        self._ids = itertools.count(1)  # request ids; `next` is atomic, for other threads too
        self._alive = True
        self._lost = False  # dead because the same-host stream broke (not a heartbeat timeout)
        self._ready = trio.Event()  # set by the first message since start or since going dead
        self._last_traffic = 0.0
        self._closed = False
        self._refused: str | None = None
        self._n_calls = self._n_late = self._n_malformed = 0

    async def __aenter__(self) -> RpcClient:
        ctx, owned = owned_context(self._ctx_arg)
        try:
            if owned:
                self._stack.callback(ctx.term)
            self._stack.callback(self._fail_all, "the client was closed")
            self._sock = await self._stack.enter_async_context(
                dealer(ctx, self.endpoint, self.config.socket_config(),
                       routing_id=self.routing_id, name=self.name, on_receive=self._on_message,
                       on_lost=self._connection_lost))
            if type(self._sock) is ZSocket:
                await self._watch_handshakes(ctx)
            self._sock.connect(self.endpoint)
            self._last_traffic = trio.current_time()
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._heartbeat, name=f"{self.name} heartbeat")
            self._nursery.start_soon(self._deadlines.run, name=f"{self.name} deadlines")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        self._closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        # The body's exception is not passed into our nursery, which would wrap it in an
        # ExceptionGroup: it propagates unchanged once our tasks have stopped.
        await self._stack.aclose()
        return None

    @property
    def alive(self) -> bool:
        """False from a heartbeat timeout until the server is heard from again."""
        return self._alive

    async def wait_ready(self) -> None:
        """Wait until the server has answered (a pong or any reply) since the client started,
        or since it was last declared dead. A handshake, instead of sleeping."""
        await self._ready.wait()

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            calls=self._n_calls,
            pending=len(self._pending),
            alive=self._alive,
            seconds_since_traffic=trio.current_time() - self._last_traffic,
            late_replies=self._n_late,
            malformed=self._n_malformed,
        )

    async def call(
        self,
        method: str,
        header: Any = None,
        tensors: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        timeout: float | None = _DEFAULT,
    ) -> tuple[Any, Tensors]:
        """Call `method` on the server and return its ``(header, tensors)``.

        Raises the handler's error (same class), `DeadlineExceededError` after `timeout`
        seconds (default: ``config.default_timeout``; None waits forever),
        `UnavailableError` when the server is, or becomes, unresponsive.
        """
        if self._closed or self._sock is None:
            raise UnavailableError(
                f"{self.name} is closed (or was never entered with 'async with'); open a new client"
            )
        if not self._alive or self._refused is not None:
            await trio.lowlevel.checkpoint()
            raise self._dead_error()
        if timeout is _DEFAULT:
            timeout = self.config.default_timeout
        if timeout is not None and not timeout > 0:
            await trio.lowlevel.checkpoint()
            raise DeadlineExceededError(
                f"call {method!r} to {self.endpoint} was given no time (timeout={timeout})"
            )
        rid = next(self._ids)
        frames = self._request(rid, method, timeout, header, tensors)
        self._n_calls += 1
        call = _Call(math.inf if timeout is None else trio.current_time() + timeout, method)
        pending = self._pending
        pending[rid] = call
        self._deadlines.add(call.deadline, rid)
        try:
            try:
                self._sock.send_nowait(frames)  # the usual case; the wait below checkpoints
            except trio.WouldBlock:
                # Not connected yet, or the server is at its HWM: queue, cancellable by the
                # deadline timer and by `_fail_all`.
                with trio.CancelScope() as call.scope:
                    await self._sock.send(frames)
                call.scope = None
            await call.event.wait()
        except trio.ClosedResourceError:
            raise UnavailableError(f"{self.name} was closed during the call") from None
        finally:
            if not call.event.is_set():  # cancelled from outside: tell the server
                pending.pop(rid, None)
                self._send_cancel(rid)
        if len(self._deadlines) > 4 * len(pending) + 1024:
            self._deadlines.compact([(c.deadline, r) for r, c in pending.items()])
        if call.error is not None:
            raise call.error
        if call.expired:
            raise DeadlineExceededError(
                f"call {method!r} to {self.endpoint} got no reply within {timeout:.3g}s"
            )
        return call.header, call.tensors

    def start_call(
        self,
        method: str,
        header: Any,
        tensors: Mapping[str, Any] | Sequence[Any] | None,
        then: Callable[[Any, Tensors, BaseException | None], None],
        *,
        timeout: float | None = _DEFAULT,
    ) -> int:
        """`call` with no task waiting: the request leaves now, and ``then(header, tensors,
        error)`` is called once, from the reader (the reply), the deadline timer or the
        heartbeat (the server is dead), or at once when the call cannot start. Returns the
        call's id, for `cancel_call`. Call from the client's trio thread."""
        if timeout is _DEFAULT:
            timeout = self.config.default_timeout
        error: BaseException | None = None
        if self._closed or self._sock is None:
            error = UnavailableError(f"{self.name} is closed; open a new client")
        elif not self._alive or self._refused is not None:
            error = self._dead_error()
        elif timeout is not None and not timeout > 0:
            error = DeadlineExceededError(
                f"call {method!r} to {self.endpoint} was given no time (timeout={timeout})")
        if error is not None:
            then(None, [], error)
            return 0
        rid = next(self._ids)
        frames = self._request(rid, method, timeout, header, tensors)
        self._n_calls += 1
        call = _Call(math.inf if timeout is None else trio.current_time() + timeout, method, then)
        self._pending[rid] = call
        self._deadlines.add(call.deadline, rid)
        try:
            self._sock.send_nowait(frames)
        except trio.WouldBlock:
            call.scope = trio.CancelScope()
            self._nursery.start_soon(self._send_queued, rid, call, frames)
        except trio.ClosedResourceError:
            del self._pending[rid]
            call.error = UnavailableError(f"{self.name} was closed during the call")
            self._settle(call)
        return rid

    def start_call_from_thread(
        self,
        method: str,
        header: Any,
        tensors: Sequence[Any] | None,
        then: Callable[[Any, Tensors, BaseException | None], None],
        *,
        timeout: float | None = None,
    ) -> int:
        """`start_call` from a thread other than the client's loop, sparing the hop into it:
        the request leaves from the calling thread. Returns the call's id. Only over a
        same-host stream, connected, with nothing queued ahead, to a live server; otherwise
        returns 0, nothing was sent and `then` is never called: use `start_call` from the loop.
        (Should the loop fail every call meanwhile, `then` gets that error and the id is
        returned: the call has its outcome.) `timeout` only tells the server; the client
        sets no deadline of its own here (the caller keeps one), while the heartbeat still
        fails the call if the server dies. ``then`` runs on the loop's thread."""
        sock = self._sock
        if type(sock) is not StreamDealer:
            return 0
        rid = next(self._ids)
        frames = self._request(rid, method, timeout, header, tensors)
        self._pending[rid] = _Call(math.inf, method, then)  # before the reply can come
        # Checked after inserting: the loop marks the client dead or closed before failing
        # every pending call, so either it fails this one too, or it is seen here.
        if not self._closed and self._alive and sock.send_from_thread(frames):
            self._n_calls += 1  # may miss a count if threads race; it is a statistic
            return rid
        if self._pending.pop(rid, None) is None:
            return rid  # the loop failed every call meanwhile: `then` had the error
        return 0

    def cancel_call(self, rid: int) -> None:
        """Give up call `rid` of `start_call` (its ``then`` is not called); the server is
        told to cancel its handler."""
        call = self._pending.pop(rid, None)
        if call is not None:
            if call.scope is not None:
                call.scope.cancel()
            self._send_cancel(rid)

    async def _send_queued(self, rid: int, call: _Call, frames: list) -> None:
        with call.scope:
            try:
                await self._sock.send(frames)
            except trio.ClosedResourceError:
                if self._pending.pop(rid, None) is call:
                    call.error = UnavailableError(f"{self.name} was closed during the call")
                    self._settle(call)
        call.scope = None

    def _settle(self, call: _Call) -> None:
        if call.then is None:
            call.event.set()
            return
        error = call.error
        if error is None and call.expired:
            error = DeadlineExceededError(
                f"call {call.method!r} to {self.endpoint} got no reply in time")
        call.then(call.header, call.tensors, error)

    # -- internals -------------------------------------------------------------------------------

    def _request(self, rid: int, method: str, timeout: float | None, header: Any,
                 tensors: Any) -> list[object]:
        if self._announce:  # the first request on this connection: say who we are
            self._announce = False
            return request_frames(rid, method, timeout, header, tensors, self._who)
        return request_frames(rid, method, timeout, header, tensors)

    def _expire(self, rid: int, deadline: float) -> None:
        """The deadline timer: fail call `rid` if it is still waiting for this deadline."""
        call = self._pending.get(rid)
        if call is None or call.deadline != deadline:
            return
        del self._pending[rid]
        call.expired = True
        if call.scope is not None:
            call.scope.cancel()
        self._send_cancel(rid)
        self._settle(call)

    def _send_cancel(self, rid: int) -> None:
        if self._sock is None or self._closed:
            return
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, UnavailableError):
            self._sock.send_nowait(encode({"k": CANCEL, "id": rid}))

    def _connection_lost(self) -> None:
        """The same-host stream to the server broke: it exited or dropped this client, and the
        calls in flight on it are lost. Fail them now, and new calls at once until the server
        answers again (the heartbeat pings it as the stream reconnects)."""
        if self._closed:
            return
        self._alive = False
        self._lost = True
        self._announce = True
        if self._ready.is_set():
            self._ready = trio.Event()
        self._fail_all()

    async def _watch_handshakes(self, ctx: zmq.Context) -> None:
        """Read the DEALER's handshake events (a PAIR on its monitor endpoint)."""
        endpoint = f"inproc://af-monitor-{os.urandom(8).hex()}"
        self._sock.monitor(endpoint, _HANDSHAKE_EVENTS)
        mon = await self._stack.enter_async_context(
            ZSocket(ctx, zmq.PAIR, SocketConfig(linger_ms=0), name=f"{self.name} monitor",
                    on_receive=self._on_handshake))
        mon.connect(endpoint)

    def _on_handshake(self, frames: list[zmq.Frame]) -> None:
        try:
            event = parse_monitor_message([f.bytes for f in frames])["event"]
        except Exception:  # noqa: BLE001 - not an event: ignore it
            return
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._refused = None
            return
        keys = self.config.keys
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            why = ("the server refused this client's key: it is not in the cluster's "
                   "authorized keys (RPCOptions.key_dir / --keys; see SECURITY.md)")
        elif keys is None:
            why = ("the handshake failed: the server most likely requires CURVE keys and this "
                   "client has none; pass the cluster's key directory (RPCOptions.key_dir)")
        else:
            why = (f"the CURVE handshake failed: the server does not hold the server key of "
                   f"{keys.source or 'our keys'} (another cluster's keys?), or speaks no CURVE")
        self._refused = why
        if self._closed:
            return
        self._fail_all(f"cannot call {self.endpoint}: {why}")

    def _dead_error(self) -> UnavailableError:
        if self._refused is not None:
            return UnavailableError(f"{self.name}: {self._refused}")
        if self._lost:
            return UnavailableError(
                f"server {self.endpoint} closed the connection (it exited, or dropped this "
                "client); the calls in flight were lost. Calls fail at once until it answers "
                "again")
        silent = trio.current_time() - self._last_traffic
        return UnavailableError(
            f"server {self.endpoint} is not responding: nothing heard for {silent:.2f}s "
            f"(heartbeat_timeout={self.config.heartbeat_timeout}s); it is down, hung or "
            "unreachable. Calls fail at once until it answers a heartbeat again"
        )

    def _fail_all(self, why: str | None = None) -> None:
        # Emptied one entry at a time: `start_call_from_thread` may insert meanwhile, and
        # relies on its call being failed here once it saw the client alive and open.
        pending, calls = self._pending, []
        while pending:
            call = pending.pop(next(iter(pending)), None)
            if call is not None:
                calls.append(call)
        for call in calls:
            call.error = (
                UnavailableError(f"{self.name}: {why}") if why is not None else self._dead_error()
            )
            if call.scope is not None:
                call.scope.cancel()  # also wakes a call still queued in the socket's outbox
            self._settle(call)

    def _on_message(self, frames: list[zmq.Frame]) -> None:
        """Runs inside the socket's pump for each message: any message proves the server is
        alive; a reply completes its call."""
        self._last_traffic = trio.current_time()
        self._alive = True
        self._lost = False
        if not self._ready.is_set():
            self._ready.set()
        try:
            header, tensors, error = decode_message(frames, self.config.limits)
        except InvalidArgumentError:
            self._n_malformed += 1
            return
        kind = header.get("k") if isinstance(header, dict) else None
        if kind == REPLY:
            rid = header.get("id")
            call = self._pending.pop(rid, None) if type(rid) is int else None
            if call is None:
                if rid is None:
                    self._n_malformed += 1  # the server could not parse something we sent
                else:
                    self._n_late += 1
                return
            call.header, call.tensors, call.error = header.get("h"), tensors, error
            self._settle(call)
        elif kind != PONG:
            self._n_malformed += 1

    async def _heartbeat(self) -> None:
        ivl, limit = self.config.heartbeat_interval, self.config.heartbeat_timeout
        ping = encode({"k": PING, "w": self._who})
        while True:
            silent = trio.current_time() - self._last_traffic
            if self._alive and silent > limit:
                self._alive = False
                self._announce = True
                if self._ready.is_set():
                    self._ready = trio.Event()
                self._fail_all()
            if silent >= ivl or not self._ready.is_set():
                with contextlib.suppress(trio.WouldBlock, UnavailableError):
                    self._sock.send_nowait(ping)
            else:
                self._announce = True  # busy: the next request says who we are
            await trio.sleep(ivl)
