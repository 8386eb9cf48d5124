"""String ops: `as_string` (numbers and bools formatted as string tensors, TF's AsString), and
the text ops TF1 input pipelines use: `string_split` (a SparseTensor of tokens),
`string_to_number`, `string_join`, `reduce_join`, `substr`, `regex_replace`, and the
`af.strings` names (split, lower, upper, strip, length, regex_full_match). Kernels are in
`devices.kernels.strings` (CPU); none is differentiable.

    af.as_string(class_ids)          # int64 [batch, 1] -> string [batch, 1]: b"0", b"2", ...

Formatting follows TF's defaults: integers in decimal, floats with `precision` digits after
the point (6 when -1, as C's "%f"), or in scientific notation / shortest form when asked,
padded to `width` with `fill`; bools as b"true"/b"false". Not differentiable.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["as_string", "string_split", "string_to_number", "string_join",
           "reduce_join", "substr", "regex_replace"]

define_op("AsString", infer=lambda ins, a: [(dtypes.string, ins[0]._shape)])
no_gradient("AsString")


def as_string(input: Any, precision: int = -1, scientific: bool = False,
              shortest: bool = False, width: int = -1, fill: str = "",
              name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    if x.dtype.is_string:
        raise InvalidArgumentError("as_string formats numbers and bools; its input is already "
                                   "a string tensor")
    if scientific and shortest:
        raise InvalidArgumentError("as_string: give scientific or shortest, not both")
    if len(fill) > 1:
        raise InvalidArgumentError(f"as_string's fill is one character, got {fill!r}")
    return apply_op("AsString", [x], {"precision": int(precision), "scientific": scientific,
                                      "shortest": shortest, "width": int(width),
                                      "fill": fill}, name=name or "AsString")[0]


# -- text ops of input pipelines ---------------------------------------------------------------
def _same_shape(dt: Any) -> Any:
    return lambda ins, a: [(dtypes.as_dtype(dt) if dt else ins[0].dtype, ins[0]._shape)]


_SPARSE_OUT = [(dtypes.int64, (None, 2)), (dtypes.string, (None,)), (dtypes.int64, (2,))]
define_op("StringSplit", infer=lambda ins, a: list(_SPARSE_OUT))
define_op("StringSplitV2", infer=lambda ins, a: list(_SPARSE_OUT))
define_op("StringToNumber", infer=lambda ins, a: [(a["out_type"], ins[0]._shape)])
define_op("StringJoin", infer=lambda ins, a: [(dtypes.string, _broadcast(ins))])
define_op("ReduceJoin", infer=lambda ins, a: [(dtypes.string, None)])
define_op("Substr", infer=lambda ins, a: [(dtypes.string, ins[0]._shape)])
define_op("RegexReplace", infer=_same_shape(dtypes.string))
define_op("RegexFullMatch", infer=_same_shape(dtypes.bool_))
define_op("StringLower", infer=_same_shape(dtypes.string))
define_op("StringUpper", infer=_same_shape(dtypes.string))
define_op("StringStrip", infer=_same_shape(dtypes.string))
define_op("StringLength", infer=_same_shape(dtypes.int32))
for _op in ("StringSplit", "StringSplitV2", "StringToNumber", "StringJoin",
            "ReduceJoin", "Substr", "RegexReplace", "RegexFullMatch", "StringLower",
            "StringUpper", "StringStrip", "StringLength"):
    no_gradient(_op)


def _broadcast(ins: list[Tensor]) -> Any:
    from actorflow import shapes
    out: Any = ()
    for t in ins:
        out = shapes.broadcast(out, t._shape) if out is not None and t._shape is not None \
            else None
    return out


def _text(x: Any, what: str) -> Tensor:
    t = convert_to_tensor(x, dtype=dtypes.string) if not isinstance(x, Tensor) else x
    if not t.dtype.is_string:
        raise InvalidArgumentError(f"{what} takes a string tensor, got {t.dtype.name}")
    return t


def _sparse(outs: tuple[Tensor, ...]) -> Any:
    from actorflow.sparse_tensor import SparseTensor
    return SparseTensor(*outs)


def string_split(source: Any, delimiter: str = " ", skip_empty: bool = True,
                 name: str | None = None) -> Any:
    """The tokens of each string of a 1-D tensor as a SparseTensor [rows, max tokens]; every
    character of `delimiter` splits (TF1's tf.string_split); "" splits into characters."""
    src = _text(source, "string_split")
    return _sparse(apply_op("StringSplit", [src, convert_to_tensor(delimiter, dtypes.string)],
                            {"skip_empty": bool(skip_empty)}, name=name or "StringSplit"))


def split(source: Any, sep: str | None = None, maxsplit: int = -1,
          name: str | None = None) -> Any:
    """Python's str.split on each string (whitespace runs when `sep` is None), as a
    SparseTensor (af.strings.split)."""
    src = _text(source, "strings.split")
    return _sparse(apply_op("StringSplitV2", [src, convert_to_tensor(sep or "", dtypes.string)],
                            {"maxsplit": int(maxsplit)}, name=name or "StringSplit"))


def string_to_number(string_tensor: Any, out_type: Any = dtypes.float32,
                     name: str | None = None) -> Tensor:
    return apply_op("StringToNumber", [_text(string_tensor, "string_to_number")],
                    {"out_type": dtypes.as_dtype(out_type)}, name=name or "StringToNumber")[0]


def string_join(inputs: Any, separator: str = "", name: str | None = None) -> Tensor:
    """Elementwise concatenation of string tensors (broadcast), with `separator` between."""
    return apply_op("StringJoin", [_text(x, "string_join") for x in inputs],
                    {"separator": separator}, name=name or "StringJoin")[0]


def reduce_join(inputs: Any, axis: Any = None, keep_dims: bool = False, separator: str = "",
                name: str | None = None, reduction_indices: Any = None,
                keepdims: bool | None = None) -> Tensor:
    """Join the strings along `axis` (all axes when None)."""
    ax = axis if axis is not None else reduction_indices
    ax_t = convert_to_tensor([] if ax is None else ax, dtype=dtypes.int32)
    keep = keep_dims if keepdims is None else keepdims
    return apply_op("ReduceJoin", [_text(inputs, "reduce_join"), ax_t],
                    {"separator": separator, "keep_dims": bool(keep)},
                    name=name or "ReduceJoin")[0]


def substr(input: Any, pos: Any, len: Any, name: str | None = None,  # noqa: A002
           unit: str = "BYTE") -> Tensor:
    if unit != "BYTE":
        raise InvalidArgumentError("substr supports unit='BYTE'")
    return apply_op("Substr", [_text(input, "substr"), convert_to_tensor(pos, dtypes.int32),
                               convert_to_tensor(len, dtypes.int32)], name=name or "Substr")[0]


def regex_replace(input: Any, pattern: str, rewrite: str, replace_global: bool = True,
                  name: str | None = None) -> Tensor:
    """Replace matches of `pattern` (Python's re syntax, close to RE2's) with `rewrite`."""
    return apply_op("RegexReplace", [_text(input, "regex_replace"),
                                     convert_to_tensor(pattern, dtypes.string),
                                     convert_to_tensor(rewrite, dtypes.string)],
                    {"replace_global": bool(replace_global)}, name=name or "RegexReplace")[0]


def regex_full_match(input: Any, pattern: str, name: str | None = None) -> Tensor:
    return apply_op("RegexFullMatch", [_text(input, "regex_full_match"),
                                       convert_to_tensor(pattern, dtypes.string)],
                    name=name or "RegexFullMatch")[0]


def _unary(op: str) -> Any:
    def fn(input: Any, name: str | None = None, **unused: Any) -> Tensor:
        return apply_op(op, [_text(input, op)], name=name or op)[0]
    return fn


lower, upper, strip = _unary("StringLower"), _unary("StringUpper"), _unary("StringStrip")


def length(input: Any, name: str | None = None, unit: str = "BYTE") -> Tensor:
    return apply_op("StringLength", [_text(input, "strings.length")], {"unit": unit},
                    name=name or "StringLength")[0]
