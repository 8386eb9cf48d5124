"""An opt-in supervisor for `af.LocalCluster` / `actorflow cluster --supervise`: restarts a
task whose daemon died.

One thread waits for any daemon's process to end: on Linux it selects on a pidfd per daemon
(``os.pidfd_open``), so a death is noticed the moment it happens, not at the next poll;
elsewhere it polls every `poll_interval` seconds. A dead daemon is started again on the same
address (`LocalCluster.restart`), so a new process with a new incarnation and empty memory
answers there. Clients notice (the connection to it closes: Unavailable; or a new
incarnation: Aborted; or uninitialized variables) and a MonitoredTrainingSession's chief
restores the latest checkpoint onto it (a master connecting meanwhile waits until the task
listens again: `transport.local_ipc.wait_listening`).

State: `restarts` lists (job, task, time) of every restart, appended by the thread only,
once the new daemon is ready; `errors` the restarts that failed (retried at the next wake);
`_stop` is set by `stop()`, which also writes to `_wake` (a pipe the thread selects on) and
joins the thread.

    with af.LocalCluster(ps=1, workers=2, supervise=True) as cluster:
        cluster.kill("ps", 0)     # comes back after its start-up time (a new process)
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from typing import Any

log = logging.getLogger("actorflow.cluster")


class TaskSupervisor:
    def __init__(self, cluster: Any, poll_interval: float = 0.2, max_restarts: int = 100):
        self.cluster = cluster
        self.poll_interval = poll_interval  # without pidfds; with them, a backstop
        self.max_restarts = max_restarts
        self.restarts: list[tuple[str, int, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="af-task-supervisor",
                                        daemon=True)

    def start(self) -> TaskSupervisor:
        self._thread.start()
        return self

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
        try:
            self.cluster.restart(job, task)
            self.restarts.append((job, task, time.time()))
            log.info("task %s:%d restarted: ready in %.2f s", job, task,
                     time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - reported, retried at the next wake
            self.errors.append(f"{job}:{task}: {e}")

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
