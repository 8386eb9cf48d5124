"""Neural-network ops (``af.nn.*``): activations, softmax, the fused losses, bias_add, conv2d,
pooling, dropout, l2_loss, embedding_lookup and moments.

As in TensorFlow, the losses are fused kernels: ``SoftmaxCrossEntropyWithLogits`` returns the
per-row loss *and* its backprop (softmax - labels) in one pass, and the gradient function
scales that saved output instead of recomputing the softmax. Gradients of relu, softmax,
bias_add, conv2d and pooling are kernels of their own (``ReluGrad``, ``SoftmaxGrad``,
``BiasAddGrad``, ``Conv2DBackpropInput``/``Filter``, ``MaxPoolGrad``, ``AvgPoolGrad``), each one
node instead of a chain of element-wise ops.

conv2d and pooling live in `nn_conv_ops`, the fused losses in `nn_loss_ops` (both re-exported
here); the input checks they share in `nn_checks`.

    logits = af.nn.bias_add(af.matmul(h, w), b)
    loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

These builders live under ``af.nn`` only (as in TF1), so ``__all__`` is empty here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Operation, Tensor, get_seed, name_scope
from actorflow.op_def import (
    apply_op,
    constant,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import array_ops, core_ops, math_ops
from actorflow.ops.nn_checks import (  # noqa: F401  (shared with nn_loss_ops)
    Infer,
    _check_axis,
    _float,
    _rank_at_least,
    _rank_is,
    _same_dtype,
)
from actorflow.ops.nn_conv_ops import (  # noqa: F401  (re-exported: the conv/pool family)
    avg_pool,
    conv2d,
    conv2d_backprop_filter,
    conv2d_backprop_input,
    conv2d_transpose,
    max_pool,
)
from actorflow.ops.nn_conv_ops import (
    shape_tensor as _shape_tensor,
)
from actorflow.ops.nn_loss_ops import (  # noqa: F401  (re-exported: the fused losses)
    sigmoid_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    sparse_softmax_cross_entropy_with_logits,
)
from devices import dtypes
from devices.errors import InvalidArgumentError, UnimplementedError

__all__: list[str] = []



# ---- relu -------------------------------------------------------------------------------
def _numeric_same(ins: list[Tensor], attrs: dict) -> Infer:
    if ins[0].dtype.is_bool:
        raise InvalidArgumentError(f"relu needs a numeric tensor, got bool ('{ins[0].name}')")
    return [(ins[0].dtype, ins[0]._shape)]


def _grad_infer(ins: list[Tensor], attrs: dict) -> Infer:
    """ReluGrad(g, y) and friends: the gradient has the shape and dtype of both inputs."""
    dt = _same_dtype(ins[0], ins[1], "a gradient op")
    try:
        return [(dt, shapes.merge(ins[0]._shape, ins[1]._shape))]
    except InvalidArgumentError:
        raise InvalidArgumentError(
            f"the gradient {shapes.fmt(ins[0]._shape)} does not match the value "
            f"{shapes.fmt(ins[1]._shape)}") from None


define_op("Relu", infer=_numeric_same)
define_op("ReluGrad", infer=_grad_infer)


def relu(features: Any, name: str | None = None) -> Tensor:
    """max(features, 0)."""
    return apply_op("Relu", [convert_to_tensor(features)], name=name or "Relu")[0]


@register_gradient("Relu")
def _relu_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [apply_op("ReluGrad", [grad, op.outputs[0]], name="ReluGrad")[0]]


@register_gradient("ReluGrad")
def _relu_grad_grad(op: Operation, grad: Tensor) -> list[Any]:
    y = op.inputs[1]
    return [apply_op("ReluGrad", [grad, y], name="ReluGrad")[0], array_ops.zeros_like(y)]


# ---- softmax, log_softmax ---------------------------------------------------------------
def _softmax_infer(ins: list[Tensor], attrs: dict) -> Infer:
    x = ins[0]
    _float(x, "softmax")
    _rank_at_least(x, 1, "softmax")
    _check_axis(x, attrs["axis"], "softmax")
    return [(x.dtype, x._shape)]


define_op("Softmax", infer=_softmax_infer)
define_op("LogSoftmax", infer=_softmax_infer)
define_op("SoftmaxGrad", infer=_grad_infer)
define_op("LogSoftmaxGrad", infer=_grad_infer)


def _softmax_op(op: str, logits: Any, axis: Any, dim: Any, name: str | None) -> Tensor:
    x = convert_to_tensor(logits)
    axis = -1 if axis is None and dim is None else int(axis if axis is not None else dim)
    return apply_op(op, [x], {"axis": axis}, name=name or op)[0]


def softmax(logits: Any, axis: int | None = None, name: str | None = None,
            dim: int | None = None) -> Tensor:
    """exp(logits) / sum(exp(logits)) along `axis` (default: the last), computed stably."""
    return _softmax_op("Softmax", logits, axis, dim, name)


def log_softmax(logits: Any, axis: int | None = None, name: str | None = None,
                dim: int | None = None) -> Tensor:
    """logits - log(sum(exp(logits))) along `axis` (default: the last), computed stably."""
    return _softmax_op("LogSoftmax", logits, axis, dim, name)


@register_gradient("Softmax")
def _softmax_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [apply_op("SoftmaxGrad", [op.outputs[0], grad], dict(op.attrs), name="SoftmaxGrad")[0]]


@register_gradient("LogSoftmax")
def _log_softmax_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [apply_op("LogSoftmaxGrad", [op.outputs[0], grad], dict(op.attrs),
                     name="LogSoftmaxGrad")[0]]


@register_gradient("SoftmaxGrad")
def _softmax_grad_grad(op: Operation, gg: Tensor) -> list[Any]:
    # dx = (g - s) * y with s = sum(g * y): d/dg = SoftmaxGrad(y, gg);
    # d/dy = gg * (g - s) - g * sum(gg * y).
    y, g = op.inputs
    axis = op.attrs["axis"]
    s = math_ops.reduce_sum(g * y, axis, keepdims=True)
    t = math_ops.reduce_sum(gg * y, axis, keepdims=True)
    dy = gg * (g - s) - g * t
    return [dy, apply_op("SoftmaxGrad", [y, gg], dict(op.attrs), name="SoftmaxGrad")[0]]


# ---- l2_loss ----------------------------------------------------------------------------
def _l2_infer(ins: list[Tensor], attrs: dict) -> Infer:
    return [(_float(ins[0], "l2_loss"), ())]


define_op("L2Loss", infer=_l2_infer)


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """sum(t ** 2) / 2, a scalar."""
    return apply_op("L2Loss", [convert_to_tensor(t)], name=name or "L2Loss")[0]


@register_gradient("L2Loss")
def _l2_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [math_ops.multiply(op.inputs[0], grad)]


# ---- bias_add ---------------------------------------------------------------------------
def _data_format(attrs: dict) -> str:
    return attrs.get("data_format", "NHWC")


def _channel_dim(shape: shapes.Shape, fmt: str) -> int | None:
    if shape is None:
        return None
    return shape[1] if fmt == "NCHW" else shape[-1]


def _bias_add_infer(ins: list[Tensor], attrs: dict) -> Infer:
    x, b = ins
    dt = _same_dtype(x, b, "bias_add")
    _rank_at_least(x, 2, "bias_add")
    bs = _rank_is(b, 1, "bias_add", "bias")
    fmt = _data_format(attrs)
    c = _channel_dim(x._shape, fmt)
    if c is not None and bs[0] is not None and c != bs[0]:  # type: ignore[index]
        where = "dimension 1" if fmt == "NCHW" else "the last dimension"
        raise InvalidArgumentError(
            f"bias_add: the bias of shape {shapes.fmt(b._shape)} does not match the {c} "
            f"channels of the value of shape {shapes.fmt(x._shape)} ({where}, data_format "
            f"{fmt})")
    return [(dt, x._shape)]


def _bias_add_grad_infer(ins: list[Tensor], attrs: dict) -> Infer:
    g = ins[0]
    return [(g.dtype, (_channel_dim(g._shape, _data_format(attrs)),))]


define_op("BiasAdd", infer=_bias_add_infer)
define_op("BiasAddGrad", infer=_bias_add_grad_infer)


def _format_attr(data_format: str | None, allowed: tuple[str, ...], what: str) -> str:
    fmt = (data_format or "NHWC").upper()
    if fmt in ("NWC", "NDHWC"):
        fmt = "NHWC"
    if fmt not in allowed:
        raise UnimplementedError(
            f"{what} supports data_format {' or '.join(allowed)}, got {data_format!r}; "
            f"transpose NCHW data to NHWC with af.transpose(x, [0, 2, 3, 1])")
    return fmt


def bias_add(value: Any, bias: Any, data_format: str | None = None,
             name: str | None = None) -> Tensor:
    """value + bias, the 1-D bias added along the channel axis (last for NHWC, 1 for NCHW)."""
    fmt = _format_attr(data_format, ("NHWC", "NCHW"), "bias_add")
    x = convert_to_tensor(value)
    b = convert_to_tensor(bias, dtype=x.dtype if not isinstance(bias, Tensor) else None)
    return apply_op("BiasAdd", [x, b], {"data_format": fmt}, name=name or "BiasAdd")[0]


@register_gradient("BiasAdd")
def _bias_add_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [grad, apply_op("BiasAddGrad", [grad], dict(op.attrs), name="BiasAddGrad")[0]]


@register_gradient("BiasAddGrad")
def _bias_add_grad_grad(op: Operation, gg: Tensor) -> list[Any]:
    g = op.inputs[0]
    if _data_format(op.attrs) == "NCHW":
        if g._shape is None:
            raise InvalidArgumentError("the second derivative of an NCHW bias_add needs the "
                                       "rank of its input to be known")
        gg = array_ops.reshape(gg, [-1] + [1] * (len(g._shape) - 2))
    return [array_ops.broadcast_to(gg, _shape_tensor(g))]


# ---- dropout ----------------------------------------------------------------------------
def _dropout_infer(ins: list[Tensor], attrs: dict) -> Infer:
    shape, _ = ins
    v = constant_value(shape)
    if v is not None:
        return [(attrs["dtype"], tuple(int(d) for d in v.reshape(-1)))]
    n = shape._shape[0] if shape._shape else None
    return [(attrs["dtype"], None if n is None else (None,) * n)]


define_op("DropoutMask", infer=_dropout_infer, stateful=True)
no_gradient("DropoutMask")


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: int | None = None,
            name: str | None = None, rate: Any = None) -> Tensor:
    """Zero each element of `x` with probability `rate` (= 1 - keep_prob) and scale the rest
    by 1 / keep_prob, so the expected value is unchanged. `keep_prob` (TF1's second argument)
    may be a tensor, e.g. a placeholder fed 1.0 at evaluation. `noise_shape` draws one keep
    decision per broadcast slice (e.g. ``[batch, 1, 1, channels]``)."""
    if (keep_prob is None) == (rate is None):
        raise InvalidArgumentError("dropout needs exactly one of keep_prob= and rate=")
    with name_scope(name, "dropout"):
        x = convert_to_tensor(x)
        _float(x, "dropout")
        if rate is not None:
            static = _static_prob(rate)
            if static is not None:
                keep_prob = 1.0 - static
            else:
                keep_prob = math_ops.subtract(
                    constant(1.0, x.dtype), convert_to_tensor(rate, dtype=x.dtype))
        static_keep = _static_prob(keep_prob)
        if static_keep is not None:
            if not 0.0 < static_keep <= 1.0:
                raise InvalidArgumentError(
                    f"dropout: keep_prob must be in (0, 1] (rate in [0, 1)), got keep_prob "
                    f"{static_keep}")
            if static_keep == 1.0:
                return x
        kp = convert_to_tensor(keep_prob, dtype=x.dtype)
        shape = _noise_shape(x, noise_shape)
        graph_seed, op_seed = get_seed(seed)
        mask = apply_op("DropoutMask", [shape, kp],
                        {"dtype": x.dtype, "seed": graph_seed, "seed2": op_seed},
                        name="mask")[0]
        return math_ops.multiply(x, mask)


def _static_prob(p: Any) -> float | None:
    if isinstance(p, Tensor):
        v = constant_value(p)
        return None if v is None else float(v)
    return float(p)


def _noise_shape(x: Tensor, noise_shape: Any) -> Tensor:
    if noise_shape is None:
        return _shape_tensor(x)
    if isinstance(noise_shape, Tensor):
        return noise_shape
    ns = shapes.as_shape(noise_shape)
    if ns is None or None in ns:
        raise InvalidArgumentError(f"dropout: noise_shape must be fully known, got {noise_shape}")
    if x._shape is not None:
        ok = len(ns) == len(x._shape) and all(
            n == 1 or d is None or n == d for n, d in zip(ns, x._shape, strict=True))
        if not ok:
            raise InvalidArgumentError(
                f"dropout: noise_shape {shapes.fmt(ns)} must have the rank of x "
                f"{shapes.fmt(x._shape)} and each dimension equal to x's or 1")
    return constant(np.array(ns, np.int32), name="noise_shape")


# ---- embedding_lookup, moments ----------------------------------------------------------
def embedding_lookup(params: Any, ids: Any, partition_strategy: str = "mod",
                     name: str | None = None, validate_indices: bool = True,
                     max_norm: Any = None) -> Tensor:
    """Rows `ids` of `params` (a gather on axis 0): the gradient w.r.t. params is an
    IndexedSlices of just those rows, so optimizers update only them.

    `params` may be a list of shards of one table (e.g. variables spread over parameter-server
    tasks by `replica_device_setter`): id ``i`` lives in shard ``i % n`` at row ``i // n``
    (``"mod"``), or in contiguous blocks, the first ``rows % n`` shards one row longer
    (``"div"``, which needs the shards' row counts at build time). The ids are split by shard
    (`dynamic_partition`), each shard gathers its rows where it lives, and `dynamic_stitch`
    puts them back in the ids' order (OSDI §4.2, Figure 3)."""
    if max_norm is not None:
        raise UnimplementedError("embedding_lookup(max_norm=...) is not supported")
    if partition_strategy not in ("mod", "div"):
        raise InvalidArgumentError(
            f"embedding_lookup: partition_strategy must be 'mod' or 'div', got "
            f"{partition_strategy!r}")
    shards = list(params) if isinstance(params, list | tuple) else [params]
    if not shards:
        raise InvalidArgumentError("embedding_lookup needs at least one table in params")
    with name_scope(name, "embedding_lookup"):
        if len(shards) == 1:
            return array_ops.gather(shards[0], ids)
        return _sharded_lookup(shards, ids, partition_strategy)


def _sharded_lookup(shards: list[Any], ids: Any, strategy: str) -> Tensor:
    from actorflow.ops import compare_ops, partition_ops

    n = len(shards)
    ids = convert_to_tensor(ids, preferred_dtype=dtypes.int64)
    if not ids.dtype.is_integer:
        raise InvalidArgumentError(f"embedding_lookup: ids must be integers, got "
                                   f"{ids.dtype.name}")
    flat = array_ops.reshape(ids, [-1])
    if strategy == "mod":
        part = math_ops.floormod(flat, n)
        new_ids = math_ops.floordiv(flat, n)
    else:
        rows = [None if getattr(s, "shape", None) is None else _static_rows(s) for s in shards]
        if any(r is None for r in rows):
            raise InvalidArgumentError(
                "embedding_lookup(partition_strategy='div') needs every shard's number of rows "
                "at build time; give the shards static shapes or use 'mod'")
        total = sum(rows)
        per, extras = divmod(total, n)
        if per == 0:
            raise InvalidArgumentError(
                f"embedding_lookup: {total} rows cannot be split over {n} shards with 'div'")
        part = math_ops.maximum(math_ops.floordiv(flat, per + 1),
                                math_ops.floordiv(flat - extras, per))
        in_long = compare_ops.less(part, extras)
        new_ids = compare_ops.where(in_long, math_ops.floormod(flat, per + 1),
                                 math_ops.floormod(flat - extras, per))
    part = compare_ops.cast(part, dtypes.int32)
    ids_by_shard = partition_ops.dynamic_partition(new_ids, part, n)
    where = partition_ops.dynamic_partition(
        partition_ops.range(array_ops.size(flat)), part, n)
    rows = [array_ops.gather(s, i) for s, i in zip(shards, ids_by_shard, strict=True)]
    out = partition_ops.dynamic_stitch(where, rows)
    inner = array_ops.shape(rows[0])[1:]
    return array_ops.reshape(out, array_ops.concat([array_ops.shape(ids), inner], 0))


def _static_rows(shard: Any) -> int | None:
    shape = shard.shape
    dims = getattr(shape, "dims", shape)
    if dims is None or not len(dims):
        return None
    d = dims[0]
    d = getattr(d, "value", d)
    return None if d is None else int(d)


def moments(x: Any, axes: Any, shift: Any = None, name: str | None = None,
            keep_dims: bool | None = None, keepdims: bool | None = None
            ) -> tuple[Tensor, Tensor]:
    """(mean, variance) of `x` over `axes`. As in TF, the variance is taken around a
    stop-gradient copy of the mean (its derivative w.r.t. the mean is zero anyway)."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "moments"):
        x = convert_to_tensor(x)
        _float(x, "moments")
        mean = math_ops.reduce_mean(x, axes, keepdims=True)
        var = math_ops.reduce_mean(math_ops.squared_difference(x, core_ops.stop_gradient(mean)),
                                   axes, keepdims=True)
        if not keep:
            mean, var = array_ops.squeeze(mean, axes), array_ops.squeeze(var, axes)
        return mean, var
