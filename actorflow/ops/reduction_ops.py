"""Reductions: reduce_sum/mean/max/min/prod/any/all/logsumexp, argmax/argmin, and
unsorted_segment_sum (which densifies sparse gradients). Re-exported by `math_ops`.

A reduction's axes are a static attribute ``axis`` (a sorted tuple of non-negative ints, or
None for all axes) when known at build time, which is the fast path; a tensor of axes is a
second input otherwise. ``keepdims`` keeps reduced axes as size 1.

    s = af.reduce_sum(x, axis=[0, -1], keepdims=True)

Element-wise builders (for gradients) come from `math_ops` at call time: `math_ops` imports
this module, so this one must not import it at load time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    constant,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import array_ops
from actorflow.ops.core_ops import stop_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
           "reduce_any", "reduce_all", "reduce_logsumexp", "argmax", "argmin",
           "unsorted_segment_sum", "reduce_variance", "reduce_std"]


def _m() -> Any:
    from actorflow.ops import math_ops
    return math_ops


# ---- axes and inference -----------------------------------------------------------------
def _axes(axis: Any, rank: int | None, what: str) -> tuple[int, ...] | None:
    """Normalise a static axis argument; None means all axes."""
    if axis is None:
        return None
    ax = [int(a) for a in np.reshape(np.asarray(axis), -1)]
    if rank is not None:
        for a in ax:
            if not -rank <= a < rank:
                raise InvalidArgumentError(
                    f"{what}: axis {a} is out of range for a tensor of rank {rank} (use "
                    f"{-rank}..{rank - 1})")
        ax = [a % rank for a in ax]
    return tuple(sorted(set(ax)))


def _reduce_infer(want_bool: bool) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        dt = ins[0].dtype
        if dt.is_bool != want_bool or dt.is_resource:
            raise InvalidArgumentError(
                f"this reduction needs a {'bool' if want_bool else 'numeric'} tensor, got "
                f"'{ins[0].name}' of dtype {dt.name}; convert it with af.cast")
        return _reduced_shape(ins, attrs)
    return infer


def _reduced_shape(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    dt = x.dtype
    keep = attrs.get("keepdims", False)
    if x._shape is None:
        return [(dt, None)]
    rank = len(x._shape)
    if len(ins) > 1:
        return [(dt, (None,) * rank if keep else None)]
    axes = attrs.get("axis")
    axes = tuple(range(rank)) if axes is None else axes
    for a in axes:
        if a >= rank:
            raise InvalidArgumentError(
                f"axis {a} is out of range for '{x.name}' of shape {shapes.fmt(x._shape)}")
    if keep:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x._shape))
    else:
        shape = tuple(d for i, d in enumerate(x._shape) if i not in axes)
    return [(dt, shape)]


for _t in ("Sum", "Mean", "Prod", "Max", "Min"):
    define_op(_t, infer=_reduce_infer(False))
for _t in ("Any", "All"):
    define_op(_t, infer=_reduce_infer(True))
no_gradient("Any")
no_gradient("All")


def _reduce(op: str, x: Any, axis: Any, keepdims: Any, name: str | None,
            reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    x = convert_to_tensor(x)
    if axis is None:
        axis = reduction_indices
    keep = bool(keepdims if keepdims is not None else keep_dims)
    if isinstance(axis, Tensor):
        value = constant_value(axis)
        if value is None:
            return apply_op(op, [x, axis], {"keepdims": keep}, name=name or op)[0]
        axis = value
    rank = None if x._shape is None else len(x._shape)
    attrs = {"axis": _axes(axis, rank, op), "keepdims": keep}
    return apply_op(op, [x], attrs, name=name or op)[0]


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Sum", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_mean(input_tensor: Any, axis: Any = None, keepdims: Any = None,
                name: str | None = None, reduction_indices: Any = None,
                keep_dims: Any = None) -> Tensor:
    """The mean; for integer tensors, the sum divided by the count rounded toward zero."""
    return _reduce("Mean", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_max(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Max", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_min(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Min", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_prod(input_tensor: Any, axis: Any = None, keepdims: Any = None,
                name: str | None = None, reduction_indices: Any = None,
                keep_dims: Any = None) -> Tensor:
    return _reduce("Prod", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_any(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Any", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_all(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("All", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_logsumexp(input_tensor: Any, axis: Any = None, keepdims: Any = None,
                     name: str | None = None, reduction_indices: Any = None,
                     keep_dims: Any = None) -> Tensor:
    """log(sum(exp(x))) computed stably: the maximum is subtracted first (where finite)."""
    m = _m()
    x = convert_to_tensor(input_tensor)
    if axis is None:
        axis = reduction_indices
    keep = bool(keepdims if keepdims is not None else keep_dims)
    top = stop_gradient(reduce_max(x, axis, keepdims=True))
    top = m.where(m.is_finite(top), top, constant(0, x.dtype))
    out = m.log(reduce_sum(m.exp(m.subtract(x, top)), axis, keepdims=keep))
    shift = top if keep else reduce_sum(top, axis)  # drops the size-1 axes
    return m.add(out, shift, name=name or "ReduceLogSumExp")


# ---- reduction gradients ----------------------------------------------------------------
def _broadcast_to_input(g: Tensor, x: Tensor) -> Tensor:
    target = x._shape if shapes.is_fully_defined(x._shape) else array_ops.shape(x)
    if g._shape == x._shape and shapes.is_fully_defined(x._shape):
        return g
    return array_ops.broadcast_to(g, target)


def _restore(grad: Tensor, op: Operation) -> Tensor:
    """`array_ops.restore_reduced_dims`, also when the input's rank is unknown at build time."""
    x = op.inputs[0]
    if op.outputs[0]._shape == () and grad._shape == ():
        return grad  # a full reduction: the scalar broadcasts against x as it is
    if len(op.inputs) == 1 and x._shape is None and not op.attrs.get("keepdims"):
        axes = op.attrs.get("axis")
        if axes is None:
            return grad  # a scalar: it broadcasts against x as it is
        kept = apply_op("ReducedShape", [array_ops.shape(x), constant(np.array(axes, np.int32))])
        return array_ops.reshape(grad, kept[0])
    return array_ops.restore_reduced_dims(grad, op)


