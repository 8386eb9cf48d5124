"""Array ops: shapes, reshaping, filling, broadcasting, joining and splitting, transposing,
tiling and padding; and the gradient helpers that undo broadcasting (`unbroadcast`) and re-insert
reduced dimensions (`restore_reduced_dims`).

Static arguments (axes, permutations, split sizes, multiples, paddings) are attributes, read once
per node by the kernels; the ops that take sizes (split sizes, tile multiples, paddings) also
accept a tensor known only at run time, as an extra input. Indexing ops (slicing, ``x[...]``,
gather, one_hot) live in `actorflow.ops.index_ops` and are re-exported here.

    parts = af.split(x, [2, -1], axis=1)        # SplitV, two outputs
    y = af.concat([parts[1], parts[0]], axis=-1)
    z = af.transpose(af.expand_dims(y, 0))      # perm defaults to reversed
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor, TensorShape
from actorflow.op_def import (
    apply_op,
    constant,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
    same_as_input,
)
from actorflow.ops.index_ops import gather, newaxis, one_hot, strided_slice, strided_slice_spec
from actorflow.ops.index_ops import slice_ as slice  # noqa: A001
from actorflow.ops.join_ops import (
    concat,
    split,
    stack,
    stack_nested,  # noqa: F401  (convert_to_tensor uses it)
    unstack,
)
from actorflow.ops.static_args import (
    dense,
    has_tensor,
    normalize_axis,
    partial_shape,
    rank_of,
    required_axis,
    static_ints,
    static_value,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = [
    "shape", "shape_n", "size", "rank", "reshape", "fill", "zeros", "ones", "zeros_like",
    "ones_like", "broadcast_to", "expand_dims", "squeeze", "transpose", "concat", "split",
    "stack", "unstack", "tile", "pad", "slice", "strided_slice", "gather", "one_hot", "newaxis",
]


# ---- shape ------------------------------------------------------------------------------
def _shape_infer(ins: list[Tensor], attrs: dict) -> list:
    rank = None if ins[0]._shape is None else len(ins[0]._shape)
    return [(dtypes.as_dtype(attrs.get("out_type", dtypes.int32)), (rank,))]


define_op("Shape", infer=_shape_infer)
no_gradient("Shape")


def shape(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    """The shape of `input` as a 1-D int tensor (known at run time)."""
    return apply_op("Shape", [convert_to_tensor(input)],
                    {"out_type": dtypes.as_dtype(out_type)}, name=name or "Shape")[0]


def shape_tensor(value: Any, name: str = "shape") -> Tensor:
    """A 1-D int tensor for a shape argument: a tensor, a list of ints, or a list mixing ints
    and scalar tensors (``[af.shape(x)[0], -1]``)."""
    if isinstance(value, Tensor):
        return value
    if has_tensor(value):
        return stack_nested(list(value), dtype=dtypes.int32, name=name)
    if isinstance(value, TensorShape):
        value = value.as_list()
    return constant(np.asarray(value, dtype=np.int32).reshape(-1), name=name)


# ---- reshape ----------------------------------------------------------------------------
def _reshape_static(x_shape: shapes.Shape, target: np.ndarray, name: str) -> shapes.Shape:
    dims = [int(d) for d in target.reshape(-1)]
    if dims.count(-1) > 1:
        raise InvalidArgumentError(f"reshape to {dims}: only one dimension may be -1")
    n = shapes.num_elements(x_shape)
    known = 1
    for d in dims:
        if d != -1:
            known *= d
    if -1 in dims:
        if n is not None:
            if known == 0 or n % known:
                raise InvalidArgumentError(
                    f"cannot reshape a tensor of {n} elements (shape {shapes.fmt(x_shape)}) "
                    f"to {dims}")
            dims[dims.index(-1)] = n // known
            return tuple(dims)
        return tuple(None if d == -1 else d for d in dims)
    if n is not None and n != known:
        raise InvalidArgumentError(
            f"cannot reshape a tensor of {n} elements (shape {shapes.fmt(x_shape)}) to "
            f"{dims} ({known} elements)")
    return tuple(dims)


def _reshape_infer(ins: list[Tensor], attrs: dict) -> list:
    x, s = ins
    value = constant_value(s)
    if value is not None:
        return [(x.dtype, _reshape_static(x._shape, value, "Reshape"))]
    dims = partial_shape(s)
    if dims is not None and None not in dims:  # e.g. [af.shape(x)[0], -1] with x's dims known
        return [(x.dtype, _reshape_static(x._shape, np.array(dims), "Reshape"))]
    return [(x.dtype, None if dims is None else tuple(None if d == -1 else d for d in dims))]


define_op("Reshape", infer=_reshape_infer)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    s = shape_tensor(shape, "shape")
    return apply_op("Reshape", [x, s], name=name or "Reshape")[0]


@register_gradient("Reshape")
def _reshape_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [reshape_like(dense(grad), op.inputs[0])] + [None] * (len(op.inputs) - 1)


def reshape_like(t: Tensor, x: Tensor) -> Tensor:
    """`t` reshaped to the shape of `x` (static when x's shape is fully known)."""
    if t._shape == x._shape and shapes.is_fully_defined(x._shape):
        return t
    return reshape(t, x._shape if shapes.is_fully_defined(x._shape) else shape(x))


# ---- fill / zeros / ones ----------------------------------------------------------------
def _fill_infer(ins: list[Tensor], attrs: dict) -> list:
    dims, value = ins
    known = partial_shape(dims)
    return [(value.dtype, None if known is None else tuple(known))]


define_op("Fill", infer=_fill_infer)
no_gradient("Fill")
define_op("ZerosLike", infer=same_as_input)
define_op("OnesLike", infer=same_as_input)
no_gradient("ZerosLike")
no_gradient("OnesLike")


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    d = shape_tensor(dims, "dims")
    return apply_op("Fill", [d, convert_to_tensor(value)], name=name or "Fill")[0]


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        return zeros(shape(x), dtype, name=name)
    return apply_op("ZerosLike", [x], name=name or "ZerosLike")[0]


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        return ones(shape(x), dtype, name=name)
    return apply_op("OnesLike", [x], name=name or "OnesLike")[0]


_SMALL_CONSTANT = 1000  # zeros/ones of this many elements or more are a Fill, as in TF


def _large(shape: Any) -> bool:
    dims = shapes.as_shape(shape)
    return dims is not None and None not in dims and int(np.prod(dims)) >= _SMALL_CONSTANT


def zeros(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if has_tensor(shape) or _large(shape):  # a big constant would live in the graph
        return fill(shape, constant(0, dt), name=name or "zeros")
    return constant(np.zeros(shapes.as_shape(shape), dt.np), name=name or "zeros")


def ones(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if has_tensor(shape) or _large(shape):
        return fill(shape, constant(1, dt), name=name or "ones")
    return constant(np.ones(shapes.as_shape(shape), dt.np), name=name or "ones")


# ---- broadcasting -----------------------------------------------------------------------
def _broadcast_to_infer(ins: list[Tensor], attrs: dict) -> list:
    x, s = ins
    v = constant_value(s)
    if v is None:
        dims = partial_shape(s)
        return [(x.dtype, None if dims is None else tuple(dims))]
    target = tuple(int(d) for d in v.reshape(-1))
    if shapes.broadcast(x._shape, target) != target and x._shape is not None and \
            shapes.is_fully_defined(x._shape):
        raise InvalidArgumentError(
            f"cannot broadcast shape {shapes.fmt(x._shape)} to {shapes.fmt(target)}")
    return [(x.dtype, target)]


define_op("BroadcastTo", infer=_broadcast_to_infer)


def broadcast_to(input: Any, shape: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    s = shape_tensor(shape, "shape")
    return apply_op("BroadcastTo", [x, s], name=name or "BroadcastTo")[0]


@register_gradient("BroadcastTo")
def _broadcast_to_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [unbroadcast(grad, op.inputs[0]), None]


define_op("BroadcastGradientArgs", infer=lambda ins, a: [(dtypes.int32, (None,)),
                                                          (dtypes.int32, (None,))])
no_gradient("BroadcastGradientArgs")


def _static_unbroadcast_axes(n: int, xs: tuple, other: tuple) -> tuple[list, list] | None:
    """The axes to sum a gradient of rank `n` over to get back x's shape `xs`, when x was
    broadcast against an operand of shape `other`: (x's missing leading axes, x's size-1
    axes), or None when a dimension unknown at build time leaves it open. An axis where
    x's size is unknown needs no sum when the other operand's size there is 1 (the result's
    size is then x's own)."""
    lead = n - len(xs)
    pad = n - len(other)
    if lead < 0 or pad < 0:
        return None
    ones = []
    for i, d in enumerate(xs):
        o = 1 if i + lead < pad else other[i + lead - pad]
        if d == 1:
            if o != 1:
                ones.append(i + lead)
        elif d is None and o != 1:
            return None
    return list(range(lead)), ones


def unbroadcast(grad: Tensor, x: Tensor, other: Tensor | None = None) -> Tensor:
    """Sum `grad` (of the broadcast shape) down to the shape of `x`; `other` is the operand
    x was broadcast against, when there is one (it lets the axes be found at build time
    when x's batch size is unknown: no run-time shape arithmetic then)."""
    from actorflow.ops import math_ops

    gs, xs = grad._shape, x._shape
    if (other is not None and gs is not None and xs is not None and other._shape is not None
            and not shapes.is_fully_defined(xs)):
        axes = _static_unbroadcast_axes(len(gs), tuple(xs), tuple(other._shape))
        if axes is not None:
            lead, ones = axes
            out = math_ops.reduce_sum(grad, ones, keepdims=True) if ones else grad
            return math_ops.reduce_sum(out, lead) if lead else out
    if gs is not None and shapes.is_fully_defined(xs) and len(gs) >= len(xs):  # type: ignore
        if gs == xs:
            return grad
        # Summing over an axis where x has size 1 is right whether or not it was broadcast.
        lead = len(gs) - len(xs)  # type: ignore[arg-type]
        axes = list(range(lead)) + [lead + i for i, d in enumerate(xs) if d == 1]  # type: ignore
        out = math_ops.reduce_sum(grad, axes) if axes else grad
        return out if out._shape == xs else reshape(out, xs)
    rx, _ = apply_op("BroadcastGradientArgs", [shape(x), shape(grad)])
    return reshape(math_ops.reduce_sum(grad, rx), shape(x))


def restore_reduced_dims(grad: Tensor, op: Operation) -> Tensor:
    """Reshape the gradient of a reduction so it broadcasts against the reduced input."""
    x = op.inputs[0]
    if op.attrs.get("keepdims"):
        return grad
    if len(op.inputs) == 1 and x._shape is not None:
        axes = op.attrs.get("axis")
        rank = len(x._shape)
        axes = range(rank) if axes is None else axes
        kept = [1 if i in axes else d for i, d in enumerate(x._shape)]
        if None not in kept:
            return reshape(grad, kept)
        kept_t = [1 if i in axes else None for i in range(rank)]
        return reshape(grad, _dynamic_kept(x, kept_t))
    # dynamic axes: keep every dim of x except the reduced ones, computed at run time
    return reshape(grad, apply_op("ReducedShape", [shape(x), op.inputs[1]])[0])


def _dynamic_kept(x: Tensor, kept: list[int | None]) -> Tensor:
    from actorflow.ops import math_ops
    s = shape(x)
    mask = constant(np.array([0 if k == 1 else 1 for k in kept], np.int32))
    ones_ = constant(np.array([1 if k == 1 else 0 for k in kept], np.int32))
    return math_ops.add(math_ops.multiply(s, mask), ones_)


define_op("ReducedShape", infer=lambda ins, a: [(dtypes.int32, ins[0]._shape)])
no_gradient("ReducedShape")


def shape_n(input: list[Any], out_type: Any = dtypes.int32, name: str | None = None,
            ) -> list[Tensor]:
    """The shape of each of `input`."""
    return [shape(x, out_type=out_type) for x in input]


# ---- size / rank ------------------------------------------------------------------------
define_op("Size", infer=lambda ins, a: [(dtypes.as_dtype(a.get("out_type", dtypes.int32)), ())])
define_op("Rank", infer=lambda ins, a: [(dtypes.int32, ())])
no_gradient("Size")
no_gradient("Rank")


def size(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    """The number of elements of `input` (a constant when its static shape is fully known)."""
    x = convert_to_tensor(input)
    dt = dtypes.as_dtype(out_type)
    n = shapes.num_elements(x._shape)
    if n is not None:
        return constant(np.array(n, dt.np), name=name or "Size")
    return apply_op("Size", [x], {"out_type": dt}, name=name or "Size")[0]


def rank(input: Any, name: str | None = None) -> Tensor:
    """The number of dimensions of `input` (a constant when its rank is known)."""
    x = convert_to_tensor(input)
    if x._shape is not None:
        return constant(np.array(len(x._shape), np.int32), name=name or "Rank")
    return apply_op("Rank", [x], name=name or "Rank")[0]


# ---- expand_dims / squeeze --------------------------------------------------------------
def _expand_dims_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    if x._shape is None:
        return [(x.dtype, None)]
    dims = list(x._shape)
    dims.insert(normalize_axis(attrs["axis"], len(dims), "expand_dims", extra=1), 1)
    return [(x.dtype, tuple(dims))]


define_op("ExpandDims", infer=_expand_dims_infer)


def expand_dims(input: Any, axis: Any, name: str | None = None) -> Tensor:
    """Insert a dimension of size 1 at `axis` (``-1`` appends one)."""
    x = convert_to_tensor(input)
    ax = normalize_axis(required_axis(axis, "expand_dims"), rank_of(x), "expand_dims", extra=1)
    return apply_op("ExpandDims", [x], {"axis": ax}, name=name or "ExpandDims")[0]


@register_gradient("ExpandDims")
def _expand_dims_grad(op: Operation, grad: Any) -> list[Any]:
    return [reshape_like(dense(grad), op.inputs[0])]


def _squeeze_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    axes = attrs.get("axis")
    if x._shape is None:
        return [(x.dtype, None)]
    if axes is None:
        if None in x._shape:
            return [(x.dtype, None)]  # which dims go is known only at run time
        return [(x.dtype, tuple(d for d in x._shape if d != 1))]
    for a in axes:
        if x._shape[a] not in (1, None):
            raise InvalidArgumentError(
                f"squeeze: dimension {a} of '{x.name}' (shape {shapes.fmt(x._shape)}) has size "
                f"{x._shape[a]}, not 1; squeeze only removes dimensions of size 1")
    return [(x.dtype, tuple(d for i, d in enumerate(x._shape) if i not in axes))]


define_op("Squeeze", infer=_squeeze_infer)


def squeeze(input: Any, axis: Any = None, name: str | None = None) -> Tensor:
    """Remove dimensions of size 1: those in `axis`, or all of them."""
    x = convert_to_tensor(input)
    axes = None
    if axis is not None:
        r = rank_of(x)
        listed = static_ints(axis, "squeeze: axis")
        if listed is None:
            raise InvalidArgumentError("squeeze needs axes known when the graph is built")
        if r is None and any(a < 0 for a in listed):
            raise InvalidArgumentError(
                f"squeeze: negative axes {listed} need a known rank, and '{x.name}' has an "
                f"unknown shape; give non-negative axes or set its shape")
        axes = tuple(sorted({normalize_axis(a, r, "squeeze") for a in listed}))
    return apply_op("Squeeze", [x], {"axis": axes}, name=name or "Squeeze")[0]


@register_gradient("Squeeze")
def _squeeze_grad(op: Operation, grad: Any) -> list[Any]:
    return [reshape_like(dense(grad), op.inputs[0])]


# ---- transpose --------------------------------------------------------------------------
def _transpose_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    perm = attrs.get("perm")
    if perm is None:
        return [(x.dtype, None if x._shape is None else tuple(reversed(x._shape)))]
    if sorted(perm) != list(range(len(perm))):
        raise InvalidArgumentError(f"transpose: perm {list(perm)} is not a permutation of "
                                   f"0..{len(perm) - 1}")
    if x._shape is None:
        return [(x.dtype, (None,) * len(perm))]
    if len(perm) != len(x._shape):
        raise InvalidArgumentError(
            f"transpose: perm {list(perm)} has {len(perm)} entries but '{x.name}' has rank "
            f"{len(x._shape)} (shape {shapes.fmt(x._shape)})")
    return [(x.dtype, tuple(x._shape[p] for p in perm))]


define_op("Transpose", infer=_transpose_infer)


def transpose(a: Any, perm: Any = None, name: str | None = None, conjugate: bool = False,
              ) -> Tensor:
    """Permute the dimensions: output dim i is input dim ``perm[i]`` (default: reversed)."""
    x = convert_to_tensor(a)
    if perm is None:
        p = None if x._shape is None else list(range(len(x._shape)))[::-1]
    else:
        p = static_ints(perm, "transpose: perm")
        if p is None:
            raise InvalidArgumentError("transpose needs a perm known when the graph is built")
        r = rank_of(x)
        if r is not None and len(p) != r:
            raise InvalidArgumentError(
                f"transpose: perm {p} has {len(p)} entries but '{x.name}' has rank {r} (shape "
                f"{shapes.fmt(x._shape)}); give one entry per dimension")
        p = [normalize_axis(d, len(p), "transpose") for d in p]
    return apply_op("Transpose", [x], {"perm": p}, name=name or "transpose")[0]


@register_gradient("Transpose")
def _transpose_grad(op: Operation, grad: Any) -> list[Any]:
    perm = op.attrs["perm"]
    inverse = None if perm is None else [int(i) for i in np.argsort(perm)]
    return [transpose(dense(grad), inverse)]


# ---- tile -------------------------------------------------------------------------------
def _tile_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    m = attrs.get("multiples")
    if m is None:
        n = ins[1]._shape[0] if ins[1]._shape else None
        r = rank_of(x) if x._shape is not None else n
        return [(x.dtype, None if r is None else (None,) * r)]
    if x._shape is None:
        return [(x.dtype, (None,) * len(m))]
    if len(m) != len(x._shape):
        raise InvalidArgumentError(
            f"tile: multiples {list(m)} has {len(m)} entries but '{x.name}' has rank "
            f"{len(x._shape)} (shape {shapes.fmt(x._shape)}); give one per dimension")
    return [(x.dtype, tuple(None if d is None else d * k
                            for d, k in zip(x._shape, m, strict=True)))]


def _tile_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    g, s = ins[0], ins[1]
    dims = partial_shape(s)
    if dims is not None and None not in dims:
        return [(g.dtype, tuple(dims))]
    m = attrs.get("multiples")
    if g._shape is None or m is None:
        return [(g.dtype, None if g._shape is None else (None,) * len(g._shape))]
    return [(g.dtype, tuple(None if d is None or k == 0 else d // k
                            for d, k in zip(g._shape, m, strict=True)))]


define_op("Tile", infer=_tile_infer)
define_op("TileGrad", infer=_tile_grad_infer)


def tile(input: Any, multiples: Any, name: str | None = None) -> Tensor:
    """Repeat `input` ``multiples[i]`` times along dimension i."""
    x = convert_to_tensor(input)
    m = static_ints(multiples, "tile: multiples")
    if m is not None:
        if any(k < 0 for k in m):
            raise InvalidArgumentError(f"tile: multiples {m} must not be negative")
        return apply_op("Tile", [x], {"multiples": m}, name=name or "Tile")[0]
    mt = convert_to_tensor(multiples)
    if not mt.dtype.is_integer:
        raise InvalidArgumentError(f"tile: multiples must be ints, got {mt.dtype.name}")
    return apply_op("Tile", [x, mt], name=name or "Tile")[0]


@register_gradient("Tile")
def _tile_grad(op: Operation, grad: Any) -> list[Any]:
    x = op.inputs[0]
    s = constant(np.array(x._shape, np.int32)) if shapes.is_fully_defined(x._shape) else shape(x)
    ins = [dense(grad), s, *op.inputs[1:]]
    return [apply_op("TileGrad", ins, dict(op.attrs))[0]] + [None] * (len(op.inputs) - 1)


@register_gradient("TileGrad")
def _tile_grad_grad(op: Operation, grad: Any) -> list[Any]:
    m = op.attrs.get("multiples")
    return [tile(dense(grad), m if m is not None else op.inputs[2])] + \
        [None] * (len(op.inputs) - 1)


# ---- pad --------------------------------------------------------------------------------
def _pad_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    p = attrs.get("paddings")
    if p is None:
        n = ins[1]._shape[0] if ins[1]._shape else None
        r = rank_of(x) if x._shape is not None else n
        return [(x.dtype, None if r is None else (None,) * r)]
    if x._shape is None:
        return [(x.dtype, (None,) * len(p))]
    if len(p) != len(x._shape):
        raise InvalidArgumentError(
            f"pad: paddings has {len(p)} rows but '{x.name}' has rank {len(x._shape)} (shape "
            f"{shapes.fmt(x._shape)}); give one [before, after] pair per dimension")
    return [(x.dtype, tuple(None if d is None else d + lo + hi
                            for d, (lo, hi) in zip(x._shape, p, strict=True)))]


define_op("Pad", infer=_pad_infer)


def pad(tensor: Any, paddings: Any, mode: str = "CONSTANT", constant_values: Any = 0,
        name: str | None = None) -> Tensor:
    """Pad dimension i with ``paddings[i][0]`` values before and ``paddings[i][1]`` after,
    all equal to `constant_values` (mode "CONSTANT"), or mirrored from the tensor ("REFLECT":
    without the edge, "SYMMETRIC": with it; `counting_ops.mirror_pad`)."""
    x = convert_to_tensor(tensor)
    if str(mode).upper() != "CONSTANT":
        from actorflow.ops.counting_ops import mirror_pad
        return mirror_pad(x, paddings, mode, name=name)
    cv = static_value(constant_values)
    if cv is None or cv.size != 1:
        raise InvalidArgumentError(f"pad: constant_values must be a scalar known when the graph "
                                   f"is built, got {constant_values!r}")
    attrs: dict[str, Any] = {"constant_value": cv.reshape(()).item()}
    p = static_value(paddings)
    if p is not None:
        if p.ndim != 2 or p.shape[1] != 2 or (p.size and p.dtype.kind not in "iu"):
            raise InvalidArgumentError(f"pad: paddings must be int pairs [[before, after], ...], "
                                       f"got {paddings!r}")
        if (p < 0).any():
            raise InvalidArgumentError(f"pad: paddings {p.tolist()} must not be negative")
        attrs["paddings"] = [[int(a), int(b)] for a, b in p]
        return apply_op("Pad", [x], attrs, name=name or "Pad")[0]
    pt = convert_to_tensor(paddings)
    if not pt.dtype.is_integer:
        raise InvalidArgumentError(f"pad: paddings must be ints, got {pt.dtype.name}")
    return apply_op("Pad", [x, pt], attrs, name=name or "Pad")[0]


@register_gradient("Pad")
def _pad_grad(op: Operation, grad: Any) -> list[Any]:
    grad = dense(grad)
    p = op.attrs.get("paddings")
    if p is not None:
        spec = [["s", lo, -hi if hi else None, None] for lo, hi in p]
        return [strided_slice_spec(grad, spec)]
    x, pt = op.inputs
    return [slice(grad, pt[:, 0], shape(x)), None]

