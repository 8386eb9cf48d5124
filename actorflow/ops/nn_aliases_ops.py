"""The rest of TF1's tf.nn spellings that are other ops under another name or a short
composition: the 1-D and ``_v2``/``2d`` pooling names, `convolution` and `pool` (dispatch on
rank), `erosion2d` (-dilation2d(-x, the filter reversed)), `silu`, `relu_layer`,
`depthwise_conv2d_native`, `batch_norm_with_global_normalization`, `compute_average_loss`,
`scale_regularization_loss` (one replica), and CTC's `collapse_repeated`.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, math_ops, reduction_ops
from devices.errors import InvalidArgumentError

__all__ = ["max_pool2d", "avg_pool2d", "max_pool_v2", "avg_pool_v2", "max_pool1d",
           "avg_pool1d", "convolution", "pool", "erosion2d", "silu", "relu_layer",
           "depthwise_conv2d_native", "batch_norm_with_global_normalization",
           "compute_average_loss", "scale_regularization_loss"]


def _pool2(kind: str) -> Any:
    def fn(input: Any, ksize: Any, strides: Any, padding: Any,  # noqa: A002
           data_format: str = "NHWC", name: str | None = None) -> Tensor:
        from actorflow.ops.nn_conv_ops import avg_pool, max_pool
        return (max_pool if kind == "max" else avg_pool)(input, ksize, strides, padding,
                                                          data_format, name)
    fn.__name__ = f"{kind}_pool2d"
    return fn


max_pool2d, avg_pool2d = _pool2("max"), _pool2("avg")
max_pool_v2, avg_pool_v2 = max_pool2d, avg_pool2d


def _one(v: Any) -> int:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return int(v[1] if len(v) == 3 else v[0])


def _pool1(kind: str) -> Any:
    def fn(input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
           data_format: str = "NWC", name: str | None = None) -> Tensor:
        from actorflow.ops.nn_conv_ops import avg_pool, max_pool
        if data_format != "NWC":
            raise InvalidArgumentError(f"{kind}_pool1d supports data_format='NWC'")
        with name_scope(name, f"{kind}_pool1d"):
            x = array_ops.expand_dims(convert_to_tensor(input), 1)
            y = (max_pool if kind == "max" else avg_pool)(
                x, [1, 1, _one(ksize), 1], [1, 1, _one(strides), 1], padding)
            return array_ops.squeeze(y, [1])
    fn.__name__ = f"{kind}_pool1d"
    return fn


max_pool1d, avg_pool1d = _pool1("max"), _pool1("avg")


def convolution(input: Any, filter: Any, padding: str, strides: Any = None,  # noqa: A002
                dilation_rate: Any = None, name: str | None = None,
                data_format: str | None = None, filters: Any = None,
                dilations: Any = None) -> Tensor:
    """conv1d, conv2d or conv3d by the input's rank (strides and dilations per spatial axis)."""
    from actorflow.ops.grid_ops import conv1d
    from actorflow.ops.nn_3d_ops import conv3d
    from actorflow.ops.nn_conv_ops import conv2d
    x = convert_to_tensor(input)
    f = filter if filter is not None else filters
    n = None if x._shape is None else len(x._shape) - 2
    st = [int(s) for s in (strides or [1] * (n or 0))]
    dl = [int(d) for d in (dilation_rate or dilations or [1] * (n or 0))]
    if n == 1:
        if dl != [1]:
            raise InvalidArgumentError("convolution: 1-D dilation is not supported here")
        return conv1d(x, f, st[0], padding, name=name)
    if n == 2:
        return conv2d(x, f, [1, *st, 1], padding, dilations=[1, *dl, 1], name=name)
    if n == 3:
        return conv3d(x, f, [1, *st, 1], padding, dilations=[1, *dl, 1], name=name)
    raise InvalidArgumentError(f"convolution takes a 3-D, 4-D or 5-D input, got {x._shape}")