def _same_reduction(op: Operation, t: Tensor, kind: str) -> Tensor:
    """The reduction `kind` of `t` over the same axes as `op`, with reduced dims restored."""
    attrs = {"keepdims": op.attrs.get("keepdims", False)}
    if len(op.inputs) > 1:
        r = apply_op(kind, [t, op.inputs[1]], attrs)[0]
    else:
        r = apply_op(kind, [t], {**attrs, "axis": op.attrs.get("axis")})[0]
    return _restore(r, op)


@register_gradient("Sum")
def _sum_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    g = _restore(grad, op)
    return [_broadcast_to_input(g, x)] + [None] * (len(op.inputs) - 1)


def _mean_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(ins[0].dtype, ins[1]._shape)]


# MeanGrad(grad, x) = grad / count broadcast to x's shape, count = x's elements per result
# element: one node for the Shape/Prod/FloorDiv/Cast/RealDiv/Reshape/BroadcastTo of TF's
# gradient, with the same values (its kernel divides by the count cast to grad's dtype)
define_op("MeanGrad", infer=_mean_grad_infer)


@register_gradient("Mean")
def _mean_grad(op: Operation, grad: Tensor) -> list[Any]:
    m = _m()
    x, y = op.inputs[0], op.outputs[0]
    if len(op.inputs) == 1:  # static axes: one MeanGrad node
        attrs = {"axis": op.attrs.get("axis"), "keepdims": op.attrs.get("keepdims", False)}
        return [apply_op("MeanGrad", [grad, x], attrs)[0]]
    nx, ny = shapes.num_elements(x._shape), shapes.num_elements(y._shape)
    if nx is not None and ny is not None:
        factor = constant(nx // max(ny, 1), grad.dtype)
    else:
        sx = reduce_prod(array_ops.shape(x))
        sy = m.maximum(reduce_prod(array_ops.shape(y)), 1)
        factor = m.cast(m.floordiv(sx, sy), grad.dtype)
    g = _restore(m.realdiv(grad, factor), op)
    return [_broadcast_to_input(g, x)] + [None] * (len(op.inputs) - 1)


@register_gradient("MeanGrad")
def _mean_grad_grad(op: Operation, grad: Tensor) -> list[Any]:
    # MeanGrad is linear in its first input; its adjoint is the mean over the same axes
    attrs = {"axis": op.attrs.get("axis"), "keepdims": op.attrs.get("keepdims", False)}
    return [apply_op("Mean", [grad], attrs)[0], None]


def _minmax_grad(op: Operation, grad: Tensor) -> list[Any]:
    """The gradient goes to the elements equal to the result, split equally between ties."""
    m = _m()
    x = op.inputs[0]
    y = _restore(op.outputs[0], op)
    g = _restore(grad, op)
    hits = m.cast(m.equal(y, x), grad.dtype)
    count = _same_reduction(op, hits, "Sum")
    return [m.multiply(m.realdiv(hits, count), g)] + [None] * (len(op.inputs) - 1)


register_gradient("Max")(_minmax_grad)
register_gradient("Min")(_minmax_grad)


def _prod_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(ins[0].dtype, ins[0]._shape)]


