"""Same-host connections: loopback TCP endpoints have a Unix-domain twin on Linux, a client
uses it only when a server answers there, and a worker service binds it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import trio
import zmq

from scheduler.worker_service import WorkerConfig, WorkerService
from transport.local_ipc import ipc_endpoint, prefer_ipc
from transport.rpc import RpcClient, RpcConfig, RpcServer
from transport.runtime_dir import default_runtime_dir

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets")


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def test_only_loopback_tcp_endpoints_have_a_twin() -> None:
    # in this user's private runtime directory, never the abstract namespace
    run = default_runtime_dir()
    want = f"unix://{run}/4-2222" if sys.platform.startswith("linux") else None
    assert ipc_endpoint("tcp://127.0.0.1:2222") == want
    assert ipc_endpoint("tcp://localhost:2222") == want
    if want:
        assert ipc_endpoint("tcp://[::1]:2222") == f"unix://{run}/6-2222"
        assert ipc_endpoint("tcp://[::1]:2222", "/x/y") == "unix:///x/y/6-2222"
    assert ipc_endpoint("tcp://10.1.2.3:2222") is None
    assert ipc_endpoint("tcp://127.0.0.1:*") is None
    assert ipc_endpoint("ipc://@x") is None


async def echo(header, tensors):
    return header, tensors


@linux
async def test_a_client_takes_the_twin_only_when_a_server_answers_there(ctx) -> None:
    with trio.fail_after(10):
        async with RpcServer({"echo": echo}, ctx=ctx) as server:
            tcp = server.bind("tcp://127.0.0.1:*")
            # no twin bound yet: stay on TCP (after a short probe)
            assert await prefer_ipc(tcp, timeout=0.1) == tcp
            twin = ipc_endpoint(tcp)
            server.bind(twin)
            chosen = await prefer_ipc(tcp, timeout=1.0)
            assert chosen == twin
            async with RpcClient(chosen, ctx=ctx) as client:
                h, t = await client.call("echo", {"a": 1}, [np.arange(3)], timeout=5)
                assert h == {"a": 1}
                np.testing.assert_array_equal(t[0], np.arange(3))


@linux
async def test_a_worker_service_answers_on_its_twin(ctx) -> None:
    port = _free_port()
    service = WorkerService(WorkerConfig(job="w", task=0, cluster={"w": {0: f"127.0.0.1:{port}"}}))
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(service.serve)
        try:
            chosen = await prefer_ipc(endpoint, timeout=1.0)
            assert chosen == f"unix://{default_runtime_dir()}/4-{port}"
            # asked for the task it is, it answers; for another task, TCP is kept
            assert await prefer_ipc(endpoint, timeout=1.0, task=("w", 0)) == chosen
            assert await prefer_ipc(endpoint, timeout=1.0, task=("w", 1)) == endpoint
            async with RpcClient(chosen, config=RpcConfig(), ctx=ctx) as client:
                header, _ = await client.call("status", None, timeout=5)
                assert header["job"] == "w" and header["task"] == 0
        finally:
            nursery.cancel_scope.cancel()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
