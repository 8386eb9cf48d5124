"""Parameter-server training with real worker daemons on 127.0.0.1: asynchronous
between-graph training reaches the accuracy of one process, a killed worker daemon fails only
the steps that need it (within twice the heartbeat timeout), sparse updates touch only the
gathered rows, and ``actorflow cluster`` serves until SIGTERM."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import actorflow as af
from actorflow.cluster import LocalCluster, child_env, spawn, stop_processes
from models.train_async import Trainers, build_embedding_replica, train_mlp_async

pytestmark = pytest.mark.multiprocess

HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0}
DAEMON_HEARTBEAT = ["--heartbeat-interval", "0.2", "--heartbeat-timeout", "1.0"]


def _chief_session(cluster: LocalCluster, graph: af.Graph) -> af.Session:
    config = af.ConfigProto()
    config.rpc_options = af.RPCOptions(**HEARTBEAT)  # type: ignore[attr-defined]
    return af.Session(cluster.target("worker", 0), graph=graph, config=config)


def test_async_mlp_training_reaches_95_percent() -> None:
    out = io.StringIO()
    result = train_mlp_async(ps=1, workers=2, steps=300, progress=True, out=out)
    assert result["test_accuracy"] >= 0.95, result
    # every update of both workers incremented the global step on the PS, none was lost
    assert result["steps"] == 600
    assert result["steps_per_sec"] > 0 and result["workers"] == 2
    text = out.getvalue()
    assert "600/600 steps" in text and "steps/s" in text and "loss" in text


def test_killing_a_worker_daemon_fails_only_the_steps_that_need_it() -> None:
    with LocalCluster(ps=1, workers=2, daemon_args=DAEMON_HEARTBEAT) as cluster:
        spec = cluster.as_dict()
        from models.train_async import build_mlp_replica
        g, _ = build_mlp_replica(spec, 0)
        with g.as_default():
            init = af.global_variables_initializer()
        with _chief_session(cluster, g) as s:
            s.run(init)
        params = [{"kind": "mlp", "task": i, "workers": 2, "cluster": spec,
                   "target": cluster.target("worker", i), "steps": 10**6, "max_seconds": 60.0,
                   "batch_size": 32, "learning_rate": 0.01, "optimizer": "adam",
                   "hidden": [64], "rpc": HEARTBEAT, "report_every": 0.0}
                  for i in range(2)]
        t_kill = None
        after_kill: list[float] = []   # times of trainer 0's steps after the kill
        errors: list[tuple[str, float, str]] = []
        exits = {}
        with Trainers(params) as trainers:
            seen = [0, 0]
            for ev in trainers.events(timeout=60):
                if ev.kind == "STEP":
                    seen[ev.task] = ev.steps
                    if t_kill is None and min(seen) >= 20:
                        cluster.kill("worker", 1)   # kill -9 of trainer 1's worker daemon
                        t_kill = time.monotonic()
                    elif t_kill is not None and ev.task == 0 and ev.time > t_kill:
                        after_kill.append(ev.time)
                elif ev.kind == "ERROR":
                    assert ev.task == 1, ev      # trainer 0 never fails
                    errors.append((ev.error, ev.time, ev.message))
                elif ev.kind == "EXIT":
                    exits[ev.task] = ev.returncode
                # trainer 0 goes on well past the failure of trainer 1's step: enough seen
                if errors and len(after_kill) >= 20 and after_kill[-1] > errors[0][1] + 0.5:
                    break
            assert 0 not in exits, trainers.stderr_tail(0)
    assert t_kill is not None
    # trainer 1's next step needed the dead task: UnavailableError within 2x the timeout
    assert errors, "the step on the dead worker did not fail"
    cls, t_err, message = errors[0]
    print(f"detected after {t_err - t_kill:.3f} s: {message}; {len(after_kill)} steps after")
    assert cls == "UnavailableError", errors[0]
    assert t_err - t_kill <= 2 * HEARTBEAT["heartbeat_timeout"], (t_err - t_kill, message)
    assert re.search(r"/job:worker(/replica:0)?/task:1\b", message), message  # names it
    # trainer 0 kept training: its steps after the kill succeeded, also after the failure
    assert len(after_kill) >= 20 and after_kill[-1] > t_err


def test_sparse_updates_touch_only_the_gathered_rows() -> None:
    rows, dim, lr, steps = 1000, 8, 0.1, 15
    rng = np.random.default_rng()
    ids = rng.choice(rows, size=10, replace=False)
    shards = [sorted(int(i) for i in ids[:5]), sorted(int(i) for i in ids[5:])]
    with LocalCluster(ps=1, workers=2, daemon_args=DAEMON_HEARTBEAT) as cluster:
        spec = cluster.as_dict()
        chief = build_embedding_replica(spec, 0, rows=rows, dim=dim, learning_rate=lr)
        # the update is sparse, on the PS: a scatter of the IndexedSlices gradient's rows
        scatters = [op for op in chief.graph.get_operations() if "Scatter" in op.type]
        assert scatters and all(op.device == "/job:ps/task:0" for op in scatters), scatters
        gathers = [op for op in chief.graph.get_operations() if op.type.startswith("Gather")]
        assert gathers and all(op.device == "/job:ps/task:0" for op in gathers), gathers
        with chief.graph.as_default():
            init = af.global_variables_initializer()
        with _chief_session(cluster, chief.graph) as s:
            s.run(init)
            before = s.run(chief.table.read_value())
        params = [{"kind": "embedding", "task": i, "cluster": spec,
                   "target": cluster.target("worker", i), "steps": steps, "rows": rows,
                   "dim": dim, "learning_rate": lr, "ids": shards[i], "rpc": HEARTBEAT}
                  for i in range(2)]
        results = {}
        with Trainers(params) as trainers:
            for ev in trainers.events(timeout=60):
                assert ev.kind != "ERROR", ev
                if ev.kind == "DONE":
                    results[ev.task] = ev.result
                if ev.kind == "EXIT":
                    assert ev.returncode == 0, trainers.stderr_tail(ev.task)
        with _chief_session(cluster, chief.graph) as s:
            after, gstep = s.run([chief.table.read_value(), chief.global_step])
            # a step moves the gathered rows and their update between the tasks, not the table
            md = af.RunMetadata()
            s.run(chief.train_op, {chief.ids: shards[0]}, run_metadata=md)
            assert 0 < md.bytes_moved < before.nbytes / 8, (md.bytes_moved, before.nbytes)
    assert gstep == 2 * steps
    changed = np.flatnonzero(np.any(after != before, axis=1))
    assert sorted(changed.tolist()) == sorted(shards[0] + shards[1])
    # each step: row <- row - lr * 2 (row - 1), on exactly the gathered rows
    touched = shards[0] + shards[1]
    expect = 1.0 + (before[touched] - 1.0) * (1.0 - 2.0 * lr) ** steps
    np.testing.assert_allclose(after[touched], expect, rtol=1e-5)


def test_actorflow_cluster_command_serves_until_sigterm(tmp_path) -> None:
    spec_file = tmp_path / "cluster.json"
    proc = spawn([sys.executable, "-m", "actorflow", "cluster", "--ps", "1", "--workers", "1",
                  "--cluster-file", str(spec_file)], stdout=subprocess.PIPE, env=child_env())
    try:
        lines = []
        for raw in proc.stdout:
            lines.append(raw.decode())
            if raw.startswith(b"ready:"):
                break
        text = "".join(lines)
        spec = json.loads(spec_file.read_text())
        assert f"cluster {json.dumps(spec)}" in text
        assert f"/job:worker/task:0  af://{spec['worker'][0]}" in text
        g = af.Graph()
        with g.as_default(), af.device(af.train.replica_device_setter(cluster=spec)):
            v = af.Variable(41.0, name="v")
            inc = v.assign_add(1.0)
        with af.Session(f"af://{spec['worker'][0]}", graph=g) as s:
            s.run(v.initializer)
            assert s.run(inc) == 42.0
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read().decode()
        assert proc.wait(timeout=20) == 0
        assert "stopped" in rest
    finally:
        stop_processes([proc])


def _sharded(table: np.ndarray, name: str) -> list[af.Variable]:
    """`table` as variables on /job:ps/task:0 and :1, row r on task r % 2 (in the default
    graph)."""
    shards = []
    for k in range(2):
        with af.device(f"/job:ps/task:{k}"):
            shards.append(af.Variable(table[k::2], name=f"{name}{k}"))
    return shards


def test_a_table_sharded_over_two_ps_tasks_gathers_and_updates_on_each() -> None:
    """embedding_lookup over shards on /job:ps/task:0 and :1 (Figure 3's Part/Gather/Stitch):
    each shard's gather and sparse update run on its own PS task, only rows travel, and the
    values are those of one table."""
    rows, dim, lr = 20_000, 16, 0.1
    rng = np.random.default_rng()
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        shards = _sharded(table, "emb")
        with af.device("/job:worker/task:0"):
            ids = af.placeholder(af.int64, [None], name="ids")
            y = af.nn.embedding_lookup(shards, ids)  # "mod": id i in shard i % 2
            loss = af.reduce_sum(y * y)
            train = af.train.GradientDescentOptimizer(lr).minimize(loss)
        gathers = [op for op in g.get_operations() if op.type == "GatherV2"
                   and op.inputs[0].op.type == "ReadVariableOp"]
        assert sorted(op.device for op in gathers) == ["/job:ps/task:0", "/job:ps/task:1"]
        scatters = [op for op in g.get_operations() if "Scatter" in op.type]
        assert sorted({op.device for op in scatters}) == ["/job:ps/task:0", "/job:ps/task:1"]
        init = af.global_variables_initializer()
    iv = rng.choice(rows, size=12, replace=False)
    with LocalCluster(ps=2, workers=1, daemon_args=DAEMON_HEARTBEAT) as cluster, \
            _chief_session(cluster, g) as s:
        s.run(init)
        np.testing.assert_allclose(s.run(y, {ids: iv}), table[iv], rtol=1e-6)
        md = af.RunMetadata()
        s.run(train, {ids: iv}, run_metadata=md)
        assert 0 < md.bytes_moved < table.nbytes / 100, md.bytes_moved
        after = np.empty_like(table)
        after[0::2], after[1::2] = s.run(shards)
    expect = table.copy()
    expect[iv] *= 1 - 2 * lr
    np.testing.assert_allclose(after, expect, rtol=1e-5)


def test_tensors_sent_before_waiting_ride_on_the_run_graph_requests() -> None:
    """An in-process worker whose partition sends ids to the PS tasks before it waits for
    anything: the ids travel inside the PS tasks' run_graph requests (no push of their own),
    and the step computes what it should."""
    from scheduler.worker_service import in_process_service

    with LocalCluster(ps=2, workers=1, daemon_jobs=("ps",),
                      daemon_args=DAEMON_HEARTBEAT) as cluster:
        server = af.Server(cluster.cluster_spec, "worker", 0)
        try:
            table = np.arange(40, dtype=np.float32).reshape(20, 2)
            g = af.Graph()
            with g.as_default():
                shards = _sharded(table, "t")
                with af.device("/job:worker/task:0"):
                    ids = af.placeholder(af.int64, [None])
                    y = af.nn.embedding_lookup(shards, ids) * 2.0
                init = af.global_variables_initializer()
            with af.Session(server.target, graph=g) as s:
                s.run(init)
                service = in_process_service(server.target.replace("af://", "tcp://"))
                before = service.statistics().pushed
                iv = np.array([3, 8, 0, 19, 3])
                for _ in range(5):
                    np.testing.assert_array_equal(s.run(y, {ids: iv}), table[iv] * 2.0)
                # the ids' partitions rode on the requests: nothing was pushed by this task
                assert service.statistics().pushed == before
        finally:
            server.stop()
