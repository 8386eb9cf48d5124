"""TF1 ops written as compositions of existing ops: activations (softplus, elu, selu, relu6,
leaky_relu, softsign, log_sigmoid), conversions (to_float ...), arg_max/arg_min,
count_nonzero, truncatediv, norms and norm clipping, matrix_transpose, sequence_mask,
boolean_mask, segment_sum/mean, in_top_k, xw_plus_b, batch_normalization, log_poisson_loss,
weighted_cross_entropy_with_logits, l2_normalize.

Each is built from ops that already have kernels and gradients, so its gradient is the chain
rule through them (sparse where the pieces are: boolean_mask gathers rows, giving an
IndexedSlices gradient as in TF).

    h = af.nn.leaky_relu(af.nn.xw_plus_b(x, w, b), alpha=0.2)
    grads, norm = af.clip_by_global_norm(grads, 5.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import (
    array_ops,
    compare_ops,
    index_ops,
    join_ops,
    math_ops,
    nn_ops,
    reduction_ops,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = [
    "softplus", "softsign", "elu", "selu", "relu6", "leaky_relu", "log_sigmoid",
    "to_float", "to_double", "to_int32", "to_int64", "to_bfloat16", "arg_max", "arg_min",
    "count_nonzero", "truncatediv", "truncatemod", "global_norm", "clip_by_norm",
    "clip_by_global_norm", "clip_by_average_norm", "norm", "matrix_transpose",
    "sequence_mask", "boolean_mask", "segment_sum", "segment_mean", "in_top_k", "xw_plus_b",
    "batch_normalization", "log_poisson_loss", "weighted_cross_entropy_with_logits",
    "l2_normalize", "mod",
]


def _t(x: Any) -> Tensor:
    return convert_to_tensor(x)


# ---- activations ------------------------------------------------------------------------
def softplus(features: Any, name: str | None = None) -> Tensor:
    """log(1 + exp(x)), computed stably as max(x, 0) + log1p(exp(-|x|))."""
    with name_scope(name, "Softplus"):
        x = _t(features)
        return math_ops.add(math_ops.maximum(x, 0.0),
                            math_ops.log1p(math_ops.exp(math_ops.negative(math_ops.abs(x)))))


def softsign(features: Any, name: str | None = None) -> Tensor:
    """x / (1 + |x|)."""
    with name_scope(name, "Softsign"):
        x = _t(features)
        return math_ops.truediv(x, math_ops.add(math_ops.abs(x), 1.0))


def elu(features: Any, name: str | None = None) -> Tensor:
    """x where x > 0, else exp(x) - 1."""
    with name_scope(name, "Elu"):
        x = _t(features)
        neg = math_ops.expm1(math_ops.minimum(x, 0.0))
        return compare_ops.where(compare_ops.greater(x, 0.0), x, neg)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(features: Any, name: str | None = None) -> Tensor:
    """scale * (x where x > 0, else alpha * (exp(x) - 1))."""
    with name_scope(name, "Selu"):
        x = _t(features)
        neg = math_ops.multiply(math_ops.expm1(math_ops.minimum(x, 0.0)), _SELU_ALPHA)
        return math_ops.multiply(compare_ops.where(compare_ops.greater(x, 0.0), x, neg),
                                 _SELU_SCALE)


def relu6(features: Any, name: str | None = None) -> Tensor:
    """min(max(x, 0), 6); as TF's Relu6Grad, the gradient passes only where 0 < x < 6."""
    from actorflow.ops.core_ops import stop_gradient
    with name_scope(name, "Relu6"):
        x = _t(features)
        inside = compare_ops.logical_and(compare_ops.greater(x, 0.0), compare_ops.less(x, 6.0))
        return compare_ops.where(inside, x, stop_gradient(
            math_ops.minimum(nn_ops.relu(x), 6.0)))


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """x where x > 0, else alpha * x (TF's default alpha is 0.2)."""
    with name_scope(name, "LeakyRelu"):
        x = _t(features)
        return compare_ops.where(compare_ops.greater(x, 0.0), x, math_ops.multiply(x, alpha))


