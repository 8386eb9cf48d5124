"""More of TF1's ``tf.image``, composed from existing ops so their gradients are those of the
parts: colour spaces YUV and YIQ (TF's 3x3 matrices), `adjust_gamma`, `image_gradients`
(forward differences, zero in the last row/column), `sobel_edges` (REFLECT padding, the
two 3x3 Sobel kernels, a last axis of 2: dy, dx), `psnr`, `ssim` (an 11x11 Gaussian of
sigma 1.5, k1 0.01, k2 0.03, VALID filtering, as TF; `ssim_multiscale` over five 2x
scales) and `resize_image_with_pad` (TF1's
float32 ratio and floor rules). `sample_distorted_bounding_box` is in
`actorflow.ops.random_more_ops` (re-exported here).

    ssim = af.image.ssim(a, b, max_val=1.0)        # one value per image
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, math_ops, reduction_ops
from actorflow.ops.random_more_ops import sample_distorted_bounding_box
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["sample_distorted_bounding_box", "rgb_to_yuv", "yuv_to_rgb", "rgb_to_yiq",
           "yiq_to_rgb", "adjust_gamma", "image_gradients", "sobel_edges", "psnr", "ssim",
           "ssim_multiscale", "resize_image_with_pad"]

_RGB_TO_YUV = [[0.299, -0.14714119, 0.61497538], [0.587, -0.28886916, -0.51496512],
               [0.114, 0.43601035, -0.10001026]]
_YUV_TO_RGB = [[1, 1, 1], [0, -0.394642334, 2.03206185], [1.13988303, -0.58062185, 0]]
_RGB_TO_YIQ = [[0.299, 0.59590059, 0.2115], [0.587, -0.27455667, -0.52273617],
               [0.114, -0.32134392, 0.31119955]]
_YIQ_TO_RGB = [[1, 1, 1], [0.95598634, -0.27201283, -1.10674021],
               [0.6208248, -0.64720424, 1.70423049]]


def _colour(images: Any, kernel: list, what: str, name: str | None) -> Tensor:
    from actorflow.ops.grid_ops import tensordot
    with name_scope(name, what):
        x = convert_to_tensor(images)
        if not x.dtype.is_floating:
            raise TypeError(f"{what} takes float images, got {x.dtype.name}; use "
                            f"convert_image_dtype first")
        if x._shape is not None and x._shape and x._shape[-1] not in (None, 3):
            raise InvalidArgumentError(f"{what}: the last axis must hold 3 channels, got "
                                       f"shape {list(x._shape)}")
        k = convert_to_tensor(np.asarray(kernel, dtype=x.dtype.np))
        return tensordot(x, k, [[len(x._shape) - 1], [0]])


def rgb_to_yuv(images: Any, name: str | None = None) -> Tensor:
    return _colour(images, _RGB_TO_YUV, "rgb_to_yuv", name)


def yuv_to_rgb(images: Any, name: str | None = None) -> Tensor:
    return _colour(images, _YUV_TO_RGB, "yuv_to_rgb", name)


def rgb_to_yiq(images: Any, name: str | None = None) -> Tensor:
    return _colour(images, _RGB_TO_YIQ, "rgb_to_yiq", name)


def yiq_to_rgb(images: Any, name: str | None = None) -> Tensor:
    return _colour(images, _YIQ_TO_RGB, "yiq_to_rgb", name)


def adjust_gamma(image: Any, gamma: Any = 1, gain: Any = 1, name: str | None = None) -> Tensor:
    """gain * image ** gamma (integer images are scaled to [0, 1] and back)."""
    from actorflow.image import convert_image_dtype
    with name_scope(name, "adjust_gamma"):
        x = convert_to_tensor(image)
        if isinstance(gamma, (int, float)) and gamma < 0:
            raise InvalidArgumentError(f"adjust_gamma: gamma must be non-negative, got {gamma}")
        f = x if x.dtype.is_floating else convert_image_dtype(x, dtypes.float32)
        out = math_ops.multiply(compare_ops.cast(gain, f.dtype),
                                math_ops.pow(f, compare_ops.cast(gamma, f.dtype)))
        return out if x.dtype.is_floating else convert_image_dtype(out, x.dtype, saturate=True)


def _rank4(x: Tensor, what: str) -> None:
    if x._shape is None or len(x._shape) != 4:
        raise InvalidArgumentError(f"{what} takes a 4-D [batch, height, width, channels] "
                                   f"tensor, got shape {x._shape}")


def image_gradients(image: Any) -> tuple[Tensor, Tensor]:
    """(dy, dx): image[i+1] - image[i] along height and width, 0 in the last row/column."""
    x = convert_to_tensor(image)
    _rank4(x, "image_gradients")
    dy = math_ops.subtract(x[:, 1:, :, :], x[:, :-1, :, :])
    dx = math_ops.subtract(x[:, :, 1:, :], x[:, :, :-1, :])
    dy = array_ops.pad(dy, [[0, 0], [0, 1], [0, 0], [0, 0]])
    dx = array_ops.pad(dx, [[0, 0], [0, 0], [0, 1], [0, 0]])
    return dy, dx


def sobel_edges(image: Any) -> Tensor:
    """[batch, h, w, channels, 2]: the Sobel responses along y and x (REFLECT-padded)."""
    from actorflow.ops.grid_ops import depthwise_conv2d
    x = convert_to_tensor(image)
    _rank4(x, "sobel_edges")
    ch = x._shape[3]
    k = np.asarray([[[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
                    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]], dtype=x.dtype.np)
    k = np.tile(np.transpose(k, (1, 2, 0))[:, :, None, :], (1, 1, ch, 1))
    padded = array_ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    out = depthwise_conv2d(padded, convert_to_tensor(k), [1, 1, 1, 1], "VALID")
    return array_ops.reshape(out, [-1, x._shape[1], x._shape[2], ch, 2])


def psnr(a: Any, b: Any, max_val: Any, name: str | None = None) -> Tensor:
    """Peak signal-to-noise ratio over the last three axes, in dB."""
    with name_scope(name, "PSNR"):
        x, y, mv = _floats(a), _floats(b), _max_val(max_val, a)
        mse = reduction_ops.reduce_mean(math_ops.squared_difference(x, y), [-3, -2, -1])
        return math_ops.subtract(
            math_ops.truediv(math_ops.multiply(math_ops.log(mv), 20.0), np.float32(np.log(10.0))),
            math_ops.multiply(np.float32(10 / np.log(10)), math_ops.log(mse)))


def _gauss(size: int, sigma: float) -> np.ndarray:
    c = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2.0)
    g = (c ** 2) * np.float32(-0.5 / sigma ** 2)
    g = (g[None, :] + g[:, None]).reshape(-1)
    g = np.exp(g - g.max())
    return (g / g.sum()).astype(np.float32).reshape(size, size, 1, 1)


def _ssim_per_channel(x: Tensor, y: Tensor, max_val: Any, filter_size: int,
                      filter_sigma: float, k1: float, k2: float) -> tuple[Tensor, Tensor]:
    """(SSIM, contrast-structure) per image and channel [..., channels]."""
    from actorflow.ops.grid_ops import depthwise_conv2d
    _rank4(x, "ssim")
    h, w, ch = x._shape[1], x._shape[2], x._shape[3]
    if h < filter_size or w < filter_size:
        raise InvalidArgumentError(f"ssim: images of {h}x{w} are smaller than the filter "
                                   f"({filter_size}); pass a smaller filter_size")
    k = convert_to_tensor(np.tile(_gauss(filter_size, filter_sigma), (1, 1, ch, 1)))
    mv = compare_ops.cast(max_val, dtypes.float32)
    c1 = math_ops.square(math_ops.multiply(mv, k1))
    c2 = math_ops.square(math_ops.multiply(mv, k2))

    def reduce(t: Tensor) -> Tensor:
        return depthwise_conv2d(t, k, [1, 1, 1, 1], "VALID")
    m0, m1 = reduce(x), reduce(y)
    num0 = math_ops.multiply(math_ops.multiply(m0, m1), 2.0)
    den0 = math_ops.add(math_ops.square(m0), math_ops.square(m1))
    lum = math_ops.truediv(math_ops.add(num0, c1), math_ops.add(den0, c1))
    num1 = math_ops.multiply(reduce(math_ops.multiply(x, y)), 2.0)
    den1 = reduce(math_ops.add(math_ops.square(x), math_ops.square(y)))
    cs = math_ops.truediv(math_ops.add(math_ops.subtract(num1, num0), c2),
                          math_ops.add(math_ops.subtract(den1, den0), c2))
    return (reduction_ops.reduce_mean(math_ops.multiply(lum, cs), [-3, -2]),
            reduction_ops.reduce_mean(cs, [-3, -2]))


def _floats(img: Any) -> Tensor:
    from actorflow.image import convert_image_dtype
    return convert_image_dtype(convert_to_tensor(img), dtypes.float32)


def _max_val(max_val: Any, like: Any) -> Tensor:
    """max_val in the images' dtype, then scaled as they are (255 for uint8 images -> 1.0)."""
    from actorflow.image import convert_image_dtype
    dt = convert_to_tensor(like).dtype
    return convert_image_dtype(compare_ops.cast(max_val, dt), dtypes.float32)


