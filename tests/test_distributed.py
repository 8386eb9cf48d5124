"""Distributed execution: real worker daemons (``python -m actorflow worker``) on 127.0.0.1,
the master in this process (``af.Session("af://...")``), and the worker service's step
bookkeeping driven directly over RPC.

Daemons are started on free ports, waited for by their ``READY`` line (never by sleeping),
and always killed by the fixture's finalizer, even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import trio
import zmq

import actorflow as af
from actorflow.cli import add_worker_arguments, worker_config
from scheduler.distributed import DEFAULT_STEP_TIMEOUT, DistributedRuntime, MasterOptions
from scheduler.graphdef import GraphDef, NodeDef
from scheduler.worker_service import WorkerConfig, WorkerService
from transport.codec import decode_message, encode
from transport.local_ipc import ipc_endpoint
from transport.rpc import RpcClient, RpcConfig
from transport.unix_stream import address_of
from transport.zsocket import ZSocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Short heartbeats only where a test kills a task; elsewhere a loaded machine (other test
# processes) must not make a live task look dead.
HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT = 0.2, 1.0
FAST = af.RPCOptions(heartbeat_interval=HEARTBEAT_INTERVAL,
                     heartbeat_timeout=HEARTBEAT_TIMEOUT, connect_timeout=20.0)
CALM = af.RPCOptions(heartbeat_interval=0.5, heartbeat_timeout=10.0, connect_timeout=20.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemons:
    """Worker daemons of one cluster, started as subprocesses; `close` kills what is left."""

    def __init__(self, tmp_path, spec: dict[str, int], rpc: af.RPCOptions = CALM):
        self.rpc = rpc
        self.spec = spec
        self.path = tmp_path / "cluster.json"
        self.procs: dict[tuple[str, int], subprocess.Popen] = {}
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.cluster = {job: [f"127.0.0.1:{_free_port()}" for _ in range(n)]
                        for job, n in self.spec.items()}
        self.path.write_text(json.dumps(self.cluster))

    def start(self, timeout: float = 90.0, attempts: int = 3) -> None:
        """Start the daemons; when one exits before READY (its port was taken meanwhile,
        e.g. as another connection's source port), start them all again on new ports."""
        for _ in range(attempts):
            if self._start_once(timeout):
                return
            self.close()
            self.procs.clear()
            self._pick_ports()
        raise RuntimeError(f"a daemon exited before READY, {attempts} times (its stderr is "
                           "above)")

    def _spawn(self, job: str, i: int) -> None:
        flags = ["--heartbeat-interval", str(self.rpc.heartbeat_interval),
                 "--heartbeat-timeout", str(self.rpc.heartbeat_timeout)]
        self.procs[(job, i)] = subprocess.Popen(
            [sys.executable, "-m", "actorflow", "worker", "--cluster", str(self.path),
             "--job", job, "--task", str(i), *flags],
            stdout=subprocess.PIPE, cwd=ROOT)

    def restart(self, job: str, i: int, timeout: float = 90.0) -> None:
        """Start task (job, i) again on its port (after `kill`); returns once it is READY."""
        old = self.procs[(job, i)]
        if old.stdout:
            old.stdout.close()
        self._spawn(job, i)
        if not self._wait_ready({(job, i): self.procs[(job, i)]}, timeout):
            raise RuntimeError(f"{job}:{i} exited before READY when restarted")

    def _start_once(self, timeout: float) -> bool:
        for job, tasks in self.cluster.items():
            for i in range(len(tasks)):
                self._spawn(job, i)
        return self._wait_ready(self.procs, timeout)

    def _wait_ready(self, procs: dict[tuple[str, int], subprocess.Popen],
                    timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for key, p in procs.items():
                sel.register(p.stdout, selectors.EVENT_READ, key)
            waiting = set(procs)
            while waiting:
                left = deadline - time.monotonic()
                events = sel.select(max(left, 0)) if left > 0 else []
                if not events:
                    raise TimeoutError(f"daemons {sorted(waiting)} printed no READY line")
                for k, _ in events:
                    line = k.fileobj.readline().decode()
                    job, i = k.data
                    if not line:
                        return False  # it exited: the caller retries on other ports
                    want = f"READY af://{self.cluster[job][i]}"
                    assert line.strip() == want, f"{k.data}: {line!r}, expected {want!r}"
                    sel.unregister(k.fileobj)
                    waiting.discard(k.data)
        return True

    def target(self, job: str, i: int) -> str:
        return f"af://{self.cluster[job][i]}"

    def kill(self, job: str, i: int) -> None:
        p = self.procs[(job, i)]
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
            if p.stdout:
                p.stdout.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Daemons]:
    """One PS and two workers, shared by the tests that kill nothing."""
    d = Daemons(tmp_path_factory.mktemp("cluster"), {"ps": 1, "worker": 2})
    try:
        d.start()
        yield d
    finally:
        d.close()


@pytest.fixture
def own_cluster(tmp_path) -> Iterator[Daemons]:
    """A PS and a worker for one test that may kill them."""
    d = Daemons(tmp_path, {"ps": 1, "worker": 1}, FAST)
    try:
        d.start()
        yield d
    finally:
        d.close()


def _config(rpc: af.RPCOptions = CALM) -> af.ConfigProto:
    c = af.ConfigProto()
    c.rpc_options = rpc  # type: ignore[attr-defined]
    return c


def _split_model(rng: np.random.Generator, place: bool):
    """Variables on the PS, one layer per worker, an update back on the PS."""
    dev = af.device if place else (lambda _: contextlib.nullcontext())
    w1v = rng.standard_normal((4, 5)).astype(np.float32)
    w2v = rng.standard_normal((5, 2)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        with dev("/job:ps/task:0"):
            w1 = af.Variable(w1v, name="w1")
            w2 = af.Variable(w2v, name="w2")
        x = af.placeholder(af.float32, (None, 4), name="x")
        with dev("/job:worker/task:0"):
            h = af.tanh(af.matmul(x, w1))
        with dev("/job:worker/task:1"):
            y = af.reduce_sum(af.matmul(h, w2), axis=0)
        with dev("/job:ps/task:0"):
            upd = af.group(w2.assign_add(af.ones((5, 2)) * af.reduce_mean(y)), name="train")
        init = af.global_variables_initializer()
    return g, init, x, h, y, upd, w2


# -- real daemons --------------------------------------------------------------------------------
@pytest.mark.multiprocess
def test_split_graph_over_ps_and_two_workers_matches_one_process(cluster: Daemons) -> None:
    seed = int(np.random.default_rng().integers(1 << 31))
    xv = np.random.default_rng(seed + 1).standard_normal((3, 4)).astype(np.float32)
    results = []
    for target, place in (("", False), (cluster.target("worker", 0), True)):
        g, init, x, h, y, upd, w2 = _split_model(np.random.default_rng(seed), place)
        with af.Session(target, graph=g, config=_config()) as s:
            s.run(init)
            first = s.run([h, y], {x: xv})
            md = af.RunMetadata()
            s.run(upd, {x: xv}, run_metadata=md)
            results.append((first, s.run(w2)))
            if place:
                # a group target runs its members where they are: no NoOp, no extra hop
                assert "train" not in md.placement
                md = af.RunMetadata()
                s.run(y, {x: xv}, run_metadata=md)
                used = {d.split("/device")[0] for d in md.placement.values()}
                assert used == {"/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0",
                                "/job:worker/replica:0/task:1"}
                assert md.bytes_moved > 0
    (local_hy, local_w2), (dist_hy, dist_w2) = results
    for a, b in zip(local_hy + [local_w2], dist_hy + [dist_w2], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=f"seed {seed}")


@pytest.mark.multiprocess
def test_variables_are_shared_between_client_sessions(cluster: Daemons) -> None:
    def build():
        g = af.Graph()
        with g.as_default(), af.device("/job:ps/task:0"):
            v = af.Variable(np.zeros((3,), np.float64), name="shared_counter")
            bump = v.assign_add(np.ones((3,)))
        return g, v, bump

    value = np.random.default_rng().standard_normal(3)
    g1, v1, bump1 = build()
    g2, v2, bump2 = build()
    with af.Session(cluster.target("worker", 0), graph=g1, config=_config()) as s1, \
            af.Session(cluster.target("worker", 1), graph=g2, config=_config()) as s2:
        with g1.as_default():
            s1.run(v1.assign(value))
        np.testing.assert_array_equal(s2.run(v2), value)
        s2.run(bump2)
        np.testing.assert_array_equal(s1.run(v1), value + 1)
        s1.run(bump1)
        np.testing.assert_array_equal(s2.run(v2), value + 1 + 1)


@pytest.mark.multiprocess
def test_a_remote_op_error_arrives_with_its_class_and_node(cluster: Daemons) -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, None, name="x")
        with af.device("/job:worker/task:1"):
            bad = af.reshape(x * 2.0, [5], name="bad_reshape")
            fine = af.identity(x * 2.0, name="fine")
    with af.Session(cluster.target("worker", 0), graph=g, config=_config()) as s:
        with pytest.raises(af.InvalidArgumentError) as info:
            s.run(bad, {x: np.ones(3, np.float32)})
        assert info.value.node == "bad_reshape"
        assert "/job:worker/replica:0/task:1" in (info.value.device or "")
        # the cluster is not wedged: the next steps run
        np.testing.assert_array_equal(s.run(fine, {x: np.ones(3, np.float32)}), [2, 2, 2])
        np.testing.assert_array_equal(s.run(bad, {x: np.ones(5, np.float32)}), [2] * 5)


@pytest.mark.multiprocess
def test_kill_9_of_a_task_fails_a_step_that_needs_it_with_unavailable(own_cluster) -> None:
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            v = af.Variable(np.float32(1.0), name="v")
        with af.device("/job:worker/task:0"):
            step = v.assign_add(v.read_value() * 0.0 + 1.0)
            local = af.constant(3.0) * 2.0
        init = af.global_variables_initializer()
    with af.Session(own_cluster.target("worker", 0), graph=g, config=_config(FAST)) as s:
        s.run(init)
        assert s.run(step) == 2.0
        own_cluster.kill("ps", 0)
        t0 = time.monotonic()
        with pytest.raises(af.UnavailableError) as info:
            s.run(step)
        took = time.monotonic() - t0
        assert took < 2 * HEARTBEAT_TIMEOUT, f"took {took:.2f}s"
        assert "/job:ps/replica:0/task:0" in str(info.value)
        assert s.run(local) == 6.0  # steps that do not need the dead task still run
        t0 = time.monotonic()
        with pytest.raises(af.UnavailableError):  # and later steps needing it fail fast
            s.run(step)
        assert time.monotonic() - t0 < 2 * HEARTBEAT_TIMEOUT


@pytest.mark.multiprocess
def test_sigterm_stops_a_daemon_cleanly(own_cluster) -> None:
    p = own_cluster.procs[("worker", 0)]
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert time.monotonic() - t0 < 3.0
    p = own_cluster.procs[("ps", 0)]
    p.send_signal(signal.SIGINT)
    assert p.wait(10) == 0


def _malformed(rng: np.random.Generator, i: int, recv_key: str, inc: int) -> tuple[list, bool]:
    """Message i of the fuzz: (frames, whether the daemon must answer it)."""
    kind = i % 10
    rid = 1_000_000 + i
    if kind == 0:  # random bytes
        return [rng.bytes(int(rng.integers(0, 200)))], True
    if kind == 1:  # several random frames
        return [rng.bytes(int(rng.integers(1, 50))) for _ in range(int(rng.integers(2, 5)))], True
    if kind == 2:  # a request whose tensor frame is truncated
        frames = encode({"k": "q", "id": rid, "m": "deliver", "t": 5.0,
                         "h": {"step": 1, "key": recv_key}}, [np.ones(16, np.float32)])
        return [frames[0], bytes(frames[1])[:int(rng.integers(0, 63))]], True
    if kind == 3:  # headers that are not requests
        bad = [None, 7, "q", [1, 2], {"k": "q"}, {"k": "q", "id": "x", "m": "status"},
               {"k": "z", "id": rid}, {"k": "q", "id": rid, "m": 5, "t": None},
               {"k": "q", "id": rid, "m": "status", "t": -1.0}, {"k": "r", "id": rid}]
        return encode(bad[int(rng.integers(len(bad)))]), True
    if kind == 4:  # unknown methods
        return encode({"k": "q", "id": rid, "m": "nope_" + rng.bytes(4).hex(), "t": 5.0,
                       "h": None}), True
    if kind == 5:  # a known Recv key with the wrong dtype
        dt = [np.int32, np.float64, np.uint8, np.bool_][int(rng.integers(4))]
        return encode({"k": "q", "id": rid, "m": "deliver", "t": 5.0,
                       "h": {"step": int(rng.integers(1 << 62)), "key": recv_key,
                             "incarnation": inc}},
                      [np.zeros(3, dt)]), True
    if kind == 6:  # register_graph with garbage
        t = [np.frombuffer(rng.bytes(64), np.uint8), np.ones(4, np.float32)][i % 2]
        dev = "/job:worker/replica:0/task:0/device:CPU:0"
        return encode({"k": "q", "id": rid, "m": "register_graph", "t": 5.0,
                       "h": {"device": dev}}, [t]), True
    if kind == 7:  # run_graph with bogus fields
        hs = [{"step": "x"}, {"step": 1, "graphs": [10**9], "args": [], "n_args": 0,
                              "rets": [], "n_rets": 0},
              {"step": 2, "graphs": [1, 1], "args": [0], "n_args": 1, "rets": [], "n_rets": 0},
              {"step": -3}, None, [1, 2, 3]]
        return encode({"k": "q", "id": rid, "m": "run_graph", "t": 5.0,
                       "h": hs[int(rng.integers(len(hs)))]}, [np.ones(2)]), True
    if kind == 8:  # deliver/abort/reset with wrong field types
        hs = [("deliver", {"step": 1, "key": "no-such-key"}), ("deliver", {"step": 1.5}),
              ("abort", {"step": 3, "code": "x", "message": 1}), ("reset", {"containers": 5}),
              ("abort", {"step": -1, "code": 3, "message": "m"})]
        m, h = hs[int(rng.integers(len(hs)))]
        return encode({"k": "q", "id": rid, "m": m, "t": 5.0, "h": h}, [np.ones(1)]), True
    # a valid header with a tensor descriptor that lies about its dtype or shape
    frames = encode({"k": "q", "id": rid, "m": "deliver", "t": 5.0, "h": {"step": 1}},
                    [np.ones((2, 3), np.float32)])
    return [frames[0], rng.bytes(int(rng.integers(1, 30)))], True


class _RawStream:
    """A bare Unix-stream client speaking `transport.unix_stream`'s framing, blocking."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(address)
        self.buf = b""

    def send_multipart(self, frames: list, copy: bool = True) -> None:
        views = [memoryview(f).cast("B") for f in frames]
        self.sock.sendall(struct.pack(f"<I{len(views)}Q", len(views), *(v.nbytes for v in views))
                          + b"".join(bytes(v) for v in views))

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "the daemon hung up"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def poll(self, timeout_ms: int) -> bool:
        if self.buf:
            return True
        return bool(select.select([self.sock], [], [], timeout_ms / 1000)[0])

    def recv_multipart(self) -> list[bytes]:
        (count,) = struct.unpack("<I", self._need(4))
        sizes = struct.unpack(f"<{count}Q", self._need(8 * count))
        return [self._need(n) for n in sizes]

    def close(self, linger: int = 0) -> None:
        self.sock.close()


@pytest.mark.multiprocess
@pytest.mark.parametrize("path", ["tcp", "unix"])
def test_ten_thousand_malformed_messages_then_a_real_step(cluster: Daemons, path: str) -> None:
    """Over ZeroMQ (TCP), and over the Unix-stream twin the daemon also serves on this host
    (where garbage connections are thrown in as well)."""
    # a real step first, so the daemon has registered partitions (and a Recv key to target)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (3,), name="x")
        with af.device("/job:worker/task:1"):
            y = af.identity(x + 1.0, name="y")
    target = cluster.target("worker", 0)  # feeds cross to worker 1: a Recv key there
    with af.Session(target, graph=g, config=_config()) as s:
        np.testing.assert_array_equal(s.run(y, {x: np.zeros(3, np.float32)}), [1, 1, 1])
        (plan,) = s._plans.values()
        inc = s._runtime._tasks[("worker", 1)].incarnation  # the receiver's life
        recv_keys = [n.attrs["key"] for part in plan.step.tasks for _, raw in part.graphs
                     for n in GraphDef.from_bytes(raw).nodes if n.op == "_Recv"]
    (recv_key,) = [k for k in recv_keys if k.endswith("/job:worker/replica:0/task:1/device:CPU:0")]
    seed = int(np.random.default_rng().integers(1 << 31))
    rng = np.random.default_rng(seed)
    ctx = zmq.Context()
    address = "tcp://" + cluster.cluster["worker"][1]
    if path == "tcp":
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
    else:
        twin = address_of(ipc_endpoint(address))
        for _ in range(20):  # connections that send garbage and hang up
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as junk:
                junk.connect(twin)
                junk.sendall(rng.bytes(int(rng.integers(1, 3000))))
        sock = _RawStream(twin)
    sent = expected = errors = wrong_dtype = 0
    try:
        for batch in range(20):
            for i in range(batch * 500, (batch + 1) * 500):
                frames, answered = _malformed(rng, i, recv_key, inc)
                sock.send_multipart(frames, copy=True)
                sent += 1
                expected += answered
            while errors < expected:  # every reply must be an error reply
                assert sock.poll(20_000), f"no reply after {errors}/{expected} (seed {seed})"
                header, _, error = decode_message(sock.recv_multipart())
                assert header.get("k") == "r" and error is not None, (header, seed)
                errors += 1
                rid = header.get("id")
                if type(rid) is int and (rid - 1_000_000) % 10 == 5:
                    assert isinstance(error, af.InvalidArgumentError), (error, seed)
                    assert "expects float32" in str(error), (error, seed)
                    wrong_dtype += 1
    finally:
        sock.close(0)
        ctx.term()
    assert sent == 10_000 and errors == expected and wrong_dtype == 1000
    with af.Session(target, graph=g, config=_config()) as s:
        np.testing.assert_array_equal(s.run(y, {x: np.ones(3, np.float32)}), [2, 2, 2])


# -- in-process: af.Server, ClusterSpec, the CLI's configuration ---------------------------------
def test_cluster_spec_as_tensorflow_users_know_it() -> None:
    spec = af.ClusterSpec({"worker": ["a:1", "b:2"], "ps": {0: "c:3", 2: "d:4"}})
    assert spec.jobs == ["ps", "worker"]
    assert spec.num_tasks("ps") == 2 and spec.task_indices("ps") == [0, 2]
    assert spec.task_address("worker", 1) == "b:2"
    assert spec.job_tasks("ps") == ["c:3", None, "d:4"]
    assert spec.as_dict() == {"worker": ["a:1", "b:2"], "ps": {0: "c:3", 2: "d:4"}}
    assert af.ClusterSpec(spec) == spec
    with pytest.raises(af.InvalidArgumentError, match="no job 'chief'.*ps, worker"):
        spec.num_tasks("chief")
    with pytest.raises(af.InvalidArgumentError, match="has no task 5"):
        spec.task_address("worker", 5)
    with pytest.raises(af.InvalidArgumentError, match="not 'host:port'"):
        af.ClusterSpec({"ps": ["localhost"]})
    with pytest.raises(af.InvalidArgumentError, match=r"write \['h:1'\]"):
        af.ClusterSpec({"ps": "h:1"})


def test_worker_flags_and_af_config() -> None:
    import argparse

    p = argparse.ArgumentParser()
    add_worker_arguments(p)
    env = json.dumps({"cluster": {"ps": ["127.0.0.1:5000"], "worker": ["127.0.0.1:5001"]},
                      "task": {"type": "worker", "index": 0}})
    cfg = worker_config(p.parse_args(["--device-count", "CPU=2"]), env)
    assert (cfg.job, cfg.task, cfg.address) == ("worker", 0, "127.0.0.1:5001")
    assert cfg.bind_host == "127.0.0.1" and cfg.runtime.device_count["CPU"] == 2
    cfg = worker_config(p.parse_args(["--job", "ps", "--task", "0", "--bind", "0.0.0.0",
                                     "--insecure"]), env)
    assert (cfg.job, cfg.address, cfg.bind_host) == ("ps", "127.0.0.1:5000", "0.0.0.0")
    with pytest.raises(ValueError, match="pass --cluster"):
        worker_config(p.parse_args(["--job", "ps", "--task", "0"]), None)
    with pytest.raises(ValueError, match="--job/--task ps:3: job 'ps' has no task 3"):
        worker_config(p.parse_args(["--job", "ps", "--task", "3"]), env)


def test_in_process_servers_and_a_session() -> None:
    cluster = af.ClusterSpec({"ps": [f"127.0.0.1:{_free_port()}"],
                              "worker": [f"127.0.0.1:{_free_port()}"]})
    with af.Server(cluster, "ps", 0, config=_config()), \
            af.Server(cluster, "worker", 0, config=_config()) as worker:
        assert worker.target == "af://" + cluster.task_address("worker", 0)
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                v = af.Variable(np.arange(3.0), name="v")
            with af.device("/job:worker/task:0"):
                y = v * 2.0
            init = af.global_variables_initializer()
            # independent work that asks for no device stays on the client's task
            x = af.placeholder(af.float32, (256, 256))
            total = af.add_n([af.matmul(x + float(i), x) for i in range(4)])
        with af.Session(worker.target, graph=g, config=_config()) as s:
            assert s.list_devices() == ["/job:worker/replica:0/task:0/device:CPU:0",
                                        "/job:ps/replica:0/task:0/device:CPU:0"]
            s.run(init)
            np.testing.assert_array_equal(s.run(y), [0, 2, 4])
            md = af.RunMetadata()
            xv = np.random.default_rng().standard_normal((256, 256)).astype(np.float32)
            got = s.run(total, {x: xv}, run_metadata=md)
            want = sum((xv + i) @ xv for i in range(4))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
            assert set(md.placement.values()) == {"/job:worker/replica:0/task:0/device:CPU:0"}
    with af.Server.create_local_server() as local:
        with af.Session(local.target, graph=g) as s:
            with pytest.raises(af.InvalidArgumentError, match="/job:ps/task:0"):
                s.run(y)  # no such task in this cluster: the placer says what there is


@contextlib.contextmanager
def _bump_session() -> Iterator[tuple[af.Session, Any, Any, Any]]:
    """In-process servers for ps0 and worker0 and a session on worker0: ``(session, v, bump,
    bad)``, where `bump` adds 1 computed on the worker to `v` on ps0 (initialised to 0) and
    `bad` reads a variable on ps0 that is never initialised."""
    cluster = af.ClusterSpec({"ps": [f"127.0.0.1:{_free_port()}"],
                              "worker": [f"127.0.0.1:{_free_port()}"]})
    with af.Server(cluster, "ps", 0, config=_config()), \
            af.Server(cluster, "worker", 0, config=_config()) as worker:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                v = af.Variable(np.float64(0), name="v")
                never = af.Variable(np.float64(0), name="never_initialized")
            with af.device("/job:worker/task:0"):
                one = v.value() * 0.0 + 1.0
                bad = never.value() + 1.0
            bump = v.assign_add(one)
        with af.Session(worker.target, graph=g, config=_config()) as s:
            s.run(v.initializer)
            yield s, v, bump, bad


def test_sync_steps_send_their_requests_from_the_callers_threads(monkeypatch) -> None:
    """A sync step's request to a same-host task leaves from the caller's own thread, before
    the master's loop wakes; four threads stepping at once on one session all land, and an
    error that comes back before the loop starts the step's own part still ends the step
    with its class and node, the session going on."""
    left_from = []
    real = RpcClient.start_call_from_thread

    def spy(self, *args, **kwargs):
        rid = real(self, *args, **kwargs)
        left_from.append((threading.current_thread(), rid))
        return rid

    monkeypatch.setattr(RpcClient, "start_call_from_thread", spy)
    with _bump_session() as (s, v, bump, bad):
        s.run(bump)
        left_from.clear()
        s.run(bump)
        assert left_from == [(threading.current_thread(), left_from[0][1])]
        assert left_from[0][1] > 0

        def steps(n: int) -> None:
            for _ in range(n):
                s.run(bump)

        threads = [threading.Thread(target=steps, args=(150,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert s.run(v) == 2 + 4 * 150
        assert {t for t, rid in left_from if rid} >= set(threads)
        for _ in range(20):
            with pytest.raises(af.FailedPreconditionError) as info:
                s.run(bad)
            assert "never_initialized" in str(info.value)
            assert s.run(bump) == s.run(v)
        assert s.run(v) == 2 + 4 * 150 + 20


def test_a_failure_while_sending_ahead_leaves_the_step_to_the_loop(monkeypatch) -> None:
    """If sending a request from the caller's thread fails (an error, or an interrupt such as
    Ctrl-C), the master's loop still runs the step: an error there falls back to the loop's
    own send, and an interrupted step runs to its end instead of leaving its tasks waiting."""
    with _bump_session() as (s, v, bump, _):
        assert s.run(bump) == 1.0
        raised = []

        def failing(self, *args, **kwargs):
            raised.append(1)
            raise raised_kind("sending from this thread failed")

        monkeypatch.setattr(RpcClient, "start_call_from_thread", failing)
        raised_kind = RuntimeError
        assert s.run(bump) == 2.0 and raised == [1]
        raised_kind = KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            s.run(bump)
        monkeypatch.undo()
        deadline = time.monotonic() + 10
        while s.run(v) != 3.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.run(v) == 3.0  # the interrupted step ran to its end
        assert s.run(bump) == 4.0


def test_device_filters_leave_out_tasks_that_are_not_up() -> None:
    cluster = af.ClusterSpec({"ps": [f"127.0.0.1:{_free_port()}"],
                              "worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]})
    with af.Server(cluster, "ps", 0), af.Server(cluster, "worker", 0) as worker:
        config = _config(af.RPCOptions(connect_timeout=0.5))
        t0 = time.monotonic()
        with pytest.raises(af.UnavailableError, match="/job:worker/replica:0/task:1 .*no answer"):
            af.Session(worker.target, config=config).__enter__()
        assert time.monotonic() - t0 < 5.0
        config.device_filters = ["/job:ps"]  # type: ignore[attr-defined]
        with af.Session(worker.target, graph=af.Graph(), config=config) as s:
            assert s.list_devices() == ["/job:worker/replica:0/task:0/device:CPU:0",
                                        "/job:ps/replica:0/task:0/device:CPU:0"]


def test_session_target_errors() -> None:
    with pytest.raises(af.InvalidArgumentError, match="af://HOST:PORT"):
        af.Session("grpc://localhost:2222")
    config = af.ConfigProto()
    config.rpc_options = af.RPCOptions(heartbeat_interval=0.05, heartbeat_timeout=0.2,
                                       connect_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(af.UnavailableError, match="did not answer"):
        with af.Session(f"af://127.0.0.1:{_free_port()}", config=config):
            pass
    assert time.monotonic() - t0 < 3.0


async def test_async_session_on_an_in_process_server() -> None:
    server = af.Server.create_local_server(config=_config())
    try:
        g = af.Graph()
        with g.as_default():
            x = af.placeholder(af.float32, (2,))
            y = x * 3.0
        async with af.Session(server.target, graph=g, config=_config()) as s:
            np.testing.assert_array_equal(await s.run(y, {x: np.ones(2, np.float32)}), [3, 3])
    finally:
        server.stop()


# -- the worker service's step bookkeeping, over RPC ---------------------------------------------
_DEV = "/job:w/replica:0/task:0/device:CPU:0"
_KEY = "a:0->" + _DEV


def _recv_graph() -> np.ndarray:
    g = GraphDef([
        NodeDef("recv", "_Recv", [], _DEV, {"key": _KEY, "send_device": "/job:w/task:1",
                                             "recv_device": _DEV, "tensor_name": "a:0",
                                             "dtype": "float32"}, ["float32"], [(3,)]),
        NodeDef("out", "_Retval", ["recv"], _DEV, {"index": 0}),
    ])
    return np.frombuffer(g.to_bytes(), np.uint8)


async def _service(nursery, **kw) -> tuple[WorkerService, RpcClient]:
    cfg = WorkerConfig(job="w", task=0, cluster={"w": {0: "127.0.0.1:0", 1: "127.0.0.1:9"}},
                       **kw)
    service = WorkerService(cfg)
    endpoint = await nursery.start(service.serve)
    client = RpcClient(endpoint, config=RpcConfig())
    await client.__aenter__()
    return service, client


def _reg(service: WorkerService, device: str = _DEV) -> dict:
    """A register_graph header for this life of `service`."""
    return {"device": device, "incarnation": service.incarnation}


def _dlv(step: int, service: WorkerService, key: str = _KEY) -> dict:
    """A deliver header for this life of `service`."""
    return {"step": step, "key": key, "incarnation": service.incarnation}


def _run(step: int, handle: int, service: WorkerService) -> dict:
    return {"step": step, "graphs": [handle], "args": [], "n_args": 0, "rets": [0],
            "n_rets": 1, "trace": False, "incarnation": service.incarnation}


async def test_deliveries_before_the_step_abort_and_orphan_bounds() -> None:
    async with trio.open_nursery() as nursery:
        service, c = await _service(nursery, max_orphan_steps=2)
        try:
            h, _ = await c.call("register_graph", _reg(service), [_recv_graph()])
            again, _ = await c.call("register_graph", _reg(service), [_recv_graph()])
            assert again == h  # idempotent
            handle = h["handle"]
            value = np.random.default_rng().standard_normal(3).astype(np.float32)
            # a tensor that arrives before its step starts waits for it
            await c.call("deliver", _dlv(11, service), [value])
            _, rets = await c.call("run_graph", _run(11, handle, service))
            np.testing.assert_array_equal(rets[0], value)
            # the step is over: a late duplicate is dropped, a second run refused
            await c.call("deliver", _dlv(11, service), [value])
            with pytest.raises(af.InvalidArgumentError, match="already ran"):
                await c.call("run_graph", _run(11, handle, service))
            # abort wakes a waiting Recv; an abort that comes first fails the run at once
            async with trio.open_nursery() as inner:
                got: list = []

                async def waiting() -> None:
                    with pytest.raises(af.AbortedError, match="stop 12"):
                        await c.call("run_graph", _run(12, handle, service))
                    got.append(True)
                inner.start_soon(waiting)
                with trio.fail_after(5):  # the run has started on the service's loop
                    while service.statistics().steps.live == 0:
                        await trio.sleep(0.001)
                await c.call("abort", {"step": 12, "code": 10, "message": "stop 12"})
            assert got == [True]
            await c.call("abort", {"step": 13, "code": 10, "message": "stop 13"})
            with pytest.raises(af.AbortedError, match="stop 13"):
                await c.call("run_graph", _run(13, handle, service))
            # orphans are bounded: the oldest is evicted and its step fails when it comes
            for step in (21, 22, 23):
                await c.call("deliver", _dlv(step, service), [value])
            assert service.statistics().steps.orphans == 2
            with pytest.raises(af.ResourceExhaustedError, match="max_orphan_steps"):
                await c.call("run_graph", _run(21, handle, service))
            _, rets = await c.call("run_graph", _run(23, handle, service))
            np.testing.assert_array_equal(rets[0], value)
            # wrong dtypes and unknown keys are refused
            with pytest.raises(af.InvalidArgumentError, match="expects float32"):
                await c.call("deliver", _dlv(30, service), [np.zeros(3, np.int32)])
            with pytest.raises(af.NotFoundError, match="receives 'nope'"):
                await c.call("deliver", _dlv(30, service, "nope"), [value])
            header, _ = await c.call("reset", {"containers": None})
            assert header == {"containers": []}
            # a deadline cancels the step on the service, which then forgets it
            live = service.statistics().steps.live  # orphan 22 is still waiting
            with pytest.raises(af.DeadlineExceededError):
                await c.call("run_graph", _run(40, handle, service), timeout=0.2)
            with trio.fail_after(5):
                while service.statistics().steps.live > live:
                    await trio.sleep(0.005)
            with pytest.raises(af.OpError):
                await c.call("run_graph", _run(40, handle, service))
        finally:
            await c.__aexit__(None, None, None)
            nursery.cancel_scope.cancel()


async def test_a_push_to_a_silent_task_fails_the_step_with_unavailable() -> None:
    key = "c:0->/job:w/replica:0/task:1/device:CPU:0"  # task 1: nothing listens there
    g = GraphDef([
        NodeDef("c", "Const", [], _DEV, {"value": np.ones(3, np.float32), "dtype": "float32"},
                ["float32"], [(3,)]),
        NodeDef("send", "_Send", ["c"], _DEV, {"key": key, "send_device": _DEV,
                                               "recv_device": key.split("->")[1],
                                               "tensor_name": "c:0"}),
    ])
    async with trio.open_nursery() as nursery:
        rpc = RpcConfig(heartbeat_interval=0.05, heartbeat_timeout=0.3)
        service, c = await _service(nursery, rpc=rpc)
        try:
            h, _ = await c.call("register_graph", _reg(service),
                                [np.frombuffer(g.to_bytes(), np.uint8)])
            header = {"step": 5, "graphs": [h["handle"]], "args": [], "n_args": 0, "rets": [],
                      "n_rets": 0, "trace": False, "incarnation": service.incarnation,
                      "peers": [["w", 1, 12345]]}
            t0 = trio.current_time()
            with pytest.raises(af.UnavailableError, match="task:1 failed: no connection"):
                await c.call("run_graph", header)
            assert trio.current_time() - t0 < 2 * rpc.heartbeat_timeout
            assert service.statistics().push_failures == 1
        finally:
            await c.__aexit__(None, None, None)
            nursery.cancel_scope.cancel()


async def test_one_way_pushes_land_or_fail_their_step_on_the_receiver() -> None:
    """Pushes get no reply: a good one feeds the step's Recv, a refused one (wrong dtype,
    unknown key) fails that step here, and the service keeps serving."""
    async with trio.open_nursery() as nursery:
        service, c = await _service(nursery)
        try:
            h, _ = await c.call("register_graph", _reg(service), [_recv_graph()])
            handle = h["handle"]
            value = np.arange(3, dtype=np.float32)

            def push(step: int, key: str, tensor: np.ndarray) -> list:
                return encode({"k": "s", "m": "push", "h": {
                    "step": step, "key": key, "incarnation": service.incarnation}}, [tensor])

            async with ZSocket(zmq.Context.instance(), zmq.DEALER, routing_id=b"pusher") as d:
                d.connect(service.endpoint)
                await d.send(push(50, _KEY, value))
                await d.send(push(51, _KEY, np.zeros(3, np.int64)))
                await d.send(push(52, "no-such-key", value))
                with trio.fail_after(5):
                    while service.statistics().delivered < 1:
                        await trio.sleep(0.005)
                _, rets = await c.call("run_graph", _run(50, handle, service))
                np.testing.assert_array_equal(rets[0], value)
                with pytest.raises(af.InvalidArgumentError, match="refused: .*expects float32"):
                    await c.call("run_graph", _run(51, handle, service))
                with pytest.raises(af.NotFoundError, match="refused: .*receives 'no-such-key'"):
                    await c.call("run_graph", _run(52, handle, service))
                with trio.move_on_after(0.2):  # no reply ever comes to a push
                    await d.receive()
                    pytest.fail("a one-way push was answered")
        finally:
            await c.__aexit__(None, None, None)
            nursery.cancel_scope.cancel()


def _task_status(d: Daemons, job: str, i: int) -> dict[str, Any]:
    """Task (job, i)'s ``status``, asked by a fresh client (no session state involved)."""
    async def ask() -> dict[str, Any]:
        async with RpcClient(f"tcp://{d.cluster[job][i]}", config=RpcConfig()) as c:
            header, _ = await c.call("status", None, timeout=10)
            return header

    return trio.run(ask)


