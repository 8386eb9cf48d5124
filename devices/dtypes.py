"""Element types: one frozen `DType` object per type, shared by every layer.

A DType is what the runtime passes around; strings (``"float32"``) appear only at the API and on
the wire, and `as_dtype` turns any accepted spelling into the object once.

    >>> as_dtype("float32") is float32
    True
    >>> float32.np
    dtype('float32')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

from devices.errors import InvalidArgumentError


@dataclass(frozen=True, eq=False)
class DType:
    """An element type. Identity is equality: there is one object per type."""

    name: str
    np: np.dtype = field(repr=False)
    is_floating: bool = False
    is_integer: bool = False
    is_bool: bool = False
    is_unsigned: bool = False
    is_resource: bool = False
    is_string: bool = False

    @property
    def size(self) -> int:
        return self.np.itemsize

    @property
    def min(self) -> float | int:
        return np.finfo(self.np).min if self.is_floating else np.iinfo(self.np).min

    @property
    def max(self) -> float | int:
        return np.finfo(self.np).max if self.is_floating else np.iinfo(self.np).max

    def __repr__(self) -> str:
        return f"af.{self.name}"

    def __reduce__(self) -> str:
        return self.name


def _f(name: str, npd) -> DType:
    return DType(name, np.dtype(npd), is_floating=True)


def _i(name: str, npd, unsigned: bool = False) -> DType:
    return DType(name, np.dtype(npd), is_integer=True, is_unsigned=unsigned)


float16 = _f("float16", np.float16)
bfloat16 = _f("bfloat16", ml_dtypes.bfloat16)
float32 = _f("float32", np.float32)
float64 = _f("float64", np.float64)
int8 = _i("int8", np.int8)
int16 = _i("int16", np.int16)
int32 = _i("int32", np.int32)
int64 = _i("int64", np.int64)
uint8 = _i("uint8", np.uint8, True)
uint16 = _i("uint16", np.uint16, True)
uint32 = _i("uint32", np.uint32, True)
uint64 = _i("uint64", np.uint64, True)
bool_ = DType("bool", np.dtype(np.bool_), is_bool=True)
# A handle to a resource (a variable, a queue) held by a device actor; never a NumPy array.
resource = DType("resource", np.dtype(object), is_resource=True)
# Byte strings, as TF has them: in memory a NumPy object array whose elements are `bytes`
# (what TF's Session.run returns); a scalar fetch gives `bytes`. `str` values are encoded as
# UTF-8 when they enter (constants, feeds). On the wire a msgpack list of bytes, never objects.
string = DType("string", np.dtype(object), is_string=True)

ALL: tuple[DType, ...] = (
    float16, bfloat16, float32, float64, int8, int16, int32, int64,
    uint8, uint16, uint32, uint64, bool_, resource, string,
)
_BY_NAME: dict[str, DType] = {d.name: d for d in ALL}
_BY_NAME.update({"bool_": bool_, "half": float16, "float": float32, "double": float64})
_BY_NP: dict[np.dtype, DType] = {d.np: d for d in ALL if not d.is_resource}


def as_dtype(value: object) -> DType:
    """Return the DType for a DType, a name, a NumPy dtype or a Python/NumPy scalar type."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = _BY_NAME.get(value)
        if found is not None:
            return found
    else:
        if value is bool:
            return bool_
        if value is int:
            return int32
        if value is float:
            return float32
        if value in (bytes, str, np.bytes_, np.str_):
            return string
        try:
            npd = np.dtype(value)
            found = string if npd.kind in "SU" else _BY_NP.get(npd)
        except TypeError:
            found = None
        if found is not None:
            return found
    known = ", ".join(sorted(d.name for d in ALL))
    raise InvalidArgumentError(f"unknown dtype {value!r}; use one of: {known}")


def dtype_of_value(value: object) -> DType:
    """The DType a Python or NumPy value converts to (Python floats become float32; bytes and
    str become string)."""
    if isinstance(value, bytes | str):
        return string
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype.hasobject:
            to_string_array(value)  # raises unless every element is bytes or str
        return as_dtype(value.dtype)
    arr = np.asarray(value)
    if arr.dtype.kind in "SUO":
        if arr.dtype.hasobject:
            to_string_array(arr)
        return string
    if arr.dtype == np.float64 and not isinstance(value, np.ndarray):
        return float32
    if arr.dtype == np.int64 and not isinstance(value, np.ndarray):
        return int32
    return as_dtype(arr.dtype)


def to_string_array(value: object) -> np.ndarray:
    """`value` (bytes, str, nested lists of them, or a NumPy S/U/object array) as a string
    tensor's memory: an object array of `bytes` (str is encoded as UTF-8). Anything else raises.

    >>> to_string_array(["a", b"b"])
    array([b'a', b'b'], dtype=object)
    """
    if isinstance(value, np.ndarray) and value.dtype.hasobject and all(
            type(v) is bytes for v in value.flat):
        return value
    arr = np.asarray(value, dtype=object) if not isinstance(value, bytes | str) else None
    if arr is None:
        out = np.empty((), dtype=object)
        out[()] = value.encode() if isinstance(value, str) else value
        return out
    out = np.empty(arr.shape, dtype=object)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat_in):
        if isinstance(v, bytes):
            flat_out[i] = bytes(v)
        elif isinstance(v, str):
            flat_out[i] = v.encode()
        else:
            raise InvalidArgumentError(
                f"a string tensor holds bytes or str, got {type(v).__name__} {v!r} at flat "
                f"index {i}; convert numbers with af.as_string or str() first")
    return out
