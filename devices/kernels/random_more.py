"""Kernels of the random ops beyond uniform/normal (CPU, each node's seeded generator from
`devices.kernels.random.node_draws`): ``RandomGamma`` (shape + alpha's shape, NumPy's gamma
sampler), ``RandomPoissonV2`` (shape + rate's shape), ``SampleDistortedBoundingBoxV2`` (TF's
rejection sampler: up to `max_attempts` crops of a random aspect ratio and area, kept when
they cover at least `min_object_covered` of some box; the whole image otherwise), and
``Qr`` (reduced QR, NumPy's, for the orthogonal initializer).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.random import node_draws
from devices.kernels.registry import KernelContext, register_kernel


def _per_parameter(k: KernelContext, draw: Any) -> Any:
    """A kernel of (shape, param) drawing `draw(generator, params)` with the params broadcast
    to ``shape + param.shape`` (TF's output shape), cast to the output dtype."""
    get = node_draws(k)
    dt = np.dtype(k.out_dtypes[0].np)

    def compute(shape: Any, param: Any) -> tuple:
        a = np.asarray(param, dtype=np.float64)
        s = tuple(int(d) for d in np.asarray(shape).reshape(-1))
        return (np.asarray(draw(get()._g, np.broadcast_to(a, s + a.shape)), dtype=dt),)
    return compute


@register_kernel("RandomGamma", device_types=("CPU",), stateful=True)
def _gamma(k: KernelContext) -> Any:
    return _per_parameter(k, lambda g, alpha: g.standard_gamma(alpha))


@register_kernel("RandomPoissonV2", device_types=("CPU",), stateful=True)
def _poisson(k: KernelContext) -> Any:
    return _per_parameter(k, lambda g, rate: g.poisson(rate))


@register_kernel("Qr", device_types=("CPU",))
def _qr(k: KernelContext) -> Any:
    full = bool(k.attrs.get("full_matrices", False))
    return lambda a: tuple(np.linalg.qr(np.asarray(a), mode="complete" if full else "reduced"))


def _crop(rng: np.random.Generator, h: int, w: int, boxes: np.ndarray, min_cover: float,
          ar: tuple[float, float], area: tuple[float, float], attempts: int
          ) -> tuple[int, int, int, int] | None:
    """(y, x, height, width) of an accepted crop, or None."""
    for _ in range(attempts):
        aspect = rng.uniform(ar[0], ar[1])
        min_area, max_area = area[0] * h * w, area[1] * h * w
        min_h = int(round(math.sqrt(min_area / aspect)))
        max_h = int(round(math.sqrt(max_area / aspect)))
        if round(max_h * aspect) > w:
            max_h = int((w + 0.5 - 1e-7) / aspect)
        max_h = min(max_h, h)
        min_h = min(min_h, max_h)
        ch = min_h + (int(rng.integers(0, max_h - min_h + 1)) if max_h > min_h else 0)
        cw = int(round(ch * aspect))
        if cw * ch < min_area:
            ch += 1
            cw = int(round(ch * aspect))
        if not (min_area <= cw * ch <= max_area) or cw > w or ch > h or cw <= 0 or ch <= 0:
            continue
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        for b in boxes:  # [ymin, xmin, ymax, xmax] in pixels
            iy = max(0.0, min(y + ch, b[2]) - max(y, b[0]))
            ix = max(0.0, min(x + cw, b[3]) - max(x, b[1]))
            barea = (b[2] - b[0]) * (b[3] - b[1])
            if barea > 0 and iy * ix / barea >= min_cover:
                return y, x, ch, cw
    return None


@register_kernel("SampleDistortedBoundingBoxV2", device_types=("CPU",), stateful=True)
def _sample_box(k: KernelContext) -> Any:
    get = node_draws(k)
    ar = tuple(float(v) for v in k.attrs["aspect_ratio_range"])
    area = tuple(float(v) for v in k.attrs["area_range"])
    attempts = int(k.attrs["max_attempts"])
    use_image = bool(k.attrs["use_image_if_no_bounding_boxes"])
    dt = np.dtype(k.out_dtypes[0].np)

    def compute(image_size: Any, bounding_boxes: Any, min_object_covered: Any) -> tuple:
        size = np.asarray(image_size).reshape(-1)
        if size.size != 3:
            raise InvalidArgumentError(f"sample_distorted_bounding_box: image_size must be "
                                       f"[height, width, channels], got {size.tolist()}")
        h, w = int(size[0]), int(size[1])
        bx = np.asarray(bounding_boxes, dtype=np.float64).reshape(-1, 4)
        if bx.size == 0:
            if not use_image:
                raise InvalidArgumentError(
                    "No bounding boxes provided as input. One must enable "
                    "use_image_if_no_bounding_boxes=True if no bounding boxes are provided.")
            bx = np.array([[0.0, 0.0, 1.0, 1.0]])
        if ((bx < 0) | (bx > 1)).any() or (bx[:, 2] < bx[:, 0]).any() or \
                (bx[:, 3] < bx[:, 1]).any():
            raise InvalidArgumentError(f"sample_distorted_bounding_box: boxes must be "
                                       f"[ymin, xmin, ymax, xmax] within [0, 1], got "
                                       f"{bx.tolist()}")
        px = bx * np.array([h, w, h, w])
        got = _crop(get()._g, h, w, px, float(np.asarray(min_object_covered)), ar, area,
                    attempts)
        y, x, ch, cw = got if got is not None else (0, 0, h, w)
        begin = np.array([y, x, 0], dtype=dt)
        sz = np.array([ch, cw, -1], dtype=dt)
        box = np.array([[[y / h, x / w, (y + ch) / h, (x + cw) / w]]], dtype=np.float32)
        return begin, sz, box
    return compute


@register_kernel("RandomGammaGrad", device_types=("CPU",))
def _gamma_grad(k: KernelContext) -> Any:
    """d sample / d alpha of standard Gamma(alpha) samples, by implicit reparameterization:
    -(dF/dalpha)(x; alpha) / f(x; alpha), F the regularized incomplete gamma function
    (SciPy's; dF/dalpha by a central difference) and f the density."""
    from scipy import special

    def compute(alpha: Any, sample: Any) -> tuple:
        a = np.asarray(alpha, dtype=np.float64)
        x = np.asarray(sample, dtype=np.float64)
        a, x = np.broadcast_arrays(a, x)
        h = 1e-5 * np.maximum(a, 1.0)
        dfa = (special.gammainc(a + h, x) - special.gammainc(a - h, x)) / (2 * h)
        logpdf = (a - 1) * np.log(np.maximum(x, 1e-300)) - x - special.gammaln(a)
        out = -dfa / np.exp(logpdf)
        return (np.where(x > 0, out, 0.0).astype(np.asarray(sample).dtype),)
    return compute
