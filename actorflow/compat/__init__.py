"""``af.compat``: text/bytes conversions, and ``af.compat.v1``, which is actorflow itself
(``import actorflow.compat.v1 as tf`` gives the TF1 namespace, as with TensorFlow 2).

    af.compat.as_str(b"abc") == "abc";  af.compat.as_bytes("abc") == b"abc"
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_str", "as_bytes", "as_text", "as_str_any", "v1"]


def as_bytes(bytes_or_text: bytes | bytearray | str, encoding: str = "utf-8") -> bytes:
    if isinstance(bytes_or_text, bytearray):
        return bytes(bytes_or_text)
    if isinstance(bytes_or_text, str):
        return bytes_or_text.encode(encoding)
    if isinstance(bytes_or_text, bytes):
        return bytes_or_text
    raise TypeError(f"expected bytes or str, got {bytes_or_text!r}")


def as_text(bytes_or_text: bytes | str, encoding: str = "utf-8") -> str:
    if isinstance(bytes_or_text, str):
        return bytes_or_text
    if isinstance(bytes_or_text, bytes | bytearray):
        return bytes(bytes_or_text).decode(encoding)
    raise TypeError(f"expected bytes or str, got {bytes_or_text!r}")


as_str = as_text


def as_str_any(value: Any) -> str:
    return as_str(value) if isinstance(value, bytes | bytearray) else str(value)


def __getattr__(name: str) -> Any:
    if name == "v1":
        import actorflow
        return actorflow
    raise AttributeError(f"module 'af.compat' has no attribute '{name}'")
