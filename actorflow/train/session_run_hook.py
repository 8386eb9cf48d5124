"""The SessionRunHook protocol (TF1's `tf.train.SessionRunHook`).

A hook watches a MonitoredSession's life:

    begin()                                   once, before the graph is finalized
    after_create_session(session, coord)      after every (re)created session
    before_run(run_context) -> SessionRunArgs | None   before each run: extra fetches/feeds
    after_run(run_context, run_values)        after each run: run_values.results holds the
                                              extra fetches' values
    end(session)                              when the session ends without an error

`run_context.request_stop()` asks the session to stop after this step (`should_stop()`).

    class EveryTen(af.train.SessionRunHook):
        def before_run(self, ctx):
            return af.train.SessionRunArgs(loss)
        def after_run(self, ctx, values):
            if values.results < 0.1:
                ctx.request_stop()
"""

from __future__ import annotations

from typing import Any, NamedTuple


class SessionRunHook:
    """Base class: every method does nothing."""

    def begin(self) -> None:
        pass

    def after_create_session(self, session: Any, coord: Any) -> None:
        pass

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs | None:
        return None

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        pass

    def end(self, session: Any) -> None:
        pass


class SessionRunArgs(NamedTuple):
    """What a hook adds to a run: fetches (any nest), feeds, options."""

    fetches: Any
    feed_dict: dict | None = None
    options: Any = None


class SessionRunValues(NamedTuple):
    """The results of a hook's fetches, with the run's options and metadata."""

    results: Any
    options: Any = None
    run_metadata: Any = None


class SessionRunContext:
    """The run in progress, as hooks see it."""

    def __init__(self, original_args: SessionRunArgs, session: Any):
        self._original_args = original_args
        self._session = session
        self._stop_requested = False

    @property
    def original_args(self) -> SessionRunArgs:
        return self._original_args

    @property
    def session(self) -> Any:
        return self._session

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def request_stop(self) -> None:
        self._stop_requested = True
