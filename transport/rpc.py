"""Request/response RPC over ZeroMQ ROUTER (server) and DEALER (clients), with deadlines and
application-level heartbeats.

What it owns: the RPC framing on top of `transport.codec` (every message is one codec message,
its header a small dict), the server's dispatch of requests to handlers, and the client's
table of calls in flight and its view of whether the server is alive. Both ends read their
socket through `ZSocket`'s ``on_receive`` callback, inside its pump, so a message reaches its
handler or its waiting call with no extra task hop.

Wire (the codec header of each message; ``h`` is the caller's header, tensors ride as frames)::

    request  {"k": "q", "id": int, "m": method, "t": seconds left or None, "h": header,
              "w": who (optional)}
    reply    {"k": "r", "id": int or None, "h": header}      or the same with a codec error
    ping     {"k": "p", "w": who (optional)}   pong {"k": "P"}   cancel {"k": "c", "id": int}
    one-way  {"k": "s", "m": method, "h": header, "ref": int (optional)}
                                                     (inline handlers only)

``w`` is the client's identity, ``{"name": str, "pid": int, "id": int}``: an `RpcClient`
sends it with every ping and with its first request on a connection, and the server lists
each connection with it, when it was last heard from and last asked something
(`RpcServer.connections`: how ``actorflow status`` shows each task's masters).

A one-way message runs a plain-function handler and gets no answer when it succeeds. A
handler error is counted by the server and, when the message carries an int ``ref`` (the
sender's own name for it), answered best effort with ``{"k": "r", "id": None, "ref": ref}``
and the error, so the sender learns of it at once; without ``ref`` nobody is told. The
worker service pushes tensors this way with the step as ``ref``: a refused push fails its
step on the receiving task, and on the sending task when the error reply arrives.

The deadline travels as *time left* rather than a timestamp, so hosts need not agree on the
clock; the server runs the handler under its own deadline from that, after checking it (NaN,
negative or not a number: an error reply) and capping it (``RpcConfig.max_timeout``).

Trust (SECURITY.md): with ``RpcConfig.keys`` the server's TCP port is a CURVE server whose
ZAP handler (`transport.zap`) lets in only allowed client keys, and a client proves itself
with the same keys (and is told plainly when a server refuses it); same-host streams need no
keys (their peers' uid is checked).

The pieces: `transport.rpc_server` (`RpcServer`: a ROUTER, one task per request for
``async def`` handlers, plain-function handlers inline, which may answer later through a
`Pending` with no task; errors go back with their canonical code), `transport.rpc_client`
(`RpcClient`: a DEALER, many calls in flight matched by id, awaited (`call`) or handed to a
callback (`start_call`), deadlines, heartbeats that fail calls fast with `UnavailableError`
while the server is silent), `transport.rpc_core` (`RpcConfig`, the one typed configuration,
`DeadlineTimer`, `Pending`). Each
module's docstring lists its state. This module re-exports the public names.

    async def echo(header, tensors):
        return header, tensors

    async with RpcServer({"echo": echo}, config=cfg) as server:
        endpoint = server.bind()
        async with RpcClient(endpoint, config=cfg) as client:
            header, tensors = await client.call("echo", {"x": 1}, [np.ones(3)], timeout=5)
"""

from transport.connection_ages import ConnectionInfo
from transport.rpc_client import ClientStatistics, RpcClient
from transport.rpc_core import DeadlineTimer, RpcConfig
from transport.rpc_server import Handler, RpcServer, ServerStatistics

__all__ = [
    "ClientStatistics",
    "ConnectionInfo",
    "DeadlineTimer",
    "Handler",
    "RpcClient",
    "RpcConfig",
    "RpcServer",
    "ServerStatistics",
]
