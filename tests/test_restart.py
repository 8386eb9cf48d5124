"""A parameter server killed (-9) and restarted on its port under two client sessions, with
real daemons on 127.0.0.1 (``python -m actorflow worker``).

What must hold: no client ever runs a graph another client registered (the restarted task
refuses requests meant for its previous life, and its graph handles are random); every call
returns within the step deadline; the step in flight fails with Unavailable or Aborted naming
the PS; the masters register their partitions again by themselves; the variables the PS lost
are reported as uninitialized by name.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

import actorflow as af
from scheduler.graph_registry import GraphRegistry, new_incarnation
from scheduler.graphdef import GraphDef, NodeDef
from tests.test_distributed import FAST, Daemons, _config
from transport.rpc import RpcClient, RpcConfig

PS = "/job:ps/replica:0/task:0"
DEADLINE_MS = 6000


def test_handles_are_random_and_belong_to_one_incarnation() -> None:
    dev = "/job:ps/replica:0/task:0/device:CPU:0"

    def raw(value: float) -> bytes:
        return GraphDef([NodeDef("c", "Const", [], dev, {"value": value, "dtype": "float32"}),
                         NodeDef("out", "_Retval", ["c"], dev, {"index": 0})]).to_bytes()

    incs = {new_incarnation() for _ in range(64)}
    assert len(incs) == 64 and all(0 < i < 2**64 for i in incs)
    first, second = GraphRegistry(("ps", 0), 11, max_graphs=2), GraphRegistry(("ps", 0), 22)
    h1 = first.register(dev, raw(1.0), lambda g: g)
    assert first.register(dev, raw(1.0), lambda g: g) == h1  # the same bytes: the same handle
    h2 = second.register(dev, raw(7.0), lambda g: g)
    assert h1 != h2 and h1 > 1 << 20 and h2 > 1 << 20  # not counted from 1
    # a request for the previous life of the task is refused, naming it, never served
    with pytest.raises(af.AbortedError, match=r"task:0 restarted: .*0x000000000000000b.*"
                                              r"0x0000000000000016.*register the graph again"):
        second.check_incarnation({"incarnation": 11}, "run_graph")
    second.check_incarnation({"incarnation": 22}, "run_graph")
    with pytest.raises(af.InvalidArgumentError, match="'incarnation' must be"):
        second.check_incarnation({}, "run_graph")
    with pytest.raises(af.AbortedError, match="is not registered on .*register the graph again"):
        second.lookup([h1])
    # the least recently used graph is dropped past max_graphs: a run naming it is refused
    first.register(dev, raw(2.0), lambda g: g)
    first.register(dev, raw(3.0), lambda g: g)
    with pytest.raises(af.AbortedError, match="least recently used"):
        first.lookup([h1])
    assert len(first) == 2


def _session(d: Daemons, g: af.Graph, tcp: bool, rpc: af.RPCOptions = FAST) -> af.Session:
    cfg = _config(rpc)
    cfg.operation_timeout_in_ms = DEADLINE_MS
    s = af.Session(d.target("worker", 0), graph=g, config=cfg)
    if tcp:  # every task over TCP: the master must notice the restart from the incarnation
        s._runtime.options = dataclasses.replace(s._runtime.options, same_host_ipc=False)
    return s


def _client_graph(initial: float, name: str = "v") -> tuple[af.Graph, Any, Any, Any]:
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            v = af.Variable(np.float32(initial), name=name)
        with af.device("/job:worker/task:0"):
            step = v.assign_add(v.read_value() * 0.0 + 1.0)
        init = af.global_variables_initializer()
    return g, v, step, init


def _timed(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    t0 = time.monotonic()
    try:
        return fn(), None
    except af.OpError as e:
        return None, e
    finally:
        took = time.monotonic() - t0
        assert took < DEADLINE_MS / 1000, f"a call took {took:.2f}s, past the step deadline"


def _ok(fn: Callable[[], Any]) -> Any:
    """`fn()`, which must succeed within the step deadline."""
    out, err = _timed(fn)
    if err is not None:
        raise err
    return out


def _until_ok(fn: Callable[[], Any], seconds: float = 30.0) -> Any:
    """`fn()` once it succeeds; every failure before must be the PS's restart, named."""
    limit = time.monotonic() + seconds
    while True:
        out, err = _timed(fn)
        if err is None:
            return out
        if not isinstance(err, af.UnavailableError | af.AbortedError):
            raise err
        assert PS in str(err), str(err)
        assert time.monotonic() < limit, f"still failing after {seconds}s: {err}"
        time.sleep(0.05)  # a real process restarting: polled, with a bounded deadline


