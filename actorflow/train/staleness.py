"""Staleness as a value (issue 17): read a variable with its version, and give an update the
staleness it is applied at, as tensors of graph code.

Every variable on a device counts the writes it has taken (`version`, see
`devices.resources`). A worker reads a variable together with its version; the update it sends
back carries that read version, and the variable's own device computes

    staleness = version when the update is applied - version read

so the value is right across tasks with nothing new on the wire (the read version is an
ordinary int64 scalar tensor sent with the gradient). `version_of_read(w, w.value())` gives
the version an existing read in the step was taken at, exactly (a held snapshot pins its
buffer: `ResourceVariable.version_of`); `minimize` uses it.

    w_read, ver = af.train.read_with_version(w)      # one kernel: value and version together
    loss = model(w_read)
    g, = af.gradients(loss, [w_read])
    s = af.train.staleness(w, ver, after=g)          # int64 scalar, on w's device, once g is
    apply = w.assign_sub(lr / (1.0 + af.cast(s, af.float32)) * g)   # control on s: see below

`staleness` also counts the update in the variable's counters (`staleness_stats(w)`:
int64 [count, sum, max, version, histogram...], fetchable from any task, or
`staleness_statistics(session)` for a session's in-process devices), and logs
(task, step, read version, applied version, incarnation) when the variable records
(`actorflow.train.replay`). The apply must run after the staleness op (make the update
depend on `s`, as the optimizers do), and the op must wait for the update's gradient
(`after=g`, as the optimizers pass): otherwise it runs as soon as the read version arrives,
before the worker has computed, and misses the updates that land meanwhile. The two are
then adjacent kernels of one step on the variable's device; should another step's update run
between them, it is counted in the next update's staleness and the log shows two updates at
one applied version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Operation, Tensor, colocate_with, control_dependencies
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import core_ops, state_ops
from actorflow.variables import Variable
from devices import dtypes
from devices.errors import InvalidArgumentError
from devices.resources import StalenessStats

__all__ = ["read_with_version", "variable_version", "version_of_read", "staleness",
           "task_incarnation",
           "staleness_stats", "staleness_statistics", "HIST_OFFSET"]

HIST_OFFSET = 4  # staleness_stats: [count, sum, max, version, hist[0], hist[1], ...]


def _read_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(dtypes.as_dtype(attrs["dtype"]), state_ops._var_shape(ins[0])), (dtypes.int64, ())]


define_op("VariableVersion", infer=lambda i, a: [(dtypes.int64, ())], stateful=True)
define_op("ReadVariableWithVersion", infer=_read_infer, stateful=True)
define_op("SnapshotVersion", infer=lambda i, a: [(dtypes.int64, ())], stateful=True)
define_op("VariableStaleness", infer=lambda i, a: [(dtypes.int64, ())], stateful=True)
define_op("StalenessStats", infer=lambda i, a: [
    (dtypes.int64, (HIST_OFFSET + StalenessStats.BUCKETS,))], stateful=True)
define_op("VariableUpdateLog", infer=lambda i, a: [(dtypes.int64, (None, 5))], stateful=True)
define_op("TaskIncarnation", infer=lambda i, a: [(dtypes.int64, ())], stateful=True)
for _op in ("VariableVersion", "SnapshotVersion", "VariableStaleness", "StalenessStats",
            "VariableUpdateLog", "TaskIncarnation"):
    no_gradient(_op)


@register_gradient("ReadVariableWithVersion")
def _read_grad(op: Operation, grad: Any, _version_grad: Any = None) -> list[Any]:
    return [grad]


def _handle(var: Any, what: str) -> Tensor:
    if isinstance(var, Variable):
        return var.handle
    if isinstance(var, Tensor) and var.dtype is dtypes.resource:
        return var
    raise InvalidArgumentError(f"{what}: expected an af.Variable (or its handle), got {var!r}")


def read_with_version(var: Any, name: str | None = None) -> tuple[Tensor, Tensor]:
    """(value, version): a snapshot of `var` and the int64 version it is at, read together.
    Gradients flow through the value to the variable, as through a plain read."""
    h = _handle(var, "read_with_version")
    with colocate_with(h.op):
        value, ver = apply_op("ReadVariableWithVersion", [h],
                              {"dtype": state_ops.var_dtype(h)},
                              name=name or "read_with_version")
    return value, ver


def variable_version(var: Any, name: str | None = None) -> Tensor:
    """The int64 number of writes `var` has taken, read on its device."""
    h = _handle(var, "variable_version")
    with colocate_with(h.op):
        return apply_op("VariableVersion", [h], {}, name=name or "version")[0]


def version_of_read(var: Any, value: Any, name: str | None = None) -> Tensor:
    """The version at which `value` (a read of `var` in this step, e.g. ``var.value()``) was
    read: exact even when other steps' updates land between the read and this op."""
    h = _handle(var, "version_of_read")
    with colocate_with(h.op):
        return apply_op("SnapshotVersion", [h, convert_to_tensor(value)], {},
                        name=name or "version_of_read")[0]


