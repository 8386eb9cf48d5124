"""Kernels of the summary ops: each turns its input into a serialized `Summary` protocol buffer
(TensorBoard's own message, built with tensorboardX's generated protos), returned as a scalar
string tensor. They run on the device that holds their input, so on a cluster only the bytes
of the proto come back to the caller, who writes the event file.

- ScalarSummary {tag}: a real scalar -> ``value{tag, simple_value}``.
- HistogramSummary {tag}: any real tensor -> ``value{tag, histo}`` with TensorFlow's default
  buckets (limits ±1e-12·1.1^k up to 1e20, then ±DBL_MAX, and 0; runs of empty buckets
  collapsed), so TensorBoard draws what TF1 users see.
- ImageSummary {tag, max_images}: uint8 or float [batch, h, w, 1|3|4] -> up to `max_images`
  PNG images tagged ``tag/image`` (one) or ``tag/image/i``; floats are scaled as TF does (all
  non-negative: the largest becomes 255; else 0 maps to 127). PNG encoding uses Pillow.
- AudioSummaryV2 {tag, max_outputs, sample_rate}: float [batch, frames(, channels)] in [-1, 1]
  -> up to `max_outputs` 16-bit WAV clips (the standard library's `wave`), ``tag/audio[/i]``.
- TensorSummaryV2 {tag, metadata}: any tensor -> ``value{tag, tensor, metadata}``, the metadata
  a serialized `SummaryMetadata` (the text plugin's for af.summary.text).
- MergeSummary: N string tensors of serialized Summaries -> one Summary; a tag seen twice is an
  InvalidArgument naming it, as in TF.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError, UnimplementedError
from devices.kernels.registry import KernelContext, register_kernel


def _pb() -> Any:
    from tensorboardX.proto import summary_pb2  # imported on first use: daemons pay nothing
    return summary_pb2


def _host(x: Any) -> np.ndarray:
    get = getattr(x, "get", None)
    return np.asarray(get() if get is not None and not isinstance(x, np.ndarray) else x)


def _string_scalar(data: bytes) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = data
    return out


def _limits() -> np.ndarray:
    pos = []
    v = 1.0e-12
    while v < 1.0e20:
        pos.append(v)
        v *= 1.1
    pos.append(np.finfo(np.float64).max)
    pos_a = np.array(pos)
    return np.concatenate([-pos_a[::-1], [0.0], pos_a])


_LIMITS: np.ndarray | None = None


def histogram_proto(values: np.ndarray) -> Any:
    """A `HistogramProto` of `values` with TensorFlow's default buckets."""
    global _LIMITS
    if _LIMITS is None:
        _LIMITS = _limits()
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size and not np.all(np.isfinite(v)):
        bad = v[~np.isfinite(v)][0]
        raise InvalidArgumentError(f"Nan in summary histogram for a value: {bad}")
    counts = np.bincount(np.searchsorted(_LIMITS, v, side="right"), minlength=len(_LIMITS))
    counts = counts[:len(_LIMITS)].astype(np.float64)
    h = _pb().HistogramProto()
    if v.size:
        h.min, h.max = float(v.min()), float(v.max())
        h.sum, h.sum_squares = float(v.sum()), float(np.dot(v, v))
    else:
        h.min, h.max = float(_LIMITS[-1]), float(-_LIMITS[-1])
    h.num = float(v.size)
    limits, buckets = [], []
    i, n = 0, len(counts)
    while i < n:  # TF's EncodeToProto: a run of empty buckets becomes one
        end, count = _LIMITS[i], counts[i]
        i += 1
        if count <= 0.0:
            while i < n and counts[i] <= 0.0:
                end, count = _LIMITS[i], counts[i]
                i += 1
        limits.append(float(end))
        buckets.append(float(count))
    h.bucket_limit.extend(limits)
    h.bucket.extend(buckets)
    return h


@register_kernel("ScalarSummary")
def _scalar_summary(k: KernelContext) -> Any:
    tag = k.attrs["tag"]
    pb = _pb()

    def compute(x: Any) -> tuple[np.ndarray]:
        a = _host(x)
        if a.size != 1:
            raise InvalidArgumentError(
                f"tags and values are not the same shape: the scalar summary '{tag}' got a "
                f"value of shape {a.shape}; summarize a scalar (e.g. af.reduce_mean(x))",
                node=k.name)
        s = pb.Summary(value=[pb.Summary.Value(tag=tag, simple_value=float(a.reshape(())))])
        return (_string_scalar(s.SerializeToString()),)
    return compute


@register_kernel("HistogramSummary")
def _histogram_summary(k: KernelContext) -> Any:
    tag = k.attrs["tag"]
    pb = _pb()

    def compute(x: Any) -> tuple[np.ndarray]:
        try:
            h = histogram_proto(_host(x))
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{e.message} (summary '{tag}')", node=k.name) from None
        s = pb.Summary(value=[pb.Summary.Value(tag=tag, histo=h)])
        return (_string_scalar(s.SerializeToString()),)
    return compute


