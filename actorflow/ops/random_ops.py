"""Random ops: normal, uniform (float and int), truncated normal, shuffle, categorical.

Seeds follow TF1's rules (`actorflow.graph.get_seed`): every op records a (graph seed, op seed)
pair as its ``seed`` and ``seed2`` attributes. Its kernel owns a generator seeded from both when
the node is instantiated, so each run draws new numbers, and a graph rebuilt after
``af.set_random_seed(s)`` draws the same sequence again. Without any seed, each op gets fresh
seeds.

The ops are stateful (never merged by CSE nor folded into constants) and not differentiable.
A static shape and Python-number mean/stddev (or min/max) are attributes, so ``random_normal``
is usually a single node; tensors for them add Mul/Add nodes through which gradients flow to
mean and stddev, as in TF.

    af.set_random_seed(1)
    w = af.Variable(af.truncated_normal((784, 10), stddev=0.1))
    noise = af.random_uniform(af.shape(x), -1.0, 1.0)      # shape known at run time
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, TensorShape, get_seed, name_scope
from actorflow.op_def import (
    apply_op,
    constant_value,
    convert_to_tensor,
    define_op,
    no_gradient,
    same_as_input,
)
from actorflow.ops.static_args import has_tensor, partial_shape, static_value
from devices import dtypes
from devices.dtypes import DType
from devices.errors import InvalidArgumentError

__all__ = ["random_normal", "random_uniform", "truncated_normal", "random_shuffle",
           "multinomial", "categorical"]


def _random_infer(ins: list[Tensor], attrs: dict) -> list:
    dt = dtypes.as_dtype(attrs["dtype"])
    s = attrs.get("shape")
    if s is not None:
        return [(dt, tuple(int(d) for d in s))]
    dims = partial_shape(ins[0])
    return [(dt, None if dims is None else tuple(dims))]


def _multinomial_infer(ins: list[Tensor], attrs: dict) -> list:
    logits = ins[0]
    if not logits.dtype.is_floating:
        raise InvalidArgumentError(f"categorical: logits '{logits.name}' must be floats, got "
                                   f"{logits.dtype.name}")
    if logits._shape is not None and len(logits._shape) != 2:
        raise InvalidArgumentError(
            f"categorical: logits '{logits.name}' must be 2-D [batch, classes], got shape "
            f"{logits._shape}")
    batch = None if logits._shape is None else logits._shape[0]
    return [(dtypes.as_dtype(attrs["output_dtype"]), (batch, attrs["num_samples"]))]


for _t in ("RandomStandardNormal", "RandomUniform", "RandomUniformInt", "TruncatedNormal"):
    define_op(_t, infer=_random_infer, stateful=True)
    no_gradient(_t)
define_op("RandomShuffle", infer=same_as_input, stateful=True)
define_op("Multinomial", infer=_multinomial_infer, stateful=True)
no_gradient("RandomShuffle")
no_gradient("Multinomial")


def _shape_arg(shape: Any, what: str) -> tuple[list[int] | None, Tensor | None]:
    """(static dims, None) or (None, a 1-D int tensor known only at run time)."""
    if isinstance(shape, TensorShape):
        if not shape.is_fully_defined():
            raise InvalidArgumentError(f"{what}: shape {shape} is not fully known; pass "
                                       f"af.shape(x) for a shape known at run time")
        shape = shape.as_list()
    if has_tensor(shape):
        t = convert_to_tensor(shape)
        c = constant_value(t)
        if c is None:
            if not t.dtype.is_integer or (t._shape is not None and len(t._shape) != 1):
                raise InvalidArgumentError(
                    f"{what}: a shape tensor must be a 1-D int tensor, got '{t.name}' of "
                    f"dtype {t.dtype.name} and shape {t._shape}")
            return None, t
        shape = c
    try:
        arr = np.asarray(shape)
    except ValueError:
        arr = np.asarray(None)
    if arr.ndim > 1 or arr.dtype.kind not in "iu" and arr.size:
        raise InvalidArgumentError(f"{what}: shape must be a list of non-negative ints (or a "
                                   f"1-D int tensor), got {shape!r}")
    dims = [int(d) for d in arr.reshape(-1)]
    if any(d < 0 for d in dims):
        raise InvalidArgumentError(f"{what}: shape {dims} has a negative dimension")
    return dims, None


def _float_dtype(dtype: Any, what: str) -> DType:
    dt = dtypes.as_dtype(dtype)
    if not dt.is_floating:
        raise InvalidArgumentError(f"{what} makes floats; dtype {dt.name} is not one (use "
                                   f"af.random_uniform with maxval for integers)")
    return dt


def _scalar(v: Any) -> float | None:
    """A Python float for a number known at build time, None for a run-time tensor."""
    sv = static_value(v) if not isinstance(v, Tensor) or constant_value(v) is not None else None
    if sv is None:
        return None
    if sv.size != 1:
        raise InvalidArgumentError(f"expected a scalar, got {v!r}")
    return float(sv.reshape(()))


def _random(op: str, shape: Any, dt: DType, seed: int | None, name: str,
            attrs: dict[str, Any] | None = None, extra: list[Tensor] | None = None) -> Tensor:
    dims, shape_t = _shape_arg(shape, name)
    graph_seed, op_seed = get_seed(seed)
    a = {"dtype": dt, "seed": int(graph_seed), "seed2": int(op_seed), **(attrs or {})}
    ins = list(extra or [])
    if dims is not None:
        a["shape"] = dims
    else:
        ins.insert(0, shape_t)  # type: ignore[arg-type]
    return apply_op(op, ins, a, name=name)[0]


def _affine(op: str, shape: Any, loc: Any, scale: Any, dt: DType, seed: int | None,
            name: str) -> Tensor:
    """``scale * draw + loc``: in the kernel when both are numbers, as graph ops otherwise."""
    lv, sv = _scalar(loc), _scalar(scale)
    if lv is not None and sv is not None:
        return _random(op, shape, dt, seed, name, {"scale": sv, "offset": lv})
    from actorflow.ops import math_ops
    with name_scope(name):
        x = _random(op, shape, dt, seed, op)
        s = convert_to_tensor(scale, dtype=dt) if sv is None or sv != 1.0 else None
        lt = convert_to_tensor(loc, dtype=dt) if lv is None or lv != 0.0 else None
        if s is not None:
            x = math_ops.multiply(x, s)
        if lt is not None:
            x = math_ops.add(x, lt)
        return x


def random_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = dtypes.float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Normally distributed values of `shape` with `mean` and `stddev`."""
    dt = _float_dtype(dtype, "random_normal")
    return _affine("RandomStandardNormal", shape, mean, stddev, dt, seed,
                   name or "random_normal")


