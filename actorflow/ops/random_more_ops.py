"""More of TF1's random ops: `random_gamma` (shape + the broadcast shape of alpha and beta;
samples of Gamma(alpha) / beta), `random_poisson` (shape + lam's shape), and
`image.sample_distorted_bounding_box` (TF's crop sampler). Seeds follow TF1's rules
(`actorflow.graph.get_seed`), as `actorflow.ops.random_ops`; the ops are stateful. Gradients:
to beta through the division, to alpha as TF's (implicit reparameterization, the
``RandomGammaGrad`` kernel), none to lam. Kernels in `devices.kernels.random_more`.

    g = af.random_gamma([100], alpha=[1.0, 2.0], seed=1)     # [100, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Operation, Tensor, get_seed, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient, register_gradient
from actorflow.ops import array_ops, math_ops, reduction_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["random_gamma", "random_poisson", "sample_distorted_bounding_box"]


def _with_param_shape(ins: list[Tensor], a: dict) -> list:
    from actorflow.ops.static_args import static_value
    s = static_value(ins[0])
    p = ins[1]._shape
    if s is None or p is None:
        return [(a["dtype"], None)]
    return [(a["dtype"], tuple(int(d) for d in np.asarray(s).reshape(-1)) + tuple(p))]


for _op in ("RandomGamma", "RandomPoissonV2"):
    define_op(_op, infer=_with_param_shape, stateful=True)
no_gradient("RandomPoissonV2")
define_op("RandomGammaGrad", infer=lambda ins, a: [(ins[1].dtype, ins[1]._shape)])
no_gradient("RandomGammaGrad")


@register_gradient("RandomGamma")
def _random_gamma_grad(op: Operation, grad: Tensor) -> list[Any]:
    """TF's: the samples' implicit-reparameterization derivative w.r.t. alpha, summed over the
    sample dimensions."""
    from actorflow.ops.join_ops import concat
    alpha, sample = op.inputs[1], op.outputs[0]
    shp = op.inputs[0]._shape
    if shp is None or shp[0] is None:
        raise InvalidArgumentError("random_gamma's gradient needs the number of sample "
                                   "dimensions (the shape's length) known in the graph")
    lead = int(shp[0])
    a = array_ops.reshape(alpha, concat([[1] * lead, array_ops.shape(alpha)], 0)) \
        if lead else alpha
    partial = apply_op("RandomGammaGrad", [a, sample], name="RandomGammaGrad")[0]
    return [None, reduction_ops.reduce_sum(math_ops.multiply(grad, partial), list(range(lead)))]
define_op("SampleDistortedBoundingBoxV2", stateful=True, infer=lambda ins, a: [
    (ins[0].dtype, (3,)), (ins[0].dtype, (3,)), (dtypes.float32, (1, 1, 4))])
no_gradient("SampleDistortedBoundingBoxV2")


def _seeds(seed: int | None) -> dict:
    gs, os_ = get_seed(seed)
    return {"seed": int(gs), "seed2": int(os_)}


def _shape_t(shape: Any, what: str) -> Tensor:
    s = convert_to_tensor(shape, dtype=dtypes.int32) if not isinstance(shape, Tensor) else shape
    if s._shape is not None and len(s._shape) > 1:
        raise InvalidArgumentError(f"{what}: shape must be a 1-D list of sizes, got {shape}")
    return s


def random_gamma(shape: Any, alpha: Any, beta: Any = None, dtype: Any = dtypes.float32,
                 seed: int | None = None, name: str | None = None) -> Tensor:
    """Gamma(alpha, rate beta) samples of shape `shape` + broadcast(alpha, beta).shape."""
    dt = dtypes.as_dtype(dtype)
    if not dt.is_floating:
        raise InvalidArgumentError(f"random_gamma makes floats, not {dt.name}")
    with name_scope(name, "random_gamma"):
        a = convert_to_tensor(alpha, dtype=dt)
        if beta is not None:
            b = convert_to_tensor(beta, dtype=dt)
            a = math_ops.add(a, math_ops.multiply(b, 0.0))  # broadcast alpha with beta
        g = apply_op("RandomGamma", [_shape_t(shape, "random_gamma"), a],
                     {"dtype": dt, **_seeds(seed)}, name="RandomGamma")[0]
        return g if beta is None else math_ops.truediv(g, b)


def random_poisson(lam: Any, shape: Any, dtype: Any = dtypes.float32, seed: int | None = None,
                   name: str | None = None) -> Tensor:
    """Poisson(lam) samples of shape `shape` + lam.shape, as `dtype`."""
    dt = dtypes.as_dtype(dtype)
    with name_scope(name, "random_poisson"):
        r = convert_to_tensor(lam, dtype=dtypes.float32) if not isinstance(lam, Tensor) else lam
        return apply_op("RandomPoissonV2", [_shape_t(shape, "random_poisson"), r],
                        {"dtype": dt, **_seeds(seed)}, name="RandomPoissonV2")[0]


def sample_distorted_bounding_box(image_size: Any, bounding_boxes: Any, seed: int | None = None,
                                  seed2: int | None = None, min_object_covered: float = 0.1,
                                  aspect_ratio_range: Any = (0.75, 1.33),
                                  area_range: Any = (0.05, 1.0), max_attempts: int = 100,
                                  use_image_if_no_bounding_boxes: bool = False,
                                  name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(begin, size, bboxes) of a random crop for `af.slice(image, begin, size)`: TF's
    sampler (a crop of random aspect ratio and area covering at least
    `min_object_covered` of some box; after `max_attempts` misses, the whole image)."""
    ar, ar2 = (float(v) for v in aspect_ratio_range)
    lo, hi = (float(v) for v in area_range)
    if not 0 < ar <= ar2:
        raise InvalidArgumentError(f"aspect_ratio_range must be 0 < low <= high, got "
                                   f"{aspect_ratio_range}")
    if not 0 < lo <= hi <= 1:
        raise InvalidArgumentError(f"area_range must be 0 < low <= high <= 1, got {area_range}")
    if max_attempts < 1:
        raise InvalidArgumentError(f"max_attempts must be >= 1, got {max_attempts}")
    size = convert_to_tensor(image_size, dtype=dtypes.int32) \
        if not isinstance(image_size, Tensor) else image_size
    boxes = convert_to_tensor(bounding_boxes, dtype=dtypes.float32)
    cover = convert_to_tensor(float(min_object_covered), dtype=dtypes.float32) \
        if not isinstance(min_object_covered, Tensor) else min_object_covered
    seeds = _seeds(seed) if seed2 is None else {"seed": int(seed or 0), "seed2": int(seed2)}
    outs = apply_op("SampleDistortedBoundingBoxV2", [size, boxes, cover], {
        "aspect_ratio_range": [ar, ar2], "area_range": [lo, hi],
        "max_attempts": int(max_attempts),
        "use_image_if_no_bounding_boxes": bool(use_image_if_no_bounding_boxes), **seeds},
        name=name or "SampleDistortedBoundingBoxV2")
    return outs[0], outs[1], outs[2]
