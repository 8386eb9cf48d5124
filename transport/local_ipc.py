"""Same-host connections: which socket reaches a task on this machine.

Why: a message between two processes of one machine costs much less through a Unix-domain
socket read straight from trio (`transport.unix_stream`) than through ZeroMQ over TCP
loopback: no libzmq I/O threads to wake on either side, no TCP stack. On a 2-vCPU VM a round
trip goes from ~230 us (ZeroMQ) to ~125 us, and every step of a local cluster is a handful of
such messages.

How: a server bound to a loopback (or every) address on Linux also listens on
``unix:///tmp/actorflow-UID/4-PORT`` (``6-`` for IPv6; the port makes the name unique on the
host). The socket lives in the user's private runtime directory (`transport.runtime_dir`:
mode 0700, so no other user can even reach it), never in the abstract namespace (which has
no permissions), and both ends check the other's uid (``SO_PEERCRED``). Same-host traffic
therefore pays no CURVE: the kernel vouches for the peer. A socket file left by a server that
died is replaced by the next one on that port.
A client about to connect to a loopback address asks that endpoint first (`prefer_ipc`: a
ping, or the ``status`` of the task it wants, so that it never takes another server for it)
and connects there if the right server answers (or if the server is there but slow to answer:
it is our user's, on that port), else over TCP as before, so a peer that could not bind the
name (or any other setup) still works. `dealer` makes the socket for either kind of endpoint.
Nothing else changes: the same messages and heartbeats run over either.

    endpoint = await prefer_ipc("tcp://127.0.0.1:2222")   # "unix:///tmp/actorflow-1000/4-2222"
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import trio
import zmq

from transport.codec import decode_message, encode
from transport.rpc_core import PING, PONG, REPLY, request_frames
from transport.runtime_dir import default_runtime_dir, is_private_dir
from transport.unix_stream import SCHEME, StreamDealer, listening
from transport.zsocket import SocketConfig, ZSocket

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def ipc_endpoint(tcp_endpoint: str, runtime_dir: str | None = None) -> str | None:
    """The Unix-domain twin of a loopback ``tcp://host:port`` endpoint, in `runtime_dir`
    (default: `default_runtime_dir`), or None (another host, a port not yet known, or not
    Linux: ``SO_PEERCRED`` is Linux's). IPv4 and IPv6 loopback get different names: two
    servers may hold the same port on each."""
    if not sys.platform.startswith("linux") or not tcp_endpoint.startswith("tcp://"):
        return None
    host, _, port = tcp_endpoint[len("tcp://"):].rpartition(":")
    if host not in _LOOPBACK or not port.isdigit():
        return None
    family = "6" if ":" in host else "4"
    return f"{SCHEME}{runtime_dir or default_runtime_dir()}/{family}-{port}"


def probe_timeout(heartbeat_timeout: float) -> float:
    """How long to wait for the answer: a live server on this host answers in well under a
    millisecond; a silent one must not hold a connection up for long."""
    return min(0.25, heartbeat_timeout / 4)


async def prefer_ipc(tcp_endpoint: str, timeout: float = 0.5,
                     task: tuple[str, int] | None = None) -> str:
    """`tcp_endpoint`'s Unix-domain twin if a server answers there within `timeout` seconds
    (with `task`: answers ``status`` as that job and task index, so a name some other server
    holds is never taken for it), else `tcp_endpoint`."""
    ipc = ipc_endpoint(tcp_endpoint)
    if ipc is None or not is_private_dir(ipc[len(SCHEME):].rpartition("/")[0]) \
            or not listening(ipc):
        return tcp_endpoint
    ask = (request_frames(1, "status", timeout, None)
           if task is not None else encode({"k": PING}))
    answers: list[list] = []
    heard = trio.Event()

    def on_receive(frames: list) -> None:
        answers.append(frames)
        heard.set()

    with trio.move_on_after(timeout):
        async with StreamDealer(SocketConfig(linger_ms=0), name=f"probe of {ipc}",
                                on_receive=on_receive) as probe:
            probe.connect(ipc)
            await probe.send(ask)
            await heard.wait()
        try:
            header, _, error = decode_message(answers[0])
        except Exception:  # noqa: BLE001 - not one of ours: use TCP
            return tcp_endpoint
        if not isinstance(header, dict):
            return tcp_endpoint
        if task is None:
            return ipc if header.get("k") == PONG else tcp_endpoint
        h = header.get("h")
        ok = header.get("k") == REPLY and error is None and isinstance(h, dict) and (
            h.get("job"), h.get("task")) == tuple(task)
        return ipc if ok else tcp_endpoint
    # No answer in time: the server is there (listening, in our private directory, on that
    # port's name) but busy. Use it: TCP would reach the same server, only slower (and needs
    # keys where the socket does not).
    return ipc


async def wait_listening(tcp_endpoint: str, timeout: float) -> bool:
    """Wait up to `timeout` seconds until a server listens on loopback `tcp_endpoint` (its
    TCP port takes a connection, or its Unix-domain twin does); True once one does, at once
    for an endpoint on another host (nothing to see from here). A task being (re)started is
    not listening yet: connecting to it now would settle on TCP for good (its Unix name is
    not there yet), so a caller waits here first. Polls with backoff (10 ms doubling to
    200 ms): a refused connection is a cheap local syscall."""
    ipc = ipc_endpoint(tcp_endpoint)
    if ipc is None:
        return True
    host, _, port = tcp_endpoint[len("tcp://"):].rpartition(":")
    host = host.strip("[]")
    pause = 0.01
    with trio.move_on_after(timeout):
        while True:
            if listening(ipc):
                return True
            try:
                stream = await trio.open_tcp_stream(host, int(port))
            except OSError:
                pass
            else:
                await stream.aclose()
                # it binds its Unix name right after its port: give it that moment
                for _ in range(10):
                    if listening(ipc):
                        break
                    await trio.sleep(0.01)
                return True
            await trio.sleep(pause)
            pause = min(pause * 2, 0.2)
    return False


def dealer(ctx: zmq.Context, endpoint: str, config: SocketConfig, *,
           routing_id: bytes | None = None, name: str = "",
           on_receive: Callable[[list], None],
           on_lost: Callable[[], None] | None = None) -> ZSocket | StreamDealer:
    """The calling socket for `endpoint` (enter it, then ``connect(endpoint)``): a
    `StreamDealer` for ``unix://`` (`on_lost`: its connection broke), else a ZeroMQ DEALER
    (which reconnects without a word: `on_lost` is never called)."""
    if endpoint.startswith(SCHEME):
        return StreamDealer(config, name=name, on_receive=on_receive, on_lost=on_lost)
    return ZSocket(ctx, zmq.DEALER, config, routing_id=routing_id, name=name,
                   on_receive=on_receive)
