"""Grids, contractions, diagonals and small nn helpers built from existing ops: linspace,
meshgrid, tensordot, diag/diag_part, local_response_normalization (lrn), conv1d, and
zero_fraction. Gradients come through the pieces.

    af.linspace(0.0, 1.0, 5)                     # [0, .25, .5, .75, 1]
    af.tensordot(a, b, axes=[[1], [0]])          # a matmul as a contraction
"""

from __future__ import annotations

import string
from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, index_ops, join_ops, math_ops, reduction_ops
from actorflow.ops.linalg_ops import einsum, matrix_diag, matrix_diag_part
from actorflow.ops.nn_conv_ops import conv2d
from actorflow.ops.partition_ops import range as range_
from actorflow.ops.scan_sort_ops import cumsum
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["linspace", "lin_space", "meshgrid", "tensordot", "diag", "diag_part",
           "local_response_normalization", "lrn", "conv1d", "zero_fraction",
           "depthwise_conv2d", "separable_conv2d"]


def linspace(start: Any, stop: Any, num: Any, name: str | None = None, axis: int = 0) -> Tensor:
    """`num` evenly spaced values from start to stop, both included."""
    with name_scope(name, "LinSpace"):
        a = convert_to_tensor(start) if isinstance(start, Tensor) else \
            convert_to_tensor(float(start), dtype=dtypes.float32)
        b = compare_ops.cast(stop, a.dtype)
        n = compare_ops.cast(num, dtypes.int32)
        step = math_ops.truediv(math_ops.subtract(b, a),
                                compare_ops.cast(math_ops.maximum(math_ops.subtract(n, 1), 1),
                                                 a.dtype))
        i = compare_ops.cast(range_(0, n, 1), a.dtype)
        out = math_ops.add(a, math_ops.multiply(i, step))
        # the last value is exactly `stop` (num > 1), as TF's
        last = compare_ops.equal(range_(0, n, 1), math_ops.subtract(n, 1))
        ok = compare_ops.logical_and(last, compare_ops.greater(n, 1))
        return compare_ops.where(ok, math_ops.add(math_ops.multiply(out, 0.0), b), out)


lin_space = linspace


def meshgrid(*args: Any, indexing: str = "xy", name: str = "meshgrid") -> list[Tensor]:
    """N-d coordinate arrays from 1-D vectors ('ij'; 'xy' swaps the first two axes of each
    result, as NumPy's meshgrid)."""
    if indexing not in ("xy", "ij"):
        raise InvalidArgumentError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    with name_scope(name):
        xs = [array_ops.reshape(convert_to_tensor(a), [-1]) for a in args]
        n = len(xs)
        outs = []
        for i, x in enumerate(xs):
            shape = [1] * n
            shape[i] = -1
            outs.append(array_ops.reshape(x, shape))
        ones = None
        for o in outs:
            z = math_ops.multiply(o, compare_ops.cast(0, o.dtype))
            ones = z if ones is None else math_ops.add(
                compare_ops.cast(ones, o.dtype) if ones.dtype is not o.dtype else ones, z)
        res = [math_ops.add(o, compare_ops.cast(ones, o.dtype)) for o in outs]
        if indexing == "xy" and n >= 2:
            perm = [1, 0, *range(2, n)]
            res = [array_ops.transpose(r, perm) for r in res]
        return res


def tensordot(a: Any, b: Any, axes: Any, name: str | None = None) -> Tensor:
    """Sum over `axes` (an int: the last N of a with the first N of b; or two lists)."""
    with name_scope(name, "Tensordot"):
        a, b = convert_to_tensor(a), convert_to_tensor(b)
        ra, rb = a.shape.rank, b.shape.rank
        if ra is None or rb is None:
            raise InvalidArgumentError("tensordot needs operands of known rank")
        if isinstance(axes, int):
            ax_a, ax_b = list(range(ra - axes, ra)), list(range(axes))
        else:
            ax_a, ax_b = (list(x) if not isinstance(x, int) else [x] for x in axes)
        ax_a = [x % ra for x in ax_a]
        ax_b = [x % rb for x in ax_b]
        letters = iter(string.ascii_letters)
        la = [next(letters) for _ in range(ra)]
        lb = [next(letters) for _ in range(rb)]
        for i, j in zip(ax_a, ax_b, strict=True):
            lb[j] = la[i]
        out = [c for i, c in enumerate(la) if i not in ax_a] + \
            [c for j, c in enumerate(lb) if j not in ax_b]
        return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", a, b)


