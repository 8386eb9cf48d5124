"""Same-host connections over Unix-domain sockets instead of TCP loopback.

Why: a message between two processes of one machine costs less through a Unix-domain socket
than through the TCP stack (on a 2-vCPU VM, ~8% off a ZeroMQ round trip and ~10% of the CPU
per message), and every step of a local cluster is a handful of such messages.

How: a server bound to ``tcp://HOST:PORT`` on Linux also binds ``ipc://@actorflow-PORT`` (an
abstract socket: no file to clean up, gone with the process; the port makes the name unique
on the host). A client about to connect to a loopback address asks that endpoint for a pong
first (`prefer_ipc`) and connects there if it answers, else over TCP as before, so a peer
that could not bind the name (or any other setup) still works. Nothing else changes: the
same ZeroMQ sockets, messages and heartbeats run over either.

    endpoint = await prefer_ipc(ctx, "tcp://127.0.0.1:2222")   # "ipc://@actorflow-2222"
"""

from __future__ import annotations

import sys

import trio
import zmq

from transport.codec import decode_message, encode
from transport.rpc_core import PING, PONG
from transport.zsocket import SocketConfig, ZSocket

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def ipc_endpoint(tcp_endpoint: str) -> str | None:
    """The Unix-domain twin of a loopback ``tcp://host:port`` endpoint, or None (another
    host, a port not yet known, or not Linux: abstract sockets are Linux's)."""
    if not sys.platform.startswith("linux") or not tcp_endpoint.startswith("tcp://"):
        return None
    host, _, port = tcp_endpoint[len("tcp://"):].rpartition(":")
    if host not in _LOOPBACK or not port.isdigit():
        return None
    return f"ipc://@actorflow-{port}"


def probe_timeout(heartbeat_timeout: float) -> float:
    """How long to wait for the pong: a live server on this host answers in well under a
    millisecond; a silent one must not hold a connection up for long."""
    return min(0.25, heartbeat_timeout / 4)


async def prefer_ipc(ctx: zmq.Context, tcp_endpoint: str, timeout: float = 0.5) -> str:
    """`tcp_endpoint`'s Unix-domain twin if a server answers a ping there within `timeout`
    seconds, else `tcp_endpoint`."""
    ipc = ipc_endpoint(tcp_endpoint)
    if ipc is None:
        return tcp_endpoint
    with trio.move_on_after(timeout):
        async with ZSocket(ctx, zmq.DEALER, SocketConfig(linger_ms=0),
                           name=f"probe of {ipc}") as probe:
            probe.connect(ipc)
            await probe.send(encode({"k": PING}))
            while True:
                try:
                    header, _, _ = decode_message(await probe.receive())
                except Exception:  # noqa: BLE001 - not our server: use TCP
                    return tcp_endpoint
                if isinstance(header, dict) and header.get("k") == PONG:
                    return ipc
    return tcp_endpoint
