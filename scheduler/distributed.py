"""The distributed master, in the client: runs steps over every task of a cluster.

Design
------
`DistributedRuntime` has the interface the Session uses on `scheduler.runtime.LocalRuntime`
(`start_in_thread` / `serve`, `compile`, `run` / `arun`, `close`, `devices`, `config`), so a
Session aimed at ``af://host:port`` works unchanged. Its trio loop holds one `RpcClient` per
task of the cluster:

1. **Connect.** The target task's ``status`` names the cluster and the target itself; then every
   task's ``status`` lists its devices. The device list puts the target task first, and the
   target's CPU:0 is the *client device*: feeds (`_Arg`) and fetches (`_Retval`) live there.
2. **Compile** (sync, no network; `scheduler.distributed_plan`): prune -> rewrite -> place
   over all devices -> partition with Send/Recv -> group the partitions by task. The step
   signature's partitions are registered with their tasks on its first run
   (``register_graph``; cached by task, device and the bytes' digest, so identical partitions
   are registered once).
3. **Run.** Each step gets a fresh random 63-bit id and one ``run_graph`` per participating task,
   concurrently: feeds go with the task hosting the `_Arg`s and fetches come back from it.
   A sync caller sends the requests to same-host tasks from its own thread before it wakes
   the loop (`_Flight.send_ahead`), so they travel while the loop wakes.
   Tasks exchange tensors directly (a Send pushes into the receiver's rendezvous). The first
   error wins: every other task of the step is sent ``abort`` and its call is cancelled, and the
   error is raised with its class, node and device. A dead or hung task fails its call with
   UnavailableError once heartbeats go unanswered for ``rpc.heartbeat_timeout``; a step given a
   deadline (``step_timeout``) fails with DeadlineExceededError. A step never hangs on a peer.

**In-process.** A sync master aimed at a task this very process serves (``af.Server``) runs
in that service's trio loop instead of a thread of its own, and calls its handlers directly
(`_LocalClient`): no socket and no thread hop for its own task, as TF's in-process master.

State (owned by the runtime's trio loop; `compile` runs on the caller's thread and reads only
the immutable device list): ``_tasks`` (task -> `Task`, with its client), ``_handles`` ((task,
device, digest) -> handle), per `DistributedStep` its handles once registered.

    rt = DistributedRuntime("af://127.0.0.1:2222", RuntimeConfig())
    rt.start_in_thread()
    step = rt.compile(graph_def, feeds=["x:0"], fetches=["y:0"], targets=[])
    rets = rt.run(step, [x_value])
    rt.close()
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import hashlib
import inspect
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio
import zmq

from devices.device import DeviceStatistics
from devices.device_spec import DeviceSpec
from devices.errors import (
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    OpError,
    UnavailableError,
)
from devices.pool import PoolStatistics
from scheduler.config import RuntimeConfig
from scheduler.distributed_plan import (
    DistributedStep,
    RemoteDevice,
    Task,
    TaskPart,
    plan_step,
)
from scheduler.graphdef import GraphDef
from scheduler.remote_rendezvous import TaskKey, endpoint_of, task_name
from scheduler.runtime import start_loop_thread
from scheduler.worker_service import error_header, in_process_service
from transport import local_ipc
from transport.rpc import RpcClient, RpcConfig
from transport.rpc_core import DeadlineTimer, Pending


@dataclass(frozen=True)
class MasterOptions:
    """How the master talks to the cluster."""

    rpc: RpcConfig = field(default_factory=RpcConfig)  # heartbeats: dead-task detection
    step_timeout: float | None = None  # seconds per step (None: no deadline, heartbeats only)
    connect_timeout: float = 30.0  # how long to wait for every task to answer at start
    # A sync master aimed at a task served by this very process runs in that task's trio loop
    # and calls it directly (no socket, no thread hop), as TF's in-process master does.
    in_process: bool = True
    # Only the tasks matching one of these ("/job:ps", "/job:worker/task:1") are contacted and
    # placed on (TF's ConfigProto.device_filters); the target task always is. Empty: all.
    device_filters: tuple[str, ...] = ()
    # Nodes that request no device run on the target task (TF's default device) rather than
    # wherever the placer's simulation finds an idle device in the cluster.
    default_to_target_task: bool = True


class DistributedRuntime:
    """The master of steps over a cluster, with `LocalRuntime`'s interface."""

    def __init__(self, target: str, config: RuntimeConfig | None = None,
                 options: MasterOptions | None = None):
        self.target = target
        self.endpoint = _endpoint_of_target(target)
        self.config = config or RuntimeConfig()
        self.options = options or MasterOptions()
        self.devices: list[RemoteDevice] = []
        self.closed = False
        self.me: TaskKey | None = None
        self._tasks: dict[TaskKey, Task] = {}
        self._device_task: dict[str, Task] = {}
        self._handles: dict[tuple[TaskKey, str, bytes], int] = {}
        self._rng = random.Random(os.urandom(16))
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._host: Any = None  # the in-process WorkerService whose loop hosts this master
        self._local: Any = None  # the _LocalClient to it
        self._hosted_stop: threading.Event | None = None
        self._flights: set[_Flight] = set()  # steps in flight (their callbacks drive them)
        self._deadlines = DeadlineTimer(self._expire)  # step_timeout of the flights

    # -- hosting -------------------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect to the cluster and serve steps from this trio loop until cancelled."""
        zctx = zmq.Context()
        try:
            async with trio.open_nursery() as nursery:
                self._cancel = nursery.cancel_scope
                self._nursery = nursery
                # the clients close before the nursery (trio nurseries nest strictly)
                async with contextlib.AsyncExitStack() as stack:
                    await self._connect(stack, zctx)
                    self._token = trio.lowlevel.current_trio_token()
                    nursery.start_soon(self._deadlines.run)
                    task_status.started(self)
                    try:
                        await trio.sleep_forever()
                    finally:
                        self._fail_flights()
        finally:
            self.closed = True
            self._fail_flights()
            zctx.destroy(linger=0)

    def _fail_flights(self) -> None:
        for flight in list(self._flights):
            flight.fail(UnavailableError("the session was closed while the step ran"))

    def _expire(self, key: tuple[int, _Flight], deadline: float) -> None:
        flight = key[1]
        if not flight.over:
            flight.fail(DeadlineExceededError(
                f"step {flight.step_id} ran past its deadline (step_timeout="
                f"{self.options.step_timeout}s)"))

    def start_in_thread(self) -> None:
        """Run the master's trio loop on a daemon thread of its own (for sync callers), or in
        the loop of the in-process service it is aimed at."""
        host = in_process_service(self.endpoint) if self.options.in_process else None
        if host is not None:
            self._start_in_host(host)
            return
        self._thread = start_loop_thread(self.serve, "actorflow-master", self._set_error)
        if self._thread_error is not None:
            raise self._thread_error

    def _set_error(self, error: BaseException) -> None:
        self._thread_error = _unwrap(error)

    def _start_in_host(self, host: Any) -> None:
        started, stopped = threading.Event(), threading.Event()
        self._host, self._hosted_stop = host, stopped

        async def hosted() -> None:
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.serve)
                    started.set()
            except BaseException as e:  # noqa: BLE001 - reported to the caller
                if not isinstance(e, trio.Cancelled):
                    self._thread_error = _unwrap(e)
                if isinstance(e, trio.Cancelled | KeyboardInterrupt | SystemExit):
                    raise
            finally:
                started.set()
                stopped.set()

        host.spawn_threadsafe(hosted)
        started.wait()
        if self._thread_error is not None:
            raise self._thread_error

    def close(self) -> None:
        if self.closed and self._thread is None and self._hosted_stop is None:
            return
        self.closed = True
        if self._token is not None and self._cancel is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._cancel.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
            self._thread = None
        if self._hosted_stop is not None:
            if self._host is None or self._host._token is not None:
                self._hosted_stop.wait(timeout=10)
            self._hosted_stop = None

    @property
    def in_own_thread(self) -> bool:
        return self._thread is not None

    async def _connect(self, stack: contextlib.AsyncExitStack, zctx: zmq.Context) -> None:
        opts = self.options
        if self._host is not None:
            self._local = _LocalClient(self._host)
            target: Any = self._local
        else:
            target = await self._open_client(stack, zctx, self.endpoint, self.target)
        header = await _ask_status(target, opts.connect_timeout)
        if header is None:
            raise UnavailableError(
                f"{self.target} did not answer within connect_timeout={opts.connect_timeout}s;"
                " is a worker running there ('actorflow worker ...' prints 'READY af://...')?")
        cluster = _parse_cluster(header)
        self.me = (header["job"], header["task"])
        filters = [DeviceSpec.parse(f) for f in opts.device_filters]
        for job in sorted(cluster, key=lambda j: (j != self.me[0], j)):
            for i, address in sorted(cluster[job].items()):
                task = DeviceSpec(job=job, replica=0, task=i)
                if (job, i) == self.me or not filters or any(
                        f.task_spec().is_compatible_with(task) for f in filters):
                    self._tasks[(job, i)] = Task((job, i), address)
        me = self._tasks[self.me]
        me.client = target
        _set_devices(me, header)
        others = [t for t in self._tasks.values() if t is not me]
        for t in others:
            t.client = await self._open_client(stack, zctx, endpoint_of(t.address), t.name,
                                               t.key)
        missing: list[str] = []
        async with trio.open_nursery() as nursery:
            for t in others:
                nursery.start_soon(self._status_of, t, missing)
        if missing:
            raise UnavailableError(
                f"tasks of the cluster of {self.target} did not answer within connect_timeout="
                f"{opts.connect_timeout}s: " + "; ".join(missing)
                + ". Start them (actorflow worker --cluster ... --job J --task N) or check "
                "their addresses")
        devs = me.devices + [d for t in others for d in t.devices]
        self.devices = devs
        self._device_task = {d.name: self._tasks[d.task] for d in devs}
        cpus = [d for d in me.devices if d.device_type == "CPU"]
        self._client_device = (cpus or me.devices)[0].name

    async def _open_client(self, stack: contextlib.AsyncExitStack, zctx: zmq.Context,
                           endpoint: str, name: str, task: TaskKey | None = None
                           ) -> RpcClient:
        endpoint = await local_ipc.prefer_ipc(  # a task on this host: a Unix-domain socket
            endpoint, local_ipc.probe_timeout(self.options.rpc.heartbeat_timeout), task=task)
        return await stack.enter_async_context(
            RpcClient(endpoint, config=self.options.rpc, ctx=zctx, name=f"master -> {name}"))

    async def _status_of(self, t: Task, missing: list[str]) -> None:
        try:
            header = await _ask_status(t.client, self.options.connect_timeout)
            if header is None:
                missing.append(f"{t.name} at {t.address}: no answer")
                return
            if (header.get("job"), header.get("task")) != t.key:
                raise InvalidArgumentError(
                    f"{t.address} answered as {task_name((header.get('job'), header.get('task')))}"
                    f", not {t.name}: the cluster spec does not match the running tasks")
            _set_devices(t, header)
        except OpError as e:
            missing.append(f"{t.name} at {t.address}: {e}")

    # -- compiling -----------------------------------------------------------------------------
    def compile(self, graph: GraphDef, *, feeds: Sequence[str], fetches: Sequence[str],
                targets: Sequence[str], by_name: dict | None = None, log: Any = None,
                cost_model: Any = None) -> DistributedStep:
        """Prune, rewrite, place over every task's devices and partition one step signature.
        Registration with the tasks happens on the step's first run."""
        self._check_open()
        if not self.devices:
            raise FailedPreconditionError("the master is not connected; start it first")
        return plan_step(graph, feeds=feeds, fetches=fetches, targets=targets,
                         devices=self.devices, client_device=self._client_device,
                         task_of=self._device_task, me=self.me, config=self.config,
                         by_name=by_name, log=log, cost_model=cost_model,
                         default_task=task_name(self.me)
                         if self.options.default_to_target_task else None)

    async def _register(self, step: DistributedStep) -> None:
        if step._registering is not None:
            await step._registering.wait()
            if step._register_error is not None:
                raise step._register_error
            return
        step._registering = trio.Event()
        try:
            errors: list[OpError] = []
            async with trio.open_nursery() as nursery:
                for part in step.tasks:
                    nursery.start_soon(self._register_part, part, errors)
            if errors:
                step._register_error = errors[0]
                raise errors[0]
            step.registered = True
        finally:
            step._registering.set()

    async def _register_part(self, part: TaskPart, errors: list[OpError]) -> None:
        t = part.task
        handles = []
        try:
            for dev_name, raw in part.graphs:
                key = (t.key, dev_name, hashlib.sha256(raw).digest())
                handle = self._handles.get(key)
                if handle is None:
                    header, _ = await t.client.call(
                        "register_graph", {"device": dev_name},
                        [np.frombuffer(raw, np.uint8)],
                        timeout=self.options.connect_timeout)
                    handle = self._handles[key] = int(header["handle"])
                handles.append(handle)
        except OpError as e:
            errors.append(_from_task(t, e, "registering a partition"))
            return
        part.handles = handles
        part.header["graphs"] = handles

    # -- running -------------------------------------------------------------------------------
    def run(self, step: DistributedStep, args: list[Any], trace: list | None = None,
            stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a thread other than the master's; blocks until it is done
        (at most `timeout` seconds: then DeadlineExceeded, the step aborted on every task)."""
        self._check_open()
        if self._thread is None and self._host is None:
            raise FailedPreconditionError(
                "this session runs in a trio program: use 'await session.run(...)' inside "
                "'async with af.Session(target) as session'")
        lock = _thread.allocate_lock()
        lock.acquire()
        flight = _Flight(self, step, args, trace, stats, lock.release)
        try:
            if step.registered:
                flight.send_ahead()
        finally:  # interrupted or not, the loop sees to what left: runs the step, or aborts it
            try:
                self._token.run_sync_soon(self._launch, flight)
            except trio.RunFinishedError:
                raise UnavailableError("the session's connection to the cluster has shut "
                                       "down") from None
        if timeout is None:
            lock.acquire()
        elif not lock.acquire(timeout=timeout):
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(flight.fail, _deadline_error(flight, timeout))
            lock.acquire()  # `fail` ends the flight at once
        return flight.result()

    async def arun(self, step: DistributedStep, args: list[Any], trace: list | None = None,
                   stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a task of the master's trio loop."""
        self._check_open()
        if not step.registered:
            await self._register(step)
        done = trio.Event()
        flight = _Flight(self, step, args, trace, stats, done.set)
        flight.start()
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await done.wait()
            if not done.is_set():
                flight.fail(_deadline_error(flight, timeout))
        except BaseException:
            flight.fail(CancelledError("the step was cancelled by its caller"))
            raise
        return flight.result()

    def _launch(self, flight: _Flight) -> None:
        """Start a sync caller's step (in the master's loop): at once when its partitions are
        registered, else after a task registers them."""
        if flight.step.registered:
            flight.start()
        else:
            self._nursery.start_soon(self._register_then_start, flight)

    async def _register_then_start(self, flight: _Flight) -> None:
        try:
            await self._register(flight.step)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            flight.finish_early(_unwrap(e))
            if not isinstance(e, Exception):
                raise
            return
        flight.start()

    def stop(self) -> None:
        """Stop `serve` (call from its own trio loop)."""
        self.closed = True
        if self._cancel is not None:
            self._cancel.cancel()

    def abort_on(self, parts: Sequence[TaskPart], step_id: int, error: OpError) -> None:
        """Tell the tasks of `parts` to abort step `step_id` (from tasks: off the hot path)."""
        header = error_header(step_id, error)
        for p in parts:
            self._nursery.start_soon(self._send_abort, p.task, header)

    async def _send_abort(self, task: Task, header: dict) -> None:
        with contextlib.suppress(OpError):
            await task.client.call("abort", header, timeout=self.options.rpc.heartbeat_timeout)

    def statistics(self) -> list[DeviceStatistics]:
        """Every device's statistics, asked of its task now (from a thread other than the
        master's; a trio program uses `astatistics`)."""
        self._check_open()
        if self._thread is None and self._host is None:
            raise FailedPreconditionError(
                "this session runs in a trio program: use 'await session.astatistics()'")
        lock = _thread.allocate_lock()
        lock.acquire()
        box: list[Any] = []

        async def ask() -> None:
            try:
                box.append(await self.astatistics())
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                box.append(_unwrap(e))
                if not isinstance(e, Exception):
                    raise
            finally:
                lock.release()

        try:
            self._token.run_sync_soon(self._nursery.start_soon, ask)
        except trio.RunFinishedError:
            raise UnavailableError("the session's connection to the cluster has shut "
                                   "down") from None
        lock.acquire()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    async def astatistics(self) -> list[DeviceStatistics]:
        """Every device's statistics, in the order of `devices`, from its task's ``status``."""
        self._check_open()
        by_task: dict[TaskKey, Any] = {}

        async def ask(t: Task) -> None:
            header, _ = await t.client.call("status", None,
                                            timeout=self.options.rpc.heartbeat_timeout)
            by_task[t.key] = {d["name"]: d for d in header.get("device_stats") or ()}

        async with trio.open_nursery() as nursery:
            for t in self._tasks.values():
                nursery.start_soon(ask, t)
        out = []
        for d in self.devices:
            raw = by_task.get(d.task, {}).get(d.name)
            if raw is None:
                raise InternalError(f"{task_name(d.task)} reported no statistics for {d.name}")
            out.append(DeviceStatistics(**{**raw, "pool": PoolStatistics(**raw["pool"])}))
        return out

    def _check_open(self) -> None:
        if self.closed:
            raise FailedPreconditionError(
                "attempted to use a closed session; create a new af.Session(target)")
        if self._thread_error is not None:
            raise UnavailableError(f"the master's thread failed: {self._thread_error!r}")


class _Flight:
    """One step in flight over its tasks, driven by callbacks: no task per step or per part.

    `start` sends one ``run_graph`` per task (remote ones first: the in-process part would
    only wait for the tensors their requests make the others send) and each call's ``then``
    is `_part_done`, called from a socket's reader, a deadline or the in-process service. The
    first error wins: the other calls are cancelled (their servers told to stop), the other
    tasks are sent ``abort``, and the step ends at once with that error.

    A sync caller first sends what it can from its own thread (`send_ahead`): its thread is
    running anyway, while the loop it is about to wake takes ~60 us to get there.

    State (the master's trio thread): ``calls`` (part -> (client, call id)) for calls in
    flight, ``error`` (the first error), ``rets`` (fetches as they arrive), ``on_done`` (called
    once, when no call is left in flight). ``ahead`` (the calls sent ahead) is written by the
    caller's thread before it wakes the loop and only read after; ``early`` (their outcomes
    before `start`) belongs to the loop.
    """

    __slots__ = ("rt", "step", "args", "trace", "stats", "on_done", "rets", "error", "calls",
                 "step_id", "over", "starting", "deadline", "ahead", "early", "sent_at")

    def __init__(self, rt: DistributedRuntime, step: DistributedStep, args: list[Any],
                 trace: list | None, stats: dict | None, on_done: Any):
        self.rt = rt
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
        timeout = rt.options.step_timeout
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
        elif rt.options.step_timeout is not None:
            self.deadline = trio.current_time() + rt.options.step_timeout
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
        timeout = self.rt.options.step_timeout
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
                self._fail(_from_task(part.task, err, f"step {self.step_id}"))
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


class _LocalClient:
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
            return await _wait_pending(result, method, timeout)
        if timeout is None:
            return await handler(header, tensors)
        with trio.move_on_after(timeout):
            return await handler(header, tensors)
        raise DeadlineExceededError(f"{method} on the in-process task ran past its deadline "
                                    f"({timeout:.3g}s)")


async def _wait_pending(pending: Pending, method: str, timeout: float | None
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


async def _ask_status(client: Any, timeout: float) -> Any:
    """The task's ``status`` header, or None if it did not answer within `timeout` seconds.
    A request waits in the socket until the connection is up; one that fails because the
    client declared the task dead is retried once the task answers a heartbeat."""
    with trio.move_on_after(timeout):
        while True:
            try:
                header, _ = await client.call("status", None, timeout=None)
                return header
            except UnavailableError:
                await client.wait_ready()
    return None


def _deadline_error(flight: _Flight, timeout: float | None) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"step {flight.step_id} ran past its deadline (RunOptions.timeout_in_ms="
        f"{(timeout or 0) * 1e3:.0f}); it was aborted on every task")


def _endpoint_of_target(target: str) -> str:
    scheme, sep, rest = target.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "af" or not sep or not host or not port.isdigit():
        raise InvalidArgumentError(
            f"target {target!r} is not 'af://HOST:PORT' (the address of any task of a running "
            "cluster, e.g. the line 'READY af://127.0.0.1:2222' a worker daemon prints)")
    return f"tcp://{rest}"


def _parse_cluster(header: Any) -> dict[str, dict[int, str]]:
    try:
        return {str(job): {int(i): str(a) for i, a in tasks}
                for job, tasks in header["cluster"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidArgumentError(f"malformed status reply: {str(header)[:200]}") from None


def _set_devices(t: Task, header: Any) -> None:
    t.devices = [RemoteDevice(DeviceSpec.parse(str(name)).to_string(), str(kind), t.key)
                 for name, kind in header["devices"]]


def _from_task(task: Task, e: OpError, what: str) -> OpError:
    """An error from a task, with the task named when the error does not say where it was."""
    if isinstance(e, UnavailableError | DeadlineExceededError) and e.device is None:
        err = type(e)(f"{what}: task {task.name} ({task.address}): {e.message}",
                      node=e.node, device=e.device)
        err.__cause__ = e
        return err
    return e


def _unwrap(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e
