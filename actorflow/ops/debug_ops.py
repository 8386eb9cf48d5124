"""Debugging ops of TF1: `Print`, `Assert` and the assert_* family, `check_numerics` and
`add_check_numerics_ops`.

    x = af.Print(x, [af.reduce_mean(x)], "mean of x: ")   # prints when x is computed
    with af.control_dependencies([af.assert_positive(scale)]):
        y = af.log(scale)
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, get_default_graph, name_scope
from actorflow.op_def import (
    apply_op,
    apply_op_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
    same_as_input,
)
from actorflow.ops import compare_ops, core_ops, reduction_ops
from devices import dtypes

__all__ = ["Print", "Assert", "assert_equal", "assert_none_equal", "assert_less",
           "assert_less_equal", "assert_greater", "assert_greater_equal", "assert_positive",
           "assert_negative", "assert_non_negative", "assert_non_positive", "check_numerics",
           "add_check_numerics_ops"]

define_op("Print", infer=same_as_input, stateful=True)
define_op("Assert", infer=lambda ins, attrs: [], stateful=True)
define_op("CheckNumerics", infer=same_as_input, stateful=True)
no_gradient("Assert")


@register_gradient("Print")
def _print_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [grad] + [None] * (len(op.inputs) - 1)


@register_gradient("CheckNumerics")
def _check_numerics_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [grad]


def Print(input_: Any, data: list[Any], message: str | None = None,  # noqa: N802
          first_n: int | None = None, summarize: int | None = None,
          name: str | None = None) -> Tensor:
    """`input_` unchanged; computing it writes `message` and `data`'s values to stderr (the
    first `first_n` times; `summarize` entries of each tensor)."""
    x = convert_to_tensor(input_)
    ds = [convert_to_tensor(d) for d in data]
    return apply_op("Print", [x, *ds], {"message": message or "", "first_n": first_n or -1,
                                        "summarize": summarize or 3}, name=name or "Print")[0]


def Assert(condition: Any, data: list[Any], summarize: int | None = None,  # noqa: N802
           name: str | None = None) -> Operation:
    """An op failing the step with InvalidArgument (showing `data`) when `condition` is
    false; run it, or make other ops depend on it."""
    c = convert_to_tensor(condition, dtype=dtypes.bool_) if not isinstance(condition, Tensor) \
        else condition
    ds = [convert_to_tensor(d) for d in data]
    return apply_op_op("Assert", [c, *ds], {"summarize": summarize or 3},
                       name=name or "Assert")


def _binary_assert(op: Any, what: str) -> Any:
    def f(x: Any, y: Any, data: list[Any] | None = None, summarize: int | None = None,
          message: str | None = None, name: str | None = None) -> Operation:
        x, y = compare_ops.convert_operands([x, y], what)
        with name_scope(name, what):
            return Assert(reduction_ops.reduce_all(op(x, y)),
                          data if data is not None else [x, y], summarize,
                          name=_msg_name(message))
    f.__name__ = what
    return f


def _unary_assert(op: Any, what: str) -> Any:
    def f(x: Any, data: list[Any] | None = None, summarize: int | None = None,
          message: str | None = None, name: str | None = None) -> Operation:
        x = convert_to_tensor(x)
        with name_scope(name, what):
            return Assert(reduction_ops.reduce_all(op(x, compare_ops.cast(0, x.dtype))),
                          data if data is not None else [x], summarize,
                          name=_msg_name(message))
    f.__name__ = what
    return f


def _msg_name(message: str | None) -> str:
    if not message:
        return "Assert"
    safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in message)[:60]
    return f"Assert_{safe}"


assert_equal = _binary_assert(compare_ops.equal, "assert_equal")
assert_none_equal = _binary_assert(compare_ops.not_equal, "assert_none_equal")
assert_less = _binary_assert(compare_ops.less, "assert_less")
assert_less_equal = _binary_assert(compare_ops.less_equal, "assert_less_equal")
assert_greater = _binary_assert(compare_ops.greater, "assert_greater")
assert_greater_equal = _binary_assert(compare_ops.greater_equal, "assert_greater_equal")
assert_positive = _unary_assert(compare_ops.greater, "assert_positive")
assert_negative = _unary_assert(compare_ops.less, "assert_negative")
assert_non_negative = _unary_assert(compare_ops.greater_equal, "assert_non_negative")
assert_non_positive = _unary_assert(compare_ops.less_equal, "assert_non_positive")


def check_numerics(tensor: Any, message: str, name: str | None = None) -> Tensor:
    """`tensor` unchanged, failing the step (InvalidArgument naming `message`) on a NaN or
    infinity."""
    return apply_op("CheckNumerics", [convert_to_tensor(tensor)], {"message": message},
                    name=name or "CheckNumerics")[0]


def add_check_numerics_ops() -> Operation:
    """A group checking every floating output of the graph's ops built so far."""
    g = get_default_graph()
    checks = []
    for op in list(g.get_operations()):
        for t in op.outputs:
            if t.dtype.is_floating:
                checks.append(check_numerics(t, f"{op.name}:{t.value_index}"))
    return core_ops.group(*checks)

