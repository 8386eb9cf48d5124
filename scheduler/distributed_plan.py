"""A step signature planned over a cluster: which partitions each task runs, and its share of
the feeds and fetches (the master's compile, `scheduler.distributed`).

    step = plan_step(graph_def, feeds=["x:0"], fetches=["y:0"], targets=["train"],
                     devices=devices, client_device=cpu0_of_target, task_of=task_of_device,
                     me=("worker", 0), config=RuntimeConfig())

Stages: expand group targets (a NoOp's control inputs become targets) -> prune -> rewrite ->
pin what asked for no device to the client's task -> place over every task's devices (feeds
and fetches on the client device) -> partition with Send/Recv -> group the partitions by task,
each as msgpack bytes for ``register_graph``.

A node (with its colocation group) that requests no device runs on the client's task, as
TensorFlow's default device does: the placer would otherwise spread independent work over
every idle device of the cluster, other workers' and parameter servers' included, which costs
network hops and couples clients that should be independent. ``af.device(...)`` places
anything anywhere.
Pure: no network, no trio; the plan is registered with the tasks on its first run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from devices.device_spec import DeviceSpec
from scheduler import partition as partition_mod
from scheduler import placer, prune, rewrite
from scheduler.config import RuntimeConfig
from scheduler.graphdef import GraphDef, NodeDef
from scheduler.remote_rendezvous import TaskKey, task_name


@dataclass(frozen=True)
class RemoteDevice:
    """A device of some task of the cluster, as the master sees it."""

    name: str
    device_type: str
    task: TaskKey


class Task:
    """One task of the cluster and the master's client to it (opened in `serve`)."""

    __slots__ = ("key", "address", "client", "devices", "incarnation")

    def __init__(self, key: TaskKey, address: str):
        self.key = key
        self.address = address
        self.client: Any = None  # an RpcClient, or the in-process stand-in
        self.devices: list[RemoteDevice] = []
        # The task's incarnation as the master last saw it (its ``status``); None once a
        # reply suggested it restarted, until a ``status`` says which life it is in now.
        # Written by the master's loop only.
        self.incarnation: int | None = None

    @property
    def name(self) -> str:
        return task_name(self.key)


class TaskPart:
    """What one task runs of one step signature: its partitions and its share of the feeds
    and fetches. `handles` and `incarnation` are written together by registration (the
    master's loop): the part is registered while ``incarnation == task.incarnation``."""

    __slots__ = ("task", "graphs", "args", "rets", "handles", "header", "early_sends",
                 "incarnation")

    def __init__(self, task: Task, graphs: list[tuple[str, bytes]], args: list[int],
                 rets: list[int]):
        self.task = task
        self.graphs = graphs
        self.args = args
        self.rets = rets
        self.handles: list[int] | None = None
        self.incarnation: int | None = None  # of the task, when `handles` were registered
        self.header: dict[str, Any] = {}
        # Tasks this part sends to before it waits for anything from another task (a Send
        # with no Recv upstream, e.g. ids for a sharded lookup): run in-process, those tensors
        # can ride on the tasks' run_graph requests instead of a message each.
        self.early_sends: frozenset[TaskKey] = frozenset()


@dataclass
class DistributedStep:
    """One compiled step signature over the cluster; shared by every run of it."""

    tasks: tuple[TaskPart, ...]
    feeds: tuple[str, ...]
    fetches: tuple[str, ...]
    n_rets: int
    placement: dict[str, str]
    _registering: trio.Event | None = None  # set while a task of the master registers it

    @property
    def registered(self) -> bool:
        """Every part is registered with the life of its task that the master knows of."""
        for p in self.tasks:
            if p.incarnation is None or p.incarnation != p.task.incarnation:
                return False
        return True


