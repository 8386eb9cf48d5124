"""The distributed master, in the client: runs steps over every task of a cluster.

Design
------
`DistributedRuntime` has the interface the Session uses on `scheduler.runtime.LocalRuntime`
(`start_in_thread` / `serve`, `compile`, `run` / `arun`, `close`, `devices`, `config`), so a
Session aimed at ``af://host:port`` works unchanged. Its trio loop holds one `RpcClient` per
task of the cluster:

1. **Connect.** The target task's ``status`` names the cluster and the target itself; then every
   task's ``status`` lists its devices and its *incarnation* (a random 64-bit id of this life
   of the task, `scheduler.graph_registry`). The device list puts the target task first, and
   the target's CPU:0 is the *client device*: feeds (`_Arg`) and fetches (`_Retval`) live there.
   A task on this host that is not listening yet (being (re)started) is waited for, within
   the one `connect_timeout`, before its socket is chosen (`local_ipc.wait_listening`).
2. **Compile** (sync, no network; `scheduler.distributed_plan`): prune -> rewrite -> place
   over all devices -> partition with Send/Recv -> group the partitions by task. The step
   signature's partitions are registered with their tasks on its first run
   (``register_graph``, naming the task's incarnation; cached by task, device and the bytes'
   digest, with the incarnation they were registered in, so identical partitions are
   registered once per life of a task).
3. **Run** (`scheduler.step_flight`). Each step gets a fresh random 63-bit id and one
   ``run_graph`` per participating task, concurrently, each naming the incarnation its
   handles belong to, and the incarnation of each other task of the step (``peers``): feeds
   go with the task hosting the `_Arg`s and fetches come back from it. A sync caller sends
   the requests to same-host tasks from its own thread before it wakes the loop
   (`StepFlight.send_ahead`), so they travel while the loop wakes.
   Tasks exchange tensors directly (a Send pushes into the receiver's rendezvous, naming the
   life of the receiver from ``peers``: a receiver that restarted refuses the tensor, keeps
   nothing, and the sender's part of the step fails at once naming it). The first
   error wins: every other task of the step is sent ``abort`` and its call is cancelled, and the
   error is raised with its class, node and device.
4. **No step hangs.** Every step has a deadline: the run's ``timeout`` (RunOptions.
   timeout_in_ms), else ``MasterOptions.step_timeout`` (ConfigProto.operation_timeout_in_ms),
   else `DEFAULT_STEP_TIMEOUT`; the master fails the step with DeadlineExceededError then and
   the tasks' servers cancel their part (waking its Recvs) by the same deadline. A dead task
   fails its call with UnavailableError once heartbeats go unanswered for
   ``rpc.heartbeat_timeout``; a task that restarted under a step fails it with AbortedError
   naming the task (`scheduler.restart_watch`).
5. **Restarts.** A reply that says a task restarted (AbortedError: a request for another
   incarnation or an unknown handle), or that it is unavailable, makes the master ask that
   task's ``status`` again before its next step; the parts registered with an older life are
   registered again then, transparently. The variables the task held are gone: reading them
   fails as uninitialized, by name, until they are initialized or restored.

**In-process.** A sync master aimed at a task this very process serves (``af.Server``) runs
in that service's trio loop instead of a thread of its own, and calls its handlers directly
(`scheduler.in_process_client`): no socket and no thread hop for its own task, as TF's
in-process master.

State (owned by the runtime's trio loop; `compile` runs on the caller's thread and reads only
the immutable device list): ``_tasks`` (task -> `Task`, with its client and the incarnation
last seen, None while it must be asked again), ``_handles`` ((task, device, digest) ->
(incarnation, handle)), per `TaskPart` its handles and the incarnation they belong to,
``_flights`` (the steps in flight) and ``_deadlines`` (their deadlines).

    rt = DistributedRuntime("af://127.0.0.1:2222", RuntimeConfig())
    rt.start_in_thread()
    step = rt.compile(graph_def, feeds=["x:0"], fetches=["y:0"], targets=[])
    rets = rt.run(step, [x_value])
    rt.close()
"""

