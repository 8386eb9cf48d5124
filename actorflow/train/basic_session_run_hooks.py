"""The standard hooks of TF1 (`basic_session_run_hooks`): stop at a step, save checkpoints and
summaries, log tensors, count steps, catch NaN losses, run final ops, feed, wait for a step.

Each reads the global step the way TF's do: it asks for it in `before_run` (a value that may be
one step stale) and reads it again only when that value says it is time to act.

    hooks = [af.train.StopAtStepHook(last_step=1000),
             af.train.NanTensorHook(loss),
             af.train.LoggingTensorHook({"loss": loss}, every_n_iter=100)]
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from actorflow.train import training_util
from actorflow.train.session_run_hook import (
    SessionRunArgs,
    SessionRunContext,
    SessionRunHook,
    SessionRunValues,
)
from devices.errors import FailedPreconditionError

log = logging.getLogger("actorflow.train")


def _require_global_step() -> Any:
    step = training_util.get_global_step()
    if step is None:
        raise RuntimeError("Global step should be created to use this hook: call "
                           "af.train.get_or_create_global_step() before building the session")
    return step


class SecondOrStepTimer:
    """Triggers every `every_secs` seconds or every `every_steps` steps (exactly one)."""

    def __init__(self, every_secs: float | None = None, every_steps: int | None = None):
        if (every_secs is None) == (every_steps is None):
            raise ValueError("exactly one of every_secs and every_steps should be provided")
        self._secs, self._steps = every_secs, every_steps
        self.reset()

    def reset(self) -> None:
        self._last_time: float | None = None
        self._last_step: int | None = None

    def should_trigger_for_step(self, step: int) -> bool:
        if self._last_step is None:
            return True
        if self._last_step == step:
            return False
        if self._secs is not None:
            return time.time() >= (self._last_time or 0.0) + self._secs
        return step >= self._last_step + (self._steps or 0)

    def update_last_triggered_step(self, step: int) -> tuple[float | None, int | None]:
        now = time.time()
        elapsed = None if self._last_time is None else now - self._last_time
        steps = None if self._last_step is None else step - self._last_step
        self._last_time, self._last_step = now, step
        return elapsed, steps

    def last_triggered_step(self) -> int | None:
        return self._last_step


class StopAtStepHook(SessionRunHook):
    """Requests a stop after `num_steps` more steps, or once the global step reaches
    `last_step`."""

    def __init__(self, num_steps: int | None = None, last_step: int | None = None):
        if (num_steps is None) == (last_step is None):
            raise ValueError("One of num_steps or last_step must be specified.")
        if num_steps is not None and num_steps < 0:
            raise ValueError("num_steps must be non-negative")
        self._num_steps, self._last_step = num_steps, last_step

    def begin(self) -> None:
        self._global_step = _require_global_step()

    def after_create_session(self, session: Any, coord: Any) -> None:
        if self._num_steps is not None and self._last_step is None:
            self._last_step = int(session.run(self._global_step)) + self._num_steps

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results) + 1
        if step >= (self._last_step or 0):
            step = int(run_context.session.run(self._global_step))
            if step >= (self._last_step or 0):
                run_context.request_stop()


class CheckpointSaverListener:
    """Called around every checkpoint the CheckpointSaverHook writes."""

    def begin(self) -> None:
        pass

    def before_save(self, session: Any, global_step_value: int) -> None:
        pass

    def after_save(self, session: Any, global_step_value: int) -> bool | None:
        pass

    def end(self, session: Any, global_step_value: int) -> None:
        pass


class CheckpointSaverHook(SessionRunHook):
    """Saves a checkpoint every N seconds or steps, after the session is created, and at the
    end."""

    def __init__(self, checkpoint_dir: str, save_secs: float | None = None,
                 save_steps: int | None = None, saver: Any = None,
                 checkpoint_basename: str = "model.ckpt", scaffold: Any = None,
                 listeners: list[CheckpointSaverListener] | None = None,
                 save_graph_def: bool = True):
        if saver is not None and scaffold is not None:
            raise ValueError("You cannot provide both saver and scaffold.")
        self._dir = checkpoint_dir
        self._path = os.path.join(checkpoint_dir, checkpoint_basename)
        self._saver, self._scaffold = saver, scaffold
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._listeners = list(listeners or [])
        self.saves: list[int] = []  # global steps saved by this hook (for reports and tests)

    def begin(self) -> None:
        self._global_step = _require_global_step()
        os.makedirs(self._dir, exist_ok=True)
        for lst in self._listeners:
            lst.begin()

    def _get_saver(self) -> Any:
        if self._saver is not None:
            return self._saver
        if self._scaffold is not None:
            return self._scaffold.saver
        from actorflow.train.monitored_session import default_saver
        return default_saver()

    def after_create_session(self, session: Any, coord: Any) -> None:
        step = int(session.run(self._global_step))
        if self._timer.last_triggered_step() is None or step != \
                self._timer.last_triggered_step():
            self._save(session, step)
        self._timer.update_last_triggered_step(step)

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        stale = int(run_values.results)
        if self._timer.should_trigger_for_step(stale + 1):
            step = int(run_context.session.run(self._global_step))
            if self._timer.should_trigger_for_step(step):
                self._timer.update_last_triggered_step(step)
                if self._save(run_context.session, step):
                    run_context.request_stop()

    def end(self, session: Any) -> None:
        step = int(session.run(self._global_step))
        if step != self._timer.last_triggered_step():
            self._save(session, step)
        for lst in self._listeners:
            lst.end(session, step)

    def _save(self, session: Any, step: int) -> bool:
        for lst in self._listeners:
            lst.before_save(session, step)
        log.info("Saving checkpoints for %d into %s.", step, self._path)
        self._get_saver().save(session, self._path, global_step=step)
        self.saves.append(step)
        stop = False
        for lst in self._listeners:
            if lst.after_save(session, step):
                stop = True
        return stop


def _as_tensor_dict(tensors: Any) -> dict[str, Any]:
    if isinstance(tensors, dict):
        return dict(tensors)
    return {getattr(t, "name", str(t)): t for t in tensors}


class LoggingTensorHook(SessionRunHook):
    """Logs the values of tensors every N local steps or seconds (and at the end)."""

    def __init__(self, tensors: Any, every_n_iter: int | None = None,
                 every_n_secs: float | None = None, at_end: bool = False,
                 formatter: Callable[[dict], str] | None = None):
        if not at_end and (every_n_iter is None) == (every_n_secs is None):
            raise ValueError("either at_end and/or exactly one of every_n_iter and "
                             "every_n_secs must be provided.")
        self._tensors = _as_tensor_dict(tensors)
        self._timer = None if (every_n_iter is None and every_n_secs is None) else \
            SecondOrStepTimer(every_secs=every_n_secs, every_steps=every_n_iter)
        self._at_end, self._formatter = at_end, formatter
        self.logged: list[dict[str, Any]] = []

    def begin(self) -> None:
        self._iter = 0

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs | None:
        self._should = self._timer is not None and self._timer.should_trigger_for_step(
            self._iter)
        return SessionRunArgs(self._tensors) if self._should else None

    def _log(self, values: dict[str, Any]) -> None:
        self.logged.append(values)
        if self._formatter:
            log.info(self._formatter(values))
        else:
            log.info(", ".join(f"{k} = {v}" for k, v in values.items()))

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if self._should and self._timer is not None:
            self._timer.update_last_triggered_step(self._iter)
            self._log(run_values.results)
        self._iter += 1

    def end(self, session: Any) -> None:
        if self._at_end:
            self._log(session.run(self._tensors))


class NanLossDuringTrainingError(RuntimeError):
    def __str__(self) -> str:
        return "NaN loss during training."


class NanTensorHook(SessionRunHook):
    """Stops (or raises NanLossDuringTrainingError) when the loss is NaN."""

    def __init__(self, loss_tensor: Any, fail_on_nan_loss: bool = True):
        self._loss, self._fail = loss_tensor, fail_on_nan_loss

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._loss)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if np.isnan(run_values.results):
            if self._fail:
                raise NanLossDuringTrainingError
            log.warning("Model diverged with loss = NaN.")
            run_context.request_stop()


class StepCounterHook(SessionRunHook):
    """Measures global steps per second every N steps or seconds (`rates` keeps them; written
    as the `global_step/sec` summary when a directory or writer is given)."""

    def __init__(self, every_n_steps: int | None = 100, every_n_secs: float | None = None,
                 output_dir: str | None = None, summary_writer: Any = None):
        if (every_n_steps is None) == (every_n_secs is None):
            raise ValueError("exactly one of every_n_steps and every_n_secs should be provided.")
        self._timer = SecondOrStepTimer(every_steps=every_n_steps, every_secs=every_n_secs)
        self._output_dir, self._writer = output_dir, summary_writer
        self.rates: list[float] = []

    def begin(self) -> None:
        self._global_step = _require_global_step()
        if self._writer is None and self._output_dir:
            from actorflow.summary.writer import FileWriterCache
            self._writer = FileWriterCache.get(self._output_dir)

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results)
        if self._timer.should_trigger_for_step(step):
            elapsed, steps = self._timer.update_last_triggered_step(step)
            if elapsed and steps:
                rate = steps / elapsed
                self.rates.append(rate)
                log.info("global_step/sec: %g", rate)
                if self._writer is not None:
                    from actorflow.summary import Summary
                    self._writer.add_summary(Summary(value=[Summary.Value(
                        tag="global_step/sec", simple_value=rate)]), step)


class SummarySaverHook(SessionRunHook):
    """Runs the summary op every N steps or seconds and writes it with a FileWriter."""

    def __init__(self, save_steps: int | None = None, save_secs: float | None = None,
                 output_dir: str | None = None, summary_writer: Any = None,
                 scaffold: Any = None, summary_op: Any = None):
        if (scaffold is None) == (summary_op is None):
            raise ValueError("Exactly one of scaffold or summary_op must be provided.")
        self._timer = SecondOrStepTimer(every_steps=save_steps, every_secs=save_secs)
        self._output_dir, self._writer = output_dir, summary_writer
        self._scaffold, self._op = scaffold, summary_op
        self._next: int | None = None

    def begin(self) -> None:
        self._global_step = _require_global_step()
        if self._writer is None and self._output_dir:
            from actorflow.summary.writer import FileWriterCache
            self._writer = FileWriterCache.get(self._output_dir)

    def _summary_op(self) -> Any:
        return self._op if self._op is not None else self._scaffold.summary_op

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        op = self._summary_op()
        self._request = op is not None and (self._next is None or
                                            self._timer.should_trigger_for_step(self._next))
        fetches: dict[str, Any] = {"step": self._global_step}
        if self._request:
            fetches["summary"] = op
        return SessionRunArgs(fetches)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results["step"])
        self._next = step + 1
        if self._request:
            self._timer.update_last_triggered_step(step)
            if self._writer is not None:
                self._writer.add_summary(run_values.results["summary"], step)

    def end(self, session: Any) -> None:
        if self._writer is not None:
            self._writer.flush()


class FinalOpsHook(SessionRunHook):
    """Runs `final_ops` when the session ends; their values are `final_ops_values`."""

    def __init__(self, final_ops: Any, final_ops_feed_dict: dict | None = None):
        self._ops, self._feed = final_ops, final_ops_feed_dict
        self._values: Any = None

    @property
    def final_ops_values(self) -> Any:
        return self._values

    def end(self, session: Any) -> None:
        if self._ops is not None:
            self._values = session.run(self._ops, feed_dict=self._feed)


class FeedFnHook(SessionRunHook):
    """Adds `feed_fn()`'s feeds to every run."""

    def __init__(self, feed_fn: Callable[[], dict]):
        self.feed_fn = feed_fn

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(fetches=None, feed_dict=self.feed_fn())


class GlobalStepWaiterHook(SessionRunHook):
    """Delays the first step until the global step reaches `wait_until_step` (a worker that
    should start after the chief's warm-up)."""

    def __init__(self, wait_until_step: int, poll_secs: float = 0.5,
                 max_wait_secs: float | None = None):
        self._wait_until, self._poll, self._max = wait_until_step, poll_secs, max_wait_secs

    def begin(self) -> None:
        self._done = self._wait_until <= 0
        self._global_step = _require_global_step()

    def before_run(self, run_context: SessionRunContext) -> None:
        if self._done:
            return None
        start = time.monotonic()
        while True:
            step = int(run_context.session.run(self._global_step))
            if step >= self._wait_until:
                self._done = True
                return None
            if self._max is not None and time.monotonic() - start > self._max:
                raise FailedPreconditionError(
                    f"GlobalStepWaiterHook: the global step is {step} after {self._max} s of "
                    f"waiting for step {self._wait_until}; is the chief training?")
            log.info("Waiting for global step %d before starting training (now %d).",
                     self._wait_until, step)
            time.sleep(self._poll)
