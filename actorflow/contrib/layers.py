"""``af.contrib.layers``: TF1's contrib layers as programs use them: flatten,
fully_connected, conv2d, max_pool2d, avg_pool2d, xavier_initializer, l1/l2 regularizers.

    net = af.contrib.layers.flatten(images)
    net = af.contrib.layers.fully_connected(net, 128)            # relu by default
    logits = af.contrib.layers.fully_connected(net, 10, activation_fn=None,
        weights_regularizer=af.contrib.layers.l2_regularizer(1e-4))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actorflow import initializers
from actorflow.graph import Tensor, name_scope
from actorflow.layers import core
from actorflow.op_def import convert_to_tensor
from actorflow.ops import math_ops, nn_ops, reduction_ops

__all__ = ["dropout", "batch_norm", "flatten", "fully_connected", "linear", "conv2d",
           "max_pool2d", "avg_pool2d",
           "xavier_initializer", "xavier_initializer_conv2d", "variance_scaling_initializer",
           "l1_regularizer", "l2_regularizer", "l1_l2_regularizer", "sum_regularizer",
           "apply_regularization", "embed_sequence", "optimize_loss", "OPTIMIZER_CLS_NAMES"]


def flatten(inputs: Any, outputs_collections: Any = None, scope: str | None = None) -> Tensor:
    """[batch, ...] -> [batch, k]."""
    return core.flatten(inputs, name=scope or "Flatten")


def fully_connected(inputs: Any, num_outputs: int, activation_fn: Any = nn_ops.relu,
                    normalizer_fn: Any = None, normalizer_params: Any = None,
                    weights_initializer: Any = None, weights_regularizer: Any = None,
                    biases_initializer: Any = initializers.zeros_initializer(),
                    biases_regularizer: Any = None, reuse: Any = None,
                    variables_collections: Any = None, outputs_collections: Any = None,
                    trainable: bool = True, scope: str | None = None) -> Tensor:
    """activation_fn(inputs @ weights + biases) (weights/biases under ``fully_connected``)."""
    layer = core.Dense(num_outputs, None, biases_initializer is not None,
                       weights_initializer or xavier_initializer(), biases_initializer,
                       weights_regularizer, biases_regularizer, trainable=trainable,
                       name=scope or None, _reuse=reuse)
    layer._default_base = "fully_connected"
    layer._weight_names = ("weights", "biases")  # TF's contrib names (for checkpoints)
    y = layer(inputs)
    if normalizer_fn is not None:
        y = normalizer_fn(y, **(normalizer_params or {}))
    return activation_fn(y) if activation_fn is not None else y


def linear(inputs: Any, num_outputs: int, **kw: Any) -> Tensor:
    return fully_connected(inputs, num_outputs, activation_fn=None, **kw)


def conv2d(inputs: Any, num_outputs: int, kernel_size: Any, stride: Any = 1,
           padding: str = "SAME", activation_fn: Any = nn_ops.relu,
           weights_initializer: Any = None, weights_regularizer: Any = None,
           biases_initializer: Any = initializers.zeros_initializer(),
           biases_regularizer: Any = None, reuse: Any = None, trainable: bool = True,
           scope: str | None = None, **unused: Any) -> Tensor:
    layer = core.Conv2D(num_outputs, kernel_size, stride, padding, activation=None,
                        use_bias=biases_initializer is not None,
                        kernel_initializer=weights_initializer or xavier_initializer(),
                        bias_initializer=biases_initializer,
                        kernel_regularizer=weights_regularizer,
                        bias_regularizer=biases_regularizer, trainable=trainable,
                        name=scope, _reuse=reuse)
    layer._default_base = "Conv"
    layer._weight_names = ("weights", "biases")
    y = layer(inputs)
    return activation_fn(y) if activation_fn is not None else y


def max_pool2d(inputs: Any, kernel_size: Any, stride: Any = 2, padding: str = "VALID",
               data_format: str = "NHWC", outputs_collections: Any = None,
               scope: str | None = None) -> Tensor:
    return core.max_pooling2d(inputs, kernel_size, stride, padding, name=scope)


def avg_pool2d(inputs: Any, kernel_size: Any, stride: Any = 2, padding: str = "VALID",
               data_format: str = "NHWC", outputs_collections: Any = None,
               scope: str | None = None) -> Tensor:
    return core.average_pooling2d(inputs, kernel_size, stride, padding, name=scope)


def xavier_initializer(uniform: bool = True, seed: int | None = None, dtype: Any = None) -> Any:
    """Glorot's initializer: uniform or (truncated) normal with variance 2 / (in + out)."""
    return initializers.variance_scaling_initializer(
        1.0, "fan_avg", "uniform" if uniform else "truncated_normal", seed=seed)


