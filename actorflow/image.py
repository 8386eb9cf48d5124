"""``af.image``: the image ops TF1 training programs put in their graphs (CIFAR-10 style
distortions and standardisation), for images [height, width, channels] or batches
[batch, height, width, channels]:

    img = af.image.random_flip_left_right(af.random_crop(img, [24, 24, 3]))
    img = af.image.random_brightness(img, max_delta=63)
    img = af.image.per_image_standardization(img)

Built from existing ops (gradients flow through the deterministic ones); random choices
come from the random ops, seeded as they are. `resize_images` also takes images whose height
and width are known only when the step runs (a decoded file). The file decoders and encoders
(decode_png/jpeg/bmp/gif/image, encode_png/jpeg) come from `ops/image_io_ops.py`.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, index_ops, math_ops, random_ops, reduction_ops
from actorflow.ops.image_io_ops import (  # noqa: F401  (af.image's decoders and encoders)
    decode_bmp,
    decode_gif,
    decode_image,
    decode_jpeg,
    decode_png,
    encode_jpeg,
    encode_png,
)
from actorflow.ops.scan_sort_ops import reverse
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["per_image_standardization", "flip_left_right", "flip_up_down",
           "random_flip_left_right", "random_flip_up_down", "random_brightness",
           "random_contrast", "adjust_brightness", "adjust_contrast",
           "resize_image_with_crop_or_pad", "convert_image_dtype", "random_crop",
           "central_crop", "rgb_to_grayscale", "resize_images", "resize_bilinear",
           "resize_nearest_neighbor", "resize_bicubic", "resize_area", "ResizeMethod",
           "decode_image", "decode_png", "decode_jpeg", "decode_bmp", "decode_gif",
           "encode_png", "encode_jpeg"]


def _rank(x: Tensor, what: str) -> int:
    r = x.shape.rank
    if r not in (3, 4):
        raise InvalidArgumentError(f"{what} needs an image [h, w, c] or a batch [n, h, w, c], "
                                   f"got shape {x.shape}")
    return int(r)


def per_image_standardization(image: Any) -> Tensor:
    """(x - mean) / max(stddev, 1 / sqrt(number of elements)), per image."""
    with name_scope(None, "per_image_standardization"):
        x = compare_ops.cast(convert_to_tensor(image), dtypes.float32)
        r = _rank(x, "per_image_standardization")
        axes = [-1, -2, -3]
        mean = reduction_ops.reduce_mean(x, axes, keepdims=True)
        var = reduction_ops.reduce_mean(math_ops.square(math_ops.subtract(x, mean)), axes,
                                        keepdims=True)
        n = compare_ops.cast(reduction_ops.reduce_prod(
            index_ops.strided_slice(array_ops.shape(x), [r - 3], [r], [1])), dtypes.float32)
        floor = math_ops.rsqrt(n)
        return math_ops.truediv(math_ops.subtract(x, mean),
                                math_ops.maximum(math_ops.sqrt(var), floor))


def flip_left_right(image: Any) -> Tensor:
    x = convert_to_tensor(image)
    return reverse(x, [_rank(x, "flip_left_right") - 2])


def flip_up_down(image: Any) -> Tensor:
    x = convert_to_tensor(image)
    return reverse(x, [_rank(x, "flip_up_down") - 3])


def _random_flip(image: Any, flip: Any, seed: int | None) -> Tensor:
    x = convert_to_tensor(image)
    r = _rank(x, "random_flip")
    if r == 3:
        coin = compare_ops.less(random_ops.random_uniform([], seed=seed), 0.5)
    else:  # one coin per image of the batch
        n = index_ops.gather(array_ops.shape(x), 0)
        coin = array_ops.reshape(compare_ops.less(random_ops.random_uniform(
            array_ops.reshape(n, [1]), seed=seed), 0.5), [-1, 1, 1, 1])
    return compare_ops.where(coin, flip(x), x)


def random_flip_left_right(image: Any, seed: int | None = None) -> Tensor:
    """Each image mirrored left-right with probability 1/2."""
    return _random_flip(image, flip_left_right, seed)


def random_flip_up_down(image: Any, seed: int | None = None) -> Tensor:
    return _random_flip(image, flip_up_down, seed)


def adjust_brightness(image: Any, delta: Any) -> Tensor:
    x = convert_to_tensor(image)
    return math_ops.add(x, compare_ops.cast(delta, x.dtype))


def random_brightness(image: Any, max_delta: float, seed: int | None = None) -> Tensor:
    """image + a uniform delta in [-max_delta, max_delta)."""
    if max_delta < 0:
        raise InvalidArgumentError("random_brightness: max_delta must be non-negative")
    x = convert_to_tensor(image)
    delta = random_ops.random_uniform([], -max_delta, max_delta, seed=seed, dtype=x.dtype)
    return adjust_brightness(x, delta)


def adjust_contrast(images: Any, contrast_factor: Any) -> Tensor:
    """(x - mean) * factor + mean, the mean per image and channel."""
    x = convert_to_tensor(images)
    mean = reduction_ops.reduce_mean(x, [-3, -2], keepdims=True)
    f = compare_ops.cast(contrast_factor, x.dtype)
    return math_ops.add(math_ops.multiply(math_ops.subtract(x, mean), f), mean)


def random_contrast(image: Any, lower: float, upper: float, seed: int | None = None) -> Tensor:
    if not 0 <= lower < upper:
        raise InvalidArgumentError("random_contrast needs 0 <= lower < upper")
    x = convert_to_tensor(image)
    f = random_ops.random_uniform([], lower, upper, seed=seed, dtype=x.dtype)
    return adjust_contrast(x, f)


def random_crop(value: Any, size: Any, seed: int | None = None, name: str | None = None
                ) -> Tensor:
    """A random window of `size` (a static list) from `value`."""
    with name_scope(name, "random_crop"):
        x = convert_to_tensor(value)
        size = [int(s) for s in size]
        shp = array_ops.shape(x)
        limit = math_ops.add(math_ops.subtract(shp, size), 1)
        u = random_ops.random_uniform([len(size)], seed=seed)
        offset = compare_ops.cast(math_ops.floor(math_ops.multiply(
            u, compare_ops.cast(limit, dtypes.float32))), shp.dtype)
        return index_ops.slice_(x, offset, size)


def resize_image_with_crop_or_pad(image: Any, target_height: int, target_width: int) -> Tensor:
    """Centrally crop or zero-pad to [target_height, target_width] (static sizes)."""
    x = convert_to_tensor(image)
    r = _rank(x, "resize_image_with_crop_or_pad")
    h, w = x.shape[r - 3], x.shape[r - 2]
    if h is None or w is None:
        raise InvalidArgumentError("resize_image_with_crop_or_pad needs static height/width")
    for size, target, ax in ((int(h), int(target_height), r - 3),
                             (int(w), int(target_width), r - 2)):
        if size > target:
            off = (size - target) // 2
            begin = [0] * r
            begin[ax] = off
            extent = [-1] * r
            extent[ax] = target
            x = index_ops.slice_(x, begin, extent)
        elif size < target:
            before = (target - size) // 2
            pads = [[0, 0] for _ in range(r)]
            pads[ax] = [before, target - size - before]
            x = array_ops.pad(x, pads)
    return x


def central_crop(image: Any, central_fraction: float) -> Tensor:
    x = convert_to_tensor(image)
    r = _rank(x, "central_crop")
    if not 0.0 < central_fraction <= 1.0:
        raise ValueError(f"central_fraction must be within (0, 1], got {central_fraction}")
    if central_fraction == 1.0:
        return x
    h, w = int(x.shape[r - 3]), int(x.shape[r - 2])
    # TF's rule: a margin of int((size - size * fraction) / 2) on each side
    top = int((h - h * float(central_fraction)) / 2)
    left = int((w - w * float(central_fraction)) / 2)
    from actorflow.image_boxes import crop_to_bounding_box
    return crop_to_bounding_box(x, top, left, h - 2 * top, w - 2 * left)


def convert_image_dtype(image: Any, dtype: Any, saturate: bool = False,
                        name: str | None = None) -> Tensor:
    """Integers scale to [0, 1] floats (x / max of the integer type) and back."""
    x = convert_to_tensor(image)
    dt = dtypes.as_dtype(dtype)
    if x.dtype is dt:
        return x
    import numpy as np
    if x.dtype.is_integer and dt.is_floating:
        return math_ops.truediv(compare_ops.cast(x, dt), float(np.iinfo(x.dtype.np).max))
    if x.dtype.is_floating and dt.is_integer:
        scaled = math_ops.multiply(x, float(np.iinfo(dt.np).max) + 0.5)
        if saturate:
            from actorflow.ops.bit_ops import saturate_cast
            return saturate_cast(scaled, dt)
        return compare_ops.cast(scaled, dt)
    return compare_ops.cast(x, dt)


def rgb_to_grayscale(images: Any, name: str | None = None) -> Tensor:
    """The luma 0.2989 R + 0.587 G + 0.114 B, keeping a channel axis of 1."""
    x = convert_to_tensor(images)
    w = convert_to_tensor([0.2989, 0.587, 0.114], dtype=x.dtype)
    return reduction_ops.reduce_sum(math_ops.multiply(x, w), -1, keepdims=True)




class ResizeMethod:
    BILINEAR = 0
    NEAREST_NEIGHBOR = 1
    BICUBIC = 2
    AREA = 3


def _axis_plan(n_in: int, n_out: int, align_corners: bool) -> tuple[Any, Any, Any]:
    """TF1's (legacy, no half-pixel centres) source coordinates for one axis."""
    import numpy as np
    if align_corners and n_out > 1:
        scale = (n_in - 1) / (n_out - 1)
    else:
        scale = n_in / n_out
    src = np.arange(n_out, dtype=np.float64) * scale
    lo = np.minimum(np.floor(src).astype(np.int32), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    return lo, hi, frac


def _nearest(n_in: int, n_out: int, align_corners: bool) -> Any:
    """TF1's nearest source index: floor(dst * scale); with align_corners rounded half away
    from zero (C's roundf, not NumPy's round-half-to-even)."""
    import numpy as np
    lo, _, frac = _axis_plan(n_in, n_out, align_corners)
    if align_corners:
        return np.minimum(np.floor(lo + frac + 0.5), n_in - 1).astype(np.int32)
    return lo


def _axis_plan_dynamic(n_in: Tensor, n_out: int, align_corners: bool
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """`_axis_plan` for an input size known only when the step runs (a scalar int32)."""
    from actorflow.ops.partition_ops import range as range_
    f_in = compare_ops.cast(n_in, dtypes.float32)
    if align_corners and n_out > 1:
        scale = math_ops.divide(math_ops.subtract(f_in, 1.0), float(n_out - 1))
    else:
        scale = math_ops.divide(f_in, float(n_out))
    src = math_ops.multiply(compare_ops.cast(range_(n_out), dtypes.float32), scale)
    last = math_ops.subtract(n_in, 1)
    lo = math_ops.minimum(compare_ops.cast(math_ops.floor(src), dtypes.int32), last)
    hi = math_ops.minimum(math_ops.add(lo, 1), last)
    frac = math_ops.subtract(src, compare_ops.cast(lo, dtypes.float32))
    return lo, hi, frac


def _plan(x: Tensor, axis: int, n_out: int, align_corners: bool) -> tuple[Any, Any, Any]:
    n = x.shape[axis]
    if n is not None:
        return _axis_plan(int(n), n_out, align_corners)
    return _axis_plan_dynamic(index_ops.gather(array_ops.shape(x), axis), n_out, align_corners)


def resize_images(images: Any, size: Any, method: int = ResizeMethod.BILINEAR,
                  align_corners: bool = False, preserve_aspect_ratio: bool = False,
                  name: str | None = None) -> Tensor:
    """Resize to `size` = [new_height, new_width] (static) by bilinear interpolation or
    nearest neighbour, with TF1's coordinate convention (``align_corners``); floats out for
    bilinear. The input's height and width may be unknown until the step runs (a decoded
    image): the source coordinates are then computed in the graph."""
    with name_scope(name, "resize_images"):
        x = convert_to_tensor(images)
        r = _rank(x, "resize_images")
        oh, ow = (int(s) for s in size)
        if method == ResizeMethod.NEAREST_NEIGHBOR:
            ys, xs = _nearest_any(x, r - 3, oh, align_corners), \
                _nearest_any(x, r - 2, ow, align_corners)
            out = index_ops.gather(index_ops.gather(x, ys, axis=r - 3), xs, axis=r - 2)
            out.set_shape([*x.shape[:r - 3], oh, ow, x.shape[r - 1]])
            return out
        if method == ResizeMethod.BICUBIC:
            return resize_bicubic(x, [oh, ow], align_corners)
        if method == ResizeMethod.AREA:
            return resize_area(x, [oh, ow], align_corners)
        if method != ResizeMethod.BILINEAR:
            raise InvalidArgumentError(f"resize_images: method {method!r} is not one of "
                                       f"ResizeMethod's BILINEAR, NEAREST_NEIGHBOR, BICUBIC, "
                                       f"AREA")
        xf = compare_ops.cast(x, dtypes.float32) if not x.dtype.is_floating else x
        y0, y1, fy = _plan(x, r - 3, oh, align_corners)
        x0, x1, fx = _plan(x, r - 2, ow, align_corners)
        top = index_ops.gather(xf, y0, axis=r - 3)
        bot = index_ops.gather(xf, y1, axis=r - 3)
        fy_t = array_ops.reshape(compare_ops.cast(fy, xf.dtype), [-1, 1, 1])
        rows = math_ops.add(top, math_ops.multiply(math_ops.subtract(bot, top), fy_t))
        left = index_ops.gather(rows, x0, axis=r - 2)
        right = index_ops.gather(rows, x1, axis=r - 2)
        fx_t = array_ops.reshape(compare_ops.cast(fx, xf.dtype), [-1, 1])
        out = math_ops.add(left, math_ops.multiply(math_ops.subtract(right, left), fx_t))
        out.set_shape([*x.shape[:r - 3], oh, ow, x.shape[r - 1]])
        return out


def _nearest_any(x: Tensor, axis: int, n_out: int, align_corners: bool) -> Any:
    n = x.shape[axis]
    if n is not None:
        return _nearest(int(n), n_out, align_corners)
    lo, _, frac = _plan(x, axis, n_out, align_corners)
    if not align_corners:
        return lo
    last = math_ops.subtract(index_ops.gather(array_ops.shape(x), axis), 1)
    return math_ops.minimum(compare_ops.cast(math_ops.floor(math_ops.add(math_ops.add(
        compare_ops.cast(lo, dtypes.float32), frac), 0.5)), dtypes.int32), last)


def resize_bilinear(images: Any, size: Any, align_corners: bool = False,
                    name: str | None = None) -> Tensor:
    return resize_images(images, size, ResizeMethod.BILINEAR, align_corners, name=name)


def resize_nearest_neighbor(images: Any, size: Any, align_corners: bool = False,
                            name: str | None = None) -> Tensor:
    return resize_images(images, size, ResizeMethod.NEAREST_NEIGHBOR, align_corners,
                         name=name)


from actorflow.image_boxes import *  # noqa: E402,F403  (boxes, colour, geometry: session 7)
from actorflow.image_boxes import __all__ as _boxes_all  # noqa: E402
from actorflow.image_resize import resize_area, resize_bicubic  # noqa: E402  (session 8)

__all__ += _boxes_all
# --- s9api: more of tf.image (colour spaces, gamma, gradients, Sobel, PSNR, SSIM, pad) ---
from actorflow.image_more import *  # noqa: E402,F403