@pytest.mark.multiprocess
def test_step_timeout_fails_a_step_on_a_hung_task_with_deadline_exceeded(
        cluster: Daemons) -> None:
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            v = af.Variable(np.float32(1.0), name="hung_v")
        with af.device("/job:worker/task:0"):
            y = v.value() * 2.0
    target = cluster.target("worker", 0)
    with af.Session(target, graph=g) as sess:
        sess.run(v.initializer)
        assert float(sess.run(y)) == 2.0
    # every step has a deadline: the default, the configured one, or the run's own
    assert MasterOptions().step_timeout == DEFAULT_STEP_TIMEOUT
    assert MasterOptions(step_timeout=None).step_timeout == DEFAULT_STEP_TIMEOUT
    with pytest.raises(af.InvalidArgumentError, match="finite number of seconds"):
        MasterOptions(step_timeout=-1.0)
    rt = DistributedRuntime(target, options=MasterOptions(step_timeout=0.5))
    plain = DistributedRuntime(target)  # the default deadline; each run gives its own below
    rt.start_in_thread()
    plain.start_in_thread()
    try:
        step = rt.compile(g.as_graph_def(), feeds=[], fetches=[y.name], targets=[])
        np.testing.assert_allclose(rt.run(step, [])[0], 2.0)
        step2 = plain.compile(g.as_graph_def(), feeds=[], fetches=[y.name], targets=[])
        np.testing.assert_allclose(plain.run(step2, [])[0], 2.0)
        ps = cluster.procs[("ps", 0)]
        ps.send_signal(signal.SIGSTOP)
        try:
            for runtime, st, timeout in ((rt, step, None), (plain, step2, 0.4)):
                t0 = time.monotonic()
                # The master's deadline, or the same one enforced by worker 0 (it was sent
                # along): under load either may fire first.
                with pytest.raises(af.DeadlineExceededError,
                                   match="no reply in time|ran past its deadline") as info:
                    runtime.run(st, [], timeout=timeout)
                assert time.monotonic() - t0 < 2.0
                if "no reply yet from" in str(info.value):  # the master's names who was
                    assert f"({timeout or 0.5:g}s" in str(info.value)  # silent (the worker
                    # service's own says "a request ran past its deadline on worker service")
            # the worker's Recv of the value was bounded by the same deadline: its part of
            # the steps is over while the PS is still stopped (polled: a real process)
            limit = time.monotonic() + 5
            while True:
                worker = _task_status(cluster, "worker", 0)
                waiting = [d["async_kernels_waiting"] for d in worker["device_stats"]]
                if (worker["steps"], sum(waiting)) == (0, 0) or time.monotonic() > limit:
                    break
                time.sleep(0.02)
            assert (worker["steps"], waiting) == (0, [0] * len(waiting)), worker["service"]
            assert ps.poll() is None  # (still stopped: nothing but the deadline ended it)
        finally:
            ps.send_signal(signal.SIGCONT)
        np.testing.assert_allclose(rt.run(step, [])[0], 2.0)  # the task is back
    finally:
        rt.close()
        plain.close()


