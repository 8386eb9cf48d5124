"""The hang doctor: a step stuck on a hung PS (SIGSTOP mid-step) and on a killed one, diagnosed
against real daemons naming the node, the task and the cause; the cause rules checked on
literal wait-for graphs (a queue nobody fills, a sender that never ran the step, a restarted
task, a slow sender)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import actorflow as af
from actorflow.client.cluster_status import ClusterStatus, TaskStatus
from actorflow.client.doctor import _explain, diagnose
from actorflow.cluster import LocalCluster

PS = "/job:ps/replica:0/task:0"
WK = "/job:worker/replica:0/task:0"


def _slow_ps_graph() -> tuple[af.Graph, af.Tensor]:
    # ~30 s of matmuls on the PS on this machine (they run on worker threads, so the PS
    # still answers status); the test kills the PS long before they end
    a = np.ones((1200, 1200), np.float32)
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    n = int(min(3000, max(20, 30.0 / max(1e-4, (time.perf_counter() - t0) / 3))))
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            x = af.random_normal([1200, 1200])
            for _ in range(n):
                x = af.matmul(x, x) * 1e-3
            n = af.reduce_sum(x, name="n")
        with af.device("/job:worker/task:0"):
            y = af.identity(n, name="y") * 2.0
    return g, y


def _wait_for_recv(target: str, deadline_s: float = 30.0) -> object:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        d = diagnose(target, timeout=2.0)
        if d.steps and any(e.kind == "recv" for e in d.steps[0].edges):
            return d
    raise AssertionError("the step never showed a waiting Recv")


@pytest.mark.multiprocess
def test_a_hung_ps_and_a_killed_ps_mid_step() -> None:
    with LocalCluster(ps=1, workers=1) as c:
        g, y = _slow_ps_graph()
        cfg = af.ConfigProto()
        cfg.rpc_options = af.RPCOptions(heartbeat_interval=1.0, heartbeat_timeout=60.0)
        s = af.Session(c.target("worker", 0), graph=g, config=cfg)
        res: dict = {}

        def run() -> None:
            try:
                res["value"] = s.run(y)
            except af.OpError as e:
                res["error"] = e
        th = threading.Thread(target=run)
        th.start()
        try:
            d = _wait_for_recv(c.target("worker", 0))
            # while the PS computes: slow, not stuck, and the doctor says so
            step = d.steps[0]
            assert "still computing" in step.cause and step.culprit_task == PS
            recv = next(e for e in step.edges if e.kind == "recv")
            assert recv.task == WK and recv.on == PS and recv.node.startswith("_recv_n_0")
            c.kill("ps", 0, signal.SIGSTOP)  # hung mid-step: connected, silent
            try:
                d = diagnose(c.target("worker", 0), timeout=1.0)
            finally:
                c.kill("ps", 0, signal.SIGCONT)
            assert d.down == [PS]
            step = d.steps[0]
            assert step.culprit_task == PS and step.culprit_node.startswith("_recv_n_0")
            assert f"task {PS} does not answer" in step.cause and WK in step.cause
            # the CLI prints the same diagnosis; killed mid-step, the step fails at once and
            # the doctor reports the dead task
            c.kill("ps", 0)
            th.join(60)
            assert isinstance(res.get("error"), af.UnavailableError) and "ps" in str(res["error"])
            out = subprocess.run([sys.executable, "-m", "models.cli", "doctor",
                                  c.target("worker", 0), "--timeout", "1"],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 1 and f"task {PS} does not answer" in out.stdout
        finally:
            th.join(60)
            s.close()


def _task(name: str, inflight: list, uptime: float = 100.0) -> TaskStatus:
    job, task = name.split("/")[1][4:], int(name.rpartition(":")[2])
    return TaskStatus(job, task, f"127.0.0.1:{1000 + task}", uptime=uptime, inflight=inflight)


def _recv(node: str, frm: str, since: float) -> dict:
    return {"kind": "recv", "key": f"t:0->{WK}/device:CPU:0", "node": node,
            "device": f"{WK}/device:CPU:0", "from_device": f"{frm}/device:CPU:0",
            "since": since}


def test_cause_rules_on_literal_wait_for_graphs() -> None:
    now = time.time()
    wk = _task(WK, [{"step": 7, "age": 2.0, "parts_done": False, "started": True,
                     "waits": [_recv("_recv_t_0", PS, now - 2)]}])
    # the sender's part waits on an empty queue nobody fills
    ps = _task(PS, [{"step": 7, "age": 2.0, "parts_done": False, "started": True, "waits": [
        {"kind": "dequeue", "resource": "FIFOQueue 'q' (0 of 10 elements)", "node": "deq",
         "device": f"{PS}/device:CPU:0", "step": 7, "since": now - 2}]}])
    d = _explain(7, {WK: wk, PS: ps}, set())
    assert (d.culprit_task, d.culprit_node) == (PS, "deq")
    assert "FIFOQueue 'q'" in d.cause and "nothing in flight fills" in d.cause
    assert [e.kind for e in d.edges] == ["dequeue", "recv"] or \
        {e.kind for e in d.edges} == {"dequeue", "recv"}
    # the sender has no such step and has been up all along: its Send never ran
    d = _explain(7, {WK: wk, PS: _task(PS, [])}, set())
    assert d.culprit_task == PS and "has no step 7" in d.cause and "_recv_t_0" in d.cause
    # ... and a sender that started after the wait began has restarted
    d = _explain(7, {WK: wk, PS: _task(PS, [], uptime=0.5)}, set())
    assert "restarted" in d.cause and PS in d.cause
    # a dead sender, and how long ago its peers last heard from it
    d = _explain(7, {WK: wk}, {PS})
    assert "does not answer" in d.cause and "last heard" not in d.cause
    wk.peers = {PS: {"age": 4.25, "alive": False}}
    d = _explain(7, {WK: wk}, {PS})
    assert "does not answer" in d.cause and "its peers last heard from it 4.2s ago" in d.cause
    st = ClusterStatus([wk], now)
    assert st.tasks[0].name == WK
    # the chief's take_grad short of gradients: a worker never joined the sync step; the PS
    # hears from two masters, one idle for 9.5s
    ps = _task(PS, [{"step": 9, "age": 3.0, "parts_done": False, "started": True, "waits": [
        {"kind": "take_grad", "resource": "ConditionalAccumulator 'acc' (step 4, 1 gradients "
         "in)", "node": "sync/take", "device": f"{PS}/device:CPU:0", "step": 9,
         "since": now - 3}]}])
    ps.clients = [{"name": f"master -> {PS}", "alive": True, "asked": a, "client_id": i}
                  for i, a in ((1, 0.2), (2, 9.5))] + [
        {"name": f"master -> {PS}", "alive": False, "asked": 60.0, "client_id": 3},
        {"name": f"{WK} heartbeat to {PS}", "alive": True, "asked": None, "client_id": 4}]
    d = _explain(9, {PS: ps}, set())
    assert (d.culprit_task, d.culprit_node) == (PS, "sync/take")
    assert "a worker never joined this sync step" in d.cause and "1 gradients in" in d.cause
    assert f"{PS} hears from 2 session master(s), the idlest last asked it 9.5s ago" in d.cause


@pytest.mark.multiprocess
def test_a_dequeue_on_an_empty_queue_nobody_fills() -> None:
    if not hasattr(af, "FIFOQueue"):
        pytest.skip("queues (issue 15) are not in this tree")
    with LocalCluster(ps=1, workers=1) as c:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                q = af.FIFOQueue(4, [af.float32], shapes=[()], shared_name="doctor_q")
                deq = q.dequeue(name="take")
                close = q.close()
            with af.device("/job:worker/task:0"):
                y = af.identity(deq, name="y") * 2.0
        s = af.Session(c.target("worker", 0), graph=g)
        res: dict = {}

        def run() -> None:
            try:
                res["value"] = s.run(y)
            except af.OpError as e:
                res["error"] = e
        th = threading.Thread(target=run)
        th.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                d = diagnose(c.target("worker", 0), timeout=2.0)
                # both waits: the PS's dequeue can show before the worker's Recv has begun
                if d.steps and {e.kind for e in d.steps[0].edges} >= {"dequeue", "recv"}:
                    break
            step = d.steps[0]
            assert step.culprit_task == PS and step.culprit_node == "take", d.report()
            assert "dequeue by node 'take'" in step.cause
            assert "nothing in flight fills" in step.cause and "doctor_q" in step.cause
            kinds = {(e.task, e.kind) for e in step.edges}
            assert kinds == {(WK, "recv"), (PS, "dequeue")}
        finally:
            with af.Session(c.target("worker", 0), graph=g) as s2:
                s2.run(close)  # the blocked dequeue wakes with OutOfRange
            th.join(60)
            s.close()
        assert isinstance(res.get("error"), af.OpError)


# -- a wait that begins after its step: "since" is the wait's own start -----------------------
_DEV = "/job:w/replica:0/task:0/device:CPU:0"


def _two_recv_graph() -> np.ndarray:
    from scheduler.graphdef import GraphDef, NodeDef

    def recv(name: str, tensor: str) -> NodeDef:
        return NodeDef(name, "_Recv", [], _DEV, {
            "key": f"{tensor}->{_DEV}", "send_device": "/job:w/replica:0/task:1/device:CPU:0",
            "recv_device": _DEV, "tensor_name": tensor, "dtype": "float32"},
            ["float32"], [(3,)])
    g = GraphDef([recv("early", "a:0"), recv("never", "b:0"),
                  NodeDef("sum", "Add", ["early", "never"], _DEV, {}, ["float32"], [(3,)]),
                  NodeDef("out", "_Retval", ["sum"], _DEV, {"index": 0})])
    return np.frombuffer(g.to_bytes(), np.uint8)


async def test_a_recv_that_starts_waiting_after_its_step_shows_its_own_start() -> None:
    import trio

    from actorflow.client.doctor import adiagnose
    from scheduler.worker_service import WorkerConfig, WorkerService
    from transport.rpc import RpcClient, RpcConfig

    gap = 0.4
    cfg = WorkerConfig(job="w", task=0, cluster={"w": {0: "127.0.0.1:0", 1: "127.0.0.1:9"}})
    service = WorkerService(cfg)
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(service.serve)
        address = endpoint.removeprefix("tcp://")
        async with RpcClient(endpoint, config=RpcConfig()) as c:
            h, _ = await c.call("register_graph", {"device": _DEV,
                                                   "incarnation": service.incarnation},
                                [_two_recv_graph()])
            # a tensor of step 5 arrives early: the step begins here now (an orphan) ...
            born = time.time()
            await c.call("deliver", {"step": 5, "key": f"a:0->{_DEV}",
                                     "incarnation": service.incarnation},
                         [np.ones(3, np.float32)])
            await trio.sleep(gap)  # (a gap to measure, not a synchronisation)
            # ... and its run_graph comes later: only then does the Recv of b:0 start waiting
            run = {"step": 5, "graphs": [h["handle"]], "args": [], "n_args": 0, "rets": [0],
                   "n_rets": 1, "trace": False, "incarnation": service.incarnation}
            ended: list = []

            async def stuck() -> None:
                with pytest.raises(af.CancelledError, match="test over"):
                    await c.call("run_graph", run, timeout=30)
                ended.append(True)
            started = time.time()
            nursery.start_soon(stuck)
            with trio.fail_after(10):
                while True:
                    d = await adiagnose({"w": [address]}, timeout=2.0)
                    if d.steps and d.steps[0].edges:
                        break
            (step,) = d.steps
            (edge,) = step.edges
            assert (edge.node, edge.kind, edge.what) == ("never", "recv", f"b:0->{_DEV}")
            # the wait's own start, not the step's: after the run_graph was sent
            assert started - 0.05 <= edge.since <= time.time(), (edge.since - born, started - born)
            assert edge.since - born >= gap * 0.9
            assert step.age >= gap * 0.9 and time.time() - edge.since < step.age
            report = d.report()
            assert "never (recv 'b:0->" in report and "begun" in report
            # what the report is read from: the service's typed record
            from scheduler.peer_watch import PeerAge
            from scheduler.status_record import TaskStatusRecord
            rec = service.status_record()
            assert isinstance(rec, TaskStatusRecord) and rec.incarnation == service.incarnation
            assert [st.step_id for st in rec.live_steps] == [5]
            assert rec.recv_keys[f"b:0->{_DEV}"].recv_node == "never"
            assert rec.bytes_received == 12  # the early float32[3]
            # nothing listens for task 1: never heard from, so it has no age
            assert rec.peers == {"/job:w/replica:0/task:1": PeerAge(None, False)}
            await c.call("abort", {"step": 5, "code": 1, "message": "test over"})
            with trio.fail_after(10):
                while not ended:
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
