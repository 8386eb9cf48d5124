"""The worker service: what every process that hosts devices runs for the cluster's masters.

What it owns
------------
This task's device actors, an `RpcServer` (a ZeroMQ ROUTER bound to this task's port, on
127.0.0.1 unless configured otherwise), the partitions registered with it, and the steps
running on it (`scheduler.remote_rendezvous.StepTable`). Any number of masters (clients'
sessions) use it at once; variables live in the devices' containers, so every client of the
cluster shares them until a ``reset``.

Methods (an RPC header is a small msgpack dict; tensors ride as raw frames, never pickled)
-------
``status``          -> {job, task, incarnation, devices: [[name, kind], ...], cluster: {job:
                        [[i, "host:port"]]}, steps, graphs, device_stats: [each device's
                        `DeviceStatistics` as a map], service: `WorkerStatistics` as a map,
                        and the status/doctor fields of `scheduler.observability`}
``register_graph``  {incarnation, device} + [uint8 GraphDef bytes] -> {handle, incarnation}.
                    The partition is compiled once (`executor.compile_partition`); the same
                    bytes for the same device give the same handle (idempotent). Handles are
                    random and belong to this incarnation (`scheduler.graph_registry`). At
                    most ``max_graphs`` are kept, least recently used dropped first. Compiled
                    loops its kernels import on their first call are imported on a worker
                    thread before the reply (`devices.kernels.loop_loader.import_first_use`),
                    never on the event loop inside a step.
``run_graph``       {incarnation, step, graphs: [handle...], args: [i...], n_args, rets: [i...],
                    n_rets, trace, peers: [[job, task, incarnation]...], pushed: [key...]
                    (optional)} + one tensor per entry of ``args``, then
                    one per ``pushed`` key (tensors the master's task sent this task before its
                    request left: they ride on it instead of a push each) -> {bytes, trace} +
                    one tensor per entry of ``rets``. Runs every listed partition as a `StepRun`
                    on its device, sharing one `StepContext` whose rendezvous is this task's
                    rendezvous for the step; replies when they have all finished and every
                    tensor they pushed to other tasks was handed to libzmq, or with the step's
                    first error (its class, node and device travel with it). ``peers``: the
                    life of each other task of the step, which this step's pushes there name
                    (a push to a task it names none for fails the step).
``push``, ``deliver`` and ``shm_free`` are `scheduler.tensor_intake.TensorIntake`'s handlers:
``push``            (one-way) {step, key, incarnation} + [tensor], ``ref``: step: a Send on
                    another task puts the tensor into this task's rendezvous for the step.
                    The key must be one a registered partition here receives, with that
                    Recv's dtype; a push that breaks this fails its step here (the master hears
                    of it from this task's ``run_graph``). A refused push (that, or another
                    incarnation: see below) gets the error back with its ``ref``
                    (`transport.rpc_server`): the step fails on the sender too, at once; a push
                    taken gets no reply. Early pushes create the step's state; pushes to a step
                    that is over here are dropped.
``deliver``         {step, key, incarnation} + [tensor] -> {}: ``push`` as a request: a refused
                    tensor is answered with the error instead (and the step is left alone).
                    A push from a task on this host may carry {shm: descriptor, from: [job,
                    task]} instead of the frame: the tensor is copied out of that shared-memory
                    segment (`transport.shm`) into the receiving device's pool, and the sender
                    is sent ``shm_free`` so it can reuse the segment.
``shm_free``        (one-way) {names, from}: segments this task pushed through were copied out.
``abort``           {step, code, message, incarnation (optional)}: fail the step here with
                    that error (every pending Recv wakes); a step aborted before its run_graph
                    arrives fails at once. An abort meant for another incarnation is ignored.
``reset``           {containers: [name...] or None} -> {containers}: drop those resource
                    containers (all when None) on every device of this task.

Incarnations: the service draws a random 64-bit ``incarnation`` when it is built; a
``register_graph``, ``run_graph``, ``push`` or ``deliver`` naming another one (the task
restarted since its master last looked) is refused with AbortedError naming this task, never
run on this life's graphs nor kept in its steps (counted in ``stale_refused``; tensors are
refused by `TensorIntake`). An ``abort`` for another incarnation is ignored.

State (owned by the service's trio thread): ``_graphs`` (the `GraphRegistry`: handles, their
compiled partitions and the Recv keys they take, of this incarnation), ``_table`` (the steps),
``_outbox`` (pushes to other tasks), ``_intake`` (tensors from other tasks, and their
counters), ``_server`` (the `RpcServer` while serving: ``status`` lists its connections, so
how long since each master was last heard from). Every handler but reset runs inline in the socket's
reader, with no task: run_graph starts its partitions there (each runs inline as far as it
can without waiting) and returns a `Pending` that the step's end settles, from the callback
where the last partition finished (typically the reader that got the last tensor it waited
for).

    service = WorkerService(WorkerConfig(job="ps", task=0, cluster={"ps": {0: "127.0.0.1:2222"}}))
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(service.serve)      # "tcp://127.0.0.1:2222"
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio
import zmq

from devices.device import Device
from devices.errors import (
    CancelledError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OpError,
    UnavailableError,
    error_from_code,
)
from devices.kernels.loop_loader import first_use_pending, import_first_use
from devices.pool import HostPool
from scheduler import executor, observability, tracing
from scheduler.config import RuntimeConfig
from scheduler.executor import StepContext, StepRun
from scheduler.graph_registry import GraphRegistry, new_incarnation
from scheduler.peer_outbox import PeerOutbox
from scheduler.remote_rendezvous import StepTable, StepTableStatistics, detached, task_name
from scheduler.request_fields import (
    MAX_INDICES,
    U64,
    header_map,
    int_field,
    int_list,
    peers_field,
    str_field,
)
from scheduler.runtime import discover_devices
from scheduler.tensor_intake import TensorIntake
from transport import local_ipc, shm
from transport.rpc import RpcConfig, RpcServer
from transport.rpc_core import Pending

# the loopback address a service bound to each of these also answers on
_LOOPBACK_OF = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "localhost": "127.0.0.1",
                "::": "::1", "[::]": "::1", "[::1]": "::1"}

# Services serving in this process, by endpoint ("tcp://host:port"): a master aimed at one of
# them runs in its trio loop and calls it directly (`scheduler.distributed`). Written by
# `WorkerService.serve` on entry and exit.
_IN_PROCESS: dict[str, WorkerService] = {}


def in_process_service(endpoint: str) -> WorkerService | None:
    """The service of this process bound to `endpoint`, if there is one."""
    return _IN_PROCESS.get(endpoint)


@dataclass(frozen=True)
class WorkerConfig:
    """One task of a cluster: who it is, where everyone is, and its limits."""

    job: str
    task: int
    cluster: Mapping[str, Mapping[int, str]]  # job -> {task index: "host:port"}
    bind_host: str = "127.0.0.1"  # the interface the port is bound on
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # this task's devices
    rpc: RpcConfig = field(default_factory=RpcConfig)
    orphan_ttl: float = 60.0  # seconds early deliveries wait for their step's run_graph
    max_orphan_steps: int = 4096
    max_orphan_bytes: int = 1 << 30
    remember_steps: int = 65536  # retired step ids kept to drop late messages
    max_graphs: int = 4096  # registered partitions kept (least recently used dropped)
    # Tensors of at least this many bytes pushed to a task on this host (a loopback address)
    # go through shared memory (`transport.shm`); 0 turns that off.
    shm_min_bytes: int = 1 << 20
    shm_max_bytes: int = 256 << 20  # shared-memory segments per peer, at most

    def __post_init__(self) -> None:
        if self.shm_min_bytes < 0 or self.shm_max_bytes < 0:
            raise InvalidArgumentError("shm_min_bytes and shm_max_bytes must be >= 0 (0 turns "
                                       "shared memory off)")
        if self.task not in self.cluster.get(self.job, {}):
            raise InvalidArgumentError(
                f"task {task_name((self.job, self.task))} is not in the cluster "
                f"{ {j: dict(t) for j, t in self.cluster.items()} }; pick a job and task index "
                "from it")

    @property
    def address(self) -> str:
        return self.cluster[self.job][self.task]


@dataclass(frozen=True)
class WorkerStatistics:
    steps: StepTableStatistics
    graphs: int
    pushed: int  # tensors pushed to other tasks (handed to libzmq)
    push_failures: int  # pushes that could not be sent (no connection, closed)
    delivered: int  # tensors received from other tasks
    dropped: int  # deliveries for steps that were over here
    shm_pushed: int  # of `pushed`: through shared memory (a peer on this host)
    shm_busy: int  # shared-memory segments not yet copied out by their receiver
    stale_refused: int = 0  # tensors pushed here for a previous life of this task: refused
    refused_by_peers: int = 0  # pushes of this task another task refused (their steps failed)


class WorkerService:
    """The RPC face of this task's devices (see the module docstring)."""

    def __init__(self, config: WorkerConfig, devices: list[Device] | None = None):
        self.config = config
        if devices is None:
            rt = dataclasses.replace(config.runtime, job=config.job, task=config.task)
            devices = discover_devices(rt)
        self.devices = devices
        self._by_name = {d.name: d for d in devices}
        self.cluster = {job: dict(tasks) for job, tasks in config.cluster.items()}
        self.endpoint: str | None = None
        # this life of the task: reported by status, named by every register/run request
        self.incarnation = new_incarnation()
        for d in devices:  # issue 17: an update names its sender's life (TaskIncarnation)
            d.incarnation = self.incarnation
        self._graphs = GraphRegistry((config.job, config.task), self.incarnation,
                                     max_graphs=config.max_graphs)
        self._outbox: PeerOutbox | None = None
        self._table: StepTable | None = None
        # push/deliver/shm_free, with their incarnation refusal (`scheduler.tensor_intake`)
        self._intake = TensorIntake(self._me, self.incarnation, self._graphs, self._by_name,
                                    config.rpc.limits, self.cluster)
        self._server: RpcServer | None = None  # set while serving: its connections (#16)
        self._token: trio.lowlevel.TrioToken | None = None  # set while serving
        self._collect_queued = False  # a `_collect` is queued on the loop
        self._nursery: trio.Nursery | None = None

    def handlers(self) -> dict[str, Any]:
        return {
            "status": self._status,
            "register_graph": self._register_graph,
            "run_graph": self._run_graph,
            "deliver": self._intake.deliver,
            "push": self._intake.push,
            "shm_free": self._intake.shm_free,
            "abort": self._abort,
            "reset": self._reset,
        }

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Host the devices and answer RPCs until cancelled; ``started(endpoint)``."""
        cfg = self.config
        host, _, port = cfg.address.rpartition(":")
        zctx = zmq.Context()
        try:
            async with trio.open_nursery() as nursery:
                for d in self.devices:
                    await nursery.start(d.serve)
                self._outbox = PeerOutbox(cfg.job, cfg.task, self.cluster, cfg.rpc, zctx, nursery,
                                          shm_min_bytes=cfg.shm_min_bytes,
                                          shm_max_bytes=cfg.shm_max_bytes)
                if cfg.shm_min_bytes and shm.available():
                    shm.reap_orphans()  # segments of tasks that died on this host
                self._table = StepTable(
                    self._outbox, orphan_ttl=cfg.orphan_ttl,
                    max_orphan_steps=cfg.max_orphan_steps,
                    max_orphan_bytes=cfg.max_orphan_bytes, remember_steps=cfg.remember_steps,
                    on_failed=self._collect_soon)
                self._outbox.on_refused = self._intake.push_refused
                self._intake.attach(self._table, self._outbox)
                name = f"worker service {task_name((cfg.job, cfg.task))}"
                async with RpcServer(self.handlers(), config=cfg.rpc, ctx=zctx,
                                     name=name) as server:
                    self._server = server
                    bind_port = "*" if port in ("", "0") else port
                    self.endpoint = server.bind(f"tcp://{cfg.bind_host}:{bind_port}")
                    # Advertise the port actually bound (port 0 asks for any free one).
                    bound = self.endpoint.rpartition(":")[2]
                    self.cluster[cfg.job][cfg.task] = f"{host or cfg.bind_host}:{bound}"
                    # Peers on this host reach us over a Unix-domain socket when they can.
                    ipc = local_ipc.ipc_endpoint(
                        f"tcp://{_LOOPBACK_OF.get(cfg.bind_host, cfg.bind_host)}:{bound}")
                    if ipc is not None:
                        with contextlib.suppress(UnavailableError):
                            server.bind(ipc)
                    nursery.start_soon(self._reap_forever)
                    self._token = trio.lowlevel.current_trio_token()
                    self._nursery = nursery
                    names = {self.endpoint, "tcp://" + self.cluster[cfg.job][cfg.task]}
                    try:
                        _IN_PROCESS.update(dict.fromkeys(names, self))
                        task_status.started(self.endpoint)
                        await trio.sleep_forever()
                    finally:
                        for n in names:
                            if _IN_PROCESS.get(n) is self:
                                del _IN_PROCESS[n]
                        self._token = None
                        self._server = None
        finally:
            self._intake.close()
            zctx.destroy(linger=0)

    def spawn_threadsafe(self, fn: Any) -> None:
        """Start ``await fn()`` as a task of the service's loop, from any thread."""
        if self._token is None:
            raise UnavailableError("the worker service is not serving")
        self._token.run_sync_soon(self._nursery.start_soon, fn)

    async def _reap_forever(self) -> None:
        cfg = self.config
        period = max(0.05, min(cfg.orphan_ttl / 4, cfg.rpc.heartbeat_interval))
        failed = 0
        while True:
            await trio.sleep(period)
            self._table.reap()
            self._outbox.sweep()
            if self._table.failed != failed:  # a backstop for blocks freed after _collect ran
                failed = self._table.failed
                self._collect()

    def _collect_soon(self) -> None:
        """A step failed here: once the callbacks running now have returned (and with them the
        step's last references), return the pool blocks it never released."""
        if not self._collect_queued and self._token is not None:
            self._collect_queued = True
            self._token.run_sync_soon(self._collect)

    def _collect(self) -> None:
        self._collect_queued = False
        for d in self.devices:
            if isinstance(d.pool, HostPool):
                d.pool.collect()

    def statistics(self) -> WorkerStatistics:
        out = self._outbox
        pools = [c.pool for c in out._channels.values() if c.pool is not None] if out else []
        intake = self._intake
        return WorkerStatistics(self._table.statistics(), len(self._graphs),
                                out.pushed if out else 0, out.push_failures if out else 0,
                                intake.delivered, intake.dropped,
                                sum(p.puts for p in pools), sum(p.busy for p in pools),
                                self._graphs.stale_refused, intake.refused_by_peers)

    # -- status and the hang doctor (#16): this task's state as a typed record ---------------
    def status_record(self) -> observability.TaskStatusRecord:
        """What ``status`` reports of this task beyond its devices' statistics, read by
        `observability.task_report` (`scheduler.status_record`). The first call starts the
        heartbeats to the other tasks whose ages it carries (`scheduler.peer_watch`)."""
        out, table = self._outbox, self._table
        pools = [c.pool for c in out._channels.values() if c.pool is not None] if out else []
        return observability.TaskStatusRecord(
            job=self.config.job, task=self.config.task, incarnation=self.incarnation,
            devices=tuple(self.devices),
            live_steps=tuple(table._live.values()) if table is not None else (),
            recv_keys=observability.recv_keys(self), bytes_received=self._intake.bytes_received,
            bytes_pushed=out.pushed_bytes if out else 0,
            shm_pushed=sum(p.puts for p in pools), shm_busy=sum(p.busy for p in pools),
            peers=observability.peer_ages(self, self._me, self.cluster, self.config.rpc,
                                          self._nursery, out.zctx if out else None),
            clients=tuple(self._server.connections()) if self._server is not None else ())

    # -- handlers ----------------------------------------------------------------------------
    def _status(self, header: Any, tensors: Any) -> tuple[dict, list]:
        stats = self._table.statistics()
        return {
            "job": self.config.job,
            "task": self.config.task,
            "incarnation": self.incarnation,
            "devices": [[d.name, d.device_type] for d in self.devices],
            "cluster": {job: [[i, a] for i, a in sorted(tasks.items())]
                        for job, tasks in self.cluster.items()},
            "steps": stats.live,
            "graphs": len(self._graphs),
            "device_stats": [dataclasses.asdict(d.statistics()) for d in self.devices],
            "service": dataclasses.asdict(self.statistics()),
            **observability.task_report(self),  # status/doctor fields (#16)
        }, []

    async def _register_graph(self, header: Any, tensors: Any) -> tuple[dict, list]:
        h = header_map(header, "register_graph")
        self._graphs.check_incarnation(h, "register_graph")
        device_name = str_field(h, "device")
        dev = self._by_name.get(device_name)
        if dev is None:
            raise NotFoundError(
                f"register_graph: device '{device_name}' is not on this task; its devices: "
                + ", ".join(self._by_name))
        if (not isinstance(tensors, list) or len(tensors) != 1
                or tensors[0].dtype != np.uint8 or tensors[0].ndim != 1):
            raise InvalidArgumentError(
                "register_graph takes one tensor: the GraphDef's msgpack bytes as a 1-d uint8 "
                "array")

        def compile_graph(graph: Any) -> Any:
            observability.note_graph(self, graph)  # Send/Recv names for the hang doctor (#16)
            return executor.compile_partition(graph, dev)

        handle = self._graphs.register(device_name, tensors[0].tobytes(), compile_graph)
        if first_use_pending():  # compiled loops its kernels import on their first call:
            # imported here, off the event loop, before the first step needs them
            await trio.to_thread.run_sync(import_first_use)
        return {"handle": handle, "incarnation": self.incarnation}, []

    def _run_graph(self, header: Any, tensors: Any) -> tuple[dict, list] | Pending:
        return self.run_graph_holding(header, tensors, frozenset())[0]

    def run_graph_holding(self, header: Any, tensors: Any, hold: frozenset
                          ) -> tuple[tuple[dict, list] | Pending, dict]:
        """``run_graph``, for an in-process master: tensors its partitions send to the tasks
        in `hold` while they run inline are returned, by task, instead of pushed (the master
        sends them along with those tasks' run_graph requests)."""
        h = header_map(header, "run_graph")
        self._graphs.check_incarnation(h, "run_graph")
        step_id = int_field(h, "step", U64)
        handles = int_list(h, "graphs", U64)
        n_args, n_rets = int_field(h, "n_args", MAX_INDICES), int_field(h, "n_rets", MAX_INDICES)
        arg_idx, ret_idx = int_list(h, "args", n_args - 1), int_list(h, "rets", n_rets - 1)
        pushed = h.get("pushed") or []
        if not isinstance(pushed, list) or len(pushed) > MAX_INDICES or not all(
                isinstance(k, str) and k for k in pushed):
            raise InvalidArgumentError("run_graph: 'pushed' must be a list of rendezvous keys")
        if not isinstance(tensors, list) or len(tensors) != len(arg_idx) + len(pushed):
            raise InvalidArgumentError(
                f"run_graph: {len(arg_idx)} feed indices and {len(pushed)} pushed keys but "
                f"{len(tensors) if isinstance(tensors, list) else 'named'} tensors")
        tensors, riders = tensors[:len(arg_idx)], tensors[len(arg_idx):]
        for key, value in zip(pushed, riders, strict=True):
            self._intake.check_dtype(key, value, self._intake.expected(key))
        if not handles or len(set(handles)) != len(handles):
            raise InvalidArgumentError(f"run_graph: graphs must be distinct handles: {handles}")
        peers = peers_field(h)
        graphs = self._graphs.lookup(handles)
        fed = frozenset(arg_idx)
        args: list[Any] = [None] * n_args
        for i, t in zip(arg_idx, tensors, strict=True):
            args[i] = t
        for g in graphs:
            if not g.args <= fed:
                raise InvalidArgumentError(
                    f"run_graph: partition {g.handle} reads feeds {sorted(g.args - fed)}, "
                    "which were not sent")
            if g.exe.n_rets > n_rets:
                raise InvalidArgumentError(
                    f"run_graph: partition {g.handle} writes fetch {g.exe.n_rets - 1}, but "
                    f"n_rets is {n_rets}")
        st = self._table.start(step_id)
        st.rdv.peers = peers
        for key, value in zip(pushed, riders, strict=True):
            st.rdv.send(key, self._intake.take_rider(key, value))
        trace = [] if h.get("trace") else None
        ctx = StepContext(step_id, args, n_rets, len(graphs), st.on_parts_done, st.rdv, trace)
        st.ctx = ctx
        if hold:
            st.rdv.held = {task: [] for task in hold}
        for g in graphs:
            g.exe.device.run_or_post(StepRun(g.exe, ctx))  # inline when idle, else posted
        held = st.rdv.take_held() if hold else {}
        if st.finished:  # it ran to the end inline
            return self._step_reply(ctx, ret_idx, trace), held
        pending = Pending()

        def finished() -> None:
            # Nothing raised here is kept: an error caught in this frame would hold the frame,
            # and so `pending` and the step's tensors, in a cycle (`remote_rendezvous.scrub`);
            # and the callbacks that refer to each other are dropped (no cycle to collect).
            st.on_finished = pending.on_cancel = None
            if ctx.error is not None:
                pending.fail(detached(ctx.error))
                return
            try:
                reply = self._step_reply(ctx, ret_idx, trace)
            except Exception as e:  # noqa: BLE001 - a fetch gone wrong
                pending.fail(detached(e if isinstance(e, OpError) else InternalError(
                    f"{type(e).__name__}: {e}")))
                return
            pending.resolve(*reply)

        def cancelled(_why: BaseException) -> None:
            st.fail(CancelledError(f"step {step_id}: run_graph on {task_name(self._me)} was "
                                   "cancelled (the master gave up or its deadline passed)"))

        st.on_finished = finished
        pending.on_cancel = cancelled
        return pending, held

    @staticmethod
    def _step_reply(ctx: StepContext, ret_idx: list[int], trace: list | None
                    ) -> tuple[dict, list]:
        if ctx.error is not None:  # a copy: raising the step's own would tie it to these frames
            raise detached(ctx.error)
        rets = [_ret_to_wire(ctx.rets[i], i) for i in ret_idx]
        reply: dict[str, Any] = {"bytes": ctx.bytes_moved}
        if trace is not None:  # on the wall clock, so every task's records line up (#16)
            reply["trace"] = tracing.to_wall(trace)
        return reply, rets

    def _abort(self, header: Any, tensors: Any) -> tuple[None, list]:
        h = header_map(header, "abort")
        step_id = int_field(h, "step", U64)
        code = h.get("code")
        message = h.get("message")
        if type(code) is not int or not isinstance(message, str):
            raise InvalidArgumentError("abort needs an int 'code' and a str 'message'")
        inc = h.get("incarnation")
        if inc is not None and inc != self.incarnation:
            return None, []  # meant for a previous life of this task: nothing of it runs here
        self._table.abort(step_id, error_from_code(code, message[:16384]))
        return None, []

    async def _reset(self, header: Any, tensors: Any) -> tuple[dict, list]:
        h = header_map(header, "reset")
        containers = h.get("containers")
        if containers is not None and not (
                isinstance(containers, list) and all(isinstance(c, str) for c in containers)):
            raise InvalidArgumentError("reset: 'containers' must be a list of names or None")
        items = [_Reset(containers) for _ in self.devices]
        for d, item in zip(self.devices, items, strict=True):
            d.run_or_post(item)
        names: set[str] = set()
        for item in items:
            await item.done.wait()
            names.update(item.names)
        return {"containers": sorted(names)}, []

    @property
    def _me(self) -> tuple[str, int]:
        return (self.config.job, self.config.task)


class _Reset:
    """A work item: reset containers on the device actor, between steps."""

    def __init__(self, containers: list[str] | None):
        self.containers = containers
        self.names: list[str] = []
        self.done = trio.Event()

    def run_slice(self, device: Device, on_loop: bool) -> None:
        try:
            if self.containers is None:
                self.names = device.resources.reset()
            else:
                for c in self.containers:
                    self.names += device.resources.reset(c)
        finally:
            self.done.set()


def _ret_to_wire(value: Any, i: int) -> np.ndarray:
    if type(value) is np.ndarray:
        return value
    if value is None:
        raise InternalError(f"fetch {i} was not produced by this step")
    get = getattr(value, "get", None)  # CuPy -> NumPy
    if get is not None and not isinstance(value, np.generic):
        value = get()
    return np.asarray(value)


def error_header(step_id: int, error: OpError) -> dict:
    """The header of an ``abort`` carrying `error`."""
    return {"step": step_id, "code": int(error.code), "message": error.message}