from __future__ import annotations

import _thread
import contextlib
import hashlib
import math
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio
import zmq

from devices.device import DeviceStatistics
from devices.device_spec import DeviceSpec
from devices.errors import (
    AbortedError,
    CancelledError,
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
from scheduler.in_process_client import InProcessClient
from scheduler.remote_rendezvous import TaskKey, endpoint_of, task_name
from scheduler.restart_watch import watch_restarts
from scheduler.runtime import start_loop_thread
from scheduler.step_flight import StepFlight, from_task
from scheduler.task_status import ask_status, endpoint_of_target, parse_cluster, set_devices
from scheduler.worker_service import error_header, in_process_service
from transport import local_ipc
from transport.rpc import RpcClient, RpcConfig
from transport.rpc_core import DeadlineTimer

# Seconds a step may run when nothing else is said (ConfigProto.operation_timeout_in_ms = 0,
# no RunOptions.timeout_in_ms): long enough for any real step, short enough that nothing waits
# for ever on a peer that is gone.
DEFAULT_STEP_TIMEOUT = 300.0


@dataclass(frozen=True)
class MasterOptions:
    """How the master talks to the cluster."""

    rpc: RpcConfig = field(default_factory=RpcConfig)  # heartbeats: dead-task detection
    # Seconds per step, counted from when its requests leave; every wait of the step (the
    # tasks' replies, their Recvs) ends by then with DeadlineExceededError. None or 0: the
    # default, DEFAULT_STEP_TIMEOUT. A run's RunOptions.timeout_in_ms overrides it.
    step_timeout: float | None = DEFAULT_STEP_TIMEOUT
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
    # Reach a task on this host over its Unix-domain socket when it listens there (faster
    # than TCP loopback); False keeps every task on TCP.
    same_host_ipc: bool = True

    def __post_init__(self) -> None:
        if not self.step_timeout:
            object.__setattr__(self, "step_timeout", DEFAULT_STEP_TIMEOUT)
        if not (isinstance(self.step_timeout, int | float) and 0 < self.step_timeout < math.inf):
            raise InvalidArgumentError(
                f"step_timeout={self.step_timeout!r}: a step's deadline must be a finite number "
                f"of seconds > 0 (0 or None selects the default, {DEFAULT_STEP_TIMEOUT:g}s)")


class DistributedRuntime:
    """The master of steps over a cluster, with `LocalRuntime`'s interface."""

    def __init__(self, target: str, config: RuntimeConfig | None = None,
                 options: MasterOptions | None = None):
        self.target = target
        self.endpoint = endpoint_of_target(target)
        self.config = config or RuntimeConfig()
        self.options = options or MasterOptions()
        self.devices: list[RemoteDevice] = []
        self.closed = False
        self.me: TaskKey | None = None
        self._tasks: dict[TaskKey, Task] = {}
        self._device_task: dict[str, Task] = {}
        # (task, device, digest of the partition's bytes) -> (task incarnation, handle)
        self._handles: dict[tuple[TaskKey, str, bytes], tuple[int, int]] = {}
        self._rng = random.Random(os.urandom(16))
        self.client_id = self._rng.getrandbits(63)  # tasks list this master's connections by it
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._host: Any = None  # the in-process WorkerService whose loop hosts this master
        self._local: Any = None  # the InProcessClient to it
        self._hosted_stop: threading.Event | None = None
        self._flights: set[StepFlight] = set()  # steps in flight (their callbacks drive them)
        self._deadlines = DeadlineTimer(self._expire)  # the flights' deadlines
        self._connect_deadline = math.inf  # set when `_connect` starts

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
                    nursery.start_soon(watch_restarts, self)
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

    def _expire(self, key: tuple[int, StepFlight], deadline: float) -> None:
        key[1].expire()

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
        # one connect_timeout for it all: waiting for a task to listen, then for its answer
        self._connect_deadline = trio.current_time() + opts.connect_timeout
        if self._host is not None:
            self._local = InProcessClient(self._host)
            target: Any = self._local
        else:
            target = await self._open_client(stack, zctx, self.endpoint, self.target)
        header = await ask_status(target, self._connect_left())
        if header is None:
            raise UnavailableError(
                f"{self.target} did not answer within connect_timeout={opts.connect_timeout}s;"
                " is a worker running there ('actorflow worker ...' prints 'READY af://...')?")
        cluster = parse_cluster(header)
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
        set_devices(me, header)
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
        if self.options.same_host_ipc:  # a task on this host: a Unix-domain socket
            # a task (re)starting is not listening yet: wait for it (not for a timeout)
            # rather than settle on TCP before its Unix socket exists
            await local_ipc.wait_listening(endpoint, self._connect_left())
            endpoint = await local_ipc.prefer_ipc(
                endpoint, local_ipc.probe_timeout(self.options.rpc.heartbeat_timeout), task=task)
        return await stack.enter_async_context(
            RpcClient(endpoint, config=self.options.rpc, ctx=zctx, name=f"master -> {name}",
                      client_id=self.client_id))  # one id for all its tasks (status, #16)

    def _connect_left(self) -> float:
        """Seconds left of `connect_timeout` while connecting (at least a moment to ask)."""
        return max(0.05, self._connect_deadline - trio.current_time())

    async def _status_of(self, t: Task, missing: list[str]) -> None:
        try:
            header = await ask_status(t.client, self._connect_left())
            if header is None:
                missing.append(f"{t.name} at {t.address}: no answer")
                return
            if (header.get("job"), header.get("task")) != t.key:
                raise InvalidArgumentError(
                    f"{t.address} answered as {task_name((header.get('job'), header.get('task')))}"
                    f", not {t.name}: the cluster spec does not match the running tasks")
            set_devices(t, header)
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
        """Register every part of `step` with the life of its task the master knows of (the
        first run, and the next run after a task restarted). One task of the loop registers a
        step at a time; the others wait for it and try again themselves if it failed."""
        while step._registering is not None:
            await step._registering.wait()
        if step.registered:
            return
        step._registering = trio.Event()
        try:
            errors: list[OpError] = []
            async with trio.open_nursery() as nursery:
                for part in step.tasks:
                    if part.incarnation is None or part.incarnation != part.task.incarnation:
                        nursery.start_soon(self._register_part, part, errors)
            if errors:
                raise errors[0]
            # Each task's run_graph names the life of the step's other tasks: the tensors it
            # pushes there carry it, and a task that restarted since refuses them.
            for part in step.tasks:
                part.header["peers"] = [[*p.task.key, p.incarnation]
                                        for p in step.tasks if p is not part]
        finally:
            step._registering.set()
            step._registering = None

    async def _register_part(self, part: TaskPart, errors: list[OpError]) -> None:
        t = part.task
        try:
            for attempt in range(2):
                if t.incarnation is None:
                    await self._refresh_incarnation(t)
                inc = t.incarnation
                try:
                    handles = [await self._register_graph(t, inc, dev_name, raw)
                               for dev_name, raw in part.graphs]
                except AbortedError:
                    if attempt:
                        raise
                    self._forget(t)  # it restarted since we last looked: once more
                    continue
                break
        except OpError as e:
            errors.append(from_task(t, e, "registering a partition"))
            return
        part.handles = handles
        part.incarnation = inc
        part.header["graphs"] = handles
        part.header["incarnation"] = inc

    async def _register_graph(self, t: Task, inc: int, dev_name: str, raw: bytes) -> int:
        key = (t.key, dev_name, hashlib.sha256(raw).digest())
        known = self._handles.get(key)
        if known is not None and known[0] == inc:
            return known[1]
        header, _ = await t.client.call(
            "register_graph", {"incarnation": inc, "device": dev_name},
            [np.frombuffer(raw, np.uint8)], timeout=self.options.connect_timeout)
        handle = int(header["handle"])
        self._handles[key] = (inc, handle)
        return handle

    async def _refresh_incarnation(self, t: Task) -> None:
        """Ask `t` which life it is in (after a reply suggested it restarted). A task the
        client lost is given one heartbeat timeout to come back (a restart) first."""
        limit = self.options.rpc.heartbeat_timeout
        with trio.move_on_after(limit):
            await t.client.wait_ready()
        header, _ = await t.client.call("status", None, timeout=limit)
        set_devices(t, header)

    def _forget(self, t: Task) -> None:
        """`t` may have restarted: ask its ``status`` and register again before its next step
        (parts registered with a life it is still in keep their handles: registering the
        same bytes again gives the same handle)."""
        t.incarnation = None
        for key in [k for k in self._handles if k[0] == t.key]:
            del self._handles[key]

    # -- running -------------------------------------------------------------------------------
    def run(self, step: DistributedStep, args: list[Any], trace: list | None = None,
            stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a thread other than the master's; blocks until it is done, at
        most `timeout` seconds (RunOptions.timeout_in_ms; None: ``step_timeout``)."""
        self._check_open()
        if self._thread is None and self._host is None:
            raise FailedPreconditionError(
                "this session runs in a trio program: use 'await session.run(...)' inside "
                "'async with af.Session(target) as session'")
        lock = _thread.allocate_lock()
        lock.acquire()
        flight = StepFlight(self, step, args, trace, stats, lock.release,
                            self._timeout(timeout))
        try:
            if step.registered and all(p.task.client.alive for p in step.tasks):
                flight.send_ahead()
        finally:  # interrupted or not, the loop sees to what left: runs the step, or aborts it
            try:
                self._token.run_sync_soon(self._launch, flight)
            except trio.RunFinishedError:
                raise UnavailableError("the session's connection to the cluster has shut "
                                       "down") from None
        lock.acquire()  # the flight's own deadline (`_expire`) ends it in time
        return flight.result()

    async def arun(self, step: DistributedStep, args: list[Any], trace: list | None = None,
                   stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a task of the master's trio loop (`timeout`: as in `run`)."""
        self._check_open()
        if not self._ready(step):
            await self._register(step)
        done = trio.Event()
        flight = StepFlight(self, step, args, trace, stats, done.set, self._timeout(timeout))
        flight.start()
        try:
            await done.wait()  # the flight's own deadline (`_expire`) ends it in time
        except BaseException:
            flight.fail(CancelledError("the step was cancelled by its caller"))
            raise
        return flight.result()

    def _launch(self, flight: StepFlight) -> None:
        """Start a sync caller's step (in the master's loop): at once when its partitions are
        registered, else after a task registers them."""
        if self._ready(flight.step):
            flight.start()
        else:
            self._nursery.start_soon(self._register_then_start, flight)

    def _ready(self, step: DistributedStep) -> bool:
        """Whether `step` can start now: registered with the life of each task it needs that
        the master knows of, and no task of it lost (a task the client lost may be restarting:
        it is asked which life it is in, after up to a heartbeat timeout, before the step)."""
        ready = True
        for p in step.tasks:
            if not p.task.client.alive:
                self._forget(p.task)
                ready = False
        return ready and step.registered

    async def _register_then_start(self, flight: StepFlight) -> None:
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
        for p in parts:  # meant for the life of the task the step ran on
            self._nursery.start_soon(self._send_abort, p.task,
                                     {**header, "incarnation": p.incarnation})

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

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return float(self.options.step_timeout)
        if not 0 < timeout < math.inf:
            raise InvalidArgumentError(f"a step's timeout must be > 0 seconds, got {timeout!r}")
        return float(timeout)

    def _check_open(self) -> None:
        if self.closed:
            raise FailedPreconditionError(
                "attempted to use a closed session; create a new af.Session(target)")
        if self._thread_error is not None:
            raise UnavailableError(f"the master's thread failed: {self._thread_error!r}")


def _unwrap(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e
