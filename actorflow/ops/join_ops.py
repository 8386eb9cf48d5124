"""Joining and splitting: `concat`, `split`, `stack`, `unstack` (and `stack_nested`, which
`convert_to_tensor` uses for nested lists holding tensors). Each is one op whose axis (and split
sizes, when static) are attributes; the gradients are each other: concat's is a split, stack's
an unstack, and back. Split sizes may also be a tensor known only at run time.

    a, b = af.split(x, [2, -1], axis=1)          # SplitV: sizes 2 and the rest
    y = af.concat([b, a], axis=-1)               # ConcatV2
    rows = af.unstack(af.stack([u, v]))          # Pack, then Unpack
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    check_same_dtype,
    constant,
    constant_value,
    convert_n,
    convert_to_tensor,
    define_op,
    register_gradient,
)
from actorflow.ops.core_ops import identity
from actorflow.ops.static_args import (
    dense,
    has_tensor,
    normalize_axis,
    rank_of,
    required_axis,
    static_ints,
    static_value,
)
from devices.errors import InvalidArgumentError

__all__ = ["concat", "split", "stack", "unstack", "stack_nested"]


# ---- concat / split ---------------------------------------------------------------------
def _concat_infer(ins: list[Tensor], attrs: dict) -> list:
    dt = check_same_dtype(ins, "concat")
    known = [v for v in ins if v._shape is not None]
    if not known:
        return [(dt, None)]
    r = len(known[0]._shape)
    for v in known:
        if len(v._shape) != r:
            raise InvalidArgumentError(
                f"concat needs inputs of one rank, got shapes {shapes.fmt(known[0]._shape)} "
                f"('{known[0].name}') and {shapes.fmt(v._shape)} ('{v.name}')")
    if r == 0:
        raise InvalidArgumentError(f"concat cannot join scalars ('{known[0].name}'); use "
                                   f"af.stack to make a vector of them")
    axis = normalize_axis(attrs["axis"], r, "concat")
    out: list[int | None] = [None] * r
    total: int | None = 0
    for v in ins:
        if v._shape is None:
            total = None
            continue
        for i, d in enumerate(v._shape):
            if i == axis:
                total = None if total is None or d is None else total + d
            elif d is not None:
                if out[i] is not None and out[i] != d:
                    raise InvalidArgumentError(
                        f"concat along axis {axis}: dimension {i} of '{v.name}' (shape "
                        f"{shapes.fmt(v._shape)}) is {d} but an earlier input has {out[i]}; "
                        f"every dimension but the axis must agree")
                out[i] = d
    out[axis] = total
    return [(dt, tuple(out))]


define_op("ConcatV2", infer=_concat_infer)


def concat(values: Any, axis: Any, name: str | None = None) -> Tensor:
    """Join tensors along `axis` (every other dimension must agree)."""
    if not isinstance(values, list | tuple):
        values = [values]
    if not values:
        raise InvalidArgumentError("concat needs at least one tensor")
    ts = convert_n(list(values))
    ax = required_axis(axis, "concat")
    r = next((rank_of(v) for v in ts if v._shape is not None), None)
    if r == 0:
        raise InvalidArgumentError(f"concat cannot join scalars ('{ts[0].name}'); use af.stack "
                                   f"to make a vector of them")
    ax = normalize_axis(ax, r, "concat")
    if len(ts) == 1:
        return identity(ts[0], name=name or "concat")
    return apply_op("ConcatV2", ts, {"axis": ax}, name=name or "concat")[0]


@register_gradient("ConcatV2")
def _concat_grad(op: Operation, grad: Any) -> list[Any]:
    axis = op.attrs["axis"]
    sizes = [None if v._shape is None else v._shape[axis] for v in op.inputs]
    if sizes.count(None) <= 1:
        return split(dense(grad), [-1 if s is None else s for s in sizes], axis)
    from actorflow.ops.array_ops import shape
    dynamic = stack([shape(v)[axis] for v in op.inputs])
    return split(dense(grad), dynamic, axis, num=len(op.inputs))


def _split_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    n = attrs["num_split"]
    axis = attrs["axis"]
    if x._shape is None:
        return [(x.dtype, None)] * n
    d = x._shape[axis]
    if d is not None and d % n:
        raise InvalidArgumentError(
            f"split: dimension {axis} of '{x.name}' (shape {shapes.fmt(x._shape)}) is {d}, "
            f"which does not divide into {n} equal parts; pass a list of sizes instead")
    dims = list(x._shape)
    dims[axis] = None if d is None else d // n
    return [(x.dtype, tuple(dims))] * n


def _split_v_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    axis = attrs["axis"]
    sizes = attrs.get("size_splits")
    if sizes is None:
        n = attrs["num_split"]
        if x._shape is None:
            return [(x.dtype, None)] * n
        return [(x.dtype, x._shape[:axis] + (None,) + x._shape[axis + 1:])] * n
    if x._shape is None:
        return [(x.dtype, None)] * len(sizes)
    sizes = resolve_split_sizes(sizes, x._shape[axis], f"split of '{x.name}' (shape "
                                f"{shapes.fmt(x._shape)}) along axis {axis}")
    return [(x.dtype, x._shape[:axis] + (s,) + x._shape[axis + 1:]) for s in sizes]


def resolve_split_sizes(sizes: list[int], dim: int | None, what: str) -> list[int | None]:
    """Check split sizes against the dimension and fill in a -1 (None if not yet known)."""
    if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        raise InvalidArgumentError(f"{what}: sizes {list(sizes)} may hold at most one -1 and "
                                   f"no other negative size")
    known = sum(s for s in sizes if s != -1)
    if dim is None:
        return [None if s == -1 else s for s in sizes]
    if -1 in sizes:
        if known > dim:
            raise InvalidArgumentError(f"{what}: sizes {list(sizes)} add up to more than the "
                                       f"dimension's {dim}")
        return [dim - known if s == -1 else s for s in sizes]
    if known != dim:
        raise InvalidArgumentError(f"{what}: sizes {list(sizes)} add up to {known}, not to the "
                                   f"dimension's {dim}")
    return list(sizes)


define_op("Split", infer=_split_infer)
define_op("SplitV", infer=_split_v_infer)


def split(value: Any, num_or_size_splits: Any, axis: Any = 0, num: int | None = None,
          name: str | None = None) -> list[Tensor]:
    """Split `value` along `axis` into `n` equal parts (an int) or parts of the given sizes
    (a list, one entry may be -1; or a 1-D int tensor, with `num` if its length is unknown)."""
    x = convert_to_tensor(value)
    r = rank_of(x)
    if r == 0:
        raise InvalidArgumentError(f"split cannot split a scalar ('{x.name}')")
    ax = normalize_axis(required_axis(axis, "split"), r, "split")
    if r is None and ax < 0:
        raise InvalidArgumentError(f"split: a negative axis needs a known rank, and '{x.name}' "
                                   f"has an unknown shape")
    sizes_v = None if isinstance(num_or_size_splits, Tensor) and \
        constant_value(num_or_size_splits) is None else static_value(num_or_size_splits)
    if sizes_v is not None and sizes_v.ndim == 0:
        n = int(sizes_v)
        if n < 1:
            raise InvalidArgumentError(f"split into {n} parts: the number must be at least 1")
        return list(apply_op("Split", [x], {"num_split": n, "axis": ax}, name=name or "split"))
    if sizes_v is not None:
        sizes = static_ints(sizes_v, "split: size_splits") or []
        if not sizes:
            raise InvalidArgumentError("split needs at least one size")
        return list(apply_op("SplitV", [x], {"size_splits": sizes, "axis": ax},
                             name=name or "split"))
    s = convert_to_tensor(num_or_size_splits)
    if not s.dtype.is_integer:
        raise InvalidArgumentError(f"split: size_splits must be ints, got {s.dtype.name}")
    n = num if num is not None else (s._shape[0] if s._shape else None)
    if n is None:
        raise InvalidArgumentError(
            f"split: the number of parts is unknown (size_splits '{s.name}' has shape "
            f"{shapes.fmt(s._shape)}); pass num=")
    return list(apply_op("SplitV", [x, s], {"num_split": int(n), "axis": ax},
                         name=name or "split"))


@register_gradient("Split")
def _split_grad(op: Operation, *grads: Any) -> list[Any]:
    return [concat([dense(g) for g in grads], op.attrs["axis"])]


@register_gradient("SplitV")
def _split_v_grad(op: Operation, *grads: Any) -> list[Any]:
    return [concat([dense(g) for g in grads], op.attrs["axis"])] + [None] * (len(op.inputs) - 1)


# ---- stack / unstack --------------------------------------------------------------------
def _pack_infer(ins: list[Tensor], attrs: dict) -> list:
    dt = check_same_dtype(ins, "stack")
    shp: shapes.Shape = None
    for v in ins:
        if not shapes.is_compatible(shp, v._shape):
            raise InvalidArgumentError(
                f"stack needs tensors of one shape, got {shapes.fmt(shp)} and "
                f"{shapes.fmt(v._shape)} ('{v.name}')")
        shp = shapes.merge(shp, v._shape)
    if shp is None:
        return [(dt, None)]
    dims = list(shp)
    dims.insert(normalize_axis(attrs["axis"], len(dims), "stack", extra=1), len(ins))
    return [(dt, tuple(dims))]


define_op("Pack", infer=_pack_infer)


def stack(values: Any, axis: Any = 0, name: str | None = None) -> Tensor:
    """Stack tensors of one shape along a new dimension at `axis`."""
    if isinstance(values, Tensor):
        return identity(values, name=name or "stack")
    if not isinstance(values, list | tuple) or not values:
        raise InvalidArgumentError(f"stack needs a non-empty list of tensors, got {values!r}")
    ts = convert_n(list(values))
    r = next((rank_of(v) for v in ts if v._shape is not None), None)
    ax = normalize_axis(required_axis(axis, "stack"), r, "stack", extra=1)
    return apply_op("Pack", ts, {"axis": ax}, name=name or "stack")[0]


@register_gradient("Pack")
def _pack_grad(op: Operation, grad: Any) -> list[Any]:
    return unstack(dense(grad), num=len(op.inputs), axis=op.attrs["axis"])


def stack_nested(value: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    """A tensor for a nested list mixing tensors and numbers (``[[x, 1.0], [2.0, y]]``): the
    first tensor's dtype wins, and every list level becomes a stack."""
    if dtype is None:
        dtype = _first_dtype(value)

    def build(v: Any, nm: str | None) -> Tensor:
        if isinstance(v, list | tuple):
            if not has_tensor(v):
                return constant(v, dtype=dtype, name=nm or "Const")
            return stack([build(x, None) for x in v], name=nm)
        return convert_to_tensor(v, dtype=dtype)

    return build(value, name)


