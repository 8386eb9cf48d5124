"""Convolution and pooling ops (``af.nn.conv2d``, ``max_pool``, ``avg_pool``, ...), NHWC.

Layouts: inputs are NHWC, filters HWIO (``[height, width, in_channels, out_channels]``);
strides, ksize and dilations are ``[1, h, w, 1]`` (an int or an ``[h, w]`` pair is accepted
too); padding is "SAME", "VALID" or, for conv2d, explicit
``[[0, 0], [top, bottom], [left, right], [0, 0]]``. Output sizes come from
`devices.kernels.nn.geometry`, the function the kernels use, so build time and run time agree.

Gradients are ops with kernels of their own, as in TF: ``Conv2DBackpropInput``,
``Conv2DBackpropFilter``, ``MaxPoolGrad`` (the gradient goes to each window's first maximum)
and ``AvgPoolGrad``; their own gradients are registered too (second derivatives).

    h = af.nn.relu(af.nn.conv2d(images, w, strides=[1, 1, 1, 1], padding="SAME") + b)
    h = af.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    check_same_dtype,
    constant,
    constant_value,
    convert_to_tensor,
    define_op,
    register_gradient,
)
from actorflow.ops import array_ops
from devices import dtypes
from devices.errors import InvalidArgumentError, UnimplementedError
from devices.kernels.conv import geometry

__all__: list[str] = []

Infer = list[tuple[dtypes.DType, shapes.Shape]]
_ATTR_KEYS = ("strides", "padding", "dilations", "ksize", "data_format")


def shape_tensor(t: Tensor) -> Tensor:
    """The shape of `t` as an int32 tensor: a constant when it is known statically."""
    if shapes.is_fully_defined(t._shape):
        return constant(np.array(t._shape, np.int32), name="shape")
    return array_ops.shape(t)


def _attrs(op: Operation) -> dict[str, Any]:
    return {k: op.attrs[k] for k in _ATTR_KEYS if k in op.attrs}


# ---- argument normalisation -------------------------------------------------------------
def _hw4(value: Any, what: str, arg: str) -> tuple[int, int, int, int]:
    """[1, h, w, 1] from an int, an [h, w] pair or a 4-list."""
    if value is None:
        raise InvalidArgumentError(f"{what} needs {arg}= (e.g. [1, 1, 1, 1])")
    v = [int(value)] if isinstance(value, int | np.integer) else [int(d) for d in value]
    if len(v) == 1:
        v = [1, v[0], v[0], 1]
    elif len(v) == 2:
        v = [1, v[0], v[1], 1]
    if len(v) != 4 or v[0] != 1 or v[3] != 1 or min(v) < 1:
        raise InvalidArgumentError(
            f"{what}: {arg} must be [1, h, w, 1] with h, w >= 1 (NHWC: no {arg} over the "
            f"batch or channels), got {list(value) if not isinstance(value, int) else value}")
    return (v[0], v[1], v[2], v[3])


def _padding(padding: Any, what: str, explicit_ok: bool) -> Any:
    if isinstance(padding, str):
        p = padding.upper()
        if p in ("SAME", "VALID"):
            return p
    elif explicit_ok and padding is not None:
        try:
            pads = tuple(tuple(int(v) for v in pair) for pair in padding)
        except (TypeError, ValueError):
            pads = ()
        if len(pads) == 4 and all(len(p) == 2 and min(p) >= 0 for p in pads) and \
                pads[0] == (0, 0) and pads[3] == (0, 0):
            return pads
    extra = " or explicit [[0, 0], [top, bottom], [left, right], [0, 0]]" if explicit_ok else ""
    raise InvalidArgumentError(f"{what}: padding must be 'SAME' or 'VALID'{extra}, got {padding!r}")


def _nhwc(data_format: str | None, what: str) -> str:
    if data_format not in (None, "NHWC"):
        raise UnimplementedError(
            f"{what} supports data_format 'NHWC' only, got {data_format!r}; transpose NCHW "
            f"data with af.transpose(x, [0, 2, 3, 1])")
    return "NHWC"


def _sizes_tensor(sizes: Any) -> Tensor:
    if isinstance(sizes, Tensor):
        return sizes
    return constant(np.asarray(sizes, dtype=np.int32).reshape(-1), name="sizes")


# ---- shape inference --------------------------------------------------------------------
def _rank4(t: Tensor, what: str, role: str) -> tuple[int | None, ...]:
    if t._shape is None:
        return (None,) * 4
    if len(t._shape) != 4:
        raise InvalidArgumentError(
            f"{what} needs a 4-D {role}, got shape {shapes.fmt(t._shape)} ('{t.name}')")
    return t._shape


def _float_pair(a: Tensor, b: Tensor, what: str) -> dtypes.DType:
    dt = check_same_dtype([a, b], what)
    if not dt.is_floating:
        raise InvalidArgumentError(
            f"{what} needs floating-point tensors, got {dt.name} ('{a.name}'); convert with "
            f"af.cast(x, af.float32)")
    return dt


def _out_size(size: int | None, k: int | None, s: int, d: int, pad: Any, axis: int,
              what: str, x_shape: shapes.Shape, window: str) -> int | None:
    if size is None or k is None:
        return None
    p = pad if isinstance(pad, str) else pad[axis]
    out, _, _ = geometry(size, k, s, d, p)
    if out < 0:
        raise InvalidArgumentError(
            f"{what}: the {window} does not fit the input of shape {shapes.fmt(x_shape)} "
            f"(dimension {axis}, padding {pad!r}); use padding='SAME' or a smaller window")
    return out


def _check_channels(what: str, x_shape: shapes.Shape, w_shape: shapes.Shape) -> None:
    c, i = x_shape[3], w_shape[2]  # type: ignore[index]
    if c is not None and i is not None and c != i:
        raise InvalidArgumentError(
            f"{what}: the input of shape {shapes.fmt(x_shape)} has {c} channels but the filter "
            f"of shape {shapes.fmt(w_shape)} expects {i} (filter layout [height, width, "
            f"in_channels, out_channels])")


def _conv_out(what: str, xs: shapes.Shape, ws: shapes.Shape, attrs: dict) -> shapes.Shape:
    _check_channels(what, xs, ws)
    st, dil, pad = attrs["strides"], attrs.get("dilations") or (1, 1, 1, 1), attrs["padding"]
    window = f"filter of shape {shapes.fmt(ws)} (dilation {dil[1]}x{dil[2]})"
    ho = _out_size(xs[1], ws[0], st[1], dil[1], pad, 1, what, xs, window)  # type: ignore[index]
    wo = _out_size(xs[2], ws[1], st[2], dil[2], pad, 2, what, xs, window)  # type: ignore[index]
    return (xs[0], ho, wo, ws[3])  # type: ignore[index]


def _static_sizes(t: Tensor, what: str) -> tuple[int, ...] | None:
    v = constant_value(t)
    if v is None:
        return None
    dims = tuple(int(d) for d in v.reshape(-1))
    if len(dims) != 4:
        raise InvalidArgumentError(f"{what}: sizes must have 4 elements (NHWC/HWIO), got {dims}")
    return dims


def _check_backprop(what: str, dy: Tensor, want: shapes.Shape) -> None:
    if not shapes.is_compatible(dy._shape, want):
        raise InvalidArgumentError(
            f"{what}: out_backprop has shape {shapes.fmt(dy._shape)} but the forward op gives "
            f"{shapes.fmt(want)}")


def _conv2d_infer(ins: list[Tensor], attrs: dict) -> Infer:
    x, w = ins
    dt = _float_pair(x, w, "conv2d")
    return [(dt, _conv_out("conv2d", _rank4(x, "conv2d", "input"),
                           _rank4(w, "conv2d", "filter"), attrs))]


def _backprop_input_infer(ins: list[Tensor], attrs: dict) -> Infer:
    sizes, w, dy = ins
    what = "conv2d_backprop_input"
    dt = _float_pair(w, dy, what)
    ws, dys = _rank4(w, what, "filter"), _rank4(dy, what, "out_backprop")
    xs = _static_sizes(sizes, what)
    if xs is None:
        return [(dt, (dys[0], None, None, ws[2]))]
    _check_backprop(what, dy, _conv_out(what, xs, ws, attrs))
    return [(dt, xs)]


def _backprop_filter_infer(ins: list[Tensor], attrs: dict) -> Infer:
    x, sizes, dy = ins
    what = "conv2d_backprop_filter"
    dt = _float_pair(x, dy, what)
    xs, dys = _rank4(x, what, "input"), _rank4(dy, what, "out_backprop")
    ws = _static_sizes(sizes, what)
    if ws is None:
        return [(dt, (None, None, xs[3], dys[3]))]
    _check_backprop(what, dy, _conv_out(what, xs, ws, attrs))
    return [(dt, ws)]


def _pool_out(what: str, xs: shapes.Shape, attrs: dict) -> shapes.Shape:
    ks, st, pad = attrs["ksize"], attrs["strides"], attrs["padding"]
    window = f"window of {ks[1]}x{ks[2]}"
    ho = _out_size(xs[1], ks[1], st[1], 1, pad, 1, what, xs, window)  # type: ignore[index]
    wo = _out_size(xs[2], ks[2], st[2], 1, pad, 2, what, xs, window)  # type: ignore[index]
    return (xs[0], ho, wo, xs[3])  # type: ignore[index]


def _pool_infer(what: str) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> Infer:
        x = ins[0]
        if what == "avg_pool" and not x.dtype.is_floating:
            raise InvalidArgumentError(
                f"avg_pool needs a floating-point input, got {x.dtype.name} ('{x.name}')")
        return [(x.dtype, _pool_out(what, _rank4(x, what, "input"), attrs))]
    return infer


def _max_pool_grad_infer(ins: list[Tensor], attrs: dict) -> Infer:
    x, y, g = ins
    return [(g.dtype, x._shape)]


def _max_pool_grad_grad_infer(ins: list[Tensor], attrs: dict) -> Infer:
    x, y, g = ins
    return [(g.dtype, y._shape)]


def _avg_pool_grad_infer(ins: list[Tensor], attrs: dict) -> Infer:
    sizes, g = ins
    what = "avg_pool_grad"
    gs = _rank4(g, what, "gradient")
    xs = _static_sizes(sizes, what)
    if xs is None:
        return [(g.dtype, (gs[0], None, None, gs[3]))]
    _check_backprop(what, g, _pool_out(what, xs, attrs))
    return [(g.dtype, xs)]


define_op("Conv2D", infer=_conv2d_infer)
define_op("Conv2DBackpropInput", infer=_backprop_input_infer)
define_op("Conv2DBackpropFilter", infer=_backprop_filter_infer)
define_op("MaxPool", infer=_pool_infer("max_pool"))
define_op("AvgPool", infer=_pool_infer("avg_pool"))
define_op("MaxPoolGrad", infer=_max_pool_grad_infer)
define_op("MaxPoolGradGrad", infer=_max_pool_grad_grad_infer)
define_op("AvgPoolGrad", infer=_avg_pool_grad_infer)


# ---- builders ---------------------------------------------------------------------------
def _conv_attrs(what: str, strides: Any, padding: Any, dilations: Any,
                data_format: str | None) -> dict[str, Any]:
    return {"strides": _hw4(strides, what, "strides"),
            "padding": _padding(padding, what, explicit_ok=True),
            "dilations": _hw4(dilations if dilations is not None else 1, what, "dilations"),
            "data_format": _nhwc(data_format, what)}


def conv2d(input: Any, filter: Any = None, strides: Any = None, padding: Any = None,
           use_cudnn_on_gpu: bool = True, data_format: str | None = "NHWC",
           dilations: Any = None, name: str | None = None, filters: Any = None) -> Tensor:
    """2-D convolution (cross-correlation, as TF) of an NHWC input with an HWIO filter."""
    w = filter if filter is not None else filters
    if w is None:
        raise InvalidArgumentError("conv2d needs a filter (filter= or filters=)")
    x = convert_to_tensor(input)
    w = convert_to_tensor(w, dtype=x.dtype if not isinstance(w, Tensor) else None)
    return apply_op("Conv2D", [x, w], _conv_attrs("conv2d", strides, padding, dilations,
                                                  data_format), name=name or "Conv2D")[0]


def conv2d_backprop_input(input_sizes: Any, filter: Any, out_backprop: Any, strides: Any,
                          padding: Any, use_cudnn_on_gpu: bool = True,
                          data_format: str | None = "NHWC", dilations: Any = None,
                          name: str | None = None) -> Tensor:
    """The gradient of conv2d w.r.t. its input, of shape `input_sizes`."""
    dy = convert_to_tensor(out_backprop)
    w = convert_to_tensor(filter, dtype=dy.dtype if not isinstance(filter, Tensor) else None)
    return apply_op("Conv2DBackpropInput", [_sizes_tensor(input_sizes), w, dy],
                    _conv_attrs("conv2d_backprop_input", strides, padding, dilations,
                                data_format), name=name or "Conv2DBackpropInput")[0]


def conv2d_backprop_filter(input: Any, filter_sizes: Any, out_backprop: Any, strides: Any,
                           padding: Any, use_cudnn_on_gpu: bool = True,
                           data_format: str | None = "NHWC", dilations: Any = None,
                           name: str | None = None) -> Tensor:
    """The gradient of conv2d w.r.t. its filter, of shape `filter_sizes`."""
    x = convert_to_tensor(input)
    dy = convert_to_tensor(out_backprop, dtype=x.dtype if not isinstance(out_backprop, Tensor)
                           else None)
    return apply_op("Conv2DBackpropFilter", [x, _sizes_tensor(filter_sizes), dy],
                    _conv_attrs("conv2d_backprop_filter", strides, padding, dilations,
                                data_format), name=name or "Conv2DBackpropFilter")[0]


def conv2d_transpose(value: Any, filter: Any = None, output_shape: Any = None,
                     strides: Any = None, padding: Any = "SAME",
                     data_format: str | None = "NHWC", name: str | None = None,
                     dilations: Any = None, filters: Any = None) -> Tensor:
    """The transpose of conv2d ("deconvolution"): filter is [h, w, out_channels, in_channels]
    and `value` has in_channels; the result has shape `output_shape`."""
    if output_shape is None:
        raise InvalidArgumentError("conv2d_transpose needs output_shape=")
    return conv2d_backprop_input(output_shape, filter if filter is not None else filters,
                                 value, strides, padding, data_format=data_format,
                                 dilations=dilations, name=name or "conv2d_transpose")


def _pool(op: str, what: str, value: Any, ksize: Any, strides: Any, padding: Any,
          data_format: str | None, name: str | None) -> Tensor:
    attrs = {"ksize": _hw4(ksize, what, "ksize"), "strides": _hw4(strides, what, "strides"),
             "padding": _padding(padding, what, explicit_ok=False),
             "data_format": _nhwc(data_format, what)}
    return apply_op(op, [convert_to_tensor(value)], attrs, name=name or op)[0]


def max_pool(value: Any = None, ksize: Any = None, strides: Any = None, padding: Any = None,
             data_format: str | None = "NHWC", name: str | None = None,
             input: Any = None) -> Tensor:
    """The maximum of each ksize window (NHWC); SAME padding never wins a window."""
    return _pool("MaxPool", "max_pool", value if value is not None else input, ksize, strides,
                 padding, data_format, name)


def avg_pool(value: Any = None, ksize: Any = None, strides: Any = None, padding: Any = None,
             data_format: str | None = "NHWC", name: str | None = None,
             input: Any = None) -> Tensor:
    """The mean of each ksize window (NHWC); with SAME padding, of its real elements only."""
    return _pool("AvgPool", "avg_pool", value if value is not None else input, ksize, strides,
                 padding, data_format, name)


# ---- gradients --------------------------------------------------------------------------
@register_gradient("Conv2D")
def _conv2d_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, w = op.inputs
    a = _attrs(op)
    return [apply_op("Conv2DBackpropInput", [shape_tensor(x), w, grad], a)[0],
            apply_op("Conv2DBackpropFilter", [x, shape_tensor(w), grad], a)[0]]


@register_gradient("Conv2DBackpropInput")
def _conv2d_backprop_input_grad(op: Operation, gg: Tensor) -> list[Any]:
    _, w, dy = op.inputs
    a = _attrs(op)
    return [None, apply_op("Conv2DBackpropFilter", [gg, shape_tensor(w), dy], a)[0],
            apply_op("Conv2D", [gg, w], a)[0]]


@register_gradient("Conv2DBackpropFilter")
def _conv2d_backprop_filter_grad(op: Operation, gg: Tensor) -> list[Any]:
    x, _, dy = op.inputs
    a = _attrs(op)
    return [apply_op("Conv2DBackpropInput", [shape_tensor(x), gg, dy], a)[0], None,
            apply_op("Conv2D", [x, gg], a)[0]]


@register_gradient("MaxPool")
def _max_pool_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [apply_op("MaxPoolGrad", [op.inputs[0], op.outputs[0], grad], _attrs(op))[0]]


@register_gradient("MaxPoolGrad")
def _max_pool_grad_grad(op: Operation, gg: Tensor) -> list[Any]:
    x, y, _ = op.inputs
    return [array_ops.zeros_like(x), array_ops.zeros_like(y),
            apply_op("MaxPoolGradGrad", [x, y, gg], _attrs(op))[0]]


@register_gradient("MaxPoolGradGrad")
def _max_pool_grad_grad_grad(op: Operation, ggg: Tensor) -> list[Any]:
    x, y, _ = op.inputs
    return [array_ops.zeros_like(x), array_ops.zeros_like(y),
            apply_op("MaxPoolGrad", [x, y, ggg], _attrs(op))[0]]


@register_gradient("AvgPool")
def _avg_pool_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [apply_op("AvgPoolGrad", [shape_tensor(op.inputs[0]), grad], _attrs(op))[0]]


@register_gradient("AvgPoolGrad")
def _avg_pool_grad_grad(op: Operation, gg: Tensor) -> list[Any]:
    return [None, apply_op("AvgPool", [gg], _attrs(op))[0]]
