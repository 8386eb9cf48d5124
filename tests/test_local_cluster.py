"""af.LocalCluster's process management, with a stand-in daemon that follows the worker CLI
contract (``... worker --cluster F --job J --task N --bind H`` -> ``READY af://H:P``), so these
tests check starting, READY parsing, failures and cleanup without the real worker service.
(`tests/test_ps_training.py` runs real daemons.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from actorflow.cluster import LocalCluster, run_cluster
from devices.errors import DeadlineExceededError, InvalidArgumentError, UnavailableError

pytestmark = pytest.mark.multiprocess

STANDIN = r'''
import argparse, json, os, signal, socket, subprocess, sys, time
ap = argparse.ArgumentParser()
ap.add_argument("-m"); ap.add_argument("cmd")
ap.add_argument("--cluster"); ap.add_argument("--job"); ap.add_argument("--task", type=int)
ap.add_argument("--bind"); ap.add_argument("--device-count", action="append")
ap.add_argument("--keys")  # the key directory LocalCluster makes (issue 12)
a = ap.parse_args()
mode = os.environ.get("STANDIN_MODE", "")
print(f"standin {a.job}:{a.task} args {sys.argv[1:]}", file=sys.stderr, flush=True)
if mode == f"fail:{a.job}:{a.task}":
    print("boom: cannot start", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "portclash" and a.job == "worker":
    flag = os.environ["STANDIN_FLAG"]
    if not os.path.exists(flag):
        open(flag, "w").close()
        print("zmq.error.ZMQError: Address already in use (addr='tcp://...')", file=sys.stderr)
        sys.exit(1)
if mode == "silent":
    time.sleep(60)
host, port = json.load(open(a.cluster))[a.job][a.task].rsplit(":", 1)
sock = socket.socket(); sock.bind((a.bind, int(port))); sock.listen()
if mode == "grandchild":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(f"GRANDCHILD {child.pid}", flush=True)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("some chatter before", flush=True)
print(f"READY af://{a.bind}:{port}", flush=True)
while True:
    time.sleep(1)
'''


@pytest.fixture
def standin(tmp_path: Path) -> str:
    """An executable that stands in for ``python`` and runs the stand-in daemon."""
    script = tmp_path / "standin.py"
    script.write_text(STANDIN)
    exe = tmp_path / "fake-python"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    exe.chmod(0o755)
    return str(exe)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once `pid` no longer exists (or is a zombie not ours to reap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_starts_every_task_and_cleans_up(standin: str) -> None:
    with LocalCluster(ps=1, workers=2, python=standin, device_count={"cpu": 2}) as c:
        spec = c.as_dict()
        assert list(spec) == ["ps", "worker"] and len(spec["worker"]) == 2
        assert json.loads(c.cluster_file.read_text()) == spec
        for job, addrs in spec.items():
            for i, addr in enumerate(addrs):
                assert addr.startswith("127.0.0.1:")
                assert c.target(job, i) == f"af://{addr}"
                assert c.alive(job, i)
                assert f"'--job', '{job}', '--task', '{i}'" in c.log(job, i)
                assert "'--device-count', 'CPU=2'" in c.log(job, i)
        ports = [a.rsplit(":", 1)[1] for addrs in spec.values() for a in addrs]
        assert len(set(ports)) == 3
        pids = [c.pid(j, i) for j, n in c.jobs.items() for i in range(n)]
        log_dir = c.log_dir
        assert c.targets() == {"ps": [c.target("ps", 0)],
                               "worker": [c.target("worker", 0), c.target("worker", 1)]}
    assert c.closed
    assert all(_gone(p) for p in pids)
    assert not log_dir.exists()  # the temporary directory goes with the cluster


def test_cleanup_when_the_body_raises(standin: str) -> None:
    with pytest.raises(ZeroDivisionError), LocalCluster(ps=1, workers=1, python=standin) as c:
        pids = [c.pid("ps", 0), c.pid("worker", 0)]
        1 / 0  # noqa: B018
    assert all(_gone(p) for p in pids)


def test_kill_one_task(standin: str) -> None:
    with LocalCluster(ps=1, workers=2, python=standin) as c:
        c.kill("worker", 1)
        assert not c.alive("worker", 1)
        assert c.alive("worker", 0) and c.alive("ps", 0)
        assert c.exited() == {"worker:1": -signal.SIGKILL}
        with pytest.raises(InvalidArgumentError, match=r"no task worker:5; tasks: ps:0, "
                                                       r"worker:0, worker:1"):
            c.target("worker", 5)


def test_grandchildren_die_with_their_daemon(standin: str, monkeypatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "grandchild")
    with LocalCluster(ps=1, workers=0, python=standin) as c:
        deadline = time.monotonic() + 10
        while "GRANDCHILD" not in c.log("ps", 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        line = next(ln for ln in c.log("ps", 0).splitlines() if ln.startswith("GRANDCHILD"))
        grandchild = int(line.split()[1])
        assert not _gone(grandchild, timeout=0.1)
    assert _gone(grandchild)


def test_a_daemon_ignoring_sigterm_gets_sigkill(standin: str, monkeypatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "stubborn")
    c = LocalCluster(ps=1, workers=1, python=standin, shutdown_timeout=0.5)
    pids = [c.pid("ps", 0), c.pid("worker", 0)]
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 5.0
    assert all(_gone(p) for p in pids)
    c.close()  # idempotent


def test_a_daemon_that_fails_to_start_reports_its_log(standin: str, monkeypatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "fail:worker:1")
    with pytest.raises(UnavailableError, match=r"(?s)worker daemon worker:1 .* exited with "
                                               r"status 3 before it was ready.*boom: cannot "
                                               r"start"):
        LocalCluster(ps=1, workers=2, python=standin)


def test_a_port_taken_meanwhile_restarts_on_fresh_ports(standin: str, monkeypatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("STANDIN_MODE", "portclash")
    monkeypatch.setenv("STANDIN_FLAG", str(tmp_path / "clashed"))
    with LocalCluster(ps=1, workers=1, python=standin) as c:
        assert (tmp_path / "clashed").exists()  # the first attempt failed
        assert c.alive("ps", 0) and c.alive("worker", 0)
        assert json.loads(c.cluster_file.read_text()) == c.as_dict()


def test_start_timeout(standin: str, monkeypatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "silent")
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceededError, match=r"ps:0, worker:0 not ready after 1 s"):
        LocalCluster(ps=1, workers=1, python=standin, start_timeout=1.0, shutdown_timeout=0.5)
    assert time.monotonic() - t0 < 8.0


def test_daemons_die_when_the_owner_is_killed(standin: str, tmp_path: Path) -> None:
    owner = textwrap.dedent(f"""
        import sys, time
        from actorflow.cluster import LocalCluster
        c = LocalCluster(ps=1, workers=1, python={standin!r})
        print(c.pid("ps", 0), c.pid("worker", 0), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and not _gone(pids[0], timeout=0.1)
    finally:
        proc.kill()
        proc.wait()
    assert all(_gone(p) for p in pids)


def test_run_cluster_serves_until_stopped(standin: str) -> None:
    ready, stop = threading.Event(), threading.Event()
    lines: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            lines.append(s)

        def flush(self) -> None:
            pass

    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run_cluster(
        1, 2, out=Out(), ready=ready, stop=stop, python=standin)))
    t.start()
    try:
        assert ready.wait(30)
        text = "".join(lines)
        spec = json.loads(text.split("cluster ", 1)[1].splitlines()[0])
        assert len(spec["ps"]) == 1 and len(spec["worker"]) == 2
        assert f"/job:worker/task:1  af://{spec['worker'][1]}" in text
    finally:
        stop.set()
        t.join(30)
    assert result == [0]
    assert "stopped" in "".join(lines)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="at least one task"):
        LocalCluster(ps=0, workers=0)
    with pytest.raises(InvalidArgumentError, match="invalid job name"):
        LocalCluster(jobs={"a/b": 1}, start=False)
    assert os.environ.get("STANDIN_MODE") is None


def test_tasks_served_elsewhere_get_a_port_but_no_daemon(standin: str) -> None:
    with LocalCluster(ps=2, workers=2, daemon_jobs=["ps"], python=standin) as c:
        spec = c.as_dict()
        assert len(spec["worker"]) == 2 and len(set(spec["ps"] + spec["worker"])) == 4
        assert c.daemon_tasks() == [("ps", 0), ("ps", 1)]
        assert c.target("worker", 1) == f"af://{spec['worker'][1]}"
        with pytest.raises(InvalidArgumentError, match="no task worker:1"):
            c.pid("worker", 1)
    with pytest.raises(InvalidArgumentError, match="daemon job 'chief' is not one"):
        LocalCluster(daemon_jobs=["chief"], start=False)


def test_run_cluster_takes_command_line_arguments(tmp_path: Path) -> None:
    # what `actorflow.cli` passes: the arguments after "cluster"; bad ones exit with 2
    assert run_cluster(["--ps", "-1"]) == 2
    assert run_cluster(["--device-count", "CPU"]) == 2
