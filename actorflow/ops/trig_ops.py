"""Trigonometric and hyperbolic ops (tan, asin, acos, atan, atan2, sinh, cosh, asinh, acosh,
atanh) with their gradients, and small composites TF1 has at the top level: div_no_nan,
xdivy, xlogy, accumulate_n, roll, invert_permutation, and the activations swish, gelu and
crelu.

    af.atan2(y, x)              # the angle of (x, y), in (-pi, pi]
"""

from __future__ import annotations

import math
from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import (
    apply_op,
    broadcast_binary,
    convert_to_tensor,
    define_op,
    register_gradient,
    same_as_input,
)
from actorflow.ops import array_ops, compare_ops, index_ops, join_ops, math_ops
from actorflow.ops.compare_ops import convert_operands
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh",
           "div_no_nan", "divide_no_nan", "xdivy", "xlogy", "accumulate_n", "roll",
           "invert_permutation", "swish", "gelu", "crelu"]

_UNARY = ("Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh")


def _float_infer(ins: list[Tensor], attrs: dict) -> list:
    if not ins[0].dtype.is_floating:
        raise InvalidArgumentError(f"this op needs a floating tensor, got {ins[0].dtype.name} "
                                   f"('{ins[0].name}'); convert it with af.cast")
    return same_as_input(ins, attrs)


for _op in _UNARY:
    define_op(_op, infer=_float_infer)
define_op("Atan2", infer=broadcast_binary)


def _unary(op: str) -> Any:
    def f(x: Any, name: str | None = None) -> Tensor:
        return apply_op(op, [convert_to_tensor(x)], name=name or op)[0]
    f.__name__ = op.lower()
    return f


tan, asin, acos, atan = _unary("Tan"), _unary("Asin"), _unary("Acos"), _unary("Atan")
sinh, cosh = _unary("Sinh"), _unary("Cosh")
asinh, acosh, atanh = _unary("Asinh"), _unary("Acosh"), _unary("Atanh")


def atan2(y: Any, x: Any, name: str | None = None) -> Tensor:
    y, x = convert_operands([y, x], "atan2")
    return apply_op("Atan2", [y, x], name=name or "Atan2")[0]


def _sq(x: Tensor) -> Tensor:
    return math_ops.square(x)


_GRADS = {
    "Tan": lambda x, y: math_ops.add(1.0, _sq(y)),
    "Asin": lambda x, y: math_ops.rsqrt(math_ops.subtract(1.0, _sq(x))),
    "Acos": lambda x, y: math_ops.negative(math_ops.rsqrt(math_ops.subtract(1.0, _sq(x)))),
    "Atan": lambda x, y: math_ops.reciprocal(math_ops.add(1.0, _sq(x))),
    "Sinh": lambda x, y: cosh(x),
    "Cosh": lambda x, y: sinh(x),
    "Asinh": lambda x, y: math_ops.rsqrt(math_ops.add(_sq(x), 1.0)),
    "Acosh": lambda x, y: math_ops.rsqrt(math_ops.subtract(_sq(x), 1.0)),
    "Atanh": lambda x, y: math_ops.reciprocal(math_ops.subtract(1.0, _sq(x))),
}


def _register(op: str) -> None:
    @register_gradient(op)
    def _grad(o: Operation, grad: Tensor) -> list[Any]:
        return [math_ops.multiply(grad, _GRADS[op](o.inputs[0], o.outputs[0]))]


for _op in _UNARY:
    _register(_op)


@register_gradient("Atan2")
def _atan2_grad(op: Operation, grad: Tensor) -> list[Any]:
    y, x = op.inputs
    den = math_ops.add(_sq(x), _sq(y))
    gy = math_ops.multiply(grad, math_ops.truediv(x, den))
    gx = math_ops.multiply(grad, math_ops.truediv(math_ops.negative(y), den))
    return [array_ops.unbroadcast(gy, y), array_ops.unbroadcast(gx, x)]


