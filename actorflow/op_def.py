"""Op definitions: for each op type, its output inference and its gradient.

An op lives in two places, as in the papers: here its *definition* (what outputs it has, how
their dtype and shape follow from its inputs and attributes, how to differentiate it), and in
`devices.kernels` its *kernels*. Builder functions users call (``af.add``) live in
`actorflow.ops` and go through `apply_op`:

    define_op("Square", infer=same_as_input)

    def square(x, name=None):
        x = convert_to_tensor(x)
        return apply_op("Square", [x], name=name)[0]

    @register_gradient("Square")
    def _square_grad(op, grad):
        return [grad * 2.0 * op.inputs[0]]

Inference functions get the input Tensors and the attrs and return one (dtype, shape) pair per
output; they raise InvalidArgumentError naming the op and the disagreeing shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Graph, Operation, Tensor, _graph_of, get_default_graph
from devices import dtypes
from devices.dtypes import DType
from devices.errors import InvalidArgumentError, NotFoundError, OpError

Infer = Callable[[list[Tensor], dict[str, Any]], list[tuple[DType, shapes.Shape]]]
GradFn = Callable[..., Sequence[Any]]


@dataclass(frozen=True)
class OpDef:
    type: str
    infer: Infer
    stateful: bool = False


_OP_DEFS: dict[str, OpDef] = {}
_GRADIENTS: dict[str, GradFn | None] = {}


def define_op(type: str, *, infer: Infer, stateful: bool = False) -> OpDef:
    if type in _OP_DEFS:
        raise InvalidArgumentError(f"op '{type}' is already defined")
    d = OpDef(type, infer, stateful)
    _OP_DEFS[type] = d
    return d


def op_def(type: str) -> OpDef:
    d = _OP_DEFS.get(type)
    if d is None:
        raise NotFoundError(f"no op named '{type}' is defined")
    return d


def apply_op(type: str, inputs: Sequence[Tensor], attrs: dict[str, Any] | None = None,
             name: str | None = None, graph: Graph | None = None) -> tuple[Tensor, ...]:
    """Build one op of `type` in the inputs' graph and return its outputs."""
    d = op_def(type)
    attrs = attrs or {}
    g = graph or (_graph_of(inputs) if inputs else get_default_graph())
    try:
        outs = d.infer(list(inputs), attrs)
    except OpError as e:
        raise type_error_in(e, name or type) from None
    op = g.create_op(type, inputs, attrs, outs, name=name)
    return op.outputs


def apply_op_op(type: str, inputs: Sequence[Tensor], attrs: dict[str, Any] | None = None,
                name: str | None = None) -> Operation:
    """Like `apply_op` but returns the Operation (for ops used as targets)."""
    d = op_def(type)
    attrs = attrs or {}
    g = _graph_of(inputs) if inputs else get_default_graph()
    outs = d.infer(list(inputs), attrs)
    return g.create_op(type, inputs, attrs, outs, name=name)


def type_error_in(e: OpError, opname: str) -> OpError:
    return type(e)(f"while building op '{opname}': {e.message}", node=e.node, device=e.device)


# ------------------------------------------------------------------------------------------
# Gradient registry
# ------------------------------------------------------------------------------------------
class RegisterGradient:
    """Decorator registering the gradient function of an op type (or an override name).

        @af.RegisterGradient("MySquare")
        def _g(op, grad): ...
        with g.gradient_override_map({"Square": "MySquare"}): y = af.square(x)
    """

    def __init__(self, op_type: str):
        self.op_type = op_type

    def __call__(self, fn: GradFn) -> GradFn:
        if self.op_type in _GRADIENTS:
            raise InvalidArgumentError(f"a gradient for '{self.op_type}' is already registered")
        _GRADIENTS[self.op_type] = fn
        return fn


def register_gradient(op_type: str) -> Callable[[GradFn], GradFn]:
    return RegisterGradient(op_type)


def no_gradient(op_type: str) -> None:
    """Declare that `op_type` is not differentiable (its inputs get no gradient)."""
    _GRADIENTS[op_type] = None


def gradient_function(op: Operation) -> GradFn | None:
    """The gradient of `op`, honouring the override recorded when it was built."""
    key = op.attrs.get("_gradient_op_type", op.type)
    if key not in _GRADIENTS:
        raise NotFoundError(
            f"no gradient is registered for op type '{key}' (op '{op.name}'); register one "
            f"with @af.RegisterGradient('{key}') or wrap the input in af.stop_gradient")
    return _GRADIENTS[key]


