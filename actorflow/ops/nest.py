"""Nested structures of values (tuples, lists, dicts, namedtuples) for the control-flow API:
flatten them into a list of leaves and pack a list of leaves back into the same structure.

    nest.flatten({"b": (1, 2), "a": 3})                  # [3, 1, 2]   (dict keys sorted)
    nest.pack_sequence_as(((0, 0), 0), [1, 2, 3])        # ((1, 2), 3)
    nest.map_structure(lambda a, b: a + b, (1, [2]), (10, [20]))   # (11, [22])

Also TF's public `tf.nest` (`af.nest`).
"""

from __future__ import annotations

from typing import Any


def is_nested(x: Any) -> bool:
    return isinstance(x, list | tuple | dict)


def _children(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return [x[k] for k in sorted(x)]
    return list(x)


def flatten(x: Any) -> list[Any]:
    """The leaves of `x`, depth first (dict values in sorted key order)."""
    if not is_nested(x):
        return [x]
    out: list[Any] = []
    for c in _children(x):
        out.extend(flatten(c))
    return out


def pack_sequence_as(structure: Any, flat: list[Any]) -> Any:
    """`flat`'s leaves in the shape of `structure`."""
    flat = list(flat)
    n = len(flatten(structure))
    if n != len(flat):
        raise ValueError(f"the structure has {n} leaves but {len(flat)} values were given")
    packed, _ = _pack(structure, flat, 0)
    return packed


def _pack(s: Any, flat: list[Any], k: int) -> tuple[Any, int]:
    if not is_nested(s):
        return flat[k], k + 1
    items = []
    for c in _children(s):
        v, k = _pack(c, flat, k)
        items.append(v)
    if isinstance(s, dict):
        return type(s)(zip(sorted(s), items, strict=True)), k
    if isinstance(s, tuple) and hasattr(s, "_fields"):
        return type(s)(*items), k
    return type(s)(items), k


def assert_same_structure(a: Any, b: Any) -> None:
    """Raise ValueError (saying where) unless `a` and `b` nest the same way."""
    _same(a, b, "")


def _describe(x: Any) -> str:
    if isinstance(x, dict):
        return f"a dict with keys {sorted(x)}"
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return f"a {type(x).__name__} of {len(x)}"
    if isinstance(x, list | tuple):
        return f"a {type(x).__name__} of {len(x)}"
    return "a single value"


def _same(a: Any, b: Any, path: str) -> None:
    where = f" at {path}" if path else ""
    if is_nested(a) != is_nested(b):
        raise ValueError(f"{_describe(a)} against {_describe(b)}{where}")
    if not is_nested(a):
        return
    if isinstance(a, dict) != isinstance(b, dict) or (
            isinstance(a, dict) and sorted(a) != sorted(b)):
        raise ValueError(f"{_describe(a)} against {_describe(b)}{where}")
    ca, cb = _children(a), _children(b)
    if len(ca) != len(cb):
        raise ValueError(f"{_describe(a)} against {_describe(b)}{where}")
    keys = sorted(a) if isinstance(a, dict) else range(len(ca))
    for key, x, y in zip(keys, ca, cb, strict=True):
        _same(x, y, f"{path}[{key!r}]")


def flatten_up_to(shallow: Any, deep: Any) -> list[Any]:
    """The parts of `deep` at the leaves of `shallow` (deep may go deeper there: shapes)."""
    if not is_nested(shallow):
        return [deep]
    if not is_nested(deep) or isinstance(shallow, dict) != isinstance(deep, dict):
        raise ValueError(f"{_describe(shallow)} against {_describe(deep)}")
    cs, cd = _children(shallow), _children(deep)
    if len(cs) != len(cd):
        raise ValueError(f"{_describe(shallow)} against {_describe(deep)}")
    out: list[Any] = []
    for x, y in zip(cs, cd, strict=True):
        out.extend(flatten_up_to(x, y))
    return out


def map_structure(func: Any, *structures: Any, check_types: bool = True) -> Any:
    """`func` applied to the leaves at each position of `structures` (all of one structure),
    packed in the structure of the first."""
    if not structures:
        raise ValueError("map_structure needs at least one structure")
    for other in structures[1:]:
        assert_same_structure(structures[0], other)
    leaves = [flatten(s) for s in structures]
    return pack_sequence_as(structures[0], [func(*xs) for xs in zip(*leaves, strict=True)])
