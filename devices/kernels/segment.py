"""Kernels of the segment reductions beyond the sum: UnsortedSegmentMax / UnsortedSegmentMin
(empty segments hold the dtype's lowest / highest value, as in TF; negative ids are dropped;
ids >= num_segments are an error)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _segment_extreme(kind: str) -> Any:
    def factory(k: KernelContext) -> Any:
        dt = k.out_dtypes[0].np
        ufunc = np.maximum if kind == "max" else np.minimum
        if dt.kind == "f":  # TF: numeric_limits<T>::lowest() / max(), not infinities
            info_f = np.finfo(dt)
            init = info_f.min if kind == "max" else info_f.max
        else:
            info = np.iinfo(dt)
            init = info.min if kind == "max" else info.max

        def compute(data: Any, ids: Any, num_segments: Any) -> tuple[Any]:
            n = int(num_segments)
            if data.shape[:ids.ndim] != ids.shape:
                raise InvalidArgumentError(f"'{k.name}': segment_ids of shape {ids.shape} must "
                                           f"be a prefix of the shape of data {data.shape}")
            flat_ids = ids.reshape(-1)
            rows = data.reshape((flat_ids.size,) + data.shape[ids.ndim:])
            if flat_ids.size and flat_ids.max() >= n:
                raise InvalidArgumentError(f"'{k.name}': segment id {int(flat_ids.max())} is "
                                           f"not below num_segments={n}")
            keep = flat_ids >= 0
            out = np.full((n,) + data.shape[ids.ndim:], init, dtype=dt)
            ufunc.at(out, flat_ids[keep], rows[keep])
            return (out,)
        return compute
    return factory


register_kernel("UnsortedSegmentMax", device_types=("CPU",))(_segment_extreme("max"))
register_kernel("UnsortedSegmentMin", device_types=("CPU",))(_segment_extreme("min"))
