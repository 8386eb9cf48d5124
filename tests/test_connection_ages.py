"""`RpcServer.connections` (issue 16: how long since a task heard from each master): a client
names itself (name, pid, client id) on its first request and its pings; the time since its
last request grows while it idles, while its pings keep it heard from; a request brings it back
to ~0; a closed client is gone: at once over a same-host stream, after ``heartbeat_timeout``
of silence over TCP. A real server and real clients on 127.0.0.1, short heartbeats."""

from __future__ import annotations

import os
import socket
import time

import pytest
import trio

from transport.rpc import ConnectionInfo, RpcClient, RpcConfig, RpcServer

CFG = RpcConfig(heartbeat_interval=0.05, heartbeat_timeout=0.3)


def _echo(header: object, tensors: list) -> tuple[object, list]:
    return header, []


async def _until(server: RpcServer, ok, what: str, limit: float = 10.0) -> ConnectionInfo:
    """The server's one connection once `ok(it)` holds (polled, bounded)."""
    deadline = time.monotonic() + limit
    while True:
        [c] = server.connections()
        if ok(c):
            return c
        assert time.monotonic() < deadline, f"{what}: {c}"
        await trio.sleep(0.01)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:*", "unix://@af-test-conn-ages-{}"])
async def test_a_client_is_named_ages_while_idle_and_is_gone_once_closed(endpoint: str) -> None:
    async with RpcServer({"echo": _echo}, config=CFG) as server:
        bound = server.bind(endpoint.format(os.urandom(4).hex()))
        async with RpcClient(bound, config=CFG, name="master -> t0", client_id=42) as client:
            assert server.connections() == []
            await client.call("echo", {"x": 1}, timeout=5)
            [c] = server.connections()
            assert (c.name, c.pid, c.client_id, c.requests) == ("master -> t0", os.getpid(), 42, 1)
            assert c.alive and c.asked is not None and 0 <= c.heard <= c.asked < 5
            assert c.peer.startswith("unix:") == bound.startswith("unix:")
            # idle: the time since its last request grows past several heartbeat intervals,
            # while its pings keep it heard from
            idle = await _until(server, lambda c: c.asked > 4 * CFG.heartbeat_interval
                                and c.heard < c.asked, "pings while idle")
            assert idle.alive and idle.requests == 1
            t0 = time.monotonic()
            await client.call("echo", None, timeout=5)
            [back] = server.connections()
            assert back.asked <= time.monotonic() - t0 < idle.asked and back.requests == 2
        # closed: a stream says so at once; over TCP, silence past heartbeat_timeout does
        gone = await _until(server, lambda c: not c.alive, "gone once closed")
        assert gone.name == "master -> t0" and gone.requests == 2
        if bound.startswith("unix:"):
            assert gone.heard < CFG.heartbeat_timeout
        else:
            assert gone.heard >= CFG.heartbeat_timeout


async def test_a_client_that_only_pings_is_named_and_has_no_request_age() -> None:
    async with RpcServer({"echo": _echo}, config=CFG) as server:
        bound = server.bind()
        async with RpcClient(bound, config=CFG, name="watcher") as client:
            await client.wait_ready()  # a pong came back: the server has its ping
            c = await _until(server, lambda c: c.name is not None, "named by its ping")
            assert c.name == "watcher" and c.asked is None and c.requests == 0 and c.alive
            assert type(c.client_id) is int and c.client_id >= 0


async def test_a_server_restarted_under_a_busy_client_learns_its_name() -> None:
    """A busy client never pings; it still names itself once per heartbeat interval, so a
    server that restarted on its address (the client never saw it dead) knows it soon."""
    # (an interval longer than the restart takes: the client is never silent that long, so
    # it never pings the new server)
    cfg = RpcConfig(heartbeat_interval=0.5, heartbeat_timeout=30.0)
    with socket.socket() as s:  # a free port for both lives of the server
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    async with RpcClient(endpoint, config=cfg, name="busy master") as client:
        async with RpcServer({"echo": _echo}, config=cfg) as first:
            first.bind(endpoint)
            await client.call("echo", None, timeout=5)
            assert [c.name for c in first.connections()] == ["busy master"]
        async with RpcServer({"echo": _echo}, config=cfg) as second:
            second.bind(endpoint)
            deadline = time.monotonic() + 10
            while not any(c.name == "busy master" for c in second.connections()):
                assert time.monotonic() < deadline, second.connections()
                await client.call("echo", None, timeout=5)  # busy: replies, never silent
            [c] = second.connections()
            assert c.alive and c.asked is not None and c.requests >= 1
