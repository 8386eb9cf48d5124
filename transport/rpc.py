"""Request/response RPC over ZeroMQ ROUTER (server) and DEALER (clients), with deadlines and
application-level heartbeats.

What it owns: the RPC framing on top of `transport.codec` (every message is one codec message,
its header a small dict), the server's dispatch of requests to async handlers, and the
client's table of calls in flight and its view of whether the server is alive.

Wire (the codec header of each message; ``h`` is the caller's header, tensors ride as frames)::

    request  {"k": "q", "id": int, "m": method, "t": seconds left or None, "h": header}
    reply    {"k": "r", "id": int or None, "h": header}      or the same with a codec error
    ping     {"k": "p"}   pong {"k": "P"}   cancel {"k": "c", "id": int}

The deadline travels as *time left* rather than a timestamp, so hosts need not agree on the
clock; the server runs the handler under its own deadline from that.

Server state (touched only by its trio tasks):
- ``_handlers``: method name -> ``async def handler(header, tensors) -> (header, tensors)``.
- ``_active``: ``(peer, id) -> CancelScope`` of each running handler task; one task per
  request, so a slow handler never holds up others. A cancel message or the deadline cancels
  the scope. Written by the reader (insert/cancel) and the handler task (remove).
A handler that raises replies with the error's canonical code (any non-`OpError` becomes
Unknown, with its type and message); a message that does not decode is answered with an
InvalidArgument error reply (id None when unknown) and counted, and the server keeps serving.

Client state:
- ``_pending``: request id -> `_Call`; inserted by `call`, completed by the reader (reply), by
  the heartbeat task (server declared dead) or removed by `call` on its deadline.
- ``_alive`` / ``_last_traffic``: the reader stamps every message that arrives; the heartbeat
  task pings every ``heartbeat_interval`` of silence and, after ``heartbeat_timeout`` with no
  message at all, declares the server dead: every pending call fails with `UnavailableError`
  and new calls fail at once, until any message arrives again (pings continue meanwhile).

    async def echo(header, tensors):
        return header, tensors

    async with RpcServer({"echo": echo}, config=cfg) as server:
        endpoint = server.bind()
        async with RpcClient(endpoint, config=cfg) as client:
            header, tensors = await client.call("echo", {"x": 1}, [np.ones(3)], timeout=5)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
import zmq

from devices.errors import (
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    OpError,
    ResourceExhaustedError,
    UnavailableError,
    UnimplementedError,
)
from transport.codec import DEFAULT_LIMITS, Limits, Tensors, decode_message, encode, encode_error
from transport.zsocket import SocketConfig, ZSocket

Handler = Callable[[Any, Tensors], Awaitable[tuple[Any, Any]]]

_DEFAULT: Any = object()  # "use config.default_timeout"


@dataclass(frozen=True)
class RpcConfig:
    """Everything an RPC endpoint needs; passed in, never read from the environment."""

    heartbeat_interval: float = 1.0      # client pings after this much silence (seconds)
    heartbeat_timeout: float = 5.0       # no message this long: the server is declared dead
    default_timeout: float | None = 60.0  # per-call deadline when `call` gets none
    max_inflight: int = 10_000           # server: concurrent requests before ResourceExhausted
    limits: Limits = DEFAULT_LIMITS      # what the decoders accept
    socket: SocketConfig = field(default_factory=SocketConfig)  # linger, HWMs, queue sizes

    def __post_init__(self) -> None:
        if not (0 < self.heartbeat_interval < self.heartbeat_timeout):
            raise InvalidArgumentError(
                f"need 0 < heartbeat_interval ({self.heartbeat_interval}) < heartbeat_timeout "
                f"({self.heartbeat_timeout})")
        if self.default_timeout is not None and not self.default_timeout > 0:
            raise InvalidArgumentError(
                f"default_timeout must be > 0 or None, got {self.default_timeout}")

    def socket_config(self) -> SocketConfig:
        """The socket options, with libzmq's own size caps derived from `limits`."""
        lim = self.limits
        return dataclasses.replace(
            self.socket,
            max_frame_bytes=max(lim.max_tensor_bytes, lim.max_header_bytes),
            max_frames=lim.max_frames + 1)  # + the routing frame


@dataclass(frozen=True)
class ServerStatistics:
    requests: int          # well-formed requests received
    errors: int            # error replies sent for requests (handler errors, deadlines, ...)
    malformed: int         # messages that did not decode or broke the protocol
    inflight: int          # handlers running now
    undeliverable: int     # replies whose peer had gone (or was full, for pongs/errors)


