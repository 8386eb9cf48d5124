"""The `actorflow` program: the in-process demo trains and reports a real test accuracy; the
worker daemon's command line answers every bad flag, file or environment value with one line
naming it and the fix (exit code 2) and stops cleanly (exit code 0) on SIGTERM and SIGINT,
even in the middle of a step."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import actorflow as af
from actorflow.processes import free_ports
from models import cli
from tests.test_distributed import Daemons


def test_demo_trains_the_digits_mlp() -> None:
    out = io.StringIO()
    acc = cli.demo(epochs=6, out=out)
    text = out.getvalue()
    assert acc >= 0.93
    assert "epoch  6/6" in text and "steps/s" in text
    assert f"test accuracy {acc:.2%}" in text


def test_unknown_command_is_an_error(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli.main(["fly"])
    except SystemExit as e:
        assert e.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_flag_values_get_a_clear_error_not_a_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["train", "mlp", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "need at least 1 ps and 1 worker task" in err and "Traceback" not in err


def test_python_m_actorflow_runs_the_commands_installed_packages_add(tmp_path, monkeypatch,
                                                                     capsys) -> None:  # type: ignore[no-untyped-def]
    """`actorflow.cli.main` (``python -m actorflow`` and the installed script) finds the models'
    commands through entry points, as pyproject.toml declares them, with no upward import."""
    import importlib
    import tomllib
    from pathlib import Path

    from actorflow import cli as af_cli

    meta = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["actorflow"] == "actorflow.cli:main"
    declared = meta["project"]["entry-points"][af_cli.COMMANDS_GROUP]
    info = tmp_path / "actorflow-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: actorflow\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{af_cli.COMMANDS_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert sorted(af_cli.added_commands()) == ["demo", "train"]
    assert af_cli.main(["train", "mlp", "--workers", "0"]) == 2
    assert "need at least 1 ps and 1 worker task" in capsys.readouterr().err
# -- the worker daemon's command line: one line naming the bad value and the fix, exit 2 -----
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(args: list[str], env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "AF_CONFIG"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "actorflow", "worker", *args], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=timeout)


def _one_line_error(run: subprocess.CompletedProcess[str], *needles: str) -> None:
    # (--insecure's own warning, when asked for, is the one other line allowed)
    lines = [ln for ln in run.stderr.strip().splitlines()
             if not ln.startswith("WARNING: --insecure")]
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert len(lines) == 1 and lines[0].startswith("actorflow worker: "), run.stderr
    assert "Traceback" not in run.stderr and not run.stdout
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    p = tmp_path / "cluster.json"
    p.write_text(json.dumps({"ps": [f"127.0.0.1:{free_ports(1)[0]}"]}))
    return p


@pytest.mark.multiprocess
@pytest.mark.parametrize(("flags", "env", "needles"), [
    (["--bind", "256.1.1.1"], None, ["--bind 256.1.1.1", "127.0.0.1"]),
    # (--insecure: without it the daemon refuses a non-loopback bind for want of keys first)
    (["--bind", "10.255.255.254", "--insecure"], None,
     ["--bind 10.255.255.254", "not an address of this"]),
    (["--device-count", "CPU=0"], None, ["--device-count CPU=0", "CPU=1"]),
    (["--device-count", "CPU=x"], None, ["--device-count 'CPU=x'", "KIND=N"]),
    (["--device-count", "TPU=1"], None, ["unknown device kind 'TPU'", "CPU and GPU"]),
    (["--task", "x"], None, ["--task", "invalid int value: 'x'", "--help"]),
    (["--task", "7"], None, ["--job/--task ps:7", "has no task 7", "pick a task"]),
    (["--job", "chief"], None, ["no job 'chief'", "its jobs: ps"]),
    (["--heartbeat-interval", "9"], None, ["--heartbeat-interval 9.0", "shorter than"]),
    (["--orphan-ttl", "0"], None, ["--orphan-ttl 0.0", "> 0"]),
    (["--shm-min-bytes", "-1"], None, ["--shm-min-bytes -1", ">= 0"]),
    ("missing-file", None, ["--cluster", "no such file", "JSON file"]),
    ("not-json", None, ["--cluster", "not JSON"]),
    ([], {"AF_CONFIG": '{"cluster": {"ps": ["127.0.0.1:1"]}, "task": ["ps", 0]}'},
     ["AF_CONFIG's task must be a map", "got a list"]),
    ([], {"AF_CONFIG": '{"cluster": '}, ["AF_CONFIG is not JSON", "or unset it"]),
    ([], {"AF_CONFIG": '{"cluster": {"ps": "h:1"}, "task": {"type": "ps", "index": 0}}'},
     ["AF_CONFIG's cluster", "write ['h:1']"]),
    ([], None, ["no cluster", "--cluster FILE.json", "AF_CONFIG"]),
])
def test_each_bad_worker_flag_file_or_env_value_is_one_line_and_exit_2(
        cluster_file: Path, flags: Any, env: dict[str, str] | None, needles: list[str]) -> None:
    if flags == "missing-file":
        args = ["--cluster", str(cluster_file) + ".nope", "--job", "ps", "--task", "0"]
    elif flags == "not-json":
        cluster_file.write_text("{ps: [")
        args = ["--cluster", str(cluster_file), "--job", "ps", "--task", "0"]
    elif env is not None or not flags:
        args = list(flags)
    else:
        args = ["--cluster", str(cluster_file), "--job", "ps", "--task", "0", *flags]
        if "--task" in flags or "--job" in flags:  # the flag given replaces the default one
            args = ["--cluster", str(cluster_file), *(
                ["--job", "ps"] if "--job" not in flags else []), *(
                ["--task", "0"] if "--task" not in flags else []), *flags]
    _one_line_error(_worker(args, env), *needles)


@pytest.mark.multiprocess
def test_a_port_in_use_is_one_line_and_exit_2(cluster_file: Path) -> None:
    port = int(json.loads(cluster_file.read_text())["ps"][0].rpartition(":")[2])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        run = _worker(["--cluster", str(cluster_file), "--job", "ps", "--task", "0"])
    _one_line_error(run, f"port {port}", "already in use", "another port")


def _status_steps(d: Daemons, job: str) -> int:
    """Steps live on `job`:0, from its status (a fresh client: no session state involved).
    The worker's part of the step waits for the PS's, so it is live while the step runs."""
    import trio

    from transport.rpc import RpcClient, RpcConfig

    async def ask() -> int:
        async with RpcClient(f"tcp://{d.cluster[job][0]}", config=RpcConfig()) as c:
            header, _ = await c.call("status", None, timeout=10)
            return int(header["steps"])

    return trio.run(ask)


@pytest.mark.multiprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_the_middle_of_a_step_stops_the_daemons_with_exit_0(
        tmp_path: Path, sig: int) -> None:
    d = Daemons(tmp_path, {"ps": 1, "worker": 1})
    try:
        d.start()
        rng = np.random.default_rng()
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                a = af.constant(rng.standard_normal((600, 600)).astype(np.float32))
                y = a
                for _ in range(12):  # about a second of work on the PS, run inline
                    y = af.tanh(af.matmul(y, a))
            with af.device("/job:worker/task:0"):
                out = af.reduce_sum(y)
        cfg = af.ConfigProto()
        cfg.rpc_options = af.RPCOptions(heartbeat_interval=0.2, heartbeat_timeout=1.0)
        # SIGTERM ended in exit code 1 once in two runs before: it is sent mid-step to each
        # daemon twice (each restarted after), SIGINT once
        rounds = [(r, job) for r in range(2 if sig == signal.SIGTERM else 1)
                  for job in ("ps", "worker")]
        for n, (r, job) in enumerate(rounds):
            with af.Session(d.target("worker", 0), graph=g, config=cfg) as s:
                outcome: list[BaseException | None] = []

                def run(box: list[BaseException | None] = outcome) -> None:
                    try:
                        s.run(out)
                        box.append(None)
                    except af.OpError as e:
                        box.append(e)

                runner = threading.Thread(target=run)
                runner.start()
                limit = time.monotonic() + 30  # real processes: polled, bounded
                while _status_steps(d, "worker") == 0:  # (the PS is busy: it runs inline)
                    assert time.monotonic() < limit and not outcome, "the step never started"
                    time.sleep(0.02)
                p = d.procs[(job, 0)]
                p.send_signal(sig)
                assert p.wait(20) == 0, f"round {r}, {job}: exit code {p.returncode}"
                if n + 1 < len(rounds):  # the other daemon lives on: a new one for the next
                    # round, started while this round's session winds down
                    restart = threading.Thread(target=d.restart, args=(job, 0))
                    restart.start()
                runner.join(30)
                assert len(outcome) == 1, outcome
                # the worker stops under the step; the PS (busy inline) finishes it first
                assert isinstance(outcome[0], af.UnavailableError) or (
                    job == "ps" and outcome[0] is None), outcome
            if n + 1 < len(rounds):
                restart.join(120)
                assert not restart.is_alive() and d.procs[(job, 0)].poll() is None
    finally:
        d.close()


@pytest.mark.multiprocess
@pytest.mark.parametrize(("flags", "needles"), [
    (["--bind", "256.1.1.1"], ["--bind 256.1.1.1", "127.0.0.1"]),
    (["--cluster-file", "/nonexistent-dir/c.json"], ["--cluster-file", "writable"]),
    (["--device-count", "CPU=0", "--ps", "1", "--workers", "0"],
     ["ps:0", "status 2", "--device-count CPU=0", "CPU=1"]),
])
def test_cluster_command_errors_are_one_line_and_exit_2(flags: list[str],
                                                        needles: list[str]) -> None:
    run = subprocess.run([sys.executable, "-m", "actorflow", "cluster", *flags], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert len(lines) == 1 and lines[0].startswith("actorflow cluster: "), run.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