@pytest.mark.multiprocess
@pytest.mark.parametrize("tcp", [False, True], ids=["same-host-socket", "tcp"])
def test_kill_9_and_restart_of_a_ps_under_two_clients(tmp_path, tcp: bool) -> None:
    d = Daemons(tmp_path, {"ps": 1, "worker": 1}, FAST)
    try:
        d.start()
        ga, va, step_a, init_a = _client_graph(3.0)
        gb, vb, _, init_b = _client_graph(7.0)
        gc, _, step_c, init_c = _client_graph(0.0, name="w")
        with _session(d, ga, tcp) as a, _session(d, gb, tcp) as b, \
                _session(d, gc, tcp) as c:
            _ok(lambda: a.run(init_a))  # every call returns within the deadline: timed
            assert _ok(lambda: a.run(step_a)) == 4.0
            _ok(lambda: b.run(vb))  # b's read partition is registered on the first life of the PS
            _ok(lambda: c.run(init_c))
            assert _ok(lambda: c.run(step_c)) == 1.0

            # a third client keeps a step in flight through the kill and the restart
            stop = threading.Event()
            seen: list[tuple[Any, BaseException | None]] = []

            def loop() -> None:
                while not stop.is_set():
                    seen.append(_timed(lambda: c.run(step_c)))

            runner = threading.Thread(target=loop)
            runner.start()
            try:
                d.kill("ps", 0)
                d.restart("ps", 0)
                # the PS lost its variables: a's step says which, once a reaches the new life
                with pytest.raises(af.FailedPreconditionError, match="uninitialized.*'v"):
                    _until_ok(lambda: a.run(step_a))
                _until_ok(lambda: b.run(init_b))  # b initializes on the new life first
                assert _ok(lambda: b.run(vb)) == 7.0
                _until_ok(lambda: a.run(init_a))  # a runs its own initializer, not b's
                assert _ok(lambda: b.run(vb)) == 3.0
                assert _ok(lambda: a.run(step_a)) == 4.0
            finally:
                stop.set()
                runner.join(60)
            errors = [e for _, e in seen if e is not None]
            assert errors, "the third client's steps never met the restart"
            for e in errors:
                if isinstance(e, af.FailedPreconditionError):
                    assert "uninitialized" in str(e) and "'w" in str(e), str(e)
                else:
                    assert isinstance(e, af.UnavailableError | af.AbortedError), repr(e)
                    assert PS in str(e), str(e)
            _until_ok(lambda: c.run(init_c))
            assert _ok(lambda: c.run(step_c)) == 1.0
    finally:
        d.close()


def _status_of(address: str) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        async with RpcClient(f"tcp://{address}", config=RpcConfig()) as client:
            header, _ = await client.call("status", None, timeout=10)
            return header

    return trio.run(ask)


def _push_graph() -> tuple[af.Graph, Any, Any]:
    """x is fed on the worker and pushed to the PS, which sends back its sum."""
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [PUSHED], name="x")
        with af.device("/job:ps/task:0"):
            y = af.reduce_sum(x, name="y")
    return g, x, y


PUSHED = 1 << 18  # float32: 1 MiB (through shared memory on this host)
# masters that do not notice a restart by their heartbeats (the new life answers the pings)
DEAF = af.RPCOptions(heartbeat_interval=1.0, heartbeat_timeout=120.0, connect_timeout=20.0)