# ------------------------------------------------------------------------------------------
# Conversion and common inference functions
# ------------------------------------------------------------------------------------------
def constant(value: Any, dtype: Any = None, shape: Any = None, name: str = "Const") -> Tensor:
    """A tensor with a fixed value, stored as an attribute of its op."""
    dt = dtypes.as_dtype(dtype) if dtype is not None else None
    if isinstance(value, Tensor):
        raise InvalidArgumentError("af.constant() takes a value, not a tensor; use af.identity")
    if dt is dtypes.string or (dt is None and dtypes.dtype_of_value(value) is dtypes.string):
        dt, arr = dtypes.string, dtypes.to_string_array(value)
        if shape is not None:
            shp = shapes.as_shape(shape)
            n = shapes.num_elements(shp)
            if arr.size == 1 and n is not None:
                fill = arr.reshape(-1)[0]
                arr = np.empty(shp, dtype=object)  # type: ignore[arg-type]
                arr.fill(fill)
            elif n is not None and arr.size == n:
                arr = arr.reshape(shp)  # type: ignore[arg-type]
            else:
                raise InvalidArgumentError(
                    f"constant of {arr.size} elements cannot take shape {shapes.fmt(shp)}")
        arr = arr.copy()
        arr.setflags(write=False)
        return apply_op("Const", [], {"value": arr, "dtype": dt}, name=name)[0]
    try:
        arr = np.asarray(value, dtype=dt.np if dt is not None else None)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"cannot make a constant of {value!r}: {e}") from None
    if dt is None:
        dt = dtypes.dtype_of_value(value)
        arr = arr.astype(dt.np, copy=False)
    elif not _safe_cast(value, arr):
        raise InvalidArgumentError(
            f"value {value!r} cannot be represented as {dt.name} without loss")
    if shape is not None:
        shp = shapes.as_shape(shape)
        n = shapes.num_elements(shp)
        if arr.size == 1 and n is not None:
            arr = np.full(shp, arr.reshape(()), dtype=dt.np)
        elif n is not None and arr.size == n:
            arr = arr.reshape(shp)  # type: ignore[arg-type]
        else:
            raise InvalidArgumentError(
                f"constant of {arr.size} elements cannot take shape {shapes.fmt(shp)}")
    if arr.dtype.hasobject:
        raise InvalidArgumentError(f"cannot make a constant of {value!r}: not numeric")
    arr = np.array(arr, order="C")  # own, contiguous copy (keeps 0-d arrays 0-d)
    arr.setflags(write=False)
    return apply_op("Const", [], {"value": arr, "dtype": dt}, name=name)[0]


def _safe_cast(value: Any, arr: np.ndarray) -> bool:
    if isinstance(value, np.ndarray) or arr.dtype.kind not in "iub":
        return True
    try:
        ref = np.asarray(value)
    except (TypeError, ValueError):
        return True
    if ref.dtype.kind == "f":
        return bool(np.all(ref == arr))
    return True


def convert_to_tensor(value: Any, dtype: Any = None, name: str | None = None,
                      preferred_dtype: Any = None) -> Tensor:
    """A Tensor for `value`: tensors pass through, variables give their value, Python and
    NumPy values become constants. A dtype that disagrees with a tensor's raises."""
    if isinstance(value, Tensor):
        if dtype is not None and dtypes.as_dtype(dtype) is not value.dtype:
            raise InvalidArgumentError(
                f"tensor '{value.name}' has dtype {value.dtype.name} where "
                f"{dtypes.as_dtype(dtype).name}"
                f" is required; convert it with af.cast")
        return value
    conv = getattr(value, "_as_tensor", None)
    if conv is not None:
        return convert_to_tensor(conv(), dtype, name)
    if isinstance(value, Operation):
        raise InvalidArgumentError(
            f"operation '{value.name}' has no value to use as a tensor; use one of its "
            f"outputs (op.outputs[0]) or pass it as a control dependency")
    if isinstance(value, list | tuple) and any(isinstance(v, Tensor) or hasattr(v, "_as_tensor")
                                               for v in _flatten(value)):
        from actorflow.ops.array_ops import stack_nested
        return stack_nested(value, dtype=dtype, name=name)
    if dtype is None and preferred_dtype is not None:
        try:
            return constant(value, dtype=preferred_dtype, name=name or "Const")
        except OpError:
            pass
    return constant(value, dtype=dtype, name=name or "Const")


def _flatten(v: Any) -> list[Any]:
    if isinstance(v, list | tuple):
        return [y for x in v for y in _flatten(x)]
    return [v]


def convert_n(values: Sequence[Any], dtype: Any = None) -> list[Tensor]:
    """Convert several values to tensors of one dtype: the first tensor's dtype wins, so
    ``x * 2.0`` with a float64 x makes a float64 constant."""
    if dtype is None:
        for v in values:
            if isinstance(v, Tensor) or hasattr(v, "_as_tensor"):
                dtype = convert_to_tensor(v).dtype
                break
    return [convert_to_tensor(v, dtype=dtype) for v in values]


def same_as_input(inputs: list[Tensor], attrs: dict[str, Any]) -> list[tuple[DType, shapes.Shape]]:
    return [(inputs[0].dtype, inputs[0]._shape)]


def check_same_dtype(inputs: Sequence[Tensor], opname: str) -> DType:
    dt = inputs[0].dtype
    for t in inputs[1:]:
        if t.dtype is not dt:
            raise InvalidArgumentError(
                f"{opname} needs inputs of one dtype, got {dt.name} ('{inputs[0].name}') and "
                f"{t.dtype.name} ('{t.name}'); convert one with af.cast")
    return dt


Outputs = list[tuple[DType, shapes.Shape]]


def broadcast_binary(inputs: list[Tensor], attrs: dict[str, Any]) -> Outputs:
    dt = check_same_dtype(inputs, "a binary op")
    return [(dt, shapes.broadcast(inputs[0]._shape, inputs[1]._shape))]


def broadcast_compare(inputs: list[Tensor], attrs: dict[str, Any]) -> Outputs:
    check_same_dtype(inputs, "a comparison")
    return [(dtypes.bool_, shapes.broadcast(inputs[0]._shape, inputs[1]._shape))]


def constant_value(t: Tensor) -> np.ndarray | None:
    """The value of `t` if it is known when the graph is built (a Const, or the Shape of a
    tensor whose static shape is fully defined), else None."""
    op = t.op
    if op.type == "Const":
        return op.attrs["value"]
    if op.type == "Shape" and shapes.is_fully_defined(op.inputs[0]._shape):
        return np.array(op.inputs[0]._shape, dtype=t.dtype.np)
    if op.type == "Identity":
        return constant_value(op.inputs[0])
    return None