def truncated_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0,
                     dtype: Any = dtypes.float32, seed: int | None = None,
                     name: str | None = None) -> Tensor:
    """Normal values of `shape`, redrawn until within two standard deviations of the mean."""
    dt = _float_dtype(dtype, "truncated_normal")
    return _affine("TruncatedNormal", shape, mean, stddev, dt, seed, name or "truncated_normal")


def random_uniform(shape: Any, minval: Any = 0, maxval: Any = None, dtype: Any = dtypes.float32,
                   seed: int | None = None, name: str | None = None) -> Tensor:
    """Uniform values of `shape` in [minval, maxval): floats (maxval defaults to 1) or ints
    (maxval required)."""
    dt = dtypes.as_dtype(dtype)
    name = name or "random_uniform"
    if dt.is_floating:
        lo, hi = _scalar(minval), _scalar(1.0 if maxval is None else maxval)
        if lo is not None and hi is not None:
            return _random("RandomUniform", shape, dt, seed, name,
                           {"scale": hi - lo, "offset": lo})
        from actorflow.ops import math_ops
        with name_scope(name):
            lo_t = convert_to_tensor(minval, dtype=dt)
            hi_t = convert_to_tensor(1.0 if maxval is None else maxval, dtype=dt)
            u = _random("RandomUniform", shape, dt, seed, "RandomUniform")
            return math_ops.add(math_ops.multiply(u, math_ops.subtract(hi_t, lo_t)), lo_t)
    if not dt.is_integer:
        raise InvalidArgumentError(f"random_uniform makes floats or ints, not {dt.name}")
    if maxval is None:
        raise InvalidArgumentError(f"random_uniform with dtype {dt.name} needs maxval (the "
                                   f"exclusive upper bound)")
    lo_v, hi_v = _int_scalar(minval), _int_scalar(maxval)
    if lo_v is not None and hi_v is not None:
        if lo_v >= hi_v:
            raise InvalidArgumentError(f"random_uniform needs minval < maxval, got [{lo_v}, "
                                       f"{hi_v})")
        if lo_v < dt.min or hi_v - 1 > dt.max:
            raise InvalidArgumentError(f"random_uniform: [{lo_v}, {hi_v}) does not fit "
                                       f"{dt.name}")
        return _random("RandomUniformInt", shape, dt, seed, name,
                       {"minval": lo_v, "maxval": hi_v})
    bounds = [convert_to_tensor(minval, dtype=dt), convert_to_tensor(maxval, dtype=dt)]
    return _random("RandomUniformInt", shape, dt, seed, name, extra=bounds)


def _int_scalar(v: Any) -> int | None:
    sv = static_value(v) if not isinstance(v, Tensor) or constant_value(v) is not None else None
    if sv is None:
        return None
    if sv.size != 1 or sv.dtype.kind not in "iu":
        raise InvalidArgumentError(f"random_uniform: integer bounds must be ints, got {v!r}")
    return int(sv.reshape(()))


def random_shuffle(value: Any, seed: int | None = None, name: str | None = None) -> Tensor:
    """`value` with its first dimension randomly permuted."""
    x = convert_to_tensor(value)
    graph_seed, op_seed = get_seed(seed)
    return apply_op("RandomShuffle", [x], {"seed": int(graph_seed), "seed2": int(op_seed)},
                    name=name or "RandomShuffle")[0]


def categorical(logits: Any, num_samples: int, dtype: Any = None, seed: int | None = None,
                name: str | None = None) -> Tensor:
    """`num_samples` class indices per row of `logits` ([batch, classes], unnormalised log
    probabilities), as a [batch, num_samples] int64 tensor (or `dtype`)."""
    x = convert_to_tensor(logits)
    n = int(num_samples)
    if n < 0:
        raise InvalidArgumentError(f"categorical: num_samples must be >= 0, got {n}")
    out = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    if out not in (dtypes.int32, dtypes.int64):
        raise InvalidArgumentError(f"categorical: dtype must be int32 or int64, got {out.name}")
    graph_seed, op_seed = get_seed(seed)
    return apply_op("Multinomial", [x], {"num_samples": n, "output_dtype": out,
                                         "seed": int(graph_seed), "seed2": int(op_seed)},
                    name=name or "Multinomial")[0]


def multinomial(logits: Any, num_samples: int, seed: int | None = None,
                name: str | None = None, output_dtype: Any = None) -> Tensor:
    """TF1's name for `categorical`."""
    return categorical(logits, num_samples, dtype=output_dtype, seed=seed, name=name)
