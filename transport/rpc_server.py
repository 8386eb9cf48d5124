"""The RPC server: a ROUTER that hands each request to its handler.

What it owns: its ROUTER `ZSocket` and its `StreamRouter` for peers on this host (both bound by
`RpcServer.bind`; peers are named by bytes on the first, by ints on the second, and replies go
back the way their request came), a nursery holding one task
per request an ``async def`` handler is handling, the `Pending` replies of plain handlers that
answer later, and the deadline timer for those requests.

State (touched only by its trio tasks):
- ``_handlers``: method name -> ``async def handler(header, tensors) -> (header, tensors)``,
  run in a task per request; ``_inline``: the methods whose handler is a plain function, run
  right where the request is read (for quick work that never waits).
- ``_active``: ``(peer, id) -> _Request``: the cancel scope of a running handler task (one
  task per request, so a slow handler never holds up others), or the `Pending` a plain
  handler returned. A cancel message or the deadline cancels the scope, or cancels the Pending
  (its handler hears of it through ``on_cancel``). Written by the reader (insert/cancel), the
  handler task or the Pending's settling (remove) and the deadline timer (cancel).
- ``_load``: peer -> its requests in ``_active`` plus its replies still waiting for room
  to be sent; at ``RpcConfig.max_inflight_per_peer`` the peer's new requests are refused
  with ResourceExhausted (so one connection cannot take the server's memory by asking and
  never reading). Kept by `_add`/`_remove` and the reply senders.
- ``_deadlines``: one timer task for every request's deadline (`DeadlineTimer`). A request's
  ``t`` is checked first (`RpcConfig.check_timeout`: NaN, negative or not a number gets an
  error reply; anything above ``max_timeout``, infinity included, is capped to it).
- ``_zap``: with ``RpcConfig.keys``, the `ZapHandler` of the server's context: the ROUTER
  is a CURVE server and only the keys it allows get in (SECURITY.md). `bind` refuses a TCP
  address other than loopback without keys unless ``RpcConfig.insecure``.
- ``_conns``: a `ConnectionTable` (`transport.connection_ages`): when each connection was
  last heard from and last asked something, and who the client says it is (the ``"w"`` field
  of its pings and of a request per heartbeat interval). One `time.monotonic` stamp per
  message, by the reader; read by `connections` (``actorflow status``: how long since each
  task heard from each master); gone ones are forgotten after `FORGET_GONE_AFTER`.
- counters for `statistics`, written by the reader and the handler tasks.

The reader is `ZSocket`'s ``on_receive`` callback: it runs inside the socket's pump and never
waits. A handler that raises replies with the error's canonical code (any non-`OpError`
becomes Unknown, with its type and message); a message that does not decode is answered with
an InvalidArgument error reply (id None when unknown) and counted, and the server keeps
serving.

    async def echo(header, tensors):
        return header, tensors

    async with RpcServer({"echo": echo}, config=RpcConfig()) as server:
        endpoint = server.bind()          # tcp://127.0.0.1:<port>
        await trio.sleep_forever()
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio
import zmq

from devices.errors import (
    CancelledError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    OpError,
    ResourceExhaustedError,
    UnavailableError,
    UnimplementedError,
)
from transport.codec import Tensors, decode_message, encode, encode_error
from transport.connection_ages import ConnectionInfo, ConnectionTable
from transport.rpc_core import (
    CANCEL,
    ONEWAY,
    PING,
    PONG,
    REPLY,
    REQUEST,
    DeadlineTimer,
    Pending,
    RpcConfig,
    owned_context,
    short,
)
from transport.runtime_dir import check_bind
from transport.unix_stream import SCHEME as UNIX_SCHEME
from transport.unix_stream import StreamRouter
from transport.zap import ZapHandler
from transport.zsocket import ZSocket

# ``async def handler(header, tensors) -> (header, tensors)``, or a plain ``def`` (run inline)
Handler = Callable[[Any, Tensors], Awaitable[tuple[Any, Any]] | tuple[Any, Any]]


def _peer_of(frame: Any) -> bytes | int:
    """The sender of a message: a ZeroMQ routing id frame, or a Unix-stream peer's int."""
    return frame if type(frame) is int else frame.bytes


