"""Scans, sorting, reversal and special functions: cumsum, cumprod, top_k, sort, argsort,
unique, reverse, lgamma, digamma, erf, erfc; with their gradients.

    af.cumsum([1, 2, 3], exclusive=True)          # [0, 1, 3]
    values, indices = af.nn.top_k(logits, k=5)    # the 5 largest per row, descending

Gradients: cumsum's is the reversed cumsum of the gradient; cumprod's (for non-zero inputs,
as TF's) is cumsum(y * g, reversed) / x; top_k's scatters the gradient back to the chosen
positions; reverse's reverses the gradient; lgamma' = digamma, erf' = 2/sqrt(pi) exp(-x^2).
unique and the index outputs are not differentiable.
"""

from __future__ import annotations

import math
from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
    same_as_input,
)
from actorflow.ops import array_ops, math_ops, reduction_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["cumsum", "cumprod", "top_k", "sort", "argsort", "unique", "reverse",
           "reverse_v2", "lgamma", "digamma", "polygamma", "erf", "erfc"]


def _scan_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(ins[0].dtype, ins[0]._shape)]


define_op("Cumsum", infer=_scan_infer)
define_op("Cumprod", infer=_scan_infer)


def _axis_t(axis: Any) -> Tensor:
    return convert_to_tensor(axis, dtype=dtypes.int32) if not isinstance(axis, Tensor) else axis


def cumsum(x: Any, axis: Any = 0, exclusive: bool = False, reverse: bool = False,
           name: str | None = None) -> Tensor:
    """Running sums along `axis` (exclusive: starting at 0; reverse: from the end)."""
    x = convert_to_tensor(x)
    return apply_op("Cumsum", [x, _axis_t(axis)], {"exclusive": bool(exclusive),
                                                    "reverse": bool(reverse)},
                    name=name or "Cumsum")[0]


def cumprod(x: Any, axis: Any = 0, exclusive: bool = False, reverse: bool = False,
            name: str | None = None) -> Tensor:
    """Running products along `axis`."""
    x = convert_to_tensor(x)
    return apply_op("Cumprod", [x, _axis_t(axis)], {"exclusive": bool(exclusive),
                                                     "reverse": bool(reverse)},
                    name=name or "Cumprod")[0]


@register_gradient("Cumsum")
def _cumsum_grad(op: Operation, grad: Tensor) -> list[Any]:
    ex, rev = op.attrs["exclusive"], op.attrs["reverse"]
    return [cumsum(grad, op.inputs[1], exclusive=ex, reverse=not rev), None]


@register_gradient("Cumprod")
def _cumprod_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, axis = op.inputs
    ex, rev = op.attrs["exclusive"], op.attrs["reverse"]
    y = op.outputs[0]
    out = cumsum(math_ops.multiply(y, grad), axis, exclusive=ex, reverse=not rev)
    return [math_ops.truediv(out, x), None]


# ---- top_k / sort -----------------------------------------------------------------------
def _top_k_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    if x.dtype.is_bool or x.dtype.is_resource:
        raise InvalidArgumentError(f"top_k needs a numeric tensor, got {x.dtype.name}")
    s = x._shape
    kk = attrs.get("k_static")
    if s is not None:
        if len(s) == 0:
            raise InvalidArgumentError("top_k needs a tensor of rank >= 1, got a scalar")
        if kk is not None and s[-1] is not None and kk > s[-1]:
            raise InvalidArgumentError(f"top_k: k={kk} is larger than the last dimension "
                                       f"({s[-1]})")
        s = (*s[:-1], kk)
    return [(x.dtype, s), (dtypes.int32, s)]


define_op("TopKV2", infer=_top_k_infer)


def top_k(input: Any, k: Any = 1, sorted: bool = True,  # noqa: A002
          name: str | None = None) -> tuple[Tensor, Tensor]:
    """(values, indices) of the k largest entries of each last-axis row, largest first
    (the lower index first among equal values)."""
    x = convert_to_tensor(input)
    kt = convert_to_tensor(k, dtype=dtypes.int32) if not isinstance(k, Tensor) else k
    ks = int(k) if isinstance(k, int) else None
    v, i = apply_op("TopKV2", [x, kt], {"k_static": ks, "sorted": bool(sorted)},
                    name=name or "TopKV2")
    return v, i


@register_gradient("TopKV2")
def _top_k_grad(op: Operation, grad: Tensor, _grad_idx: Any = None) -> list[Any]:
    x = op.inputs[0]
    idx = op.outputs[1]
    if grad is None:
        return [None, None]
    with name_scope("TopKGrad"):
        # Scatter each row's gradient to the chosen positions: flatten rows, offset indices.
        shp = array_ops.shape(x)
        n = _last(shp)
        rows = math_ops.floordiv(array_ops.size(x), n)
        kdim = _last(array_ops.shape(idx))
        offs = array_ops.expand_dims(math_ops.multiply(_range(rows), n), -1)
        flat_i = array_ops.reshape(math_ops.add(array_ops.reshape(idx, [-1, kdim]), offs),
                                   [-1])
        flat_g = array_ops.reshape(grad, [-1])
        dense = reduction_ops.unsorted_segment_sum(flat_g, flat_i, array_ops.size(x))
        return [array_ops.reshape(dense, shp), None]


def _last(shp: Tensor) -> Tensor:
    from actorflow.ops import index_ops
    return index_ops.gather(shp, math_ops.subtract(array_ops.size(shp), 1))


def _range(n: Any) -> Tensor:
    from actorflow.ops.partition_ops import range as range_
    return range_(0, n, 1)


