"""TF1 layers: a `Layer` object owns its variables and builds them on its first call.

A layer's variables live in the variable scope named after it (``dense``, ``dense_1``, ...
counted per enclosing variable scope and reset when that scope is entered again, as in TF1;
or the `name` given), made with `get_variable` at the top level of the graph (TF's
init_scope, so a first call inside a loop works). With ``reuse=True`` (or inside a reusing
variable scope) the existing variables of that scope are shared, so a model built twice under
``variable_scope(name, reuse=True)`` shares its weights. Regularizers add
their loss to ``GraphKeys.REGULARIZATION_LOSSES``; batch normalization adds its moving-average
updates to ``GraphKeys.UPDATE_OPS`` (run them with the train op, as TF1 programs do:
``with af.control_dependencies(af.get_collection(af.GraphKeys.UPDATE_OPS))``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from actorflow import initializers
from actorflow.graph import GraphKeys, Tensor, get_default_graph, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import (
    array_ops,
    compare_ops,
    control_flow_context,
    math_ops,
    nn_conv_ops,
    nn_ops,
)
from actorflow.ops.composite_ops import batch_normalization as _bn
from actorflow.variables import _var_scope, _VarScope, get_variable
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["Conv2DTranspose", "conv2d_transpose", "Layer", "Dense", "Conv2D",
           "MaxPooling2D", "AveragePooling2D", "Dropout",
           "Flatten", "BatchNormalization", "dense", "conv2d", "max_pooling2d",
           "average_pooling2d", "dropout", "flatten", "batch_normalization"]


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("2_d", "2d")


def _pair(v: Any, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(x) for x in v)
    if len(t) != 2:
        raise InvalidArgumentError(f"{what} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def _padding(p: str) -> str:
    up = p.upper()
    if up not in ("SAME", "VALID"):
        raise InvalidArgumentError(f"padding must be 'same' or 'valid', got {p!r}")
    return up


class Layer:
    """The base class: ``layer(inputs)`` builds the variables once, then calls `call`."""

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None,
                 _reuse: Any = None, **kwargs: Any):
        self.trainable = trainable
        self.name = name
        self.dtype = dtype
        self._reuse = _reuse
        self.built = False
        self._scope: str | None = None
        self._variables: list[Any] = []
        self.updates: list[Any] = []
        self.losses: list[Tensor] = []
        self._default_base: str | None = None  # the unique-name base when no name is given
        self._weight_names = ("kernel", "bias")  # contrib.layers uses ("weights", "biases")

    # -- variables ----------------------------------------------------------------------------
    def _scope_name(self) -> str:
        if self._scope is None:
            sc = _var_scope.get()
            if self.name:
                full = f"{sc.name}/{self.name}" if sc.name else self.name
            else:  # dense, dense_1 ... counted per enclosing variable scope, as in TF1
                from actorflow.variable_scope import unique_in_scope
                full = unique_in_scope(sc.name, self._default_base or
                                       _snake(type(self).__name__))
            self._scope = full
        return self._scope

    def add_weight(self, name: str, shape: Any, dtype: Any = None, initializer: Any = None,
                   regularizer: Callable[[Any], Any] | None = None, trainable: bool = True,
                   collections: list[str] | None = None) -> Any:
        g = get_default_graph()
        outer = _var_scope.get()
        reuse = self._reuse if self._reuse is not None else outer.reuse
        token = _var_scope.set(_VarScope(self._scope_name(), reuse, outer.initializer))
        try:
            with control_flow_context.owned(g, None):
                v = get_variable(name, shape, dtype=dtype or dtypes.float32,
                                 initializer=initializer, trainable=trainable and self.trainable,
                                 collections=collections)
        finally:
            _var_scope.reset(token)
        if regularizer is not None and not reuse:
            with name_scope(f"{self._scope_name()}/{name}/Regularizer"):
                loss = regularizer(v)
            if loss is not None:
                g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
                self.losses.append(loss)
        self._variables.append(v)
        return v

    add_variable = add_weight

    @property
    def variables(self) -> list[Any]:
        return list(self._variables)

    weights = variables

    @property
    def trainable_variables(self) -> list[Any]:
        return [v for v in self._variables if v.trainable]

    trainable_weights = trainable_variables

    # -- calling ------------------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        self.built = True

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        return inputs

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        x = convert_to_tensor(inputs)
        if self.dtype is None:
            self.dtype = x.dtype
        if not self.built:
            self.build(x.shape)
            self.built = True
        with name_scope(self._scope_name().split("/")[-1]):
            return self.call(x, *args, **kwargs)

    apply = __call__


class Dense(Layer):
    """activation(inputs @ kernel + bias); inputs of rank > 2 apply to the last axis."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = None,
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any):
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.units = int(units)
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer or initializers.zeros_initializer()
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer

    def build(self, input_shape: Any) -> None:
        d = input_shape[-1] if input_shape.rank else None
        if d is None:
            raise InvalidArgumentError("Dense needs the last dimension of its inputs to be "
                                       f"known, got shape {input_shape}")
        kname, bname = self._weight_names
        self.kernel = self.add_weight(kname, [int(d), self.units], self.dtype,
                                      self.kernel_initializer, self.kernel_regularizer)
        self.bias = self.add_weight(bname, [self.units], self.dtype, self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        r = inputs.shape.rank
        if r is not None and r > 2:
            flat = array_ops.reshape(inputs, [-1, int(inputs.shape[-1])])
            y = math_ops.matmul(flat, self.kernel)
            lead = array_ops.shape(inputs)
            from actorflow.ops import index_ops, join_ops
            y = array_ops.reshape(y, join_ops.concat(
                [index_ops.strided_slice(lead, [0], [r - 1], [1]), [self.units]], 0))
        else:
            y = math_ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            y = nn_ops.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


class Conv2D(Layer):
    """2-D convolution (NHWC) with `filters` output channels, plus bias and activation."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str = "channels_last",
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = None,
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 trainable: bool = True, name: str | None = None, **kwargs: Any):
        super().__init__(trainable=trainable, name=name, **kwargs)
        if data_format != "channels_last":
            raise InvalidArgumentError("Conv2D supports data_format='channels_last' (NHWC)")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer or initializers.zeros_initializer()
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer

    def build(self, input_shape: Any) -> None:
        c = input_shape[-1] if input_shape.rank else None
        if c is None:
            raise InvalidArgumentError(f"Conv2D needs the channel dimension of its inputs to "
                                       f"be known, got shape {input_shape}")
        kname, bname = self._weight_names
        self.kernel = self.add_weight(kname, [*self.kernel_size, int(c), self.filters],
                                      self.dtype, self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = self.add_weight(bname, [self.filters], self.dtype, self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        y = nn_conv_ops.conv2d(inputs, self.kernel, [1, *self.strides, 1], self.padding,
                               dilations=[1, *self.dilation_rate, 1])
        if self.bias is not None:
            y = nn_ops.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


class Conv2DTranspose(Conv2D):
    """The transpose of Conv2D ("deconvolution"): the kernel is [kh, kw, filters, in], the
    output size is in * stride (SAME) or (in - 1) * stride + kernel (VALID)."""

    def build(self, input_shape: Any) -> None:
        c = input_shape[-1] if input_shape.rank else None
        if c is None:
            raise InvalidArgumentError(f"Conv2DTranspose needs the channel dimension of its "
                                       f"inputs to be known, got shape {input_shape}")
        self.kernel = self.add_weight("kernel", [*self.kernel_size, self.filters, int(c)],
                                      self.dtype, self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = self.add_weight("bias", [self.filters], self.dtype, self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        from actorflow.ops import index_ops, join_ops
        shp = array_ops.shape(inputs)
        dims = []
        for i, (k, s) in enumerate(zip(self.kernel_size, self.strides, strict=True)):
            static = inputs.shape[1 + i]
            size: Any = static if static is not None else index_ops.gather(shp, 1 + i)
            dims.append(size * s if self.padding == "SAME" else (size - 1) * s + k)
        out_shape = join_ops.stack([index_ops.gather(shp, 0), *dims, self.filters])
        y = nn_conv_ops.conv2d_transpose(inputs, self.kernel, out_shape,
                                         [1, *self.strides, 1], self.padding)
        if all(isinstance(d, int) for d in dims):  # keep the static spatial shape
            y = array_ops.reshape(y, [-1, *dims, self.filters])
        if self.bias is not None:
            y = nn_ops.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


class _Pool2D(Layer):
    _fn: Callable[..., Tensor]

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid",
                 data_format: str = "channels_last", name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)

    def call(self, inputs: Tensor) -> Tensor:
        return type(self)._fn(inputs, [1, *self.pool_size, 1], [1, *self.strides, 1],
                              self.padding)


class MaxPooling2D(_Pool2D):
    _fn = staticmethod(nn_conv_ops.max_pool)


class AveragePooling2D(_Pool2D):
    _fn = staticmethod(nn_conv_ops.avg_pool)


def _is_true(training: Any) -> bool | None:
    """True/False for a Python bool, None for a tensor (decided when the step runs)."""
    if isinstance(training, bool | np.bool_ | int):
        return bool(training)
    return None


class Dropout(Layer):
    """Dropout with `rate` (the fraction dropped) when `training`; identity otherwise.
    `training` may be a bool tensor (e.g. a placeholder)."""

    def __init__(self, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None,
                 name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = seed

    def call(self, inputs: Tensor, training: Any = False) -> Tensor:
        t = _is_true(training)
        if t is False:
            return inputs
        dropped = nn_ops.dropout(inputs, rate=self.rate, noise_shape=self.noise_shape,
                                 seed=self.seed)
        if t is True:
            return dropped
        return compare_ops.where(convert_to_tensor(training, dtype=dtypes.bool_), dropped,
                                 inputs)


class Flatten(Layer):
    """[batch, ...] -> [batch, product of the rest]."""

    def call(self, inputs: Tensor) -> Tensor:
        return _flatten(inputs)


def _flatten(x: Tensor) -> Tensor:
    shp = x.shape
    if shp.rank is None:
        raise InvalidArgumentError("flatten needs inputs of known rank")
    rest = shp.as_list()[1:]
    if all(d is not None for d in rest):
        return array_ops.reshape(x, [-1, int(np.prod(rest, dtype=np.int64))])
    from actorflow.ops import index_ops, join_ops
    b = index_ops.strided_slice(array_ops.shape(x), [0], [1], [1])
    return array_ops.reshape(x, join_ops.concat([b, [-1]], 0))


class BatchNormalization(Layer):
    """Normalise over every axis but `axis`, with batch statistics when `training` and the
    moving averages otherwise; the moving-average updates go to UPDATE_OPS."""

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = None,
                 gamma_initializer: Any = None, moving_mean_initializer: Any = None,
                 moving_variance_initializer: Any = None, beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, trainable: bool = True,
                 name: str | None = None, fused: bool | None = None, **kwargs: Any):
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.fused = fused
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center, self.scale = center, scale
        self.beta_initializer = beta_initializer or initializers.zeros_initializer()
        self.gamma_initializer = gamma_initializer or initializers.ones_initializer()
        self.mm_init = moving_mean_initializer or initializers.zeros_initializer()
        self.mv_init = moving_variance_initializer or initializers.ones_initializer()
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer

    def build(self, input_shape: Any) -> None:
        r = input_shape.rank
        if r is None:
            raise InvalidArgumentError("batch_normalization needs inputs of known rank")
        self._ax = self.axis % r
        n = input_shape[self._ax]
        if n is None:
            raise InvalidArgumentError(f"batch_normalization needs the size of axis "
                                       f"{self.axis} known, got shape {input_shape}")
        n = int(n)
        self.gamma = self.add_weight("gamma", [n], self.dtype, self.gamma_initializer,
                                     self.gamma_regularizer) if self.scale else None
        self.beta = self.add_weight("beta", [n], self.dtype, self.beta_initializer,
                                    self.beta_regularizer) if self.center else None
        local = [GraphKeys.GLOBAL_VARIABLES, GraphKeys.MOVING_AVERAGE_VARIABLES]
        self.moving_mean = self.add_weight("moving_mean", [n], self.dtype, self.mm_init,
                                           trainable=False, collections=local)
        self.moving_variance = self.add_weight("moving_variance", [n], self.dtype,
                                               self.mv_init, trainable=False,
                                               collections=local)
        self._rank = r
        self.built = True

    def _fused(self) -> bool:
        """Whether TF1 would run this layer with its fused kernel (`fused=None`: 4-D inputs
        normalised over the channel axis, 1 or 3); that kernel's moving variance is updated
        with the unbiased (n - 1) batch variance, the plain one's with the biased one."""
        can = self._rank == 4 and self._ax in (1, 3)
        if self.fused and not can:
            raise InvalidArgumentError(f"batch_normalization: fused=True needs 4-D inputs "
                                       f"normalised over axis 1 or 3, got rank {self._rank}, "
                                       f"axis {self.axis}")
        return can if self.fused is None else bool(self.fused)

    def call(self, inputs: Tensor, training: Any = False) -> Tensor:
        axes = [i for i in range(self._rank) if i != self._ax]
        shape = [1] * self._rank
        shape[self._ax] = -1

        def bcast(v: Any) -> Any:
            return None if v is None else array_ops.reshape(v, shape)

        t = _is_true(training)
        mm, mv = bcast(self.moving_mean), bcast(self.moving_variance)
        if t is False:
            return _bn(inputs, mm, mv, bcast(self.beta), bcast(self.gamma), self.epsilon)
        mean, var = nn_ops.moments(inputs, axes, keep_dims=True)
        if t is True:
            m, v = mean, var
            rate: Any = 1.0 - self.momentum
        else:
            tr = convert_to_tensor(training, dtype=dtypes.bool_)
            m, v = compare_ops.where(tr, mean, mm), compare_ops.where(tr, var, mv)
            rate = compare_ops.where(tr, 1.0 - self.momentum, 0.0)
        out = _bn(inputs, m, v, bcast(self.beta), bcast(self.gamma), self.epsilon)
        out.set_shape(inputs.shape)  # a scalar `training` of unknown shape keeps x's shape
        # Moving averages: mv -= (mv - batch) * (1 - momentum) (0 when not training).
        n = inputs.shape[self._ax]
        bm = array_ops.reshape(mean, [int(n)])
        bv = array_ops.reshape(var, [int(n)])
        if self._fused():  # TF's fused kernel: the moving variance gets the unbiased one
            count = compare_ops.cast(math_ops.truediv(array_ops.size(inputs), int(n)),
                                     inputs.dtype)
            bv = math_ops.multiply(bv, math_ops.truediv(
                count, math_ops.maximum(math_ops.subtract(count, 1.0), 1.0)))
        if inputs.dtype is not dtypes.float32:
            rate = compare_ops.cast(rate, inputs.dtype)
        upd_m = self.moving_mean.assign_sub(
            math_ops.multiply(math_ops.subtract(self.moving_mean, bm), rate))
        upd_v = self.moving_variance.assign_sub(
            math_ops.multiply(math_ops.subtract(self.moving_variance, bv), rate))
        g = get_default_graph()
        for u in (upd_m, upd_v):
            g.add_to_collection(GraphKeys.UPDATE_OPS, u)
            self.updates.append(u)
        return out


# ---- the functional forms ---------------------------------------------------------------
def dense(inputs: Any, units: int, activation: Any = None, use_bias: bool = True,
          kernel_initializer: Any = None, bias_initializer: Any = None,
          kernel_regularizer: Any = None, bias_regularizer: Any = None,
          activity_regularizer: Any = None, kernel_constraint: Any = None,
          bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
          reuse: Any = None) -> Tensor:
    return Dense(units, activation, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer, bias_regularizer, trainable=trainable, name=name,
                 _reuse=reuse)(inputs)


def conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
           padding: str = "valid", data_format: str = "channels_last",
           dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
           kernel_initializer: Any = None, bias_initializer: Any = None,
           kernel_regularizer: Any = None, bias_regularizer: Any = None,
           activity_regularizer: Any = None, kernel_constraint: Any = None,
           bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
           reuse: Any = None) -> Tensor:
    return Conv2D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                  activation, use_bias, kernel_initializer, bias_initializer,
                  kernel_regularizer, bias_regularizer, trainable=trainable, name=name,
                  _reuse=reuse)(inputs)


