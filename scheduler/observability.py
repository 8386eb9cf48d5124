"""What a task tells `actorflow status` and `actorflow doctor` about itself.

What it owns: the functions the worker service calls, and two small maps per service (weakly
keyed by the service, so they go with it):

- `note_graph(service, graph)`: at ``register_graph``, remember each ``_Recv`` of the
  partition by its rendezvous key (node name, send and receive device) and each ``_Send``
  (node name), as `KeyInfo` (key -> info; `recv_keys(service)` reads them). Written by the
  service's trio thread only; grows with the registered partitions (a few names per
  cross-device edge).
- `peer_ages(service, ...)`: the heartbeat age of every other task, from the service's
  `PeerWatch` (`scheduler.peer_watch`), which the first call starts in the service's nursery.
- `task_report(service)`: the fields added to the ``status`` reply, read from the service's
  typed `TaskStatusRecord` (``service.status_record()``, `scheduler.status_record`) and
  nothing else of it. Every one is read from state the runtime keeps anyway (nothing is
  recorded for it but the time each waiting Recv began to wait, and the RPC server's one
  clock read per message for its connections), so it costs nothing while nobody asks:

  ``uptime``        seconds since this process started
  ``incarnation``   the task's incarnation id
  ``pid``           the daemon's process id
  ``bytes``         {"received": tensors delivered here from other tasks, "pushed": tensors
                    pushed to other tasks} (cumulative bytes)
  ``shm``           {"pushed": tensors sent through shared memory, "busy": segments in use}
  ``peers``         {task name: {"age": seconds since this task last heard from it (None: not
                    yet), "alive": its heartbeat still counts it alive}} for every other task
  ``clients``       every connection to this task's RPC server (`RpcServer.connections`):
                    {"name", "pid", "client_id" (what the client says it is: a master is
                    named "master -> <this task>" and shares its id among its tasks), "peer",
                    "asked" (seconds since its last request: grows while a master is idle,
                    back to ~0 when it runs a step; None: only pings so far), "heard" (seconds
                    since any message, pings included), "requests", "inflight", "alive"
                    (False: its stream closed, or silent for the heartbeat timeout)}; a master
                    that shares this task's process calls it directly and is not listed
  ``resources``     per device, every resource with a ``size()`` (queues, accumulators):
                    [device, container, name, kind, size]
  ``inflight``      per live step: {step, age (seconds), parts_done, started (its run_graph
                    arrived), waits}; each wait is one of
                    {"kind": "recv", "key", "node", "device", "from_device", "since"} (a Recv
                    subscribed in the step's rendezvous and not yet given its value:
                    `Rendezvous.waiting`, which stamps each wait when it begins, one clock
                    read per Recv that has to wait) or
                    {"kind": <op>, "resource", "node", "device", "since"} (a blocked kernel's
                    `Wait` record, from the devices' ``resources.waits()``: queues,
                    accumulators, barriers). Every "since" is wall-clock seconds.

All values are msgpack-able (str, int, float, lists, dicts).
"""

from __future__ import annotations

import dataclasses
import os
import time
import weakref
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from scheduler.peer_watch import PeerAge, PeerWatch
from scheduler.remote_rendezvous import TaskKey
from scheduler.status_record import KeyInfo, ReportsStatus, TaskStatusRecord
from transport.rpc import RpcConfig

__all__ = ["KeyInfo", "TaskStatusRecord", "note_graph", "recv_keys", "peer_ages", "task_report"]