def sort(values: Any, axis: int = -1, direction: str = "ASCENDING",
         name: str | None = None) -> Tensor:
    """The values sorted along `axis` (ASCENDING or DESCENDING)."""
    return _sorted(values, axis, direction, name or "sort")[0]


def argsort(values: Any, axis: int = -1, direction: str = "ASCENDING", stable: bool = False,
            name: str | None = None) -> Tensor:
    """The indices (int32) that sort `values` along `axis`."""
    return _sorted(values, axis, direction, name or "argsort")[1]


def _sorted(values: Any, axis: int, direction: str, name: str) -> tuple[Tensor, Tensor]:
    if direction not in ("ASCENDING", "DESCENDING"):
        raise InvalidArgumentError(f"direction must be 'ASCENDING' or 'DESCENDING', got "
                                   f"{direction!r}")
    with name_scope(name):
        x = convert_to_tensor(values)
        r = x.shape.rank
        if r is None:
            raise InvalidArgumentError("sort needs a tensor of known rank")
        ax = axis % r if r else 0
        perm = list(range(r))
        if ax != r - 1:
            perm[ax], perm[-1] = perm[-1], perm[ax]
            x = array_ops.transpose(x, perm)
        n = int(x.shape[-1]) if x.shape[-1] is not None else _last(array_ops.shape(x))
        key = x if direction == "DESCENDING" else math_ops.negative(x)
        v, i = top_k(key, n)
        if direction == "ASCENDING":
            v = math_ops.negative(v)
        if ax != r - 1:
            v, i = array_ops.transpose(v, perm), array_ops.transpose(i, perm)
        return v, i


# ---- unique, reverse ---------------------------------------------------------------------
def _unique_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(ins[0].dtype, (None,)), (attrs["out_idx"], ins[0]._shape)]


define_op("Unique", infer=_unique_infer)
no_gradient("Unique")


def unique(x: Any, out_idx: Any = dtypes.int32, name: str | None = None) -> tuple[Tensor, Tensor]:
    """(y, idx): the distinct values of 1-D `x` in order of first occurrence, and for each
    element of x its index in y."""
    x = convert_to_tensor(x)
    y, i = apply_op("Unique", [x], {"out_idx": dtypes.as_dtype(out_idx)}, name=name or "Unique")
    return y, i


define_op("ReverseV2", infer=lambda ins, attrs: [(ins[0].dtype, ins[0]._shape)])


def reverse(tensor: Any, axis: Any, name: str | None = None) -> Tensor:
    """`tensor` with the order of its elements reversed along each of `axis`."""
    x = convert_to_tensor(tensor)
    ax = convert_to_tensor(axis, dtype=dtypes.int32) if not isinstance(axis, Tensor) else axis
    return apply_op("ReverseV2", [x, ax], name=name or "ReverseV2")[0]


reverse_v2 = reverse


@register_gradient("ReverseV2")
def _reverse_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [reverse(grad, op.inputs[1]), None]


# ---- special functions ------------------------------------------------------------------
def _float_only(what: str) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        if not ins[0].dtype.is_floating:
            raise InvalidArgumentError(f"{what} needs a floating tensor, got "
                                       f"{ins[0].dtype.name}; convert it with af.cast")
        return same_as_input(ins, attrs)
    return infer


for _op in ("Lgamma", "Digamma", "Erf", "Erfc"):
    define_op(_op, infer=_float_only(_op.lower()))


def lgamma(x: Any, name: str | None = None) -> Tensor:
    """log|Gamma(x)|."""
    return apply_op("Lgamma", [convert_to_tensor(x)], name=name or "Lgamma")[0]


def digamma(x: Any, name: str | None = None) -> Tensor:
    """The derivative of lgamma."""
    return apply_op("Digamma", [convert_to_tensor(x)], name=name or "Digamma")[0]


def erf(x: Any, name: str | None = None) -> Tensor:
    return apply_op("Erf", [convert_to_tensor(x)], name=name or "Erf")[0]


def erfc(x: Any, name: str | None = None) -> Tensor:
    return apply_op("Erfc", [convert_to_tensor(x)], name=name or "Erfc")[0]


@register_gradient("Lgamma")
def _lgamma_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [math_ops.multiply(grad, digamma(op.inputs[0]))]


@register_gradient("Erf")
def _erf_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    return [math_ops.multiply(grad, math_ops.multiply(
        2.0 / math.sqrt(math.pi), math_ops.exp(math_ops.negative(math_ops.square(x)))))]


@register_gradient("Erfc")
def _erfc_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    return [math_ops.multiply(grad, math_ops.multiply(
        -2.0 / math.sqrt(math.pi), math_ops.exp(math_ops.negative(math_ops.square(x)))))]


define_op("Polygamma", infer=lambda ins, attrs: [(ins[1].dtype, _bshape(ins))])


def _bshape(ins: list[Tensor]) -> Any:
    from actorflow import shapes
    return shapes.broadcast(ins[0]._shape, ins[1]._shape)


def polygamma(a: Any, x: Any, name: str | None = None) -> Tensor:
    """The a-th derivative of digamma at x (a a non-negative integer, as a float tensor)."""
    x = convert_to_tensor(x)
    at = convert_to_tensor(a, dtype=x.dtype) if not isinstance(a, Tensor) else a
    return apply_op("Polygamma", [at, x], name=name or "Polygamma")[0]


@register_gradient("Digamma")
def _digamma_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [math_ops.multiply(grad, polygamma(1.0, op.inputs[0]))]


@register_gradient("Polygamma")
def _polygamma_grad(op: Operation, grad: Tensor) -> list[Any]:
    a, x = op.inputs
    g = math_ops.multiply(grad, polygamma(math_ops.add(a, 1.0), x))
    return [None, array_ops.unbroadcast(g, x)]
