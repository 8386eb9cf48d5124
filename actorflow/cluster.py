"""A cluster on loopback for tests, examples and `actorflow cluster`: `LocalCluster`.

Design
------
`LocalCluster(ps=1, workers=2)` picks free ports on 127.0.0.1, writes the cluster file
(``{"ps": ["127.0.0.1:P", ...], "worker": [...]}``) and starts one worker daemon per task as a
subprocess, exactly as an operator would::

    python -m actorflow worker --cluster FILE.json --job ps --task 0 --bind 127.0.0.1

then waits for every daemon's ``READY af://HOST:PORT`` line. Clients connect with
``af.Session(cluster.target("worker", 0))``.

Cleanup never leaves a daemon running: each daemon leads its own process group (so a
daemon's children go with it); `close()` sends SIGTERM to every group, waits up to
`shutdown_timeout` seconds, then SIGKILLs what is left. `close()` runs on ``with`` exit, at
interpreter exit (atexit), and when starting fails; and daemons started from the main thread
get SIGKILL from the kernel if this process dies without cleaning up (Linux
``PR_SET_PDEATHSIG``), e.g. when it is killed with SIGKILL itself.

    with af.LocalCluster(ps=1, workers=2) as cluster:
        print(cluster.cluster_spec.as_dict())
        with af.Session(cluster.target("worker", 0)) as s: ...
        cluster.kill("worker", 1)       # SIGKILL, for fault-injection tests

Keys (issue 12): unless `daemon_args` name ``--keys`` or ``--insecure``, the cluster makes a
key directory of its own (`key_dir`, a private temporary directory removed on close) and
starts every daemon with ``--keys`` it, so their TCP ports take only the cluster's clients,
encrypted. Clients on this host need nothing (they use the Unix sockets, checked by uid);
a client over TCP passes ``af.RPCOptions(key_dir=cluster.key_dir)``.

If a port was taken between picking it and the daemon binding it (a race with other
programs), the whole cluster restarts on fresh ports, up to `start_attempts` times.

`supervise=True` (``actorflow cluster --supervise``) restarts a daemon that dies, on its
address (`actorflow.task_supervisor`); with `standby` (the default) from a warm process that
imported the daemon's code already, so a restart takes a fraction of a second, not a
Python start.

`run_cluster(ps, workers)` is ``actorflow cluster --ps 1 --workers 2``: it prints the cluster
and its targets, serves until SIGINT/SIGTERM, then stops every daemon.

State (owned by the thread that created the cluster): `_daemons` (job, task) -> `_Daemon`,
filled by `start` and emptied by `close`; `_dir` the temporary directory with the cluster file
and the daemons' logs (removed by `close` unless `log_dir` was given).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from actorflow.processes import (  # noqa: F401  (re-exported: part of this module's API)
    child_env,
    free_ports,
    kill_process_group,
    spawn,
    stop_processes,
)
from devices.errors import DeadlineExceededError, InvalidArgumentError, UnavailableError

__all__ = ["LocalCluster", "run_cluster", "add_cluster_subcommand", "run_cluster_from_args",
           "free_ports", "kill_process_group", "child_env", "spawn", "stop_processes"]


# ---- one daemon --------------------------------------------------------------------------
class _Daemon:
    """One worker daemon process. `target` is set once its READY line has been read."""

    def __init__(self, job: str, task: int, address: str, proc: subprocess.Popen[bytes],
                 log_path: Path):
        self.job = job
        self.task = task
        self.address = address
        self.proc = proc
        self.log_path = log_path
        self.target: str | None = None
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=50)
        self._buf = b""

    @property
    def name(self) -> str:
        return f"{self.job}:{self.task}"

    def feed(self, data: bytes) -> None:
        """Take stdout bytes; sets `target` at the READY line."""
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            self.stdout_tail.append(line)
            if self.target is None and line.startswith("READY "):
                self.target = line.split(None, 1)[1].strip()

    def log_tail(self, n: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        lines = [*text.splitlines(), *self.stdout_tail]
        return "\n".join(lines[-n:])

    def drain_in_background(self) -> None:
        """Keep reading stdout after READY, so a chatty daemon never blocks on a full pipe."""
        out = self.proc.stdout
        if out is None:
            return

        def drain() -> None:
            with contextlib.suppress(OSError, ValueError):
                for raw in iter(lambda: out.readline(), b""):
                    self.stdout_tail.append(raw.decode(errors="replace").rstrip())

        threading.Thread(target=drain, name=f"af-drain-{self.name}", daemon=True).start()


class _PortTaken(Exception):
    pass


# ---- the cluster -------------------------------------------------------------------------
class LocalCluster:
    """Worker daemons on loopback, one per task of `jobs` (default ``{"ps": ps, "worker":
    workers}``), started at construction unless ``start=False``.

    `daemon_jobs` limits the daemons to those jobs: the other tasks get a port in the cluster
    spec but are served by someone else (e.g. ``af.Server`` in a client process).
    `device_count` (e.g. ``{"CPU": 2}``) and `daemon_args` (more command-line flags) go to
    every daemon; `log_dir` keeps the daemons' stderr logs there (default: a temporary
    directory removed on close). `supervise` restarts dead daemons, from a warm `standby`
    process unless ``standby=False``. Raises UnavailableError when a daemon exits before it
    is ready (its log tail in the message) and DeadlineExceededError after `start_timeout`.
    """

    def __init__(self, ps: int = 1, workers: int = 2, *, jobs: Mapping[str, int] | None = None,
                 host: str = "127.0.0.1", daemon_jobs: Sequence[str] | None = None,
                 device_count: Mapping[str, int] | None = None,
                 daemon_args: Sequence[str] = (), start_timeout: float = 60.0,
                 shutdown_timeout: float = 5.0, start_attempts: int = 3,
                 log_dir: str | os.PathLike[str] | None = None, python: str = sys.executable,
                 start: bool = True, supervise: bool = False, standby: bool = True):
        if jobs is None:
            jobs = {"ps": ps, "worker": workers}
        jobs = {str(j): int(n) for j, n in jobs.items() if int(n) > 0}
        for j, n in jobs.items():
            if not j or "/" in j or ":" in j:
                raise InvalidArgumentError(f"LocalCluster: invalid job name {j!r}")
            if n < 0:
                raise InvalidArgumentError(f"LocalCluster: job {j!r} needs >= 0 tasks, got {n}")
        if not jobs:
            raise InvalidArgumentError("LocalCluster: a cluster needs at least one task")
        self.jobs: dict[str, int] = jobs
        self.daemon_jobs: tuple[str, ...] = tuple(jobs if daemon_jobs is None else daemon_jobs)
        for j in self.daemon_jobs:
            if j not in jobs:
                raise InvalidArgumentError(f"LocalCluster: daemon job {j!r} is not one of the "
                                           f"cluster's jobs {sorted(jobs)}")
        self.host = host
        self.device_count = dict(device_count or {})
        self.daemon_args = list(daemon_args)
        self.start_timeout = float(start_timeout)
        self.shutdown_timeout = float(shutdown_timeout)
        self.start_attempts = max(1, int(start_attempts))
        self.python = python
        self._keep_logs = log_dir is not None
        self._log_dir_arg = log_dir
        self._dir: Path | None = None
        self._key_dir: Path | None = None  # the keys this cluster made (None: none made)
        self._daemons: dict[tuple[str, int], _Daemon] = {}
        self._spec: dict[str, list[str]] = {}
        self._closed = False
        self._atexit_registered = False
        self.supervise = bool(supervise)  # restart dead daemons (actorflow/task_supervisor.py)
        self.standby = bool(standby)  # ... from a warm process that imported the code already
        self._supervisor: Any = None
        if start:
            self.start()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalCluster:
        """Start every daemon and wait until all are ready (idempotent)."""
        if self._closed:
            raise InvalidArgumentError("this LocalCluster is closed; make a new one")
        if self._daemons:
            return self
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True
        try:
            for attempt in range(self.start_attempts):
                try:
                    self._start_once()
                    if self.supervise:
                        from actorflow.task_supervisor import TaskSupervisor
                        self._supervisor = TaskSupervisor(self, standby=self.standby).start()
                    return self
                except _PortTaken:
                    self._stop_daemons()
                    if attempt + 1 == self.start_attempts:
                        raise UnavailableError(
                            f"LocalCluster: a port was taken by another program "
                            f"{self.start_attempts} times while starting the daemons; retry, "
                            f"or free ports on {self.host}") from None
        except BaseException:
            self.close()
            raise
        return self  # pragma: no cover

    def _start_once(self) -> None:
        if self._dir is None:
            if self._log_dir_arg is not None:
                self._dir = Path(self._log_dir_arg)
                self._dir.mkdir(parents=True, exist_ok=True)
            else:
                self._dir = Path(tempfile.mkdtemp(prefix="af-cluster-"))
        n = sum(self.jobs.values())
        ports = iter(free_ports(n, self.host))
        self._spec = {job: [f"{self.host}:{next(ports)}" for _ in range(count)]
                      for job, count in self.jobs.items()}
        cluster_file = self._dir / "cluster.json"
        cluster_file.write_text(json.dumps(self._spec))
        for job, addrs in self._spec.items():
            if job not in self.daemon_jobs:
                continue
            for task, addr in enumerate(addrs):
                self._spawn(job, task, addr)
        self._wait_ready()

    def worker_argv(self, job: str, task: int) -> list[str]:
        """The ``actorflow worker ...`` arguments of a task's daemon (after the program)."""
        assert self._dir is not None
        args = ["worker", "--cluster", str(self._dir / "cluster.json"), "--job", job,
                "--task", str(task), "--bind", self.host]
        for kind, count in self.device_count.items():
            args += ["--device-count", f"{kind.upper()}={int(count)}"]
        return args + self.daemon_args + self._key_args()

    def _spawn(self, job: str, task: int, addr: str,
               standby: subprocess.Popen[bytes] | None = None) -> _Daemon:
        """Start a task's daemon: a new process, or `standby` (a process that has imported
        the daemon's code already, `actorflow.task_supervisor.spawn_standby`) told to be it."""
        assert self._dir is not None
        log_path = self._dir / f"{job}-{task}.log"
        argv = self.worker_argv(job, task)
        if standby is not None:
            from actorflow.task_supervisor import assign_standby
            proc = assign_standby(standby, argv, log_path)
        else:
            with open(log_path, "ab") as log:
                proc = spawn([self.python, "-m", "actorflow", *argv], stdout=subprocess.PIPE,
                             stderr=log, env=child_env())
        d = self._daemons[job, task] = _Daemon(job, task, addr, proc, log_path)
        return d

    def restart(self, job: str, task: int,
                standby: subprocess.Popen[bytes] | None = None) -> None:
        """Start a task's daemon again on the same address (killing it first if it still
        runs), and wait until it is ready: a new process, a new incarnation, empty memory.
        With `standby` (the supervisor's warm process), that process becomes the daemon,
        which skips the interpreter's start and the imports (most of a restart)."""
        old = self._daemon(job, task)
        if old.proc.poll() is None:
            self.kill(job, task)
        if old.proc.stdout is not None:
            with contextlib.suppress(OSError):
                old.proc.stdout.close()
        self._wait_ready([self._spawn(job, task, old.address, standby)])

    def _wait_ready(self, daemons: Sequence[_Daemon] | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = {d.proc.stdout: d for d in (self._daemons.values() if daemons is None
                                              else daemons) if d.proc.stdout}
        with selectors.DefaultSelector() as sel:
            for f, d in pending.items():
                sel.register(f, selectors.EVENT_READ, d)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    waiting = ", ".join(sorted(d.name for d in pending.values()))
                    raise DeadlineExceededError(
                        f"LocalCluster: {waiting} not ready after {self.start_timeout:g} s "
                        f"(no 'READY af://...' line); logs in {self._dir}")
                for key, _ in sel.select(timeout=min(left, 1.0)):
                    d: _Daemon = key.data
                    data = os.read(key.fd, 65536)
                    if data:
                        d.feed(data)
                        if d.target is not None:
                            sel.unregister(key.fileobj)
                            del pending[key.fileobj]
                            d.drain_in_background()
                        continue
                    sel.unregister(key.fileobj)
                    del pending[key.fileobj]
                    self._failed_to_start(d)

    def _failed_to_start(self, d: _Daemon) -> None:
        try:
            rc = d.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            rc = None
        tail = d.log_tail()
        if "address already in use" in tail.lower() or "eaddrinuse" in tail.lower():
            raise _PortTaken(d.name)
        raise UnavailableError(
            f"LocalCluster: worker daemon {d.name} ({d.address}) exited with status {rc} "
            f"before it was ready; the end of its log:\n{tail}")

    def _stop_daemons(self) -> None:
        daemons = list(self._daemons.values())
        self._daemons.clear()
        stop_processes([d.proc for d in daemons], self.shutdown_timeout)
        for d in daemons:
            if d.proc.stdout is not None:
                with contextlib.suppress(OSError):
                    d.proc.stdout.close()

    def close(self) -> None:
        """Stop every daemon (SIGTERM, then SIGKILL after `shutdown_timeout`); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._supervisor is not None:
                self._supervisor.stop()
            self._stop_daemons()
        finally:
            if self._atexit_registered:
                atexit.unregister(self.close)
                self._atexit_registered = False
            if self._dir is not None and not self._keep_logs:
                shutil.rmtree(self._dir, ignore_errors=True)
            if self._key_dir is not None:
                shutil.rmtree(self._key_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- what clients use ----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def cluster_spec(self) -> Any:
        """The cluster as an `af.ClusterSpec` (a dict of job -> addresses if that class is
        not available)."""
        try:
            from actorflow.server import ClusterSpec
        except ImportError:
            return self.as_dict()
        return ClusterSpec(self.as_dict())

    def as_dict(self) -> dict[str, list[str]]:
        """``{job: ["host:port", ...]}``: what the cluster file holds."""
        return {job: list(addrs) for job, addrs in self._spec.items()}

    @property
    def cluster_file(self) -> Path | None:
        return None if self._dir is None else self._dir / "cluster.json"

    @property
    def log_dir(self) -> Path | None:
        return self._dir

    # -- keys (issue 12) -------------------------------------------------------------------
    def _key_args(self) -> list[str]:
        """``--keys DIR`` with keys made for this cluster, unless the caller chose."""
        if "--keys" in self.daemon_args or "--insecure" in self.daemon_args:
            return []
        if self._key_dir is None:
            from transport.keys import create_key_dir

            self._key_dir = Path(tempfile.mkdtemp(prefix="af-keys-"))  # mode 0700
            create_key_dir(self._key_dir)
        return ["--keys", str(self._key_dir)]

    @property
    def key_dir(self) -> Path | None:
        """The key directory this cluster made for its daemons (None if `daemon_args` chose);
        a client over TCP passes it as ``af.RPCOptions(key_dir=...)``."""
        return self._key_dir

    def _daemon(self, job: str, task: int) -> _Daemon:
        d = self._daemons.get((job, int(task)))
        if d is None:
            have = ", ".join(f"{j}:{t}" for j, t in self._daemons) or "none (not started?)"
            raise InvalidArgumentError(f"LocalCluster has no task {job}:{task}; tasks: {have}")
        return d

    def target(self, job: str = "worker", task: int = 0) -> str:
        """``"af://host:port"`` of a task, for ``af.Session(target)``."""
        if job not in self.daemon_jobs and 0 <= task < len(self._spec.get(job, ())):
            return f"af://{self._spec[job][task]}"  # served by someone else
        d = self._daemon(job, task)
        return d.target or f"af://{d.address}"

    def targets(self) -> dict[str, list[str]]:
        return {job: [self.target(job, i) for i in range(n)] for job, n in self.jobs.items()}

    def daemon_tasks(self) -> list[tuple[str, int]]:
        """(job, task) of every daemon this cluster started."""
        return list(self._daemons)

    def pid(self, job: str, task: int) -> int:
        return self._daemon(job, task).proc.pid

    def alive(self, job: str, task: int) -> bool:
        return self._daemon(job, task).proc.poll() is None

    def exited(self) -> dict[str, int]:
        """Daemons that have exited, by ``"job:task"``, with their exit status."""
        return {d.name: d.proc.returncode for d in self._daemons.values()
                if d.proc.poll() is not None}

    def log(self, job: str, task: int, lines: int = 30) -> str:
        """The end of a daemon's log (its stderr, then its stdout)."""
        return self._daemon(job, task).log_tail(lines)

    def kill(self, job: str, task: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default SIGKILL, i.e. ``kill -9``) to a daemon's process group and, for
        SIGKILL, wait until it is gone. For fault-injection tests."""
        d = self._daemon(job, task)
        kill_process_group(d.proc, sig)
        if sig == signal.SIGKILL:
            d.proc.wait(timeout=10.0)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._daemons)} daemons"
        return f"<af.LocalCluster {self.as_dict()} ({state})>"


# ---- `actorflow cluster` -----------------------------------------------------------------
def run_cluster(ps: int | Sequence[str] = 1, workers: int = 2, *, host: str = "127.0.0.1",
                device_count: Mapping[str, int] | None = None,
                cluster_file: str | os.PathLike[str] | None = None,
                log_dir: str | os.PathLike[str] | None = None,
                daemon_args: Sequence[str] = (), out: IO[str] | None = None,
                ready: threading.Event | None = None, stop: threading.Event | None = None,
                **cluster_options: Any) -> int:
    """Start a LocalCluster, print it, serve until SIGINT/SIGTERM (or `stop` is set), then stop
    every daemon. Returns 0, or 1 when every daemon died by itself.

    `cluster_file` also writes the cluster JSON there, for clients and other launchers;
    `cluster_options` go to `LocalCluster` (e.g. ``start_timeout``). Given a list of strings
    instead of `ps`, parses them as ``actorflow cluster``'s arguments (what `actorflow.cli`
    passes).
    """
    if not isinstance(ps, int):
        return main(["cluster", *ps])
    out = out or sys.stdout
    stop = stop or threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    saved: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    if in_main:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, on_signal)
    try:
        with LocalCluster(ps, workers, host=host, device_count=device_count,
                          daemon_args=daemon_args, log_dir=log_dir,
                          **cluster_options) as cluster:
            spec = cluster.as_dict()
            if cluster_file is not None:
                Path(cluster_file).write_text(json.dumps(spec) + "\n")
            print(f"cluster {json.dumps(spec)}", file=out)
            for job, targets in cluster.targets().items():
                for i, t in enumerate(targets):
                    print(f"  /job:{job}/task:{i}  {t}  (pid {cluster.pid(job, i)})", file=out)
            if cluster_file is not None:
                print(f"cluster file {cluster_file}", file=out)
            print(f"logs in {cluster.log_dir}", file=out)
            if cluster.key_dir is not None:
                print(f"keys in {cluster.key_dir} (clients over TCP: RPCOptions(key_dir=...))",
                      file=out)
            print(f"ready: {sum(cluster.jobs.values())} daemons on {host}; Ctrl-C stops them",
                  file=out, flush=True)
            if ready is not None:
                ready.set()
            reported: set[str] = set()
            total = sum(cluster.jobs.values())
            while not stop.wait(0.25):
                gone = cluster.exited()
                for name, rc in gone.items():
                    if name not in reported:
                        reported.add(name)
                        print(f"daemon {name} exited with status {rc}", file=out, flush=True)
                if len(gone) == total:
                    print("every daemon has exited; stopping", file=out, flush=True)
                    return 1
            print("stopping the daemons", file=out, flush=True)
        print("stopped", file=out, flush=True)
        return 0
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _device_counts(items: Sequence[str] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items or ():
        for part in item.split(","):
            kind, sep, n = part.partition("=")
            if not sep or not n.strip().isdigit():
                raise argparse.ArgumentTypeError(
                    f"--device-count {part!r}: expected KIND=N, e.g. CPU=2")
            counts[kind.strip().upper()] = int(n)
    return counts


def add_cluster_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cluster`` on an argparse subparsers object (``actorflow cluster ...``)."""
    p = subparsers.add_parser(
        "cluster", help="run worker daemons for a local cluster on loopback",
        description="Start a cluster of worker daemons on this machine (PS and worker tasks), "
                    "print its spec and targets, and serve until Ctrl-C or SIGTERM.")
    p.add_argument("--ps", type=int, default=1, help="parameter-server tasks (default 1)")
    p.add_argument("--workers", type=int, default=2, help="worker tasks (default 2)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address the daemons bind and advertise (default 127.0.0.1)")
    p.add_argument("--device-count", action="append", metavar="KIND=N",
                   help="devices per daemon, e.g. CPU=2 (repeatable)")
    p.add_argument("--cluster-file", help="also write the cluster JSON to this file")
    p.add_argument("--log-dir", help="keep the daemons' logs here (default: a temporary "
                                     "directory, removed on exit)")
    p.add_argument("--supervise", action="store_true",
                   help="restart a daemon that dies, on the same address")
    p.set_defaults(func=run_cluster_from_args)
    return p


