"""Placing a replica's graph for parameter-server training: ``af.train.replica_device_setter``.

Design
------
`replica_device_setter(...)` returns a *device function* for ``af.device(...)``: called with
each new op, it returns the device the op should ask for.

- Ops whose type is in `ps_ops` (default: the variable-creating types, `STANDARD_PS_OPS`) go to
  ``{ps_device}/task:K``, with the task K chosen by `ps_strategy` (default
  `RoundRobinStrategy`: 0, 1, ..., n-1, 0, ...; or `GreedyLoadBalancingStrategy`: the least
  loaded task, the load of a variable being its byte size by default).
- Every other op goes to `worker_device` (e.g. ``/job:worker/task:3``).
- The ops that must live with a variable (its reads, assignments, scatters, optimizer slots and
  fused ``ResourceApply*`` updates) are built under ``colocate_with`` the variable's handle,
  which bypasses device functions: they follow the handle to its PS task. Its initial value is
  computed on the worker and sent once.
- Merging, as TensorFlow's: the device that the *enclosing* scopes already requested wins over
  the setter's choice field by field (``with af.device("/device:GPU:0")`` around the setter
  gives ``/job:worker/device:GPU:0``); if it names another job than the PS job, variables stay
  there too. A device requested *inside* the setter's scope overrides it (the graph merges
  inner requests last). With ``merge_devices=False`` an op whose enclosing scopes requested a
  device keeps exactly that request.

Between-graph replication, each trainer process building its own copy of the model:

    cluster = af.ClusterSpec({"ps": [...], "worker": [...]})
    setter = af.train.replica_device_setter(cluster=cluster,
                                            worker_device=f"/job:worker/task:{i}")
    with af.device(setter):
        model = build()         # variables on /job:ps/task:K, the math on this worker

State: a strategy object owns its counters (`RoundRobinStrategy._next`, the greedy loads);
a device function holds its strategy, so two `replica_device_setter` calls never share state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actorflow import graph as _graph
from actorflow.graph import Operation
from devices.device_spec import DeviceSpec
from devices.errors import InvalidArgumentError

# Op types that create state to be shared by every replica (TF's STANDARD_PS_OPS, with the
# resource variable's handle first: the only one actorflow builds today).
STANDARD_PS_OPS: tuple[str, ...] = (
    "VarHandleOp", "Variable", "VariableV2", "AutoReloadVariable",
    "MutableHashTable", "MutableHashTableV2", "MutableHashTableOfTensors",
    "MutableHashTableOfTensorsV2", "MutableDenseHashTable", "MutableDenseHashTableV2",
)

__all__ = ["replica_device_setter", "RoundRobinStrategy", "GreedyLoadBalancingStrategy",
           "byte_size_load_fn", "STANDARD_PS_OPS"]


class RoundRobinStrategy:
    """Tasks 0, 1, ..., num_tasks-1, 0, ... in the order ps ops are created."""

    def __init__(self, num_tasks: int):
        if int(num_tasks) < 1:
            raise InvalidArgumentError(f"RoundRobinStrategy needs num_tasks >= 1, got "
                                       f"{num_tasks}")
        self._num_tasks = int(num_tasks)
        self._next = 0  # the task the next ps op gets; advanced only by __call__

    def reset(self) -> None:
        self._next = 0

    def __call__(self, op: Operation) -> int:
        task = self._next
        self._next = (task + 1) % self._num_tasks
        return task


def byte_size_load_fn(op: Operation) -> int:
    """The load of a variable op: its value's byte size, from its static shape and dtype.

    Raises InvalidArgument when the shape is not fully known at build time.
    """
    shape = op.attrs.get("shape")
    dtype = op.attrs.get("dtype")
    if shape is None or any(d is None for d in shape):
        out = op.outputs[0] if op.outputs else None
        if out is not None and not out.dtype.is_resource and out._shape is not None \
                and all(d is not None for d in out._shape):
            shape, dtype = out._shape, dtype or out.dtype
    if dtype is None or shape is None or any(d is None for d in shape):
        raise InvalidArgumentError(
            f"byte_size_load_fn: the size of variable '{op.name}' ({op.type}, shape "
            f"{_fmt_shape(shape)}) is not known when the graph is built; give it a fully "
            f"defined shape, pass another load_fn, or use RoundRobinStrategy")
    n = 1
    for d in shape:
        n *= int(d)
    return n * dtype.size


def _fmt_shape(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "<unknown rank>"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


class GreedyLoadBalancingStrategy:
    """Each ps op goes to the task with the least load so far (the lowest index on ties); its
    own load (`load_fn(op)`, default its byte size) is then added to that task's.

    Size-balanced placement: after a big variable takes a task, the smaller ones fill the
    others first. The load is a heuristic (a variable's size, not its traffic).
    """

    def __init__(self, num_tasks: int, load_fn: Callable[[Operation], float] = byte_size_load_fn):
        if int(num_tasks) < 1:
            raise InvalidArgumentError(f"GreedyLoadBalancingStrategy needs num_tasks >= 1, got "
                                       f"{num_tasks}")
        self._num_tasks = int(num_tasks)
        self._load_fn = load_fn
        self._loads = [0.0] * self._num_tasks  # per task: the summed load of ops placed there

    @property
    def loads(self) -> tuple[float, ...]:
        return tuple(self._loads)

    def reset(self) -> None:
        self._loads = [0.0] * self._num_tasks

    def __call__(self, op: Operation) -> int:
        task = min(range(self._num_tasks), key=self._loads.__getitem__)
        self._loads[task] += self._load_fn(op)
        return task


def _num_ps_tasks(cluster: Any, ps_job: str | None) -> int | None:
    """Tasks of job `ps_job` in `cluster` (a ClusterSpec, a dict of job -> addresses, or an
    object with `cluster_spec`, such as a LocalCluster); None if the job is absent."""
    spec = getattr(cluster, "cluster_spec", cluster)
    if hasattr(spec, "as_dict"):
        spec = spec.as_dict()
    if not isinstance(spec, dict):
        raise InvalidArgumentError(
            f"replica_device_setter: cluster must be an af.ClusterSpec or a dict of job name -> "
            f"task addresses, not {type(cluster).__name__}")
    tasks = spec.get(ps_job) if ps_job else None
    if not tasks:
        return None
    return len(tasks)


def replica_device_setter(ps_tasks: int = 0, ps_device: str = "/job:ps",
                          worker_device: str = "/job:worker", merge_devices: bool = True,
                          cluster: Any = None, ps_ops: Sequence[str] | None = None,
                          ps_strategy: Callable[[Operation], int] | None = None
                          ) -> Callable[[Operation], str] | None:
    """A device function placing variables on the PS tasks and everything else on the worker.

    `cluster` (ClusterSpec, dict or LocalCluster) sets `ps_tasks` to the number of tasks of the
    PS job named by `ps_device`; with no PS task (none in the cluster, or ``ps_tasks=0``) this
    returns None, which ``af.device(None)`` treats as "no device requests", as TensorFlow.
    `ps_strategy(op) -> task index` picks the task of each variable (default round-robin).
    """
    if cluster is not None:
        ps_job = DeviceSpec.parse(ps_device).job if ps_device else None
        n = _num_ps_tasks(cluster, ps_job)
        if n is None:
            return None
        ps_tasks = n
    if int(ps_tasks) < 0:
        raise InvalidArgumentError(f"replica_device_setter: ps_tasks must be >= 0, got "
                                   f"{ps_tasks}")
    if ps_tasks == 0:
        return None
    if ps_ops is None:
        ps_ops = STANDARD_PS_OPS
    if ps_strategy is None:
        ps_strategy = RoundRobinStrategy(ps_tasks)
    if not callable(ps_strategy):
        raise InvalidArgumentError("replica_device_setter: ps_strategy must be a callable "
                                   "op -> task index (e.g. af.train.RoundRobinStrategy(n))")
    return _ReplicaDeviceChooser(int(ps_tasks), ps_device, worker_device, merge_devices,
                                 frozenset(ps_ops), ps_strategy)


class _ReplicaDeviceChooser:
    """The device function `replica_device_setter` returns. Fields are set once."""

    def __init__(self, ps_tasks: int, ps_device: str, worker_device: str, merge_devices: bool,
                 ps_ops: frozenset[str], ps_strategy: Callable[[Operation], int]):
        self._ps_tasks = ps_tasks
        self._ps_device = DeviceSpec.parse(ps_device or "")
        self._worker_device = DeviceSpec.parse(worker_device or "")
        self._merge_devices = merge_devices
        self._ps_ops = ps_ops
        self._ps_strategy = ps_strategy

    def __repr__(self) -> str:
        return (f"replica_device_setter(ps_tasks={self._ps_tasks}, ps_device="
                f"'{self._ps_device}', worker_device='{self._worker_device}')")

    def __call__(self, op: Operation) -> str:
        current = self._current_request(op)
        if not self._merge_devices and current.to_string():
            return ""  # keep the enclosing request as it is
        if self._ps_device.to_string() and op.type in self._ps_ops:
            ps = self._ps_device
            if ps.job is not None and (current.job is None or current.job == ps.job):
                task = int(self._ps_strategy(op))
                if not 0 <= task < self._ps_tasks:
                    raise InvalidArgumentError(
                        f"replica_device_setter: the ps strategy gave task {task} for "
                        f"'{op.name}', but there are {self._ps_tasks} ps tasks")
                ps = DeviceSpec(ps.job, ps.replica, task, ps.device_type, ps.device_index)
            return ps.merge(current).to_string()
        return self._worker_device.merge(current).to_string()

    def _current_request(self, op: Operation) -> DeviceSpec:
        """What the scopes enclosing this setter already request for `op` (TF's `op.device`
        when device functions run): the device strings outside this function, merged."""
        if op.device:
            return DeviceSpec.parse(op.device)
        spec = DeviceSpec()
        for d in _graph._scopes.get().devices:
            if d is self:
                break
            if isinstance(d, str) and d:
                spec = spec.merge(DeviceSpec.parse(d))
        return spec
