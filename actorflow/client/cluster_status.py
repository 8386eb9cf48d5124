"""Every task's state, asked of the cluster now: what ``actorflow status`` prints.

`cluster_status(target)` finds the cluster (a cluster file, an ``AF_CONFIG``-shaped JSON object,
a ``{job: [addresses]}`` dict, or ``af://host:port`` of any task, whose ``status`` names the
rest), asks every task's worker service for ``status`` at once (each bounded by `timeout`), and
returns a `ClusterStatus`: one `TaskStatus` per task with its address, incarnation, uptime,
devices (mailbox depth, pool bytes in use and peak), steps running, registered graphs, queue
and accumulator sizes, bytes moved, shared-memory segments, the steps in flight with what they
wait on, per-variable staleness counters and histograms (in each device's statistics),
heartbeat ages (how long since the task last heard from each other task of the cluster), its
clients (every connection to it: how long since each master last asked it something and
last sent anything, heartbeats included, and whether it is gone; `TaskStatus.masters`), and
how long the task took to answer this tool. A task that does not answer is listed with
``error`` set, never dropped.

    st = cluster_status("af://127.0.0.1:2222")
    print(st.table())            # or st.as_dict() for JSON
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from devices.errors import InvalidArgumentError, OpError, UnavailableError
from scheduler.remote_rendezvous import endpoint_of, task_name
from transport import local_ipc
from transport.rpc import RpcClient, RpcConfig


@dataclass
class TaskStatus:
    """One task as its worker service described itself (or why it could not)."""

    job: str
    task: int
    address: str
    error: str | None = None          # set when the task did not answer
    answered_in: float | None = None  # seconds from asking to the reply
    incarnation: Any = None
    uptime: float | None = None
    pid: int | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    steps_running: int = 0
    graphs: int = 0
    resources: list[list[Any]] = field(default_factory=list)
    bytes: dict[str, int] = field(default_factory=dict)
    shm: dict[str, int] = field(default_factory=dict)
    inflight: list[dict[str, Any]] = field(default_factory=list)
    # heartbeat ages: {other task: {"age": seconds since this task last heard from it (None:
    # not yet), "alive": its heartbeat still counts it alive}} (`scheduler.peer_watch`)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # every connection to the task (`transport.rpc_server.ConnectionInfo` as a map): name,
    # pid, client_id, peer, asked (seconds since its last request; None: none yet), heard
    # (seconds since any message), requests, inflight, alive (False: gone)
    clients: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return task_name((self.job, self.task))

    def masters(self) -> list[dict[str, Any]]:
        """The connections of sessions' masters (named ``master -> <task>``), oldest first."""
        return sorted((c for c in self.clients if str(c.get("name") or "").startswith(
            "master")), key=lambda c: -(c.get("heard") or 0.0))