def log_sigmoid(x: Any, name: str | None = None) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x)."""
    with name_scope(name, "LogSigmoid"):
        return math_ops.negative(softplus(math_ops.negative(_t(x))))


# ---- conversions and small math --------------------------------------------------------
def to_float(x: Any, name: str = "ToFloat") -> Tensor:
    return compare_ops.cast(x, dtypes.float32, name=name)


def to_double(x: Any, name: str = "ToDouble") -> Tensor:
    return compare_ops.cast(x, dtypes.float64, name=name)


def to_int32(x: Any, name: str = "ToInt32") -> Tensor:
    return compare_ops.cast(x, dtypes.int32, name=name)


def to_int64(x: Any, name: str = "ToInt64") -> Tensor:
    return compare_ops.cast(x, dtypes.int64, name=name)


def to_bfloat16(x: Any, name: str = "ToBFloat16") -> Tensor:
    return compare_ops.cast(x, dtypes.bfloat16, name=name)


def arg_max(input: Any, dimension: Any, name: str | None = None,  # noqa: A002
            output_type: Any = dtypes.int64) -> Tensor:
    """TF1's deprecated name of argmax (the axis is required)."""
    return reduction_ops.argmax(input, dimension, name=name, output_type=output_type)


def arg_min(input: Any, dimension: Any, name: str | None = None,  # noqa: A002
            output_type: Any = dtypes.int64) -> Tensor:
    """TF1's deprecated name of argmin (the axis is required)."""
    return reduction_ops.argmin(input, dimension, name=name, output_type=output_type)


def count_nonzero(input_tensor: Any = None, axis: Any = None, keepdims: bool | None = None,
                  dtype: Any = dtypes.int64, name: str | None = None,
                  reduction_indices: Any = None, keep_dims: bool | None = None,
                  input: Any = None) -> Tensor:  # noqa: A002
    """How many elements are not zero (not False), over `axis`."""
    x = _t(input_tensor if input_tensor is not None else input)
    axis = axis if axis is not None else reduction_indices
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "count_nonzero"):
        zero = False if x.dtype.is_bool else 0
        nz = compare_ops.cast(compare_ops.not_equal(x, zero), dtypes.int64)
        return compare_ops.cast(reduction_ops.reduce_sum(nz, axis, keepdims=keep), dtype)


def truncatediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """Division rounding toward zero (C's integer division): -7 // 2 is -3."""
    with name_scope(name, "TruncateDiv"):
        x, y = compare_ops.convert_operands([x, y], "truncatediv")
        if not x.dtype.is_integer:
            q = math_ops.truediv(x, y)
            return math_ops.multiply(math_ops.sign(q), math_ops.floor(math_ops.abs(q)))
        q = math_ops.floordiv(math_ops.abs(x), math_ops.abs(y))
        return math_ops.multiply(q, math_ops.multiply(math_ops.sign(x), math_ops.sign(y)))


def truncatemod(x: Any, y: Any, name: str | None = None) -> Tensor:
    """The remainder of `truncatediv` (the sign of x, as C's %)."""
    with name_scope(name, "TruncateMod"):
        x, y = compare_ops.convert_operands([x, y], "truncatemod")
        return math_ops.subtract(x, math_ops.multiply(truncatediv(x, y), y))


