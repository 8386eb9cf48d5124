"""Counting and set ops with TF1's names: bincount, setdiff1d; and the mirrored modes of
`af.pad` ("REFLECT", "SYMMETRIC": the MirrorPad op and its gradient). Kernels:
`devices/kernels/matrix.py`.

    af.bincount([1, 1, 3], minlength=5)      # [0, 2, 0, 1, 0]
    af.setdiff1d([1, 2, 3, 4], [2, 4])       # ([1, 3], [0, 2])
    af.pad(x, [[1, 1], [2, 2]], "REFLECT")
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, register_gradient
from actorflow.ops import array_ops, compare_ops, math_ops, reduction_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["bincount", "setdiff1d", "mirror_pad"]


def _bincount_infer(ins: list[Tensor], attrs: dict) -> list:
    arr, _size, w = ins
    if arr.dtype != dtypes.int32:
        raise InvalidArgumentError(f"bincount counts int32 values, got {arr.dtype.name}")
    return [(dtypes.as_dtype(attrs["T"]), (None,))]


def _list_diff_infer(ins: list[Tensor], attrs: dict) -> list:
    x, y = ins
    if x.dtype != y.dtype:
        raise InvalidArgumentError(f"setdiff1d: x is {x.dtype.name} but y is {y.dtype.name}")
    return [(x.dtype, (None,)), (dtypes.as_dtype(attrs["out_idx"]), (None,))]


def _mirror_pad_infer(ins: list[Tensor], attrs: dict) -> list:
    from actorflow.ops.static_args import static_value
    x = ins[0]
    if x._shape is None:
        return [(x.dtype, None)]
    p = static_value(ins[1])
    if p is None or p.shape != (len(x._shape), 2):
        return [(x.dtype, (None,) * len(x._shape))]
    return [(x.dtype, tuple(None if d is None else d + int(a) + int(b)
                            for d, (a, b) in zip(x._shape, p, strict=True)))]


def _mirror_pad_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    g = ins[0]
    return [(g.dtype, None if g._shape is None else (None,) * len(g._shape))]


define_op("Bincount", infer=_bincount_infer)
define_op("ListDiff", infer=_list_diff_infer)
define_op("MirrorPad", infer=_mirror_pad_infer)
define_op("MirrorPadGrad", infer=_mirror_pad_grad_infer)


def bincount(arr: Any, weights: Any = None, minlength: Any = None, maxlength: Any = None,
             dtype: Any = dtypes.int32, name: str | None = None) -> Tensor:
    """How often each value 0, 1, ... occurs in `arr` (int32, non-negative), or the sum of
    `weights` at those positions: length max(arr) + 1, at least `minlength`, at most
    `maxlength` (values past it are not counted)."""
    with name_scope(name, "bincount"):
        a = convert_to_tensor(arr, preferred_dtype=dtypes.int32)
        size = math_ops.maximum(math_ops.add(reduction_ops.reduce_max(a), 1), 0)
        if minlength is not None:
            size = math_ops.maximum(size, compare_ops.cast(convert_to_tensor(minlength),
                                                           dtypes.int32))
        if maxlength is not None:
            size = math_ops.minimum(size, compare_ops.cast(convert_to_tensor(maxlength),
                                                           dtypes.int32))
        if weights is None:
            w = convert_to_tensor([], dtype=dtypes.as_dtype(dtype))
            out_dt = dtypes.as_dtype(dtype)
        else:
            w = convert_to_tensor(weights)
            out_dt = w.dtype
        return apply_op("Bincount", [a, size, w], {"T": out_dt.name}, name="Bincount")[0]


def setdiff1d(x: Any, y: Any, index_dtype: Any = dtypes.int32,
              name: str | None = None) -> tuple[Tensor, Tensor]:
    """(the values of 1-D `x` that are not in `y`, in x's order; their positions in x)."""
    xs = convert_to_tensor(x)
    ys = convert_to_tensor(y, dtype=xs.dtype)
    out, idx = apply_op("ListDiff", [xs, ys], {"out_idx": dtypes.as_dtype(index_dtype).name},
                        name=name or "ListDiff")
    return out, idx


def mirror_pad(x: Tensor, paddings: Any, mode: str, name: str | None = None) -> Tensor:
    """`af.pad`'s "REFLECT" (the edge not repeated) and "SYMMETRIC" (repeated) modes."""
    mode = str(mode).upper()
    if mode not in ("REFLECT", "SYMMETRIC"):
        raise InvalidArgumentError(f"pad: mode {mode!r} is not one of 'CONSTANT', 'REFLECT', "
                                   f"'SYMMETRIC'")
    from actorflow.ops.static_args import static_value
    known = static_value(paddings)
    if known is not None and x._shape is not None:  # checked now when both are known
        if known.shape != (len(x._shape), 2):
            raise InvalidArgumentError(
                f"pad: paddings of shape {list(known.shape)} must be [{len(x._shape)}, 2], one "
                f"[before, after] pair per dimension of '{x.name}'")
        offset = 1 if mode == "REFLECT" else 0
        for d, ((a, b), n) in enumerate(zip(known.tolist(), x._shape, strict=True)):
            if a < 0 or b < 0 or (n is not None and max(a, b) > n - offset):
                most = f"less than {n}" if offset else f"at most {n}"
                raise InvalidArgumentError(
                    f"pad: {mode} padding of dimension {d} by [{a}, {b}] must be non-negative "
                    f"and {most} (the dimension's size)")
    p = compare_ops.cast(convert_to_tensor(paddings, preferred_dtype=dtypes.int32),
                         dtypes.int32)
    return apply_op("MirrorPad", [x, p], {"mode": mode}, name=name or "MirrorPad")[0]


@register_gradient("MirrorPad")
def _mirror_pad_grad(op: Operation, grad: Any) -> list[Any]:
    from actorflow.indexed_slices import IndexedSlices
    if isinstance(grad, IndexedSlices):
        grad = convert_to_tensor(grad)
    g = apply_op("MirrorPadGrad", [grad, op.inputs[1]], {"mode": op.attrs["mode"]})[0]
    return [array_ops.reshape(g, array_ops.shape(op.inputs[0])), None]