define_op("ProdGrad", infer=_prod_grad_infer)


@register_gradient("Prod")
def _prod_grad(op: Operation, grad: Tensor) -> list[Any]:
    # d prod / d x_i = product of the other elements of x_i's group; the ProdGrad kernel
    # computes it with exclusive cumulative products, so zeros are handled exactly.
    x = op.inputs[0]
    g = _restore(grad, op)
    if len(op.inputs) > 1:
        return [apply_op("ProdGrad", [x, g, op.inputs[1]])[0], None]
    return [apply_op("ProdGrad", [x, g], {"axis": op.attrs.get("axis")})[0]]


# ---- argmax / argmin --------------------------------------------------------------------
def _arg_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise InvalidArgumentError(f"needs a numeric tensor, got '{x.name}' of dtype "
                                   f"{x.dtype.name}")
    out = dtypes.as_dtype(attrs["output_type"])
    if out not in (dtypes.int32, dtypes.int64):
        raise InvalidArgumentError(f"output_type must be int32 or int64, got {out.name}")
    if x._shape is None:
        return [(out, None)]
    a = attrs["axis"]
    return [(out, tuple(d for i, d in enumerate(x._shape) if i != a))]


for _t in ("ArgMax", "ArgMin"):
    define_op(_t, infer=_arg_infer)
    no_gradient(_t)


def _arg(op: str, x: Any, axis: Any, output_type: Any, name: str | None) -> Tensor:
    x = convert_to_tensor(x)
    if isinstance(axis, Tensor):
        value = constant_value(axis)
        if value is None:
            raise InvalidArgumentError(f"{op}: the axis must be known when the graph is built")
        axis = value
    axis = 0 if axis is None else int(np.asarray(axis).reshape(()))
    if x._shape is not None:
        rank = len(x._shape)
        if not -rank <= axis < rank:
            raise InvalidArgumentError(
                f"{op}: axis {axis} is out of range for '{x.name}' of shape "
                f"{shapes.fmt(x._shape)}; it needs a tensor of rank 1 or more")
        axis %= rank
    attrs = {"axis": axis, "output_type": dtypes.as_dtype(output_type)}
    return apply_op(op, [x], attrs, name=name or op)[0]


def argmax(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = dtypes.int64) -> Tensor:
    """The index of the largest value along `axis` (default 0); the first one on ties."""
    return _arg("ArgMax", input, axis if axis is not None else dimension, output_type, name)


def argmin(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = dtypes.int64) -> Tensor:
    """The index of the smallest value along `axis` (default 0); the first one on ties."""
    return _arg("ArgMin", input, axis if axis is not None else dimension, output_type, name)