xavier_initializer_conv2d = xavier_initializer


def variance_scaling_initializer(factor: float = 2.0, mode: str = "FAN_IN",
                                 uniform: bool = False, seed: int | None = None,
                                 dtype: Any = None) -> Any:
    return initializers.variance_scaling_initializer(
        factor, mode.lower(), "uniform" if uniform else "truncated_normal", seed=seed)


def l2_regularizer(scale: float, scope: str | None = None) -> Callable[[Any], Tensor | None]:
    """A function w -> scale * sum(w**2) / 2 (None when scale is 0)."""
    if scale < 0:
        raise ValueError(f"l2_regularizer: scale must be >= 0, got {scale}")

    def reg(w: Any) -> Tensor | None:
        if scale == 0:
            return None
        with name_scope(scope, "l2_regularizer"):
            return math_ops.multiply(nn_ops.l2_loss(w), scale)
    return reg


def l1_regularizer(scale: float, scope: str | None = None) -> Callable[[Any], Tensor | None]:
    """A function w -> scale * sum(|w|)."""
    if scale < 0:
        raise ValueError(f"l1_regularizer: scale must be >= 0, got {scale}")

    def reg(w: Any) -> Tensor | None:
        if scale == 0:
            return None
        with name_scope(scope, "l1_regularizer"):
            return math_ops.multiply(reduction_ops.reduce_sum(math_ops.abs(w)), scale)
    return reg


def l1_l2_regularizer(scale_l1: float = 1.0, scale_l2: float = 1.0,
                      scope: str | None = None) -> Callable[[Any], Tensor | None]:
    return sum_regularizer([l1_regularizer(scale_l1), l2_regularizer(scale_l2)], scope)


def sum_regularizer(regularizer_list: list[Any], scope: str | None = None) -> Any:
    def reg(w: Any) -> Tensor | None:
        parts = [p for p in (r(w) for r in regularizer_list) if p is not None]
        return math_ops.add_n(parts) if parts else None
    return reg


def apply_regularization(regularizer: Any, weights_list: list[Any] | None = None) -> Tensor:
    from actorflow.variables import trainable_variables
    ws = weights_list if weights_list is not None else trainable_variables()
    parts = [p for p in (regularizer(convert_to_tensor(w)) for w in ws) if p is not None]
    return math_ops.add_n(parts)


def dropout(inputs: Any, keep_prob: float = 0.5, noise_shape: Any = None,
            is_training: Any = True, outputs_collections: Any = None, scope: str | None = None,
            seed: int | None = None) -> Tensor:
    """Dropout keeping `keep_prob` of the units when `is_training` (a bool or a tensor)."""
    return core.dropout(inputs, rate=1.0 - keep_prob, noise_shape=noise_shape, seed=seed,
                        training=is_training, name=scope or "Dropout")


def batch_norm(inputs: Any, decay: float = 0.999, center: bool = True, scale: bool = False,
               epsilon: float = 0.001, activation_fn: Any = None, param_initializers: Any = None,
               is_training: Any = True, reuse: Any = None, trainable: bool = True,
               scope: str | None = None, **unused: Any) -> Tensor:
    """Batch normalization (moving averages updated through UPDATE_OPS); contrib's defaults:
    decay 0.999, no scale."""
    layer = core.BatchNormalization(-1, decay, epsilon, center, scale, trainable=trainable,
                                    name=scope, _reuse=reuse)
    layer._default_base = "BatchNorm"
    y = layer(inputs, training=is_training)
    return activation_fn(y) if activation_fn is not None else y


from actorflow.contrib.training import (  # noqa: E402  (session 7)
    OPTIMIZER_CLS_NAMES,
    embed_sequence,
    optimize_loss,
)