@pytest.mark.multiprocess
def test_a_push_to_a_restarted_ps_is_refused_at_once_and_kept_nowhere(tmp_path) -> None:
    """Two clients run the same graph (the same Recv keys on the PS). The PS is killed (-9)
    and restarted on its port; client b registers again with the new life. Client a's
    master has not noticed (TCP and long heartbeats: the new process answers its pings), so
    the worker pushes a's tensor naming the PS's previous life: the new life must refuse it
    and keep nothing (before, it waited as an orphan step for `orphan_ttl`), and a's step
    must fail at once with Aborted naming the PS, then run on the next try."""
    d = Daemons(tmp_path, {"ps": 1, "worker": 1})  # CALM: heartbeats time out after 10 s
    try:
        d.start()
        rng = np.random.default_rng(1203)
        xa, xb = (rng.standard_normal(PUSHED).astype(np.float32) for _ in range(2))
        (ga, x_a, y_a), (gb, x_b, y_b) = _push_graph(), _push_graph()
        with _session(d, ga, True, DEAF) as a, _session(d, gb, True, DEAF) as b:
            np.testing.assert_allclose(a.run(y_a, {x_a: xa}), xa.sum(), rtol=1e-4)
            np.testing.assert_allclose(b.run(y_b, {x_b: xb}), xb.sum(), rtol=1e-4)
            d.kill("ps", 0)
            d.restart("ps", 0)
            got = _until_ok(lambda: b.run(y_b, {x_b: xb}))  # b: the new life has its graph
            np.testing.assert_allclose(got, xb.sum(), rtol=1e-4)
            ps, worker = (d.cluster[job][0] for job in ("ps", "worker"))
            before = _status_of(ps)["service"]["stale_refused"]

            t0 = time.monotonic()
            with pytest.raises(af.AbortedError, match=f"{PS}.*restarted") as info:
                a.run(y_a, {x_a: xa})
            took = time.monotonic() - t0
            assert took < 3.0, f"a's step took {took:.2f}s to fail (deadline {DEADLINE_MS}ms)"
            svc = _status_of(ps)["service"]
            assert svc["stale_refused"] == before + 1, (svc, str(info.value))
            steps = svc["steps"]
            assert (steps["orphans"], steps["orphan_bytes"]) == (0, 0), steps
            limit = time.monotonic() + 10  # the worker's side of a's step is over, its segment
            while True:                    # back: polled (a real process), bounded
                w = _status_of(worker)["service"]
                if (w["steps"]["live"], w["shm_busy"]) == (0, 0) or time.monotonic() > limit:
                    break
                time.sleep(0.02)
            assert (w["steps"]["live"], w["shm_busy"]) == (0, 0), w
            assert w["refused_by_peers"] >= 1, w
            # a registers with the new life by itself; each client gets its own sum
            got = _until_ok(lambda: a.run(y_a, {x_a: xa}))
            np.testing.assert_allclose(got, xa.sum(), rtol=1e-4)
            np.testing.assert_allclose(b.run(y_b, {x_b: xb}), xb.sum(), rtol=1e-4)
    finally:
        d.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="same-host Unix sockets are Linux's")
async def test_a_client_waits_for_a_starting_task_to_listen_then_takes_its_unix_socket() -> None:
    """A task being (re)started is not listening yet: `wait_listening` returns once its port
    and Unix twin are bound (not after a timeout), so the master then picks the twin (it once
    settled on TCP before the twin existed, which the task's keys refuse)."""
    import socket

    import zmq

    from transport.local_ipc import ipc_endpoint, prefer_ipc, wait_listening
    from transport.rpc import RpcServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tcp, twin = f"tcp://127.0.0.1:{port}", ipc_endpoint(f"tcp://127.0.0.1:{port}")
    assert await wait_listening(tcp, 0.05) is False  # nothing there: False after the timeout
    assert await wait_listening("tcp://10.255.255.1:1", 0.05) is True  # another host: not ours
    heard: list[tuple[bool, float]] = []
    done = trio.Event()
    ctx = zmq.Context()
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                async def wait() -> None:
                    heard.append((await wait_listening(tcp, 30), trio.current_time()))
                    done.set()

                nursery.start_soon(wait)
                await trio.testing.wait_all_tasks_blocked()
                assert heard == []  # still waiting: nothing listens yet
                async with RpcServer({}, ctx=ctx) as server:
                    server.bind(tcp)
                    server.bind(twin)  # as a worker service does: the port, then its twin
                    bound = trio.current_time()
                    await done.wait()
                    assert heard[0][0] is True and heard[0][1] - bound < 1.0
                    assert await prefer_ipc(tcp, timeout=1.0) == twin
    finally:
        ctx.destroy(linger=0)
