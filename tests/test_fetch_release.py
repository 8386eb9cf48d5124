"""A fetched tensor is freed by reference counting alone, on the server and on the client.

A plain-function handler that answers later (`transport.rpc_core.Pending`, as ``run_graph``
does) used to sit in a reference cycle with the server's callback for it (Pending -> callback
-> request -> Pending), so a successful step's fetched tensors stayed alive, and their pool
blocks in use, until the cyclic garbage collector ran. These tests run with the collector
off: what they check must be freed as the last reference goes.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import trio

from scheduler.graphdef import GraphDef, NodeDef
from scheduler.worker_service import WorkerConfig, WorkerService
from transport.rpc import RpcClient, RpcConfig, RpcServer
from transport.rpc_core import Pending

N = 1 << 21  # float32: 8 MiB
DEV = "/job:w/replica:0/task:0/device:CPU:0"


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _until(freed: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether `freed()` came true within `seconds`. libzmq sends a tensor without copying it
    and lets go of it from its own I/O thread (through pyzmq's) a moment after the bytes left,
    so the last reference goes shortly after the client has the reply: polled, bounded. The
    collector is off throughout: only reference counting can make it true."""
    with trio.move_on_after(seconds):
        while not freed():
            await trio.sleep(0.005)
    return freed()


async def test_a_reply_given_later_is_freed_without_the_garbage_collector(no_gc) -> None:
    made: list[weakref.ref] = []

    def later(header: object, tensors: object) -> Pending:
        p = Pending()
        out = np.full(N, 3.0, np.float32)
        made.append(weakref.ref(out))
        trio.lowlevel.current_trio_token().run_sync_soon(p.resolve, {"n": N}, [out])
        return p

    async with RpcServer({"later": later}, config=RpcConfig()) as server:
        async with RpcClient(server.bind(), config=RpcConfig()) as client:
            for _ in range(3):
                header, tensors = await client.call("later", None, timeout=10)
                assert header == {"n": N} and tensors[0][7] == 3.0
                got = weakref.ref(tensors[0])
                del tensors
                assert got() is None, "the client still holds the fetched array"
                assert await _until(lambda: made[-1]() is None), (
                    "the server still holds the array it replied with: "
                    f"{[type(r).__name__ for r in gc.get_referrers(made[-1]())]}")
    assert len(made) == 3


async def test_a_run_graph_fetch_gives_its_pool_block_back_without_the_collector(no_gc) -> None:
    g = GraphDef([
        NodeDef("x", "_Arg", [], DEV, {"index": 0, "dtype": "float32"}, ["float32"], [(N,)]),
        NodeDef("two", "Const", [], DEV, {"value": np.float32(2), "dtype": "float32"},
                ["float32"], [()]),
        NodeDef("y", "Mul", ["x", "two"], DEV, {"T": "float32"}, ["float32"], [(N,)]),
        NodeDef("out", "_Retval", ["y"], DEV, {"index": 0}),
    ])
    async with trio.open_nursery() as nursery:
        service = WorkerService(WorkerConfig(job="w", task=0, cluster={"w": {0: "127.0.0.1:0"}}))
        endpoint = await nursery.start(service.serve)
        pool = service.devices[0].pool
        async with RpcClient(endpoint, config=RpcConfig()) as client:
            h, _ = await client.call("register_graph",
                                     {"device": DEV, "incarnation": service.incarnation},
                                     [np.frombuffer(g.to_bytes(), np.uint8)], timeout=10)
            x = np.random.default_rng(5).standard_normal(N).astype(np.float32)
            for step in (1, 2, 3):
                _, rets = await client.call("run_graph", {
                    "step": step, "graphs": [h["handle"]], "args": [0], "n_args": 1,
                    "rets": [0], "n_rets": 1, "trace": False, "peers": [],
                    "incarnation": service.incarnation}, [x], timeout=10)
                np.testing.assert_array_equal(rets[0], 2 * x)
                del rets
                # the pool counts live blocks by reference count, never by the collector
                assert await _until(lambda: pool.statistics().live_blocks == 0), (
                    f"step {step}: the fetched 8 MiB is still referenced on the server: "
                    f"{pool.statistics()}")
            assert pool.statistics().hits >= 2  # and the block is reused by the next step
        nursery.cancel_scope.cancel()
