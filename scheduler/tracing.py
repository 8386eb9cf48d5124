"""Step traces (``RunOptions(trace_level=FULL_TRACE)``): what the executor records per node.

The executor's only tracing code is, where a node finishes and ``ctx.trace`` is not None (one
branch on a per-step field; nothing at all happens when tracing is off)::

    trace.append(tracing.node_record(exe.names[i], device, t0, clock(), exe.ops[i], outs))

A record is a tuple, msgpack-able so a worker can send it back with its ``run_graph`` reply:

    (node, device, start, end, op, outputs, pool_bytes, thread)

- ``start``/``end``: ``time.perf_counter()`` of this process; `to_wall` shifts a task's records
  onto the wall clock before they leave it, so records from every task line up (on one host
  exactly; across hosts as far as their clocks agree).
- ``outputs``: one ``[dtype, shape, nbytes]`` per output (``["", [], 0]`` for a dead value).
- ``pool_bytes``: the device pool's bytes in use when the node finished (a memory counter).
- ``thread``: the id of the OS thread that ran the kernel (the device's loop or a worker).

Older 4-tuples ``(node, device, start, end)`` (control-flow frames trace those) are accepted by
every consumer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_get_ident = threading.get_ident


def _describe(v: Any) -> list[Any]:
    shape = getattr(v, "shape", None)
    if shape is None:
        return ["", [], 0]
    dt = getattr(v, "dtype", None)
    name = getattr(dt, "name", str(dt)) if dt is not None else ""
    if name == "object":
        name = "string"
    return [name, [int(d) for d in shape], int(getattr(v, "nbytes", 0))]


def node_record(name: str, device: Any, start: float, end: float, op: str,
                outs: Any) -> tuple:
    """The trace record of one executed node (see the module docstring)."""
    pool = getattr(device, "pool", None)
    return (name, device.name, start, end, op,
            [_describe(v) for v in outs] if outs else [],
            int(getattr(pool, "_in_use", 0)), _get_ident())


def to_wall(trace: list) -> list[list[Any]]:
    """This process's records with start and end moved onto the wall clock (for the wire)."""
    shift = time.time() - time.perf_counter()
    return [[t[0], t[1], t[2] + shift, t[3] + shift, *t[4:]] for t in trace]
