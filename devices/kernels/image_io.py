"""Kernels that read files and decode and encode images: the input stage of TF1's
"build an image dataset" programs (``tf.read_file`` then ``tf.image.decode_jpeg``).

    ReadFile(filename: string[])            -> contents: string[]   (the file's bytes)
    WriteFile(filename: string[], contents: string[])               (stateful)
    DecodeImage(contents: string[])         -> uint8 [height, width, channels]
        attrs channels (0: the file's own), format ("png", "jpeg", "bmp", "gif" or "" for
        any); a GIF gives its first frame, as a 3-D image (TF's decode_gif gives 4-D frames;
        the op layer adds the frame axis).
    EncodeImage(image: uint8 [h, w, c])    -> string[]   attrs format ("png"/"jpeg"), quality

and, as the other kernel turning values into host strings, AsString (numbers to text).

Images are decoded by Pillow (an optional dependency, the ``image`` extra), imported on the
first decode, so graphs without image ops never need it. A file Pillow cannot read, or one of
another format than the op asked for, is InvalidArgument naming the format found. CPU only:
the bytes live in host memory.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError, NotFoundError, UnimplementedError
from devices.kernels.registry import KernelContext, register_kernel

_FORMATS = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "gif": "GIF"}
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _scalar_bytes(x: Any, what: str) -> bytes:
    arr = np.asarray(x)
    if arr.shape != () or not isinstance(arr.item(), bytes):
        raise InvalidArgumentError(f"{what} must be a scalar string tensor, got "
                                   f"{arr.dtype} of shape {arr.shape}")
    return arr.item()


def _string_scalar(b: bytes) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = b
    return out


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise UnimplementedError("decoding and encoding images needs Pillow: "
                                 "pip install 'actorflow[image]'") from None
    return Image


@register_kernel("ReadFile", device_types=("CPU",))
def _read_file(k: KernelContext):
    def compute(filename: Any) -> tuple:
        path = _scalar_bytes(filename, "ReadFile's filename").decode()
        try:
            with open(path, "rb") as f:
                return (_string_scalar(f.read()),)
        except FileNotFoundError:
            raise NotFoundError(f"ReadFile: no such file '{path}'") from None
        except IsADirectoryError:
            raise InvalidArgumentError(f"ReadFile: '{path}' is a directory") from None
    return compute


@register_kernel("WriteFile", device_types=("CPU",), stateful=True)
def _write_file(k: KernelContext):
    def compute(filename: Any, contents: Any) -> tuple:
        path = _scalar_bytes(filename, "WriteFile's filename").decode()
        with open(path, "wb") as f:
            f.write(_scalar_bytes(contents, "WriteFile's contents"))
        return ()
    return compute


def _decode(data: bytes, fmt: str, channels: int, op: str) -> np.ndarray:
    Image = _pil()
    try:
        img = Image.open(io.BytesIO(data))
        found = (img.format or "").upper()
    except Exception as e:  # Pillow raises several types for bad bytes
        raise InvalidArgumentError(f"{op}: the contents are not an image Pillow can read "
                                   f"({type(e).__name__}: {e}); {len(data)} bytes starting "
                                   f"{data[:8]!r}") from None
    if fmt and _FORMATS[fmt] != found and not (fmt == "jpeg" and found == "MPO"):
        got = found or "an unknown format"
        raise InvalidArgumentError(f"{op}: expected a {fmt.upper()} image, got {got}; use "
                                   f"tf.image.decode_image for any format")
    if channels == 0:
        mode = img.mode
        channels = 1 if mode in ("L", "1", "I", "I;16", "F") else 4 if "A" in mode else 3
    img = img.convert(_MODES[channels])
    arr = np.asarray(img, dtype=np.uint8)
    return arr.reshape(arr.shape[0], arr.shape[1], channels)


@register_kernel("DecodeImage", device_types=("CPU",))
def _decode_image(k: KernelContext):
    fmt, channels = k.attr("format", ""), int(k.attr("channels", 0))

    def compute(contents: Any) -> tuple:
        return (_decode(_scalar_bytes(contents, k.name), fmt, channels, k.name),)
    return compute


@register_kernel("EncodeImage", device_types=("CPU",))
def _encode_image(k: KernelContext):
    fmt, quality = k.attr("format"), int(k.attr("quality", 95))

    def compute(image: Any) -> tuple:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[-1] not in _MODES:
            raise InvalidArgumentError(f"{k.name}: an image to encode is uint8 [height, width,"
                                       f" 1, 3 or 4 channels], got shape {arr.shape}")
        img = _pil().fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr,
                               _MODES[arr.shape[-1]])
        buf = io.BytesIO()
        img.save(buf, _FORMATS[fmt], **({"quality": quality} if fmt == "jpeg" else {}))
        return (_string_scalar(buf.getvalue()),)
    return compute


@register_kernel("AsString", device_types=("CPU",))
def _as_string(k: KernelContext):
    """TF's AsString formatting (see actorflow/ops/string_ops.py)."""
    prec, sci, short = int(k.attr("precision", -1)), k.attr("scientific"), k.attr("shortest")
    width, fill = int(k.attr("width", -1)), k.attr("fill", "") or " "
    kind = np.dtype(k.in_dtypes[0].np).kind if k.in_dtypes else None
    if kind == "b":
        fmt = None
    elif kind in "iu":
        fmt = "{:d}"
    elif short:
        fmt = "{:g}"
    else:
        fmt = "{:." + str(6 if prec < 0 else prec) + ("e}" if sci else "f}")

    def one(v: Any) -> bytes:
        s = ("true" if v else "false") if fmt is None else fmt.format(v.item())
        if width > 0 and len(s) < width:
            s = s.rjust(width, fill)
        return s.encode()

    def compute(x: Any) -> tuple:
        arr = np.asarray(x)
        out = np.empty(arr.shape, dtype=object)
        flat = out.reshape(-1)
        for i, v in enumerate(arr.reshape(-1)):
            flat[i] = one(v)
        return (out,)
    return compute
