"""``af.distributions`` (TF1's tf.distributions / tf.contrib.distributions): Normal, Bernoulli,
Categorical, Uniform and kl_divergence, as graph code over the random and math ops.

Each distribution holds its parameters as tensors (broadcast against each other) and builds
ops on demand: `sample(sample_shape)` (reparameterized for Normal and Uniform, so gradients
flow to the parameters, as VAEs need), `log_prob`, `prob`, `mean`, `stddev`, `variance`,
`entropy`, and `kl_divergence(p, q)` for two Normals or two Bernoullis/Categoricals.

    q = af.distributions.Normal(loc=mu, scale=af.exp(log_sigma))
    z = q.sample()
    kl = af.reduce_sum(af.distributions.kl_divergence(q, af.distributions.Normal(0., 1.)), 1)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, join_ops, math_ops, reduction_ops
from devices import dtypes

__all__ = ["Distribution", "Normal", "Bernoulli", "Categorical", "Uniform", "kl_divergence"]


def _shape_with(sample_shape: Any, params: Tensor) -> Tensor:
    ss = convert_to_tensor(sample_shape if sample_shape not in ((), None) else [],
                           dtype=dtypes.int32)
    return join_ops.concat([array_ops.reshape(ss, [-1]), array_ops.shape(params)], 0)


class Distribution(ABC):
    """The base class: subclasses define `_sample(sample_shape, seed)` and `log_prob`."""

    def __init__(self, name: str):
        self.name = name

    def sample(self, sample_shape: Any = (), seed: int | None = None,
               name: str = "sample") -> Tensor:
        with name_scope(f"{self.name}/{name}"):
            return self._sample(sample_shape, seed)

    def prob(self, value: Any, name: str = "prob") -> Tensor:
        with name_scope(f"{self.name}/{name}"):
            return math_ops.exp(self.log_prob(value))

    def stddev(self, name: str = "stddev") -> Tensor:
        return math_ops.sqrt(self.variance())

    @abstractmethod
    def _sample(self, sample_shape: Any, seed: int | None) -> Tensor:
        """Draws of shape sample_shape + the parameters' shape."""

    @abstractmethod
    def log_prob(self, value: Any, name: str = "log_prob") -> Tensor:
        """The log density (or mass) of `value`."""

    def variance(self, name: str = "variance") -> Tensor:
        raise NotImplementedError(f"variance is not implemented for {type(self).__name__} "
                                  f"(as in TensorFlow)")


class Normal(Distribution):
    """N(loc, scale^2)."""

    def __init__(self, loc: Any, scale: Any, validate_args: bool = False,
                 allow_nan_stats: bool = True, name: str = "Normal"):
        super().__init__(name)
        with name_scope(name):
            self.loc = convert_to_tensor(loc, dtype=dtypes.float32) \
                if not isinstance(loc, Tensor) else loc
            self.scale = convert_to_tensor(scale, dtype=self.loc.dtype) \
                if not isinstance(scale, Tensor) else scale
            self._shape = math_ops.add(array_ops.zeros_like(self.loc),
                                       array_ops.zeros_like(self.scale))

    def _sample(self, sample_shape: Any, seed: int | None) -> Tensor:
        from actorflow.ops.random_ops import random_normal
        eps = random_normal(_shape_with(sample_shape, self._shape), dtype=self.loc.dtype,
                            seed=seed)
        return math_ops.add(math_ops.multiply(eps, self.scale), self.loc)

    def log_prob(self, value: Any, name: str = "log_prob") -> Tensor:
        x = convert_to_tensor(value, dtype=self.loc.dtype)
        z = math_ops.truediv(math_ops.subtract(x, self.loc), self.scale)
        return math_ops.subtract(math_ops.multiply(-0.5, math_ops.square(z)), math_ops.add(
            0.5 * math.log(2.0 * math.pi), math_ops.log(self.scale)))

    def cdf(self, value: Any, name: str = "cdf") -> Tensor:
        from actorflow.ops.scan_sort_ops import erf
        z = math_ops.truediv(math_ops.subtract(convert_to_tensor(value, dtype=self.loc.dtype),
                                               self.loc), self.scale * math.sqrt(2.0))
        return math_ops.multiply(0.5, math_ops.add(1.0, erf(z)))

    def mean(self, name: str = "mean") -> Tensor:
        return math_ops.add(self.loc, self._shape)

    def mode(self, name: str = "mode") -> Tensor:
        return self.mean()

    def variance(self, name: str = "variance") -> Tensor:
        return math_ops.add(math_ops.square(self.scale), self._shape)

    def entropy(self, name: str = "entropy") -> Tensor:
        return math_ops.add(0.5 * math.log(2.0 * math.pi * math.e),
                            math_ops.log(math_ops.add(self.scale, self._shape)))


