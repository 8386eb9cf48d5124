"""Math ops: element-wise arithmetic and functions, add_n, matmul, and the Tensor operator
overloads. Comparisons, logic, casts, where and clipping live in `compare_ops`, reductions in
`reduction_ops`; both are re-exported here, so ``math_ops.reduce_sum`` and ``af.reduce_sum``
both work.

Binary element-wise ops broadcast like NumPy; their gradients un-broadcast (sum over the
broadcast axes) with `array_ops.unbroadcast`. Python values next to a tensor take the tensor's
dtype (``x * 2`` with a float64 ``x`` multiplies by a float64 2); two tensors of different
dtypes are a build-time error that names the op and both tensors. Gradients are not built for
inputs that are constants.

    y = af.sigmoid(x @ w + b)          # MatMul, Add, Sigmoid
    m = af.where(y > 0.5, y, 0.0)      # Greater, SelectV2

Operators: ``+ - * / // % ** @`` and their reversed forms, unary ``-``, ``abs()``,
``< <= > >=``, and ``& | ^ ~`` on bool tensors. ``==`` and ``!=`` stay identity (tensors are
dict keys); use `equal` / `not_equal` for the element-wise comparison.
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    check_same_dtype,
    constant,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import array_ops
from actorflow.ops.compare_ops import (
    FLOAT,
    NUM,
    binary,
    binary_infer,
    cast,
    check_kind,
    clip_by_value,
    convert_operands,
    equal,
    greater,
    greater_equal,
    is_constant,
    is_finite,
    is_inf,
    is_nan,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    not_equal,
    select_grad_pair,
    unary_infer,
    where,
)
from actorflow.ops.reduction_ops import (
    argmax,
    argmin,
    reduce_all,
    reduce_any,
    reduce_logsumexp,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
    unsorted_segment_sum,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = [
    "abs", "add", "add_n", "argmax", "argmin", "cast", "ceil", "clip_by_value", "cos", "div",
    "divide", "equal", "exp", "expm1", "floor", "floordiv", "floormod", "greater",
    "greater_equal", "is_finite", "is_inf", "is_nan", "less", "less_equal", "log", "log1p",
    "logical_and", "logical_not", "logical_or", "logical_xor", "matmul", "maximum", "minimum",
    "mod", "multiply", "negative", "not_equal", "pow", "realdiv", "reciprocal", "reduce_all",
    "reduce_any", "reduce_logsumexp", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod",
    "reduce_sum", "round", "rsqrt", "scalar_mul", "sigmoid", "sign", "sin", "sqrt", "square",
    "squared_difference", "subtract", "tanh", "truediv", "unsorted_segment_sum", "where",
]

# ---- element-wise binary ----------------------------------------------------------------
_BINARY = {
    "Add": NUM, "Sub": NUM, "Mul": NUM, "RealDiv": FLOAT, "FloorDiv": NUM,
    "FloorMod": NUM, "Pow": NUM, "Maximum": NUM, "Minimum": NUM,
}
for _t, _kind in _BINARY.items():
    define_op(_t, infer=binary_infer(_kind))
no_gradient("FloorDiv")


def add(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Add", x, y, name)


def subtract(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Sub", x, y, name)


def multiply(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Mul", x, y, name)


def scalar_mul(scalar: Any, x: Any, name: str | None = None) -> Tensor:
    """`scalar` (a Python number or a 0-d tensor) times `x`, in x's dtype."""
    return binary("Mul", x, scalar, name or "scalar_mul")


def realdiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y for floating-point tensors."""
    return binary("RealDiv", x, y, name)


def truediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y; integer inputs are first cast to a float type (float32 for 8- and 16-bit
    integers, float64 for wider ones), as Python 3 division does."""
    x, y = convert_operands([x, y], name or "truediv")
    if x.dtype.is_integer and x.dtype is y.dtype:
        ft = dtypes.float32 if x.dtype.size <= 2 else dtypes.float64
        x, y = cast(x, ft), cast(y, ft)
    return apply_op("RealDiv", [x, y], name=name or "truediv")[0]


