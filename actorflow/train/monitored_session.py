"""MonitoredSession and MonitoredTrainingSession (TF1's `monitored_session`): a session that
initializes or restores the model, runs hooks around every step, and recovers from a lost task.

    with af.train.MonitoredTrainingSession(master=target, is_chief=(task == 0),
                                           checkpoint_dir="/tmp/train",
                                           save_checkpoint_steps=100,
                                           hooks=[af.train.StopAtStepHook(last_step=1000)]) as s:
        while not s.should_stop():
            s.run(train_op, feed_dict=...)

Creating a session (`ChiefSessionCreator`, `WorkerSessionCreator`):
- the chief opens an `af.Session`, restores the latest checkpoint of `checkpoint_dir` if there
  is one, else runs the scaffold's `init_op` and `init_fn`; then `local_init_op`; then checks
  `ready_op` (the names of uninitialized variables) is empty;
- any other worker opens a session and waits (polling `ready_op`, from 50 ms apart doubling
  up to `recovery_wait_secs`, for at most `max_wait_secs`) until the chief made the model
  ready, then runs `local_init_op`.
- A task that is down meanwhile (Unavailable/Aborted) is retried the same way; a task that
  is starting is waited for by the session's connect (it returns once the task listens).

Recovery: `MonitoredSession.run` treats Aborted and Unavailable (a task restarted or went
away) and FailedPrecondition naming an uninitialized variable (a parameter server restarted
with empty memory) as a lost task: it closes the session and creates a new one with the same
creator, so the chief restores the latest checkpoint onto the restarted task and the others
wait for it, then the step is retried. Hooks see `after_create_session` again. Every recovery
is recorded in `recoveries` (the error, the global step restored, the seconds it took and
when each phase ended), which is how a caller reports the steps lost; each is also logged
(INFO, "actorflow.train") with its phases.

Threads: each created session gets a fresh `af.train.Coordinator`, on which the graph's queue
runners are started and which hooks receive in `after_create_session` (to register threads of
their own). An error a thread reports is raised at the next `run`. On `close` (and before a
recovery recreates the session) the coordinator asks them to stop and waits up to
`stop_grace_period_secs` for them to end, then the session closes; threads still alive after
the grace period are logged and left behind (TF's `ignore_live_threads=True`).

`report_uninitialized_variables()` returns a string tensor of the names of the uninitialized
variables (TF1's): their `VarIsInitializedOp`s run where the variables live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actorflow.graph import GraphKeys, get_default_graph, name_scope
from actorflow.ops import core_ops
from actorflow.session import Session
from actorflow.train import basic_session_run_hooks as hooks_mod
from actorflow.train import checkpoint_management as cm
from actorflow.train import training_util
from actorflow.train.coordinator import Coordinator
from actorflow.train.queue_runner import start_queue_runners
from actorflow.train.saver import Saver
from actorflow.train.session_run_hook import (
    SessionRunArgs,
    SessionRunContext,
    SessionRunHook,
    SessionRunValues,
)
from devices.errors import AbortedError, FailedPreconditionError, UnavailableError

log = logging.getLogger("actorflow.train")
USE_DEFAULT = object()


def _is_lost_task(e: BaseException) -> bool:
    if isinstance(e, AbortedError | UnavailableError):
        return True
    return isinstance(e, FailedPreconditionError) and "uninitialized" in str(e)


def report_uninitialized_variables(var_list: Sequence[Any] | None = None,
                                   name: str = "report_uninitialized_variables") -> Any:
    """A 1-D string tensor: the names of the variables in `var_list` (default: global and
    local) that are not initialized."""
    from actorflow.ops import compare_ops, join_ops, math_ops, partition_ops
    from devices import dtypes

    g = get_default_graph()
    if var_list is None:
        var_list = g.get_collection(GraphKeys.GLOBAL_VARIABLES) + g.get_collection(
            GraphKeys.LOCAL_VARIABLES)
    with name_scope(name):
        names = np.array([v.op.name.encode() for v in var_list] or [b""], dtype=object)
        if not var_list:
            return core_ops.constant(names[:0], dtype=dtypes.string)
        mask = compare_ops.logical_not(join_ops.stack([v.is_initialized() for v in var_list]))
        const = core_ops.constant(names, dtype=dtypes.string)
        return partition_ops.dynamic_partition(const, math_ops.cast(mask, dtypes.int32), 2)[1]


def default_saver() -> Saver:
    """The graph's saver (SAVERS collection), created (sharded) if there is none."""
    g = get_default_graph()
    savers = g.get_collection(GraphKeys.SAVERS) if hasattr(GraphKeys, "SAVERS") else \
        g.get_collection("savers")
    if savers:
        return savers[0]
    saver = Saver(sharded=True, allow_empty=True)
    g.add_to_collection(getattr(GraphKeys, "SAVERS", "savers"), saver)
    return saver


