"""One step in flight over the tasks of a cluster: the master's run of a `DistributedStep`.

`StepFlight` sends one ``run_graph`` per task of the step and is driven by the calls'
callbacks (a socket's reader, the deadline timer, the in-process service): no trio task per
step or per part. See its docstring for the protocol and its state. `from_task` names the task
in an error that does not say where it happened.

    flight = StepFlight(runtime, step, args, trace=None, stats=None, on_done=done.set,
                        timeout=300.0)
    flight.start()               # in the master's loop
    ...                          # on_done() once every call settled
    rets = flight.result()       # or raises the step's first error
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import trio

from devices.errors import (
    AbortedError,
    DeadlineExceededError,
    InternalError,
    OpError,
    UnavailableError,
)
from scheduler.distributed_plan import DistributedStep, Task, TaskPart


class StepFlight:
    """One step in flight over its tasks, driven by callbacks: no task per step or per part.

    `start` sends one ``run_graph`` per task (remote ones first: the in-process part would
    only wait for the tensors their requests make the others send) and each call's ``then``
    is `_part_done`, called from a socket's reader, a deadline or the in-process service. The
    first error wins: the other calls are cancelled (their servers told to stop), the other
    tasks are sent ``abort``, and the step ends at once with that error.

    A sync caller first sends what it can from its own thread (`send_ahead`): its thread is
    running anyway, while the loop it is about to wake takes ~60 us to get there.

    Every flight has a deadline (``timeout`` seconds: the run's own, else the master's
    ``step_timeout``): the runtime's timer fails it with DeadlineExceededError naming the tasks
    that had not answered, and the tasks' servers cancel their handlers by the same deadline.
    A task that answers UnavailableError is forgotten (`DistributedRuntime._forget`): its
    ``status`` is asked, and the step's parts registered again if its life changed, before
    the next step that needs it. AbortedError (a task restarted, dropped the graph, or refused
    a tensor another task pushed it because it restarted) forgets every task of the step.
    ``started`` (trio time at `start`) tells `scheduler.restart_watch` which steps are slow.

    State (the master's trio thread): ``calls`` (part index -> (part, call id)) for calls in
    flight, ``error`` (the first error), ``rets`` (fetches as they arrive), ``on_done`` (called
    once, when no call is left in flight). ``ahead`` (the calls sent ahead) is written by the
    caller's thread before it wakes the loop and only read after; ``early`` (their outcomes
    before `start`) belongs to the loop.
    """

    __slots__ = ("rt", "step", "args", "trace", "stats", "on_done", "rets", "error", "calls",
                 "step_id", "over", "starting", "deadline", "ahead", "early", "sent_at",
                 "timeout", "started")

    def __init__(self, rt: Any, step: DistributedStep, args: list[Any],
                 trace: list | None, stats: dict | None, on_done: Any, timeout: float):
        self.rt = rt  # the DistributedRuntime
        self.timeout = timeout  # seconds this step may run
        self.started = math.inf  # trio.current_time() at `start`
        self.step = step
        self.args = args
        self.trace = trace
        self.stats = stats
        self.on_done = on_done
        self.rets: list[Any] = [None] * step.n_rets
        self.error: BaseException | None = None
        self.calls: dict[int, tuple[Any, int]] = {}
        self.step_id = 0
        self.over = False
        self.starting = False
        self.deadline = math.inf
        self.ahead: list[tuple[int, TaskPart, int]] = []  # (k, part, call id) sent ahead
        self.early: list[tuple] | None = []  # their outcomes that came before `start`
        self.sent_at = 0.0  # when `send_ahead` sent (time.perf_counter)

    def send_ahead(self) -> None:
        """On a sync caller's thread, before it wakes the loop: send the remote tasks'
        ``run_graph`` requests from here (`RpcClient.start_call_from_thread`), so that they
        travel while the loop wakes; `start` sends the rest. Touches only what the loop does
        not until `start`: their outcomes wait in ``early`` (`_ahead_done`)."""
        rt = self.rt
        local = rt._local
        parts = self.step.tasks
        if any(p.task.client is local and p.early_sends for p in parts):
            return  # the in-process part goes first: its tensors ride on the requests
        self.step_id = rt._rng.getrandbits(63) or 1
        timeout = self.timeout
        self.sent_at = time.perf_counter()
        for k, part in enumerate(parts):
            send = getattr(part.task.client, "start_call_from_thread", None)
            if send is not None:
                header, feeds = self._request(part)
                try:
                    rid = send("run_graph", header, feeds or None,
                               functools.partial(self._ahead_done, k), timeout=timeout)
                except Exception:  # noqa: BLE001 - e.g. a feed the codec refuses: the loop
                    return  # meets it again in `start`, which fails the step and aborts these
                if rid:
                    self.ahead.append((k, part, rid))

    def _ahead_done(self, k: int, header: Any, tensors: list, error: BaseException | None
                    ) -> None:
        if self.early is not None:
            self.early.append((k, header, tensors, error))  # `start` has not run yet
        else:
            self._part_done(k, header, tensors, error)

    def start(self) -> None:
        rt = self.rt
        rt._flights.add(self)
        self.started = trio.current_time()
        self.starting = True
        try:
            for k, part, rid in self.ahead:
                self.calls[k] = (part, rid)
            early, self.early = self.early, None
            for outcome in early:
                self._part_done(*outcome)
            self._start()
        except BaseException as e:  # noqa: BLE001 - a bug here must reach the caller
            self.fail(e if isinstance(e, OpError) else InternalError(
                f"starting the step failed: {type(e).__name__}: {e}"))
            if not isinstance(e, Exception):
                raise
        finally:
            self.starting = False
        if not self.calls:
            self._finish()
        else:
            self.deadline = self.started + self.timeout
            if self.ahead:  # counted from when those requests left, as their servers count
                self.deadline -= time.perf_counter() - self.sent_at
            rt._deadlines.add(self.deadline, (self.step_id, self))  # ids never tie: no flight
            if len(rt._deadlines) > 4 * len(rt._flights) + 1024:  # is ever compared
                rt._deadlines.compact([(f.deadline, (f.step_id, f)) for f in rt._flights])

    def _start(self) -> None:
        rt = self.rt
        parts = self.step.tasks
        if not parts:
            return
        if not self.step_id:
            self.step_id = rt._rng.getrandbits(63) or 1
        local = rt._local
        sent = {k for k, _, _ in self.ahead}
        remote = [(k, p) for k, p in enumerate(parts)
                  if p.task.client is not local and k not in sent]
        mine = [(k, p) for k, p in enumerate(parts) if p.task.client is local]
        # The in-process part goes first when it sends to remote tasks before waiting for
        # anything (ids for a sharded lookup): those tensors then ride on the requests. Else
        # the remote requests leave first: the in-process part would only wait for them.
        early = (mine[0][1].early_sends & {p.task.key for _, p in remote} if mine
                 else frozenset())
        held: dict = {}
        if early:
            held = self._call(*mine[0], local.start_run, early)
        for k, part in remote:
            if self.error is not None:
                return
            self._call(k, part, None, frozenset(), held.get(part.task.key))
        if mine and not early and self.error is None:
            self._call(*mine[0], None, frozenset())

    def _request(self, part: TaskPart) -> tuple[dict, list]:
        """The header and feeds of part's ``run_graph`` in this step."""
        header = dict(part.header)
        header["step"] = self.step_id
        if self.trace is not None:
            header["trace"] = True
        return header, [self.args[i] for i in part.args] if part.args else []

    def _call(self, k: int, part: TaskPart, run: Any, hold: frozenset,
              riders: list | None = None) -> dict:
        """Send part `k`'s run_graph (with `riders`: (key, tensor) pairs its task receives)."""
        header, feeds = self._request(part)
        if riders:
            header["pushed"] = [key for key, _ in riders]
            feeds = feeds + [value for _, value in riders]
        self.calls[k] = (part, 0)
        then = functools.partial(self._part_done, k)
        timeout = self.timeout
        held: dict = {}
        if run is not None:
            rid, held = run(header, feeds or None, then, hold)
        else:
            rid = part.task.client.start_call("run_graph", header, feeds or None, then,
                                              timeout=timeout)
        if k in self.calls:
            self.calls[k] = (part, rid)
        return held

    def _part_done(self, k: int, header: Any, tensors: list, error: BaseException | None
                   ) -> None:
        entry = self.calls.pop(k, None)
        if entry is None:
            return
        part = entry[0]
        if error is not None:
            if self.error is None:
                err = error if isinstance(error, OpError) else InternalError(
                    f"run_graph on {part.task.name} raised {type(error).__name__}: {error}")
                if isinstance(err, UnavailableError):  # it may have restarted: asked before
                    self.rt._forget(part.task)  # the next step
                elif isinstance(err, AbortedError):  # it, or a task it pushed to, restarted
                    for p in self.step.tasks:  # (or dropped the graph): each is asked
                        self.rt._forget(p.task)
                self._fail(from_task(part.task, err, f"step {self.step_id}"))
        elif self.error is None:
            try:
                for i, t in zip(part.rets, tensors, strict=True):
                    self.rets[i] = t
                if self.stats is not None:
                    self.stats["bytes_moved"] = (self.stats.get("bytes_moved", 0)
                                                 + int(header.get("bytes", 0)))
                if self.trace is not None:
                    self.trace.extend(tuple(e) for e in header.get("trace") or ())
            except (TypeError, ValueError, AttributeError) as e:
                self._fail(InternalError(
                    f"step {self.step_id}: {part.task.name} answered run_graph with "
                    f"{len(tensors)} tensors for {len(part.rets)} fetches, or a malformed "
                    f"header ({type(e).__name__}: {e})"))
        if not self.calls and not self.starting:
            self._finish()

    def expire(self) -> None:
        """The deadline passed: fail with DeadlineExceededError naming who had not answered."""
        if self.over:
            return
        waiting = sorted({p.task.name for p, _ in self.calls.values()})
        self.fail(DeadlineExceededError(
            f"step {self.step_id} ran past its deadline ({self.timeout:g}s: RunOptions."
            "timeout_in_ms, else ConfigProto.operation_timeout_in_ms, else the default step_"
            f"timeout); no reply yet from {', '.join(waiting) or 'no task'}"))

    def fail(self, error: BaseException) -> None:
        """End the step now with `error` (the caller gave up, or a bug)."""
        if self.error is None and not self.over:
            self._fail(error)
        if not self.calls and not self.starting:
            self._finish()

    def _fail(self, error: BaseException) -> None:
        self.error = error
        others = list(self.calls.values())
        self.calls.clear()
        for part, rid in others:
            part.task.client.cancel_call(rid)
        if others and isinstance(error, OpError):
            self.rt.abort_on([p for p, _ in others], self.step_id, error)

    def finish_early(self, error: BaseException) -> None:
        self.error = error
        self._finish()

    def _finish(self) -> None:
        if not self.over:
            self.over = True
            self.rt._flights.discard(self)
            self.on_done()

    def result(self) -> list[Any]:
        error = self.error
        if error is not None:
            if isinstance(error, trio.Cancelled):
                raise UnavailableError("the session was closed while the step ran")
            raise error
        return self.rets




def from_task(task: Task, e: OpError, what: str) -> OpError:
    """An error from a task, with the task named when the error does not say where it was."""
    if isinstance(e, UnavailableError | DeadlineExceededError) and e.device is None:
        err = type(e)(f"{what}: task {task.name} ({task.address}): {e.message}",
                      node=e.node, device=e.device)
        err.__cause__ = e
        return err
    return e