def conv2d_transpose(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
                     padding: str = "valid", data_format: str = "channels_last",
                     activation: Any = None, use_bias: bool = True, kernel_initializer: Any = None,
                     bias_initializer: Any = None, kernel_regularizer: Any = None,
                     bias_regularizer: Any = None, trainable: bool = True,
                     name: str | None = None, reuse: Any = None, **unused: Any) -> Tensor:
    return Conv2DTranspose(filters, kernel_size, strides, padding, data_format,
                           activation=activation, use_bias=use_bias,
                           kernel_initializer=kernel_initializer,
                           bias_initializer=bias_initializer,
                           kernel_regularizer=kernel_regularizer,
                           bias_regularizer=bias_regularizer, trainable=trainable, name=name,
                           _reuse=reuse)(inputs)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Tensor:
    return MaxPooling2D(pool_size, strides, padding, data_format, name=name)(inputs)


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Tensor:
    return AveragePooling2D(pool_size, strides, padding, data_format, name=name)(inputs)


def dropout(inputs: Any, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None,
            training: Any = False, name: str | None = None) -> Tensor:
    return Dropout(rate, noise_shape, seed, name=name)(inputs, training=training)


def flatten(inputs: Any, name: str | None = None, data_format: str = "channels_last") -> Tensor:
    with name_scope(name, "flatten"):
        return _flatten(convert_to_tensor(inputs))


def batch_normalization(inputs: Any, axis: int = -1, momentum: float = 0.99,
                        epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                        beta_initializer: Any = None, gamma_initializer: Any = None,
                        moving_mean_initializer: Any = None,
                        moving_variance_initializer: Any = None, beta_regularizer: Any = None,
                        gamma_regularizer: Any = None, training: Any = False,
                        trainable: bool = True, name: str | None = None, reuse: Any = None,
                        fused: bool | None = None, **unused: Any) -> Tensor:
    layer = BatchNormalization(axis, momentum, epsilon, center, scale, beta_initializer,
                               gamma_initializer, moving_mean_initializer,
                               moving_variance_initializer, beta_regularizer,
                               gamma_regularizer, trainable=trainable, name=name, _reuse=reuse,
                               fused=fused)
    return layer(inputs, training=training)