def _process_start() -> float:
    """This process's start (wall time): from /proc on Linux, else when this module loaded."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rpartition(")")[2].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_STARTED = _process_start()
_KEYS: weakref.WeakKeyDictionary[Any, dict[str, KeyInfo]] = weakref.WeakKeyDictionary()
_WATCHES: weakref.WeakKeyDictionary[Any, PeerWatch] = weakref.WeakKeyDictionary()


def note_graph(service: object, graph: Any) -> None:
    """Remember the Send/Recv nodes of a partition registered with `service`."""
    keys = _KEYS.setdefault(service, {})
    for node in graph.nodes:
        if node.op not in ("_Recv", "_Send"):
            continue
        key = str(node.attrs.get("key"))
        old = keys.get(key) or KeyInfo(None, None, None, None)
        if node.op == "_Recv":
            keys[key] = old._replace(recv_node=node.name,
                                     send_device=str(node.attrs.get("send_device") or ""),
                                     recv_device=str(node.attrs.get("recv_device") or ""))
        else:
            keys[key] = old._replace(send_node=node.name)


def recv_keys(service: object) -> Mapping[str, KeyInfo]:
    """The keys `note_graph` remembered for `service`."""
    return _KEYS.get(service) or {}


def peer_ages(service: object, me: TaskKey, cluster: Mapping[str, Mapping[int, str]],
              config: RpcConfig, nursery: Any, zctx: Any = None) -> dict[str, PeerAge]:
    """The heartbeat age of every other task of `service`'s cluster; the first call starts
    the service's `PeerWatch` in `nursery` (None: not serving, no ages)."""
    watch = _WATCHES.get(service)
    if watch is None:
        if nursery is None:
            return {}
        watch = _WATCHES[service] = PeerWatch(me, cluster, config, zctx)
        nursery.start_soon(watch.run)
    return watch.ages()


@runtime_checkable
class _Sized(Protocol):
    def size(self) -> int: ...


def _resource_rows(devices: Any) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    rows: list[list[Any]] = []
    waits: list[dict[str, Any]] = []
    for dev in devices:
        mgr = dev.resources
        for container, names in mgr.names().items():
            for name in names:
                r = mgr.lookup(container, name)
                if isinstance(r, _Sized):
                    try:
                        rows.append([dev.name, container, name, type(r).__name__, int(r.size())])
                    except Exception:  # noqa: BLE001 - a closed resource: report it as -1
                        rows.append([dev.name, container, name, type(r).__name__, -1])
        for w in mgr.waits():
            waits.append({"kind": str(w.op), "resource": str(w.resource),
                          "node": str(w.node), "device": str(w.device),
                          "step": int(w.step_id), "since": float(w.since)})
    return rows, waits


def task_report(service: ReportsStatus) -> dict[str, Any]:
    """The status fields of this task (see the module docstring)."""
    rec: TaskStatusRecord = service.status_record()
    keys = rec.recv_keys
    resources, kernel_waits = _resource_rows(rec.devices)
    now_t = _trio_now()
    inflight = []
    wall_now = time.time()
    to_wall = wall_now - time.monotonic()  # a `time.monotonic` stamp + this = wall time
    for st in list(rec.live_steps):
        step_id = st.step_id
        age = max(0.0, now_t - st.born) if now_t else 0.0
        waits: list[dict[str, Any]] = []
        for key, since in st.rdv.waiting():
            info = keys.get(key) or KeyInfo(None, None, None, None)
            waits.append({"kind": "recv", "key": key, "node": info.recv_node,
                          "device": info.recv_device or key.rpartition("->")[2],
                          "from_device": info.send_device,
                          "since": since + to_wall if since else wall_now - age})
        waits.extend(w for w in kernel_waits if w["step"] == step_id)
        inflight.append({"step": step_id, "age": age,
                         "parts_done": bool(st.parts_done), "started": st.ctx is not None,
                         "waits": waits})
    return {
        "uptime": time.time() - _STARTED,
        "incarnation": rec.incarnation,
        "pid": os.getpid(),
        "bytes": {"received": rec.bytes_received, "pushed": rec.bytes_pushed},
        "shm": {"pushed": rec.shm_pushed, "busy": rec.shm_busy},
        "peers": {name: {"age": p.age, "alive": p.alive} for name, p in rec.peers.items()},
        "clients": [dataclasses.asdict(c) for c in rec.clients],
        "resources": resources,
        "inflight": inflight,
    }


def _trio_now() -> float:
    import trio
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0
