"""The straight run: a frame-less partition of synchronous kernels, its order fixed at compile.

Design
------
Without frames and without asynchronous kernels, the order in which the ready loop
(`scheduler.executor`, `StepRun._drain`) runs a partition's nodes depends on the graph alone:
its LIFO ready stack starts from the same roots, the same pending counts count down, state
updates go under the stack (late successors), and no kernel's result changes which node is
ready next. `scheduler.executable.plan_straight` runs that loop once at compile time,
without kernels, and records the order it took and, per node, the input slots whose last
reader it is (where the loop's refs count would hit 0). An untraced step of such a partition
then runs the same nodes in the same order over that list (`run_straight`): the loop's work
less its scheduling -- no pending counts or refs copied per step and counted down per node,
no ready stack -- so it is the loop's own fused form, as `FrameOps.run_fused` is a loop
frame's.

The bookkeeping is the loop's: outputs go to the same slots (the fast codes KERNEL2, KERNEL1,
FEED1 and FETCH of `Executable.nodes`, any other kernel by arity with its (port, slot)
pairs), an input is cleared after its last reader and its buffer handed back to the pool, the
first error aborts the step with the same `node_error`, and the clock is read every 16 nodes
to end the slice after `SLICE_S` (`StepRun.pc` says where the next slice starts). A traced
step goes through the loop, which records every node.

A partition qualifies when it has no frames and every node is a kernel run inline (INLINE,
STEP, a feed or a fetch) or a *poll-first* asynchronous kernel: one ASYNC or THREAD kernel (a
Recv, a big matmul on a worker thread) makes the order depend on when it finishes, and such a
partition keeps the loop. A poll-first kernel (``fn.poll_first``: the get_next of an
`af.data` iterator, whose element is usually ready) is polled in its place; when its poll
answers nothing (the producer has no element yet) the step leaves the straight run there and
goes on in the ready loop (`_to_loop`): the loop's state at that point (pending counts, refs,
the ready stack with the kernel on top) was recorded at compile time
(`Executable.straight_resume`), the values are the straight run's own, so the loop continues
exactly where the program stopped and waits for the kernel asynchronously, off the device's
trio loop's critical path, as it would have from the start.
"""

from __future__ import annotations

import time
from itertools import islice
from threading import get_ident
from typing import Any

import numpy as np

from devices.device import SLICE_S
from scheduler.executable import ARG, ASYNC, FEED1, FETCH, INLINE, KERNEL1, KERNEL2, RETVAL
from scheduler.frame_ops import IterState
from scheduler.node_errors import node_error

_ndarray = np.ndarray
_clock = time.perf_counter


def run_straight(run: Any, device: Any) -> bool:
    """Run the straight program of `run` (a `StepRun`) from `run.pc` for one slice
    (`SLICE_S`): False when it ended, True if there is more to run (`run.pc` says where)."""
    exe, ctx = run.exe, run.ctx
    values = run.values
    args, rets = ctx.args, ctx.rets
    deadline = _clock() + SLICE_S
    k2, k1, feed, fetch, inline, arg, retval = KERNEL2, KERNEL1, FEED1, FETCH, INLINE, ARG, RETVAL
    k = run.pc
    prog = exe.straight if k == 0 else islice(exe.straight, k, None)
    # ---- the program: one node after another, as the ready loop would run them ----
    for code, fn, slots, out, rel, i in prog:
        try:
            if code == k2:
                values[out] = fn(values[slots[0]], values[slots[1]])[0]
            elif code == k1:
                values[out] = fn(values[slots[0]])[0]
            elif code == feed:
                values[out] = args[fn]
            elif code == fetch:
                rets[fn] = values[slots[0]]
            else:
                if code == inline:  # by arity, as in the loop
                    n_in = len(slots)
                    if n_in == 2:
                        outs = fn(values[slots[0]], values[slots[1]])
                    elif n_in == 1:
                        outs = fn(values[slots[0]])
                    elif n_in == 0:
                        outs = fn()
                    else:
                        outs = fn(*[values[s] for s in slots])
                elif code == arg:
                    outs = (args[fn],)
                elif code == retval:
                    rets[fn] = values[slots[0]]
                    outs = ()
                elif code == ASYNC:  # poll-first: its value now, or the loop waits for it
                    outs = fn.poll(ctx, *[values[s] for s in slots])
                    if outs is None:
                        _to_loop(run, k)
                        return True
                else:  # STEP
                    outs = fn(ctx, *[values[s] for s in slots])
                for port, s in out:
                    values[s] = outs[port]
        except Exception as e:  # noqa: BLE001 - every kernel failure aborts the step
            ctx.abort(node_error(e, exe.names[i], exe.ops[i], device.name,
                                 [values[s] for s in slots]))
            return False
        if rel:  # inputs after their last reader: cleared, buffers released
            for s in rel:
                v = values[s]
                values[s] = None
                if type(v) is _ndarray:
                    device.pool.release(v)
        k += 1
        if not (k & 15) and (_clock() > deadline or ctx.error is not None):
            if ctx.error is not None:  # aborted from elsewhere (a deadline, a caller)
                return False
            run.pc = k
            return True
    run.pc = k
    return False


def _to_loop(run: Any, k: int) -> None:
    """Hand `run` over to the ready loop before entry k of its straight program (a poll-first
    kernel found nothing ready): the loop's state there, the values run so far."""
    pending, refs, ready = run.exe.straight_resume[k]
    run.root = IterState(pending.copy(), run.values, refs.copy(), ready.copy(), run.exe.zeros)
    run.active.append(run.root)
    run.caller = get_ident()
    run.pc = -1
