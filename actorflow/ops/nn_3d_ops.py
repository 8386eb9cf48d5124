"""3-D convolution and pooling (NDHWC), and the moment helpers of TF1's tf.nn
(`sufficient_statistics`, `normalize_moments`, `weighted_moments`).

The 3-D ops are composed from the 2-D ones, so their gradients are those of the parts: the
depth axis is unrolled over the filter's (or window's) depth taps. For tap `kd`, the depth
slices the tap sees for every output depth are taken with one strided slice, folded into the
batch, and run through conv2d / max_pool / avg_pool (which handle height and width, SAME or
VALID); the taps are then summed (conv), maxed (max pool) or summed and divided by the number
of real depth positions in each window (avg pool, SAME windows over the edge count only their
real elements, as TF). Depth padding follows TF's SAME rule (the extra one after).

    y = af.nn.conv3d(x, w, [1, 1, 2, 2, 1], "SAME")       # x [N, D, H, W, C], w [kd, kh, kw, C, O]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, math_ops, reduction_ops
from devices.errors import InvalidArgumentError

__all__ = ["conv3d", "max_pool3d", "avg_pool3d", "sufficient_statistics",
           "normalize_moments", "weighted_moments"]


def _five(v: Any, what: str, arg: str) -> list[int]:
    s = [int(i) for i in (v if isinstance(v, (list, tuple)) else [v] * 5)]
    if len(s) != 5 or s[0] != 1 or s[4] != 1:
        raise InvalidArgumentError(f"{what}: {arg} must be 5 ints [1, d, h, w, 1], got {v}")
    return s


def _depth_plan(d: int, k: int, s: int, dil: int, padding: str, what: str
                ) -> tuple[int, int, int]:
    """(output depth, padding before, padding after) along depth."""
    ek = (k - 1) * dil + 1
    if padding == "VALID":
        if d < ek:
            raise InvalidArgumentError(f"{what}: the input depth {d} is smaller than the "
                                       f"window's {ek}; use padding='SAME' or a smaller window")
        return (d - ek) // s + 1, 0, 0
    if padding == "SAME":
        out = -(-d // s)
        total = max((out - 1) * s + ek - d, 0)
        return out, total // 2, total - total // 2
    raise InvalidArgumentError(f"{what}: padding must be 'SAME' or 'VALID', got {padding!r}")


def _taps(x: Tensor, k: int, s: int, dil: int, padding: str, what: str, pad_value: float
          ) -> tuple[list[Tensor], int, int, list[int]]:
    """For each depth tap: the [N * out_depth, H, W, C] slices it sees; the output depth;
    how many real (unpadded) taps each output depth has."""
    n, d, h, w, c = (x._shape[i] for i in range(5))
    if d is None or h is None or w is None or c is None:
        raise InvalidArgumentError(f"{what} needs the input's depth, height, width and "
                                   f"channels known when the graph is built, got {x._shape}")
    out, before, after = _depth_plan(d, k, s, dil, padding, what)
    if before or after:
        x = array_ops.pad(x, [[0, 0], [before, after], [0, 0], [0, 0], [0, 0]],
                          constant_values=pad_value)
    taps = []
    for kd in range(k):
        start = kd * dil
        sl = x[:, start:start + (out - 1) * s + 1:s]
        taps.append(array_ops.reshape(sl, [-1, h, w, c]))
    pos = np.arange(out)[:, None] * s + np.arange(k)[None, :] * dil - before
    real = ((pos >= 0) & (pos < d)).sum(1).tolist()
    return taps, out, before, real


def _unfold(y: Tensor, out: int) -> Tensor:
    return array_ops.reshape(y, [-1, out, y._shape[1], y._shape[2], y._shape[3]])


def conv3d(input: Any, filter: Any = None, strides: Any = None,  # noqa: A002
           padding: str | None = None, data_format: str = "NDHWC", dilations: Any = None,
           name: str | None = None, filters: Any = None) -> Tensor:
    """TF's Conv3D: cross-correlation of [N, D, H, W, C] with [kd, kh, kw, C, O]."""
    from actorflow.ops.nn_conv_ops import conv2d
    if data_format != "NDHWC":
        raise InvalidArgumentError("conv3d supports data_format='NDHWC' on the CPU, as TF")
    with name_scope(name, "Conv3D"):
        x = convert_to_tensor(input)
        f = convert_to_tensor(filter if filter is not None else filters)
        if x._shape is None or len(x._shape) != 5 or f._shape is None or len(f._shape) != 5:
            raise InvalidArgumentError(f"conv3d needs a 5-D input and a 5-D filter, got "
                                       f"{x._shape} and {f._shape}")
        if x._shape[4] is not None and f._shape[3] is not None and x._shape[4] != f._shape[3]:
            raise InvalidArgumentError(f"conv3d: the input has {x._shape[4]} channels but the "
                                       f"filter expects {f._shape[3]}")
        st = _five(strides, "conv3d", "strides")
        dl = _five(dilations or [1, 1, 1, 1, 1], "conv3d", "dilations")
        k = int(f._shape[0])
        taps, out, _, _ = _taps(x, k, st[1], dl[1], padding, "conv3d", 0.0)
        acc = None
        for kd, t in enumerate(taps):
            y = conv2d(t, f[kd], [1, st[2], st[3], 1], padding,
                       dilations=[1, dl[2], dl[3], 1])
            acc = y if acc is None else math_ops.add(acc, y)
        return _unfold(acc, out)