@dataclass
class ClusterStatus:
    tasks: list[TaskStatus]
    asked_at: float  # wall time

    def as_dict(self) -> dict[str, Any]:
        return {"asked_at": self.asked_at, "tasks": [asdict(t) | {"name": t.name}
                                                     for t in self.tasks]}

    def table(self) -> str:
        """A human table: one line per task, then its devices and queues."""
        lines = [f"{'task':<28} {'address':<21} {'state':<8} {'incarn.':<10} {'uptime':>8} "
                 f"{'steps':>5} {'graphs':>6} {'bytes in/out':>17} {'shm':>5} {'answer':>8}"]
        for t in self.tasks:
            if t.error is not None:
                lines.append(f"{t.name:<28} {t.address:<21} {'DOWN':<8} {'-':<10} {'-':>8} "
                             f"{'-':>5} {'-':>6} {'-':>17} {'-':>5} {'-':>8}  {t.error}")
                continue
            inc = "-" if t.incarnation is None else str(t.incarnation)[:10]
            io = f"{_mib(t.bytes.get('received', 0))}/{_mib(t.bytes.get('pushed', 0))}"
            lines.append(
                f"{t.name:<28} {t.address:<21} {'up':<8} {inc:<10} {_dur(t.uptime):>8} "
                f"{t.steps_running:>5} {t.graphs:>6} {io:>17} {t.shm.get('busy', 0):>5} "
                f"{(t.answered_in or 0) * 1e3:>6.1f}ms")
            if t.peers:
                lines.append("    heard from " + ", ".join(
                    f"{_short(peer)} {_age(p)}" for peer, p in sorted(t.peers.items())))
            masters = t.masters()
            lines.append("    masters: " + ("; ".join(_master(m) for m in masters)
                                            if masters else "none connected"))
            for d in t.devices:
                pool = d.get("pool") or {}
                lines.append(
                    f"    {d.get('name', '?'):<44} mailbox {d.get('mailbox_depth', 0):>4}  "
                    f"async waits {d.get('async_kernels_waiting', 0):>3}  pool "
                    f"{_mib(pool.get('bytes_in_use', 0))} in use, "
                    f"{_mib(pool.get('peak_bytes_in_use', 0))} peak")
                for var, st in sorted((d.get("staleness") or {}).items()):
                    lines.append(
                        f"      staleness of {var!r}: {st.get('count', 0)} updates, mean "
                        f"{st.get('mean', 0.0):.2f}, max {st.get('max', 0)}, histogram "
                        f"{st.get('hist', [])} (version {st.get('version', '?')})")
            for dev, container, name, kind, size in t.resources:
                where = f"{container}/{name}" if container else name
                lines.append(f"    {kind} {where!r} on {dev}: size {size}")
        return "\n".join(lines)


def _short(task: str) -> str:
    """'/job:ps/replica:0/task:1' -> 'ps:1'."""
    parts = dict(p.split(":", 1) for p in task.strip("/").split("/") if ":" in p)
    return f"{parts.get('job', task)}:{parts.get('task', '?')}"


def _age(p: dict[str, Any]) -> str:
    age = p.get("age")
    if age is None:
        return "never (yet)"
    return f"{age:.1f}s ago" + ("" if p.get("alive", True) else " (DEAD)")


def _master(c: dict[str, Any]) -> str:
    """One master's connection: who, how long since it asked and since it was heard from."""
    cid = c.get("client_id")
    who = f"pid {c.get('pid')}" + ("" if cid is None else f" id {cid & 0xFFFFFFFF:08x}")
    asked = c.get("asked")
    idle = "no request yet" if asked is None else f"last request {asked:.1f}s ago"
    state = "" if c.get("alive", True) else " (GONE)"
    return f"{who}: {idle}, heard {c.get('heard', 0.0):.1f}s ago{state}"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}MiB" if n >= 1 << 20 else f"{n / 1024:.1f}KiB"


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.1f}h"


def parse_target(target: Any) -> tuple[dict[str, list[str]] | None, str | None]:
    """(cluster, None) for a cluster file / JSON / dict; (None, endpoint) for af://host:port."""
    if isinstance(target, dict):
        cluster = target.get("cluster", target)
        return _check_cluster(cluster), None
    if not isinstance(target, str) or not target:
        raise InvalidArgumentError(
            f"status target {target!r}: pass af://HOST:PORT, a cluster file, or AF_CONFIG JSON")
    if target.startswith("af://"):
        rest = target[5:]
        if ":" not in rest or not rest.rpartition(":")[2].isdigit():
            raise InvalidArgumentError(f"target {target!r} is not af://HOST:PORT")
        return None, f"tcp://{rest}"
    if target.lstrip().startswith("{"):
        try:
            doc = json.loads(target)
        except ValueError as e:
            raise InvalidArgumentError(f"the cluster JSON does not parse: {e}") from None
        return parse_target(doc)
    if os.path.exists(target):
        with open(target) as f:
            try:
                doc = json.load(f)
            except ValueError as e:
                raise InvalidArgumentError(f"cluster file {target}: not JSON ({e})") from None
        return parse_target(doc)
    raise InvalidArgumentError(
        f"status target {target!r} is neither af://HOST:PORT, an existing cluster file, nor "
        f"JSON; e.g. 'actorflow status af://127.0.0.1:2222'")