class Scaffold:
    """What a monitored session needs to make a model ready: init/ready ops and a saver."""

    def __init__(self, init_op: Any = None, init_feed_dict: dict | None = None,
                 init_fn: Any = None, ready_op: Any = None, ready_for_local_init_op: Any = None,
                 local_init_op: Any = None, summary_op: Any = None, saver: Any = None,
                 copy_from_scaffold: Scaffold | None = None):
        if copy_from_scaffold is not None:
            c = copy_from_scaffold
            init_op = init_op or c.init_op
            init_feed_dict = init_feed_dict or c.init_feed_dict
            init_fn = init_fn or c._user_init_fn
            ready_op = ready_op or c.ready_op
            ready_for_local_init_op = ready_for_local_init_op or c.ready_for_local_init_op
            local_init_op = local_init_op or c.local_init_op
            summary_op = summary_op or c.summary_op
            saver = saver or c.saver
        self.init_op, self.init_feed_dict = init_op, init_feed_dict
        self._user_init_fn = init_fn
        self.init_fn = (lambda sess: init_fn(self, sess)) if init_fn else None
        self.ready_op, self.ready_for_local_init_op = ready_op, ready_for_local_init_op
        self.local_init_op, self.summary_op, self.saver = local_init_op, summary_op, saver
        self._finalized = False

    def finalize(self) -> Scaffold:
        """Create the defaults (TF's): global init, ready ops, local init, summaries, saver."""
        if self._finalized:
            return self
        from actorflow import variables

        if self.init_op is None:
            self.init_op = variables.global_variables_initializer()
        if self.ready_op is None:
            self.ready_op = report_uninitialized_variables()
        if self.ready_for_local_init_op is None:
            self.ready_for_local_init_op = report_uninitialized_variables(
                variables.global_variables(), name="report_uninitialized_globals")
        if self.local_init_op is None:
            self.local_init_op = variables.local_variables_initializer()
        if self.summary_op is None:
            summaries = get_default_graph().get_collection(GraphKeys.SUMMARIES) if hasattr(
                GraphKeys, "SUMMARIES") else []
            if summaries:
                from actorflow import summary
                self.summary_op = summary.merge_all()
        if self.saver is None:
            self.saver = default_saver()
        self._finalized = True
        return self


def _names(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]


class _SessionCreator:
    def __init__(self, scaffold: Scaffold | None, master: str, config: Any,
                 max_wait_secs: float, recovery_wait_secs: float = 0.5):
        self.scaffold = scaffold or Scaffold()
        self.master, self.config = master, config
        self.max_wait_secs, self.recovery_wait_secs = max_wait_secs, recovery_wait_secs
        self.graph = get_default_graph()

    def _open(self) -> Session:
        return Session(self.master, graph=self.graph, config=self.config)

    def _retrying(self, attempt: Any) -> Session:
        deadline = time.monotonic() + self.max_wait_secs
        pause = min(0.05, self.recovery_wait_secs)
        while True:
            sess = None
            try:
                sess = self._open()
                result = attempt(sess)
                if result is not None:
                    return result
                why = "the model is not ready yet"
            except Exception as e:  # noqa: BLE001 - only lost-task errors are retried
                if not _is_lost_task(e):
                    if sess is not None:
                        sess.close()
                    raise
                why = f"{type(e).__name__}: {str(e)[:200]}"
            if sess is not None:
                sess.close()
            if time.monotonic() > deadline:
                raise UnavailableError(f"no ready session after {self.max_wait_secs} s "
                                       f"({why}); is the chief running and every task up?")
            log.info("session not ready (%s); retrying in %.2f s", why, pause)
            time.sleep(pause)  # a backoff up to recovery_wait_secs: the first retries are soon
            pause = min(pause * 2, self.recovery_wait_secs)