class Uniform(Distribution):
    """Uniform on [low, high)."""

    def __init__(self, low: Any = 0.0, high: Any = 1.0, validate_args: bool = False,
                 allow_nan_stats: bool = True, name: str = "Uniform"):
        super().__init__(name)
        self.low = convert_to_tensor(low, dtype=dtypes.float32)
        self.high = convert_to_tensor(high, dtype=self.low.dtype)
        self._range = math_ops.subtract(self.high, self.low)

    def _sample(self, sample_shape: Any, seed: int | None) -> Tensor:
        from actorflow.ops.random_ops import random_uniform
        u = random_uniform(_shape_with(sample_shape, self._range), dtype=self.low.dtype,
                           seed=seed)
        return math_ops.add(self.low, math_ops.multiply(u, self._range))

    def log_prob(self, value: Any, name: str = "log_prob") -> Tensor:
        x = convert_to_tensor(value, dtype=self.low.dtype)
        inside = compare_ops.logical_and(compare_ops.greater_equal(x, self.low),
                                         compare_ops.less(x, self.high))
        return compare_ops.where(inside, math_ops.negative(math_ops.log(math_ops.add(
            self._range, array_ops.zeros_like(x)))), math_ops.add(
            array_ops.zeros_like(x), float("-inf")))

    def mean(self, name: str = "mean") -> Tensor:
        return math_ops.multiply(0.5, math_ops.add(self.low, self.high))

    def variance(self, name: str = "variance") -> Tensor:
        return math_ops.truediv(math_ops.square(self._range), 12.0)

    def entropy(self, name: str = "entropy") -> Tensor:
        return math_ops.log(self._range)


def _logits_and_probs(logits: Any, probs: Any, to_probs: Any, to_logits: Any
                      ) -> tuple[Tensor, Tensor]:
    """(logits, probs) from exactly one of them, as float32 tensors."""
    if (logits is None) == (probs is None):
        raise ValueError("Must pass probs or logits, but not both.")
    if logits is not None:
        lg = convert_to_tensor(logits, dtype=dtypes.float32)
        return lg, to_probs(lg)
    p = convert_to_tensor(probs, dtype=dtypes.float32)
    return to_logits(p), p


class Bernoulli(Distribution):
    """1 with probability p (given as `probs`, or as `logits`), else 0."""

    def __init__(self, logits: Any = None, probs: Any = None, dtype: Any = dtypes.int32,
                 validate_args: bool = False, allow_nan_stats: bool = True,
                 name: str = "Bernoulli"):
        super().__init__(name)
        self.dtype = dtypes.as_dtype(dtype)
        self.logits, self.probs = _logits_and_probs(
            logits, probs, math_ops.sigmoid,
            lambda p: math_ops.subtract(math_ops.log(p), math_ops.log1p(math_ops.negative(p))))

    def _sample(self, sample_shape: Any, seed: int | None) -> Tensor:
        from actorflow.ops.random_ops import random_uniform
        u = random_uniform(_shape_with(sample_shape, self.probs), seed=seed)
        return compare_ops.cast(compare_ops.less(u, self.probs), self.dtype)

    def log_prob(self, value: Any, name: str = "log_prob") -> Tensor:
        from actorflow.ops.nn_loss_ops import sigmoid_cross_entropy_with_logits
        x = compare_ops.cast(convert_to_tensor(value), dtypes.float32)
        logits = math_ops.add(self.logits, array_ops.zeros_like(x))
        return math_ops.negative(sigmoid_cross_entropy_with_logits(
            labels=math_ops.add(x, array_ops.zeros_like(logits)), logits=logits))

    def mean(self, name: str = "mean") -> Tensor:
        return self.probs

    def variance(self, name: str = "variance") -> Tensor:
        return math_ops.multiply(self.probs, math_ops.subtract(1.0, self.probs))

    def entropy(self, name: str = "entropy") -> Tensor:
        from actorflow.ops.nn_loss_ops import sigmoid_cross_entropy_with_logits
        return sigmoid_cross_entropy_with_logits(labels=self.probs, logits=self.logits)