def diag(diagonal: Any, name: str | None = None) -> Tensor:
    """A square matrix with `diagonal` (1-D) on its diagonal."""
    return matrix_diag(diagonal, name=name or "Diag")


def diag_part(input: Any, name: str | None = None) -> Tensor:  # noqa: A002
    return matrix_diag_part(input, name=name or "DiagPart")


def local_response_normalization(input: Any, depth_radius: int = 5, bias: float = 1.0,  # noqa: A002
                                 alpha: float = 1.0, beta: float = 0.5,
                                 name: str | None = None) -> Tensor:
    """x / (bias + alpha * sum of x^2 over the depth window [d - r, d + r]) ** beta (NHWC)."""
    with name_scope(name, "LRN"):
        x = convert_to_tensor(input)
        if x.shape.rank is not None and x.shape.rank != 4:
            raise InvalidArgumentError(f"lrn needs a 4-D NHWC input, got shape {x.shape}")
        r = int(depth_radius)
        sq = math_ops.square(x)
        padded = array_ops.pad(sq, [[0, 0], [0, 0], [0, 0], [r + 1, r]])
        cs = cumsum(padded, axis=3)
        c: Any = int(x.shape[3]) if x.shape.rank == 4 and x.shape[3] is not None else \
            index_ops.gather(array_ops.shape(x), 3)
        # window sum at depth d = S[d + r] - S[d - r - 1] = cs[d + 2r + 1] - cs[d]
        hi = index_ops.strided_slice(cs, [0, 0, 0, 2 * r + 1], [0, 0, 0, 0], [1, 1, 1, 1],
                                     begin_mask=7, end_mask=15)
        lo = _take_last(cs, c)
        window = math_ops.subtract(hi, lo)
        den = math_ops.pow(math_ops.add(bias, math_ops.multiply(alpha, window)), beta)
        return math_ops.truediv(x, den)


def _take_last(t: Tensor, n: Any) -> Tensor:
    if isinstance(n, int):
        return t[:, :, :, :n]
    return index_ops.slice_(t, [0, 0, 0, 0], join_ops.stack([-1, -1, -1, n]))


lrn = local_response_normalization


def conv1d(value: Any = None, filters: Any = None, stride: Any = 1, padding: str = "SAME",
           use_cudnn_on_gpu: bool | None = None, data_format: str | None = None,
           name: str | None = None, input: Any = None, dilations: Any = None) -> Tensor:  # noqa: A002
    """1-D convolution of [batch, width, in] with [k, in, out], as a conv2d of height 1."""
    with name_scope(name, "conv1d"):
        x = convert_to_tensor(value if value is not None else input)
        w = convert_to_tensor(filters)
        s = int(stride if isinstance(stride, int) else list(stride)[-1 if len(stride) else 0])
        y = conv2d(array_ops.expand_dims(x, 1), array_ops.expand_dims(w, 0), [1, 1, s, 1],
                   padding)
        return array_ops.squeeze(y, [1])


def zero_fraction(value: Any, name: str | None = None) -> Tensor:
    """The fraction of elements equal to zero (a float32 scalar)."""
    with name_scope(name, "zero_fraction"):
        v = convert_to_tensor(value)
        z = compare_ops.cast(compare_ops.equal(v, compare_ops.cast(0, v.dtype)), dtypes.float32)
        return reduction_ops.reduce_mean(z)


