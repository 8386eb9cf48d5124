"""The local runtime: hosts a process's device actors and runs compiled steps on them.

Design
------
The device actors live in one trio loop. A sync user gets that loop on a thread of its own
(`start_in_thread`); a trio user hosts it in their own nursery (`serve`), so the async API
needs no thread hop. Either way a step is the same (`_start`): make a `StepContext` (feeds,
result slots, the step's rendezvous, its deadline and trace) and hand one `StepRun` per
partition to its device's one door, `Device.run_or_post`: a one-partition step whose device
is idle runs its first slice inline on the caller, whatever thread that is (a step of several
partitions does so only on the devices' own thread, since its partitions share a
rendezvous), and what is left goes to the device's mailbox. The sync `run`'s one-partition
step, finding the device held by another thread, waits for it (`BATON_WAIT_S` at most) rather
than posting: see `devices.device`'s door. The async `arun` then awaits the
step's done-callback; the sync `run` is a thin wrapper that blocks on a lock the
done-callback releases (made only when the step did not finish inline). Both get
back-pressure from a full mailbox before the step starts (`Device.wait_for_room` /
`wait_for_room_blocking`, the latter bounded by the deadline).
A step whose deadline (``timeout``, RunOptions.timeout_in_ms) passes
is aborted on every device (each partition stops at its next slice) and fails with
DeadlineExceededError; the devices and the session stay usable.

    rt = LocalRuntime(RuntimeConfig())
    rt.start_in_thread()
    step = rt.compile(graph_def, feeds=["x:0"], fetches=["y:0"], targets=[])
    rets = rt.run(step, [feed_value], timeout=1.0)
    rt.close()
"""

from __future__ import annotations

import _thread
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from devices.device import BATON_WAIT_S, CpuDevice, Device, DeviceStatistics
from devices.errors import (
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    OpError,
    UnavailableError,
)
from scheduler import step_compiler
from scheduler.config import RuntimeConfig
from scheduler.executor import StepContext, StepRun
from scheduler.rendezvous import Rendezvous
from scheduler.step_compiler import CompiledStep
from scheduler.step_trace import StepTrace

_step_ids = itertools.count(1)


