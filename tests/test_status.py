"""``actorflow status`` and its Python API against real daemons on 127.0.0.1: every task's
address, uptime, devices, pools, graphs, bytes moved, heartbeat ages, how long since each
task heard from a session's master (growing while it idles, back to ~0 when it runs a step,
gone once it closes), per-variable staleness (two clients in a deterministic schedule), in a
table and as JSON; a task that does not answer is listed as down; bad targets are refused
with the fix."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import actorflow as af
from actorflow.client.cluster_status import cluster_status, parse_target
from actorflow.cluster import LocalCluster
from tests.test_staleness_stats import WANT, _graph, _schedule, _stats_of
from transport.rpc import RpcConfig

pytestmark = pytest.mark.multiprocess


def test_status_of_a_running_cluster_table_json_and_a_stopped_task(tmp_path) -> None:
    n = int(np.random.default_rng().integers(200, 400))
    with LocalCluster(ps=1, workers=1) as c, contextlib.ExitStack() as stack:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                v = af.Variable(np.ones((n, 10), np.float32), name="v")
            with af.device("/job:worker/task:0"):
                y = af.reduce_sum(v * 2.0)
        # a session kept open (idle) while the others run: its master's ages are checked below
        s = stack.enter_context(af.Session(c.target("worker", 0), graph=g))
        s.run(v.initializer)
        assert s.run(y) == 20.0 * n
        ran_at = time.monotonic()
        # two clients, a deterministic schedule: the PS's staleness counters (issue 17)
        graph = af.Graph()
        with graph.as_default():
            w, value, version, gph, rv, apply = _graph("/job:ps/task:0")
        with af.Session(c.target("worker", 0), graph=graph) as a, \
                af.Session(c.target("worker", 0), graph=graph) as b:
            a.run(w.initializer)
            _schedule(a, b, value, version, gph, rv, apply)
            assert _stats_of(a.statistics(), "/job:ps/") == {"w": WANT}
            assert _stats_of(b.statistics(), "/job:ps/") == {"w": WANT}
        st = _with_heartbeats(c.target("ps", 0))
        by = {t.name: t for t in st.tasks}
        ps, wk = by["/job:ps/replica:0/task:0"], by["/job:worker/replica:0/task:0"]
        assert ps.address == c.as_dict()["ps"][0] and wk.address == c.as_dict()["worker"][0]
        assert ps.error is None and ps.uptime > 0 and ps.pid == c.pid("ps", 0)
        assert [d["name"] for d in ps.devices] == ["/job:ps/replica:0/task:0/device:CPU:0"]
        assert ps.graphs >= 1 and wk.graphs >= 1 and ps.steps_running == 0
        # the variable's value went from the PS to the worker: n*10 float32s at least once
        assert ps.bytes["pushed"] >= n * 40 and wk.bytes["received"] >= n * 40
        # heartbeat ages: each task heard from the other within a few heartbeat intervals
        ivl = RpcConfig().heartbeat_interval  # the daemons' default
        assert set(ps.peers) == {wk.name} and set(wk.peers) == {ps.name}
        for p in (ps.peers[wk.name], wk.peers[ps.name]):
            assert p["alive"] and 0.0 <= p["age"] < 4 * ivl, p
        assert [d["staleness"] for d in ps.devices] == [{"w": WANT}]
        assert all(not d["staleness"] for d in wk.devices)
        table = st.table()
        assert "/job:ps/replica:0/task:0" in table and "up" in table
        assert "heard from worker:0 " in table and "heard from ps:0 " in table
        assert "staleness of 'w': 4 updates, mean 1.00, max 3, histogram [2, 1, 0, 1] " \
               "(version 5)" in table
        _check_master_ages(c, s, y, ran_at, ivl)
        # the CLI: a cluster file, JSON out
        cf = tmp_path / "cluster.json"
        cf.write_text(json.dumps(c.as_dict()))
        out = subprocess.run([sys.executable, "-m", "models.cli", "status", str(cf), "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert {t["name"] for t in doc["tasks"]} == set(by)
        docs = {t["name"]: t for t in doc["tasks"]}
        assert 0.0 <= docs[ps.name]["peers"][wk.name]["age"] < 4 * ivl
        assert docs[ps.name]["devices"][0]["staleness"]["w"]["hist"] == [2, 1, 0, 1]
        # the JSON lists the masters' connections too (the sessions above, gone by now)
        gone = [m for m in docs[wk.name]["clients"]
                if m["name"] == f"master -> {c.target('worker', 0)}"]
        assert len(gone) == 3 and all(m["pid"] == os.getpid() and not m["alive"] for m in gone)
        # nothing is stuck: the doctor says so and exits 0
        out = subprocess.run([sys.executable, "-m", "actorflow", "doctor", str(cf)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "no step is in flight" in out.stdout, out
        # a stopped (hung) task is listed as down, the others still answer
        c.kill("ps", 0, signal.SIGSTOP)
        try:
            st = cluster_status(c.as_dict(), timeout=1.0)
        finally:
            c.kill("ps", 0, signal.SIGCONT)
        by = {t.name: t for t in st.tasks}
        assert by["/job:ps/replica:0/task:0"].error is not None
        assert by["/job:worker/replica:0/task:0"].error is None
        assert "DOWN" in st.table()


def _check_master_ages(c: LocalCluster, s: af.Session, y: object, ran_at: float,
                       ivl: float) -> None:
    """How long since each task heard from the idle session `s` (its client id): the time
    since its last request grows while it idles (its heartbeats still arrive), is back to ~0
    once it runs a step, and the connection is marked gone once the session closes."""
    me = s._runtime.client_id

    def ask() -> tuple[dict[str, dict], float]:
        t0 = time.monotonic()
        st = cluster_status(c.as_dict())
        mine = {t.name: [m for m in t.masters() if m["client_id"] == me] for t in st.tasks}
        assert all(len(ms) == 1 for ms in mine.values()), mine
        return {name: ms[0] for name, ms in mine.items()}, t0

    deadline = time.monotonic() + 30
    while True:  # idle for 3 heartbeat intervals at least: it has pinged both tasks since
        ms, asked_at = ask()
        if min(m["asked"] for m in ms.values()) > 3 * ivl:
            break
        assert time.monotonic() < deadline, ms
    assert set(ms) == {"/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0"}
    for m in ms.values():
        assert m["alive"] and m["pid"] == os.getpid() and m["requests"] >= 2, m
        assert m["asked"] >= asked_at - ran_at, (m, asked_at - ran_at)  # idle since its run
        assert m["heard"] < m["asked"], m  # its heartbeats kept coming
    assert ms["/job:worker/replica:0/task:0"]["name"] == f"master -> {c.target('worker', 0)}"
    before = time.monotonic()
    s.run(y)  # the age resets: the step's requests arrived after `before`
    again, _ = ask()
    for task, m in again.items():
        assert m["asked"] <= time.monotonic() - before < ms[task]["asked"], (m, ms[task])
        assert m["requests"] > ms[task]["requests"]
    s.close()  # its connections close: each task marks them gone
    deadline = time.monotonic() + 30
    while any(m["alive"] for m in ask()[0].values()):
        assert time.monotonic() < deadline
    table = cluster_status(c.as_dict()).table()
    assert "    masters: pid " in table and "(GONE)" in table
    assert f"pid {os.getpid()} id {me & 0xFFFFFFFF:08x}: last request " in table


def _with_heartbeats(target: str, deadline_s: float = 30.0) -> object:
    """The cluster's status once every task has heard from every other (the heartbeats start
    when a task is first asked for its status: by a session, or by this tool)."""
    deadline = time.monotonic() + deadline_s
    while True:
        st = cluster_status(target)
        if all(p["age"] is not None for t in st.tasks for p in t.peers.values()) and \
                all(t.peers for t in st.tasks):
            return st
        assert time.monotonic() < deadline, [t.peers for t in st.tasks]


def test_bad_targets_name_the_fix(tmp_path) -> None:
    with pytest.raises(af.InvalidArgumentError, match="af://HOST:PORT"):
        parse_target("nowhere")
    with pytest.raises(af.InvalidArgumentError, match="lists of 'host:port'"):
        parse_target({"ps": "127.0.0.1:1"})
    assert parse_target('{"cluster": {"ps": ["a:1"]}, "task": {}}') == ({"ps": ["a:1"]}, None)
    assert parse_target("af://127.0.0.1:5") == (None, "tcp://127.0.0.1:5")
    out = subprocess.run([sys.executable, "-m", "models.cli", "status"], capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert out.returncode == 2 and "AF_CONFIG" in out.stderr
