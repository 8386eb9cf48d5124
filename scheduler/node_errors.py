"""The error a failing node reports: its kernel's exception, with the node and device named."""

from __future__ import annotations

from typing import Any

import trio

from devices.errors import CancelledError, InternalError, InvalidArgumentError, OpError


def node_error(e: Exception, node: str, op: str, device: str, args: Any) -> OpError:
    """`e` as the OpError of node `node` (op `op`) on `device`, its inputs' shapes named."""
    if isinstance(e, OpError):
        return e.with_location(node=node, device=device)
    if isinstance(e, trio.Cancelled):
        return CancelledError("the step was cancelled", node=node, device=device)
    shapes_ = ", ".join(
        f"{getattr(a, 'dtype', type(a).__name__)}{list(getattr(a, 'shape', ()))}"
        for a in (args or ()))
    if isinstance(e, ValueError | TypeError | IndexError | ZeroDivisionError | FloatingPointError):
        err: OpError = InvalidArgumentError(
            f"{op} failed on inputs ({shapes_}): {e}", node=node, device=device)
    else:
        err = InternalError(f"{op} raised {type(e).__name__}: {e} on inputs ({shapes_})",
                            node=node, device=device)
    err.__cause__ = e
    return err
