"""Kernels of the resizes that are not a pair of gathers (`actorflow/image_resize.py`):
ResizeBicubic and its gradient, ResizeArea. Both are separable, so each is written as
``out[b] = Wy @ image[b] @ Wx^T`` per channel, with per-axis weight matrices (cached by
sizes and flags) built as TensorFlow builds its weights:

- bicubic: Keys' cubic convolution, its coefficients from TF's 1,024-entry table (A = -0.75
  for the legacy coordinates, -0.5 with half-pixel centres, where taps off the image are
  dropped and the rest renormalised; legacy taps are clamped to the edge);
- area: each output pixel the average of the input area it covers (partial pixels by their
  overlap), edge indices clamped.

The gradient of the bicubic resize is the transposed product, ``Wy^T @ grad @ Wx``.
Outputs are float32 (as TF's).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel

_TABLE_SIZE = 1024


@functools.lru_cache(maxsize=2)
def _coeffs(a: float) -> np.ndarray:
    """TF's table: [i, 0] the weight of the near taps at distance i / 1024, [i, 1] the far
    taps' at 1 + i / 1024."""
    x = np.arange(_TABLE_SIZE + 1, dtype=np.float64) / _TABLE_SIZE
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    xf = x + 1.0
    far = ((a * xf - 5 * a) * xf + 8 * a) * xf - 4 * a
    return np.stack([near, far], 1).astype(np.float32)


def _scale(n_in: int, n_out: int, align_corners: bool) -> float:
    if align_corners and n_out > 1:
        return (n_in - 1) / (n_out - 1)
    return n_in / n_out


@functools.lru_cache(maxsize=64)
def _bicubic_matrix(n_in: int, n_out: int, align_corners: bool, half_pixel: bool
                    ) -> np.ndarray:
    table = _coeffs(-0.5 if half_pixel else -0.75)
    scale = np.float32(_scale(n_in, n_out, align_corners))
    m = np.zeros((n_out, n_in), np.float64)
    for o in range(n_out):
        pos = (np.float32(o) + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel \
            else np.float32(o) * scale
        loc = int(np.floor(pos))
        off = int(np.rint((pos - loc) * _TABLE_SIZE))
        w = [table[off, 1], table[off, 0], table[_TABLE_SIZE - off, 0],
             table[_TABLE_SIZE - off, 1]]
        idx = [loc - 1, loc, loc + 1, loc + 2]
        if half_pixel:  # taps off the image dropped, the rest renormalised
            w = [wk if 0 <= ik < n_in else 0.0 for wk, ik in zip(w, idx, strict=True)]
            total = sum(w)
            if abs(total) >= 1000 * np.finfo(np.float32).tiny:
                w = [wk / total for wk in w]
        for wk, ik in zip(w, idx, strict=True):
            m[o, min(max(ik, 0), n_in - 1)] += wk
    return m


@functools.lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
    scale = _scale(n_in, n_out, align_corners)
    m = np.zeros((n_out, n_in), np.float64)
    for o in range(n_out):
        lo, hi = o * scale, (o + 1) * scale
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            w = min(i + 1, hi) - max(i, lo)
            m[o, min(max(i, 0), n_in - 1)] += w / scale
    return m


def _size(k: KernelContext, images: Any, size: Any) -> tuple[int, int]:
    if images.ndim != 4:
        raise InvalidArgumentError(f"'{k.name}': images must be 4-D [batch, height, width, "
                                   f"channels], got shape {list(images.shape)}")
    oh, ow = (int(v) for v in np.asarray(size).reshape(-1))
    if oh <= 0 or ow <= 0:
        raise InvalidArgumentError(f"'{k.name}': the new size must be positive, got "
                                   f"{[oh, ow]}")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise InvalidArgumentError(f"'{k.name}': cannot resize an empty image "
                                   f"{list(images.shape)}")
    return oh, ow


def _apply(wy: np.ndarray, x: np.ndarray, wx: np.ndarray) -> np.ndarray:
    return np.einsum("oh,bhwc,pw->bopc", wy, x, wx, optimize=True)


@register_kernel("ResizeBicubic", device_types=("CPU",))
def _resize_bicubic(k: KernelContext) -> Any:
    ac, hp = bool(k.attrs.get("align_corners")), bool(k.attrs.get("half_pixel_centers"))

    def compute(images: Any, size: Any) -> tuple[Any]:
        oh, ow = _size(k, images, size)
        _, h, w, _ = images.shape
        out = _apply(_bicubic_matrix(h, oh, ac, hp), images.astype(np.float64),
                     _bicubic_matrix(w, ow, ac, hp))
        return (out.astype(np.float32),)
    return compute


@register_kernel("ResizeBicubicGrad", device_types=("CPU",))
def _resize_bicubic_grad(k: KernelContext) -> Any:
    ac, hp = bool(k.attrs.get("align_corners")), bool(k.attrs.get("half_pixel_centers"))

    def compute(grads: Any, original: Any) -> tuple[Any]:
        _, h, w, _ = original.shape
        _, oh, ow, _ = grads.shape
        g = np.einsum("oh,bopc,pw->bhwc", _bicubic_matrix(h, oh, ac, hp),
                      grads.astype(np.float64), _bicubic_matrix(w, ow, ac, hp), optimize=True)
        return (g.astype(original.dtype),)
    return compute


@register_kernel("ResizeArea", device_types=("CPU",))
def _resize_area(k: KernelContext) -> Any:
    ac = bool(k.attrs.get("align_corners"))

    def compute(images: Any, size: Any) -> tuple[Any]:
        oh, ow = _size(k, images, size)
        _, h, w, _ = images.shape
        out = _apply(_area_matrix(h, oh, ac), images.astype(np.float64),
                     _area_matrix(w, ow, ac))
        return (out.astype(np.float32),)
    return compute