def run_cluster_from_args(args: argparse.Namespace) -> int:
    """Run ``actorflow cluster`` from the namespace `add_cluster_subcommand`'s parser made."""
    if args.ps < 0 or args.workers < 0 or args.ps + args.workers == 0:
        print("actorflow cluster: need --ps >= 0 and --workers >= 0, at least one task",
              file=sys.stderr)
        return 2
    from actorflow.cli import UsageError, check_bind, one_line
    from devices.errors import OpError

    try:
        counts = _device_counts(args.device_count)
        check_bind(args.bind)
        if args.cluster_file is not None and not os.access(
                os.path.dirname(os.path.abspath(args.cluster_file)), os.W_OK):
            raise UsageError(f"--cluster-file {args.cluster_file}: its directory is not "
                             "writable (or does not exist); pass a path you can write")
    except (argparse.ArgumentTypeError, UsageError) as e:
        print(f"actorflow cluster: {e}", file=sys.stderr)
        return 2
    try:
        return run_cluster(args.ps, args.workers, host=args.bind, device_count=counts,
                           cluster_file=args.cluster_file, log_dir=args.log_dir,
                           supervise=bool(getattr(args, "supervise", False)))
    except (OpError, OSError) as e:  # a daemon could not start: its own line says why
        print(f"actorflow cluster: {one_line(e)}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m actorflow.cluster --ps 1 --workers 2`` (the same as ``actorflow cluster``)."""
    ap = argparse.ArgumentParser(prog="actorflow")
    sub = ap.add_subparsers(dest="command", required=True)
    add_cluster_subcommand(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "cluster":
        argv = ["cluster", *argv]
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
