"""Static shapes at build time: a shape is a tuple of ints and ``None`` (unknown dimension), or
``None`` for an unknown rank. Plain tuples keep shape inference cheap and easy to print.

    >>> broadcast((None, 3), (1, 3))
    (None, 3)
"""

from __future__ import annotations

from collections.abc import Iterable

from devices.errors import InvalidArgumentError

Shape = tuple[int | None, ...] | None


def as_shape(value: object) -> Shape:
    """Accept None, an int, a list/tuple of ints and Nones (-1 means unknown)."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value,)
    try:
        dims = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError(
            f"a shape must be a list of ints or None, got {value!r}") from None
    out = []
    for d in dims:
        if d is None or (isinstance(d, int) and d == -1):
            out.append(None)
        elif isinstance(d, int) or hasattr(d, "__index__"):
            if int(d) < 0:
                raise InvalidArgumentError(f"negative dimension {d} in shape {value!r}")
            out.append(int(d))
        else:
            raise InvalidArgumentError(f"dimension {d!r} of shape {value!r} is not an int or None")
    return tuple(out)


def is_fully_defined(shape: Shape) -> bool:
    return shape is not None and None not in shape


def num_elements(shape: Shape) -> int | None:
    if not is_fully_defined(shape):
        return None
    n = 1
    for d in shape:  # type: ignore[union-attr]
        n *= d  # type: ignore[operator]
    return n


def is_compatible(a: Shape, b: Shape) -> bool:
    """True if some concrete shape matches both."""
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def merge(a: Shape, b: Shape) -> Shape:
    """The most specific shape compatible with both (raises if they conflict)."""
    if a is None:
        return b
    if b is None:
        return a
    if not is_compatible(a, b):
        raise InvalidArgumentError(f"shapes {fmt(a)} and {fmt(b)} are not compatible")
    return tuple(x if x is not None else y for x, y in zip(a, b, strict=True))


def broadcast(a: Shape, b: Shape, *, what: str = "") -> Shape:
    """NumPy broadcasting on static shapes; unknown dims stay unknown unless the other is > 1."""
    if a is None or b is None:
        return None
    n = max(len(a), len(b))
    a2 = (1,) * (n - len(a)) + tuple(a)
    b2 = (1,) * (n - len(b)) + tuple(b)
    out: list[int | None] = []
    for x, y in zip(a2, b2, strict=True):
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None:
            out.append(y)
        elif y is None or x == y:
            out.append(x)
        else:
            raise InvalidArgumentError(
                f"{what + ': ' if what else ''}shapes {fmt(a)} and {fmt(b)} cannot be broadcast "
                f"together (dimension {x} against {y}); reshape one of them or make the "
                f"dimension 1")
    return tuple(out)


def broadcast_all(shapes: Iterable[Shape], what: str = "") -> Shape:
    out: Shape = ()
    for s in shapes:
        out = broadcast(out, s, what=what)
    return out


def fmt(shape: Shape) -> str:
    if shape is None:
        return "<unknown>"
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({dims}{',' if len(shape) == 1 else ''})"
