"""``af.image.resize_bicubic`` and ``resize_area`` (TF1's), and the BICUBIC and AREA methods
of ``resize_images``. Kernels and how their weights are built: devices/kernels/image_resize.py.

    af.image.resize_bicubic(images, [64, 64], align_corners=False, half_pixel_centers=False)

The bicubic resize has a gradient for the images (the weights transposed); the area resize
has none (as in TF).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["resize_bicubic", "resize_area"]


def _resize_infer(ins: list[Tensor], attrs: dict) -> list:
    x = ins[0]
    s = x._shape
    if s is not None and len(s) != 4:
        raise InvalidArgumentError(f"resizing needs 4-D images [batch, height, width, "
                                   f"channels], got shape {list(s)}")
    oh, ow = attrs["size"]
    return [(dtypes.float32, None if s is None else (s[0], oh, ow, s[3]))]


define_op("ResizeBicubic", infer=_resize_infer)
define_op("ResizeArea", infer=_resize_infer)
define_op("ResizeBicubicGrad", infer=lambda ins, a: [(ins[1].dtype, ins[1]._shape)])
no_gradient("ResizeArea")
no_gradient("ResizeBicubicGrad")


def _resize(op: str, images: Any, size: Any, attrs: dict, name: str | None) -> Tensor:
    x = convert_to_tensor(images)
    oh, ow = (int(v) for v in size)
    squeeze = x.shape.rank == 3
    if squeeze:
        from actorflow.ops import array_ops
        x = array_ops.expand_dims(x, 0)
    out = apply_op(op, [x, convert_to_tensor([oh, ow], dtype=dtypes.int32)],
                   {**attrs, "size": [oh, ow]}, name=name or op)[0]
    if squeeze:
        from actorflow.ops import array_ops
        out = array_ops.squeeze(out, [0])
    return out


def resize_bicubic(images: Any, size: Any, align_corners: bool = False,
                   name: str | None = None, half_pixel_centers: bool = False) -> Tensor:
    """Bicubic resampling to `size` = [new_height, new_width]; float32 out."""
    if align_corners and half_pixel_centers:
        raise InvalidArgumentError("resize_bicubic: align_corners and half_pixel_centers "
                                   "cannot both be True")
    return _resize("ResizeBicubic", images, size, {"align_corners": bool(align_corners),
                                                   "half_pixel_centers": bool(half_pixel_centers)},
                   name)


def resize_area(images: Any, size: Any, align_corners: bool = False,
                name: str | None = None) -> Tensor:
    """Each output pixel the average of the input area it covers; float32 out."""
    return _resize("ResizeArea", images, size, {"align_corners": bool(align_corners)}, name)


@register_gradient("ResizeBicubic")
def _resize_bicubic_grad(op: Operation, grad: Tensor) -> list[Any]:
    x = op.inputs[0]
    if not x.dtype.is_floating:
        return [None, None]
    g = apply_op("ResizeBicubicGrad", [grad, x],
                 {"align_corners": op.attrs["align_corners"],
                  "half_pixel_centers": op.attrs["half_pixel_centers"]})[0]
    return [g, None]