@dataclass(frozen=True)
class ClientStatistics:
    calls: int
    pending: int
    alive: bool
    seconds_since_traffic: float
    late_replies: int      # replies for calls that had already given up
    malformed: int


def _owned_context(ctx: zmq.Context | None) -> tuple[zmq.Context, bool]:
    return (ctx, False) if ctx is not None else (zmq.Context(), True)


# ---------------------------------------------------------------------------------------------
# Server


class RpcServer:
    """A ROUTER that runs one task per request. Use as ``async with``; then `bind`."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None, *,
                 config: RpcConfig | None = None, ctx: zmq.Context | None = None,
                 name: str = "rpc server"):
        self.config = config or RpcConfig()
        self.name = name
        self._handlers: dict[str, Handler] = {}
        for method, handler in (handlers or {}).items():
            self.register(method, handler)
        self._ctx_arg = ctx
        self._sock: ZSocket | None = None
        self._nursery: trio.Nursery | None = None
        self._stack = contextlib.AsyncExitStack()
        self._active: dict[tuple[bytes, int], trio.CancelScope] = {}
        self._n_requests = self._n_errors = self._n_malformed = self._n_undeliverable = 0

    def register(self, method: str, handler: Handler) -> None:
        """Serve `method` with ``async def handler(header, tensors) -> (header, tensors)``."""
        if not isinstance(method, str) or not method or method.startswith("_"):
            raise InvalidArgumentError(
                f"method name {method!r} must be a non-empty str not starting with '_'")
        self._handlers[method] = handler

    async def __aenter__(self) -> RpcServer:
        ctx, owned = _owned_context(self._ctx_arg)
        try:
            if owned:
                self._stack.callback(ctx.term)  # runs last: after the socket has closed
            self._sock = await self._stack.enter_async_context(
                ZSocket(ctx, zmq.ROUTER, self.config.socket_config(), name=self.name))
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._serve, name=f"{self.name} reader")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        return await self._stack.__aexit__(exc_type, exc, tb)

    def bind(self, endpoint: str = "tcp://127.0.0.1:*") -> str:
        """Bind (after entering) and return the bound endpoint with its port."""
        if self._sock is None:
            raise RuntimeError("use 'async with RpcServer(...)' before bind()")
        return self._sock.bind(endpoint)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._sock.endpoints if self._sock is not None else ()

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            requests=self._n_requests, errors=self._n_errors, malformed=self._n_malformed,
            inflight=len(self._active), undeliverable=self._n_undeliverable)

    # -- the reader: one task, never blocks on a reply -------------------------------------------

    def _reply_nowait(self, peer: bytes, frames: list[object]) -> None:
        """Best-effort reply from the reader (pongs, protocol errors): never waits."""
        try:
            self._sock.send_nowait([peer, *frames])
        except (trio.WouldBlock, UnavailableError, trio.ClosedResourceError):
            self._n_undeliverable += 1

    def _reject(self, peer: bytes, rid: int | None, exc: OpError) -> None:
        self._n_malformed += 1
        self._reply_nowait(peer, encode_error(exc, {"k": "r", "id": rid}))

    async def _serve(self) -> None:
        sock = self._sock
        limits = self.config.limits
        nursery = self._nursery
        async for frames in sock:
            peer = frames[0].bytes
            try:
                header, tensors, error = decode_message(frames[1:], limits)
            except InvalidArgumentError as exc:
                self._reject(peer, None, exc)
                continue
            kind = header.get("k") if isinstance(header, dict) else None
            rid = header.get("id") if kind is not None else None
            if type(rid) is not int:
                rid = None
            if error is not None or kind not in ("q", "p", "c"):
                self._reject(peer, rid, InvalidArgumentError(
                    "malformed request: expected a header {'k': 'q'|'p'|'c', ...} and no error, "
                    f"got {_short(header)}"))
            elif kind == "p":
                self._reply_nowait(peer, encode({"k": "P"}))
            elif kind == "c":
                scope = self._active.pop((peer, rid), None)
                if scope is not None:
                    scope.cancel()
            else:
                method, timeout = header.get("m"), header.get("t")
                if rid is None or not isinstance(method, str) or not (
                        timeout is None or (type(timeout) in (int, float) and timeout >= 0)):
                    self._reject(peer, rid, InvalidArgumentError(
                        "malformed request: needs an int 'id', a str 'm' (method) and 't' "
                        f"(seconds left) >= 0 or None; got {_short(header)}"))
                    continue
                key = (peer, rid)
                if key in self._active:
                    self._reject(peer, rid, InvalidArgumentError(
                        f"request id {rid} is already in flight from this client"))
                    continue
                self._n_requests += 1
                if len(self._active) >= self.config.max_inflight:
                    self._n_errors += 1
                    self._reply_nowait(peer, encode_error(ResourceExhaustedError(
                        f"{self.name} is running {len(self._active)} requests, its limit "
                        "(RpcConfig.max_inflight); retry later"), {"k": "r", "id": rid}))
                    continue
                scope = trio.CancelScope()
                if timeout is not None:
                    scope.deadline = trio.current_time() + timeout
                self._active[key] = scope
                nursery.start_soon(self._handle, key, scope, method, timeout,
                                   header.get("h"), tensors)

    # -- one task per request --------------------------------------------------------------------

    async def _handle(self, key: tuple[bytes, int], scope: trio.CancelScope, method: str,
                      timeout: float | None, header: Any, tensors: Tensors) -> None:
        peer, rid = key
        reply_header = {"k": "r", "id": rid}
        try:
            handler = self._handlers.get(method)
            if handler is None:
                known = ", ".join(sorted(self._handlers)) or "(none)"
                raise UnimplementedError(f"{self.name} has no method {method!r}; it serves: "
                                         f"{known}")
            result = None
            with scope:
                result = await handler(header, tensors)
            if scope.cancelled_caught:
                if self._active.get(key) is not scope:
                    return  # the client cancelled: nobody wants the reply
                raise DeadlineExceededError(
                    f"method {method!r} ran past its deadline ({timeout:.3g}s) on {self.name}")
            if not (isinstance(result, tuple) and len(result) == 2):
                raise InternalError(
                    f"handler for {method!r} returned {_short(result)}; a handler must return "
                    "(header, tensors)")
            reply_header["h"] = result[0]
            frames = encode(reply_header, result[1])
        except Exception as exc:  # any handler failure becomes an error reply
            self._n_errors += 1
            frames = encode_error(exc, {"k": "r", "id": rid})
        finally:
            if self._active.get(key) is scope:
                del self._active[key]
        try:
            await self._sock.send([peer, *frames])
        except (UnavailableError, trio.ClosedResourceError):
            self._n_undeliverable += 1


# ---------------------------------------------------------------------------------------------
# Client


class _Call:
    """One call in flight. `event` is set once, after `header`/`tensors` or `error`."""

    __slots__ = ("event", "header", "tensors", "error", "scope")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.header: Any = None
        self.tensors: Tensors = []
        self.error: BaseException | None = None
        self.scope: trio.CancelScope | None = None


class RpcClient:
    """A DEALER talking to one `RpcServer`. Use as ``async with``; many `call`s may run at once."""

    def __init__(self, endpoint: str, *, config: RpcConfig | None = None,
                 ctx: zmq.Context | None = None, routing_id: bytes | None = None,
                 name: str | None = None):
        self.config = config or RpcConfig()
        self.endpoint = endpoint
        self.name = name or f"rpc client of {endpoint}"
        self.routing_id = routing_id or os.urandom(12)
        self._ctx_arg = ctx
        self._sock: ZSocket | None = None
        self._nursery: trio.Nursery | None = None
        self._stack = contextlib.AsyncExitStack()
        self._pending: dict[int, _Call] = {}
        self._next_id = 1
        self._alive = True
        self._ready = trio.Event()  # set by the first message since start or since going dead
        self._last_traffic = 0.0
        self._closed = False
        self._n_calls = self._n_late = self._n_malformed = 0

    async def __aenter__(self) -> RpcClient:
        ctx, owned = _owned_context(self._ctx_arg)
        try:
            if owned:
                self._stack.callback(ctx.term)
            self._stack.callback(self._fail_all, "the client was closed")
            self._sock = await self._stack.enter_async_context(
                ZSocket(ctx, zmq.DEALER, self.config.socket_config(),
                        routing_id=self.routing_id, name=self.name))
            self._sock.connect(self.endpoint)
            self._last_traffic = trio.current_time()
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._read, name=f"{self.name} reader")
            self._nursery.start_soon(self._heartbeat, name=f"{self.name} heartbeat")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        self._closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        return await self._stack.__aexit__(exc_type, exc, tb)

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
            calls=self._n_calls, pending=len(self._pending), alive=self._alive,
            seconds_since_traffic=trio.current_time() - self._last_traffic,
            late_replies=self._n_late, malformed=self._n_malformed)

    async def call(self, method: str, header: Any = None,
                   tensors: Mapping[str, Any] | Sequence[Any] | None = None, *,
                   timeout: float | None = _DEFAULT) -> tuple[Any, Tensors]:
        """Call `method` on the server and return its ``(header, tensors)``.

        Raises the handler's error (same class), `DeadlineExceededError` after `timeout`
        seconds (default: ``config.default_timeout``; None waits forever),
        `UnavailableError` when the server is, or becomes, unresponsive.
        """
        if self._closed or self._sock is None:
            raise UnavailableError(f"{self.name} is closed (or was never entered with 'async "
                                   "with'); open a new client")
        if not self._alive:
            await trio.lowlevel.checkpoint()
            raise self._dead_error()
        if timeout is _DEFAULT:
            timeout = self.config.default_timeout
        if timeout is not None and not timeout > 0:
            await trio.lowlevel.checkpoint()
            raise DeadlineExceededError(f"call {method!r} to {self.endpoint} was given no time "
                                        f"(timeout={timeout})")
        rid = self._next_id
        self._next_id += 1
        frames = encode({"k": "q", "id": rid, "m": method, "t": timeout, "h": header}, tensors)
        self._n_calls += 1
        call = _Call()
        self._pending[rid] = call
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        try:
            with trio.CancelScope(deadline=deadline) as call.scope:
                try:
                    await self._sock.send(frames)
                except trio.ClosedResourceError:
                    raise UnavailableError(f"{self.name} was closed during the call") from None
                await call.event.wait()
        finally:
            if not call.event.is_set():
                self._pending.pop(rid, None)
                self._send_cancel(rid)
        if call.error is not None:
            raise call.error
        if not call.event.is_set():
            raise DeadlineExceededError(
                f"call {method!r} to {self.endpoint} got no reply within {timeout:.3g}s")
        return call.header, call.tensors

    # -- internals -------------------------------------------------------------------------------

    def _send_cancel(self, rid: int) -> None:
        if self._sock is None or self._closed:
            return
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, UnavailableError):
            self._sock.send_nowait(encode({"k": "c", "id": rid}))

    def _dead_error(self) -> UnavailableError:
        silent = trio.current_time() - self._last_traffic
        return UnavailableError(
            f"server {self.endpoint} is not responding: nothing heard for {silent:.2f}s "
            f"(heartbeat_timeout={self.config.heartbeat_timeout}s); it is down, hung or "
            "unreachable. Calls fail at once until it answers a heartbeat again")

    def _fail_all(self, why: str | None = None) -> None:
        for call in self._pending.values():
            call.error = (UnavailableError(f"{self.name}: {why}") if why is not None
                          else self._dead_error())
            call.event.set()
            if call.scope is not None:
                call.scope.cancel()  # also wakes a call still queued in the socket's outbox
        self._pending.clear()

    async def _read(self) -> None:
        limits = self.config.limits
        pending = self._pending
        async for frames in self._sock:
            self._last_traffic = trio.current_time()
            if not self._alive:
                self._alive = True
            if not self._ready.is_set():
                self._ready.set()
            try:
                header, tensors, error = decode_message(frames, limits)
            except InvalidArgumentError:
                self._n_malformed += 1
                continue
            if not isinstance(header, dict):
                self._n_malformed += 1
                continue
            kind = header.get("k")
            if kind == "r":
                rid = header.get("id")
                call = pending.pop(rid, None) if type(rid) is int else None
                if call is None:
                    if rid is None:
                        self._n_malformed += 1  # the server could not parse something we sent
                    else:
                        self._n_late += 1
                    continue
                call.header, call.tensors, call.error = header.get("h"), tensors, error
                call.event.set()
            elif kind != "P":
                self._n_malformed += 1

    async def _heartbeat(self) -> None:
        ivl, limit = self.config.heartbeat_interval, self.config.heartbeat_timeout
        ping = encode({"k": "p"})
        while True:
            silent = trio.current_time() - self._last_traffic
            if self._alive and silent > limit:
                self._alive = False
                if self._ready.is_set():
                    self._ready = trio.Event()
                self._fail_all()
            if silent >= ivl or not self._ready.is_set():
                with contextlib.suppress(trio.WouldBlock, UnavailableError):
                    self._sock.send_nowait(ping)
            await trio.sleep(ivl)


def _short(v: object, n: int = 120) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."