# ---- small composites -----------------------------------------------------------------------
def div_no_nan(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y, and 0 where y is 0."""
    with name_scope(name, "div_no_nan"):
        x, y = convert_operands([x, y], "div_no_nan")
        zero = compare_ops.equal(y, compare_ops.cast(0, y.dtype))
        safe = compare_ops.where(zero, array_ops.ones_like(y), y)
        q = math_ops.truediv(x, safe)
        return compare_ops.where(zero, array_ops.zeros_like(q), q)


divide_no_nan = div_no_nan


def _where_x_zero(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(x == 0, y where x is not 0, else 1): a safe operand, so that no NaN reaches the
    gradient from the branch that is not taken."""
    zero = compare_ops.equal(x, compare_ops.cast(0, x.dtype))
    return zero, compare_ops.where(zero, array_ops.ones_like(y) * array_ops.ones_like(x), y)


def xdivy(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y, and 0 where x is 0 (even where y is 0)."""
    with name_scope(name, "Xdivy"):
        x, y = convert_operands([x, y], "xdivy")
        zero, safe = _where_x_zero(x, y)
        q = math_ops.truediv(x, safe)
        return compare_ops.where(zero, array_ops.zeros_like(q), q)


def xlogy(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x * log(y), and 0 where x is 0 (even where y is 0)."""
    with name_scope(name, "Xlogy"):
        x, y = convert_operands([x, y], "xlogy")
        zero, safe = _where_x_zero(x, y)
        p = math_ops.multiply(x, math_ops.log(safe))
        return compare_ops.where(zero, array_ops.zeros_like(p), p)


def accumulate_n(inputs: list[Any], shape: Any = None, tensor_dtype: Any = None,
                 name: str | None = None) -> Tensor:
    return math_ops.add_n(inputs, name=name)


def roll(input: Any, shift: Any, axis: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """Elements shifted by `shift` along `axis`, wrapping around (static shifts and axes)."""
    with name_scope(name, "Roll"):
        x = convert_to_tensor(input)
        shifts = [int(shift)] if isinstance(shift, int) else [int(s) for s in shift]
        axes = [int(axis)] if isinstance(axis, int) else [int(a) for a in axis]
        for s, a in zip(shifts, axes, strict=True):
            n = x.shape[a]
            if n is None:
                raise InvalidArgumentError("roll needs the rolled axes' sizes known")
            n = int(n)
            if n == 0:
                continue
            k = s % n
            if k == 0:
                continue
            r = x.shape.rank
            a = a % r
            head = index_ops.slice_(x, [0] * r, [-1] * a + [n - k] + [-1] * (r - a - 1))
            tail = index_ops.slice_(x, [0] * a + [n - k] + [0] * (r - a - 1), [-1] * r)
            x = join_ops.concat([tail, head], a)
        return x


def invert_permutation(x: Any, name: str | None = None) -> Tensor:
    """y[x[i]] = i."""
    with name_scope(name, "InvertPermutation"):
        from actorflow.ops.linalg_ops import scatter_nd
        from actorflow.ops.partition_ops import range as range_
        p = convert_to_tensor(x, preferred_dtype=dtypes.int32)
        n = array_ops.size(p, out_type=p.dtype)
        return scatter_nd(array_ops.expand_dims(p, 1), range_(0, n, 1, dtype=p.dtype),
                          array_ops.reshape(n, [1]))


def swish(features: Any, name: str | None = None) -> Tensor:
    """x * sigmoid(x)."""
    with name_scope(name, "swish"):
        x = convert_to_tensor(features)
        return math_ops.multiply(x, math_ops.sigmoid(x))


def gelu(features: Any, approximate: bool = False, name: str | None = None) -> Tensor:
    """x * Phi(x) (the tanh approximation when `approximate`)."""
    from actorflow.ops.scan_sort_ops import erf
    with name_scope(name, "Gelu"):
        x = convert_to_tensor(features)
        if approximate:
            inner = math_ops.multiply(math.sqrt(2 / math.pi), math_ops.add(
                x, math_ops.multiply(0.044715, math_ops.pow(x, 3.0))))
            return math_ops.multiply(math_ops.multiply(0.5, x),
                                     math_ops.add(1.0, math_ops.tanh(inner)))
        return math_ops.multiply(math_ops.multiply(0.5, x), math_ops.add(
            1.0, erf(math_ops.multiply(x, 1 / math.sqrt(2.0)))))


def crelu(features: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """concat(relu(x), relu(-x)) along `axis`."""
    from actorflow.ops.nn_ops import relu
    with name_scope(name, "CRelu"):
        x = convert_to_tensor(features)
        return join_ops.concat([relu(x), relu(math_ops.negative(x))], axis)
