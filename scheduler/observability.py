"""What a task tells `actorflow status` and `actorflow doctor` about itself.

What it owns: two functions the worker service calls, and one small map per service.

- `note_graph(service, graph)`: at ``register_graph``, remember each ``_Recv`` of the
  partition by its rendezvous key (node name, send and receive device) and each ``_Send``
  (node name), in ``service._obs_keys`` (key -> `KeyInfo`). Written by the service's trio
  thread only; grows with the registered partitions (a few names per cross-device edge).
- `task_report(service)`: the fields added to the ``status`` reply. Every one is read from
  state the runtime keeps anyway (nothing is recorded per step for it), so it costs nothing
  while nobody asks:

  ``uptime``        seconds since this process started
  ``incarnation``   the task's incarnation id, when the service has one (else None)
  ``pid``           the daemon's process id
  ``bytes``         {"received": tensors delivered here from other tasks, "pushed": tensors
                    pushed to other tasks} (cumulative bytes)
  ``shm``           {"pushed": tensors sent through shared memory, "busy": segments in use}
  ``resources``     per device, every resource with a ``size()`` (queues, accumulators):
                    [device, container, name, kind, size]
  ``inflight``      per live step: {step, age (seconds), parts_done, started (its run_graph
                    arrived), waits}; each wait is one of
                    {"kind": "recv", "key", "node", "device", "from_device", "since"} (a Recv
                    subscribed in the step's rendezvous and not yet given its value: the
                    rendezvous's own waiter map, read here; "since" is when the step began on
                    this task, an upper bound: stamping each Recv would cost a clock read on
                    every waiting Recv, 0.4 us on the VMs measured) or
                    {"kind": <op>, "resource", "node", "device", "since"} (a blocked kernel's
                    `Wait` record, from resources that list ``waits()``: queues,
                    accumulators).

All values are msgpack-able (str, int, float, lists, dicts).
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple


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


class KeyInfo(NamedTuple):
    recv_node: str | None
    send_device: str | None
    recv_device: str | None
    send_node: str | None


def note_graph(service: Any, graph: Any) -> None:
    """Remember the Send/Recv nodes of a partition registered with `service`."""
    keys: dict[str, KeyInfo] = service.__dict__.setdefault("_obs_keys", {})
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


def _resource_rows(service: Any) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    rows: list[list[Any]] = []
    waits: list[dict[str, Any]] = []
    for dev in service.devices:
        containers = getattr(dev.resources, "_containers", {})
        for container, items in list(containers.items()):
            for name, r in list(items.items()):
                size = getattr(r, "size", None)
                if callable(size):
                    try:
                        rows.append([dev.name, container, name, type(r).__name__, int(size())])
                    except Exception:  # noqa: BLE001 - a closed resource: report it as -1
                        rows.append([dev.name, container, name, type(r).__name__, -1])
                list_waits = getattr(r, "waits", None)
                if callable(list_waits):
                    for w in list_waits():
                        waits.append({"kind": str(w.op), "resource": str(w.resource),
                                      "node": str(w.node), "device": str(w.device),
                                      "step": int(w.step_id), "since": float(w.since)})
    return rows, waits


def task_report(service: Any) -> dict[str, Any]:
    """The status fields of this task (see the module docstring)."""
    keys: dict[str, KeyInfo] = service.__dict__.get("_obs_keys", {})
    table = service._table
    out = service._outbox
    pools = [c.pool for c in out._channels.values() if c.pool is not None] if out else []
    resources, kernel_waits = _resource_rows(service)
    now_t = _trio_now()
    inflight = []
    wall_now = time.time()
    for step_id, st in list(table._live.items()):
        rdv = st.rdv
        age = max(0.0, now_t - st.born) if now_t else 0.0
        waits: list[dict[str, Any]] = []
        for key in list(rdv._waiters):
            info = keys.get(key) or KeyInfo(None, None, None, None)
            waits.append({"kind": "recv", "key": key, "node": info.recv_node,
                          "device": info.recv_device or key.rpartition("->")[2],
                          "from_device": info.send_device, "since": wall_now - age})
        waits.extend(w for w in kernel_waits if w["step"] == step_id)
        inflight.append({"step": step_id, "age": age,
                         "parts_done": bool(st.parts_done), "started": st.ctx is not None,
                         "waits": waits})
    return {
        "uptime": time.time() - _STARTED,
        "incarnation": _incarnation(service),
        "pid": os.getpid(),
        "bytes": {"received": int(getattr(service, "bytes_received", 0)),
                  "pushed": int(getattr(out, "pushed_bytes", 0)) if out else 0},
        "shm": {"pushed": sum(p.puts for p in pools), "busy": sum(p.busy for p in pools)},
        "resources": resources,
        "inflight": inflight,
    }


def _incarnation(service: Any) -> Any:
    inc = getattr(service, "incarnation", None)
    if inc is None:
        inc = getattr(service.config, "incarnation", None)
    if inc is None or isinstance(inc, int | str):
        return inc
    return str(inc)


def _trio_now() -> float:
    import trio
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0