def plan_step(graph: GraphDef, *, feeds: Sequence[str], fetches: Sequence[str],
              targets: Sequence[str], devices: Sequence[RemoteDevice], client_device: str,
              task_of: Mapping[str, Task], me: TaskKey | None, config: RuntimeConfig,
              by_name: dict[str, NodeDef] | None = None,
              log: Callable[[str], None] | None = None, cost_model: Any = None,
              default_task: str | None = None) -> DistributedStep:
    """Plan one step signature over `devices` (see the module docstring)."""
    cfg = config
    by_name = by_name if by_name is not None else graph.by_name()
    targets = expand_group_targets(targets, by_name)
    pruned = prune.prune(graph, list(feeds), list(fetches), targets, by_name)
    optimized = rewrite.optimize(pruned, cse=cfg.common_subexpression_elimination,
                                 fold=cfg.constant_folding)
    if default_task is not None:
        optimized = pin_unplaced(optimized, default_task)
    placement = placer.place(optimized, [d.name for d in devices],
                             allow_soft_placement=cfg.allow_soft_placement,
                             client_device=client_device, cost_model=cost_model,
                             log=log if cfg.log_device_placement else None)
    used = set(placement.values())
    if not used:
        parts: dict[str, GraphDef] = {}
    elif len(used) == 1:
        parts = {next(iter(used)): optimized}
    else:
        parts = partition_mod.partition(optimized, placement,
                                        schedule_recvs_alap=cfg.schedule_recvs_alap,
                                        lossy=cfg.lossy_transfers, cost_model=cost_model)
    by_task: dict[TaskKey, TaskPart] = {}
    for dev_name, g in parts.items():
        if not g.nodes:
            continue
        task = task_of[DeviceSpec.parse(dev_name).to_string()]
        part = by_task.get(task.key)
        if part is None:
            part = by_task[task.key] = TaskPart(task, [], [], [])
        part.graphs.append((dev_name, g.to_bytes()))
        part.early_sends |= _early_send_tasks(g, task.key)
        for node in g.nodes:
            if node.op == "_Arg":
                part.args.append(int(node.attrs["index"]))
            elif node.op == "_Retval":
                part.rets.append(int(node.attrs["index"]))
    for part in by_task.values():
        part.args.sort()
        part.rets.sort()
        part.header = {"step": 0, "graphs": [], "args": part.args, "n_args": len(feeds),
                       "rets": part.rets, "n_rets": len(fetches), "trace": False}
    # the target task first: it carries the feeds and fetches
    ordered = sorted(by_task.values(), key=lambda p: p.task.key != me)
    return DistributedStep(tuple(ordered), tuple(feeds), tuple(fetches), len(fetches),
                           placement)


def _early_send_tasks(g: GraphDef, me: TaskKey) -> frozenset[TaskKey]:
    """The other tasks that Sends of partition `g` reach with no Recv upstream of them."""
    consumers: dict[str, list[str]] = {}
    for node in g.nodes:
        for i in node.inputs:
            consumers.setdefault(i.lstrip("^").partition(":")[0], []).append(node.name)
    waiting = {node.name for node in g.nodes if node.op == "_Recv"}
    stack = list(waiting)
    while stack:  # everything downstream of a Recv waits for another task
        for c in consumers.get(stack.pop(), ()):
            if c not in waiting:
                waiting.add(c)
                stack.append(c)
    out = set()
    for node in g.nodes:
        if node.op == "_Send" and node.name not in waiting:
            spec = DeviceSpec.parse(str(node.attrs.get("recv_device", "")))
            if spec.job is not None and spec.task is not None and (spec.job, spec.task) != me:
                out.add((spec.job, spec.task))
    return frozenset(out)


def pin_unplaced(graph: GraphDef, device: str) -> GraphDef:
    """`graph` with `device` requested by every colocation group that requests none, except
    groups of sources (no inputs): the placer makes a constant where its consumers are, so an
    initial value is built on the parameter server that holds its variable."""
    by_name = {n.name: n for n in graph.nodes}
    pinned: set[str] = set()
    for group in placer.colocation_groups(graph):
        members = [by_name[m] for m in group]
        if not any(n.device or placer.is_feed_or_fetch(n) for n in members) and any(
                n.inputs for n in members):
            pinned.update(group)
    if not pinned:
        return graph
    return GraphDef([dataclasses.replace(n, device=device) if n.name in pinned else n
                     for n in graph.nodes], graph.version)


def expand_group_targets(targets: Sequence[str], by_name: dict) -> list[str]:
    """Targets with every NoOp (``af.group``) replaced by what it waits for, recursively.

    Running a NoOp only runs its control inputs, so the step may target those directly. This
    matters across tasks: a group of updates on two PS tasks, placed on the worker, would add
    a control Send/Recv from each PS back to the worker, one more network hop per step.
    """
    out: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(targets))
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = by_name.get(name)
        if node is not None and node.op == "NoOp" and all(
                i.startswith("^") for i in node.inputs):
            stack.extend(reversed([i[1:] for i in node.inputs]))
        else:
            out.append(name)
    return out
