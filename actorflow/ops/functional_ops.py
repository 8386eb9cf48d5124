"""`map_fn`, `foldl`, `foldr` and `scan` (OSDI §3.4): higher-order functions over the first
dimension of tensors, each one `af.while_loop` reading its elements from TensorArrays and
writing its results into TensorArrays.

    af.map_fn(lambda x: x * x, xs)                            # [x0², x1², ...]
    af.foldl(lambda a, x: a + x, xs, initializer=0.0)         # sum
    af.scan(lambda a, x: a + x, xs)                           # running sums

`elems` may be a nested structure of tensors with the same first dimension; `fn` then gets
the same structure of slices. The results of `map_fn` have the structure of `dtype` (default:
that of `elems`); those of `scan` the structure of `initializer` (default: of `elems`).
Gradients flow through all four (the loops' gradients, TensorArray gradients).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import nest
from actorflow.ops.tensor_array_ops import TensorArray
from devices import dtypes
from devices.errors import InvalidArgumentError


def _elems(elems: Any, what: str) -> tuple[list[Tensor], Tensor, int | None]:
    flat = [convert_to_tensor(e) for e in nest.flatten(elems)]
    if not flat:
        raise InvalidArgumentError(f"{what} needs at least one tensor in elems")
    for e in flat:
        if e._shape is not None and not e._shape:
            raise InvalidArgumentError(
                f"{what}: elems must have a first dimension to iterate over; '{e.name}' is a "
                f"scalar")
    known = [e._shape[0] for e in flat if e._shape is not None and e._shape[0] is not None]
    if len(set(known)) > 1:
        raise InvalidArgumentError(
            f"{what}: every tensor in elems needs the same first dimension, got {known}")
    from actorflow.ops import array_ops
    n = convert_to_tensor(known[0], dtype=dtypes.int32) if known else \
        array_ops.shape(flat[0])[0]
    return flat, n, (known[0] if known else None)


def _unstacked(flat: list[Tensor], n: Tensor) -> list[TensorArray]:
    return [TensorArray(e.dtype, size=n, element_shape=None if e._shape is None else
                        e._shape[1:], name="elems").unstack(e) for e in flat]


def _stacked(tas: list[TensorArray], n_static: int | None) -> list[Tensor]:
    out = []
    for ta in tas:
        t = ta.stack()
        es = ta.element_shape
        if es is not None:
            t._shape = (n_static, *es)
        out.append(t)
    return out


def map_fn(fn: Callable[[Any], Any], elems: Any, dtype: Any = None,
           parallel_iterations: int | None = None, back_prop: bool = True,
           swap_memory: bool = False, infer_shape: bool = True,
           name: str | None = None) -> Any:
    """``stack([fn(e[i]) for i in range(n)])``, as one while loop. `dtype`: the structure and
    dtypes of fn's result when they differ from elems'."""
    from actorflow.ops.control_flow_ops import while_loop
    with name_scope(name, "map"):
        flat, n, n_static = _elems(elems, "af.map_fn")
        in_tas = _unstacked(flat, n)
        if dtype is None:
            out_struct, out_dtypes = elems, [e.dtype for e in flat]
        else:
            out_struct, out_dtypes = dtype, [dtypes.as_dtype(d) for d in nest.flatten(dtype)]
        out_tas = [TensorArray(dt, size=n, name="results") for dt in out_dtypes]

        def body(i: Tensor, tas: list[TensorArray]) -> tuple[Tensor, list[TensorArray]]:
            x = nest.pack_sequence_as(elems, [ta.read(i) for ta in in_tas])
            y = fn(x)
            try:
                nest.assert_same_structure(out_struct, y)
            except ValueError as e:
                raise InvalidArgumentError(
                    f"af.map_fn: fn returns a different structure than "
                    f"{'dtype' if dtype is not None else 'elems'} ({e}); pass dtype= with the "
                    f"structure and dtypes of fn's result") from None
            ys = [convert_to_tensor(v) for v in nest.flatten(y)]
            for v, dt in zip(ys, out_dtypes, strict=True):
                if v.dtype is not dt:
                    raise InvalidArgumentError(
                        f"af.map_fn: fn returns {v.dtype.name} ('{v.name}') where {dt.name} is "
                        f"expected; pass dtype= or cast it")
            return i + 1, [ta.write(i, v) for ta, v in zip(tas, ys, strict=True)]

        _, tas = while_loop(lambda i, tas: i < n, body, (0, out_tas),
                            parallel_iterations=parallel_iterations or 10,
                            back_prop=back_prop, return_same_structure=True)
        return nest.pack_sequence_as(out_struct, _stacked(tas, n_static))


def _fold(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any, reverse: bool,
          parallel_iterations: int, name: str, what: str, back_prop: bool = True) -> Any:
    from actorflow.ops import math_ops
    from actorflow.ops.control_flow_ops import while_loop
    with name_scope(name):
        flat, n, _ = _elems(elems, what)
        tas = _unstacked(flat, n)
        if initializer is None:
            first = math_ops.subtract(n, 1) if reverse else 0
            a = nest.pack_sequence_as(elems, [ta.read(first) for ta in tas])
            start = math_ops.subtract(n, 2) if reverse else convert_to_tensor(1)
        else:
            a = nest.pack_sequence_as(initializer, [convert_to_tensor(t)
                                                    for t in nest.flatten(initializer)])
            start = math_ops.subtract(n, 1) if reverse else convert_to_tensor(0)

        def cond(i: Tensor, acc: Any) -> Tensor:
            return i >= 0 if reverse else i < n

        def body(i: Tensor, acc: Any) -> tuple[Tensor, Any]:
            x = nest.pack_sequence_as(elems, [ta.read(i) for ta in tas])
            res = fn(acc, x)
            return (i - 1 if reverse else i + 1), res

        _, out = while_loop(cond, body, (start, a), parallel_iterations=parallel_iterations,
                            back_prop=back_prop, return_same_structure=True)
        return out


def foldl(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None,
          parallel_iterations: int = 10, back_prop: bool = True, swap_memory: bool = False,
          name: str | None = None) -> Any:
    """``a = fn(a, e[i])`` for i = 0 .. n-1 from ``a = initializer`` (default e[0], then
    from i = 1); returns a."""
    return _fold(fn, elems, initializer, False, parallel_iterations, name or "foldl",
                 "af.foldl", back_prop)


def foldr(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None,
          parallel_iterations: int = 10, back_prop: bool = True, swap_memory: bool = False,
          name: str | None = None) -> Any:
    """`foldl` from the last element to the first."""
    return _fold(fn, elems, initializer, True, parallel_iterations, name or "foldr",
                 "af.foldr", back_prop)


def scan(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None,
         parallel_iterations: int = 10, back_prop: bool = True, swap_memory: bool = False,
         infer_shape: bool = True, reverse: bool = False, name: str | None = None) -> Any:
    """Every intermediate `a` of `foldl` (or `foldr` if `reverse`), stacked: result i is
    ``fn(result i-1, e[i])``; result 0 is ``fn(initializer, e[0])`` (or e[0] without one)."""
    from actorflow.ops import math_ops
    from actorflow.ops.control_flow_ops import while_loop
    with name_scope(name, "scan"):
        flat, n, n_static = _elems(elems, "af.scan")
        tas = _unstacked(flat, n)
        if initializer is None:
            a = nest.pack_sequence_as(
                elems, [ta.read(math_ops.subtract(n, 1) if reverse else 0) for ta in tas])
            a_flat = nest.flatten(a)
            out_tas = [TensorArray(t.dtype, size=n, name="results").write(
                math_ops.subtract(n, 1) if reverse else 0, t) for t in a_flat]
            start = math_ops.subtract(n, 2) if reverse else convert_to_tensor(1)
            struct = elems
        else:
            a = initializer
            a_flat = [convert_to_tensor(t) for t in nest.flatten(initializer)]
            a = nest.pack_sequence_as(initializer, a_flat)
            out_tas = [TensorArray(t.dtype, size=n, name="results") for t in a_flat]
            start = math_ops.subtract(n, 1) if reverse else convert_to_tensor(0)
            struct = initializer

        def cond(i: Tensor, acc: Any, tas_: Any) -> Tensor:
            return i >= 0 if reverse else i < n

        def body(i: Tensor, acc: Any, tas_: list[TensorArray]) -> tuple[Any, ...]:
            x = nest.pack_sequence_as(elems, [ta.read(i) for ta in tas])
            res = fn(acc, x)
            try:
                nest.assert_same_structure(struct, res)
            except ValueError as e:
                raise InvalidArgumentError(
                    f"af.scan: fn must return the structure of "
                    f"{'initializer' if initializer is not None else 'elems'} ({e})") from None
            flat_res = [convert_to_tensor(v) for v in nest.flatten(res)]
            new_tas = [ta.write(i, v) for ta, v in zip(tas_, flat_res, strict=True)]
            return (i - 1 if reverse else i + 1), nest.pack_sequence_as(struct, flat_res), \
                new_tas

        _, _, out = while_loop(cond, body, (start, a, out_tas),
                               parallel_iterations=parallel_iterations, back_prop=back_prop,
                               return_same_structure=True)
        return nest.pack_sequence_as(struct, _stacked(out, n_static))


__all__ = ["map_fn", "foldl", "foldr", "scan"]
