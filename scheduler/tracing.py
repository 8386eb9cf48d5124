"""Step traces (``RunOptions(trace_level=FULL_TRACE)``): what the executor records per node.

The executor's only tracing code is, where a node finishes and ``ctx.trace`` is not None (one
branch on a per-step field; nothing at all happens when tracing is off)::

    trace.append(tracing.node_record(exe.names[i], device, t0, clock(), exe.ops[i], outs))

A record is a tuple, msgpack-able so a worker can send it back with its ``run_graph`` reply:

    (node, device, start, end, op, outputs, pool_bytes, thread)

- ``start``/``end``: ``time.perf_counter()`` of this process; `to_wall` shifts a task's records
  onto the wall clock before they leave it, so records from every task line up (on one host
  exactly; across hosts as far as their clocks agree).
- ``outputs``: one ``(dtype, shape, nbytes)`` per output (``(None, (), 0)`` for a dead value),
  the dtype a NumPy dtype object until `outputs` / `to_wall` name it (naming costs more than
  the rest of the record).
- ``pool_bytes``: the device pool's bytes in use when the node finished (a memory counter).
- ``thread``: the id of the OS thread that ran the kernel (the device's loop or a worker).

Every node traces this full record, the control-flow primitives and the nodes inside
while/cond frames included (the executor's frame paths, `scheduler.frame_ops`, and its fused
simple loops call `node_record` too). Older 4-tuples ``(node, device, start, end)`` are still
accepted by every consumer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

_get_ident = threading.get_ident
_ndarray = np.ndarray
_NAMES: dict[Any, str] = {}


def dtype_name(dt: Any) -> str:
    """A dtype's name ("string" for object arrays), cached: NumPy computes names in Python."""
    name = _NAMES.get(dt)
    if name is None:
        name = getattr(dt, "name", str(dt)) if dt is not None else ""
        name = _NAMES[dt] = "string" if name == "object" else name
    return name


def _describe(v: Any) -> tuple:
    if type(v) is _ndarray:
        return (v.dtype, v.shape, v.nbytes)
    shape = getattr(v, "shape", None)  # a CuPy array, a NumPy scalar; None for a dead value
    if shape is None:
        return (None, (), 0)
    return (getattr(v, "dtype", None), tuple(shape), int(getattr(v, "nbytes", 0)))


def node_record(name: str, device: Any, start: float, end: float, op: str,
                outs: Any) -> tuple:
    """The trace record of one executed node (see the module docstring). Outputs are kept
    as (dtype object, shape, nbytes) until `outputs` names them."""
    return (name, device.name, start, end, op,
            tuple([_describe(v) for v in outs]) if outs else (),
            device.pool._in_use, _get_ident())


def outputs(rec: tuple) -> tuple:
    """A record's outputs as ((dtype name, shape tuple, nbytes), ...)."""
    return tuple((dtype_name(d), tuple(int(x) for x in s), int(n)) for d, s, n in rec[5]) \
        if len(rec) > 5 else ()


def to_wall(trace: list) -> list[list[Any]]:
    """This process's records with start and end moved onto the wall clock and outputs named
    (msgpack-able, for the wire)."""
    shift = time.time() - time.perf_counter()
    return [[t[0], t[1], t[2] + shift, t[3] + shift, t[4],
             [list(o) for o in outputs(t)], *t[6:]] if len(t) > 5 else
            [t[0], t[1], t[2] + shift, t[3] + shift] for t in trace]
