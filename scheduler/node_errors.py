"""The error a failing node reports: its kernel's exception, with the node and device named."""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from devices.errors import CancelledError, InternalError, InvalidArgumentError, OpError


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
    """`e` as the OpError of node `node` (op `op`) on `device`, its inputs' shapes named."""
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
