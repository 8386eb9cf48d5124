"""Files as dataset sources, read lazily on the iterator's device (`devices.file_sources`),
with TF's signatures: `TFRecordDataset` (records of TFRecord files), `TextLineDataset` (lines
of text files), `FixedLengthRecordDataset` (fixed-size binary records, e.g. CIFAR-10's):

    ds = af.data.TFRecordDataset(["a.tfrecord", "b.tfrecord"], compression_type="GZIP")
    ds = ds.map(lambda r: af.parse_single_example(r, features)).batch(32)
    lines = af.data.TextLineDataset("iris.csv").skip(1).map(
        lambda l: af.decode_csv(l, [[0.0]] * 4 + [[0]]))

Each element is one scalar string. The file names may be a tensor fed when an initializable
iterator is initialized, or an element inside `interleave` / `flat_map`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from actorflow.data.dataset import Dataset, _value
from actorflow.graph import Tensor
from devices import dtypes
from devices.errors import InvalidArgumentError
from devices.tfrecord_io import normalize_compression

__all__ = ["TFRecordDataset", "TextLineDataset", "FixedLengthRecordDataset"]


class TFRecordDataset(Dataset):
    """The records of TFRecord files, one scalar string each, read lazily on the iterator's
    device; `num_parallel_reads` files are read at once, their records interleaved.
    `buffer_size` is accepted for compatibility (reads are buffered by the file layer)."""

    def __init__(self, filenames: Any, compression_type: Any = None, buffer_size: Any = None,
                 num_parallel_reads: Any = None):
        super().__init__(_desc("tfrecord", "TFRecordDataset", filenames, compression_type,
                               parallel=int(_const(num_parallel_reads) or 1)),
                         [dtypes.string], [()], None)


class TextLineDataset(Dataset):
    """The lines of text files (without their newline), one scalar string each."""

    def __init__(self, filenames: Any, compression_type: Any = None, buffer_size: Any = None,
                 num_parallel_reads: Any = None):
        super().__init__(_desc("textline", "TextLineDataset", filenames, compression_type,
                               parallel=int(_const(num_parallel_reads) or 1)),
                         [dtypes.string], [()], None)


class FixedLengthRecordDataset(Dataset):
    """Records of `record_bytes` bytes of binary files, after `header_bytes` and before
    `footer_bytes`; a new record every `hop_bytes` (default: back to back)."""

    def __init__(self, filenames: Any, record_bytes: int, header_bytes: int | None = None,
                 footer_bytes: int | None = None, buffer_size: Any = None,
                 compression_type: Any = None, num_parallel_reads: Any = None):
        if int(_const(record_bytes)) <= 0:
            raise InvalidArgumentError(f"FixedLengthRecordDataset needs record_bytes > 0, got "
                                       f"{record_bytes}")
        super().__init__(_desc("fixed_length", "FixedLengthRecordDataset", filenames,
                               compression_type, parallel=int(_const(num_parallel_reads) or 1),
                               record_bytes=int(_const(record_bytes)),
                               header_bytes=int(_const(header_bytes) or 0),
                               footer_bytes=int(_const(footer_bytes) or 0)),
                         [dtypes.string], [()], None)


def _desc(op: str, what: str, filenames: Any, compression_type: Any, **kw: Any) -> dict:
    compression = normalize_compression(_const(compression_type))
    if isinstance(filenames, Tensor):
        if filenames.dtype is not dtypes.string:
            raise InvalidArgumentError(f"{what}'s filenames must be strings, got "
                                       f"{filenames.dtype.name}")
        names = _value(filenames)
        if isinstance(names, np.ndarray):
            names = _plain(names)
    else:
        names = _plain(np.asarray(
            [filenames] if isinstance(filenames, str | bytes) else list(filenames),
            dtype=object))
    if isinstance(names, list) and not names:
        raise InvalidArgumentError(f"{what} needs at least one file name")
    return {"op": op, "arrays": [names], "compression": compression, **kw}


def _const(x: Any) -> Any:
    if isinstance(x, Tensor):
        from actorflow.op_def import constant_value
        v = constant_value(x)
        if v is None:
            raise InvalidArgumentError("a file dataset's compression_type, record sizes and "
                                       "num_parallel_reads must be known when the graph is "
                                       "built (constants)")
        v = np.asarray(v).item()
        return v.decode() if isinstance(v, bytes) else v
    return x


def _plain(a: np.ndarray) -> list[str]:
    """File names as a list of str (plain data in the dataset's description)."""
    out = []
    for v in np.asarray(a, dtype=object).reshape(-1).tolist():
        if isinstance(v, bytes):
            v = v.decode()
        if not isinstance(v, str):
            v = os.fspath(v)
        out.append(v)
    return out
