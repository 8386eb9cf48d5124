"""An opt-in supervisor for `af.LocalCluster` / `actorflow cluster --supervise`: restarts a
task whose daemon died, from a warm standby process.

One thread waits for any daemon's process to end: on Linux it selects on a pidfd per daemon
(``os.pidfd_open``), so a death is noticed the moment it happens, not at the next poll;
elsewhere it polls every `poll_interval` seconds. A dead daemon is started again on the same
address (`LocalCluster.restart`), so a new process with a new incarnation and empty memory
answers there. Clients notice (the connection to it closes: Unavailable; or a new
incarnation: Aborted; or uninitialized variables) and a MonitoredTrainingSession's chief
restores the latest checkpoint onto it (a master connecting meanwhile waits until the task
listens again: `transport.local_ipc.wait_listening`).

Standby: most of a daemon's start is the interpreter's and the imports (seconds; more on a
loaded machine). So the supervisor keeps one *standby* process that has imported the
daemon's code and waits on its stdin (`standby_main`); a restart hands it the task's
``actorflow worker`` arguments and log file (`assign_standby`), and it serves within a
fraction of a second. A new standby is started after each restart. A standby whose stdin
closes (the cluster closed, or this process died) exits.

State: `restarts` lists (job, task, time) of every restart, appended by the thread only,
once the new daemon is ready; `errors` the restarts that failed (retried at the next wake);
`_standby` the standby process (None: none, or `standby=False`), replaced by the thread and
stopped by `stop()`; `_stop` is set by `stop()`, which also writes to `_wake_w` (a pipe
whose other end the thread selects on) and joins the thread.

    with af.LocalCluster(ps=1, workers=2, supervise=True) as cluster:
        cluster.kill("ps", 0)     # comes back in well under a second (the standby)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from actorflow.processes import child_env, spawn, stop_processes

log = logging.getLogger("actorflow.cluster")


class TaskSupervisor:
    def __init__(self, cluster: Any, poll_interval: float = 0.2, max_restarts: int = 100,
                 standby: bool = True):
        self.cluster = cluster
        self.use_standby = standby
        self._standby: subprocess.Popen[bytes] | None = None
        self.poll_interval = poll_interval  # without pidfds; with them, a backstop
        self.max_restarts = max_restarts
        self.restarts: list[tuple[str, int, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="af-task-supervisor",
                                        daemon=True)

    def start(self) -> TaskSupervisor:
        self._new_standby()  # from the caller's thread: it dies with this process
        self._thread.start()
        return self

    def _new_standby(self) -> None:
        if self.use_standby and not self._stop.is_set():
            try:
                self._standby = spawn_standby(self.cluster.python, self.cluster.log_dir)
            except OSError as e:  # restarts then start a new process, as without a standby
                self.errors.append(f"standby: {e}")

    def _take_standby(self) -> subprocess.Popen[bytes] | None:
        proc, self._standby = self._standby, None
        if proc is not None and proc.poll() is not None:  # it died: start afresh
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            return None
        return proc

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._wait_for_a_death()
                for job, task in self.cluster.daemon_tasks():
                    if self._stop.is_set() or self.cluster.alive(job, task):
                        continue
                    if len(self.restarts) >= self.max_restarts:
                        continue
                    self._restart(job, task)
        finally:
            os.close(self._wake_r)

    def _restart(self, job: str, task: int) -> None:
        log.warning("task %s:%d died; restarting it", job, task)
        t0 = time.perf_counter()
        standby = self._take_standby()
        try:
            self.cluster.restart(job, task, standby)
            self.restarts.append((job, task, time.time()))
            log.info("task %s:%d restarted%s: ready in %.2f s", job, task,
                     " from the standby" if standby else "", time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - reported, retried at the next wake
            self.errors.append(f"{job}:{task}: {e}")
        self._new_standby()

    def _wait_for_a_death(self) -> None:
        """Return when a daemon may have died (a pidfd became readable), `stop` was called,
        or after `poll_interval` (a backstop; the only way without pidfds)."""
        fds: list[int] = []
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self._wake_r, selectors.EVENT_READ)
                watched = True
                for job, task in self.cluster.daemon_tasks():
                    try:
                        fd = os.pidfd_open(self.cluster.pid(job, task))
                    except (AttributeError, OSError):  # no pidfds here, or reaped already
                        watched = False
                        continue
                    fds.append(fd)
                    sel.register(fd, selectors.EVENT_READ)
                sel.select(timeout=max(self.poll_interval, 5.0) if watched
                           else self.poll_interval)
        finally:
            for fd in fds:
                os.close(fd)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
        if not self._thread.ident:  # never started: its end of the pipe is ours to close
            os.close(self._wake_r)
        os.close(self._wake_w)
        standby, self._standby = self._standby, None
        if standby is not None:
            stop_processes([standby])
            for pipe in (standby.stdin, standby.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()


def spawn_standby(python: str, log_dir: Path | None) -> subprocess.Popen[bytes]:
    """Start a standby process (`standby_main`): its stderr goes to ``standby.log`` in
    `log_dir` until it is told which task to be."""
    log_path = Path(log_dir) / "standby.log" if log_dir is not None else None
    with open(log_path or os.devnull, "ab") as err:
        return spawn([python, "-c", "from actorflow.task_supervisor import standby_main; "
                      "standby_main()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=err, env=child_env())


def assign_standby(proc: subprocess.Popen[bytes], argv: list[str],
                   log_path: Path) -> subprocess.Popen[bytes]:
    """Tell a standby to run ``actorflow <argv>`` with its stderr appended to `log_path`;
    returns it (its stdout then carries the daemon's READY line)."""
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"argv": argv, "log": str(log_path)}).encode() + b"\n")
    proc.stdin.close()
    return proc


def standby_main() -> None:
    """The standby process: import what a worker daemon runs, then wait for one line on stdin
    (``{"argv": [...], "log": PATH}``) and become that daemon (`actorflow.cli.main`); exit
    quietly if stdin closes first."""
    from actorflow import cli
    from scheduler import worker_service  # noqa: F401 - the daemon's code, imported ahead

    line = sys.stdin.buffer.readline()
    if not line.strip():
        sys.exit(0)
    order = json.loads(line)
    fd = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(cli.main(order["argv"]))
