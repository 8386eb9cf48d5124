"""Learning-rate schedules of TF1's ``tf.train``: tensors of the global step.

    step = af.train.get_or_create_global_step()
    lr = af.train.exponential_decay(0.1, step, decay_steps=1000, decay_rate=0.96,
                                    staircase=True)
    train_op = af.train.GradientDescentOptimizer(lr).minimize(loss, global_step=step)

Each returns a float32 tensor (the dtype of `learning_rate` when it is a tensor) computed from
the current value of `global_step`, so it changes as the step advances.
"""

from __future__ import annotations

import math
from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import compare_ops, math_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["exponential_decay", "natural_exp_decay", "inverse_time_decay", "polynomial_decay",
           "piecewise_constant", "cosine_decay"]


def _lr(learning_rate: Any) -> Tensor:
    if isinstance(learning_rate, Tensor):
        return learning_rate
    return convert_to_tensor(learning_rate, dtype=dtypes.float32)


def _step(global_step: Any, dt: Any) -> Tensor:
    if global_step is None:
        raise InvalidArgumentError("a learning-rate schedule needs global_step (e.g. "
                                   "af.train.get_or_create_global_step())")
    return compare_ops.cast(global_step, dt)


def _ratio(global_step: Any, decay_steps: Any, staircase: bool, dt: Any) -> Tensor:
    p = math_ops.truediv(_step(global_step, dt), compare_ops.cast(decay_steps, dt))
    return math_ops.floor(p) if staircase else p


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                      decay_rate: Any, staircase: bool = False,
                      name: str | None = None) -> Tensor:
    """learning_rate * decay_rate ** (global_step / decay_steps) (floored when staircase)."""
    with name_scope(name, "ExponentialDecay"):
        lr = _lr(learning_rate)
        p = _ratio(global_step, decay_steps, staircase, lr.dtype)
        return math_ops.multiply(lr, math_ops.pow(compare_ops.cast(decay_rate, lr.dtype), p))


def natural_exp_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                      decay_rate: Any, staircase: bool = False,
                      name: str | None = None) -> Tensor:
    """learning_rate * exp(-decay_rate * global_step / decay_steps)."""
    with name_scope(name, "NaturalExpDecay"):
        lr = _lr(learning_rate)
        p = _ratio(global_step, decay_steps, staircase, lr.dtype)
        return math_ops.multiply(lr, math_ops.exp(math_ops.multiply(
            math_ops.negative(compare_ops.cast(decay_rate, lr.dtype)), p)))


def inverse_time_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                       decay_rate: Any, staircase: bool = False,
                       name: str | None = None) -> Tensor:
    """learning_rate / (1 + decay_rate * global_step / decay_steps)."""
    with name_scope(name, "InverseTimeDecay"):
        lr = _lr(learning_rate)
        p = _ratio(global_step, decay_steps, staircase, lr.dtype)
        den = math_ops.add(1.0, math_ops.multiply(compare_ops.cast(decay_rate, lr.dtype), p))
        return math_ops.truediv(lr, den)


def polynomial_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                     end_learning_rate: Any = 0.0001, power: Any = 1.0, cycle: bool = False,
                     name: str | None = None) -> Tensor:
    """(lr - end) * (1 - step / decay_steps) ** power + end, the step capped at decay_steps
    (or, with cycle, decay_steps stretched to the next multiple past the step)."""
    with name_scope(name, "PolynomialDecay"):
        lr = _lr(learning_rate)
        dt = lr.dtype
        step = _step(global_step, dt)
        steps = compare_ops.cast(decay_steps, dt)
        if cycle:
            mult = math_ops.ceil(math_ops.truediv(step, steps))
            mult = compare_ops.where(compare_ops.equal(step, 0.0),
                                     compare_ops.cast(1.0, dt), mult)
            steps = math_ops.multiply(steps, mult)
        else:
            step = math_ops.minimum(step, steps)
        end = compare_ops.cast(end_learning_rate, dt)
        frac = math_ops.pow(math_ops.subtract(1.0, math_ops.truediv(step, steps)),
                            compare_ops.cast(power, dt))
        return math_ops.add(math_ops.multiply(math_ops.subtract(lr, end), frac), end)


def cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, alpha: float = 0.0,
                 name: str | None = None) -> Tensor:
    """lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)."""
    with name_scope(name, "CosineDecay"):
        lr = _lr(learning_rate)
        dt = lr.dtype
        steps = compare_ops.cast(decay_steps, dt)
        step = math_ops.minimum(_step(global_step, dt), steps)
        cos = math_ops.multiply(0.5, math_ops.add(1.0, math_ops.cos(
            math_ops.multiply(math.pi, math_ops.truediv(step, steps)))))
        return math_ops.multiply(lr, math_ops.add(math_ops.multiply(1.0 - alpha, cos), alpha))


def piecewise_constant(x: Any, boundaries: list[Any], values: list[Any],
                       name: str | None = None) -> Tensor:
    """values[0] while x <= boundaries[0], values[i] while boundaries[i-1] < x <=
    boundaries[i], values[-1] after the last boundary."""
    if len(values) != len(boundaries) + 1:
        raise InvalidArgumentError(
            f"piecewise_constant needs one more value than boundaries, got {len(values)} "
            f"values and {len(boundaries)} boundaries")
    with name_scope(name, "PiecewiseConstant"):
        xt = convert_to_tensor(x)
        vals = [_lr(v) if not isinstance(v, int) else convert_to_tensor(float(v), dtypes.float32)
                for v in values]
        dt = vals[0].dtype
        out = vals[-1]
        for b, v in reversed(list(zip(boundaries, vals[:-1], strict=True))):
            out = compare_ops.where(compare_ops.less_equal(xt, compare_ops.cast(b, xt.dtype)),
                                    compare_ops.cast(v, dt), out)
        return out
