"""The local runtime: hosts a process's device actors and runs compiled steps on them.

Design
------
The device actors live in one trio loop. A sync user gets that loop on a thread of its own
(`start_in_thread`); a trio user hosts it in their own nursery (`serve`), so the async API
needs no thread hop. Either way a step is the same: make a `StepContext` (feeds, result slots,
the step's rendezvous), submit one `StepRun` per partition to its device's mailbox, and wait
for the last partition to report. A single-partition step whose device is idle runs inline on
the caller (holding the device's baton, see `devices.device`) until it would have to wait.
Otherwise the sync `run` is a thin wrapper: it posts the submission to the loop
(`run_sync_soon`) and blocks on a lock the step's done-callback releases.

    rt = LocalRuntime(RuntimeConfig())
    rt.start_in_thread()
    rets = rt.run(compiled_step, [feed_value])
    rt.close()
"""

from __future__ import annotations

import _thread
import itertools
import threading
from collections.abc import Callable
from typing import Any

import trio

from devices.device import CpuDevice, Device
from devices.errors import CancelledError, FailedPreconditionError, OpError, UnavailableError
from scheduler import master
from scheduler.config import RuntimeConfig
from scheduler.executor import StepContext, StepRun
from scheduler.master import CompiledStep
from scheduler.rendezvous import Rendezvous

_step_ids = itertools.count(1)


class LocalRuntime:
    """The device actors of one process and the machinery to run steps on them."""

    def __init__(self, config: RuntimeConfig | None = None, devices: list[Device] | None = None):
        self.config = config or RuntimeConfig()
        if devices is None:
            devices = discover_devices(self.config)
        self.devices: list[Device] = devices
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self.closed = False

    # -- hosting ---------------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run every device actor in the current trio loop until cancelled."""
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope
            for d in self.devices:
                await nursery.start(d.serve)
            self._token = trio.lowlevel.current_trio_token()
            task_status.started(self)
            await trio.sleep_forever()

    def start_in_thread(self) -> None:
        """Host the device actors on a daemon thread of their own (for sync callers)."""
        self._thread = start_loop_thread(self.serve, "actorflow-devices", self._set_error)
        if self._thread_error is not None:
            raise self._thread_error

    def _set_error(self, error: BaseException) -> None:
        self._thread_error = error

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._token is not None and self._cancel is not None:
            try:
                self._token.run_sync_soon(self._cancel.cancel)
            except trio.RunFinishedError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    @property
    def in_own_thread(self) -> bool:
        return self._thread is not None

    # -- steps -----------------------------------------------------------------------------
    def compile(self, graph: Any, *, feeds: list[str], fetches: list[str], targets: list[str],
                by_name: dict | None = None, log: Any = None,
                cost_model: Any = None) -> CompiledStep:
        """Compile one step signature for this runtime's devices (see `scheduler.master`)."""
        return master.compile_step(graph, feeds=feeds, fetches=fetches, targets=targets,
                                   devices=self.devices, config=self.config, by_name=by_name,
                                   log=log, cost_model=cost_model)

    def _start(self, step: CompiledStep, ctx: StepContext) -> None:
        for dev, exe in step.parts:
            StepRun(exe, ctx).submit_to(dev)

    def _new_ctx(self, step: CompiledStep, args: list[Any], done: Any,
                 trace: list | None) -> StepContext:
        step_id = next(_step_ids)
        rdv = Rendezvous(step_id) if len(step.parts) > 1 else None
        return StepContext(step_id, args, step.n_rets, len(step.parts), done, rdv, trace)

    def run(self, step: CompiledStep, args: list[Any], trace: list | None = None,
            stats: dict | None = None) -> list[Any]:
        """Run one step from a thread other than the runtime's; blocks until it is done."""
        self._check_open()
        if self._thread is None:
            raise FailedPreconditionError(
                "this session runs in a trio program: use 'await session.run(...)' inside "
                "'async with af.Session() as session'")
        if not step.parts:
            return [None] * step.n_rets
        lock = _thread.allocate_lock()
        lock.acquire()
        box: list[OpError | None] = []

        def done(error: OpError | None) -> None:
            box.append(error)
            lock.release()

        ctx = self._new_ctx(step, args, done, trace)
        assert self._token is not None
        tried, rest = self._try_inline(step, ctx)
        if rest is not None:
            rest.exe.device.submit_threadsafe(rest)
        elif not tried:
            try:
                self._token.run_sync_soon(self._start, step, ctx)
            except trio.RunFinishedError:
                raise UnavailableError("the session's devices have shut down") from None
        lock.acquire()
        if stats is not None:
            stats["bytes_moved"] = ctx.bytes_moved
        if box[0] is not None:
            raise box[0]
        return ctx.rets

    def launch(self, step: CompiledStep, args: list[Any], trace: list | None = None
               ) -> tuple[StepContext, _Waiter]:
        """Start a step from a task of the runtime's own trio loop; it finishes inline when it
        can (``waiter.done``), else ``await waiter.wait(ctx)``."""
        self._check_open()
        waiter = _Waiter()
        ctx = self._new_ctx(step, args, waiter, trace)
        if not step.parts:
            waiter.done = True
            return ctx, waiter
        tried, rest = self._try_inline(step, ctx)
        if rest is not None:
            rest.exe.device.submit(rest)
        elif not tried:
            self._start(step, ctx)
        return ctx, waiter

    @staticmethod
    def _try_inline(step: CompiledStep, ctx: StepContext) -> tuple[bool, StepRun | None]:
        """Run a one-partition step on the caller while its device is idle (holding the
        device's baton). Returns (tried, the StepRun to hand to the actor or None)."""
        if len(step.parts) != 1:
            return False, None
        dev, exe = step.parts[0]
        if not dev.baton.acquire(blocking=False):
            return False, None
        run = StepRun(exe, ctx)
        try:
            handoff = run.run_inline(dev)
        finally:
            dev.baton.release()
        return True, run if handoff else None

    async def arun(self, step: CompiledStep, args: list[Any],
                   trace: list | None = None, stats: dict | None = None) -> list[Any]:
        """Run one step from a task of the runtime's own trio loop."""
        ctx, waiter = self.launch(step, args, trace)
        if not waiter.done:
            await waiter.wait(ctx)
        if stats is not None:
            stats["bytes_moved"] = ctx.bytes_moved
        if ctx.error is not None:
            raise ctx.error
        return ctx.rets if step.parts else [None] * step.n_rets

    def _check_open(self) -> None:
        if self.closed:
            raise FailedPreconditionError(
                "attempted to use a closed session; create a new af.Session()")
        if self._thread_error is not None:
            raise UnavailableError(f"the device thread failed: {self._thread_error!r}")