def _first_dtype(value: Any) -> Any:
    if isinstance(value, list | tuple):
        for v in value:
            dt = _first_dtype(v)
            if dt is not None:
                return dt
        return None
    if isinstance(value, Tensor) or hasattr(value, "_as_tensor"):
        return convert_to_tensor(value).dtype
    return None


def _unpack_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    num, axis = attrs["num"], attrs["axis"]
    if x._shape is None:
        return [(x.dtype, None)] * num
    d = x._shape[axis]
    if d is not None and d != num:
        raise InvalidArgumentError(
            f"unstack of '{x.name}' (shape {shapes.fmt(x._shape)}) into {num} tensors: "
            f"dimension {axis} has size {d}")
    return [(x.dtype, x._shape[:axis] + x._shape[axis + 1:])] * num


define_op("Unpack", infer=_unpack_infer)


def unstack(value: Any, num: int | None = None, axis: Any = 0, name: str | None = None,
            ) -> list[Tensor]:
    """The slices of `value` along `axis`, as a list (`num` is needed when that dimension is
    not known statically)."""
    x = convert_to_tensor(value)
    r = rank_of(x)
    if r == 0:
        raise InvalidArgumentError(f"unstack cannot unstack a scalar ('{x.name}')")
    ax = normalize_axis(required_axis(axis, "unstack"), r, "unstack")
    if r is None and ax < 0:
        raise InvalidArgumentError(f"unstack: a negative axis needs a known rank, and "
                                   f"'{x.name}' has an unknown shape")
    if num is None:
        d = None if r is None else x._shape[ax]  # type: ignore[index]
        if d is None:
            raise InvalidArgumentError(
                f"unstack cannot tell how many tensors to make: dimension {ax} of '{x.name}' "
                f"(shape {shapes.fmt(x._shape)}) is unknown; pass num=")
        num = d
    return list(apply_op("Unpack", [x], {"num": int(num), "axis": ax},
                         name=name or "unstack"))


@register_gradient("Unpack")
def _unpack_grad(op: Operation, *grads: Any) -> list[Any]:
    return [stack([dense(g) for g in grads], axis=op.attrs["axis"])]
