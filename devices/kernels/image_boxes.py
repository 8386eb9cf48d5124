"""Image kernels of boxes and colour (CPU, NumPy): non-max suppression, crop-and-resize
(bilinear or nearest) and its gradients for the image and the boxes, drawing box outlines,
RGB <-> HSV. Boxes are [y_min, x_min, y_max,
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


def _axis(lo: float, hi: float, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions of one box axis (TF's: the box's ends map to pixel centres 0 and
    size - 1) and d position / d (lo, hi) per sample, [n, 2]. In float32, in TF's order of
    operations: a position that lands exactly on a pixel centre there lands on it here too
    (where the bilinear weights, and so the boxes' gradient, change)."""
    f = np.float32
    lo, hi = f(lo), f(hi)
    if n > 1:
        ratio = f(size - 1) / f(n - 1)
        i = np.arange(n, dtype=f)
        pos = lo * f(size - 1) + i * ((hi - lo) * ratio)
        d = np.stack([f(size - 1) - i * ratio, i * ratio], 1)
    else:
        pos = np.array([f(0.5) * (lo + hi) * f(size - 1)], f)
        d = np.full((1, 2), 0.5 * (size - 1), f)
    return pos.astype(np.float64), d.astype(np.float64)


def _crop_boxes(k: KernelContext, image_shape: tuple, boxes: Any, box_ind: Any, ch: int,
                cw: int) -> Any:
    """For each box: (n, image index, ys, xs, d ys, d xs, valid mask [ch, cw]), positions
    out of the image being invalid (they get the extrapolation value)."""
    b_, h, w, _ = image_shape
    bx, idx = np.asarray(boxes, np.float32), np.asarray(box_ind)
    if bx.ndim != 2 or bx.shape[1] != 4 or idx.shape != (bx.shape[0],):
        raise InvalidArgumentError(f"'{k.name}': boxes must be [num_boxes, 4] and box_ind "
                                   f"[num_boxes], got {list(bx.shape)} and {list(idx.shape)}")
    for n, (y1, x1, y2, x2) in enumerate(bx):
        b = int(idx[n])
        if not 0 <= b < b_:
            raise InvalidArgumentError(f"box_ind {b} is out of range [0, {b_})")
        ys, dys = _axis(y1, y2, ch, h)
        xs, dxs = _axis(x1, x2, cw, w)
        valid = ((ys >= 0) & (ys <= h - 1))[:, None] & ((xs >= 0) & (xs <= w - 1))[None, :]
        yield n, b, ys, xs, dys, dxs, valid


def _lerp_index(pos: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF's bilinear corners: floor and ceil of the position (equal on a pixel centre), and
    the fraction past the floor."""
    lo = np.floor(pos).astype(int).clip(0, size - 1)
    hi = np.ceil(pos).astype(int).clip(0, size - 1)
    return lo, hi, pos - np.floor(pos)


def _nearest(pos: np.ndarray, size: int) -> np.ndarray:
    """The nearest pixel, halves rounded away from zero (C's roundf, as TF)."""
    return np.floor(pos + 0.5).astype(int).clip(0, size - 1)


@_cpu("CropAndResize")
def _crop_and_resize(k: KernelContext) -> Any:
    nearest = k.attrs.get("method", "bilinear") == "nearest"
    extrap = float(k.attrs.get("extrapolation_value", 0.0))

    def compute(image: Any, boxes: Any, box_ind: Any, crop_size: Any) -> tuple:
        img = np.asarray(image, np.float32)
        ch, cw = (int(v) for v in np.asarray(crop_size))
        _, h, w, c = img.shape
        out = np.full((np.shape(boxes)[0], ch, cw, c), extrap, np.float32)
        for n, b, ys, xs, _, _, valid in _crop_boxes(k, img.shape, boxes, box_ind, ch, cw):
            im = img[b]
            if nearest:
                yi, xi = _nearest(ys, h), _nearest(xs, w)
                crop = im[yi][:, xi]
            else:
                y0, y1, fy = _lerp_index(ys, h)
                x0, x1, fx = _lerp_index(xs, w)
                dy, dx = fy[:, None, None], fx[None, :, None]
                top = im[y0][:, x0] * (1 - dx) + im[y0][:, x1] * dx
                bot = im[y1][:, x0] * (1 - dx) + im[y1][:, x1] * dx
                crop = top * (1 - dy) + bot * dy
            out[n] = np.where(valid[:, :, None], crop, extrap)
        return (out,)
    return compute


@_cpu("CropAndResizeGradImage")
def _crop_and_resize_grad_image(k: KernelContext) -> Any:
    """d loss / d image: each crop pixel's gradient spread back onto the image pixels it
    read, with the weights it read them with (bilinear), or onto the nearest one."""
    nearest = k.attrs.get("method", "bilinear") == "nearest"
    dt = k.out_dtypes[0].np

    def compute(grads: Any, boxes: Any, box_ind: Any, image_size: Any) -> tuple:
        g = np.asarray(grads, np.float64)
        shape = tuple(int(v) for v in np.asarray(image_size))
        _, h, w, _ = shape
        out = np.zeros(shape, np.float64)
        for n, b, ys, xs, _, _, valid in _crop_boxes(k, shape, boxes, box_ind, *g.shape[1:3]):
            gn = g[n] * valid[:, :, None]
            if nearest:
                yi, xi = _nearest(ys, h), _nearest(xs, w)
                np.add.at(out[b], (yi[:, None], xi[None, :]), gn)
                continue
            y0, y1, fy = _lerp_index(ys, h)
            x0, x1, fx = _lerp_index(xs, w)
            dy, dx = fy[:, None, None], fx[None, :, None]
            for yy, wy in ((y0, 1 - dy), (y1, dy)):
                for xx, wx in ((x0, 1 - dx), (x1, dx)):
                    np.add.at(out[b], (yy[:, None], xx[None, :]), gn * wy * wx)
        return (out.astype(dt),)
    return compute


@_cpu("CropAndResizeGradBoxes")
def _crop_and_resize_grad_boxes(k: KernelContext) -> Any:
    """d loss / d boxes: how each crop pixel moves with its sample position, times how the
    position moves with the box's ends; bilinear sampling's, also for "nearest" (whose own
    is zero almost everywhere: TF's approximation)."""
    def compute(grads: Any, image: Any, boxes: Any, box_ind: Any) -> tuple:
        g = np.asarray(grads, np.float64)
        img = np.asarray(image, np.float64)
        _, h, w, _ = img.shape
        out = np.zeros((np.shape(boxes)[0], 4), np.float64)
        for n, b, ys, xs, dys, dxs, valid in _crop_boxes(k, img.shape, boxes, box_ind,
                                                          *g.shape[1:3]):
            im = img[b]
            y0, y1, fy = _lerp_index(ys, h)
            x0, x1, fx = _lerp_index(xs, w)
            dy, dx = fy[:, None, None], fx[None, :, None]
            tl, tr = im[y0][:, x0], im[y0][:, x1]
            bl, br = im[y1][:, x0], im[y1][:, x1]
            d_y = (bl * (1 - dx) + br * dx) - (tl * (1 - dx) + tr * dx)   # d crop / d ys
            d_x = (tr - tl) * (1 - dy) + (br - bl) * dy                   # d crop / d xs
            gn = g[n] * valid[:, :, None]
            gy = (gn * d_y).sum((1, 2))  # per crop row
            gx = (gn * d_x).sum((0, 2))  # per crop column
            out[n] = [gy @ dys[:, 0], gx @ dxs[:, 0], gy @ dys[:, 1], gx @ dxs[:, 1]]
        return (out.astype(np.float32),)
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