def task_incarnation(name: str | None = None) -> Tensor:
    """int64: the incarnation (this life) of the task the op is placed on: the worker
    service's id as `actorflow status` shows it (as int64 bits), or, in an in-process session,
    the process's. An update names its sender by (task, incarnation): a restarted task's
    updates are told apart from those of its earlier life."""
    with colocate_with(None):  # on the sender, not on the variable it updates
        return apply_op("TaskIncarnation", [], {}, name=name or "task_incarnation")[0]


def staleness(var: Any, read_version: Any, step: Any = -1, task: Any = -1,
              incarnation: Any = None, name: str | None = None, after: Any = None) -> Tensor:
    """int64 staleness of an update to `var` read at `read_version`, computed on `var`'s
    device now (before the update lands). `task`, `step` and `incarnation` (int64 scalars or
    numbers; incarnation default: `task_incarnation()` of the sender, i.e. the device the
    caller's device scope places ops on) name the update in the variable's log when it
    records. `after` (the update's gradient: a tensor or `IndexedSlices`) makes the count
    wait for it, so it is taken when the update is ready to land: without it the op runs as
    soon as the read version and sender are there (on a PS, when the step's first message
    from the worker arrives, long before its gradient) and misses the updates that land
    while the worker computes. The optimizers pass it (no extra message: the gradient's own
    Recv on `var`'s device feeds an identity there that gates the count)."""
    h = _handle(var, "staleness")
    if after is not None:
        parts = [after.values, after.indices] if hasattr(after, "indices") else [after]
        # through an identity on var's device: a data edge (a fed placeholder's op must not
        # become a control input: it would be run, unfed)
        with colocate_with(h.op):
            deps = [core_ops.identity(t).op for t in parts if isinstance(t, Tensor)]
        if deps:
            with control_dependencies(deps):
                return staleness(var, read_version, step, task, incarnation, name)
    rv = convert_to_tensor(read_version, dtype=dtypes.int64)
    st = convert_to_tensor(step, dtype=dtypes.int64)
    tk = convert_to_tensor(task, dtype=dtypes.int64)
    inc = task_incarnation() if incarnation is None else \
        convert_to_tensor(incarnation, dtype=dtypes.int64)
    with colocate_with(h.op):
        return apply_op("VariableStaleness", [h, rv, st, tk, inc], {},
                        name=name or "staleness")[0]


def staleness_stats(var: Any, name: str | None = None) -> Tensor:
    """int64 [count, sum, max, version, hist[0..63]] of `var`'s staleness counters."""
    h = _handle(var, "staleness_stats")
    with colocate_with(h.op):
        return apply_op("StalenessStats", [h], {}, name=name or "staleness_stats")[0]


def decode_stats(row: np.ndarray) -> dict[str, Any]:
    """A fetched `staleness_stats` row as {count, mean, max, version, hist}."""
    count, total, mx, version = (int(x) for x in row[:HIST_OFFSET])
    hist = [int(x) for x in row[HIST_OFFSET:]]
    last = max((i for i, n in enumerate(hist) if n), default=-1)
    return {"count": count, "mean": total / count if count else 0.0, "max": mx,
            "version": version, "hist": hist[:last + 1]}


def staleness_statistics(session: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{device: {variable: counters}} for the devices of an in-process session (a cluster's
    variables: fetch `staleness_stats(var)` and `decode_stats` it)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for d in getattr(session, "devices", []):
        res = getattr(d, "resources", None)
        if res is not None:
            stats = res.staleness()
            if stats:
                out[d.name] = stats
    return out