def _png(img: np.ndarray) -> bytes:
    try:
        from PIL import Image
    except ImportError:
        raise UnimplementedError("image summaries encode PNG with Pillow: pip install "
                                 "pillow (actorflow[summary])") from None
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[img.shape[-1]]
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if mode == "L" else img, mode).save(buf, format="PNG")
    return buf.getvalue()


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """TF's ImageSummary scaling, per image."""
    if images.dtype == np.uint8:
        return images
    out = np.empty(images.shape, np.uint8)
    for i, im in enumerate(images.astype(np.float64)):
        finite = im[np.isfinite(im)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        if lo >= 0:
            scale = 255.0 / hi if hi > 0 else 0.0
            offset = 0.0
        else:
            scale = 127.0 / max(-lo, hi) if max(-lo, hi) > 0 else 0.0
            offset = 128.0
        out[i] = np.clip(np.nan_to_num(im) * scale + offset, 0, 255).astype(np.uint8)
    return out


@register_kernel("ImageSummary")
def _image_summary(k: KernelContext) -> Any:
    tag, max_images = k.attrs["tag"], int(k.attrs["max_images"])
    pb = _pb()

    def compute(x: Any) -> tuple[np.ndarray]:
        a = _host(x)
        if a.ndim != 4 or a.shape[-1] not in (1, 3, 4):
            raise InvalidArgumentError(
                f"image summary '{tag}' takes a 4-D [batch, height, width, channels] tensor "
                f"with 1, 3 or 4 channels, got shape {a.shape}", node=k.name)
        imgs = _to_uint8(a[:max_images])
        vals = []
        for i, im in enumerate(imgs):
            t = f"{tag}/image" if max_images == 1 else f"{tag}/image/{i}"
            vals.append(pb.Summary.Value(tag=t, image=pb.Summary.Image(
                height=im.shape[0], width=im.shape[1], colorspace=im.shape[2],
                encoded_image_string=_png(np.ascontiguousarray(im)))))
        return (_string_scalar(pb.Summary(value=vals).SerializeToString()),)
    return compute


def _wav(clip: np.ndarray, rate: int) -> bytes:
    pcm = (np.clip(clip, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(clip.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


@register_kernel("AudioSummaryV2")
def _audio_summary(k: KernelContext) -> Any:
    tag, max_outputs = k.attrs["tag"], int(k.attrs["max_outputs"])
    rate = float(k.attrs["sample_rate"])
    pb = _pb()

    def compute(x: Any) -> tuple[np.ndarray]:
        a = _host(x).astype(np.float64)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise InvalidArgumentError(
                f"audio summary '{tag}' takes [batch, frames] or [batch, frames, channels], "
                f"got shape {a.shape}", node=k.name)
        vals = []
        for i, clip in enumerate(a[:max_outputs]):
            t = f"{tag}/audio" if max_outputs == 1 else f"{tag}/audio/{i}"
            vals.append(pb.Summary.Value(tag=t, audio=pb.Summary.Audio(
                sample_rate=rate, num_channels=clip.shape[1], length_frames=clip.shape[0],
                encoded_audio_string=_wav(clip, int(rate)), content_type="audio/wav")))
        return (_string_scalar(pb.Summary(value=vals).SerializeToString()),)
    return compute


_TB_DTYPE = {"float16": 19, "float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5,
             "int8": 6, "string": 7, "int64": 9, "bool": 10, "bfloat16": 14, "uint16": 17,
             "uint32": 22, "uint64": 23}


def tensor_proto(a: np.ndarray, dtype_name: str) -> Any:
    """A TensorFlow `TensorProto` of `a` (strings in string_val, numbers in tensor_content)."""
    from tensorboardX.proto import tensor_pb2, tensor_shape_pb2
    code = _TB_DTYPE.get(dtype_name)
    if code is None:
        raise InvalidArgumentError(f"no TensorProto encoding for dtype {dtype_name}")
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in a.shape])
    t = tensor_pb2.TensorProto(dtype=code, tensor_shape=shape)
    if dtype_name == "string":
        t.string_val.extend(bytes(v) for v in a.reshape(-1))
    else:
        t.tensor_content = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    return t


@register_kernel("TensorSummaryV2")
def _tensor_summary(k: KernelContext) -> Any:
    tag, dtype_name = k.attrs["tag"], k.attrs["dtype"].name
    pb = _pb()
    meta = pb.SummaryMetadata.FromString(bytes(k.attrs.get("metadata") or b""))

    def compute(x: Any) -> tuple[np.ndarray]:
        v = pb.Summary.Value(tag=tag, tensor=tensor_proto(_host(x), dtype_name), metadata=meta)
        return (_string_scalar(pb.Summary(value=[v]).SerializeToString()),)
    return compute


@register_kernel("MergeSummary")
def _merge_summary(k: KernelContext) -> Any:
    pb = _pb()

    def compute(*xs: Any) -> tuple[np.ndarray]:
        out = pb.Summary()
        seen: set[str] = set()
        for x in xs:
            for data in np.asarray(x, dtype=object).reshape(-1):
                try:
                    s = pb.Summary.FromString(bytes(data))
                except Exception:  # protobuf's DecodeError
                    raise InvalidArgumentError(
                        "could not parse one of the summary inputs: merge only the outputs "
                        "of summary ops", node=k.name) from None
                for v in s.value:
                    if v.tag in seen:
                        raise InvalidArgumentError(
                            f"Duplicate tag {v.tag} found in summary inputs", node=k.name)
                    seen.add(v.tag)
                    out.value.append(v)
        return (_string_scalar(out.SerializeToString()),)
    return compute
