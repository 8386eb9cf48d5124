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
