"""How the executor runs each node (its *kind*), and the error it reports for a node.

Shared by `scheduler.executor` (the loop without frames, compile) and `scheduler.frames` (the
loop with frames, the control-flow primitives, fused loops).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from devices.errors import CancelledError, InternalError, InvalidArgumentError, OpError

# Kernel kinds: how the loop calls fns[i].
INLINE = 0   # outs = fn(*args)
ARG = 1      # outs = (ctx.args[fn],)               a feed (_Arg); fn is the feed index
RETVAL = 2   # ctx.rets[fn] = args[0]                a fetch (_Retval); fn is the fetch index
STEP = 3     # outs = fn(ctx, *args)                 needs the step (Send, stateful RNG ...)
ASYNC = 4    # outs = fn.poll(ctx, *args) if ready now, else await fn(ctx, *args) in the nursery
THREAD = 5   # outs = await device.run_in_thread(fn, *args)
# control-flow primitives, run by the executor itself (`frames.FrameSteps._special`)
SWITCH = 6
MERGE = 7
ENTER = 8
EXIT = 9
NEXTITER = 10
CTRIG = 11
IDENT = 12   # LoopCond and Identity in a graph with frames: forwarded by the loop itself
_CF_KINDS = {"Switch": SWITCH, "Merge": MERGE, "Enter": ENTER, "Exit": EXIT,
             "NextIteration": NEXTITER, "ControlTrigger": CTRIG}
_IDENT_OPS = frozenset({"LoopCond", "Identity", "StopGradient", "Snapshot"})

_CHECKPOINT_EVERY = 0.001  # seconds of inline work between trio checkpoints



def describe_args(args: Any, limit: int = 6) -> str:
    """'float32[2, 3], int32[]' for a kernel's inputs. A long list is summarised by its
    distinct entries with their counts ('10000 inputs: 9999 x float32[2], 1 x float32[3]'),
    so an error stays short and still shows the odd one out."""
    parts = [f"{getattr(a, 'dtype', type(a).__name__)}{list(getattr(a, 'shape', ()))}"
             for a in (args or ())]
    if len(parts) <= limit:
        return ", ".join(parts)
    counts = Counter(parts).most_common()
    shown = ", ".join(f"{n} x {p}" for p, n in counts[:limit])
    more = f", and {len(counts) - limit} other kinds" if len(counts) > limit else ""
    return f"{len(parts)} inputs: {shown}{more}"


def node_error(e: Exception, node: str, op: str, device: str, args: Any) -> OpError:
    if isinstance(e, OpError):
        return e.with_location(node=node, device=device)
    if isinstance(e, trio.Cancelled):
        return CancelledError("the step was cancelled", node=node, device=device)
    shapes_ = describe_args(args)
    if isinstance(e, ValueError | TypeError | IndexError | ZeroDivisionError | FloatingPointError):
        err: OpError = InvalidArgumentError(
            f"{op} failed on inputs ({shapes_}): {e}", node=node, device=device)
    else:
        err = InternalError(f"{op} raised {type(e).__name__}: {e} on inputs ({shapes_})",
                            node=node, device=device)
    err.__cause__ = e
    return err