class ChiefSessionCreator(_SessionCreator):
    """Creates a session on the chief: restore from `checkpoint_dir` or initialize."""

    def __init__(self, scaffold: Scaffold | None = None, master: str = "", config: Any = None,
                 checkpoint_dir: str | None = None,
                 checkpoint_filename_with_path: str | None = None,
                 max_wait_secs: float = 7200):
        super().__init__(scaffold, master, config, max_wait_secs)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_filename_with_path = checkpoint_filename_with_path
        self.restored_from: str | None = None

    def create_session(self) -> Session:
        s = self.scaffold.finalize()

        def attempt(sess: Session) -> Session:
            path = self.checkpoint_filename_with_path or (
                cm.latest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir else None)
            if path:
                s.saver.restore(sess, path)
                self.restored_from = path
                state = cm.get_checkpoint_state(self.checkpoint_dir) if \
                    self.checkpoint_dir else None
                if state is not None and hasattr(s.saver, "recover_last_checkpoints"):
                    s.saver.recover_last_checkpoints(state.all_model_checkpoint_paths)
            else:
                sess.run(s.init_op, feed_dict=s.init_feed_dict)
                if s.init_fn:
                    s.init_fn(sess)
            if s.local_init_op is not None:
                sess.run(s.local_init_op)
            missing = _names(sess.run(s.ready_op))
            if missing:
                raise RuntimeError(f"Init operations did not make model ready: variables "
                                   f"{missing} are still uninitialized")
            return sess
        return self._retrying(attempt)


class WorkerSessionCreator(_SessionCreator):
    """Creates a session on a non-chief worker: wait until the chief made the model ready."""

    def __init__(self, scaffold: Scaffold | None = None, master: str = "", config: Any = None,
                 max_wait_secs: float = 30 * 60):
        super().__init__(scaffold, master, config, max_wait_secs)

    def create_session(self) -> Session:
        s = self.scaffold.finalize()

        def attempt(sess: Session) -> Session | None:
            if _names(sess.run(s.ready_for_local_init_op)):
                return None
            if s.local_init_op is not None:
                sess.run(s.local_init_op)
            return None if _names(sess.run(s.ready_op)) else sess
        return self._retrying(attempt)


@dataclass(frozen=True)
class Recovery:
    """One recovery from a lost task: what failed and where training resumed."""

    error: str
    restored_step: int | None
    seconds: float
    # (phase, seconds since the error reached `run`): "threads stopped", "session closed",
    # "session created" (the chief restored / the worker found the model ready), "global step"
    phases: tuple[tuple[str, float], ...] = ()