@dataclass(frozen=True)
class ServerStatistics:
    requests: int  # well-formed requests (and one-way messages) received
    errors: int  # error replies sent for requests (handler errors, deadlines, ...), and
    #              one-way messages whose handler failed
    malformed: int  # messages that did not decode or broke the protocol
    inflight: int  # handlers running now
    undeliverable: int  # replies whose peer had gone (or was full, for pongs/errors)
    refused: int = 0  # requests refused because their connection had too many in flight
    auth_denied: int = 0  # CURVE handshakes the ZAP handler refused (a key not allowed)


class _Request:
    """A request being handled: by a task (`scope` wraps its handler; `expired` is set by the
    deadline timer just before it cancels the scope, a cancel from the client leaves it
    False), or by a plain function that returned a `Pending` (`pending`; no task)."""

    __slots__ = ("scope", "deadline", "expired", "pending")

    def __init__(self, deadline: float, pending: Pending | None = None) -> None:
        self.scope = trio.CancelScope() if pending is None else None
        self.deadline = deadline
        self.expired = False
        self.pending = pending


class RpcServer:
    """A ROUTER that runs one task per request (async handlers). ``async with``, then `bind`."""

    def __init__(
        self,
        handlers: Mapping[str, Handler] | None = None,
        *,
        config: RpcConfig | None = None,
        ctx: zmq.Context | None = None,
        name: str = "rpc server",
    ):
        self.config = config or RpcConfig()
        self.name = name
        self._handlers: dict[str, Handler] = {}
        self._inline: set[str] = set()  # methods whose handler is a plain function
        for method, handler in (handlers or {}).items():
            self.register(method, handler)
        self._ctx_arg = ctx
        self._sock: ZSocket | None = None
        self._local: StreamRouter | None = None  # peers on this host (``unix://`` endpoints)
        self._nursery: trio.Nursery | None = None
        self._stack = contextlib.AsyncExitStack()
        self._active: dict[tuple[bytes | int, int], _Request] = {}
        # peer -> its requests in `_active` plus its replies waiting for room to be sent;
        # at `max_inflight_per_peer` its new requests are refused (ResourceExhausted)
        self._load: dict[bytes | int, int] = {}
        self._zap: ZapHandler | None = None
        self._n_refused = 0
        self._deadlines = DeadlineTimer(self._expire)
        self._n_requests = self._n_errors = self._n_malformed = self._n_undeliverable = 0
        self._conns = ConnectionTable(self.config.heartbeat_timeout)

    def register(self, method: str, handler: Handler) -> None:
        """Serve `method` with ``handler(header, tensors) -> (header, tensors)``.

        An ``async def`` handler runs in a task of its own per request, under the request's
        deadline, so slow handlers never hold up others. A plain ``def`` handler runs inline
        where the request is read, with no task: for quick work that never waits (delivering
        a tensor, a status query); while it runs, the server reads nothing else. It may return
        a `Pending` instead of its result, to reply later with no task at all: the request is
        then in flight (deadline, cancel) until the Pending is settled.
        """
        if not isinstance(method, str) or not method or method.startswith("_"):
            raise InvalidArgumentError(
                f"method name {method!r} must be a non-empty str not starting with '_'"
            )
        if not callable(handler):
            raise InvalidArgumentError(f"handler for {method!r} is not callable: {handler!r}")
        self._handlers[method] = handler
        if inspect.iscoroutinefunction(handler):
            self._inline.discard(method)
        else:
            self._inline.add(method)

    async def __aenter__(self) -> RpcServer:
        ctx, owned = owned_context(self._ctx_arg)
        try:
            if owned:
                self._stack.callback(ctx.term)  # runs last: after the socket has closed
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._deadlines.run, name=f"{self.name} deadlines")
            sock_cfg = self.config.socket_config()
            if self.config.keys is not None:  # CURVE: the allow-list answers before any bind
                self.config.keys.require_server()
                self._zap = await self._stack.enter_async_context(
                    ZapHandler(ctx, {sock_cfg.zap_domain: self.config.keys}))
            self._sock = await self._stack.enter_async_context(
                ZSocket(
                    ctx,
                    zmq.ROUTER,
                    sock_cfg,
                    name=self.name,
                    on_receive=self._on_message,
                )
            )
            # Same-host peers: no CURVE (their uid is checked instead; see SECURITY.md).
            self._local = await self._stack.enter_async_context(
                StreamRouter(sock_cfg, name=self.name, on_receive=self._on_message))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        # The body's exception is not passed into our nursery, which would wrap it in an
        # ExceptionGroup: it propagates unchanged once our tasks have stopped.
        await self._stack.aclose()
        return None

    def bind(self, endpoint: str = "tcp://127.0.0.1:*") -> str:
        """Bind (after entering) and return the bound endpoint with its port. A
        ``unix://`` endpoint is served by a Unix-domain stream (`transport.unix_stream`),
        any other by the ZeroMQ ROUTER (CURVE when `RpcConfig.keys` is set). A TCP address
        other than loopback needs keys, or ``RpcConfig.insecure``."""
        if self._sock is None:
            raise RuntimeError("use 'async with RpcServer(...)' before bind()")
        if endpoint.startswith(UNIX_SCHEME):
            return self._local.bind(endpoint)
        check_bind(endpoint, self.config.keys is not None, self.config.insecure)
        return self._sock.bind(endpoint)

    @property
    def endpoints(self) -> tuple[str, ...]:
        if self._sock is None:
            return ()
        return self._sock.endpoints + self._local.endpoints

    def _socket_for(self, peer: bytes | int) -> ZSocket | StreamRouter:
        """ZeroMQ names its peers by bytes, the Unix-stream router by ints."""
        return self._local if type(peer) is int else self._sock

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            requests=self._n_requests,
            errors=self._n_errors,
            malformed=self._n_malformed,
            inflight=len(self._active),
            undeliverable=self._n_undeliverable,
            refused=self._n_refused,
            auth_denied=self._zap.denied if self._zap is not None else 0,
        )

    def connections(self) -> list[ConnectionInfo]:
        """Every connection heard from, with how long since it was heard from and asked
        something; gone ones until `FORGET_GONE_AFTER` (`transport.connection_ages`)."""
        local = self._local
        return self._conns.snapshot(
            lambda peer: type(peer) is not int or local is None or local.connected(peer),
            self._load)

    # -- what is in flight, per peer --------------------------------------------------------------

    def _add(self, key: tuple[bytes | int, int], req: _Request) -> None:
        self._active[key] = req
        self._load[key[0]] = self._load.get(key[0], 0) + 1

    def _remove(self, key: tuple[bytes | int, int], req: _Request | None = None) -> _Request | None:
        """Take `key` out of `_active` (only if it is `req`, when given)."""
        cur = self._active.get(key)
        if cur is None or (req is not None and cur is not req):
            return None
        del self._active[key]
        self._release(key[0])
        return cur

    def _release(self, peer: bytes | int) -> None:
        n = self._load.get(peer, 0) - 1
        if n > 0:
            self._load[peer] = n
        else:
            self._load.pop(peer, None)

    # -- the reader: runs inside the socket's pump, so it never blocks --------------------------

    def _reply_nowait(self, peer: bytes | int, frames: list[object]) -> None:
        """Best-effort reply from the reader (pongs, protocol errors): never waits."""
        try:
            self._socket_for(peer).send_nowait([peer, *frames])
        except (trio.WouldBlock, UnavailableError, trio.ClosedResourceError):
            self._n_undeliverable += 1

    def _reject(self, peer: bytes | int, rid: int | None, exc: OpError) -> None:
        self._n_malformed += 1
        self._reply_nowait(peer, encode_error(exc, {"k": REPLY, "id": rid}))

    def _on_message(self, frames: list[zmq.Frame]) -> None:
        """Handle one received message: answer pings and cancels, start a task per request.
        Nothing a peer sends may stop the server, so even our own bug becomes an error reply."""
        try:
            self._dispatch(frames)
        except Exception as exc:
            self._reject(
                _peer_of(frames[0]),
                None,
                InternalError(f"{self.name} failed on a message: {type(exc).__name__}: {exc}"),
            )

    def _dispatch(self, frames: list[zmq.Frame]) -> None:
        peer = _peer_of(frames[0])
        try:
            header, tensors, error = decode_message(frames[1:], self.config.limits)
        except InvalidArgumentError as exc:
            self._reject(peer, None, exc)
            return
        kind = header.get("k") if isinstance(header, dict) else None
        rid = header.get("id") if kind is not None else None
        if type(rid) is not int:
            rid = None
        now = time.monotonic()  # the connection's stamp: one clock read per message
        conn = self._conns.stamp(peer, now)
        conn.heard = now
        if kind is not None and "w" in header:  # who the client is (pings, first request)
            conn.who = header["w"]
        if kind == REQUEST or kind == ONEWAY:
            conn.asked = now
            conn.requests += 1
        if error is not None or kind not in (REQUEST, PING, CANCEL, ONEWAY):
            self._reject(
                peer,
                rid,
                InvalidArgumentError(
                    "malformed request: expected a header {'k': 'q'|'p'|'c'|'s', ...} and no "
                    f"error, got {short(header)}"
                ),
            )
        elif kind == ONEWAY:
            self._run_oneway(peer, header, tensors)
        elif kind == PING:
            self._reply_nowait(peer, encode({"k": PONG}))
        elif kind == CANCEL:
            req = self._remove((peer, rid))
            if req is not None:
                if req.pending is not None:
                    req.pending.cancel(CancelledError(f"the client cancelled request {rid}"))
                else:
                    req.scope.cancel()
        else:
            self._start_request(peer, rid, header, tensors)

    def _run_oneway(self, peer: bytes | int, header: dict, tensors: Tensors) -> None:
        """A message that wants no reply: run its inline handler. A handler error is counted,
        and answered only when the message carries an int ``ref`` (the sender's own name for
        it, e.g. the step of a pushed tensor): ``{"k": "r", "id": None, "ref": ref}`` with the
        error, best effort. A message the server cannot route at all gets an id-less error."""
        method = header.get("m")
        if not isinstance(method, str) or method not in self._inline:
            what = "an async method" if method in self._handlers else "no such method"
            self._reject(peer, None, InvalidArgumentError(
                f"one-way message for {short(method)}: {what}; one-way messages go to the "
                "plain-function methods of " + self.name))
            return
        self._n_requests += 1
        try:
            self._handlers[method](header.get("h"), tensors)
        except Exception as exc:  # noqa: BLE001 - the handler reports its own way too
            self._n_errors += 1
            ref = header.get("ref")
            if type(ref) is int:
                self._reply_nowait(peer, encode_error(exc, {"k": REPLY, "id": None,
                                                            "ref": ref}))

    def _start_request(self, peer: bytes | int, rid: int | None, header: dict,
                       tensors: Tensors) -> None:
        method = header.get("m")
        try:
            timeout = self.config.check_timeout(header.get("t"))
        except InvalidArgumentError as exc:
            self._reject(peer, rid, exc)
            return
        if rid is None or not isinstance(method, str):
            self._reject(
                peer,
                rid,
                InvalidArgumentError(
                    "malformed request: needs an int 'id', a str 'm' (method) and 't' "
                    f"(seconds left) >= 0 or None; got {short(header)}"
                ),
            )
            return
        if self._load.get(peer, 0) >= self.config.max_inflight_per_peer:
            self._n_refused += 1
            self._reply_nowait(peer, encode_error(ResourceExhaustedError(
                f"this connection has {self._load[peer]} requests in flight on {self.name}, "
                "its limit (RpcConfig.max_inflight_per_peer); wait for replies before sending "
                "more"), {"k": REPLY, "id": rid}))
            return
        key = (peer, rid)
        if key in self._active:
            self._reject(
                peer,
                rid,
                InvalidArgumentError(f"request id {rid} is already in flight from this client"),
            )
            return
        self._n_requests += 1
        handler = self._handlers.get(method)
        if handler is None or method in self._inline:
            try:
                if handler is None:
                    known = ", ".join(sorted(self._handlers)) or "(none)"
                    raise UnimplementedError(
                        f"{self.name} has no method {method!r}; it serves: {known}"
                    )
                result = handler(header.get("h"), tensors)
                if type(result) is Pending:
                    self._wait_for(key, result, timeout)
                    return
                frames = self._reply_frames(rid, method, result)
            except Exception as exc:  # any handler failure becomes an error reply
                self._n_errors += 1
                frames = encode_error(exc, {"k": REPLY, "id": rid})
            self._reply_soon(peer, frames)
            return
        if len(self._active) >= self.config.max_inflight:
            self._n_errors += 1
            self._reply_nowait(
                peer,
                encode_error(
                    ResourceExhaustedError(
                        f"{self.name} is running {len(self._active)} requests, its limit "
                        "(RpcConfig.max_inflight); retry later"
                    ),
                    {"k": REPLY, "id": rid},
                ),
            )
            return
        req = _Request(math.inf if timeout is None else trio.current_time() + timeout)
        self._add(key, req)
        self._deadlines.add(req.deadline, key)
        if len(self._deadlines) > 4 * len(self._active) + 1024:
            self._deadlines.compact([(r.deadline, k) for k, r in self._active.items()])
        self._nursery.start_soon(
            self._handle, key, req, handler, method, timeout, header.get("h"), tensors
        )

    def _wait_for(self, key: tuple[bytes | int, int], pending: Pending,
                  timeout: float | None) -> None:
        """A plain handler's `Pending`: in flight until settled, cancelled, or expired."""
        if len(self._active) >= self.config.max_inflight and pending.outcome is None:
            pending.cancel(ResourceExhaustedError(
                f"{self.name} is running {len(self._active)} requests, its limit "
                "(RpcConfig.max_inflight); retry later"))
        req = _Request(math.inf if timeout is None else trio.current_time() + timeout, pending)
        self._add(key, req)
        self._deadlines.add(req.deadline, key)

        def settled(header: Any, tensors: list, error: BaseException | None) -> None:
            self._remove(key, req)
            peer, rid = key
            if error is None:
                try:
                    frames = encode({"k": REPLY, "id": rid, "h": header}, tensors)
                except Exception as exc:  # noqa: BLE001 - e.g. a tensor the codec refuses
                    error = exc
            if error is not None:
                self._n_errors += 1
                frames = encode_error(error, {"k": REPLY, "id": rid})
            self._reply_soon(peer, frames)

        pending.then(settled)

    def _reply_frames(self, rid: int, method: str, result: Any) -> list[object]:
        if not (isinstance(result, tuple) and len(result) == 2):
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise InternalError(
                    f"handler for {method!r} is a plain function that returned an awaitable; "
                    "declare it 'async def'"
                )
            raise InternalError(
                f"handler for {method!r} returned {short(result)}; a handler must return "
                "(header, tensors)"
            )
        return encode({"k": REPLY, "id": rid, "h": result[0]}, result[1])

    def _reply_soon(self, peer: bytes | int, frames: list[object]) -> None:
        """Send a reply from the reader: now if libzmq takes it, else from a task."""
        frames.insert(0, peer)
        try:
            self._socket_for(peer).send_nowait(frames)
        except trio.WouldBlock:  # counted against the peer until it has room
            self._load[peer] = self._load.get(peer, 0) + 1
            self._nursery.start_soon(self._send_reply, frames, True)
        except (UnavailableError, trio.ClosedResourceError):
            self._n_undeliverable += 1

    async def _send_reply(self, frames: list[object], counted: bool = False) -> None:
        """Send a reply, waiting for room; `counted`: it holds a place in its peer's load."""
        try:
            try:
                sock = self._socket_for(frames[0])
                sock.send_nowait(frames)  # the usual case: no extra trip through trio
            except trio.WouldBlock:
                await sock.send(frames)
        except (UnavailableError, trio.ClosedResourceError):
            self._n_undeliverable += 1
        finally:
            if counted:
                self._release(frames[0])

    def _expire(self, key: tuple[bytes | int, int], deadline: float) -> None:
        """The deadline timer: cancel request `key` if it is still running to this deadline."""
        req = self._active.get(key)
        if req is not None and req.deadline == deadline:
            req.expired = True
            if req.pending is None:
                req.scope.cancel()
                return
            self._remove(key, req)
            err = DeadlineExceededError(f"a request ran past its deadline on {self.name}")
            req.pending.cancel(err)
            self._n_errors += 1
            self._reply_soon(key[0], encode_error(err, {"k": REPLY, "id": key[1]}))

    # -- one task per request --------------------------------------------------------------------

    async def _handle(
        self,
        key: tuple[bytes | int, int],
        req: _Request,
        handler: Handler,
        method: str,
        timeout: float | None,
        header: Any,
        tensors: Tensors,
    ) -> None:
        peer, rid = key
        try:
            result = None
            with req.scope:
                result = await handler(header, tensors)
            if req.scope.cancelled_caught:
                if not req.expired:
                    return  # the client cancelled: nobody wants the reply
                raise DeadlineExceededError(
                    f"method {method!r} ran past its deadline ({timeout:.3g}s) on {self.name}"
                )
            frames = self._reply_frames(rid, method, result)
        except Exception as exc:  # any handler failure becomes an error reply
            self._n_errors += 1
            frames = encode_error(exc, {"k": REPLY, "id": rid})
        finally:
            self._remove(key, req)
        frames.insert(0, peer)
        self._load[peer] = self._load.get(peer, 0) + 1  # until the reply is sent
        await self._send_reply(frames, True)
