"""TF1's 1-D and separable layers: `Conv1D`, `MaxPooling1D`, `AveragePooling1D`,
`SeparableConv2D` and their functions, on the same `Layer` base as `actorflow.layers.core`
(variables under the layer's scope: ``conv1d/kernel`` [k, in, filters],
``separable_conv2d/depthwise_kernel`` [kh, kw, in, multiplier], ``pointwise_kernel``
[1, 1, in * multiplier, filters], ``bias``). 1-D work runs as the 2-D ops over a height of 1.
"""

from __future__ import annotations

from typing import Any

from actorflow import initializers
from actorflow.graph import Tensor
from actorflow.layers.core import Layer, _padding, _pair
from actorflow.ops import array_ops, grid_ops, nn_conv_ops, nn_ops
from devices.errors import InvalidArgumentError


def _one(v: Any, what: str) -> int:
    if isinstance(v, int):
        return v
    t = tuple(int(x) for x in v)
    if len(t) != 1:
        raise InvalidArgumentError(f"{what} must be an int or a 1-tuple, got {v!r}")
    return t[0]


def _channels(shape: Any, who: str) -> int:
    c = shape[-1] if shape.rank else None
    if c is None:
        raise InvalidArgumentError(f"{who} needs the channel dimension of its inputs to be "
                                   f"known, got shape {shape}")
    return int(c)


class Conv1D(Layer):
    """1-D convolution of [batch, width, channels] with `filters` outputs, bias, activation."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str = "channels_last", dilation_rate: Any = 1,
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = None,
                 bias_initializer: Any = None, kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any):
        super().__init__(trainable=trainable, name=name, **kwargs)
        if data_format != "channels_last":
            raise InvalidArgumentError("Conv1D supports data_format='channels_last'")
        self._default_base = "conv1d"  # TF's name, not the class name's snake case
        self.filters, self.kernel_size = int(filters), _one(kernel_size, "kernel_size")
        self.strides, self.padding = _one(strides, "strides"), _padding(padding)
        self.dilation_rate = _one(dilation_rate, "dilation_rate")
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer or initializers.zeros_initializer()
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer

    def build(self, input_shape: Any) -> None:
        c = _channels(input_shape, "Conv1D")
        self.kernel = self.add_weight("kernel", [self.kernel_size, c, self.filters], self.dtype,
                                      self.kernel_initializer, self.kernel_regularizer)
        self.bias = self.add_weight("bias", [self.filters], self.dtype, self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        x = array_ops.expand_dims(inputs, 1)
        w = array_ops.expand_dims(self.kernel, 0)
        y = array_ops.squeeze(nn_conv_ops.conv2d(x, w, [1, 1, self.strides, 1], self.padding,
                                                 dilations=[1, 1, self.dilation_rate, 1]), [1])
        if self.bias is not None:
            y = nn_ops.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


class _Pool1D(Layer):
    _pool: Any

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid",
                 data_format: str = "channels_last", name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self._default_base = type(self).__name__.replace("1D", "1d").replace(
            "Pooling", "_pooling").lower()
        self.pool_size, self.strides = _one(pool_size, "pool_size"), _one(strides, "strides")
        self.padding = _padding(padding)

    def call(self, inputs: Tensor) -> Tensor:
        y = type(self)._pool(array_ops.expand_dims(inputs, 1), [1, 1, self.pool_size, 1],
                             [1, 1, self.strides, 1], self.padding)
        return array_ops.squeeze(y, [1])


class MaxPooling1D(_Pool1D):
    _pool = staticmethod(nn_conv_ops.max_pool)


class AveragePooling1D(_Pool1D):
    _pool = staticmethod(nn_conv_ops.avg_pool)


class SeparableConv2D(Layer):
    """A depthwise 2-D convolution (`depth_multiplier` filters per input channel), then a 1x1
    convolution to `filters` channels, bias and activation."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str = "channels_last",
                 dilation_rate: Any = (1, 1), depth_multiplier: int = 1, activation: Any = None,
                 use_bias: bool = True, depthwise_initializer: Any = None,
                 pointwise_initializer: Any = None, bias_initializer: Any = None,
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None,
                 bias_regularizer: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any):
        super().__init__(trainable=trainable, name=name, **kwargs)
        if data_format != "channels_last":
            raise InvalidArgumentError("SeparableConv2D supports data_format='channels_last'")
        self.filters, self.kernel_size = int(filters), _pair(kernel_size, "kernel_size")
        self.strides, self.padding = _pair(strides, "strides"), _padding(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.depth_multiplier = int(depth_multiplier)
        self.activation, self.use_bias = activation, use_bias
        self.inits = (depthwise_initializer, pointwise_initializer,
                      bias_initializer or initializers.zeros_initializer())
        self.regs = (depthwise_regularizer, pointwise_regularizer, bias_regularizer)

    def build(self, input_shape: Any) -> None:
        c = _channels(input_shape, "SeparableConv2D")
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", [*self.kernel_size, c, self.depth_multiplier], self.dtype,
            self.inits[0], self.regs[0])
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", [1, 1, c * self.depth_multiplier, self.filters], self.dtype,
            self.inits[1], self.regs[1])
        self.bias = self.add_weight("bias", [self.filters], self.dtype, self.inits[2],
                                    self.regs[2]) if self.use_bias else None
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        dil = None if self.dilation_rate == (1, 1) else [1, *self.dilation_rate, 1]
        y = grid_ops.separable_conv2d(inputs, self.depthwise_kernel, self.pointwise_kernel,
                                      [1, *self.strides, 1], self.padding, dilations=dil)
        if self.bias is not None:
            y = nn_ops.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


def conv1d(inputs: Any, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Any = 1, activation: Any = None,
           use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = None,
           kernel_regularizer: Any = None, bias_regularizer: Any = None,
           trainable: bool = True, name: str | None = None, reuse: Any = None,
           **unused: Any) -> Tensor:
    return Conv1D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                  activation, use_bias, kernel_initializer, bias_initializer,
                  kernel_regularizer, bias_regularizer, trainable=trainable, name=name,
                  _reuse=reuse)(inputs)


def max_pooling1d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Tensor:
    return MaxPooling1D(pool_size, strides, padding, data_format, name=name)(inputs)


def average_pooling1d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Tensor:
    return AveragePooling1D(pool_size, strides, padding, data_format, name=name)(inputs)


def separable_conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
                     padding: str = "valid", data_format: str = "channels_last",
                     dilation_rate: Any = (1, 1), depth_multiplier: int = 1,
                     activation: Any = None, use_bias: bool = True,
                     depthwise_initializer: Any = None, pointwise_initializer: Any = None,
                     bias_initializer: Any = None, depthwise_regularizer: Any = None,
                     pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                     trainable: bool = True, name: str | None = None, reuse: Any = None,
                     **unused: Any) -> Tensor:
    return SeparableConv2D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                           depth_multiplier, activation, use_bias, depthwise_initializer,
                           pointwise_initializer, bias_initializer, depthwise_regularizer,
                           pointwise_regularizer, bias_regularizer, trainable=trainable,
                           name=name, _reuse=reuse)(inputs)
