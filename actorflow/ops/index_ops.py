"""Indexing ops: `slice`, strided slicing (``x[1:, ::-1, None, ..., 0]``), `gather`, `one_hot`.

Strided slicing is one op, ``StridedSlice``, whose attribute ``spec`` is the index written out
as a list of entries (plain data, so it crosses the wire):

    ["i", 3]                  an integer: take index 3 and drop the dimension
    ["s", start, stop, step]  a slice (each part an int or None)
    ["n"]                     None / af.newaxis: insert a dimension of size 1
    ["e"]                     Ellipsis: as many full slices as the rank needs

A part known only at run time (a scalar int tensor) is ``{"input": k}``: the k-th extra input
of the op. The kernel turns the spec into a NumPy index tuple once per node, so a step costs
one ``x[index]``. NumPy's indexing rules are TF's here (negative indices and steps, clipping
of slice bounds); an integer index out of range raises InvalidArgument, as in TF.

The gradient of ``x[index]`` is ``StridedSliceGrad``: zeros of x's shape with ``grad`` written
at ``index``. The gradient of gather along axis 0 is sparse (`IndexedSlices`), so optimizers
update only the rows that were read.

    y = x[:, 1:-1, None]                  # StridedSlice
    rows = af.gather(table, ids)          # GatherV2; d(rows)/d(table) is IndexedSlices
    z = af.slice(x, [0, 1], [-1, 2])      # Slice: begin and size (-1 = to the end)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import (
    apply_op,
    constant,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops.static_args import (
    dense,
    normalize_axis,
    partial_shape,
    rank_of,
    required_axis,
    static_int,
    static_ints,
    static_value,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

newaxis = None
Spec = list[list[Any]]


# ---- the strided-slice spec -------------------------------------------------------------
def spec_to_str(spec: Spec) -> str:
    """The spec as Python indexing syntax, for error messages: ``[1:, ::-1, None, ..., 0]``."""
    def part(v: Any) -> str:
        return "" if v is None else ("<tensor>" if isinstance(v, dict) else str(v))

    out = []
    for e in spec:
        if e[0] == "i":
            out.append(part(e[1]))
        elif e[0] == "n":
            out.append("None")
        elif e[0] == "e":
            out.append("...")
        else:
            s = f"{part(e[1])}:{part(e[2])}"
            out.append(s + (f":{part(e[3])}" if e[3] is not None else ""))
    return "[" + ", ".join(out) + "]"


def _spec_shape(spec: Spec, in_shape: shapes.Shape, name: str) -> shapes.Shape:
    """The static shape of ``x[spec]`` for x of `in_shape` (checks what is known)."""
    if sum(e[0] == "e" for e in spec) > 1:
        raise InvalidArgumentError(f"an index may hold at most one Ellipsis: "
                                   f"'{name}'{spec_to_str(spec)}")
    for e in spec:
        if e[0] == "s" and e[3] == 0:
            raise InvalidArgumentError(f"slice step cannot be zero: '{name}'{spec_to_str(spec)}")
    if in_shape is None:
        return None
    r = len(in_shape)
    used = sum(e[0] in "is" for e in spec)
    if used > r:
        raise InvalidArgumentError(
            f"too many indices for '{name}' of rank {r} (shape {shapes.fmt(in_shape)}): "
            f"{spec_to_str(spec)} indexes {used} dimensions")
    full = ["s", None, None, None]
    entries: list[list[Any]] = []
    for e in spec:
        entries.extend([full] * (r - used) if e[0] == "e" else [e])
    if not any(e[0] == "e" for e in spec):
        entries.extend([full] * (r - used))
    out: list[int | None] = []
    dim = 0
    for e in entries:
        if e[0] == "n":
            out.append(1)
            continue
        d = in_shape[dim]
        dim += 1
        if e[0] == "i":
            if d is not None and isinstance(e[1], int) and not -d <= e[1] < d:
                raise InvalidArgumentError(
                    f"index {e[1]} is out of range for dimension {dim - 1} of '{name}' "
                    f"(shape {shapes.fmt(in_shape)}, size {d}): {spec_to_str(spec)}")
            continue
        if e[1:] == [None, None, None] or e[1:] == [None, None, 1]:
            out.append(d)
        elif d is None or any(isinstance(v, dict) for v in e[1:]):
            out.append(None)
        else:
            out.append(len(range(*slice(e[1], e[2], e[3]).indices(d))))
    return tuple(out)


def _strided_slice_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    return [(x.dtype, _spec_shape(attrs["spec"], x._shape, x.name))]


def _strided_slice_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    dims = partial_shape(ins[0])
    return [(ins[1].dtype, None if dims is None else tuple(dims))]


define_op("StridedSlice", infer=_strided_slice_infer)
define_op("StridedSliceGrad", infer=_strided_slice_grad_infer)


def strided_slice_spec(x: Any, spec: Spec, dynamic: list[Tensor] | None = None,
                       name: str | None = None) -> Tensor:
    """``x[spec]`` for a spec in the form above; `dynamic` are the scalar-tensor parts."""
    x = convert_to_tensor(x)
    return apply_op("StridedSlice", [x, *(dynamic or [])], {"spec": spec},
                    name=name or "strided_slice")[0]


@register_gradient("StridedSlice")
def _strided_slice_grad(op: Operation, grad: Any) -> list[Any]:
    from actorflow.ops import array_ops
    x = op.inputs[0]
    s = constant(np.array(x._shape, np.int32)) if shapes.is_fully_defined(x._shape) \
        else array_ops.shape(x)
    g = apply_op("StridedSliceGrad", [s, dense(grad), *op.inputs[1:]], dict(op.attrs))[0]
    return [g] + [None] * (len(op.inputs) - 1)


@register_gradient("StridedSliceGrad")
def _strided_slice_grad_grad(op: Operation, grad: Any) -> list[Any]:
    g = strided_slice_spec(dense(grad), op.attrs["spec"], list(op.inputs[2:]))
    return [None, g] + [None] * (len(op.inputs) - 2)


def _index_part(v: Any, dynamic: list[Tensor], what: str) -> Any:
    """One int part of an index: an int, None, or a scalar int tensor (-> {"input": k})."""
    if v is None:
        return None
    if isinstance(v, bool | np.bool_):
        raise TypeError(f"{what}: a bool ({v}) is not an index; use af.boolean_mask or af.where")
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, Tensor) or hasattr(v, "_as_tensor"):
        t = convert_to_tensor(v)
        if not t.dtype.is_integer:
            raise TypeError(f"{what}: tensor '{t.name}' of dtype {t.dtype.name} cannot index; "
                            f"indices must be int32 or int64 scalars")
        if t._shape is not None and t._shape != ():
            raise TypeError(
                f"{what}: tensor '{t.name}' of shape {shapes.fmt(t._shape)} cannot index one "
                f"dimension (only a scalar can); to pick several entries use "
                f"af.gather(x, indices, axis=...)")
        c = constant_value(t)
        if c is not None:
            return int(c)
        dynamic.append(t)
        return {"input": len(dynamic)}
    raise TypeError(f"{what}: {v!r} of type {type(v).__name__} cannot index a tensor; use ints, "
                    f"slices, None, Ellipsis or scalar int tensors (af.gather for lists)")


def _getitem(tensor: Tensor, key: Any) -> Tensor:
    """``tensor[key]`` as one StridedSlice op."""
    if not isinstance(key, tuple):
        key = (key,)
    spec: Spec = []
    dynamic: list[Tensor] = []
    what = f"indexing '{tensor.name}'"
    for k in key:
        if k is None:
            spec.append(["n"])
        elif k is Ellipsis:
            spec.append(["e"])
        elif isinstance(k, slice):
            spec.append(["s", *(_index_part(v, dynamic, what) for v in (k.start, k.stop, k.step))])
        elif isinstance(k, list | np.ndarray):
            raise TypeError(f"{what}: a list or array index ({k!r}) is not supported; use "
                            f"af.gather(x, indices, axis=...)")
        else:
            spec.append(["i", _index_part(k, dynamic, what)])
    return apply_op("StridedSlice", [tensor, *dynamic], {"spec": spec},
                    name="strided_slice")[0]


Tensor._override_operator("__getitem__", _getitem)


def strided_slice(input_: Any, begin: Any, end: Any, strides: Any = None, begin_mask: int = 0,
                  end_mask: int = 0, ellipsis_mask: int = 0, new_axis_mask: int = 0,
                  shrink_axis_mask: int = 0, name: str | None = None) -> Tensor:
    """TF's strided_slice: entry i of begin/end/strides with the masks' bit i (see TF docs);
    ``x[b0:e0:s0, b1:e1:s1]`` is the friendlier spelling."""
    x = convert_to_tensor(input_)
    parts = []
    n = None
    for v in (begin, end, strides):
        if v is None:
            parts.append(None)
            continue
        sv = static_ints(v, "strided_slice") if not isinstance(v, Tensor) or \
            constant_value(v) is not None else None
        if sv is None:
            t = convert_to_tensor(v)
            if t._shape is None or len(t._shape) != 1 or t._shape[0] is None:
                raise InvalidArgumentError(
                    f"strided_slice: begin/end/strides tensor '{t.name}' needs a known length "
                    f"(shape {shapes.fmt(t._shape)})")
            sv = [t[i] for i in range(t._shape[0])]
        parts.append(sv)
        n = len(sv) if n is None else n
        if len(sv) != n:
            raise InvalidArgumentError(f"strided_slice: begin, end and strides must have one "
                                       f"length, got {len(parts[0] or [])} and {len(sv)}")
    b, e, st = parts
    spec: Spec = []
    dynamic: list[Tensor] = []
    what = "strided_slice"
    for i in range(n or 0):
        bit = 1 << i
        if ellipsis_mask & bit:
            spec.append(["e"])
        elif new_axis_mask & bit:
            spec.append(["n"])
        elif shrink_axis_mask & bit:
            spec.append(["i", _index_part(b[i], dynamic, what)])  # type: ignore[index]
        else:
            spec.append(["s", None if begin_mask & bit else _index_part(b[i], dynamic, what),  # type: ignore[index]
                         None if end_mask & bit else _index_part(e[i], dynamic, what),  # type: ignore[index]
                         None if st is None else _index_part(st[i], dynamic, what)])
    return apply_op("StridedSlice", [x, *dynamic], {"spec": spec},
                    name=name or "strided_slice")[0]


# ---- slice ------------------------------------------------------------------------------
def _slice_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    begin, size = attrs.get("begin"), attrs.get("size")
    if begin is None:
        n = ins[1]._shape[0] if ins[1]._shape else None
        r = rank_of(x) if x._shape is not None else n
        return [(x.dtype, None if r is None else (None,) * r)]
    if len(begin) != len(size):
        raise InvalidArgumentError(f"slice: begin {list(begin)} and size {list(size)} must have "
                                   f"one length")
    if x._shape is not None and len(x._shape) != len(begin):
        raise InvalidArgumentError(
            f"slice: begin {list(begin)} has {len(begin)} entries but '{x.name}' has rank "
            f"{len(x._shape)} (shape {shapes.fmt(x._shape)})")
    dims = x._shape or (None,) * len(begin)
    out: list[int | None] = []
    for i, (b, s, d) in enumerate(zip(begin, size, dims, strict=True)):
        if b < 0 or s < -1 or (d is not None and (b > d or (s != -1 and b + s > d))):
            raise InvalidArgumentError(
                f"slice of '{x.name}' (shape {shapes.fmt(x._shape)}) with begin {list(begin)} "
                f"and size {list(size)}: dimension {i} cannot take begin {b}, size {s}; "
                f"need 0 <= begin <= begin + size <= dim (size -1: to the end)")
        out.append((None if d is None else d - b) if s == -1 else s)
    return [(x.dtype, tuple(out))]


define_op("Slice", infer=_slice_infer)


def slice_(input_: Any, begin: Any, size: Any, name: str | None = None) -> Tensor:
    """The block of `input_` starting at `begin` with `size` (-1: to the end of the dim)."""
    x = convert_to_tensor(input_)
    b = _maybe_static_ints(begin, "slice: begin")
    s = _maybe_static_ints(size, "slice: size")
    if b is not None and s is not None:
        return apply_op("Slice", [x], {"begin": b, "size": s}, name=name or "Slice")[0]
    bt = convert_to_tensor(begin if b is None else np.array(b, np.int32))
    st = convert_to_tensor(size if s is None else np.array(s, bt.dtype.np), dtype=bt.dtype)
    if not bt.dtype.is_integer:
        raise InvalidArgumentError(f"slice: begin must be ints, got {bt.dtype.name}")
    return apply_op("Slice", [x, bt, st], name=name or "Slice")[0]


def _maybe_static_ints(v: Any, what: str) -> list[int] | None:
    if isinstance(v, Tensor) and constant_value(v) is None:
        return None
    return static_ints(v, what)


@register_gradient("Slice")
def _slice_grad(op: Operation, grad: Any) -> list[Any]:
    from actorflow.ops import array_ops, math_ops
    x = op.inputs[0]
    grad = dense(grad)
    if len(op.inputs) == 1:
        spec = [["s", b, None if s == -1 else b + s, None]
                for b, s in zip(op.attrs["begin"], op.attrs["size"], strict=True)]
        s = constant(np.array(x._shape, np.int32)) if shapes.is_fully_defined(x._shape) \
            else array_ops.shape(x)
        return [apply_op("StridedSliceGrad", [s, grad], {"spec": spec})[0]]
    begin = op.inputs[1]
    after = math_ops.subtract(math_ops.subtract(array_ops.shape(x, out_type=begin.dtype), begin),
                              array_ops.shape(grad, out_type=begin.dtype))
    return [array_ops.pad(grad, array_ops.stack([begin, after], axis=1)), None, None]


# ---- gather -----------------------------------------------------------------------------
def _gather_infer(ins: list[Tensor], attrs: dict) -> list:
    p, i = ins
    if not i.dtype.is_integer:
        raise InvalidArgumentError(f"gather: indices '{i.name}' must be int32 or int64, got "
                                   f"{i.dtype.name}")
    if p._shape is None or i._shape is None:
        return [(p.dtype, None)]
    if not p._shape:
        raise InvalidArgumentError(f"gather: params '{p.name}' is a scalar; it needs a "
                                   f"dimension to gather from")
    axis = normalize_axis(attrs["axis"], len(p._shape), "gather")
    return [(p.dtype, p._shape[:axis] + i._shape + p._shape[axis + 1:])]


def _gather_grad_infer(ins: list[Tensor], attrs: dict) -> list:
    dims = partial_shape(ins[2])
    return [(ins[0].dtype, None if dims is None else tuple(dims))]


define_op("GatherV2", infer=_gather_infer)
define_op("GatherGrad", infer=_gather_grad_infer)


def gather(params: Any, indices: Any, axis: Any = 0, batch_dims: int = 0,
           name: str | None = None, validate_indices: Any = None) -> Tensor:
    """Entries of `params` at `indices` along `axis`: the output's shape is
    ``params.shape[:axis] + indices.shape + params.shape[axis+1:]``. Indices must be in
    ``[0, params.shape[axis])``. The gradient along axis 0 is sparse (IndexedSlices)."""
    if batch_dims != 0:  # one gather per batch position (TF's batch_dims)
        from actorflow.ops.batch_gather_ops import batch_gather  # noqa: PLC0415
        return batch_gather(params, indices, required_axis(axis, "gather"), batch_dims, name)
    p = convert_to_tensor(params)
    i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
    ax = normalize_axis(required_axis(axis, "gather"), rank_of(p), "gather")
    if p.op.type == "ReadVariableOp":
        # Gather where the variable lives (OSDI §4.2): only the rows travel, not the table.
        from actorflow.graph import colocate_with  # noqa: PLC0415
        with colocate_with(p.op):
            return apply_op("GatherV2", [p, i], {"axis": ax}, name=name or "GatherV2")[0]
    return apply_op("GatherV2", [p, i], {"axis": ax}, name=name or "GatherV2")[0]


@register_gradient("GatherV2")
def _gather_grad(op: Operation, grad: Any) -> list[Any]:
    from actorflow.ops import array_ops
    p, i = op.inputs
    grad = dense(grad)
    axis = op.attrs["axis"]
    ps = p._shape
    p_shape = constant(np.array(ps, np.int32)) if shapes.is_fully_defined(ps) \
        else array_ops.shape(p)
    if axis != 0:
        return [apply_op("GatherGrad", [grad, i, p_shape], {"axis": axis})[0], None]
    if i._shape is not None and len(i._shape) == 1:
        return [IndexedSlices(grad, i, p_shape), None]
    flat_i = array_ops.reshape(i, [-1])
    n = shapes.num_elements(i._shape)
    if ps is not None and shapes.is_fully_defined(ps[1:]):
        values = array_ops.reshape(grad, [-1 if n is None else n, *ps[1:]])
    else:
        inner = array_ops.shape(p)[1:]
        values = array_ops.reshape(grad, array_ops.concat([constant([-1]), inner], 0))
    return [IndexedSlices(values, flat_i, p_shape), None]


@register_gradient("GatherGrad")
def _gather_grad_grad(op: Operation, grad: Any) -> list[Any]:
    return [gather(dense(grad), op.inputs[1], axis=op.attrs["axis"]), None, None]


# ---- one_hot ----------------------------------------------------------------------------
def _one_hot_infer(ins: list[Tensor], attrs: dict) -> list:
    i = ins[0]
    if not i.dtype.is_integer:
        raise InvalidArgumentError(f"one_hot: indices '{i.name}' must be ints, got "
                                   f"{i.dtype.name}")
    dt = dtypes.as_dtype(attrs["dtype"])
    if i._shape is None:
        return [(dt, None)]
    dims = list(i._shape)
    axis = attrs["axis"]
    dims.insert(len(dims) if axis == -1 else axis, attrs["depth"])
    return [(dt, tuple(dims))]


define_op("OneHot", infer=_one_hot_infer)
no_gradient("OneHot")


def one_hot(indices: Any, depth: Any, on_value: Any = None, off_value: Any = None,
            axis: int | None = None, dtype: Any = None, name: str | None = None) -> Tensor:
    """Vectors of length `depth` that are `on_value` at each index and `off_value` elsewhere
    (indices outside [0, depth) give all-off vectors), inserted at `axis` (default last)."""
    i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
    d = static_int(depth, "one_hot: depth")
    if d is None or d < 0:
        raise InvalidArgumentError(f"one_hot needs a non-negative depth known when the graph is "
                                   f"built, got {depth!r}")
    vals = []
    for v, what in ((on_value, "on_value"), (off_value, "off_value")):
        sv = None if v is None else static_value(v)
        if v is not None and (sv is None or sv.size != 1):
            raise InvalidArgumentError(f"one_hot: {what} must be a scalar known when the graph "
                                       f"is built, got {v!r}")
        vals.append(sv)
    if dtype is not None:
        dt = dtypes.as_dtype(dtype)
    elif isinstance(on_value, Tensor | np.ndarray | np.generic):
        dt = dtypes.as_dtype(np.asarray(vals[0]).dtype)
    elif isinstance(off_value, Tensor | np.ndarray | np.generic):
        dt = dtypes.as_dtype(np.asarray(vals[1]).dtype)
    else:
        dt = dtypes.float32
    on = 1 if vals[0] is None else vals[0].reshape(()).item()
    off = 0 if vals[1] is None else vals[1].reshape(()).item()
    r = rank_of(i)
    ax = -1 if axis is None else int(axis)
    if ax != -1:
        if r is None:
            raise InvalidArgumentError("one_hot: an axis other than -1 needs indices of known "
                                       "rank")
        if not 0 <= ax <= r:
            raise InvalidArgumentError(f"one_hot: axis {ax} is out of range for indices of "
                                       f"rank {r} (use -1 or 0..{r})")
    return apply_op("OneHot", [i], {"depth": d, "axis": ax, "on_value": on, "off_value": off,
                                    "dtype": dt}, name=name or "one_hot")[0]


__all__ = ["slice_", "strided_slice", "gather", "one_hot", "newaxis"]
