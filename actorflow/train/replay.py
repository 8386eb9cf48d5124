"""Record and replay the order in which variables took their updates (issue 17).

Recording: a variable that records appends one row per update that went through
`af.train.staleness` (every update of an optimizer that `wants_staleness`):
(task, step, read version, applied version, incarnation), in the order its device applied
them; (task, incarnation) names the sender and its life (a restarted task has a new one). The log
lives with the variable on its device and is fetched with an op (`update_log`), so a cluster's
PS records with nothing new on the wire. `record(session, vars)` turns recording on,
`collect(session, vars)` fetches the rows, `save`/`load` keep them in a msgpack file (never
pickled): ``{"version": 2, "variables": {name: [[task, step, read, applied, incarnation],
...]}}`` (version 1 files, without the incarnation, load with incarnation -1).

Replay: `replay(log, read, apply)` runs a run's worker steps again in the recorded order. A
worker step is two halves: `read(task, step)` (read the variables and compute the update:
the same data as the original step, e.g. batches drawn by (task, step)) and
`apply(task, step, result)`. The driver does every read at the version it was read at in
the recording, and every apply at its recorded place, so a deterministic step function
reproduces the run's final parameters bit for bit. An update is (task, incarnation, step):
a restarted task may apply a step its earlier life applied too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack

from actorflow.graph import Tensor, colocate_with
from actorflow.op_def import apply_op
from devices.errors import InvalidArgumentError

__all__ = ["update_log", "record", "collect", "save", "load", "replay", "order"]

Row = tuple[int, int, int, int, int]  # task, step, read version, applied version, incarnation
FORMAT_VERSION = 2


def update_log(var: Any, enable: bool | None = None, name: str | None = None) -> Tensor:
    """int64 [n, 5] rows of `var`'s recorded updates; `enable` turns recording on or off."""
    from actorflow.train.staleness import _handle

    h = _handle(var, "update_log")
    attrs = {} if enable is None else {"enable": bool(enable)}
    with colocate_with(h.op):
        return apply_op("VariableUpdateLog", [h], attrs, name=name or "update_log")[0]


def record(session: Any, variables: Sequence[Any]) -> None:
    """Start recording the updates of `variables` (rows already recorded are kept)."""
    session.run([update_log(v, enable=True) for v in variables])


def collect(session: Any, variables: Sequence[Any]) -> dict[str, list[Row]]:
    """{variable name: its recorded rows}, oldest first."""
    rows = session.run([update_log(v) for v in variables])
    return {v.name: [tuple(int(x) for x in r) for r in rs]
            for v, rs in zip(variables, rows, strict=True)}


def save(path: str | Path, log: dict[str, list[Row]]) -> None:
    data = {"version": FORMAT_VERSION,
            "variables": {k: [list(r) for r in rows] for k, rows in log.items()}}
    Path(path).write_bytes(msgpack.packb(data, use_bin_type=True))


def load(path: str | Path) -> dict[str, list[Row]]:
    data = msgpack.unpackb(Path(path).read_bytes(), raw=False)
    if not isinstance(data, dict) or data.get("version") not in (1, FORMAT_VERSION):
        raise InvalidArgumentError(f"{path} is not an update log of format version "
                                   f"{FORMAT_VERSION}; record it with af.train.replay.save")
    pad = (-1,) if data["version"] == 1 else ()  # version 1: no incarnation recorded
    return {k: [(*r, *pad) for r in rows] for k, rows in data["variables"].items()}


def order(log: dict[str, list[Row]]) -> list[Row]:
    """The rows of the variables' common order (every variable of the run must agree on who
    read at which version and applied at which; one variable's rows, checked against the
    others)."""
    names = sorted(log)
    if not names:
        raise InvalidArgumentError("the update log is empty: was recording on (record())?")
    first = log[names[0]]
    for n in names[1:]:
        if [_key(r) for r in log[n]] != [_key(r) for r in first]:
            raise InvalidArgumentError(
                f"variables '{names[0]}' and '{n}' took updates in different orders; replay "
                f"one variable's order at a time")
    return list(first)


def _key(r: Row) -> tuple[int, int, int]:
    """An update's name: (task, incarnation, step)."""
    return (r[0], r[4], r[1])


def replay(log: dict[str, list[Row]] | list[Row], read: Callable[[int, int], Any],
           apply: Callable[[int, int, Any], None]) -> int:
    """Run the recorded steps again: each read when the variables are at the version it was
    read at, each apply in its recorded place. Returns the number of updates replayed."""
    rows = order(log) if isinstance(log, dict) else [(*r, -1)[:5] for r in log]
    rows.sort(key=lambda r: r[3])
    pending: dict[tuple[int, int, int], Any] = {}
    reads_at: dict[int, list[Row]] = {}
    for r in rows:
        reads_at.setdefault(r[2], []).append(r)
    if len({_key(r) for r in rows}) != len(rows):
        raise InvalidArgumentError("two recorded updates share a (task, incarnation, step): "
                                   "pass each update's step (read_step=) and task when "
                                   "recording")
    version = rows[0][3] - 1 if rows else 0
    for r in rows:
        task, step, _, applied, _inc = r
        if applied != version + 1:
            raise InvalidArgumentError(
                f"the log jumps from version {version} to {applied}: an update that was not "
                f"recorded (another writer) came between; record every writer's updates")
        for rr in reads_at.pop(version, []):
            pending[_key(rr)] = read(rr[0], rr[1])
        apply(task, step, pending.pop(_key(r)))
        version = applied
    return len(rows)