divide = truediv


def floordiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x // y, rounding toward negative infinity (integer division by zero is an error)."""
    return binary("FloorDiv", x, y, name)


def floormod(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x % y with the sign of y, as Python's ``%``."""
    return binary("FloorMod", x, y, name)


mod = floormod


def div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1's ``div``: floor division for integers, true division for floats."""
    x, y = convert_operands([x, y], name or "div")
    return floordiv(x, y, name) if x.dtype.is_integer else realdiv(x, y, name)


def pow(x: Any, y: Any, name: str | None = None) -> Tensor:  # noqa: A001
    return binary("Pow", x, y, name)


def maximum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Maximum", x, y, name)


def minimum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Minimum", x, y, name)


def squared_difference(x: Any, y: Any, name: str | None = None) -> Tensor:
    return square(subtract(x, y), name=name or "SquaredDifference")



@register_gradient("Add")
def _add_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [None if is_constant(x) else array_ops.unbroadcast(grad, x, y),
            None if is_constant(y) else array_ops.unbroadcast(grad, y, x)]


@register_gradient("Sub")
def _sub_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [None if is_constant(x) else array_ops.unbroadcast(grad, x, y),
            None if is_constant(y) else array_ops.unbroadcast(negative(grad), y, x)]


@register_gradient("Mul")
def _mul_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [None if is_constant(x) else array_ops.unbroadcast(multiply(grad, y), x),
            None if is_constant(y) else array_ops.unbroadcast(multiply(x, grad), y)]


@register_gradient("RealDiv")
def _realdiv_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    z = op.outputs[0]  # x / y, so d/dy = -g * z / y
    return [None if is_constant(x) else array_ops.unbroadcast(realdiv(grad, y), x),
            None if is_constant(y) else array_ops.unbroadcast(
                multiply(negative(grad), realdiv(z, y)), y)]


@register_gradient("FloorMod")
def _floormod_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return [None if is_constant(x) else array_ops.unbroadcast(grad, x),
            None if is_constant(y) else array_ops.unbroadcast(
                multiply(negative(grad), floordiv(x, y)), y)]


@register_gradient("Pow")
def _pow_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    z = op.outputs[0]
    gx = gy = None
    if not is_constant(x):
        gx = array_ops.unbroadcast(multiply(grad, multiply(y, pow(x, subtract(y, 1)))), x)
    if not is_constant(y):
        # d/dy x**y = x**y * log(x), taken as 0 where x <= 0 (where log is not real)
        positive = greater(x, 0)
        log_x = log(where(positive, x, array_ops.ones_like(x)))
        gy = array_ops.unbroadcast(multiply(grad, multiply(z, log_x)), y)
    return [gx, gy]


@register_gradient("Maximum")
def _maximum_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return select_grad_pair(greater_equal(x, y), grad, x, y)


@register_gradient("Minimum")
def _minimum_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, y = op.inputs
    return select_grad_pair(less_equal(x, y), grad, x, y)


# ---- element-wise unary -----------------------------------------------------------------
_UNARY = {
    "Neg": NUM, "Abs": NUM, "Sign": NUM, "Square": NUM, "Reciprocal": NUM,
    "Sqrt": FLOAT, "Rsqrt": FLOAT, "Exp": FLOAT, "Expm1": FLOAT, "Log": FLOAT,
    "Log1p": FLOAT, "Tanh": FLOAT, "Sigmoid": FLOAT, "Sin": FLOAT, "Cos": FLOAT,
    "Floor": FLOAT, "Ceil": FLOAT, "Round": FLOAT,
}
for _t, _kind in _UNARY.items():
    define_op(_t, infer=unary_infer(_kind))
for _t in ("Floor", "Ceil", "Round"):
    no_gradient(_t)


def _unary(op: str, x: Any, name: str | None) -> Tensor:
    return apply_op(op, [convert_to_tensor(x)], name=name or op)[0]


def negative(x: Any, name: str | None = None) -> Tensor:
    return _unary("Neg", x, name)


def abs(x: Any, name: str | None = None) -> Tensor:  # noqa: A001
    return _unary("Abs", x, name)


def sign(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sign", x, name)


def square(x: Any, name: str | None = None) -> Tensor:
    return _unary("Square", x, name)


def reciprocal(x: Any, name: str | None = None) -> Tensor:
    return _unary("Reciprocal", x, name)


def sqrt(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sqrt", x, name)


def rsqrt(x: Any, name: str | None = None) -> Tensor:
    return _unary("Rsqrt", x, name)


def exp(x: Any, name: str | None = None) -> Tensor:
    return _unary("Exp", x, name)


def expm1(x: Any, name: str | None = None) -> Tensor:
    return _unary("Expm1", x, name)


def log(x: Any, name: str | None = None) -> Tensor:
    return _unary("Log", x, name)


def log1p(x: Any, name: str | None = None) -> Tensor:
    return _unary("Log1p", x, name)


def tanh(x: Any, name: str | None = None) -> Tensor:
    return _unary("Tanh", x, name)


def sigmoid(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sigmoid", x, name)


def sin(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sin", x, name)


def cos(x: Any, name: str | None = None) -> Tensor:
    return _unary("Cos", x, name)


def floor(x: Any, name: str | None = None) -> Tensor:
    return _unary("Floor", x, name)


def ceil(x: Any, name: str | None = None) -> Tensor:
    return _unary("Ceil", x, name)


def round(x: Any, name: str | None = None) -> Tensor:  # noqa: A001
    """Round half to even, as TF and NumPy do."""
    return _unary("Round", x, name)




@register_gradient("Neg")
def _neg_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [negative(grad)]


@register_gradient("Abs")
def _abs_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [multiply(grad, sign(op.inputs[0]))]


@register_gradient("Sign")
def _sign_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [array_ops.zeros_like(op.inputs[0])]


@register_gradient("Square")
def _square_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    return [multiply(grad, multiply(x, constant(2, x.dtype)))]


@register_gradient("Exp")
def _exp_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [multiply(grad, op.outputs[0])]


@register_gradient("Expm1")
def _expm1_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [multiply(grad, exp(op.inputs[0]))]


@register_gradient("Log")
def _log_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [realdiv(grad, op.inputs[0])]


@register_gradient("Log1p")
def _log1p_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [realdiv(grad, add(op.inputs[0], 1))]


@register_gradient("Sin")
def _sin_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [multiply(grad, cos(op.inputs[0]))]


@register_gradient("Cos")
def _cos_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [multiply(negative(grad), sin(op.inputs[0]))]


# Fused gradient ops, as in TF: one node (one pass into one buffer) instead of three or four.
# Each takes (y, dy) where y is the forward op's output and dy the incoming gradient.
def _grad_op_infer(ins: list[Tensor], attrs: dict) -> list:
    y, dy = ins
    check_same_dtype(ins, "a gradient op")
    return [(y.dtype, shapes.broadcast(y._shape, dy._shape))]


_FUSED = {"Tanh": "TanhGrad", "Sigmoid": "SigmoidGrad", "Sqrt": "SqrtGrad",
          "Rsqrt": "RsqrtGrad", "Reciprocal": "ReciprocalGrad"}
for _t in _FUSED.values():
    define_op(_t, infer=_grad_op_infer)


def _fused_forward_grad(grad_op: str) -> Any:
    def fn(op: Operation, grad: Tensor) -> list[Any]:
        return [apply_op(grad_op, [op.outputs[0], grad], name=grad_op)[0]]
    return fn


for _t, _g in _FUSED.items():
    register_gradient(_t)(_fused_forward_grad(_g))


def _second_order(grad_op: str, dfdy: Any) -> Any:
    """Gradient of a fused op f(y, dy), linear in dy: d/ddy is the op itself applied to the
    incoming gradient; d/dy is grad * dfdy(y, dy, out)."""
    def fn(op: Operation, grad: Tensor) -> list[Any]:
        y, dy = op.inputs
        return [multiply(grad, dfdy(y, dy, op.outputs[0])),
                apply_op(grad_op, [y, grad], name=grad_op)[0]]
    return fn


# f = dy*(1-y^2); f = dy*y*(1-y); f = dy/(2y); f = -dy*y^3/2; f = -dy*y^2
register_gradient("TanhGrad")(_second_order(
    "TanhGrad", lambda y, dy, f: multiply(dy, multiply(y, constant(-2, y.dtype)))))
register_gradient("SigmoidGrad")(_second_order(
    "SigmoidGrad", lambda y, dy, f: multiply(dy, subtract(1, multiply(y, constant(2, y.dtype))))))
register_gradient("SqrtGrad")(_second_order(
    "SqrtGrad", lambda y, dy, f: negative(realdiv(f, y))))
register_gradient("RsqrtGrad")(_second_order(
    "RsqrtGrad", lambda y, dy, f: realdiv(multiply(f, constant(3, y.dtype)), y)))
register_gradient("ReciprocalGrad")(_second_order(
    "ReciprocalGrad", lambda y, dy, f: realdiv(multiply(f, constant(2, y.dtype)), y)))


# ---- n-ary ------------------------------------------------------------------------------
def _add_n_infer(ins: list[Tensor], attrs: dict) -> list:
    dt = check_same_dtype(ins, "add_n")
    shape = ins[0]._shape
    for t in ins[1:]:
        if not shapes.is_compatible(shape, t._shape):
            raise InvalidArgumentError(
                f"add_n needs inputs of one shape, got {shapes.fmt(shape)} and "
                f"{shapes.fmt(t._shape)} ('{t.name}')")
        shape = shapes.merge(shape, t._shape)
    return [(dt, shape)]


define_op("AddN", infer=_add_n_infer)


def add_n(inputs: list[Any], name: str | None = None) -> Tensor:
    """Sum a list of tensors of the same shape and dtype."""
    if not inputs:
        raise InvalidArgumentError("add_n needs at least one input")
    ins = convert_operands(list(inputs), name or "AddN")
    if len(ins) == 1:
        return ins[0]
    return apply_op("AddN", ins, name=name or "AddN")[0]


@register_gradient("AddN")
def _add_n_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [grad] * len(op.inputs)


# ---- matmul -----------------------------------------------------------------------------
def _matmul_infer(ins: list[Tensor], attrs: dict) -> list:
    a, b = ins
    if a.dtype is not b.dtype:
        raise InvalidArgumentError(
            f"matmul needs inputs of one dtype, got {a.dtype.name} ('{a.name}') and "
            f"{b.dtype.name} ('{b.name}'); convert one with af.cast")
    check_kind(a, NUM, "matmul")
    ta, tb = attrs.get("transpose_a", False), attrs.get("transpose_b", False)
    sa, sb = a._shape, b._shape
    for s, t in ((sa, a), (sb, b)):
        if s is not None and len(s) < 2:
            raise InvalidArgumentError(
                f"matmul needs inputs of rank 2 or more, got '{t.name}' of shape "
                f"{shapes.fmt(s)}; reshape a vector to a (1, n) or (n, 1) matrix")
    if sa is None or sb is None:
        return [(a.dtype, None)]
    m, ka = (sa[-1], sa[-2]) if ta else (sa[-2], sa[-1])
    kb, n = (sb[-1], sb[-2]) if tb else (sb[-2], sb[-1])
    if ka is not None and kb is not None and ka != kb:
        raise InvalidArgumentError(
            f"matmul of {shapes.fmt(sa)}{' (transposed)' if ta else ''} by "
            f"{shapes.fmt(sb)}{' (transposed)' if tb else ''}: the inner dimensions differ "
            f"({ka} against {kb})")
    batch = shapes.broadcast(sa[:-2], sb[:-2], what="matmul batch dimensions")
    return [(a.dtype, tuple(batch) + (m, n))]  # type: ignore[arg-type]


define_op("MatMul", infer=_matmul_infer)
define_op("BatchMatMulV2", infer=_matmul_infer)


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False,
           adjoint_a: bool = False, adjoint_b: bool = False, name: str | None = None) -> Tensor:
    """The matrix product ``a @ b`` of the last two dimensions; leading (batch) dimensions
    broadcast like np.matmul. For real dtypes adjoint is transpose."""
    a, b = convert_operands([a, b], name or "MatMul")
    attrs = {"transpose_a": bool(transpose_a or adjoint_a),
             "transpose_b": bool(transpose_b or adjoint_b)}
    two_d = a._shape is not None and b._shape is not None and len(a._shape) == 2 == len(b._shape)
    op = "MatMul" if two_d else "BatchMatMulV2"
    return apply_op(op, [a, b], attrs, name=name or op)[0]


@register_gradient("MatMul")
@register_gradient("BatchMatMulV2")
def _matmul_grad(op: Operation, grad: Tensor) -> list[Any]:
    a, b = op.inputs
    ta, tb = op.attrs.get("transpose_a", False), op.attrs.get("transpose_b", False)
    if not ta and not tb:
        ga = None if is_constant(a) else matmul(grad, b, transpose_b=True)
        gb = None if is_constant(b) else matmul(a, grad, transpose_a=True)
    elif not ta:
        ga = None if is_constant(a) else matmul(grad, b)
        gb = None if is_constant(b) else matmul(grad, a, transpose_a=True)
    elif not tb:
        ga = None if is_constant(a) else matmul(b, grad, transpose_b=True)
        gb = None if is_constant(b) else matmul(a, grad)
    else:
        ga = None if is_constant(a) else matmul(b, grad, transpose_a=True, transpose_b=True)
        gb = None if is_constant(b) else matmul(grad, a, transpose_a=True, transpose_b=True)
    if op.type == "BatchMatMulV2":  # sum over the batch dimensions that were broadcast
        ga = None if ga is None else array_ops.unbroadcast(ga, a)
        gb = None if gb is None else array_ops.unbroadcast(gb, b)
    return [ga, gb]


# ---- operator overloads -----------------------------------------------------------------
def _bool_only(fn: Any, symbol: str) -> Any:
    def op(a: Any, b: Any) -> Tensor:
        for v in (a, b):
            if isinstance(v, Tensor) and not v.dtype.is_bool:
                raise InvalidArgumentError(
                    f"'{symbol}' on tensors is {fn.__name__} and needs bool tensors, got "
                    f"'{v.name}' of dtype {v.dtype.name}; compare first (x > 0) or use af.cast")
        return fn(a, b)
    return op


def _install_overloads() -> None:
    binary = {
        "add": add, "sub": subtract, "mul": multiply, "truediv": truediv,
        "floordiv": floordiv, "mod": floormod, "pow": pow, "matmul": matmul,
        "and": _bool_only(logical_and, "&"), "or": _bool_only(logical_or, "|"),
        "xor": _bool_only(logical_xor, "^"),
    }
    for name, fn in binary.items():
        Tensor._override_operator(f"__{name}__", lambda a, b, fn=fn: fn(a, b))
        Tensor._override_operator(f"__r{name}__", lambda a, b, fn=fn: fn(b, a))
    for name, fn in (("lt", less), ("le", less_equal), ("gt", greater),
                     ("ge", greater_equal)):
        Tensor._override_operator(f"__{name}__", lambda a, b, fn=fn: fn(a, b))
    Tensor._override_operator("__neg__", lambda a: negative(a))
    Tensor._override_operator("__abs__", lambda a: abs(a))

    def invert(a: Tensor) -> Tensor:
        if not a.dtype.is_bool:
            raise InvalidArgumentError(
                f"'~' on tensors is logical_not and needs a bool tensor, got '{a.name}' of "
                f"dtype {a.dtype.name}")
        return logical_not(a)

    Tensor._override_operator("__invert__", invert)


_install_overloads()
