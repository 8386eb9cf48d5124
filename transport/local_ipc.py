"""Same-host connections over Unix-domain sockets instead of TCP loopback.

Why: a message between two processes of one machine costs less through a Unix-domain socket
than through the TCP stack (on a 2-vCPU VM, ~8% off a ZeroMQ round trip and ~10% of the CPU
per message), and every step of a local cluster is a handful of such messages.

How: a server bound to a loopback (or every) address on Linux also binds
``ipc://@actorflow-4-PORT`` (``-6-`` for IPv6; an abstract socket: no file to clean up, gone
with the process; the port makes the name unique on the host). A client about to connect to
a loopback address asks that endpoint first (`prefer_ipc`: a ping, or the ``status`` of the
task it wants, so that it never takes another server for it) and connects there if the right
server answers, else over TCP as before, so a peer that could not bind the name (or any other
setup) still works. Nothing else changes: the
same ZeroMQ sockets, messages and heartbeats run over either.

    endpoint = await prefer_ipc(ctx, "tcp://127.0.0.1:2222")   # "ipc://@actorflow-4-2222"
"""

from __future__ import annotations

import sys

import trio
import zmq

from transport.codec import decode_message, encode
from transport.rpc_core import PING, PONG, REPLY, REQUEST
from transport.zsocket import SocketConfig, ZSocket

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def ipc_endpoint(tcp_endpoint: str) -> str | None:
    """The Unix-domain twin of a loopback ``tcp://host:port`` endpoint, or None (another
    host, a port not yet known, or not Linux: abstract sockets are Linux's). IPv4 and IPv6
    loopback get different names: two servers may hold the same port on each."""
    if not sys.platform.startswith("linux") or not tcp_endpoint.startswith("tcp://"):
        return None
    host, _, port = tcp_endpoint[len("tcp://"):].rpartition(":")
    if host not in _LOOPBACK or not port.isdigit():
        return None
    family = "6" if ":" in host else "4"
    return f"ipc://@actorflow-{family}-{port}"


def probe_timeout(heartbeat_timeout: float) -> float:
    """How long to wait for the answer: a live server on this host answers in well under a
    millisecond; a silent one must not hold a connection up for long."""
    return min(0.25, heartbeat_timeout / 4)


async def prefer_ipc(ctx: zmq.Context, tcp_endpoint: str, timeout: float = 0.5,
                     task: tuple[str, int] | None = None) -> str:
    """`tcp_endpoint`'s Unix-domain twin if a server answers there within `timeout` seconds
    (with `task`: answers ``status`` as that job and task index, so a name some other server
    holds is never taken for it), else `tcp_endpoint`."""
    ipc = ipc_endpoint(tcp_endpoint)
    if ipc is None:
        return tcp_endpoint
    ask = (encode({"k": REQUEST, "id": 1, "m": "status", "t": timeout, "h": None})
           if task is not None else encode({"k": PING}))
    with trio.move_on_after(timeout):
        async with ZSocket(ctx, zmq.DEALER, SocketConfig(linger_ms=0),
                           name=f"probe of {ipc}") as probe:
            probe.connect(ipc)
            await probe.send(ask)
            while True:
                try:
                    header, _, error = decode_message(await probe.receive())
                except Exception:  # noqa: BLE001 - not one of ours: use TCP
                    return tcp_endpoint
                if not isinstance(header, dict):
                    return tcp_endpoint
                if task is None and header.get("k") == PONG:
                    return ipc
                if task is not None and header.get("k") == REPLY:
                    h = header.get("h")
                    ok = error is None and isinstance(h, dict) and (
                        h.get("job"), h.get("task")) == tuple(task)
                    return ipc if ok else tcp_endpoint
    return tcp_endpoint