def pool(input: Any, window_shape: Any, pooling_type: str, padding: str,  # noqa: A002
         dilation_rate: Any = None, strides: Any = None, name: str | None = None,
         data_format: str | None = None, dilations: Any = None) -> Tensor:
    """MAX or AVG pooling over 1, 2 or 3 spatial axes (no dilation)."""
    from actorflow.ops.nn_3d_ops import avg_pool3d, max_pool3d
    from actorflow.ops.nn_conv_ops import avg_pool, max_pool
    if pooling_type not in ("MAX", "AVG"):
        raise InvalidArgumentError(f"pool: pooling_type must be 'MAX' or 'AVG', got "
                                   f"{pooling_type!r}")
    if any(int(d) != 1 for d in (dilation_rate or dilations or [])):
        raise InvalidArgumentError("pool: dilation_rate other than 1 is not supported")
    w = [int(v) for v in window_shape]
    st = [int(v) for v in (strides or [1] * len(w))]
    mx = pooling_type == "MAX"
    if len(w) == 1:
        return (max_pool1d if mx else avg_pool1d)(input, w, st, padding, name=name)
    if len(w) == 2:
        return (max_pool if mx else avg_pool)(input, [1, *w, 1], [1, *st, 1], padding,
                                              name=name)
    if len(w) == 3:
        return (max_pool3d if mx else avg_pool3d)(input, [1, *w, 1], [1, *st, 1], padding,
                                                  name=name)
    raise InvalidArgumentError(f"pool: window_shape must have 1 to 3 entries, got {w}")


def erosion2d(value: Any, kernel: Any, strides: Any, rates: Any, padding: str,
              name: str | None = None) -> Tensor:
    """Greyscale erosion: -dilation2d(-value, the kernel reversed in height and width)."""
    from actorflow.ops.ctc_ops import dilation2d
    from actorflow.ops.scan_sort_ops import reverse
    with name_scope(name, "erosion2d"):
        k = reverse(convert_to_tensor(kernel), [0, 1])
        return math_ops.negative(dilation2d(math_ops.negative(convert_to_tensor(value)), k,
                                            strides, rates, padding))


def silu(features: Any, beta: float = 1.0, name: str | None = None) -> Tensor:
    """x * sigmoid(beta * x)."""
    from actorflow.ops.math_ops import sigmoid
    with name_scope(name, "silu"):
        x = convert_to_tensor(features)
        return math_ops.multiply(x, sigmoid(math_ops.multiply(x, beta) if beta != 1.0 else x))


def relu_layer(x: Any, weights: Any, biases: Any, name: str | None = None) -> Tensor:
    """relu(x @ weights + biases)."""
    from actorflow.ops.composite_ops import xw_plus_b
    from actorflow.ops.nn_ops import relu
    with name_scope(name, "relu_layer"):
        return relu(xw_plus_b(x, weights, biases))


def depthwise_conv2d_native(input: Any, filter: Any, strides: Any,  # noqa: A002
                            padding: str, data_format: str = "NHWC", dilations: Any = None,
                            name: str | None = None) -> Tensor:
    from actorflow.ops.grid_ops import depthwise_conv2d
    if data_format != "NHWC":
        raise InvalidArgumentError("depthwise_conv2d_native supports data_format='NHWC'")
    return depthwise_conv2d(input, filter, strides, padding, dilations=dilations, name=name)


def batch_norm_with_global_normalization(t: Any = None, m: Any = None, v: Any = None,
                                         beta: Any = None, gamma: Any = None,
                                         variance_epsilon: float = 0.001,
                                         scale_after_normalization: bool = True,
                                         name: str | None = None, input: Any = None,  # noqa: A002
                                         mean: Any = None, variance: Any = None) -> Tensor:
    from actorflow.ops.composite_ops import batch_normalization
    with name_scope(name, "BatchNormWithGlobalNormalization"):
        return batch_normalization(t if t is not None else input, m if m is not None else mean,
                                   v if v is not None else variance, beta,
                                   gamma if scale_after_normalization else None,
                                   variance_epsilon)


def compute_average_loss(per_example_loss: Any, sample_weight: Any = None,
                         global_batch_size: Any = None) -> Tensor:
    """sum(loss * weight) / global_batch_size (by default the batch, one replica)."""
    from actorflow.ops.compare_ops import cast
    loss = convert_to_tensor(per_example_loss)
    if sample_weight is not None:
        loss = math_ops.multiply(loss, cast(sample_weight, loss.dtype))
    n = global_batch_size if global_batch_size is not None else array_ops.shape(loss)[0]
    return math_ops.truediv(reduction_ops.reduce_sum(loss), cast(n, loss.dtype))


def scale_regularization_loss(regularization_loss: Any) -> Tensor:
    """The summed regularization loss divided by the replicas (one here)."""
    return reduction_ops.reduce_sum(convert_to_tensor(regularization_loss))
