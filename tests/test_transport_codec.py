"""The wire codec: round trips for every allowed dtype and shape, zero-copy receive, and the
decoder refusing everything it should (with an InvalidArgumentError that says why)."""

import ml_dtypes
import msgpack
import numpy as np
import pytest
import zmq

from devices import errors
from transport.codec import (
    WIRE_DTYPES,
    Limits,
    decode,
    decode_message,
    encode,
    encode_error,
)

RNG = np.random.default_rng()
SHAPES = [(), (0,), (7,), (3, 5), (2, 0, 4), (2, 3, 4)]


def _random(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if dtype.kind == "b":
        return RNG.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return RNG.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return RNG.standard_normal(size=shape).astype(dtype)


def _frames_as_received(frames: list) -> list:
    """Frames as a socket hands them over: separate owned buffers, not views of the arrays."""
    return [bytes(memoryview(f).cast("B")) if not isinstance(f, bytes) else f for f in frames]


@pytest.mark.parametrize("name", sorted(WIRE_DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_every_dtype_and_shape(name: str, shape: tuple[int, ...]) -> None:
    dt = WIRE_DTYPES[name]
    a = _random(dt, shape)
    header, tensors = decode(_frames_as_received(encode({"step": 7}, {"a": a})))
    assert header == {"step": 7}
    b = tensors["a"]
    assert b.dtype == a.dtype and b.shape == a.shape
    # bit exact, NaNs included
    np.testing.assert_array_equal(b.reshape(-1).view(np.uint8), a.reshape(-1).view(np.uint8))


def test_bfloat16_travels_by_name_not_by_str() -> None:
    a = np.array([1.5, -2.25, 3.0e38], dtype=ml_dtypes.bfloat16)
    assert a.dtype.str == "<V2"  # the reason the name is sent
    frames = encode(None, [a])
    assert msgpack.unpackb(frames[0])[2][0][0] == "bfloat16"
    (b,) = decode(frames)[1]
    assert b.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(b.astype(np.float32), a.astype(np.float32))


def test_list_and_dict_tensors_keep_their_kind_and_order() -> None:
    xs = [np.arange(3), np.ones((2, 2), np.float32), np.array(True)]
    _, out = decode(encode({}, xs))
    assert isinstance(out, list) and [x.dtype for x in out] == [x.dtype for x in xs]
    d = {"z": np.arange(2), "a": np.zeros(1)}
    _, out = decode(encode({}, d))
    assert isinstance(out, dict) and list(out) == ["z", "a"]
    _, out = decode(encode({"only": "header"}))
    assert out == []


def test_non_contiguous_fortran_and_big_endian_arrays() -> None:
    base = RNG.standard_normal((6, 8))
    strided = base[::2, 1::3]
    fortran = np.asfortranarray(RNG.standard_normal((4, 5)).astype(np.float32))
    big = np.arange(10, dtype=">i4")
    _, (s, f, b) = decode(_frames_as_received(encode(None, [strided, fortran, big])))
    np.testing.assert_array_equal(s, strided)
    np.testing.assert_array_equal(f, fortran)
    np.testing.assert_array_equal(b, big)
    assert b.dtype == np.dtype("<i4")


def test_fortran_array_is_sent_without_a_copy() -> None:
    f = np.asfortranarray(np.ones((300, 200), np.float64))
    frames = encode(None, [f])
    assert np.shares_memory(frames[1], f)
    assert msgpack.unpackb(frames[0])[2][0][3] == "F"


def test_decoded_arrays_are_views_of_received_frames() -> None:
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        b.connect(a.bind("tcp://127.0.0.1:*").addr)
        x = RNG.standard_normal((512, 256)).astype(np.float32)  # 512 KiB: above COPY_THRESHOLD
        a.send_multipart(encode({"n": 1}, [x]), copy=False)
        frames = b.recv_multipart(copy=False)
        _, (y,) = decode(frames)
        np.testing.assert_array_equal(y, x)
        assert np.shares_memory(y, np.frombuffer(frames[1].buffer, np.uint8))
        assert not np.shares_memory(y, x)
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()


@pytest.mark.parametrize(
    "exc",
    [
        errors.NotFoundError("no tensor 'x:0'", node="fetch", device="/job:w/task:0/device:CPU:0"),
        errors.InvalidArgumentError("shape mismatch", node="matmul"),
        errors.ResourceExhaustedError("pool full"),
        errors.AbortedError("step aborted"),
        errors.DeadlineExceededError("too slow"),
        errors.UnavailableError("worker gone", device="/job:ps/task:1/device:CPU:0"),
        errors.InternalError("oops"),
        errors.CancelledError("cancelled"),
    ],
)
def test_errors_round_trip_with_their_class(exc: errors.OpError) -> None:
    with pytest.raises(type(exc)) as info:
        decode(_frames_as_received(encode_error(exc, {"id": 3})))
    got = info.value
    assert type(got) is type(exc)
    assert (got.message, got.node, got.device) == (exc.message, exc.node, exc.device)
    assert str(got) == str(exc)
    header, tensors, error = decode_message(encode_error(exc, {"id": 3}))
    assert header == {"id": 3} and tensors == [] and type(error) is type(exc)


def test_foreign_exception_becomes_unknown_with_its_type() -> None:
    with pytest.raises(errors.UnknownError, match="ZeroDivisionError: division by zero"):
        decode(encode_error(ZeroDivisionError("division by zero")))


def test_unknown_error_code_becomes_unknown() -> None:
    frames = [msgpack.packb([1, None, [], None, [999, "from the future", None, None]])]
    with pytest.raises(errors.UnknownError, match="from the future"):
        decode(frames)


# --------------------------------------------------------------------------------------------
# Refusals


def _raw(header_env: list, *tensor_frames: bytes) -> list[bytes]:
    return [msgpack.packb(header_env, use_bin_type=True), *tensor_frames]


def _refused(frames: list, match: str, limits: Limits | None = None) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=match):
        if limits is None:
            decode(frames)
        else:
            decode(frames, limits)


def test_encoder_refuses_object_and_unlisted_dtypes() -> None:
    for bad in (
        np.array([object(), 1], dtype=object),
        np.array(["a", "b"]),
        np.array([1 + 2j]),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
    ):
        with pytest.raises(errors.InvalidArgumentError, match="not allowed on the wire"):
            encode(None, [bad])


def test_encoder_refuses_headers_msgpack_cannot_pack() -> None:
    with pytest.raises(errors.InvalidArgumentError, match="cannot encode message header"):
        encode({"x": np.float32(1.0)})
    with pytest.raises(errors.InvalidArgumentError, match="tensor names must be str"):
        encode(None, {1: np.zeros(1)})
    with pytest.raises(errors.InvalidArgumentError, match="wrap it in a list"):
        encode(None, np.zeros(3))


def test_decoder_refuses_object_dtype() -> None:
    payload = b"\x00" * 16
    _refused(
        _raw([1, None, [["object", [2], "|", "C"]], None, None], payload),
        "dtype 'object', which is not allowed",
    )
    _refused(_raw([1, None, [["O", [2], "|", "C"]], None, None], payload), "not allowed")
    _refused(_raw([1, None, [[7, [2], "|", "C"]], None, None], payload), "not allowed")


def test_decoder_refuses_big_endian_and_bad_layout() -> None:
    payload = b"\x00" * 8
    _refused(_raw([1, None, [["float32", [2], ">", "C"]], None, None], payload), "byte order '>'")
    _refused(_raw([1, None, [["float32", [2], "<", "X"]], None, None], payload), "layout")


def test_decoder_refuses_shape_disagreeing_with_frame_length() -> None:
    frames = encode(None, [np.zeros((4, 4), np.float32)])
    short = [frames[0], bytes(memoryview(frames[1]))[:-4]]
    _refused(short, r"float32\[4, 4\]\) needs 64 bytes but its frame holds 60")
    lying = _raw([1, None, [["int64", [3], "<", "C"]], None, None], b"\x00" * 25)
    _refused(lying, "needs 24 bytes but its frame holds 25")
    _refused(_raw([1, None, [["int8", [-1], "|", "C"]], None, None], b""), "non-negative")
    # an absurd declared size is compared, never allocated
    _refused(
        _raw([1, None, [["int64", [2**40, 2**40], "<", "C"]], None, None], b"\x00" * 8),
        "needs 9671406556917033397649408 bytes but its frame holds 8",
    )
    _refused(_raw([1, None, [["int8", "3", "|", "C"]], None, None], b"abc"), "shape")


def test_decoder_refuses_truncated_messages() -> None:
    frames = encode({"a": 1}, [np.zeros(3), np.ones(2)])
    _refused(frames[:-1], "describes 2 tensors but 1 tensor frames arrived")
    _refused(frames[:1], "describes 2 tensors but 0 tensor frames arrived")
    _refused([], "no frames")
    _refused([frames[0][: len(frames[0]) // 2], *frames[1:]], "not valid msgpack")
    _refused([frames[0], frames[1], frames[2], b"extra"], "describes 2 tensors but 3")


def test_decoder_refuses_random_bytes_and_wrong_structures() -> None:
    for _ in range(200):
        junk = RNG.bytes(int(RNG.integers(1, 64)))
        with pytest.raises(errors.InvalidArgumentError):
            decode([junk])
    _refused([b""], "header frame is empty")
    _refused([msgpack.packb({"not": "a list"})], "is not \\[version")
    _refused([msgpack.packb([2, None, [], None, None])], "wire version 2")
    _refused([msgpack.packb([1, None, [], None, ["x"]])], "error field")
    _refused(
        [msgpack.packb([1, None, [["int8", [1], "|", "C"]], ["a", "a"], None]), b"\x00"],
        "1 distinct strings|distinct",
    )
    _refused(
        _raw([1, None, [["int8", [1], "|", "C"]], ["a", "b"], None], b"\x00"), "distinct strings"
    )
    # msgpack extension types (and timestamps) are refused, never interpreted
    _refused([msgpack.packb([1, msgpack.ExtType(5, b"xx"), [], None, None])], "not valid msgpack")


def test_decoder_refuses_bool_bytes_other_than_0_and_1() -> None:
    _refused(_raw([1, None, [["bool", [3], "|", "C"]], None, None], b"\x00\x01\x02"), "bool")


def test_limits_are_enforced_before_decoding() -> None:
    big = encode({"pad": "x" * 1000}, [np.zeros(1000, np.float32), np.zeros(10, np.float32)])
    _refused(big, "header is .* over the limit of 100", Limits(max_header_bytes=100))
    _refused(big, "3 frames, over the limit of 2", Limits(max_frames=2))
    _refused(big, "4000 bytes, over the limit of 1000", Limits(max_tensor_bytes=1000))
    _refused(big, "over the limit of 4096 \\(Limits.max_total_bytes", Limits(max_total_bytes=4096))
    deep = _raw([1, None, [["int8", [1] * 40, "|", "C"]], None, None], b"\x00")
    _refused(deep, "at most 32 sizes")
    # a header that declares a huge string is refused by msgpack's bounded lengths, not allocated
    lie = b"\x95\x01\xdb\x7f\xff\xff\xff" + b"abc"
    _refused([lie], "not valid msgpack")
    with pytest.raises(errors.InvalidArgumentError, match="must be >= 1"):
        Limits(max_frames=0)
