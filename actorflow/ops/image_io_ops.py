"""Files and encoded images as tensors: ``read_file``/``write_file`` and the image decoders
and encoders of ``tf.image`` (TF1 names), the first ops of a "build an image dataset" input
pipeline:

    path, label = af.train.slice_input_producer([paths, labels], shuffle=True)
    image = af.image.decode_jpeg(af.read_file(path), channels=3)    # uint8 [h, w, 3]
    image = af.image.resize_images(image, [28, 28])                  # float32

Contents and paths are string tensors (bytes). Decoding and encoding run on the CPU
(``devices/kernels/image_io.py``, through Pillow). The decoded height and width are known only
when the step runs; the channel count is static when `channels` is given. None of these ops
has a gradient (TF's have none either).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.op_def import apply_op, apply_op_op, convert_to_tensor, define_op, no_gradient
from actorflow.ops import array_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["read_file", "write_file", "decode_image", "decode_png", "decode_jpeg",
           "decode_bmp", "decode_gif", "encode_png", "encode_jpeg"]


def _scalar_string(x: Any, what: str) -> Tensor:
    t = convert_to_tensor(x, dtype=dtypes.string) if not isinstance(x, Tensor) else x
    if t.dtype is not dtypes.string:
        raise InvalidArgumentError(f"{what} must be a string tensor, got {t.dtype.name}")
    if t._shape is not None and len(t._shape) != 0:
        raise InvalidArgumentError(f"{what} must be a scalar string, got shape {t.shape}; "
                                   f"map a batch with af.map_fn or a Dataset")
    return t


define_op("ReadFile", infer=lambda ins, a: [(dtypes.string, ())])
define_op("WriteFile", infer=lambda ins, a: [], stateful=True)
define_op("DecodeImage", infer=lambda ins, a: [
    (dtypes.uint8, (None, None, a["channels"] or None))])
define_op("EncodeImage", infer=lambda ins, a: [(dtypes.string, ())])
for _op in ("ReadFile", "WriteFile", "DecodeImage", "EncodeImage"):
    no_gradient(_op)


def read_file(filename: Any, name: str | None = None) -> Tensor:
    """The bytes of the file at `filename` (a scalar string), as a scalar string."""
    return apply_op("ReadFile", [_scalar_string(filename, "read_file's filename")],
                    name=name or "ReadFile")[0]


def write_file(filename: Any, contents: Any, name: str | None = None) -> Operation:
    """Write `contents` (a scalar string) to the file `filename`, replacing it."""
    return apply_op_op("WriteFile", [_scalar_string(filename, "write_file's filename"),
                                     _scalar_string(contents, "write_file's contents")],
                       name=name or "WriteFile")


def _decode(contents: Any, channels: Any, fmt: str, name: str) -> Tensor:
    channels = int(channels or 0)
    if channels not in (0, 1, 3, 4):
        raise InvalidArgumentError(f"channels must be 0 (the file's own), 1, 3 or 4, "
                                   f"got {channels}")
    return apply_op("DecodeImage", [_scalar_string(contents, f"{name}'s contents")],
                    {"channels": channels, "format": fmt}, name=name)[0]


def decode_image(contents: Any, channels: Any = None, dtype: Any = dtypes.uint8,
                 name: str | None = None, expand_animations: bool = True) -> Tensor:
    """Any of PNG, JPEG, BMP or GIF (its first frame) as uint8 [height, width, channels]."""
    img = _decode(contents, channels, "", name or "decode_image")
    if dtypes.as_dtype(dtype) is not dtypes.uint8:
        from actorflow.image import convert_image_dtype
        img = convert_image_dtype(img, dtype)
    return img


def decode_png(contents: Any, channels: int = 0, dtype: Any = dtypes.uint8,
               name: str | None = None) -> Tensor:
    if dtypes.as_dtype(dtype) is not dtypes.uint8:
        raise InvalidArgumentError("decode_png decodes to uint8 here (16-bit PNGs are not "
                                   "supported); convert with tf.image.convert_image_dtype")
    return _decode(contents, channels, "png", name or "DecodePng")


def decode_jpeg(contents: Any, channels: int = 0, ratio: int = 1,
                fancy_upscaling: bool = True, try_recover_truncated: bool = False,
                acceptable_fraction: float = 1, dct_method: str = "",
                name: str | None = None) -> Tensor:
    if ratio != 1:
        raise InvalidArgumentError(f"decode_jpeg's ratio={ratio} (downscaling while decoding) "
                                   f"is not supported; resize the decoded image instead")
    return _decode(contents, channels, "jpeg", name or "DecodeJpeg")


def decode_bmp(contents: Any, channels: int = 0, name: str | None = None) -> Tensor:
    return _decode(contents, channels, "bmp", name or "DecodeBmp")


def decode_gif(contents: Any, name: str | None = None) -> Tensor:
    """The first frame of a GIF as uint8 [1, height, width, 3] (TF's frames axis)."""
    return array_ops.expand_dims(_decode(contents, 3, "gif", name or "DecodeGif"), 0)


def _encode(image: Any, fmt: str, quality: int, name: str) -> Tensor:
    img = convert_to_tensor(image)
    if img.dtype is not dtypes.uint8:
        raise InvalidArgumentError(f"{name} encodes uint8 images, got {img.dtype.name}; "
                                   f"use tf.image.convert_image_dtype(image, tf.uint8)")
    return apply_op("EncodeImage", [img], {"format": fmt, "quality": int(quality)},
                    name=name)[0]


def encode_png(image: Any, compression: int = -1, name: str | None = None) -> Tensor:
    return _encode(image, "png", 95, name or "EncodePng")


def encode_jpeg(image: Any, format: str = "", quality: int = 95, **kwargs: Any) -> Tensor:
    return _encode(image, "jpeg", quality, kwargs.get("name") or "EncodeJpeg")