def ssim(img1: Any, img2: Any, max_val: Any, filter_size: int = 11,
         filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Structural similarity per image (TF's Gaussian-filtered SSIM, averaged over channels)."""
    with name_scope(None, "SSIM"):
        per_channel, _ = _ssim_per_channel(_floats(img1), _floats(img2),
                                           _max_val(max_val, img1), filter_size, filter_sigma,
                                           k1, k2)
        return reduction_ops.reduce_mean(per_channel, [-1])


_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ssim_multiscale(img1: Any, img2: Any, max_val: Any, power_factors: Any = _MS_WEIGHTS,
                    filter_size: int = 11, filter_sigma: float = 1.5, k1: float = 0.01,
                    k2: float = 0.03) -> Tensor:
    """MS-SSIM: the contrast-structure terms of each 2x-downsampled scale and the last
    scale's SSIM, raised to `power_factors` and multiplied (TF's; odd sizes are padded
    SYMMETRIC by one before each 2x2 average)."""
    from actorflow.ops.nn_conv_ops import avg_pool
    from actorflow.ops.nn_ops import relu
    with name_scope(None, "MS-SSIM"):
        x, y = _floats(img1), _floats(img2)
        max_val = _max_val(max_val, img1)
        _rank4(x, "ssim_multiscale")
        mcs = []
        per_channel = None
        for scale in range(len(power_factors)):
            if scale:
                rh, rw = x._shape[1] % 2, x._shape[2] % 2
                if rh or rw:
                    pads = [[0, 0], [0, rh], [0, rw], [0, 0]]
                    x = array_ops.pad(x, pads, mode="SYMMETRIC")
                    y = array_ops.pad(y, pads, mode="SYMMETRIC")
                x = avg_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
                y = avg_pool(y, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
            per_channel, cs = _ssim_per_channel(x, y, max_val, filter_size, filter_sigma, k1, k2)
            mcs.append(relu(cs))
        from actorflow.ops.join_ops import stack
        terms = stack([*mcs[:-1], relu(per_channel)], -1)
        weights = convert_to_tensor(np.asarray(power_factors, dtype=np.float32))
        ms = reduction_ops.reduce_prod(math_ops.pow(terms, weights), [-1])
        return reduction_ops.reduce_mean(ms, [-1])


def resize_image_with_pad(image: Any, target_height: int, target_width: int,
                          method: int = 0, align_corners: bool = False) -> Tensor:
    """Resize keeping the aspect ratio so the image fits, then pad with zeros to the target
    (TF1's rule: the ratio in float32, sizes and offsets floored)."""
    from actorflow.image import resize_images
    from actorflow.image_boxes import pad_to_bounding_box
    x = convert_to_tensor(image)
    if target_height <= 0 or target_width <= 0:
        raise InvalidArgumentError("resize_image_with_pad: target_height and target_width "
                                   "must be > 0")
    r = len(x._shape)
    h, w = np.float32(x._shape[r - 3]), np.float32(x._shape[r - 2])
    th, tw = np.float32(target_height), np.float32(target_width)
    ratio = max(w / tw, h / th)
    rh, rw = h / ratio, w / ratio
    ph = max(0, int(np.floor((th - rh) / np.float32(2))))
    pw = max(0, int(np.floor((tw - rw) / np.float32(2))))
    resized = resize_images(x, [int(np.floor(rh)), int(np.floor(rw))], method, align_corners)
    return pad_to_bounding_box(resized, ph, pw, int(target_height), int(target_width))


def resize(images: Any, size: Any, method: int = 0, align_corners: bool = False,
           preserve_aspect_ratio: bool = False, name: str | None = None) -> Tensor:
    """tf.compat.v1.image.resize: TF1's resize_images."""
    from actorflow.image import resize_images
    return resize_images(images, size, method, align_corners,
                         preserve_aspect_ratio=preserve_aspect_ratio, name=name)


def resize_with_crop_or_pad(image: Any, target_height: int, target_width: int) -> Tensor:
    from actorflow.image import resize_image_with_crop_or_pad
    return resize_image_with_crop_or_pad(image, target_height, target_width)


def transpose(image: Any, name: str | None = None) -> Tensor:
    from actorflow.image_boxes import transpose_image
    return transpose_image(image)


__all__ += ["resize", "resize_with_crop_or_pad", "transpose"]
