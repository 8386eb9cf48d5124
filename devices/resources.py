"""Resources a device holds across steps: variables (and later queues, accumulators), kept in
named *containers* that outlive sessions until the container is reset.

A `ResourceVariable` stores one array, which it owns (`assign` copies anything that is a view
or read-only). A read (`snapshot`) returns a read-only *view* of it: no copy, and the view's
base is the value itself, so while anyone holds a snapshot (a consumer in a step, a fetched
result) the value's refcount shows it. Updates (`writable`) are in place *unless* someone still
holds the value, in which case they write a new buffer — so a snapshot never changes under its
holder. `sys.getrefcount` tells the two cases apart exactly. The buffer a shared update left
behind is kept as the variable's *spare* and written next time once its holders let go (a
tensor in flight to another task is held until libzmq has sent it, so a parameter server's
update after every read would otherwise allocate, and fault in, a fresh buffer each step).
(On a GPU the value itself is the snapshot; CuPy arrays have no read-only flag and are copied
to the host when fetched.)

State is owned by the device actor; kernels touch it only from the actor's task (or from a
worker thread the actor is awaiting), so there are no locks.

Versions and staleness (issue 17): every variable carries `version`, the number of writes it
has taken (assignments, in-place updates, scatters, fused applies: every path through
`assign`, `assign_copy`, `writable` and `update` advances it by one). A reader can take the
version with the value (`ReadVariableWithVersion`), and an update that carries the version
its sender read is given ``staleness = version now - version read`` on the variable's own
device (`VariableStaleness`), which also counts it in the variable's histogram (`StalenessStats`)
and, when recording is on, appends (task, step, read version, applied version, the sender's
incarnation) to its `update_log` (see `actorflow.train.replay`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from devices.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError

# Refcount of a value held only by a variable, seen from inside `writable`: the attribute, the
# local name, getrefcount's argument (and the cached read-only view `_ro`, when current). One
# more holder (a snapshot being consumed, a fetched result) means the value is shared and an
# update must copy first.
_SOLE_REFS = 3
_SPARE_REFS = 3  # the spare is free when only `_spare`, a local name and getrefcount's arg hold it
_SPARE_MAX_BYTES = 256 << 20  # bigger values are not double-buffered (memory over speed)


class ResourceVariable:
    """A mutable tensor living on a device. `value` is None until first assigned.

    Fields: `value` (the array, owned; replaced only through `assign`/`writable`/`update`),
    `_ro` (a read-only view of `value` that snapshots are cut from; stale once `value` is
    replaced, which `_ro.base is value` detects), `_spare` (the buffer a shared update left
    behind, reused once nothing else holds it; host arrays only).
    """

    __slots__ = ("name", "dtype", "shape", "value", "device", "_ro", "_spare",
                 "version", "staleness", "update_log", "_retired")

    def __init__(self, name: str, dtype: np.dtype, shape: tuple | None, device: str):
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.value: Any = None
        self.device = device
        self._ro: Any = None
        self._spare: np.ndarray | None = None
        self.version = 0  # writes taken so far (issue 17)
        self.staleness = StalenessStats()
        # None: not recording; else (task, step, read version, applied version, incarnation)
        self.update_log: list[tuple[int, int, int, int, int]] | None = None
        # id(buffer) -> the version whose write replaced it (see `version_of`)
        self._retired: dict[int, int] = {}

    def read(self) -> Any:
        value = self.value
        if value is None:
            raise FailedPreconditionError(
                f"attempting to use uninitialized variable '{self.name}'; run its initializer "
                f"first (af.global_variables_initializer())", device=self.device)
        return value

    def snapshot(self) -> Any:
        """A consistent read: a read-only view of the value (the value itself off the host)."""
        value = self.value
        ro = self._ro
        if ro is None or ro.base is not value:
            value = self.read()
            if type(value) is not np.ndarray:
                return value
            ro = value.view()
            ro.flags.writeable = False
            self._ro = ro
        return ro.view()

    def assign(self, new: Any) -> None:
        if self.shape is not None and tuple(new.shape) != tuple(self.shape) and \
                not _compatible(self.shape, new.shape):
            raise InvalidArgumentError(
                f"cannot assign a value of shape {tuple(new.shape)} to variable '{self.name}' "
                f"of shape {tuple(self.shape)}", device=self.device)
        if new.dtype != self.dtype:
            new = new.astype(self.dtype)
        elif isinstance(new, np.ndarray) and (new.base is not None or not new.flags.writeable):
            new = new.copy()  # own the memory: snapshots' refcounts land on this very array
        self.version += 1
        self._retire(self.value)
        self.value = new

    def _shared(self, value: Any) -> bool:
        ro = self._ro
        return sys.getrefcount(value) > _SOLE_REFS + 1 + (ro is not None and ro.base is value)

    def writable(self) -> Any:
        """The current value, safe to update in place: copied if anyone else holds it."""
        value = self.read()
        self.version += 1
        if self._shared(value):
            value = self._replace(value, None)
        return value

    def update(self, ufunc: Any, operand: Any) -> Any:
        """``value = ufunc(value, operand)``, in place when nobody else holds the value, else
        straight into another buffer (one pass, instead of a copy and then the update)."""
        value = self.read()
        self.version += 1
        if self._shared(value):
            return self._replace(value, (ufunc, operand))
        ufunc(value, operand, out=value)
        return value

    def _retire(self, old: Any) -> None:
        if old is not None:
            if len(self._retired) >= 64:
                self._retired.clear()
            self._retired[id(old)] = self.version

    def version_of(self, snap: Any) -> int:
        """The version a snapshot of this variable was taken at. A held snapshot pins its
        buffer (every write meanwhile went to another one), so it is the current version if
        the snapshot is of the current value, else the version before the write that retired
        its buffer (or, for a buffer retired long ago, the current version: a lower bound on
        what a later update's staleness then shows)."""
        base = snap.base if isinstance(snap, np.ndarray) and snap.base is not None else snap
        if base is self.value:
            return self.version
        retired = self._retired.get(id(base))
        return self.version if retired is None else retired - 1

    def _replace(self, old: Any, op: Any) -> Any:
        """A new buffer for the value: the spare when it is free, else a new one; `old` (which
        someone still holds) becomes the spare. Writes ``op`` of `old` into it, or a copy."""
        self._retire(old)
        if type(old) is not np.ndarray:  # on a GPU: no double-buffering
            new = old.copy() if op is None else op[0](old, op[1])
            self.value = new
            return new
        spare = self._spare
        self._spare = None
        if (spare is None or spare.shape != old.shape or spare.dtype != old.dtype
                or sys.getrefcount(spare) > _SPARE_REFS - 1):
            spare = np.empty_like(old)
        if op is None:
            np.copyto(spare, old)
        else:
            op[0](old, op[1], out=spare)
        self.value = spare
        self._ro = None
        if old.nbytes <= _SPARE_MAX_BYTES:
            self._spare = old
        return spare

    def assign_copy(self, new: Any, xp: Any = np) -> Any:
        """Store a copy of `new` in a buffer the variable owns (reusing the current buffer in
        place when nobody else holds it and the shape agrees); returns the stored value."""
        value = self.value
        if value is not None and value.shape == new.shape:
            ro = self._ro
            if sys.getrefcount(value) <= _SOLE_REFS + (ro is not None and ro.base is value):
                value[...] = new
                self.version += 1
                return value
        del value
        self.assign(xp.array(new, dtype=self.dtype, copy=True))
        return self.value


class StalenessStats:
    """Staleness counters of one variable: how many updates carried a read version, their
    sum and maximum, and a histogram (`hist[i]` counts staleness i; the last bucket counts
    everything >= its index)."""

    BUCKETS = 64
    __slots__ = ("count", "total", "max", "hist")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.max = 0
        self.hist = [0] * self.BUCKETS

    def add(self, staleness: int) -> None:
        self.count += 1
        self.total += staleness
        if staleness > self.max:
            self.max = staleness
        self.hist[min(max(staleness, 0), self.BUCKETS - 1)] += 1

    def as_dict(self) -> dict[str, Any]:
        last = max((i for i, n in enumerate(self.hist) if n), default=-1)
        return {"count": self.count, "mean": self.total / self.count if self.count else 0.0,
                "max": self.max, "hist": self.hist[:last + 1]}


def _compatible(want: tuple, got: tuple) -> bool:
    return len(want) == len(got) and all(
        w is None or w == g for w, g in zip(want, got, strict=True))


class ResourceMgr:
    """Containers of named resources on one device."""

    DEFAULT = ""

    def __init__(self, device: str):
        self.device = device
        self._containers: dict[str, dict[str, Any]] = {}
        # Bumped by every reset: kernels that cache a resource check it before reusing one.
        self.generation = 0

    def lookup_or_create(self, container: str, name: str, create: Callable[[], Any]) -> Any:
        c = self._containers.setdefault(container, {})
        r = c.get(name)
        if r is None:
            r = c[name] = create()
        return r

    def lookup(self, container: str, name: str) -> Any:
        try:
            return self._containers[container][name]
        except KeyError:
            raise NotFoundError(f"resource '{name}' not found in container "
                                f"'{container or '<default>'}'", device=self.device) from None

    def reset(self, container: str | None = None) -> list[str]:
        """Drop one container (or all); returns the names of the containers reset."""
        self.generation += 1
        if container is None:
            names = list(self._containers)
            self._containers.clear()
            return names
        return [container] if self._containers.pop(container, None) is not None else []

    def names(self) -> dict[str, list[str]]:
        return {c: sorted(r) for c, r in self._containers.items()}

    # research (issue 17): versions and staleness of every variable on this device
    def staleness(self) -> dict[str, dict[str, Any]]:
        """{variable name: its staleness counters (`StalenessStats.as_dict`) and version} for
        every variable that has taken an update carrying a read version."""
        out: dict[str, dict[str, Any]] = {}
        for c in list(self._containers.values()):
            for r in list(c.values()):
                if isinstance(r, ResourceVariable) and r.staleness.count:
                    out[r.name] = dict(r.staleness.as_dict(), version=r.version)
        return out

    # coordination (issue 15): what blocked kernels on this device wait for (hang doctor)
    def waits(self) -> list[Any]:
        """The `devices.waits.Wait` records of every blocked operation on this device's
        queues, accumulators, gates and iterators (a snapshot; oldest first per resource)."""
        out: list[Any] = []
        for c in list(self._containers.values()):
            for r in list(c.values()):
                w = getattr(r, "waits", None)
                if w is not None:
                    out.extend(w())
        return out
