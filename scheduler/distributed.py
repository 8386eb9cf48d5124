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
import hashlib
import inspect
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio
import zmq

from devices.device_spec import DeviceSpec
from devices.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    OpError,
    UnavailableError,
)
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
from transport.rpc import RpcClient, RpcConfig


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


class _Outcome:
    """The first error of a multi-task step (written by the part that failed first)."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: OpError | None = None


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
                    task_status.started(self)
                    await trio.sleep_forever()
        finally:
            self.closed = True
            zctx.destroy(linger=0)

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
            t.client = await self._open_client(stack, zctx, endpoint_of(t.address), t.name)
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
                           endpoint: str, name: str) -> RpcClient:
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
            stats: dict | None = None) -> list[Any]:
        """Run one step from a thread other than the master's; blocks until it is done."""
        self._check_open()
        if self._thread is None and self._host is None:
            raise FailedPreconditionError(
                "this session runs in a trio program: use 'await session.run(...)' inside "
                "'async with af.Session(target) as session'")
        lock = _thread.allocate_lock()
        lock.acquire()
        box: list[Any] = []

        async def body() -> None:
            try:
                box.append(await self.arun(step, args, trace, stats))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                box.append(_unwrap(e))
            finally:
                lock.release()

        try:
            self._token.run_sync_soon(self._nursery.start_soon, body)
        except trio.RunFinishedError:
            raise UnavailableError("the session's connection to the cluster has shut "
                                   "down") from None
        lock.acquire()
        result = box[0]
        if isinstance(result, BaseException):
            if isinstance(result, trio.Cancelled):
                raise UnavailableError("the session was closed while the step ran")
            raise result
        return result

    async def arun(self, step: DistributedStep, args: list[Any], trace: list | None = None,
                   stats: dict | None = None) -> list[Any]:
        """Run one step from a task of the master's trio loop."""
        self._check_open()
        parts = step.tasks
        rets: list[Any] = [None] * step.n_rets
        if not parts:
            await trio.lowlevel.checkpoint()
            return rets
        if not step.registered:
            await self._register(step)
        step_id = self._rng.getrandbits(63) or 1
        timeout = self.options.step_timeout
        if len(parts) == 1:
            outcome = _Outcome()
            await self._run_part(parts[0], step_id, args, rets, trace, stats, timeout, outcome,
                                 None, ())
        else:
            outcome = _Outcome()
            # This task runs one part itself, the others start when it first waits: a remote
            # one, so that its request leaves before the in-process part runs (which would
            # only wait for the tensors that request makes the other tasks send).
            first = 1 if self._host is not None and parts[0].task.key == self.me else 0
            async with trio.open_nursery() as nursery:
                for k, p in enumerate(parts):
                    if k != first:
                        nursery.start_soon(self._run_part, p, step_id, args, rets, trace,
                                           stats, timeout, outcome, nursery.cancel_scope, parts)
                await self._run_part(parts[first], step_id, args, rets, trace, stats, timeout,
                                     outcome, nursery.cancel_scope, parts)
        if outcome.error is not None:
            raise outcome.error
        return rets

    async def _run_part(self, part: TaskPart, step_id: int, args: list[Any],
                        rets: list[Any], trace: list | None, stats: dict | None,
                        timeout: float | None, outcome: _Outcome,
                        scope: trio.CancelScope | None, parts: Sequence[TaskPart]) -> None:
        if part.task.client is self._local and len(parts) > 1:
            # let the other parts' requests leave first: this part only waits for them
            await trio.lowlevel.cancel_shielded_checkpoint()
        header = dict(part.header)
        header["step"] = step_id
        if trace is not None:
            header["trace"] = True
        feeds = [args[i] for i in part.args] if part.args else None
        try:
            reply, tensors = await part.task.client.call("run_graph", header, feeds,
                                                         timeout=timeout)
        except Exception as e:  # noqa: BLE001 - every failure fails the step, first one wins
            if outcome.error is not None:
                return
            err = e if isinstance(e, OpError) else InternalError(
                f"run_graph on {part.task.name} raised {type(e).__name__}: {e}")
            outcome.error = _from_task(part.task, err, f"step {step_id}")
            if scope is not None:
                scope.cancel()
                self._abort_others(step_id, outcome.error, parts, part)
            return
        for i, t in zip(part.rets, tensors, strict=True):
            rets[i] = t
        if stats is not None:
            stats["bytes_moved"] = stats.get("bytes_moved", 0) + int(reply.get("bytes", 0))
        if trace is not None:
            trace.extend(tuple(e) for e in reply.get("trace") or ())

    def _abort_others(self, step_id: int, error: OpError, parts: Sequence[TaskPart],
                      failed: TaskPart) -> None:
        header = error_header(step_id, error)
        for p in parts:
            if p is not failed:
                self._nursery.start_soon(self._send_abort, p.task, header)

    async def _send_abort(self, task: Task, header: dict) -> None:
        with contextlib.suppress(OpError):
            await task.client.call("abort", header, timeout=self.options.rpc.heartbeat_timeout)

    def _check_open(self) -> None:
        if self.closed:
            raise FailedPreconditionError(
                "attempted to use a closed session; create a new af.Session(target)")
        if self._thread_error is not None:
            raise UnavailableError(f"the master's thread failed: {self._thread_error!r}")


class _LocalClient:
    """An `RpcClient` stand-in for the task served by the master's own trio loop: calls its
    handlers directly, passing tensors by reference (as the local runtime does)."""

    alive = True

    def __init__(self, service: Any):
        self._service = service
        self._handlers = service.handlers()
        self._async = {m for m, h in self._handlers.items() if inspect.iscoroutinefunction(h)}

    async def wait_ready(self) -> None:
        await trio.lowlevel.checkpoint()

    async def call(self, method: str, header: Any = None, tensors: Any = None, *,
                   timeout: float | None = None) -> tuple[Any, list]:
        if self._service._token is None:
            raise UnavailableError("the in-process worker service has stopped")
        handler = self._handlers[method]
        tensors = list(tensors) if tensors is not None else []
        if method not in self._async:
            return handler(header, tensors)
        if timeout is None:
            return await handler(header, tensors)
        with trio.move_on_after(timeout):
            return await handler(header, tensors)
        raise DeadlineExceededError(f"{method} on the in-process task ran past its deadline "
                                    f"({timeout:.3g}s)")


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