def start_loop_thread(serve: Any, name: str,
                      on_error: Callable[[BaseException], None]) -> threading.Thread:
    """Run ``await nursery.start(serve)`` in a trio loop on a daemon thread named `name`;
    returns once `serve` has started (or failed). A failure of the loop, then or later, goes
    to `on_error`."""
    started = threading.Event()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve)
            started.set()

    def thread_main() -> None:
        try:
            trio.run(main)
        except BaseException as e:  # noqa: BLE001 - reported through on_error
            on_error(e)
        finally:
            started.set()

    thread = threading.Thread(target=thread_main, name=name, daemon=True)
    thread.start()
    started.wait()
    return thread


def discover_devices(config: RuntimeConfig) -> list[Device]:
    """The devices of this process: `device_count` CPUs (default 1) and GPUs (default: every
    GPU CuPy can see; none on a machine without one)."""
    prefix = f"/job:{config.job}/replica:0/task:{config.task}"
    out: list[Device] = []
    for i in range(max(1, config.device_count.get("CPU", 1))):
        name = f"{prefix}/device:CPU:{i}"
        out.append(CpuDevice(name, memory_limit=config.memory_limit_for(name, "CPU"),
                             worker_threads=config.worker_threads,
                             thread_threshold_us=config.thread_threshold_us,
                             intra_op_threads=config.intra_op_threads))
    wanted = config.device_count.get("GPU")
    if wanted is None or wanted > 0:
        from devices.gpu import GpuDevice, gpu_count
        n = gpu_count() if wanted is None else min(wanted, gpu_count())
        for i in range(n):
            name = f"{prefix}/device:GPU:{i}"
            out.append(GpuDevice(name, i, memory_limit=config.memory_limit_for(name, "GPU"),
                                 worker_threads=config.worker_threads,
                                 thread_threshold_us=config.thread_threshold_us))
    return out


class _Waiter:
    """The done-callback of an async step; makes its trio.Event only if someone must wait."""

    __slots__ = ("done", "event")

    def __init__(self) -> None:
        self.done = False
        self.event: trio.Event | None = None

    def __call__(self, error: OpError | None) -> None:
        self.done = True
        if self.event is not None:
            self.event.set()

    async def wait(self, ctx: StepContext) -> None:
        self.event = trio.Event()
        try:
            await self.event.wait()
        except trio.Cancelled:
            ctx.abort(CancelledError(f"step {ctx.step_id} was cancelled by its caller"))
            raise
