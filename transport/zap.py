"""The ZAP handler: which CURVE clients a server lets in, answered from trio.

Why: a CURVE server without a ZAP handler accepts any client key (encryption and server
authentication only). libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of the
server's context about every handshake (ZeroMQ RFC 27); a client refused there is
disconnected before any message of it reaches the server. The servers here also set
``ZAP_ENFORCE_DOMAIN``, so with no handler answering nobody gets in.

What it owns: a REP `ZSocket` bound to the ZAP endpoint of one context, run by its own pump
in the server's nursery (no thread, no asyncio; tech-notes §3), and the domains it answers
for (domain -> `CurveKeys`, whose `allowed` set is the allow-list). One handler per context:
a second CURVE server on the same context gets a clear error (give each its own context).
Counters: `granted`, `denied`, and `last_denied` (the Z85 key and address of the last
refusal) for tests and ``status``.

    async with ZapHandler(ctx, {"actorflow": keys}) as zap:   # before the ROUTER binds
        ...
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping

import zmq
import zmq.utils.z85

from devices.errors import FailedPreconditionError
from transport.keys import CurveKeys
from transport.zsocket import SocketConfig, ZSocket

ENDPOINT = "inproc://zeromq.zap.01"
_IN_USE: weakref.WeakKeyDictionary[zmq.Context, ZapHandler] = weakref.WeakKeyDictionary()


class ZapHandler:
    """Answers libzmq's ZAP requests for `domains` (see the module docstring)."""

    def __init__(self, ctx: zmq.Context, domains: Mapping[str, CurveKeys]) -> None:
        self._ctx = ctx
        self._domains = {d.encode(): k for d, k in domains.items()}
        self._sock: ZSocket | None = None
        self._stack = contextlib.AsyncExitStack()
        self.granted = self.denied = 0
        self.last_denied = ""

    async def __aenter__(self) -> ZapHandler:
        if self._ctx in _IN_USE:
            raise FailedPreconditionError(
                "this zmq.Context already has a ZAP handler (another CURVE server uses it); "
                "give each CURVE RpcServer its own context")
        self._sock = await self._stack.enter_async_context(
            ZSocket(self._ctx, zmq.REP, SocketConfig(linger_ms=0), name="zap handler",
                    on_receive=self._on_request))
        try:
            self._sock.bind(ENDPOINT)
        except BaseException:
            await self._stack.aclose()
            raise
        _IN_USE[self._ctx] = self
        return self

    async def __aexit__(self, *exc: object) -> None:
        _IN_USE.pop(self._ctx, None)
        await self._stack.aclose()

    def decide(self, domain: bytes, mechanism: bytes, credentials: list[bytes]) -> bool:
        """Whether a client may in: CURVE, a domain we serve, a key on its allow-list."""
        keys = self._domains.get(domain)
        if keys is None or mechanism != b"CURVE" or len(credentials) != 1 \
                or len(credentials[0]) != 32:
            return False
        return zmq.utils.z85.encode(credentials[0]) in keys.allowed()

    def _on_request(self, frames: list[zmq.Frame]) -> None:
        parts = [f.bytes for f in frames]
        if len(parts) < 6:  # not a ZAP request (libzmq sends 7+ frames); REP must answer
            self.denied += 1
            self._sock.send_nowait([b"1.0", parts[1] if len(parts) > 1 else b"", b"500",
                                    b"malformed ZAP request", b"", b""])
            return
        version, request_id, domain, address, _identity, mechanism, *credentials = parts
        ok = version == b"1.0" and self.decide(domain, mechanism, credentials)
        if ok:
            self.granted += 1
            reply = [b"1.0", request_id, b"200", b"OK", b"", b""]
        else:
            self.denied += 1
            key = zmq.utils.z85.encode(credentials[0]).decode() \
                if credentials and len(credentials[0]) == 32 else "(none)"
            self.last_denied = f"{mechanism.decode(errors='replace')} key {key} from " \
                               f"{address.decode(errors='replace')}"
            reply = [b"1.0", request_id, b"400", b"client key not authorized", b"", b""]
        self._sock.send_nowait(reply)