class _MonitoredSession:
    def __init__(self, session_creator: Any, hooks: Sequence[SessionRunHook],
                 should_recover: bool, stop_grace_period_secs: float = 120):
        self._creator = session_creator
        self._hooks = list(hooks)
        self._recover = should_recover
        self._grace = stop_grace_period_secs
        self._should_stop = False
        self._closed = False
        self.recoveries: list[Recovery] = []
        for h in self._hooks:
            h.begin()
        self.graph = getattr(session_creator, "graph", None) or get_default_graph()
        self._coord = Coordinator(clean_stop_exception_types=())
        self._sess = self._create()

    def _create(self) -> Session:
        """A session from the creator, with a fresh coordinator and the graph's queue
        runners started on it (as TF's _CoordinatedSessionCreator)."""
        sess = self._creator.create_session()
        self._coord = Coordinator(clean_stop_exception_types=())
        with self.graph.as_default():
            start_queue_runners(sess, coord=self._coord, daemon=True)
        for h in self._hooks:
            h.after_create_session(sess, self._coord)
        return sess

    def _stop_threads(self, raise_error: bool) -> None:
        """Ask the coordinator's threads (queue runners, hooks' registered threads) to stop
        and give them `stop_grace_period_secs` to end before the session closes under them.
        A thread still running then is logged and left (TF's ignore_live_threads=True); an
        error a thread reported is re-raised when `raise_error` (close), else logged."""
        self._coord.request_stop()
        try:
            self._coord.join(stop_grace_period_secs=self._grace)
        except RuntimeError as e:
            if "threads still running" not in str(e):
                raise
            log.warning("closing the session with %s", e)
        except Exception as e:
            if raise_error:
                raise
            log.warning("a coordinated thread failed: %s: %s", type(e).__name__, e)

    def raw_session(self) -> Session:
        return self._sess

    def should_stop(self) -> bool:
        return self._should_stop or self._coord.should_stop()

    def run(self, fetches: Any, feed_dict: dict | None = None, options: Any = None,
            run_metadata: Any = None) -> Any:
        while True:
            try:
                return self._run_once(fetches, feed_dict, options, run_metadata)
            except Exception as e:
                if not (self._recover and _is_lost_task(e)):
                    raise
                start = time.perf_counter()
                log.warning("a task was lost (%s: %s); recreating the session",
                            type(e).__name__, str(e)[:200])
                phases: list[tuple[str, float]] = []
                self._stop_threads(raise_error=False)
                phases.append(("threads stopped", time.perf_counter() - start))
                self._sess.close()
                phases.append(("session closed", time.perf_counter() - start))
                self._sess = self._create()
                phases.append(("session created", time.perf_counter() - start))
                step = None
                gs = training_util.get_global_step(self.graph)
                if gs is not None:
                    step = int(self._sess.run(gs))
                    phases.append(("global step", time.perf_counter() - start))
                took = time.perf_counter() - start
                log.info("recovered in %.2f s at global step %s (%s)", took, step,
                         ", ".join(f"{name} at {t:.2f} s" for name, t in phases))
                self.recoveries.append(Recovery(f"{type(e).__name__}: {str(e)[:200]}", step,
                                                took, tuple(phases)))

    def _run_once(self, fetches: Any, feed_dict: dict | None, options: Any,
                  run_metadata: Any) -> Any:
        self._coord.raise_requested_exception()  # a queue runner's or hook thread's error
        ctx = SessionRunContext(SessionRunArgs(fetches, feed_dict, options), self._sess)
        extra: dict[int, Any] = {}
        feeds = dict(feed_dict or {})
        for i, h in enumerate(self._hooks):
            args = h.before_run(ctx)
            if args is None:
                continue
            if args.fetches is not None:
                extra[i] = args.fetches
            if args.feed_dict:
                clash = set(args.feed_dict) & set(feeds)
                if clash:
                    raise RuntimeError(f"Same tensor is fed by a SessionRunHook and user: "
                                       f"{sorted(map(str, clash))}")
                feeds.update(args.feed_dict)
        kwargs = {} if options is None and run_metadata is None else {
            "options": options, "run_metadata": run_metadata}
        out = self._sess.run({"caller": fetches, "hooks": extra}, feed_dict=feeds or None,
                             **kwargs)
        for i, h in enumerate(self._hooks):
            h.after_run(ctx, SessionRunValues(out["hooks"].get(i), options, run_metadata))
        if ctx.stop_requested:
            self._should_stop = True
        return out["caller"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for h in self._hooks:
                h.end(self._sess)
        finally:
            try:
                self._stop_threads(raise_error=True)
            finally:
                self._sess.close()

    def __enter__(self) -> _MonitoredSession:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self.close()
        elif not self._closed:
            self._closed = True
            try:
                self._stop_threads(raise_error=False)  # the block's exception goes on
            finally:
                self._sess.close()
        return False


class MonitoredSession(_MonitoredSession):
    """Runs hooks around every step and recovers from lost tasks (see the module docstring)."""

    def __init__(self, session_creator: Any = None, hooks: Sequence[SessionRunHook] | None = None,
                 stop_grace_period_secs: float = 120):
        super().__init__(session_creator or ChiefSessionCreator(), hooks or [], True,
                         stop_grace_period_secs)


class SingularMonitoredSession(_MonitoredSession):
    """A MonitoredSession for one process (the chief), without recovery."""

    def __init__(self, hooks: Sequence[SessionRunHook] | None = None,
                 scaffold: Scaffold | None = None, master: str = "", config: Any = None,
                 checkpoint_dir: str | None = None, stop_grace_period_secs: float = 120,
                 checkpoint_filename_with_path: str | None = None):
        creator = ChiefSessionCreator(scaffold, master, config, checkpoint_dir,
                                      checkpoint_filename_with_path)
        super().__init__(creator, hooks or [], False, stop_grace_period_secs)


def MonitoredTrainingSession(master: str = "", is_chief: bool = True,  # noqa: N802 (TF name)
                             checkpoint_dir: str | None = None,
                             scaffold: Scaffold | None = None,
                             hooks: Sequence[SessionRunHook] | None = None,
                             chief_only_hooks: Sequence[SessionRunHook] | None = None,
                             save_checkpoint_secs: Any = USE_DEFAULT,
                             save_summaries_steps: Any = USE_DEFAULT,
                             save_summaries_secs: Any = USE_DEFAULT, config: Any = None,
                             stop_grace_period_secs: float = 120,
                             log_step_count_steps: int | None = 100,
                             max_wait_secs: float = 7200,
                             save_checkpoint_steps: Any = USE_DEFAULT,
                             summary_dir: str | None = None) -> MonitoredSession:
    """TF1's `tf.train.MonitoredTrainingSession`: a MonitoredSession set up for training."""
    if save_checkpoint_steps is USE_DEFAULT and save_checkpoint_secs is USE_DEFAULT:
        save_checkpoint_steps, save_checkpoint_secs = None, 600
    elif save_checkpoint_secs is USE_DEFAULT:
        save_checkpoint_secs = None
    elif save_checkpoint_steps is USE_DEFAULT:
        save_checkpoint_steps = None
    if save_summaries_steps is USE_DEFAULT and save_summaries_secs is USE_DEFAULT:
        save_summaries_steps, save_summaries_secs = 100, None
    elif save_summaries_secs is USE_DEFAULT:
        save_summaries_secs = None
    elif save_summaries_steps is USE_DEFAULT:
        save_summaries_steps = None
    scaffold = scaffold or Scaffold()
    all_hooks = list(hooks or [])
    if not is_chief:
        creator: Any = WorkerSessionCreator(scaffold, master, config, max_wait_secs)
        return MonitoredSession(creator, all_hooks, stop_grace_period_secs)
    all_hooks += list(chief_only_hooks or [])
    creator = ChiefSessionCreator(scaffold, master, config, checkpoint_dir,
                                  max_wait_secs=max_wait_secs)
    summary_dir = summary_dir or checkpoint_dir
    if summary_dir and log_step_count_steps and log_step_count_steps > 0:
        all_hooks.append(hooks_mod.StepCounterHook(every_n_steps=log_step_count_steps,
                                                   output_dir=summary_dir))
    if summary_dir and (save_summaries_steps or save_summaries_secs):
        scaffold.finalize()
        if scaffold.summary_op is not None:
            all_hooks.append(hooks_mod.SummarySaverHook(
                save_steps=save_summaries_steps or None,
                save_secs=None if save_summaries_steps else save_summaries_secs,
                output_dir=summary_dir, scaffold=scaffold))
    if checkpoint_dir and (save_checkpoint_secs or save_checkpoint_steps):
        all_hooks.append(hooks_mod.CheckpointSaverHook(
            checkpoint_dir, save_steps=save_checkpoint_steps or None,
            save_secs=None if save_checkpoint_steps else save_checkpoint_secs,
            scaffold=scaffold))
    return MonitoredSession(creator, all_hooks, stop_grace_period_secs)