@pytest.mark.multiprocess
async def test_cancelling_an_async_step_aborts_it_and_the_session_goes_on(
        cluster: Daemons) -> None:
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            v = af.Variable(np.float32(5.0), name="cancel_v")
        with af.device("/job:worker/task:1"):
            y = v.value() + 1.0
    async with af.Session(cluster.target("worker", 0), graph=g, config=_config()) as s:
        await s.run(v.initializer)
        assert float(await s.run(y)) == 6.0
        ps = cluster.procs[("ps", 0)]
        ps.send_signal(signal.SIGSTOP)
        try:
            with trio.move_on_after(0.3) as scope:
                await s.run(y)
            assert scope.cancelled_caught
        finally:
            ps.send_signal(signal.SIGCONT)
        with trio.fail_after(10):
            assert float(await s.run(y)) == 6.0


async def test_large_pushes_to_a_task_on_this_host_go_through_shared_memory() -> None:
    """Two services on 127.0.0.1: a 2 MiB tensor travels through a shared-memory segment (the
    push carries its descriptor), lands intact, the receiver's shm_free makes the segment
    reusable, and the next step reuses it; with shm_min_bytes=0 it goes as a frame."""
    ports = [_free_port(), _free_port()]
    cluster = {"w": {0: f"127.0.0.1:{ports[0]}", 1: f"127.0.0.1:{ports[1]}"}}
    dev0, dev1 = "/job:w/replica:0/task:0/device:CPU:0", "/job:w/replica:0/task:1/device:CPU:0"
    key = "c:0->" + dev0
    n = 1 << 19  # float32: 2 MiB
    recv = GraphDef([
        NodeDef("recv", "_Recv", [], dev0, {"key": key, "send_device": dev1, "recv_device": dev0,
                                             "tensor_name": "c:0", "dtype": "float32"},
                ["float32"], [(n,)]),
        NodeDef("out", "_Retval", ["recv"], dev0, {"index": 0}),
    ])

    def send_graph(value: np.ndarray) -> np.ndarray:
        g = GraphDef([
            NodeDef("c", "Const", [], dev1, {"value": value, "dtype": "float32"}, ["float32"],
                    [(n,)]),
            NodeDef("send", "_Send", ["c"], dev1, {"key": key, "send_device": dev1,
                                                   "recv_device": dev0, "tensor_name": "c:0"}),
        ])
        return np.frombuffer(g.to_bytes(), np.uint8)

    rng = np.random.default_rng()
    for min_bytes in (1 << 20, 0):
        async with trio.open_nursery() as nursery:
            services, clients = [], []
            for t in (0, 1):
                s = WorkerService(WorkerConfig(job="w", task=t, cluster=cluster,
                                               shm_min_bytes=min_bytes))
                await nursery.start(s.serve)
                c = RpcClient(s.endpoint, config=RpcConfig())
                await c.__aenter__()
                services.append(s)
                clients.append(c)
            try:
                hr, _ = await clients[0].call("register_graph", {"device": dev0,
                                              "incarnation": services[0].incarnation},
                                              [np.frombuffer(recv.to_bytes(), np.uint8)])
                for step in (1, 2):
                    value = rng.standard_normal(n).astype(np.float32)
                    hs, _ = await clients[1].call("register_graph", {"device": dev1,
                                                  "incarnation": services[1].incarnation},
                                                  [send_graph(value)])
                    got: list = []

                    async def receive(step: int = step, c: RpcClient = clients[0],
                                      handle: int = hr["handle"], out: list = got,
                                      to: WorkerService = services[0]) -> None:
                        _, rets = await c.call("run_graph", _run(step, handle, to))
                        out.append(rets[0])

                    nursery.start_soon(receive)
                    await clients[1].call("run_graph", {
                        "step": step, "graphs": [hs["handle"]], "args": [], "n_args": 0,
                        "rets": [], "n_rets": 0, "trace": False,
                        "incarnation": services[1].incarnation,
                        "peers": [["w", 0, services[0].incarnation]]})
                    with trio.fail_after(5):
                        while not got or services[1].statistics().shm_busy:
                            await trio.sleep(0.005)
                    np.testing.assert_array_equal(got[0], value)
                stats = services[1].statistics()
                assert stats.pushed == 2
                assert stats.shm_pushed == (2 if min_bytes else 0)
                pools = [c.pool for c in services[1]._outbox._channels.values()]
                if min_bytes:
                    assert len(pools[0]._segments) == 1  # the second step reused the segment
                else:
                    assert pools == [None]
            finally:
                for c in reversed(clients):  # their nurseries nest: last in, first out
                    await c.__aexit__(None, None, None)
                nursery.cancel_scope.cancel()
    mine = [f for f in os.listdir("/dev/shm") if f.startswith(f"af{os.getpid()}x")]
    assert mine == []  # closed pools unlink their segments


@pytest.mark.multiprocess
async def test_statistics_of_a_cluster_come_from_every_task(cluster: Daemons) -> None:
    from devices.device import DeviceStatistics

    g = af.Graph()
    with g.as_default():
        with af.device("/job:worker/task:1"):
            big = af.zeros((512, 512)) + 1.0  # 1 MiB from worker 1's pool
            y = af.reduce_sum(big)
    target = cluster.target("worker", 0)
    with af.Session(target, graph=g, config=_config()) as s:
        assert float(s.run(y)) == 512 * 512
        stats = s.statistics()
        assert [st.name for st in stats] == s.list_devices()
        assert all(isinstance(st, DeviceStatistics) for st in stats)
        w1 = next(st for st in stats if "/job:worker/replica:0/task:1/" in st.name)
        assert w1.pool.peak_bytes_in_use >= 512 * 512 * 4
    async with af.Session(target, graph=g, config=_config()) as a:
        with pytest.raises(af.FailedPreconditionError, match="astatistics"):
            a.statistics()
        got = await a.astatistics()
        assert [st.name for st in got] == [st.name for st in stats]
