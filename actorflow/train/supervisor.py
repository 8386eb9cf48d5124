"""`af.train.Supervisor`: TF1's Supervisor, as a thin layer over the monitored-session
machinery (Scaffold + Chief/WorkerSessionCreator), for old programs:

    sv = af.train.Supervisor(logdir="/tmp/train", is_chief=(task == 0), save_model_secs=60)
    with sv.managed_session(target) as sess:
        while not sv.should_stop():
            sess.run(train_op)

The chief restores the latest checkpoint of `logdir` or initializes; other tasks wait until the
model is ready. Periodic checkpoints (`save_model_secs`) are written by the chief from
`should_stop()`, which such loops call every step (TF's Supervisor used a background thread;
here the training thread saves, so a save never races a step). A final checkpoint is written
when the managed session exits normally. The graph's queue runners start on the supervisor's
`coord` when the session is prepared (`start_standard_services`); `stop()` (and the end of
`managed_session`) requests a stop and gives every coordinated thread `stop_grace_secs` to end
before the session closes; an error a thread reported is re-raised there.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from actorflow.graph import get_default_graph
from actorflow.train import training_util
from actorflow.train.coordinator import Coordinator
from actorflow.train.monitored_session import (
    ChiefSessionCreator,
    Scaffold,
    WorkerSessionCreator,
)
from actorflow.train.queue_runner import start_queue_runners

USE_DEFAULT = 0


class Supervisor:
    """Initializes or restores a model, saves it periodically, and tells the loop when to stop."""

    def __init__(self, graph: Any = None, ready_op: Any = USE_DEFAULT, is_chief: bool = True,
                 init_op: Any = USE_DEFAULT, init_feed_dict: dict | None = None,
                 local_init_op: Any = USE_DEFAULT, logdir: str | None = None,
                 summary_op: Any = USE_DEFAULT, saver: Any = USE_DEFAULT,
                 global_step: Any = USE_DEFAULT, save_summaries_secs: float = 120,
                 save_model_secs: float = 600, recovery_wait_secs: float = 30,
                 stop_grace_secs: float = 120, checkpoint_basename: str = "model.ckpt",
                 session_manager: Any = None, summary_writer: Any = USE_DEFAULT,
                 init_fn: Any = None, local_init_run_options: Any = None):
        self._graph = graph or get_default_graph()

        def pick(v: Any) -> Any:
            return None if v is USE_DEFAULT else v
        with self._graph.as_default():
            self._scaffold = Scaffold(
                init_op=pick(init_op), init_feed_dict=init_feed_dict,
                init_fn=(lambda scaffold, sess: init_fn(sess)) if init_fn else None,
                ready_op=pick(ready_op), local_init_op=pick(local_init_op),
                summary_op=pick(summary_op), saver=pick(saver)).finalize()
            self._global_step = training_util.get_global_step() if global_step is \
                USE_DEFAULT else global_step
        self._is_chief, self._logdir = is_chief, logdir
        self._save_model_secs = save_model_secs if logdir else 0
        self._save_path = os.path.join(logdir, checkpoint_basename) if logdir else None
        self._recovery_wait = recovery_wait_secs
        self._stop_grace_secs = stop_grace_secs
        self._coord = Coordinator()
        self._sess: Any = None
        self._last_save = time.monotonic()

    # -- properties as TF's --------------------------------------------------------------------
    @property
    def is_chief(self) -> bool:
        return self._is_chief

    @property
    def coord(self) -> Coordinator:
        return self._coord

    @property
    def saver(self) -> Any:
        return self._scaffold.saver

    @property
    def global_step(self) -> Any:
        return self._global_step

    @property
    def init_op(self) -> Any:
        return self._scaffold.init_op

    @property
    def ready_op(self) -> Any:
        return self._scaffold.ready_op

    @property
    def save_path(self) -> str | None:
        return self._save_path

    def prepare_or_wait_for_session(self, master: str = "", config: Any = None,
                                    wait_for_checkpoint: bool = False,
                                    max_wait_secs: float = 7200,
                                    start_standard_services: bool = True) -> Any:
        with self._graph.as_default():
            if self._is_chief:
                creator: Any = ChiefSessionCreator(self._scaffold, master, config, self._logdir,
                                                   max_wait_secs=max_wait_secs)
            else:
                creator = WorkerSessionCreator(self._scaffold, master, config, max_wait_secs)
            creator.recovery_wait_secs = min(self._recovery_wait, 1.0)
            self._sess = creator.create_session()
        self._last_save = time.monotonic()
        if start_standard_services:
            self.start_queue_runners(self._sess)
        return self._sess

    def start_queue_runners(self, sess: Any, queue_runners: Any = None) -> list[Any]:
        """Start the graph's queue runners (or `queue_runners`) on this supervisor's coord."""
        if queue_runners is None:
            with self._graph.as_default():
                return start_queue_runners(sess, coord=self._coord, daemon=True)
        return [t for qr in queue_runners
                for t in qr.create_threads(sess, coord=self._coord, daemon=True, start=True)]

    @contextlib.contextmanager
    def managed_session(self, master: str = "", config: Any = None,
                        start_standard_services: bool = True,
                        close_summary_writer: bool = True) -> Iterator[Any]:
        sess = self.prepare_or_wait_for_session(
            master, config, start_standard_services=start_standard_services)
        try:
            yield sess
            self._save()
        except Exception as e:
            self._coord.request_stop(e)  # re-raised by stop() unless a clean stop
        finally:
            try:
                self.stop()
            finally:
                sess.close()

    def _save(self) -> None:
        if self._is_chief and self._save_path and self._sess is not None:
            step = self._global_step if self._global_step is not None else None
            self.saver.save(self._sess, self._save_path, global_step=step)
            self._last_save = time.monotonic()

    def should_stop(self) -> bool:
        if self._save_model_secs and time.monotonic() - self._last_save >= \
                self._save_model_secs:
            self._save()
        return self._coord.should_stop()

    def request_stop(self, ex: BaseException | None = None) -> None:
        self._coord.request_stop(ex)

    def stop(self, threads: Any = None, close_summary_writer: bool = True,
             ignore_live_threads: bool = False) -> None:
        """Request a stop and wait up to `stop_grace_secs` for the coordinated threads (and
        `threads`); re-raises an error a thread reported (TF's Supervisor.stop)."""
        self._coord.request_stop()
        self._coord.join(threads, stop_grace_period_secs=self._stop_grace_secs,
                         ignore_live_threads=ignore_live_threads)

    def stop_on_exception(self) -> contextlib.AbstractContextManager[None]:
        return self._coord.stop_on_exception()