# ---- segment sums -----------------------------------------------------------------------
def _segment_infer(ins: list[Tensor], attrs: dict) -> list:
    data, ids, n = ins
    if not ids.dtype.is_integer or not n.dtype.is_integer:
        raise InvalidArgumentError(
            f"segment_ids and num_segments must be integers, got {ids.dtype.name} and "
            f"{n.dtype.name}")
    if not (data.dtype.is_floating or data.dtype.is_integer):
        raise InvalidArgumentError(f"data must be numeric, got {data.dtype.name}")
    if n._shape not in (None, ()):
        raise InvalidArgumentError(
            f"num_segments must be a scalar, got shape {shapes.fmt(n._shape)}")
    ds, is_ = data._shape, ids._shape
    if ds is None or is_ is None:
        return [(data.dtype, None)]
    if len(is_) > len(ds) or not shapes.is_compatible(ds[:len(is_)], is_):
        raise InvalidArgumentError(
            f"segment_ids of shape {shapes.fmt(is_)} must be a prefix of the shape of data "
            f"{shapes.fmt(ds)}")
    v = constant_value(n)
    rows = None if v is None else int(v)
    return [(data.dtype, (rows,) + tuple(ds[len(is_):]))]


define_op("UnsortedSegmentSum", infer=_segment_infer)


def unsorted_segment_sum(data: Any, segment_ids: Any, num_segments: Any,
                         name: str | None = None) -> Tensor:
    """out[i] = sum of data[j] over the j with segment_ids[j] == i, for i < num_segments.
    Negative ids are dropped; ids >= num_segments are an error at run time."""
    data = convert_to_tensor(data)
    ids = convert_to_tensor(segment_ids, preferred_dtype=dtypes.int32)
    n = convert_to_tensor(num_segments, preferred_dtype=ids.dtype)
    return apply_op("UnsortedSegmentSum", [data, ids, n], name=name or "UnsortedSegmentSum")[0]


def _gather_rows_infer(ins: list[Tensor], attrs: dict) -> list:
    params, ids = ins
    if params._shape is None or ids._shape is None:
        return [(params.dtype, None)]
    return [(params.dtype, tuple(ids._shape) + tuple(params._shape[1:]))]


# GatherDropNegatives(params, ids)[j] = params[ids[j]], or zeros where ids[j] < 0.
define_op("GatherDropNegatives", infer=_gather_rows_infer)


@register_gradient("UnsortedSegmentSum")
def _segment_sum_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [apply_op("GatherDropNegatives", [grad, op.inputs[1]])[0], None, None]


@register_gradient("GatherDropNegatives")
def _gather_rows_grad(op: Operation, grad: Tensor) -> list[Any]:
    params, ids = op.inputs
    if params._shape is not None and params._shape and params._shape[0] is not None:
        rows: Any = constant(params._shape[0], ids.dtype)
    elif params._shape:  # known rank: pick the first entry of the run-time shape
        first = constant(np.eye(1, len(params._shape), dtype=ids.dtype.np).reshape(-1))
        rows = reduce_sum(_m().multiply(array_ops.shape(params, out_type=ids.dtype), first))
    else:
        raise InvalidArgumentError(
            f"the gradient of '{op.name}' needs the rank of '{params.name}' (shape "
            f"{shapes.fmt(params._shape)})")
    return [unsorted_segment_sum(grad, ids, rows), None]


def reduce_variance(input_tensor: Any, axis: Any = None, keepdims: bool = False,
                    name: str | None = None) -> Tensor:
    """The (population) variance over `axis`: mean of squared deviations from the mean."""
    from actorflow.graph import name_scope
    from actorflow.ops import math_ops
    with name_scope(name, "reduce_variance"):
        x = convert_to_tensor(input_tensor)
        if not x.dtype.is_floating:
            raise InvalidArgumentError(f"reduce_variance needs a floating tensor, got "
                                       f"{x.dtype.name}")
        mean = reduce_mean(x, axis, keepdims=True)
        return reduce_mean(math_ops.square(math_ops.subtract(x, mean)), axis,
                           keepdims=keepdims)


def reduce_std(input_tensor: Any, axis: Any = None, keepdims: bool = False,
               name: str | None = None) -> Tensor:
    """The (population) standard deviation over `axis`."""
    from actorflow.graph import name_scope
    from actorflow.ops import math_ops
    with name_scope(name, "reduce_std"):
        return math_ops.sqrt(reduce_variance(input_tensor, axis, keepdims))
