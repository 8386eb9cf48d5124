"""String kernels that must give TensorFlow's exact bytes (CPU): the hash buckets, base64 and
`StringFormat`.

- ``StringToHashBucketFast``: FarmHash's Fingerprint64 (the `cityhash` package's `farmhash`
  module, TF's kernel uses the same function) modulo the bucket count. Registered in
  `devices.kernels.lookup` (the OOV buckets of lookup tables use it), from `fingerprint64`.
- ``StringToHashBucket`` (TF's legacy op): TF's Hash64, MurmurHash64A with the seed
  0xDECAFCAFFE, written here (~20 lines: no maintained package ships this variant).
- ``StringToHashBucketStrong``: SipHash-2-4 keyed with the op's two 64-bit keys (the
  reference algorithm of Aumasson and Bernstein, written here; the PyPI bindings are
  unmaintained since 2013-2020).
- ``EncodeBase64`` / ``DecodeBase64``: the web-safe alphabet (- and _), padding optional.
- ``StringFormat``: TF's tensor summaries ("[1.5 2]", "..." past `summarize` items).
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel

_M64 = (1 << 64) - 1


def fingerprint64(s: bytes) -> int:
    import farmhash
    return int(farmhash.Fingerprint64(s))


def hash64(s: bytes, seed: int = 0xDECAFCAFFE) -> int:
    """TF's Hash64 (tensorflow/core/platform/hash.cc): MurmurHash64A."""
    m, r = 0xC6A4A7935BD1E995, 47
    n = len(s)
    h = (seed ^ (n * m)) & _M64
    full = n - n % 8
    for (k,) in struct.iter_unpack("<Q", s[:full]):
        k = (k * m) & _M64
        k ^= k >> r
        k = (k * m) & _M64
        h = ((h ^ k) * m) & _M64
    tail = s[full:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * m) & _M64
    h ^= h >> r
    h = (h * m) & _M64
    return h ^ (h >> r)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M64


def siphash24(k0: int, k1: int, s: bytes) -> int:
    """SipHash-2-4 of `s` under the 128-bit key (k0, k1)."""
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _M64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _M64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _M64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _M64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)
    full = len(s) - len(s) % 8
    for (m,) in struct.iter_unpack("<Q", s[:full]):
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = ((len(s) & 0xFF) << 56) | int.from_bytes(s[full:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def _map(x: Any, fn: Any, dtype: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=object)
    out = np.empty(arr.size, dtype=dtype)
    out[:] = [fn(v) for v in arr.reshape(-1).tolist()]
    return out.reshape(arr.shape)


def _cpu(op: str) -> Any:
    return register_kernel(op, device_types=("CPU",))


@_cpu("StringToHashBucket")
def _hash_bucket(k: KernelContext) -> Any:
    n = int(k.attrs["num_buckets"])
    return lambda x: (_map(x, lambda s: hash64(s) % n, np.int64),)


@_cpu("StringToHashBucketStrong")
def _hash_bucket_strong(k: KernelContext) -> Any:
    n = int(k.attrs["num_buckets"])
    k0, k1 = (int(v) & _M64 for v in k.attrs["key"])
    return lambda x: (_map(x, lambda s: siphash24(k0, k1, s) % n, np.int64),)


@_cpu("EncodeBase64")
def _encode_base64(k: KernelContext) -> Any:
    pad = bool(k.attrs.get("pad", False))

    def one(s: bytes) -> bytes:
        e = base64.urlsafe_b64encode(s)
        return e if pad else e.rstrip(b"=")
    return lambda x: (_map(x, one, object),)


@_cpu("DecodeBase64")
def _decode_base64(k: KernelContext) -> Any:
    def one(s: bytes) -> bytes:
        t = s.rstrip(b"=")
        if b"+" in t or b"/" in t:
            raise InvalidArgumentError("Invalid character found in base64: '+' or '/' (TF's "
                                       "base64 is web-safe: '-' and '_')")
        if len(t) % 4 == 1:
            raise InvalidArgumentError(f"Invalid base64 string: {len(s)} characters")
        try:
            return base64.b64decode(t + b"=" * (-len(t) % 4), altchars=b"-_", validate=True)
        except binascii.Error as e:
            raise InvalidArgumentError(f"Invalid character found in base64: {e}") from None
    return lambda x: (_map(x, one, object),)


def _num(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, bytes):
        return '"' + v.decode("utf-8", "replace") + '"'
    if isinstance(v, np.floating):  # TF's SimpleFtoa: %g at 6 (15) digits, else 9 (17)
        short, full = (6, 9) if v.dtype == np.float32 else (15, 17)
        t = f"{float(v):.{short}g}"
        return t if v.dtype.type(t) == v else f"{float(v):.{full}g}"
    return str(v)


def summarize(a: np.ndarray, n: int) -> str:
    """TF's Tensor::SummarizeValue layout: nested brackets, items separated by a space,
    rows by a newline, and "..." between the first and last `n` of a longer axis."""
    if a.ndim == 0:
        return _num(a.reshape(()).tolist() if a.dtype == object else a[()])

    def rec(x: np.ndarray, depth: int) -> str:
        count = x.shape[0]
        idx = list(range(count)) if n < 0 or count <= 2 * n else \
            [*range(n), -1, *range(count - n, count)]
        if x.ndim == 1:
            parts = ["..." if i < 0 else _num(x[i]) for i in idx]
            return "[" + " ".join(parts) + "]"
        sep = "\n" * (x.ndim - 1) + " " * (depth + 1)
        parts = ["..." if i < 0 else rec(x[i], depth + 1) for i in idx]
        return "[" + sep.join(parts) + "]"
    return rec(a, 0)


@_cpu("StringFormat")
def _string_format(k: KernelContext) -> Any:
    template = str(k.attrs["template"])
    ph = str(k.attrs.get("placeholder", "{}"))
    n = int(k.attrs.get("summarize", 3))
    pieces = template.split(ph)

    def compute(*inputs: Any) -> tuple:
        out = pieces[0]
        for x, tail in zip(inputs, pieces[1:], strict=True):
            out += summarize(np.asarray(x), n) + tail
        return (np.array(out.encode(), dtype=object),)
    return compute
