"""Variable initializers (TF1's ``tf.zeros_initializer()`` ...): callables
``init(shape, dtype) -> Tensor`` that build the initial value as graph ops.

Random ones use the random ops of `actorflow.ops.random_ops` (seeded by the graph and op seeds,
so a graph with `af.set_random_seed` draws the same numbers each time it is built); where that
module is missing they draw with NumPy when the graph is built, from the same seeds, and embed
the result as a constant.

    w = af.get_variable("w", (784, 10), initializer=af.glorot_uniform_initializer())
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from actorflow import shapes
from actorflow.graph import Tensor, get_seed
from actorflow.op_def import constant
from actorflow.ops import array_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

Initializer = Callable[..., Tensor]


def _random_ops() -> Any:
    try:
        return importlib.import_module("actorflow.ops.random_ops")
    except ModuleNotFoundError:
        return None


def _shape(shape: Any) -> tuple[int, ...]:
    shp = shapes.as_shape(shape)
    if not shapes.is_fully_defined(shp):
        raise InvalidArgumentError(f"an initializer needs a fully known shape, got "
                                   f"{shapes.fmt(shp)}")
    return tuple(shp)  # type: ignore[arg-type]


def zeros_initializer(dtype: Any = dtypes.float32) -> Initializer:
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        return array_ops.zeros(_shape(shape), dtypes.as_dtype(dtype))
    return init


def ones_initializer(dtype: Any = dtypes.float32) -> Initializer:
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        return array_ops.ones(_shape(shape), dtypes.as_dtype(dtype))
    return init


def constant_initializer(value: Any = 0, dtype: Any = dtypes.float32) -> Initializer:
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        return constant(value, dtype=dtypes.as_dtype(dtype), shape=_shape(shape))
    return init


def _draw(kind: str, shape: Any, dtype: Any, seed: int | None, a: float, b: float) -> Tensor:
    """Random values of `shape`: kind 'uniform' [a, b), 'normal' or 'truncated' (mean a,
    stddev b)."""
    dt = dtypes.as_dtype(dtype)
    if not dt.is_floating:
        raise InvalidArgumentError(f"random initializers make floats, not {dt.name}")
    shp = _shape(shape)
    ro = _random_ops()
    fn = None if ro is None else getattr(
        ro, {"uniform": "random_uniform", "normal": "random_normal",
             "truncated": "truncated_normal"}[kind], None)
    if fn is not None:
        if kind == "uniform":
            return fn(shp, minval=a, maxval=b, dtype=dt, seed=seed)
        return fn(shp, mean=a, stddev=b, dtype=dt, seed=seed)
    gs, os_ = get_seed(seed)
    rng = np.random.default_rng([gs, os_])
    if kind == "uniform":
        arr = rng.uniform(a, b, shp)
    elif kind == "normal":
        arr = rng.normal(a, b, shp)
    else:
        arr = rng.normal(0.0, 1.0, shp)
        bad = np.abs(arr) > 2.0
        while bad.any():
            arr[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
            bad = np.abs(arr) > 2.0
        arr = a + b * arr
    return constant(arr.astype(dt.np), dtype=dt)


def random_uniform_initializer(minval: float = -0.05, maxval: float = 0.05,
                               seed: int | None = None, dtype: Any = dtypes.float32
                               ) -> Initializer:
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        return _draw("uniform", shape, dtype, seed, minval, maxval)
    return init


def random_normal_initializer(mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                              dtype: Any = dtypes.float32) -> Initializer:
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        return _draw("normal", shape, dtype, seed, mean, stddev)
    return init


def truncated_normal_initializer(mean: float = 0.0, stddev: float = 1.0,
                                 seed: int | None = None, dtype: Any = dtypes.float32
                                 ) -> Initializer:
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        return _draw("truncated", shape, dtype, seed, mean, stddev)
    return init


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def variance_scaling_initializer(scale: float = 1.0, mode: str = "fan_in",
                                 distribution: str = "truncated_normal",
                                 seed: int | None = None, dtype: Any = dtypes.float32
                                 ) -> Initializer:
    """TF's variance scaling: stddev sqrt(scale / n), n the fan-in, fan-out or their mean."""
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise InvalidArgumentError(f"mode must be fan_in, fan_out or fan_avg, not {mode!r}")
    if distribution not in ("truncated_normal", "normal", "untruncated_normal", "uniform"):
        raise InvalidArgumentError(f"unknown distribution {distribution!r}")

    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        fan_in, fan_out = _fans(_shape(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        s = scale / max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * s)
            return _draw("uniform", shape, dtype, seed, -limit, limit)
        if distribution == "truncated_normal":
            # the stddev of a standard normal truncated to [-2, 2]
            return _draw("truncated", shape, dtype, seed, 0.0, math.sqrt(s) / .87962566103423978)
        return _draw("normal", shape, dtype, seed, 0.0, math.sqrt(s))
    return init


def glorot_uniform_initializer(seed: int | None = None, dtype: Any = dtypes.float32
                               ) -> Initializer:
    return variance_scaling_initializer(1.0, "fan_avg", "uniform", seed, dtype)


def glorot_normal_initializer(seed: int | None = None, dtype: Any = dtypes.float32
                              ) -> Initializer:
    return variance_scaling_initializer(1.0, "fan_avg", "truncated_normal", seed, dtype)


def he_normal(seed: int | None = None) -> Initializer:
    return variance_scaling_initializer(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed: int | None = None) -> Initializer:
    return variance_scaling_initializer(2.0, "fan_in", "uniform", seed)


# --- s9api: orthogonal and identity initializers ---
def orthogonal_initializer(gain: float = 1.0, seed: int | None = None,
                           dtype: Any = dtypes.float32) -> Initializer:
    """TF1's Orthogonal: the Q of a QR decomposition of a normal draw (its columns' signs
    fixed by R's diagonal), flattened to [prod(shape[:-1]), shape[-1]], times `gain`."""
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        from actorflow.ops import array_ops as ao
        from actorflow.ops import math_ops
        from actorflow.ops.grid_ops import diag_part
        from actorflow.ops.qr_ops import qr
        shp = _shape(shape)
        if len(shp) < 2:
            raise InvalidArgumentError(f"orthogonal_initializer needs a shape of at least 2 "
                                       f"dimensions, got {list(shp)}")
        rows, cols = math.prod(shp[:-1]), shp[-1]
        a = _draw("normal", (max(rows, cols), min(rows, cols)), dtype, seed, 0.0, 1.0)
        q, r = qr(a)
        q = math_ops.multiply(q, math_ops.sign(diag_part(r)))
        if rows < cols:
            q = ao.transpose(q)
        return math_ops.multiply(ao.reshape(q, list(shp)), float(gain))
    return init


def identity_initializer(gain: float = 1.0, dtype: Any = dtypes.float32) -> Initializer:
    """gain times the (rectangular) identity matrix; 2-D shapes only, as TF."""
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        shp = _shape(shape)
        if len(shp) != 2:
            raise InvalidArgumentError(f"identity initializer needs a 2-D shape, got "
                                       f"{list(shp)}")
        dt = dtypes.as_dtype(dtype)
        return constant(np.eye(shp[0], shp[1], dtype=dt.np) * gain, dtype=dt)
    return init


def uniform_unit_scaling_initializer(factor: float = 1.0, seed: int | None = None,
                                     dtype: Any = dtypes.float32) -> Initializer:
    """TF1's UniformUnitScaling: uniform in +-sqrt(3 / input size) * factor, the input size
    the product of every dimension but the last."""
    def init(shape: Any, dtype: Any = dtype, partition_info: Any = None) -> Tensor:
        shp = _shape(shape)
        limit = math.sqrt(3.0 / max(float(math.prod(shp[:-1])), 1.0)) * factor
        return _draw("uniform", shp, dtype, seed, -limit, limit)
    return init


def lecun_normal(seed: int | None = None) -> Initializer:
    return variance_scaling_initializer(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed: int | None = None) -> Initializer:
    return variance_scaling_initializer(1.0, "fan_in", "uniform", seed)


# tf.compat.v1.initializers' short names
identity = identity_initializer
orthogonal = orthogonal_initializer
zeros, ones = zeros_initializer, ones_initializer
random_normal, random_uniform = random_normal_initializer, random_uniform_initializer
truncated_normal, variance_scaling = truncated_normal_initializer, variance_scaling_initializer
glorot_normal, glorot_uniform = glorot_normal_initializer, glorot_uniform_initializer
uniform_unit_scaling = uniform_unit_scaling_initializer
# (the short names stay out of __all__: `actorflow.variables` re-exports __all__ at the top
# level, where af.zeros, af.identity, ... are the ops)
__all__ = ["orthogonal_initializer", "identity_initializer", "uniform_unit_scaling_initializer",
           "lecun_normal", "lecun_uniform"]
__all__ += ["zeros_initializer", "ones_initializer", "constant_initializer",
           "random_uniform_initializer", "random_normal_initializer",
           "truncated_normal_initializer", "variance_scaling_initializer",
           "glorot_uniform_initializer", "glorot_normal_initializer", "he_normal", "he_uniform"]


def __getattr__(name: str) -> Any:
    """tf.initializers' op builders (global_variables, ...), found where they are defined."""
    if name in ("global_variables", "local_variables", "variables"):
        from actorflow import variables
        return getattr(variables, {"variables": "variables_initializer"}.get(
            name, f"{name}_initializer"))
    if name == "tables_initializer":
        from actorflow.lookup_ops import tables_initializer
        return tables_initializer
    raise AttributeError(f"module 'actorflow.initializers' has no attribute '{name}'")