def mod(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1's ``tf.mod``: floormod."""
    return math_ops.floormod(x, y, name=name)


# ---- norms ------------------------------------------------------------------------------
def global_norm(t_list: Any, name: str | None = None) -> Tensor:
    """sqrt(sum of l2_loss(t) * 2) over the tensors of `t_list` (None entries skipped)."""
    ts = [_dense(t) for t in t_list if t is not None]
    if not ts:
        raise InvalidArgumentError("global_norm needs at least one tensor")
    with name_scope(name, "global_norm"):
        sq = [reduction_ops.reduce_sum(math_ops.square(t)) for t in ts]
        return math_ops.sqrt(math_ops.add_n(sq) if len(sq) > 1 else sq[0])


def _dense(t: Any) -> Tensor:
    from actorflow.indexed_slices import IndexedSlices
    if isinstance(t, IndexedSlices):
        return t.values  # the norm of the slices (as TF, which uses the values)
    return _t(t)


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Any:
    """t * clip_norm / max(l2norm(t over axes), clip_norm): unchanged when within the norm."""
    from actorflow.indexed_slices import IndexedSlices
    with name_scope(name, "clip_by_norm"):
        if isinstance(t, IndexedSlices):
            return IndexedSlices(clip_by_norm(t.values, clip_norm, axes), t.indices,
                                 t.dense_shape)
        t = _t(t)
        c = convert_to_tensor(clip_norm, dtype=t.dtype) if not isinstance(clip_norm, Tensor) \
            else clip_norm
        l2 = math_ops.sqrt(reduction_ops.reduce_sum(math_ops.square(t), axes, keepdims=True))
        return math_ops.truediv(math_ops.multiply(t, c), math_ops.maximum(l2, c))


def clip_by_average_norm(t: Any, clip_norm: Any, name: str | None = None) -> Tensor:
    with name_scope(name, "clip_by_average_norm"):
        t = _t(t)
        n = compare_ops.cast(array_ops.size(t), t.dtype)
        return clip_by_norm(t, math_ops.multiply(clip_norm, n), None)


def clip_by_global_norm(t_list: Any, clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list[Any], Tensor]:
    """Scale every tensor by clip_norm / max(global_norm, clip_norm); returns (list, norm)."""
    from actorflow.indexed_slices import IndexedSlices
    t_list = list(t_list)
    with name_scope(name, "clip_by_global_norm"):
        gn = use_norm if use_norm is not None else global_norm(t_list)
        c = compare_ops.cast(clip_norm, gn.dtype)
        scale = math_ops.truediv(c, math_ops.maximum(gn, c))
        out: list[Any] = []
        for t in t_list:
            if t is None:
                out.append(None)
            elif isinstance(t, IndexedSlices):
                out.append(IndexedSlices(math_ops.multiply(t.values,
                                                           compare_ops.cast(scale, t.dtype)),
                                         t.indices, t.dense_shape))
            else:
                t = _t(t)
                out.append(math_ops.multiply(t, compare_ops.cast(scale, t.dtype)))
        return out, gn


def norm(tensor: Any, ord: Any = "euclidean", axis: Any = None,  # noqa: A002
         keepdims: bool | None = None, name: str | None = None,
         keep_dims: bool | None = None) -> Tensor:
    """The vector norm over `axis` (all elements when None): ord 'euclidean'/2, 1, np.inf;
    with a pair of axes, the matrix norms 'fro', 1 and np.inf."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "norm"):
        x = _t(tensor)
        pair = axis is not None and np.ndim(axis) == 1 and len(axis) == 2
        if ord in ("euclidean", "fro", 2, 2.0) and (ord != 2 or not pair):
            return math_ops.sqrt(reduction_ops.reduce_sum(math_ops.square(x), axis,
                                                          keepdims=keep))
        a = math_ops.abs(x)
        if pair and ord in (1, np.inf):
            r, c = int(axis[0]), int(axis[1])
            inner, outer = (r, c) if ord == 1 else (c, r)
            s = reduction_ops.reduce_sum(a, inner, keepdims=True)
            out = reduction_ops.reduce_max(s, outer, keepdims=True)
            return out if keep else array_ops.squeeze(out, sorted([r, c]))
        if ord == 1:
            return reduction_ops.reduce_sum(a, axis, keepdims=keep)
        if ord == np.inf:
            return reduction_ops.reduce_max(a, axis, keepdims=keep)
        if isinstance(ord, int | float) and ord > 0:
            p = float(ord)
            s = reduction_ops.reduce_sum(math_ops.pow(a, p), axis, keepdims=keep)
            return math_ops.pow(s, 1.0 / p)
        raise InvalidArgumentError(f"norm: ord={ord!r} is not supported; use 'euclidean', "
                                   f"'fro', 1, 2, np.inf or a positive number")


def l2_normalize(x: Any, axis: Any = None, epsilon: float = 1e-12, name: str | None = None,
                 dim: Any = None) -> Tensor:
    """x / sqrt(max(sum(x**2, axis), epsilon))."""
    with name_scope(name, "l2_normalize"):
        x = _t(x)
        ax = axis if axis is not None else dim
        sq = reduction_ops.reduce_sum(math_ops.square(x), ax, keepdims=True)
        return math_ops.multiply(x, math_ops.rsqrt(math_ops.maximum(sq, epsilon)))


def matrix_transpose(a: Any, name: str = "matrix_transpose", conjugate: bool = False) -> Tensor:
    """Swap the last two axes."""
    a = _t(a)
    r = a.shape.rank
    if r is None:
        raise InvalidArgumentError("matrix_transpose needs a tensor of known rank")
    if r < 2:
        raise InvalidArgumentError(f"matrix_transpose needs rank >= 2, got rank {r}")
    return array_ops.transpose(a, list(range(r - 2)) + [r - 1, r - 2], name=name)


# ---- masks and segments -----------------------------------------------------------------
def sequence_mask(lengths: Any, maxlen: Any = None, dtype: Any = dtypes.bool_,
                  name: str | None = None) -> Tensor:
    """mask[..., j] = j < lengths[...]; maxlen defaults to max(lengths)."""
    with name_scope(name, "SequenceMask"):
        lengths = _t(lengths)
        if maxlen is None:
            maxlen = reduction_ops.reduce_max(lengths)
        maxlen = compare_ops.cast(maxlen, lengths.dtype)
        from actorflow.ops.partition_ops import range as range_
        row = range_(0, maxlen, 1)
        mask = compare_ops.less(row, array_ops.expand_dims(lengths, -1))
        return mask if dtypes.as_dtype(dtype).is_bool else compare_ops.cast(mask, dtype)


def boolean_mask(tensor: Any, mask: Any, name: str = "boolean_mask", axis: Any = None) -> Tensor:
    """The elements (rows) of `tensor` where `mask` is true: the mask's dims are flattened
    into one, as in TF. The gradient is sparse (a gather)."""
    with name_scope(name):
        x = _t(tensor)
        m = convert_to_tensor(mask, dtype=dtypes.bool_) if not isinstance(mask, Tensor) else mask
        k = m.shape.rank
        if k is None:
            raise InvalidArgumentError("boolean_mask needs a mask of known rank")
        ax = int(axis or 0)
        if k == 0:
            raise InvalidArgumentError("boolean_mask: the mask must not be a scalar")
        shp = array_ops.shape(x)
        lead = index_ops.strided_slice(shp, [0], [ax], [1]) if ax else None
        mid = reduction_ops.reduce_prod(index_ops.strided_slice(shp, [ax], [ax + k], [1]),
                                        keepdims=True)
        tail = index_ops.strided_slice(shp, [ax + k], [2 ** 31 - 1], [1])
        parts = ([lead] if lead is not None else []) + [mid, tail]
        flat = array_ops.reshape(x, join_ops.concat(parts, 0))
        idx = array_ops.squeeze(compare_ops.where(array_ops.reshape(m, [-1])), [1])
        return index_ops.gather(flat, idx, axis=ax)


def segment_sum(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """out[i] = sum of data[j] with segment_ids[j] == i (ids sorted, as TF requires)."""
    with name_scope(name, "SegmentSum"):
        ids = _t(segment_ids)
        n = math_ops.maximum(math_ops.add(reduction_ops.reduce_max(ids), 1), 0)
        return reduction_ops.unsorted_segment_sum(data, ids, n)


def segment_mean(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """out[i] = mean of data[j] with segment_ids[j] == i (empty segments give 0)."""
    with name_scope(name, "SegmentMean"):
        data = _t(data)
        ids = _t(segment_ids)
        n = math_ops.maximum(math_ops.add(reduction_ops.reduce_max(ids), 1), 0)
        s = reduction_ops.unsorted_segment_sum(data, ids, n)
        ones = array_ops.ones_like(ids, dtype=data.dtype)
        c = reduction_ops.unsorted_segment_sum(ones, ids, n)
        c = math_ops.maximum(c, 1.0)
        r = data.shape.rank
        if r is not None and r > 1:
            c = array_ops.reshape(c, [-1] + [1] * (r - 1))
        return math_ops.truediv(s, c)


# ---- nn helpers -------------------------------------------------------------------------
def in_top_k(predictions: Any, targets: Any, k: int, name: str | None = None) -> Tensor:
    """out[i] = targets[i] is among the k largest of predictions[i] (ties at the k-th value
    count as in; a non-finite prediction row gives False), as TF's in_top_k."""
    with name_scope(name, "in_top_k"):
        p = _t(predictions)
        t = _t(targets)
        depth = p.shape[-1] if p.shape.rank == 2 and p.shape[-1] is not None else \
            index_ops.gather(array_ops.shape(p), 1)
        hot = index_ops.one_hot(t, depth, dtype=p.dtype)
        target_val = reduction_ops.reduce_sum(math_ops.multiply(p, hot), 1, keepdims=True)
        above = reduction_ops.reduce_sum(
            compare_ops.cast(compare_ops.greater(p, target_val), dtypes.int32), 1)
        finite = reduction_ops.reduce_all(compare_ops.is_finite(p), 1)
        return compare_ops.logical_and(compare_ops.less(above, int(k)), finite)


def xw_plus_b(x: Any, weights: Any, biases: Any, name: str | None = None) -> Tensor:
    """matmul(x, weights) + biases."""
    with name_scope(name, "xw_plus_b"):
        return nn_ops.bias_add(math_ops.matmul(x, weights), biases)


def batch_normalization(x: Any, mean: Any, variance: Any, offset: Any, scale: Any,
                        variance_epsilon: float, name: str | None = None) -> Tensor:
    """scale * (x - mean) / sqrt(variance + epsilon) + offset (offset/scale may be None)."""
    with name_scope(name, "batchnorm"):
        x = _t(x)
        inv = math_ops.rsqrt(math_ops.add(variance, variance_epsilon))
        if scale is not None:
            inv = math_ops.multiply(inv, scale)
        y = math_ops.multiply(math_ops.subtract(x, mean), inv)
        return y if offset is None else math_ops.add(y, offset)


def log_poisson_loss(targets: Any, log_input: Any, compute_full_loss: bool = False,
                     name: str | None = None) -> Tensor:
    """exp(log_input) - targets * log_input (+ Stirling's term where targets > 1)."""
    with name_scope(name, "log_poisson_loss"):
        li = _t(log_input)
        z = convert_to_tensor(targets, dtype=li.dtype) if not isinstance(targets, Tensor) \
            else targets
        loss = math_ops.subtract(math_ops.exp(li), math_ops.multiply(z, li))
        if not compute_full_loss:
            return loss
        safe = math_ops.maximum(z, 1.0)
        stirling = math_ops.add(
            math_ops.subtract(math_ops.multiply(z, math_ops.log(safe)), z),
            math_ops.multiply(0.5, math_ops.log(math_ops.multiply(2 * np.pi, safe))))
        return math_ops.add(loss, compare_ops.where(compare_ops.greater(z, 1.0), stirling,
                                                    array_ops.zeros_like(z)))


def weighted_cross_entropy_with_logits(targets: Any = None, logits: Any = None,
                                       pos_weight: Any = 1.0, name: str | None = None,
                                       labels: Any = None) -> Tensor:
    """Sigmoid cross entropy with the positive term weighted by `pos_weight`:
    (1 - z) * x + (1 + (q - 1) * z) * (log1p(exp(-|x|)) + max(-x, 0))."""
    with name_scope(name, "logistic_loss"):
        x = _t(logits)
        zv = targets if targets is not None else labels
        z = convert_to_tensor(zv, dtype=x.dtype) if not isinstance(zv, Tensor) else zv
        q = convert_to_tensor(pos_weight, dtype=x.dtype) if not isinstance(pos_weight, Tensor) \
            else pos_weight
        lw = math_ops.add(1.0, math_ops.multiply(math_ops.subtract(q, 1.0), z))
        soft = math_ops.add(math_ops.log1p(math_ops.exp(math_ops.negative(math_ops.abs(x)))),
                            nn_ops.relu(math_ops.negative(x)))
        return math_ops.add(math_ops.multiply(math_ops.subtract(1.0, z), x),
                            math_ops.multiply(lw, soft))

