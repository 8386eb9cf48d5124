"""`af.data.TFRecordDataset`: the records of TFRecord files as a dataset source, read lazily
on the iterator's device (`devices.tfrecord_dataset`), TF's signature:

    ds = af.data.TFRecordDataset(["a.tfrecord", "b.tfrecord"], compression_type="GZIP")
    ds = ds.map(lambda r: af.parse_single_example(r, features)).batch(32)

The file names may be a tensor fed when an initializable iterator is initialized.
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

__all__ = ["TFRecordDataset"]


class TFRecordDataset(Dataset):
    """The records of TFRecord files, one scalar string each, read lazily on the iterator's
    device; `num_parallel_reads` files are read at once, their records interleaved.
    `buffer_size` is accepted for compatibility (reads are buffered by the file layer)."""

    def __init__(self, filenames: Any, compression_type: Any = None, buffer_size: Any = None,
                 num_parallel_reads: Any = None):
        compression = normalize_compression(_const(compression_type))
        if isinstance(filenames, Tensor):
            if filenames.dtype is not dtypes.string:
                raise InvalidArgumentError(f"TFRecordDataset's filenames must be strings, got "
                                           f"{filenames.dtype.name}")
            names = _value(filenames)
            if isinstance(names, np.ndarray):
                names = _plain(names)
        else:
            names = _plain(np.asarray(
                [filenames] if isinstance(filenames, str | bytes) else list(filenames),
                dtype=object))
        if isinstance(names, list) and not names:
            raise InvalidArgumentError("TFRecordDataset needs at least one file name")
        parallel = int(_const(num_parallel_reads) or 1)
        super().__init__({"op": "tfrecord", "arrays": [names], "compression": compression,
                          "parallel": parallel}, [dtypes.string], [()], None)


def _const(x: Any) -> Any:
    if isinstance(x, Tensor):
        from actorflow.op_def import constant_value
        v = constant_value(x)
        if v is None:
            raise InvalidArgumentError("TFRecordDataset's compression_type and "
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