class Categorical(Distribution):
    """One of K classes (the last axis of `logits` or `probs`)."""

    def __init__(self, logits: Any = None, probs: Any = None, dtype: Any = dtypes.int32,
                 validate_args: bool = False, allow_nan_stats: bool = True,
                 name: str = "Categorical"):
        super().__init__(name)
        from actorflow.ops.nn_ops import log_softmax, softmax
        self.dtype = dtypes.as_dtype(dtype)
        self.logits, self.probs = _logits_and_probs(logits, probs, softmax, math_ops.log)
        self._log_probs = log_softmax(self.logits)

    def _sample(self, sample_shape: Any, seed: int | None) -> Tensor:
        import numpy as np

        from actorflow.ops.random_ops import multinomial
        ss = [int(sample_shape)] if isinstance(sample_shape, int) else [
            int(d) for d in (sample_shape or ())]
        k = array_ops.shape(self.logits)[-1]
        flat = array_ops.reshape(self.logits, join_ops.stack([-1, k]))
        draws = multinomial(flat, int(np.prod(ss)), seed=seed)  # [batch, n]
        lead = array_ops.shape(self.logits)[:-1]
        return compare_ops.cast(array_ops.reshape(array_ops.transpose(draws), join_ops.concat(
            [convert_to_tensor(ss, dtype=dtypes.int32), lead], 0)), self.dtype)

    def log_prob(self, value: Any, name: str = "log_prob") -> Tensor:
        from actorflow.ops.nn_loss_ops import sparse_softmax_cross_entropy_with_logits
        k = compare_ops.cast(convert_to_tensor(value), dtypes.int64)
        logits = math_ops.add(self.logits, array_ops.expand_dims(
            compare_ops.cast(array_ops.zeros_like(k), dtypes.float32), -1))
        return math_ops.negative(sparse_softmax_cross_entropy_with_logits(
            labels=k, logits=logits))

    def mode(self, name: str = "mode") -> Tensor:
        return compare_ops.cast(reduction_ops.argmax(self.logits, -1), self.dtype)

    def entropy(self, name: str = "entropy") -> Tensor:
        return math_ops.negative(reduction_ops.reduce_sum(
            math_ops.multiply(self.probs, self._log_probs), -1))


def kl_divergence(distribution_a: Distribution, distribution_b: Distribution,
                  allow_nan_stats: bool = True, name: str | None = None) -> Tensor:
    """KL(a || b) for two Normals, two Bernoullis or two Categoricals."""
    a, b = distribution_a, distribution_b
    with name_scope(name, "KullbackLeibler"):
        if isinstance(a, Normal) and isinstance(b, Normal):
            ratio = math_ops.square(math_ops.truediv(a.scale, b.scale))
            diff = math_ops.square(math_ops.truediv(math_ops.subtract(a.loc, b.loc), b.scale))
            return math_ops.multiply(0.5, math_ops.subtract(
                math_ops.add(ratio, diff), math_ops.add(1.0, math_ops.log(ratio))))
        if isinstance(a, Bernoulli) and isinstance(b, Bernoulli):
            p, q = a.probs, b.probs
            return math_ops.add(
                math_ops.multiply(p, math_ops.subtract(math_ops.log(p), math_ops.log(q))),
                math_ops.multiply(math_ops.subtract(1.0, p), math_ops.subtract(
                    math_ops.log1p(math_ops.negative(p)), math_ops.log1p(math_ops.negative(q)))))
        if isinstance(a, Categorical) and isinstance(b, Categorical):
            return reduction_ops.reduce_sum(math_ops.multiply(
                a.probs, math_ops.subtract(a._log_probs, b._log_probs)), -1)
    raise NotImplementedError(f"No KL(distribution_a || distribution_b) registered for "
                              f"distribution_a type {type(a).__name__} and distribution_b "
                              f"type {type(b).__name__}")
