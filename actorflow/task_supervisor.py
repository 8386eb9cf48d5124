"""An opt-in supervisor for `af.LocalCluster` / `actorflow cluster --supervise`: restarts a
task whose daemon died.

One thread polls every daemon's process every `poll_interval` seconds; a dead one is started
again on the same address (`LocalCluster.restart`), so a new process with a new incarnation
and empty memory answers there. Clients notice (Unavailable/Aborted, or uninitialized
variables) and a MonitoredTrainingSession's chief restores the latest checkpoint onto it.

State: `restarts` lists (job, task, time) of every restart, appended by the thread only;
`_stop` is set by `stop()`, which joins the thread.

    with af.LocalCluster(ps=1, workers=2, supervise=True) as cluster:
        cluster.kill("ps", 0)     # comes back within ~poll_interval + start-up time
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("actorflow.cluster")


class TaskSupervisor:
    def __init__(self, cluster: Any, poll_interval: float = 0.2, max_restarts: int = 100):
        self.cluster = cluster
        self.poll_interval = poll_interval
        self.max_restarts = max_restarts
        self.restarts: list[tuple[str, int, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="af-task-supervisor",
                                        daemon=True)

    def start(self) -> TaskSupervisor:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            for job, task in self.cluster.daemon_tasks():
                if self._stop.is_set() or self.cluster.alive(job, task):
                    continue
                if len(self.restarts) >= self.max_restarts:
                    continue
                log.warning("task %s:%d died; restarting it", job, task)
                t0 = time.perf_counter()
                try:
                    self.cluster.restart(job, task)
                    self.restarts.append((job, task, time.time()))
                    log.info("task %s:%d restarted: ready in %.2f s", job, task,
                             time.perf_counter() - t0)
                except Exception as e:  # noqa: BLE001 - reported, retried next poll
                    self.errors.append(f"{job}:{task}: {e}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
