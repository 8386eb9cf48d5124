"""Image kernels of boxes and colour (CPU, NumPy): non-max suppression, crop-and-resize
(bilinear or nearest), drawing box outlines, RGB <-> HSV. Boxes are [y_min, x_min, y_max,
x_max]; crop/draw boxes are normalized to [0, 1] of the image's height and width."""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _cpu(op: str) -> Any:
    return register_kernel(op, device_types=("CPU",))


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    y0, x0 = np.minimum(box[0], box[2]), np.minimum(box[1], box[3])
    y1, x1 = np.maximum(box[0], box[2]), np.maximum(box[1], box[3])
    oy0, ox0 = np.minimum(others[:, 0], others[:, 2]), np.minimum(others[:, 1], others[:, 3])
    oy1, ox1 = np.maximum(others[:, 0], others[:, 2]), np.maximum(others[:, 1], others[:, 3])
    ih = np.clip(np.minimum(y1, oy1) - np.maximum(y0, oy0), 0, None)
    iw = np.clip(np.minimum(x1, ox1) - np.maximum(x0, ox0), 0, None)
    inter = ih * iw
    union = (y1 - y0) * (x1 - x0) + (oy1 - oy0) * (ox1 - ox0) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@_cpu("NonMaxSuppressionV3")
def _nms(k: KernelContext) -> Any:
    def compute(boxes: Any, scores: Any, max_out: Any, iou_thr: Any, score_thr: Any) -> tuple:
        b, s = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
        if b.ndim != 2 or b.shape[1] != 4 or s.shape != (b.shape[0],):
            raise InvalidArgumentError(f"non_max_suppression takes boxes [n, 4] and scores "
                                       f"[n], got {list(b.shape)} and {list(s.shape)}")
        order = [i for i in np.argsort(-s, kind="stable") if s[i] > float(score_thr)]
        keep: list[int] = []
        limit, thr = int(max_out), float(iou_thr)
        for i in order:
            if len(keep) >= limit:
                break
            if not keep or (_iou(b[i], b[keep]) <= thr).all():
                keep.append(int(i))
        return (np.asarray(keep, np.int32),)
    return compute


@_cpu("CropAndResize")
def _crop_and_resize(k: KernelContext) -> Any:
    nearest = k.attrs.get("method", "bilinear") == "nearest"
    extrap = float(k.attrs.get("extrapolation_value", 0.0))

    def compute(image: Any, boxes: Any, box_ind: Any, crop_size: Any) -> tuple:
        img = np.asarray(image, np.float32)
        bx, idx = np.asarray(boxes, np.float64), np.asarray(box_ind)
        ch, cw = (int(v) for v in np.asarray(crop_size))
        _, h, w, c = img.shape
        out = np.full((bx.shape[0], ch, cw, c), extrap, np.float32)
        for n, (y1, x1, y2, x2) in enumerate(bx):
            b = int(idx[n])
            if not 0 <= b < img.shape[0]:
                raise InvalidArgumentError(f"box_ind {b} is out of range [0, {img.shape[0]})")
            ys = (y1 * (h - 1) + np.arange(ch) * ((y2 - y1) * (h - 1) / (ch - 1))
                  if ch > 1 else np.array([0.5 * (y1 + y2) * (h - 1)]))
            xs = (x1 * (w - 1) + np.arange(cw) * ((x2 - x1) * (w - 1) / (cw - 1))
                  if cw > 1 else np.array([0.5 * (x1 + x2) * (w - 1)]))
            vy, vx = (ys >= 0) & (ys <= h - 1), (xs >= 0) & (xs <= w - 1)
            if nearest:
                yi, xi = np.rint(ys).astype(int).clip(0, h - 1), np.rint(xs).astype(
                    int).clip(0, w - 1)
                crop = img[b][yi][:, xi]
            else:
                y0 = np.floor(ys).astype(int).clip(0, h - 1)
                x0 = np.floor(xs).astype(int).clip(0, w - 1)
                y1i, x1i = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
                dy, dx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
                im = img[b]
                top = im[y0][:, x0] * (1 - dx) + im[y0][:, x1i] * dx
                bot = im[y1i][:, x0] * (1 - dx) + im[y1i][:, x1i] * dx
                crop = top * (1 - dy) + bot * dy
            mask = vy[:, None] & vx[None, :]
            out[n] = np.where(mask[:, :, None], crop, extrap)
        return (out,)
    return compute


_COLORS = np.float32([[1, 1, 0, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 1, 0, 1],
                      [0.5, 0, 0.5, 1], [0.5, 0.5, 0, 1], [0.5, 0, 0, 1], [0, 0, 0.5, 1],
                      [0, 1, 1, 1], [1, 0, 1, 1]])


@_cpu("DrawBoundingBoxesV2")
def _draw(k: KernelContext) -> Any:
    def compute(images: Any, boxes: Any, colors: Any) -> tuple:
        out = np.array(images, copy=True)
        bx = np.asarray(boxes, np.float64)
        cols = np.asarray(colors, np.float32) if np.size(colors) else _COLORS
        _, h, w, c = out.shape
        for i in range(out.shape[0]):
            for j, (y1, x1, y2, x2) in enumerate(bx[i]):
                col = cols[j % len(cols)][:c].astype(out.dtype)
                t, lft = int(np.clip(y1 * (h - 1), 0, h - 1)), int(np.clip(x1 * (w - 1), 0, w - 1))
                bt, r = int(np.clip(y2 * (h - 1), 0, h - 1)), int(np.clip(x2 * (w - 1), 0, w - 1))
                if t > bt or lft > r:
                    continue
                out[i, t, lft:r + 1] = col
                out[i, bt, lft:r + 1] = col
                out[i, t:bt + 1, lft] = col
                out[i, t:bt + 1, r] = col
        return (out,)
    return compute


@_cpu("RGBToHSV")
def _rgb_to_hsv(k: KernelContext) -> Any:
    def compute(x: Any) -> tuple:
        rgb = np.asarray(x)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        v = rgb.max(-1)
        rng = v - rgb.min(-1)
        s = np.where(v > 0, rng / np.where(v > 0, v, 1), 0)
        safe = np.where(rng > 0, rng, 1)
        h = np.where(v == r, (g - b) / safe, np.where(v == g, 2 + (b - r) / safe,
                                                      4 + (r - g) / safe))
        h = np.where(rng > 0, (h / 6.0) % 1.0, 0)
        return (np.stack([h, s, v], -1).astype(rgb.dtype),)
    return compute


@_cpu("HSVToRGB")
def _hsv_to_rgb(k: KernelContext) -> Any:
    def compute(x: Any) -> tuple:
        hsv = np.asarray(x)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        h6 = (h % 1.0) * 6.0
        c = v * s
        xx = c * (1 - np.abs(h6 % 2 - 1))
        m = v - c
        z = np.zeros_like(c)
        sector = np.floor(h6).astype(int) % 6
        parts = [(c, xx, z), (xx, c, z), (z, c, xx), (z, xx, c), (xx, z, c), (c, z, xx)]
        rgb = np.zeros(hsv.shape, hsv.dtype)
        for i, (a, bb, cc) in enumerate(parts):
            sel = sector == i
            rgb[..., 0] = np.where(sel, a + m, rgb[..., 0])
            rgb[..., 1] = np.where(sel, bb + m, rgb[..., 1])
            rgb[..., 2] = np.where(sel, cc + m, rgb[..., 2])
        return (rgb,)
    return compute
