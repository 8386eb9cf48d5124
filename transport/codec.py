"""The wire format: one msgpack header frame plus one raw frame per tensor, never pickled.

What it owns: turning ``(header, tensors[, error])`` into a list of frames for
``Socket.send_multipart(frames, copy=False)`` and back, and checking everything that comes in.
It holds no state; the only configuration is a frozen `Limits`.

Layout of a message (after any ZeroMQ routing frames, which the caller strips)::

    frame 0   msgpack array  [VERSION, header, descriptors, keys, error]
    frame 1.. the raw bytes of each tensor, in order, little-endian, no padding

- ``header``: any msgpack value the caller chose (a dict for RPC); tuples come back as lists.
- ``descriptors``: one ``[dtype_name, shape, byte_order, layout]`` per tensor frame. The dtype
  travels by *name* (``"bfloat16"`` reports ``dtype.str == '<V2'``, so ``str`` is ambiguous) and
  maps back through `WIRE_DTYPES`, an allowlist (plus ``"string"``: a msgpack array of bin
  values, checked element by element, never an object); byte order is ``'<'`` or ``'|'`` (one-byte
  types); layout is ``'C'`` or ``'F'`` so a Fortran-ordered array travels without a copy.
- ``keys``: ``None`` when the tensors were a list, else their names (tensors were a dict).
- ``error``: ``None`` or ``[code, message, node, device]`` (a `devices.errors.OpError`).

Sending never copies a contiguous array: its frame is a byte view of the array's memory (pyzmq
copies frames under ``zmq.COPY_THRESHOLD`` = 64 KiB anyway, which is faster at that size).
**Do not mutate an array after sending it**: libzmq reads it later from its I/O thread.
Non-contiguous arrays are copied once with `np.ascontiguousarray`; big-endian ones are
byte-swapped once.

Receiving returns ``np.frombuffer(frame.buffer, dtype).reshape(shape)``: views of the received
frames, no copy (writable when the frames came from ``recv_multipart(copy=False)``). A frame
that is not aligned for its dtype is copied once, so kernels never see unaligned data.

The decoder trusts nothing: header size, frame count, per-tensor and total bytes are checked
against `Limits` before anything is allocated; msgpack runs with bounded string/array/map
lengths and no extension types; dtypes come only from the allowlist (never ``object``);
``'>'`` byte order is refused; ``prod(shape) * itemsize`` must equal the frame's length; bool
frames must hold only 0 and 1. Every failure raises `InvalidArgumentError` naming what is wrong.

    >>> frames = encode({"step": 3}, {"w": np.ones((2, 2), np.float32)})
    >>> header, tensors = decode(frames)
    >>> header, tensors["w"].shape
    ({'step': 3}, (2, 2))
    >>> decode(encode_error(NotFoundError("no tensor 'x:0'")))
    Traceback (most recent call last):
    devices.errors.NotFoundError: NotFound: no tensor 'x:0'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import ml_dtypes
import msgpack
import numpy as np

from devices import errors as _errors
from devices.errors import (
    Code,
    InvalidArgumentError,
    NotFoundError,  # noqa: F401  (used in the module docstring's example)
    OpError,
    error_from_code,
)

VERSION = 1

#: The only element types that may cross the wire, by the name that travels. Little-endian.
WIRE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(t).newbyteorder("<")
    for name, t in (
        ("bool", np.bool_),
        ("int8", np.int8),
        ("int16", np.int16),
        ("int32", np.int32),
        ("int64", np.int64),
        ("uint8", np.uint8),
        ("uint16", np.uint16),
        ("uint32", np.uint32),
        ("uint64", np.uint64),
        ("float16", np.float16),
        ("float32", np.float32),
        ("float64", np.float64),
        ("bfloat16", ml_dtypes.bfloat16),
    )
}
# Sender side: native dtype -> wire name. A big-endian dtype is not a key; it is swapped first.
_NAME_OF: dict[np.dtype, str] = {np.dtype(dt.newbyteorder("=")): n for n, dt in WIRE_DTYPES.items()}
_NAME_OF.update({dt: n for n, dt in WIRE_DTYPES.items()})
_ALLOWED = ", ".join(WIRE_DTYPES)


def wire_name(dt: np.dtype) -> str | None:
    """The wire name of a native-order dtype on the allowlist, else None."""
    return _NAME_OF.get(dt)

Tensors = dict[str, np.ndarray] | list[np.ndarray]
Frame = Any  # bytes, memoryview, zmq.Frame, or anything exporting a contiguous buffer

#: Longest error message that is sent; longer ones are cut (a message is for people).
MAX_ERROR_MESSAGE = 16 * 1024


@dataclass(frozen=True)
class Limits:
    """What the decoder accepts; anything larger is refused before it is allocated.

    Set `max_tensor_bytes` on sockets too (``zmq.MAXMSGSIZE``, done by `transport.zsocket`),
    so that libzmq drops an oversized frame from its declared length, before reading it.
    """

    max_header_bytes: int = 1 << 20  # the msgpack frame
    max_frames: int = 1025  # header + tensors (routing frames not counted)
    max_tensor_bytes: int = 4 << 30  # one tensor frame
    max_total_bytes: int = 8 << 30  # every frame of one message together
    max_ndim: int = 32

    def __post_init__(self) -> None:
        for name in (
            "max_header_bytes",
            "max_frames",
            "max_tensor_bytes",
            "max_total_bytes",
            "max_ndim",
        ):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"Limits.{name} must be >= 1, got {getattr(self, name)}")


DEFAULT_LIMITS = Limits()


class Message(NamedTuple):
    """A decoded message. `error` is set (and tensors empty) when the sender sent an error."""

    header: Any
    tensors: Tensors
    error: OpError | None


# --------------------------------------------------------------------------------------------
# Encoding


def _tensor_frame(value: object, where: str) -> tuple[list, object]:
    """One tensor -> (descriptor, frame). The frame is a uint8 view, copied only if it must be."""
    arr = value if type(value) is np.ndarray else np.asarray(value)
    dt = arr.dtype
    name = _NAME_OF.get(dt)
    if name is None:
        if dt.hasobject:
            return _string_frame(arr, where)
        if dt.byteorder == ">":
            arr = arr.astype(dt.newbyteorder("<"))
            name = _NAME_OF.get(arr.dtype)
        if name is None:
            raise InvalidArgumentError(
                f"cannot send tensor {where}: dtype {dt} is not allowed on the wire; "
                f"convert it to one of: {_ALLOWED}"
            )
    if arr.flags.c_contiguous:
        layout, flat = "C", arr.reshape(-1)
    elif arr.flags.f_contiguous:
        layout, flat = "F", arr.T.reshape(-1)
    else:
        layout, flat = "C", np.ascontiguousarray(arr).reshape(-1)
    order = "|" if dt.itemsize == 1 else "<"
    # A uint8 view: every dtype (bfloat16 included) exports it as a plain byte buffer.
    return [name, list(arr.shape), order, layout], flat.view(np.uint8)


# String tensors (dtype "string", #16): the frame is one msgpack array of the elements as bin
# values, C order; the descriptor is ["string", shape, "|", "C"]. Only bytes ever travel.
STRING = "string"


def _string_frame(arr: np.ndarray, where: str) -> tuple[list, object]:
    items = arr.reshape(-1).tolist()
    for i, v in enumerate(items):
        if type(v) is not bytes:
            raise InvalidArgumentError(
                f"cannot send tensor {where}: a string tensor holds only bytes, but element "
                f"{i} is {type(v).__name__}; an object array of anything else is not allowed "
                "on the wire")
    return [STRING, list(arr.shape), "|", "C"], msgpack.packb(items, use_bin_type=True)


def _decode_strings(raw_shape: object, frame: Frame, i: int, limits: Limits) -> np.ndarray:
    shape = _shape(raw_shape, i, limits)
    buf = _buffer(frame)
    n = buf.nbytes
    count = math.prod(shape)
    if count > n:  # every element takes at least one byte of msgpack
        raise InvalidArgumentError(
            f"tensor #{i} (string{list(shape)}) declares {count} elements in a {n}-byte frame")
    try:
        items = msgpack.unpackb(buf, raw=False, use_list=True, max_ext_len=0, max_str_len=0,
                                max_bin_len=n, max_array_len=count, max_map_len=0)
    except Exception as exc:
        raise InvalidArgumentError(
            f"malformed message: tensor #{i} (string) is not a msgpack list of bytes "
            f"({type(exc).__name__}: {exc})") from None
    if type(items) is not list or len(items) != count or not all(
            type(v) is bytes for v in items):
        raise InvalidArgumentError(
            f"malformed message: tensor #{i} (string{list(shape)}) must carry {count} bytes "
            "elements")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(shape)


def encode(
    header: Any = None,
    tensors: Mapping[str, object] | Sequence[object] | None = None,
    *,
    error: BaseException | None = None,
) -> list[object]:
    """Return the frames of one message: the msgpack header, then one raw frame per tensor.

    `tensors` is a dict (names must be str) or a sequence of arrays (anything `np.asarray`
    accepts). With `error`, the message carries that error (see `encode_error`) and no tensors.
    Raises `InvalidArgumentError` for a dtype off the allowlist or a header msgpack can't pack.
    """
    descs: list[list] = []
    frames: list[object] = [b""]
    keys: list[str] | None = None
    if error is not None:
        if tensors:
            raise InvalidArgumentError("a message carries either an error or tensors, not both")
        err = error_to_wire(error)
    else:
        err = None
        if isinstance(tensors, Mapping):
            keys = []
            for k, v in tensors.items():
                if not isinstance(k, str):
                    raise InvalidArgumentError(
                        f"tensor names must be str, got {type(k).__name__} {k!r}"
                    )
                keys.append(k)
                d, f = _tensor_frame(v, repr(k))
                descs.append(d)
                frames.append(f)
        elif tensors is not None:
            if isinstance(tensors, str | bytes | np.ndarray):
                raise InvalidArgumentError(
                    "tensors must be a dict or a list of arrays, not a single "
                    f"{type(tensors).__name__}; wrap it in a list"
                )
            for i, v in enumerate(tensors):
                d, f = _tensor_frame(v, f"#{i}")
                descs.append(d)
                frames.append(f)
    try:
        frames[0] = msgpack.packb([VERSION, header, descs, keys, err], use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(
            f"cannot encode message header {_short(header)}: {exc}; headers hold only None, "
            "bool, int, float, str, bytes, lists and dicts (send arrays as tensors)"
        ) from None
    return frames


def error_to_wire(exc: BaseException) -> list:
    """``[code, message, node, device]`` for any exception.

    An `OpError` keeps its code, node and device. Anything else becomes Unknown with its type
    and message, so the receiver sees what happened without our trusting the type.
    """
    if isinstance(exc, OpError):
        code, message, node, device = int(exc.code), str(exc.message), exc.node, exc.device
    else:
        code, message, node, device = int(Code.UNKNOWN), f"{type(exc).__name__}: {exc}", None, None
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[:MAX_ERROR_MESSAGE] + " ...(cut)"
    return [code, message, _opt_str(node), _opt_str(device)]


def encode_error(exc: BaseException, header: Any = None) -> list[object]:
    """The frames of a message that carries `exc` (see `error_to_wire`) and `header`."""
    return encode(header, None, error=exc)


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def _short(v: object, n: int = 80) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


# --------------------------------------------------------------------------------------------
# Decoding


def _buffer(frame: Frame) -> memoryview:
    buf = getattr(frame, "buffer", None)  # zmq.Frame
    if buf is None:
        buf = memoryview(frame)
    if buf.ndim != 1 or buf.itemsize != 1:
        buf = buf.cast("B")
    return buf


def _unpack_header(buf: memoryview, limits: Limits) -> Any:
    n = buf.nbytes
    if n == 0:
        raise InvalidArgumentError("malformed message: the header frame is empty")
    if n > limits.max_header_bytes:
        raise InvalidArgumentError(
            f"message header is {n} bytes, over the limit of {limits.max_header_bytes} "
            "(Limits.max_header_bytes)"
        )
    try:
        # Every length is bounded by the frame size; no extension types, no timestamps.
        return msgpack.unpackb(
            buf,
            raw=False,
            use_list=True,
            strict_map_key=False,
            max_ext_len=0,
            max_str_len=n,
            max_bin_len=n,
            max_array_len=n,
            max_map_len=n // 2 + 1,
        )
    except Exception as exc:  # msgpack raises ValueError, FormatError, StackError, ...
        raise InvalidArgumentError(
            f"malformed message: the header frame ({n} bytes) is not valid msgpack "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _shape(raw: object, i: int, limits: Limits) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > limits.max_ndim:
        raise InvalidArgumentError(
            f"malformed message: tensor #{i} shape {_short(raw)} is not a list of at most "
            f"{limits.max_ndim} sizes"
        )
    for s in raw:
        if type(s) is not int or s < 0:
            raise InvalidArgumentError(
                f"malformed message: tensor #{i} shape {_short(raw)} has a size that is not a "
                "non-negative int"
            )
    return tuple(raw)


def _decode_tensor(desc: object, frame: Frame, i: int, limits: Limits) -> np.ndarray:
    if not (isinstance(desc, list) and len(desc) == 4):
        raise InvalidArgumentError(
            f"malformed message: tensor #{i} descriptor {_short(desc)} is not "
            "[dtype, shape, byte_order, layout]"
        )
    name, raw_shape, order, layout = desc
    if name == STRING and order == "|" and layout == "C":
        return _decode_strings(raw_shape, frame, i, limits)
    dt = WIRE_DTYPES.get(name) if isinstance(name, str) else None
    if dt is None:
        raise InvalidArgumentError(
            f"tensor #{i} has dtype {_short(name)}, which is not allowed on the wire "
            f"(allowed: {_ALLOWED})"
        )
    if order not in ("<", "|"):
        raise InvalidArgumentError(
            f"tensor #{i} ({name}) has byte order {_short(order)}; only little-endian ('<', or "
            "'|' for one-byte types) is accepted"
        )
    if layout not in ("C", "F"):
        raise InvalidArgumentError(f"tensor #{i} has layout {_short(layout)}; expected 'C' or 'F'")
    shape = _shape(raw_shape, i, limits)
    buf = _buffer(frame)
    want = math.prod(shape) * dt.itemsize
    if want != buf.nbytes:
        raise InvalidArgumentError(
            f"tensor #{i} ({name}{list(shape)}) needs {want} bytes but its frame holds "
            f"{buf.nbytes}; the message is corrupt or truncated"
        )
    arr = np.frombuffer(buf, dtype=dt)
    if not arr.flags.aligned:
        arr = arr.copy()
    if dt.kind == "b" and arr.size and arr.view(np.uint8).max() > 1:
        raise InvalidArgumentError(f"tensor #{i} (bool) holds bytes other than 0 and 1")
    if layout == "F":
        return arr.reshape(shape[::-1]).T
    return arr.reshape(shape)


def _decode_error(raw: object) -> OpError:
    if not (
        isinstance(raw, list)
        and len(raw) == 4
        and type(raw[0]) is int
        and isinstance(raw[1], str)
        and all(v is None or isinstance(v, str) for v in raw[2:])
    ):
        raise InvalidArgumentError(
            f"malformed message: error field {_short(raw)} is not [code, message, node, device]"
        )
    code, message, node, device = raw
    try:
        return error_from_code(code, message, node=node, device=device)
    except TypeError:
        # error_from_code builds errors with cls.__new__(cls), which MemoryError subclasses
        # (ResourceExhaustedError) refuse; build those through their constructor.
        cls = _CLASS_OF_CODE.get(code, _errors.UnknownError)
        return cls(message, node=node, device=device)


_CLASS_OF_CODE: dict[int, type[OpError]] = {
    int(cls.code): cls
    for cls in vars(_errors).values()
    if isinstance(cls, type) and issubclass(cls, OpError) and cls is not OpError
}


def decode_message(frames: Sequence[Frame], limits: Limits = DEFAULT_LIMITS) -> Message:
    """Check and decode one message (routing frames already removed) into a `Message`.

    An error sent by the peer is returned in `Message.error`, not raised; a message that breaks
    the format or the limits raises `InvalidArgumentError`.
    """
    n = len(frames)
    if n == 0:
        raise InvalidArgumentError("malformed message: no frames at all")
    if n > limits.max_frames:
        raise InvalidArgumentError(
            f"message has {n} frames, over the limit of {limits.max_frames} (Limits.max_frames)"
        )
    head = _buffer(frames[0])
    total = head.nbytes
    bufs = []
    for i in range(1, n):
        b = _buffer(frames[i])
        if b.nbytes > limits.max_tensor_bytes:
            raise InvalidArgumentError(
                f"tensor #{i - 1} is {b.nbytes} bytes, over the limit of "
                f"{limits.max_tensor_bytes} (Limits.max_tensor_bytes)"
            )
        total += b.nbytes
        bufs.append(b)
    if total > limits.max_total_bytes:
        raise InvalidArgumentError(
            f"message is {total} bytes, over the limit of {limits.max_total_bytes} "
            "(Limits.max_total_bytes)"
        )
    env = _unpack_header(head, limits)
    if not (isinstance(env, list) and len(env) == 5):
        raise InvalidArgumentError(
            f"malformed message: header {_short(env)} is not [version, header, descriptors, "
            "keys, error]"
        )
    version, header, descs, keys, err = env
    if version != VERSION:
        raise InvalidArgumentError(
            f"message has wire version {_short(version)}; this side speaks {VERSION}"
        )
    if not isinstance(descs, list) or len(descs) != n - 1:
        got = len(descs) if isinstance(descs, list) else _short(descs)
        raise InvalidArgumentError(
            f"malformed message: the header describes {got} tensors but {n - 1} tensor frames "
            "arrived (truncated message?)"
        )
    if err is not None:
        if descs:
            raise InvalidArgumentError("malformed message: carries both an error and tensors")
        return Message(header, [], _decode_error(err))
    arrays = [
        _decode_tensor(d, b, i, limits) for i, (d, b) in enumerate(zip(descs, bufs, strict=True))
    ]
    if keys is None:
        return Message(header, arrays, None)
    if (
        not isinstance(keys, list)
        or len(keys) != len(arrays)
        or not all(isinstance(k, str) for k in keys)
        or len(set(keys)) != len(keys)
    ):
        raise InvalidArgumentError(
            f"malformed message: tensor names {_short(keys)} are not {len(arrays)} distinct strings"
        )
    return Message(header, dict(zip(keys, arrays, strict=True)), None)


def decode(frames: Sequence[Frame], limits: Limits = DEFAULT_LIMITS) -> tuple[Any, Tensors]:
    """Decode one message into ``(header, tensors)``; raise the error if the peer sent one.

    The error raised is the sender's class (`devices.errors`), rebuilt from its code.
    """
    header, tensors, error = decode_message(frames, limits)
    if error is not None:
        raise error
    return header, tensors
