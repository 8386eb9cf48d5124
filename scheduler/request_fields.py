"""Checks of request header fields: everything a worker service reads off the wire is
validated here before use, with an error naming the field, the range and what came.

    h = header_map(header, "run_graph")
    step = int_field(h, "step", U64)
"""

from __future__ import annotations

from typing import Any

from devices.errors import InvalidArgumentError

MAX_INDICES = 1 << 16  # feeds or fetches of one step, keys pushed with one request
U64 = (1 << 64) - 1


def header_map(h: Any, method: str) -> dict:
    if not isinstance(h, dict):
        raise InvalidArgumentError(f"{method} expects a header map, got {type(h).__name__}")
    return h


def int_field(h: dict, name: str, hi: int) -> int:
    v = h.get(name)
    if type(v) is not int or not 0 <= v <= hi:
        raise InvalidArgumentError(f"header field '{name}' must be an int in [0, {hi}], "
                                   f"got {str(v)[:40]}")
    return v


def int_list(h: dict, name: str, hi: int) -> list[int]:
    v = h.get(name)
    if not isinstance(v, list) or len(v) > MAX_INDICES or not all(
            type(x) is int and 0 <= x <= hi for x in v):
        raise InvalidArgumentError(f"header field '{name}' must be a list of ints in "
                                   f"[0, {hi}], got {str(v)[:60]}")
    return v


def str_field(h: dict, name: str) -> str:
    v = h.get(name)
    if not isinstance(v, str) or not v or len(v) > 4096:
        raise InvalidArgumentError(f"header field '{name}' must be a non-empty str, "
                                   f"got {str(v)[:40]}")
    return v


def peers_field(h: dict, name: str = "peers") -> dict[tuple[str, int], int]:
    """``run_graph``'s ``peers``: ``[[job, task, incarnation], ...]``, the life of each other
    task of the step as the master knows it (tensors pushed there must name it), as a map
    (job, task) -> incarnation. Absent: no task (a step that pushes nowhere needs none)."""
    v = h.get(name)
    if v is None:
        return {}
    out: dict[tuple[str, int], int] = {}
    if isinstance(v, list) and len(v) <= MAX_INDICES:
        for p in v:
            if not (isinstance(p, list) and len(p) == 3 and isinstance(p[0], str)
                    and type(p[1]) is int and 0 <= p[1] <= U64
                    and type(p[2]) is int and 0 < p[2] <= U64):
                break
            out[(p[0], p[1])] = p[2]
        else:
            return out
    raise InvalidArgumentError(f"header field '{name}' must be a list of [job, task, "
                               f"incarnation] (str, int, int in [1, 2**64-1]), got "
                               f"{str(v)[:80]}")
