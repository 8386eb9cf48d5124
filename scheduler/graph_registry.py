"""The partitions registered with one worker service, under the task's incarnation.

What it owns
------------
Every task draws a random 64-bit *incarnation* when its service starts (`new_incarnation`):
the id of this life of the task. ``status`` reports it and every ``register_graph`` and
``run_graph`` names the incarnation it is meant for (`check_incarnation`): a request for
another one (the task restarted since the master last saw it) is refused with AbortedError
naming the task, never served by whatever this life of the task registered. So does every
tensor another task pushes here (`refuse_tensor`: `StaleTensorError`, and nothing is kept).
Graph handles are random 63-bit ids drawn in this incarnation, so a handle from a previous
life names nothing here, and a handle of one client is never guessed by another.

State (owned by the worker service's trio thread):
  incarnation   fixed for the life of the registry
  stale_refused tensors refused because they named another incarnation
  _graphs       handle -> `RegisteredGraph`, least recently used first; at most
                ``max_graphs`` (the oldest dropped: a run naming it is refused with
                AbortedError, and the master registers it again)
  _handle_of    (device, sha256 of the GraphDef bytes) -> handle: the same bytes for the same
                device give the same handle (registration is idempotent)
  _expect       Recv key -> {wire dtype: count of registered partitions receiving it}: what a
                tensor pushed here for that key must be

    reg = GraphRegistry(("ps", 0), new_incarnation(), max_graphs=4096)
    handle = reg.register("/job:ps/replica:0/task:0/device:CPU:0", raw, compile_fn)
    graphs = reg.lookup([handle])             # AbortedError if one is not registered
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from devices import dtypes
from devices.errors import AbortedError, InvalidArgumentError, NotFoundError
from scheduler.graphdef import GraphDef
from scheduler.remote_rendezvous import TaskKey, task_name

U64 = (1 << 64) - 1


class StaleTensorError(AbortedError):
    """A tensor pushed for a previous life of this task: refused, and no step of it exists."""


def new_incarnation() -> int:
    """A fresh random incarnation id: 64 bits from the OS's CSPRNG, never 0."""
    return secrets.randbits(64) or 1


class RegisteredGraph:
    """A registered partition: its handle, compiled form, and what it reads and receives."""

    __slots__ = ("handle", "key", "exe", "args", "recv_keys")

    def __init__(self, handle: int, key: tuple[str, bytes], exe: Any,
                 args: frozenset[int], recv_keys: list[tuple[str, np.dtype]]):
        self.handle = handle
        self.key = key
        self.exe = exe
        self.args = args
        self.recv_keys = recv_keys


class GraphRegistry:
    """The registered partitions of one incarnation of a task (see the module docstring)."""

    def __init__(self, task: TaskKey, incarnation: int, *, max_graphs: int = 4096):
        self.task = task
        self.incarnation = incarnation
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[int, RegisteredGraph] = OrderedDict()
        self._handle_of: dict[tuple[str, bytes], int] = {}
        self._expect: dict[str, dict[np.dtype, int]] = {}
        self.stale_refused = 0

    def __len__(self) -> int:
        return len(self._graphs)

    def check_incarnation(self, header: dict, method: str) -> None:
        """Refuse a request meant for another incarnation of this task (it restarted)."""
        inc = header.get("incarnation")
        if type(inc) is not int or not 0 < inc <= U64:
            raise InvalidArgumentError(
                f"{method}: header field 'incarnation' must be the task's incarnation id (an "
                f"int in [1, 2**64-1], from its 'status'), got {str(inc)[:40]}")
        if inc != self.incarnation:
            raise AbortedError(
                f"{method}: task {task_name(self.task)} restarted: the request was meant for "
                f"its incarnation {inc:#018x}, it now runs incarnation {self.incarnation:#018x}"
                ", which has none of the old one's graphs or variables; register the graph "
                "again (a session does so by itself on its next step)")

    def refuse_tensor(self, header: dict, step_id: int, key: str) -> None:
        """Raise for a tensor pushed here (``push``/``deliver`` `header`) that does not name
        this incarnation: InvalidArgumentError when it names none, else StaleTensorError."""
        inc = header.get("incarnation")
        me = task_name(self.task)
        if type(inc) is not int or not 0 < inc <= U64:
            raise InvalidArgumentError(
                f"a tensor for '{key}' (step {step_id}): header field 'incarnation' must be the "
                f"incarnation of the receiving task {me} (an int in [1, 2**64-1]; the step's "
                f"run_graph names it in 'peers'), got {str(inc)[:40]}")
        self.stale_refused += 1
        raise StaleTensorError(
            f"a tensor for '{key}' (step {step_id}) was refused: task {me} restarted: it was "
            f"meant for its incarnation {inc:#018x}, it now runs incarnation "
            f"{self.incarnation:#018x}, which has none of the old one's steps, graphs or "
            "variables; nothing was kept. Run the step again (a session registers its graphs "
            "with the new life by itself on its next step)")

    def register(self, device: str, raw: bytes, compile_fn: Callable[[GraphDef], Any]) -> int:
        """The handle of partition `raw` on `device`, compiling and keeping it if it is new."""
        key = (device, hashlib.sha256(raw).digest())
        handle = self._handle_of.get(key)
        if handle is not None:
            self._graphs.move_to_end(handle)
            return handle
        graph = GraphDef.from_bytes(raw)
        exe = compile_fn(graph)
        args, recv_keys = set(), []
        for node in graph.nodes:
            if node.op == "_Arg":
                args.add(int(node.attrs["index"]))
            elif node.op == "_Recv":
                dt = dtypes.as_dtype(node.attrs.get("dtype") or node.out_dtypes[0])
                wire = np.dtype(np.uint16) if node.attrs.get("lossy") and dt.name == "float32" \
                    else np.dtype(dt.np)
                recv_keys.append((str(node.attrs["key"]), wire))
        handle = secrets.randbits(63) or 1
        while handle in self._graphs:
            handle = secrets.randbits(63) or 1
        self._graphs[handle] = RegisteredGraph(handle, key, exe, frozenset(args), recv_keys)
        self._handle_of[key] = handle
        for k, wire in recv_keys:
            counts = self._expect.setdefault(k, {})
            counts[wire] = counts.get(wire, 0) + 1
        while len(self._graphs) > self.max_graphs:
            self._drop(next(iter(self._graphs)))
        return handle

    def lookup(self, handles: Sequence[int]) -> list[RegisteredGraph]:
        """The graphs of `handles` (marked recently used); AbortedError names a missing one."""
        out = []
        for hd in handles:
            g = self._graphs.get(hd)
            if g is None:
                raise AbortedError(
                    f"graph handle {hd:#x} is not registered on {task_name(self.task)} "
                    f"(incarnation {self.incarnation:#018x}): it was dropped as least recently "
                    "used (max_graphs) or never registered here; register the graph again (a "
                    "session does so by itself on its next step)")
            self._graphs.move_to_end(hd)
            out.append(g)
        return out

    def expected(self, key: str) -> dict[np.dtype, int]:
        """The dtypes the Recvs registered here for `key` take (NotFound if there are none)."""
        expected = self._expect.get(key)
        if expected is None:
            raise NotFoundError(
                f"deliver: no partition registered on {task_name(self.task)} receives '{key}'")
        return expected

    def _drop(self, handle: int) -> None:
        g = self._graphs.pop(handle)
        del self._handle_of[g.key]
        for k, wire in g.recv_keys:
            counts = self._expect[k]
            counts[wire] -= 1
            if not counts[wire]:
                del counts[wire]
                if not counts:
                    del self._expect[k]
