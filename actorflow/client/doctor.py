"""The hang doctor: why is a step stuck? What ``actorflow doctor`` prints.

It asks every task for its state (`cluster_status`: each live step's waits, read from the
rendezvous where every waiting Recv is subscribed, and from resources' `Wait` records for
blocked kernels such as dequeues), builds the wait-for graph of every step in flight, and
follows it to what nothing else explains, which it names in one line:

- a Recv waiting on a task that does not answer: **that task is dead, hung or unreachable**
  (with how long ago the other tasks' heartbeats last heard from it);
- a Recv waiting on a task that started after the step began: **it restarted** (its part of
  the step is gone);
- a Recv waiting on a task that has no such step: **the sender never ran it** (its partition
  was pruned from the step, or its run_graph never arrived);
- a Recv waiting on a task whose part of the step is itself waiting: followed there;
- a kernel blocked on a queue or accumulator: **nothing in flight fills it** (a dequeue on an
  empty queue), naming the resource and its size;
- a take_grad or a sync gate's wait_for_step (`SyncReplicasOptimizer`) short of gradients:
  **a worker never joined this sync step**, with how many sessions' masters the task hears
  from and how long since the idlest one last asked it anything (`TaskStatus.masters`);
- a Recv whose sender's step is running and waits on nothing: **the sender is still
  computing** (slow, not stuck).

    d = diagnose("af://127.0.0.1:2222")
    print(d.report())          # d.steps[i].cause, d.steps[i].edges
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import trio

from actorflow.client.cluster_status import ClusterStatus, TaskStatus, acluster_status
from devices.device_spec import DeviceSpec
from transport.rpc import RpcConfig


@dataclass
class WaitEdge:
    """One wait: `node` on `task` waits (since `since`, wall time: when this wait began, which
    may be well after its step began) on `on` (a task or a resource)."""

    task: str
    node: str | None
    kind: str          # "recv", "dequeue", "enqueue", "take_grad", ...
    on: str            # the task a Recv waits on, or the resource a kernel waits on
    what: str          # the rendezvous key, or the resource's description
    since: float

    def line(self, now: float) -> str:
        age = f"{now - self.since:.1f}s" if self.since else "?"
        node = self.node or "?"
        return f"{self.task}  {node} ({self.kind} {self.what!r}) waits on {self.on} for {age}"


@dataclass
class StepDiagnosis:
    step: int
    tasks: list[str]
    edges: list[WaitEdge] = field(default_factory=list)
    cause: str = ""
    culprit_task: str | None = None
    culprit_node: str | None = None
    age: float = 0.0   # seconds since the step began on the first of its tasks


@dataclass
class Diagnosis:
    status: ClusterStatus
    steps: list[StepDiagnosis]
    down: list[str]

    def report(self) -> str:
        now = time.time()
        lines = []
        for t in self.down:
            lines.append(f"task {t} does not answer")
        if not self.steps:
            lines.append("no step is in flight on any task that answered")
        for s in self.steps:
            lines.append(f"step {s.step} (on {', '.join(s.tasks)}; begun {s.age:.1f}s ago):")
            lines.extend("  " + e.line(now) for e in s.edges)
            lines.append(f"  cause: {s.cause}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"down": self.down, "steps": [
            {"step": s.step, "tasks": s.tasks, "age": s.age, "cause": s.cause,
             "culprit_task": s.culprit_task, "culprit_node": s.culprit_node,
             "edges": [vars(e) for e in s.edges]} for s in self.steps]}


def _task_of_device(device: str | None) -> str | None:
    if not device:
        return None
    try:
        spec = DeviceSpec.parse(device)
    except Exception:  # noqa: BLE001 - an unparsable name: no task to follow
        return None
    if spec.job is None or spec.task is None:
        return None
    return f"/job:{spec.job}/replica:0/task:{spec.task}"


_SYNC_WAITS = ("take_grad", "wait_for_step")  # the chief's aggregation and a replica's gate


def _masters_of(task: TaskStatus | None) -> str:
    """'; it hears from N masters, the idlest last asked 12.3s ago' (empty when unknown)."""
    if task is None:
        return ""
    live = [m for m in task.masters() if m.get("alive")]
    idle = [m["asked"] for m in live if m.get("asked") is not None]
    return (f"; {task.name} hears from {len(live)} session master(s)"
            + (f", the idlest last asked it {max(idle):.1f}s ago" if idle else ""))


def _explain(step: int, by_task: dict[str, TaskStatus], down: set[str]) -> StepDiagnosis:
    entries = {name: next(e for e in t.inflight if e["step"] == step)
               for name, t in by_task.items() if any(e["step"] == step for e in t.inflight)}
    d = StepDiagnosis(step, sorted(entries),
                      age=max((float(e.get("age") or 0.0) for e in entries.values()), default=0.0))
    for name, e in sorted(entries.items()):
        for w in e["waits"]:
            if w["kind"] == "recv":
                on = _task_of_device(w.get("from_device")) or "?"
                d.edges.append(WaitEdge(name, w.get("node"), "recv", on, w["key"],
                                        w.get("since") or 0.0))
            else:
                d.edges.append(WaitEdge(name, w.get("node"), w["kind"],
                                        str(w.get("device")), str(w.get("resource")),
                                        w.get("since") or 0.0))
    # Follow Recv edges from task to task until something is not explained by another wait.
    seen: set[str] = set()
    todo = [e for e in d.edges if e.kind == "recv"] or list(d.edges)
    while todo:
        e = todo.pop(0)
        if e.kind in _SYNC_WAITS:
            d.cause = (f"{e.kind} by node '{e.node}' on {e.task} waits on {e.what}: a worker "
                       f"never joined this sync step (fewer gradients arrived than it "
                       f"aggregates; step {step}){_masters_of(by_task.get(e.task))}. Check "
                       f"that every replica runs and reaches its train_op")
            d.culprit_task, d.culprit_node = e.task, e.node
            return d
        if e.kind != "recv":
            d.cause = (f"{e.kind} by node '{e.node}' on {e.task} waits on {e.what}, which "
                       f"nothing in flight fills (step {step})")
            d.culprit_task, d.culprit_node = e.task, e.node
            return d
        src = e.on
        if src in seen:
            continue
        seen.add(src)
        if src in down:
            heard = [p["age"] for t in by_task.values() for peer, p in t.peers.items()
                     if peer == src and p.get("age") is not None]
            last = (f"; its peers last heard from it {min(heard):.1f}s ago" if heard else "")
            d.cause = (f"task {src} does not answer (dead, hung or unreachable): node "
                       f"'{e.node}' on {e.task} waits for tensor '{e.what}' from it "
                       f"(step {step}){last}")
            d.culprit_task, d.culprit_node = src, e.node
            return d
        sender = by_task.get(src)
        if sender is None:
            d.cause = (f"node '{e.node}' on {e.task} waits for '{e.what}' from {src}, which "
                       f"is not in the cluster this tool was given")
            d.culprit_task, d.culprit_node = src, e.node
            return d
        mine = entries.get(src)
        if mine is None:
            if sender.uptime is not None and e.since and time.time() - sender.uptime > e.since:
                d.cause = (f"task {src} restarted after step {step} began (up "
                           f"{sender.uptime:.1f}s): node '{e.node}' on {e.task} waits for "
                           f"'{e.what}' its predecessor was to send")
            else:
                d.cause = (f"the sender {src} has no step {step}: node '{e.node}' on {e.task} "
                           f"waits for '{e.what}', whose Send was pruned from the step or "
                           f"whose run_graph never reached {src}")
            d.culprit_task, d.culprit_node = src, e.node
            return d
        upstream = [x for x in d.edges if x.task == src]
        if not upstream:
            d.cause = (f"{src} is still computing its part of step {step} (no wait recorded "
                       f"there): node '{e.node}' on {e.task} waits for '{e.what}' (slow, not "
                       f"stuck?)")
            d.culprit_task, d.culprit_node = src, e.node
            return d
        todo = upstream + todo
    if d.edges:
        e = d.edges[0]
        d.cause = f"a cycle of Recvs: {e.task} and the tasks it waits on wait on each other"
    else:
        d.cause = "no wait is recorded; the step is running (or finishing) on " + \
            ", ".join(d.tasks)
    return d


async def adiagnose(target: Any, timeout: float = 3.0,
                    config: RpcConfig | None = None) -> Diagnosis:
    """`diagnose` in a trio program."""
    status = await acluster_status(target, timeout, config)
    by_task = {t.name: t for t in status.tasks if t.error is None}
    down = {t.name for t in status.tasks if t.error is not None}
    steps = sorted({e["step"] for t in by_task.values() for e in t.inflight})
    return Diagnosis(status, [_explain(s, by_task, down) for s in steps], sorted(down))


def diagnose(target: Any, timeout: float = 3.0, config: RpcConfig | None = None) -> Diagnosis:
    """Every step in flight on the cluster at `target`, as a wait-for graph with its likely
    cause (see the module docstring)."""
    return trio.run(adiagnose, target, timeout, config)