class LocalRuntime:
    """The device actors of one process and the machinery to run steps on them."""

    def __init__(self, config: RuntimeConfig | None = None, devices: list[Device] | None = None):
        self.config = config or RuntimeConfig()
        if devices is None:
            devices = discover_devices(self.config)
        self.devices: list[Device] = devices
        self._token: trio.lowlevel.TrioToken | None = None
        self._loop_thread: int | None = None  # the ident of the devices' trio thread
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
            self._loop_thread = threading.get_ident()
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

    def stop(self) -> None:
        """Stop `serve` (call from its own trio loop)."""
        self.closed = True
        if self._cancel is not None:
            self._cancel.cancel()

    @property
    def in_own_thread(self) -> bool:
        return self._thread is not None

    def statistics(self) -> list[DeviceStatistics]:
        return [d.statistics() for d in self.devices]

    async def astatistics(self) -> list[DeviceStatistics]:
        return self.statistics()

    # -- steps -----------------------------------------------------------------------------
    def compile(self, graph: Any, *, feeds: Sequence[str], fetches: Sequence[str],
                targets: Sequence[str], by_name: dict | None = None, log: Any = None,
                cost_model: Any = None) -> CompiledStep:
        """Compile one step signature for this runtime's devices (`scheduler.step_compiler`)."""
        return step_compiler.compile_step(graph, feeds=feeds, fetches=fetches,
                                          targets=targets, devices=self.devices,
                                          config=self.config, by_name=by_name, log=log,
                                          cost_model=cost_model)

    def _start(self, step: CompiledStep, args: list[Any], done: Callable[[OpError | None], None],
               timeout: float | None, trace: StepTrace | None, wait_s: float = 0.0
               ) -> StepContext:
        """Start a step from any thread: each partition through its device's door (`wait_s`:
        a sync caller's one-partition step may wait that long for a busy device's baton)."""
        parts = step.parts
        if len(parts) == 1:  # (the common step: its fixed cost)
            dev, exe = parts[0]
            ctx = StepContext(next(_step_ids), args, step.n_rets, 1, done, None, trace, timeout)
            dev.run_or_post(StepRun(exe, ctx), True, wait_s)
            return ctx
        step_id = next(_step_ids)
        rdv = Rendezvous(step_id) if len(parts) > 1 else None
        ctx = StepContext(step_id, args, step.n_rets, len(parts), done, rdv, trace, timeout)
        inline = len(parts) == 1 or threading.get_ident() == self._loop_thread
        for dev, exe in parts:
            dev.run_or_post(StepRun(exe, ctx), inline)
        return ctx

    def run(self, step: CompiledStep, args: list[Any], trace: StepTrace | None = None,
            stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a thread other than the runtime's; blocks until it is done."""
        if self.closed or self._thread_error is not None:
            self._check_open()
        if self._thread is None:
            raise FailedPreconditionError(
                "this session runs in a trio program: use 'await session.run(...)' inside "
                "'async with af.Session() as session'")
        if not step.parts:
            return [None] * step.n_rets
        for dev, _ in step.parts:  # back-pressure: a full mailbox blocks this thread
            if not dev.has_room() and not dev.wait_for_room_blocking(timeout):
                raise DeadlineExceededError(
                    f"the step could not start within its deadline ({timeout * 1e3:.0f} ms): "
                    f"device {dev.name}'s mailbox stayed full; raise "
                    f"RunOptions.timeout_in_ms or run fewer steps at once")
        blocker = _Blocker()
        ctx = self._start(step, args, blocker, timeout, trace, BATON_WAIT_S)
        if not blocker.done and not blocker.block(None if timeout is None else ctx.deadline):
            error = _deadline_error(ctx, timeout)  # type: ignore[arg-type]
            try:  # every device stops the step at its next slice
                assert self._token is not None
                self._token.run_sync_soon(ctx.abort, error)
            except trio.RunFinishedError:
                raise UnavailableError("the session's devices have shut down") from None
            blocker.block(time.perf_counter() + timeout / 2)  # type: ignore[operator]
            raise error  # (its partitions wound down, or keep waiting)
        if stats is not None:
            stats["bytes_moved"] = ctx.bytes_moved
        if ctx.error is not None:
            raise ctx.error
        return ctx.rets

    async def arun(self, step: CompiledStep, args: list[Any], trace: StepTrace | None = None,
                   stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a task of the runtime's own trio loop: the async core."""
        if self.closed or self._thread_error is not None:
            self._check_open()
        if not step.parts:
            return [None] * step.n_rets
        for dev, _ in step.parts:
            if not dev.has_room():  # back-pressure: the mailbox is full
                await dev.wait_for_room()
        waiter = _Waiter()
        ctx = self._start(step, args, waiter, timeout, trace)
        if not waiter.done:
            if timeout is None:
                await waiter.wait(ctx)
            else:
                with trio.move_on_after(timeout):
                    await waiter.wait(ctx)
                if not waiter.done:
                    error = _deadline_error(ctx, timeout)
                    ctx.abort(error)  # every device stops the step at its next slice
                    raise error
        if stats is not None:
            stats["bytes_moved"] = ctx.bytes_moved
        if ctx.error is not None:
            raise ctx.error
        return ctx.rets

    def _check_open(self) -> None:
        if self.closed:
            raise FailedPreconditionError(
                "attempted to use a closed session; create a new af.Session()")
        if self._thread_error is not None:
            raise UnavailableError(f"the device thread failed: {self._thread_error!r}")


def _deadline_error(ctx: StepContext, timeout: float) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"step {ctx.step_id} ran past its deadline (RunOptions.timeout_in_ms="
        f"{timeout * 1e3:.0f}); it was cancelled on every device")


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


class _Blocker:
    """The done-callback of a sync step. Most steps finish inline, in `_start`, on the caller's
    thread: only a step that goes on elsewhere makes a lock to block on (`block`)."""

    __slots__ = ("done", "lock")

    def __init__(self) -> None:
        self.done = False
        self.lock: Any = None

    def __call__(self, error: OpError | None) -> None:  # from any thread
        self.done = True
        lock = self.lock
        if lock is not None:
            lock.release()

    def block(self, deadline: float | None) -> bool:
        """Block until the step is done (True) or `deadline` (time.perf_counter) passed."""
        lock = self.lock
        if lock is None:
            lock = _thread.allocate_lock()
            lock.acquire()
            self.lock = lock
            # Published, then re-checked: a done-callback either saw the lock (and releases
            # it) or set `done` before this check (the GIL orders the two).
        if self.done:
            return True
        if deadline is None:
            return lock.acquire()
        return lock.acquire(timeout=max(0.0, deadline - time.perf_counter())) or self.done


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
