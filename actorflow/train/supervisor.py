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
when the managed session exits normally.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from actorflow.graph import get_default_graph
from actorflow.train import training_util
from actorflow.train.monitored_session import (
    ChiefSessionCreator,
    Coordinator,
    Scaffold,
    WorkerSessionCreator,
)

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
        return self._sess

    @contextlib.contextmanager
    def managed_session(self, master: str = "", config: Any = None,
                        start_standard_services: bool = True,
                        close_summary_writer: bool = True) -> Iterator[Any]:
        sess = self.prepare_or_wait_for_session(master, config)
        try:
            yield sess
            self._save()
        finally:
            self._coord.request_stop()
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
        self._coord.request_stop()

    def stop_on_exception(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()
