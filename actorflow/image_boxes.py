"""More of ``af.image``: bounding boxes (crop/pad to a box, non-max suppression,
crop_and_resize, drawing boxes), colour (HSV, saturation, hue, grayscale to RGB) and geometry
(rot90, transpose_image, total_variation). Kernels in `devices.kernels.image_boxes`; the
colour and box kernels have no gradient (as TF1's NMS and drawing), geometry is built from
differentiable ops.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import (
    array_ops,
    compare_ops,
    join_ops,
    math_ops,
    random_ops,
    reduction_ops,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["non_max_suppression", "crop_and_resize", "draw_bounding_boxes", "rgb_to_hsv",
           "hsv_to_rgb", "adjust_saturation", "adjust_hue", "random_saturation", "random_hue",
           "grayscale_to_rgb", "crop_to_bounding_box", "pad_to_bounding_box", "rot90",
           "transpose_image", "total_variation"]

define_op("NonMaxSuppressionV3", infer=lambda ins, a: [(dtypes.int32, (None,))])
define_op("CropAndResize", infer=lambda ins, a: [(dtypes.float32, (
    ins[1]._shape[0] if ins[1]._shape else None, *a["crop"],
    ins[0]._shape[-1] if ins[0]._shape else None))])
define_op("DrawBoundingBoxesV2", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)])
define_op("RGBToHSV", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)])
define_op("HSVToRGB", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)])
define_op("CropAndResizeGradImage", infer=lambda ins, a: [(dtypes.as_dtype(a["T"]), None)])
define_op("CropAndResizeGradBoxes", infer=lambda ins, a: [(dtypes.float32, (
    ins[2]._shape[0] if ins[2]._shape else None, 4))])
for _op in ("NonMaxSuppressionV3", "DrawBoundingBoxesV2", "RGBToHSV", "HSVToRGB",
            "CropAndResizeGradImage", "CropAndResizeGradBoxes"):
    no_gradient(_op)


@register_gradient("CropAndResize")
def _crop_and_resize_grad(op: Any, grad: Any) -> list[Any]:
    """The image's gradient (bilinear or nearest) and the boxes' (bilinear sampling's, for
    both methods, as TF), none for the indices and the crop size."""
    image, boxes, ind, _ = op.inputs
    method = op.attrs.get("method", "bilinear")
    g_image = apply_op("CropAndResizeGradImage", [grad, boxes, ind, array_ops.shape(image)],
                       {"T": image.dtype.name, "method": method})[0]
    g_boxes = apply_op("CropAndResizeGradBoxes", [grad, image, boxes, ind])[0]
    return [g_image, g_boxes, None, None]


def non_max_suppression(boxes: Any, scores: Any, max_output_size: Any,
                        iou_threshold: float = 0.5, score_threshold: float = float("-inf"),
                        name: str | None = None) -> Tensor:
    """Indices of the boxes kept, best score first: a box is dropped when it overlaps a kept
    one by more than `iou_threshold` (intersection over union)."""
    return apply_op("NonMaxSuppressionV3", [
        convert_to_tensor(boxes, dtype=dtypes.float32),
        convert_to_tensor(scores, dtype=dtypes.float32),
        convert_to_tensor(max_output_size, dtype=dtypes.int32),
        convert_to_tensor(iou_threshold, dtype=dtypes.float32),
        convert_to_tensor(score_threshold, dtype=dtypes.float32)],
        name=name or "non_max_suppression")[0]


def crop_and_resize(image: Any, boxes: Any, box_ind: Any = None, crop_size: Any = None,
                    method: str = "bilinear", extrapolation_value: float = 0.0,
                    name: str | None = None, box_indices: Any = None) -> Tensor:
    """[num_boxes, crop_h, crop_w, depth] float32: each normalized box of image box_ind[i],
    resampled to crop_size."""
    ind = box_ind if box_ind is not None else box_indices
    if ind is None or crop_size is None:
        raise InvalidArgumentError("crop_and_resize needs box_ind and crop_size")
    if method not in ("bilinear", "nearest"):
        raise InvalidArgumentError(f"crop_and_resize: method is 'bilinear' or 'nearest', got "
                                   f"{method!r}")
    crop = [int(c) for c in crop_size]
    return apply_op("CropAndResize", [
        compare_ops.cast(convert_to_tensor(image), dtypes.float32),
        convert_to_tensor(boxes, dtype=dtypes.float32),
        convert_to_tensor(ind, dtype=dtypes.int32), convert_to_tensor(crop, dtype=dtypes.int32)],
        {"method": method, "extrapolation_value": float(extrapolation_value), "crop": crop},
        name=name or "CropAndResize")[0]


def draw_bounding_boxes(images: Any, boxes: Any, name: str | None = None,
                        colors: Any = None) -> Tensor:
    """The images with the outlines of boxes [batch, n, 4] (normalized) drawn on them."""
    cols = convert_to_tensor([] if colors is None else colors, dtype=dtypes.float32)
    return apply_op("DrawBoundingBoxesV2", [convert_to_tensor(images),
                                            convert_to_tensor(boxes, dtype=dtypes.float32),
                                            cols], name=name or "draw_bounding_boxes")[0]


def _float_image(images: Any, what: str) -> Tensor:
    x = convert_to_tensor(images)
    if not x.dtype.is_floating:
        raise InvalidArgumentError(f"{what} takes float images in [0, 1] (convert_image_dtype "
                                   f"first), got {x.dtype.name}")
    return x


def rgb_to_hsv(images: Any, name: str | None = None) -> Tensor:
    return apply_op("RGBToHSV", [_float_image(images, "rgb_to_hsv")], name=name or "RGBToHSV")[0]


def hsv_to_rgb(images: Any, name: str | None = None) -> Tensor:
    return apply_op("HSVToRGB", [_float_image(images, "hsv_to_rgb")], name=name or "HSVToRGB")[0]


def _hsv_adjust(image: Any, channel: int, fn: Any, name: str) -> Tensor:
    with name_scope(None, name):
        hsv = rgb_to_hsv(image)
        parts = join_ops.unstack(hsv, axis=-1)
        parts[channel] = fn(parts[channel])
        return hsv_to_rgb(join_ops.stack(parts, axis=-1))


def adjust_saturation(image: Any, saturation_factor: Any, name: str | None = None) -> Tensor:
    """Saturation times `saturation_factor` (clipped to [0, 1]), in HSV."""
    return _hsv_adjust(image, 1, lambda s: compare_ops.clip_by_value(
        math_ops.multiply(s, saturation_factor), 0.0, 1.0), name or "adjust_saturation")


def adjust_hue(image: Any, delta: Any, name: str | None = None) -> Tensor:
    """Hue rotated by `delta` (a fraction of the colour circle, in [-1, 1])."""
    return _hsv_adjust(image, 0, lambda h: math_ops.floormod(math_ops.add(h, delta), 1.0),
                       name or "adjust_hue")


def random_saturation(image: Any, lower: float, upper: float, seed: int | None = None) -> Tensor:
    if not 0 <= lower < upper:
        raise ValueError("lower must be non-negative and less than upper")
    return adjust_saturation(image, random_ops.random_uniform([], lower, upper, seed=seed))


def random_hue(image: Any, max_delta: float, seed: int | None = None) -> Tensor:
    if not 0 <= max_delta <= 0.5:
        raise ValueError("max_delta must be in the interval [0, 0.5].")
    return adjust_hue(image, random_ops.random_uniform([], -max_delta, max_delta, seed=seed))


def grayscale_to_rgb(images: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(images)
    if x.shape.rank is not None and x.shape[-1] not in (1, None):
        raise InvalidArgumentError(f"grayscale_to_rgb takes one channel, got {x.shape[-1]}")
    return join_ops.concat([x, x, x], -1, name=name)


def crop_to_bounding_box(image: Any, offset_height: int, offset_width: int,
                         target_height: int, target_width: int) -> Tensor:
    """The [target_height, target_width] window at (offset_height, offset_width)."""
    x = convert_to_tensor(image)
    if x.shape.rank == 3:
        return x[offset_height:offset_height + target_height,
                 offset_width:offset_width + target_width]
    return x[:, offset_height:offset_height + target_height,
             offset_width:offset_width + target_width]


def pad_to_bounding_box(image: Any, offset_height: int, offset_width: int,
                        target_height: int, target_width: int) -> Tensor:
    """Zero-pad so the image sits at (offset_height, offset_width) of a target-size image."""
    x = convert_to_tensor(image)
    h, w = (x.shape[-3], x.shape[-2])
    if h is None or w is None:
        raise InvalidArgumentError("pad_to_bounding_box needs the image's static height and "
                                   "width")
    after_h, after_w = target_height - offset_height - h, target_width - offset_width - w
    if min(offset_height, offset_width, after_h, after_w) < 0:
        raise ValueError("target size is smaller than the image and its offset")
    pads = [[offset_height, after_h], [offset_width, after_w], [0, 0]]
    return array_ops.pad(x, pads if x.shape.rank == 3 else [[0, 0], *pads])


def transpose_image(image: Any) -> Tensor:
    x = convert_to_tensor(image)
    return array_ops.transpose(x, [1, 0, 2] if x.shape.rank == 3 else [0, 2, 1, 3])


def rot90(image: Any, k: int = 1, name: str | None = None) -> Tensor:
    """The image rotated counter-clockwise by k * 90 degrees (k a Python int)."""
    from actorflow.ops.scan_sort_ops import reverse
    x = convert_to_tensor(image)
    w_axis = x.shape.rank - 2
    for _ in range(int(k) % 4):
        x = transpose_image(reverse(x, [w_axis]))
    return x


def total_variation(images: Any, name: str | None = None) -> Tensor:
    """The sum of absolute differences of neighbouring pixels (per image for a batch)."""
    x = convert_to_tensor(images)
    axes = [0, 1, 2] if x.shape.rank == 3 else [1, 2, 3]
    dy = math_ops.abs(math_ops.subtract(x[..., 1:, :, :], x[..., :-1, :, :]))
    dx = math_ops.abs(math_ops.subtract(x[..., :, 1:, :], x[..., :, :-1, :]))
    return math_ops.add(reduction_ops.reduce_sum(dy, axes), reduction_ops.reduce_sum(dx, axes),
                        name=name)