def depthwise_conv2d(input: Any, filter: Any, strides: Any, padding: str,  # noqa: A002
                     rate: Any = None, name: str | None = None,
                     data_format: str | None = None, dilations: Any = None) -> Tensor:
    """Each input channel c convolved with its own filters filter[:, :, c, :] (NHWC); output
    channel c * multiplier + m, as TF. Built as one conv2d per input channel."""
    with name_scope(name, "depthwise"):
        x = convert_to_tensor(input)
        w = convert_to_tensor(filter)
        c = x.shape[-1] if x.shape.rank == 4 else None
        if c is None or w.shape.rank != 4:
            raise InvalidArgumentError("depthwise_conv2d needs an NHWC input with a known "
                                       "channel count and a [h, w, in, multiplier] filter")
        dil = dilations if dilations is not None else (
            [1, int(rate[0]), int(rate[1]), 1] if rate is not None else None)
        parts = [conv2d(x[:, :, :, i:i + 1], w[:, :, i:i + 1, :], strides, padding,
                        dilations=dil) for i in range(int(c))]
        return parts[0] if len(parts) == 1 else join_ops.concat(parts, 3)


def separable_conv2d(input: Any, depthwise_filter: Any, pointwise_filter: Any,  # noqa: A002
                     strides: Any, padding: str, rate: Any = None, name: str | None = None,
                     data_format: str | None = None, dilations: Any = None) -> Tensor:
    """depthwise_conv2d, then a 1x1 conv2d with pointwise_filter [1, 1, in * mult, out]."""
    with name_scope(name, "separable_conv2d"):
        d = depthwise_conv2d(input, depthwise_filter, strides, padding, rate,
                             dilations=dilations)
        return conv2d(d, pointwise_filter, [1, 1, 1, 1], "VALID")


def atrous_conv2d(value: Any, filters: Any, rate: int, padding: str,
                  name: str | None = None) -> Tensor:
    """Dilated ("atrous") 2-D convolution with unit stride: conv2d with dilations
    [1, rate, rate, 1]."""
    if int(rate) < 1:
        raise InvalidArgumentError(f"atrous_conv2d: rate must be >= 1, got {rate}")
    with name_scope(name, "convolution"):
        return conv2d(value, filters, [1, 1, 1, 1], padding, dilations=[1, rate, rate, 1])


def fused_batch_norm(x: Any, scale: Any, offset: Any, mean: Any = None, variance: Any = None,
                     epsilon: float = 0.001, data_format: str = "NHWC", is_training: bool = True,
                     name: str | None = None, exponential_avg_factor: float = 1.0
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Batch normalization of a 4-D NHWC tensor over its batch and spatial axes: (y, the
    batch mean, the batch variance with Bessel's correction) when training; with the given
    `mean` and `variance` (returned as they are) otherwise. As TF's FusedBatchNormGrad, the
    gradient comes from y alone (what flows into the returned statistics is ignored), and in
    inference mode `mean` and `variance` get none."""
    from actorflow.ops.composite_ops import batch_normalization
    from actorflow.ops.core_ops import stop_gradient
    from actorflow.ops.nn_ops import moments
    if data_format != "NHWC":
        raise InvalidArgumentError("fused_batch_norm supports data_format='NHWC'")
    with name_scope(name, "FusedBatchNorm"):
        x = convert_to_tensor(x)
        if is_training:
            m, v = moments(x, [0, 1, 2])
            n = compare_ops.cast(math_ops.divide(array_ops.size(x),
                                                 array_ops.shape(x)[3]), x.dtype)
            unbiased = math_ops.multiply(v, math_ops.divide(n, math_ops.maximum(
                math_ops.subtract(n, 1.0), 1.0)))
            return (batch_normalization(x, m, v, offset, scale, epsilon), stop_gradient(m),
                    stop_gradient(unbiased))
        if mean is None or variance is None:
            raise InvalidArgumentError("fused_batch_norm with is_training=False needs mean and "
                                       "variance")
        mean = stop_gradient(convert_to_tensor(mean))
        variance = stop_gradient(convert_to_tensor(variance))
        return batch_normalization(x, mean, variance, offset, scale, epsilon), mean, variance
