"""Kernels of N-d indexing and linear algebra: GatherNd, ScatterNd, MatrixInverse, Cholesky,
Einsum (one kernel body for NumPy and CuPy where both have the function).

Bad input raises InvalidArgument naming the value: an index out of range (GatherNd/ScatterNd),
a singular matrix, a matrix that is not positive definite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _nd_index(indices: Any, shape: tuple[int, ...], what: str) -> tuple[Any, ...]:
    k = indices.shape[-1]
    if k > len(shape):
        raise InvalidArgumentError(f"{what}: index depth {k} is larger than the rank "
                                   f"{len(shape)} of the tensor it indexes")
    flat = indices.reshape(-1, k)
    for d in range(k):
        col = flat[:, d]
        if col.size and (col.min() < 0 or col.max() >= shape[d]):
            bad = flat[(col < 0) | (col >= shape[d])][0]
            raise InvalidArgumentError(f"{what}: index {list(map(int, bad))} is out of range "
                                       f"for shape {list(shape[:k])}")
    return tuple(indices[..., d] for d in range(k))


@register_kernel("GatherNd")
def _gather_nd(k: KernelContext) -> Any:
    xp = k.xp

    def compute(params: Any, indices: Any) -> tuple[Any]:
        idx = _nd_index(indices, params.shape, "gather_nd")
        return (xp.ascontiguousarray(params[idx]),)
    return compute


@register_kernel("ScatterNd")
def _scatter_nd(k: KernelContext) -> Any:
    xp = k.xp

    def compute(indices: Any, updates: Any, shape: Any) -> tuple[Any]:
        shp = tuple(int(d) for d in shape)
        out = xp.zeros(shp, updates.dtype)
        idx = _nd_index(indices, shp, "scatter_nd")
        if xp is np:
            np.add.at(out, idx, updates)
        else:  # pragma: no cover - GPU
            import cupyx
            cupyx.scatter_add(out, idx, updates)
        return (out,)
    return compute


@register_kernel("MatrixInverse")
def _inverse(k: KernelContext) -> Any:
    xp = k.xp
    adjoint = bool(k.attrs.get("adjoint", False))

    def compute(a: Any) -> tuple[Any]:
        try:
            inv = xp.linalg.inv(a)
        except np.linalg.LinAlgError:
            raise InvalidArgumentError("matrix_inverse: the input is not invertible "
                                       "(a singular matrix)") from None
        return (xp.swapaxes(inv, -1, -2).copy() if adjoint else inv,)
    return compute


@register_kernel("Cholesky")
def _cholesky(k: KernelContext) -> Any:
    xp = k.xp

    def compute(a: Any) -> tuple[Any]:
        try:
            return (xp.linalg.cholesky(a),)
        except np.linalg.LinAlgError:
            raise InvalidArgumentError("cholesky: the input is not symmetric positive "
                                       "definite") from None
    return compute


@register_kernel("Einsum")
def _einsum(k: KernelContext) -> Any:
    xp = k.xp
    eq = k.attrs["equation"]
    return lambda *xs: (xp.ascontiguousarray(xp.einsum(eq, *xs)),)
