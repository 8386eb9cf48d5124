"""The master's client to a task served by its own trio loop: handler calls, no socket.

A sync master aimed at a task this very process serves (``af.Server``) runs in that service's
trio loop (`scheduler.distributed`) and reaches that task through `InProcessClient`, which has
the methods of `transport.rpc.RpcClient` the master uses (`start_call`, `cancel_call`, `call`)
but calls the service's handlers directly, passing tensors by reference, as TF's in-process
master does. A handler's `Pending` (a step still running) is settled by the service's step
callbacks; `cancel_call` cancels it. Deadlines are the master's to keep (`step_flight`).

State (the service's trio thread): ``_pending`` (call id -> the handler's `Pending`, until it
settles or is cancelled).

    client = InProcessClient(service)
    rid = client.start_call("run_graph", header, feeds, then)   # then(header, tensors, error)
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import trio

from devices.errors import CancelledError, DeadlineExceededError, InternalError, UnavailableError
from transport.rpc_core import Pending


class InProcessClient:
    """An `RpcClient` stand-in for the task served by the master's own trio loop: calls its
    handlers directly, passing tensors by reference (as the local runtime does)."""

    alive = True

    def __init__(self, service: Any):
        self._service = service
        self._pending: dict[int, Pending] = {}
        self._next = 1
        self._handlers = service.handlers()
        self._async = {m for m, h in self._handlers.items() if inspect.iscoroutinefunction(h)}

    async def wait_ready(self) -> None:
        await trio.lowlevel.checkpoint()

    def start_call(self, method: str, header: Any, tensors: Any, then: Any, *,
                   timeout: float | None = None) -> int:
        """`RpcClient.start_call` for the in-process task: runs a plain handler right here.
        `timeout` is the master's to enforce (the task's handler has no deadline here)."""
        return self.start_run(header, tensors, then, frozenset(), method)[0]

    def start_run(self, header: Any, tensors: Any, then: Any, hold: frozenset,
                  method: str = "run_graph") -> tuple[int, dict]:
        """`start_call` of ``run_graph`` that also returns the tensors its partitions sent to
        the tasks in `hold` while running inline (`WorkerService.run_graph_holding`)."""
        held: dict = {}
        try:
            if self._service._token is None:
                raise UnavailableError("the in-process worker service has stopped")
            if method in self._async:
                raise InternalError(f"{method} is async; use call()")
            feeds = list(tensors) if tensors else []
            if method == "run_graph":
                result, held = self._service.run_graph_holding(header, feeds, hold)
            else:
                result = self._handlers[method](header, feeds)
        except Exception as e:  # noqa: BLE001 - the handler's error is the call's outcome
            then(None, [], e)
            return 0, held
        if type(result) is not Pending:
            then(result[0], result[1], None)
            return 0, held
        rid = self._next
        self._next += 1
        self._pending[rid] = result

        def settled(h: Any, t: list, error: BaseException | None) -> None:
            if self._pending.pop(rid, None) is not None:
                then(h, t, error)

        result.then(settled)
        return rid, held

    def cancel_call(self, rid: int) -> None:
        pending = self._pending.pop(rid, None)
        if pending is not None:
            pending.cancel(CancelledError("the master cancelled the call"))

    async def call(self, method: str, header: Any = None, tensors: Any = None, *,
                   timeout: float | None = None) -> tuple[Any, list]:
        if self._service._token is None:
            raise UnavailableError("the in-process worker service has stopped")
        handler = self._handlers[method]
        tensors = list(tensors) if tensors is not None else []
        if method not in self._async:
            result = handler(header, tensors)
            if type(result) is not Pending:
                return result
            return await wait_pending(result, method, timeout)
        if timeout is None:
            return await handler(header, tensors)
        with trio.move_on_after(timeout):
            return await handler(header, tensors)
        raise DeadlineExceededError(f"{method} on the in-process task ran past its deadline "
                                    f"({timeout:.3g}s)")


async def wait_pending(pending: Pending, method: str, timeout: float | None
                        ) -> tuple[Any, list]:
    """The outcome of a handler's `Pending`, waiting at most `timeout` seconds."""
    if pending.outcome is None:
        ev = trio.Event()
        pending.then(lambda *_: ev.set())
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await ev.wait()
        except BaseException:
            pending.cancel(CancelledError(f"{method} on the in-process task was cancelled"))
            raise
        if pending.outcome is None:
            pending.cancel(DeadlineExceededError(f"{method} on the in-process task ran past its "
                                                 f"deadline ({timeout:.3g}s)"))
    header, tensors, error = pending.outcome
    if error is not None:
        raise error
    return header, tensors