def _check_cluster(cluster: Any) -> dict[str, list[str]]:
    if not isinstance(cluster, dict) or not all(
            isinstance(j, str) and isinstance(a, list) and all(isinstance(x, str) for x in a)
            for j, a in cluster.items()):
        raise InvalidArgumentError(
            f"a cluster maps job names to lists of 'host:port', got {str(cluster)[:200]}")
    return cluster


async def _ask(address: str, timeout: float, config: RpcConfig) -> tuple[Any, float]:
    # a task on this host answers on its private Unix socket (no keys needed there); others
    # over TCP, with the cluster's keys in `config` (RpcConfig.keys) when it has them
    endpoint = await local_ipc.prefer_ipc(endpoint_of(address))
    async with RpcClient(endpoint, config=config,
                         name=f"status client of {address}") as c:
        t0 = time.monotonic()
        header, _ = await c.call("status", None, timeout=timeout)
        return header, time.monotonic() - t0


def _from_header(job: str, i: int, address: str, h: dict[str, Any],
                 answered_in: float) -> TaskStatus:
    inflight = h.get("inflight") or []
    return TaskStatus(
        job=job, task=i, address=address, answered_in=answered_in,
        incarnation=h.get("incarnation"), uptime=h.get("uptime"), pid=h.get("pid"),
        devices=list(h.get("device_stats") or []), steps_running=int(h.get("steps") or 0),
        graphs=int(h.get("graphs") or 0), resources=list(h.get("resources") or []),
        bytes=dict(h.get("bytes") or {}), shm=dict(h.get("shm") or {}), inflight=inflight,
        peers=dict(h.get("peers") or {}), clients=list(h.get("clients") or []))


async def acluster_status(target: Any, timeout: float = 3.0,
                          config: RpcConfig | None = None) -> ClusterStatus:
    """`cluster_status` in a trio program."""
    config = config or RpcConfig(heartbeat_interval=min(1.0, timeout / 3),
                                 heartbeat_timeout=timeout)
    cluster, endpoint = parse_target(target)
    asked = time.time()
    if cluster is None:
        assert endpoint is not None
        try:
            with trio.fail_after(timeout):
                header, _ = await _ask(endpoint.removeprefix("tcp://"), timeout, config)
        except (OpError, trio.TooSlowError) as e:
            raise UnavailableError(
                f"{target} did not answer 'status' within {timeout}s ({e}); is a worker "
                f"running there?") from None
        cluster = {str(j): [a for _, a in sorted(tasks)] for j, tasks in
                   header["cluster"].items()}
    found: dict[tuple[str, int], TaskStatus] = {}

    async def one(job: str, i: int, address: str) -> None:
        try:
            with trio.fail_after(timeout):
                h, dt = await _ask(address, timeout, config)
            found[(job, i)] = _from_header(job, i, address, h, dt)
        except (OpError, trio.TooSlowError, OSError) as e:
            why = f"no answer within {timeout}s" if isinstance(e, trio.TooSlowError) else \
                f"{type(e).__name__}: {e}"
            found[(job, i)] = TaskStatus(job, i, address, error=why)

    async with trio.open_nursery() as nursery:
        for job, addresses in cluster.items():
            for i, address in enumerate(addresses):
                nursery.start_soon(one, job, i, address)
    tasks = [found[k] for k in sorted(found)]
    return ClusterStatus(tasks, asked)


def cluster_status(target: Any, timeout: float = 3.0,
                   config: RpcConfig | None = None) -> ClusterStatus:
    """Ask every task of the cluster at `target` for its state (see the module docstring)."""
    return trio.run(acluster_status, target, timeout, config)
