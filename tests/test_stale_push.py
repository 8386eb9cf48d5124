"""Tensors pushed between tasks name the receiver's incarnation (issue 12, point 1).

Every ``run_graph`` names the life of each other task of its step (``peers``) and every push
carries the receiver's incarnation from there. A receiver that restarted since (so it runs
another incarnation) refuses the tensor at once, keeps nothing (no orphan step, no bytes, its
shared-memory segment handed back), and answers the push with the error, so that the
sender's step fails at once naming the restarted task, not at its deadline.

Two worker services in this process talk over their real sockets: on 127.0.0.1 (the
Unix-domain stream of this host, shared memory for the large tensor), and on this host's other
address where it has one (ZeroMQ over TCP, as between hosts). The kill -9 and restart of a
real daemon under two clients is in `tests/test_restart.py`.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import trio

import actorflow as af
from scheduler.graphdef import GraphDef, NodeDef
from scheduler.worker_service import WorkerConfig, WorkerService
from tests.test_transport_security import _outside_address
from transport.rpc import RpcClient, RpcConfig

DEV0, DEV1 = "/job:w/replica:0/task:0/device:CPU:0", "/job:w/replica:0/task:1/device:CPU:0"
TO0, TO1 = "c:0->" + DEV0, "r:0->" + DEV1  # task 1 sends to task 0, and waits for an answer
N = 1 << 19  # float32: 2 MiB (through a shared-memory segment on this host)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graph(*nodes: NodeDef) -> np.ndarray:
    return np.frombuffer(GraphDef(list(nodes)).to_bytes(), np.uint8)


def _recv(name: str, key: str, src: str, dst: str, shape: tuple) -> NodeDef:
    return NodeDef(name, "_Recv", [], dst, {"key": key, "send_device": src, "recv_device": dst,
                                            "tensor_name": key.split("->")[0],
                                            "dtype": "float32"}, ["float32"], [shape])


def _send(name: str, src_node: str, key: str, src: str, dst: str) -> NodeDef:
    return NodeDef(name, "_Send", [src_node], src, {"key": key, "send_device": src,
                                                    "recv_device": dst,
                                                    "tensor_name": key.split("->")[0]})


# task 0: receives c, answers r = sum(c); task 1: sends c, fetches r
RECEIVER = _graph(_recv("recv", TO0, DEV1, DEV0, (N,)),
                  NodeDef("r", "Sum", ["recv"], DEV0, {}, ["float32"], [()]),
                  _send("send_r", "r", TO1, DEV0, DEV1))
SENDER = _graph(NodeDef("x", "_Arg", [], DEV1, {"index": 0, "dtype": "float32"}, ["float32"],
                        [(N,)]),
                _send("send_c", "x", TO0, DEV1, DEV0),
                _recv("recv_r", TO1, DEV0, DEV1, ()),
                NodeDef("out", "_Retval", ["recv_r"], DEV1, {"index": 0}))


def _run(step: int, handle: int, svc: WorkerService, peers: list | None, n_args: int) -> dict:
    h = {"step": step, "graphs": [handle], "args": list(range(n_args)), "n_args": n_args,
         "rets": [0] if n_args else [], "n_rets": 1 if n_args else 0, "trace": False,
         "incarnation": svc.incarnation}
    if peers is not None:
        h["peers"] = peers
    return h


@pytest.mark.parametrize("where", ["same-host", "tcp"])
async def test_a_push_to_a_restarted_task_is_refused_kept_nowhere_and_fails_the_sender_at_once(
        where: str) -> None:
    host = "127.0.0.1" if where == "same-host" else _outside_address()
    if host is None:
        pytest.skip("this host has no address but loopback")
    ports = [_free_port(), _free_port()]
    cluster = {"w": {0: f"{host}:{ports[0]}", 1: f"{host}:{ports[1]}"}}
    rpc = RpcConfig(insecure=where == "tcp")  # (no keys: this test is not about trust)
    x = np.random.default_rng(12).standard_normal(N).astype(np.float32)
    async with trio.open_nursery() as nursery:
        svcs: list[WorkerService] = []
        clients: list[RpcClient] = []
        for t in (0, 1):
            svc = WorkerService(WorkerConfig(job="w", task=t, cluster=cluster, bind_host=host,
                                             rpc=rpc))
            await nursery.start(svc.serve)
            client = RpcClient(svc.endpoint, config=rpc)
            await client.__aenter__()
            svcs.append(svc)
            clients.append(client)
        receiver, sender = svcs
        try:
            h0, _ = await clients[0].call("register_graph", {
                "device": DEV0, "incarnation": receiver.incarnation}, [RECEIVER], timeout=10)
            h1, _ = await clients[1].call("register_graph", {
                "device": DEV1, "incarnation": sender.incarnation}, [SENDER], timeout=10)

            # the step as a master runs it: both tasks, each naming the other's life
            async def both(step: int) -> list:
                got: list = []

                async def recv_side() -> None:
                    await clients[0].call("run_graph", _run(
                        step, h0["handle"], receiver, [["w", 1, sender.incarnation]], 0),
                        timeout=10)

                async with trio.open_nursery() as n:
                    n.start_soon(recv_side)
                    _, rets = await clients[1].call("run_graph", _run(
                        step, h1["handle"], sender, [["w", 0, receiver.incarnation]], 1), [x],
                        timeout=10)
                    got.append(rets[0])
                return got

            (total,) = await both(1)
            np.testing.assert_allclose(total, x.sum(), rtol=1e-4)
            # the 2 MiB went through shared memory on this host, as a frame over TCP
            assert sender.statistics().shm_pushed == (1 if where == "same-host" else 0)

            # the sender's master still believes task 0 runs its previous life
            old = receiver.incarnation ^ 0x5A5A
            with trio.fail_after(5):  # at once, not at the 10 s deadline of the call
                with pytest.raises(af.AbortedError) as info:
                    await clients[1].call("run_graph", _run(
                        2, h1["handle"], sender, [["w", 0, old]], 1), [x], timeout=10)
            msg = str(info.value)
            assert "/job:w/replica:0/task:0 refused a tensor /job:w/replica:0/task:1 sent" in msg
            assert f"task /job:w/replica:0/task:0 restarted: it was meant for its incarnation " \
                   f"{old:#018x}" in msg and "nothing was kept" in msg, msg
            # nothing of it is kept on the receiver: no step, no orphan, no bytes
            stats = receiver.statistics()
            assert stats.stale_refused == 1 and stats.delivered == 1, stats
            steps = stats.steps
            assert (steps.live, steps.orphans, steps.orphan_bytes) == (0, 0, 0), steps
            assert sender.statistics().refused_by_peers == 1
            with trio.fail_after(5):  # its segment was handed back to the sender
                while sender.statistics().shm_busy:
                    await trio.sleep(0.005)
            assert sender.statistics().steps.live == 0

            # a step whose run_graph names no life for the receiver pushes nothing
            with trio.fail_after(5):
                with pytest.raises(af.InvalidArgumentError, match="named no incarnation for "
                                                                  "the receiving task"):
                    await clients[1].call("run_graph", _run(3, h1["handle"], sender, None, 1),
                                          [x], timeout=10)
            assert receiver.statistics().steps.orphans == 0

            # and with the receiver's life named right, the pair runs again
            (total,) = await both(4)
            np.testing.assert_allclose(total, x.sum(), rtol=1e-4)
        finally:
            for c in reversed(clients):  # their nurseries nest: last in, first out
                await c.__aexit__(None, None, None)
            nursery.cancel_scope.cancel()