def _pool3d(kind: str, input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
            data_format: str, name: str | None) -> Tensor:
    from actorflow.ops.nn_conv_ops import avg_pool, max_pool
    what = f"{kind}_pool3d"
    if data_format != "NDHWC":
        raise InvalidArgumentError(f"{what} supports data_format='NDHWC' on the CPU, as TF")
    with name_scope(name, "MaxPool3D" if kind == "max" else "AvgPool3D"):
        x = convert_to_tensor(input)
        if x._shape is None or len(x._shape) != 5:
            raise InvalidArgumentError(f"{what} needs a 5-D input, got {x._shape}")
        ks, st = _five(ksize, what, "ksize"), _five(strides, what, "strides")
        low = float(np.finfo(x.dtype.np).min) if kind == "max" else 0.0
        taps, out, _, real = _taps(x, ks[1], st[1], 1, padding, what, low)
        pool = max_pool if kind == "max" else avg_pool
        acc = None
        for t in taps:
            y = pool(t, [1, ks[2], ks[3], 1], [1, st[2], st[3], 1], padding)
            acc = y if acc is None else (math_ops.maximum(acc, y) if kind == "max"
                                         else math_ops.add(acc, y))
        y = _unfold(acc, out)
        if kind == "avg":
            div = np.asarray(real, dtype=x.dtype.np).reshape(1, out, 1, 1, 1)
            y = math_ops.truediv(y, convert_to_tensor(div))
        return y


def max_pool3d(input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
               data_format: str = "NDHWC", name: str | None = None) -> Tensor:
    """The maximum of each [kd, kh, kw] window (SAME padding never wins)."""
    return _pool3d("max", input, ksize, strides, padding, data_format, name)


def avg_pool3d(input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
               data_format: str = "NDHWC", name: str | None = None) -> Tensor:
    """The mean of each window's real elements."""
    return _pool3d("avg", input, ksize, strides, padding, data_format, name)


# ---- moments ------------------------------------------------------------------------------
def sufficient_statistics(x: Any, axes: Any, shift: Any = None, keep_dims: bool = False,
                          name: str | None = None, keepdims: bool | None = None
                          ) -> tuple[Any, ...]:
    """(count, sum of (x - shift), sum of squares of (x - shift), shift) over `axes`."""
    keep = keep_dims if keepdims is None else keepdims
    with name_scope(name, "sufficient_statistics"):
        t = convert_to_tensor(x)
        ax = [int(a) for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
        if t._shape is not None and all(t._shape[a] is not None for a in ax):
            count = convert_to_tensor(np.asarray(np.prod([t._shape[a] for a in ax]),
                                                 dtype=t.dtype.np))
        else:
            from actorflow.ops.compare_ops import cast
            shp = array_ops.shape(t)
            from actorflow.ops.join_ops import stack
            count = cast(reduction_ops.reduce_prod(stack([shp[a] for a in ax])),
                         t.dtype)
        m = t if shift is None else math_ops.subtract(t, shift)
        m_ss = reduction_ops.reduce_sum(m, ax, keepdims=keep)
        v_ss = reduction_ops.reduce_sum(math_ops.square(m), ax, keepdims=keep)
        return count, m_ss, v_ss, (None if shift is None else convert_to_tensor(shift))


def normalize_moments(counts: Any, mean_ss: Any, variance_ss: Any, shift: Any,
                      name: str | None = None) -> tuple[Tensor, Tensor]:
    """(mean, variance) from sufficient statistics."""
    with name_scope(name, "normalize"):
        divisor = math_ops.reciprocal(convert_to_tensor(counts))
        shifted = math_ops.multiply(mean_ss, divisor)
        mean = shifted if shift is None else math_ops.add(shifted, shift)
        var = math_ops.subtract(math_ops.multiply(variance_ss, divisor), math_ops.square(shifted))
        return mean, var


def weighted_moments(x: Any, axes: Any, frequency_weights: Any, name: str | None = None,
                     keep_dims: bool = False, keepdims: bool | None = None
                     ) -> tuple[Tensor, Tensor]:
    """The frequency-weighted mean and variance of `x` over `axes`."""
    keep = keep_dims if keepdims is None else keepdims
    with name_scope(name, "weighted_moments"):
        t = convert_to_tensor(x)
        w = convert_to_tensor(frequency_weights, dtype=t.dtype)
        ax = [int(a) for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
        wsum = reduction_ops.reduce_sum(math_ops.multiply(w, t), ax, keepdims=True)
        total = reduction_ops.reduce_sum(math_ops.add(w, array_ops.zeros_like(t)), ax,
                                         keepdims=True)
        div = math_ops.reciprocal(total)
        mean = math_ops.multiply(wsum, div)
        dist = reduction_ops.reduce_sum(math_ops.multiply(w, math_ops.squared_difference(
            t, mean)), ax, keepdims=True)
        var = math_ops.multiply(dist, div)
        if not keep:
            mean, var = array_ops.squeeze(mean, ax), array_ops.squeeze(var, ax)
        return mean, var
