"""Kernels of the matrix ops beyond the inverse and Cholesky (`actorflow/ops/matrix_ops.py`):
MatrixBandPart, MatrixDeterminant, LogMatrixDeterminant, MatrixSolve, MatrixTriangularSolve,
Cross; and of the counting ops (`actorflow/ops/counting_ops.py`): Bincount, ListDiff; and
MirrorPad / MirrorPadGrad (`pad(..., mode="REFLECT" | "SYMMETRIC")`).

Batched over leading dimensions as TensorFlow's are (NumPy's linalg broadcasts the same
way). A singular matrix in a solve is an InvalidArgumentError naming the op, as in TF.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _band_mask(xp: Any, m: int, n: int, lower: int, upper: int, dtype: Any) -> Any:
    """1 where 0 <= i - j <= lower (any, when lower < 0) and 0 <= j - i <= upper."""
    i = xp.arange(m)[:, None]
    j = xp.arange(n)[None, :]
    keep = xp.ones((m, n), bool)
    if lower >= 0:
        keep &= (i - j) <= lower
    if upper >= 0:
        keep &= (j - i) <= upper
    return keep.astype(dtype)


@register_kernel("MatrixBandPart")
def _band_part(k: KernelContext) -> Any:
    xp = k.xp

    def compute(x: Any, lower: Any, upper: Any) -> tuple[Any]:
        if x.ndim < 2:
            raise InvalidArgumentError(f"'{k.name}': matrix_band_part needs a tensor of rank "
                                       f">= 2, got shape {list(x.shape)}")
        lo, up = int(lower), int(upper)
        m, n = x.shape[-2:]
        if lo > m or up > n:
            raise InvalidArgumentError(f"'{k.name}': num_lower {lo} must be at most {m} and "
                                       f"num_upper {up} at most {n} (or negative: all)")
        return (x * _band_mask(xp, m, n, lo, up, x.dtype),)
    return compute


def _square(k: KernelContext, a: Any) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise InvalidArgumentError(f"'{k.name}': {k.op} needs square matrices, got shape "
                                   f"{list(a.shape)}")


@register_kernel("MatrixDeterminant")
def _determinant(k: KernelContext) -> Any:
    xp = k.xp

    def compute(a: Any) -> tuple[Any]:
        _square(k, a)
        return (xp.asarray(xp.linalg.det(a), dtype=a.dtype),)
    return compute


@register_kernel("LogMatrixDeterminant")
def _log_determinant(k: KernelContext) -> Any:
    xp = k.xp

    def compute(a: Any) -> tuple[Any, Any]:
        _square(k, a)
        sign, logdet = xp.linalg.slogdet(a)
        return xp.asarray(sign, dtype=a.dtype), xp.asarray(logdet, dtype=a.dtype)
    return compute


def _solve(k: KernelContext, xp: Any, a: Any, b: Any) -> Any:
    _square(k, a)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise InvalidArgumentError(f"'{k.name}': the right-hand side of shape {list(b.shape)} "
                                   f"must have {a.shape[-1]} rows, as the matrix of shape "
                                   f"{list(a.shape)}")
    if a.shape[:-2] != b.shape[:-2]:
        raise InvalidArgumentError(f"'{k.name}': the matrix's batch shape {list(a.shape[:-2])} "
                                   f"differs from the right-hand side's {list(b.shape[:-2])}")
    if a.size == 0 or b.size == 0:
        return xp.zeros(b.shape, b.dtype)
    try:
        return xp.linalg.solve(a, b).astype(b.dtype, copy=False)
    except np.linalg.LinAlgError:
        raise InvalidArgumentError(f"'{k.name}': {k.op}: the input matrix is not invertible "
                                   f"(a singular matrix)") from None


@register_kernel("MatrixSolve")
def _matrix_solve(k: KernelContext) -> Any:
    xp = k.xp
    adjoint = bool(k.attrs.get("adjoint", False))

    def compute(a: Any, b: Any) -> tuple[Any]:
        return (_solve(k, xp, xp.swapaxes(a, -1, -2) if adjoint else a, b),)
    return compute


@register_kernel("MatrixTriangularSolve")
def _triangular_solve(k: KernelContext) -> Any:
    xp = k.xp
    lower = bool(k.attrs.get("lower", True))
    adjoint = bool(k.attrs.get("adjoint", False))

    def compute(a: Any, b: Any) -> tuple[Any]:
        _square(k, a)
        n = a.shape[-1]
        tri = a * (_band_mask(xp, n, n, -1, 0, a.dtype) if lower
                   else _band_mask(xp, n, n, 0, -1, a.dtype))  # the other triangle ignored
        return (_solve(k, xp, xp.swapaxes(tri, -1, -2) if adjoint else tri, b),)
    return compute


@register_kernel("Cross")
def _cross(k: KernelContext) -> Any:
    xp = k.xp

    def compute(a: Any, b: Any) -> tuple[Any]:
        if a.shape != b.shape or a.ndim < 1 or a.shape[-1] != 3:
            raise InvalidArgumentError(f"'{k.name}': cross needs two tensors of one shape whose "
                                       f"last dimension is 3, got {list(a.shape)} and "
                                       f"{list(b.shape)}")
        return (xp.cross(a, b).astype(a.dtype, copy=False),)
    return compute


@register_kernel("Bincount", device_types=("CPU",))
def _bincount(k: KernelContext) -> Any:
    def compute(arr: Any, size: Any, weights: Any) -> tuple[Any]:
        n = int(size)
        if n < 0:
            raise InvalidArgumentError(f"'{k.name}': bincount's size must be >= 0, got {n}")
        flat = np.asarray(arr).reshape(-1)
        if flat.size and flat.min() < 0:
            raise InvalidArgumentError(f"'{k.name}': bincount counts non-negative values; "
                                       f"got {int(flat.min())}")
        w = np.asarray(weights)
        keep = flat < n  # TF ignores values at or past `size`
        if w.size:
            if w.shape != np.shape(arr):
                raise InvalidArgumentError(f"'{k.name}': weights of shape {list(w.shape)} must "
                                           f"have the shape of arr {list(np.shape(arr))}")
            out = np.bincount(flat[keep], w.reshape(-1)[keep], minlength=n)[:n]
            return (out.astype(w.dtype),)
        out = np.bincount(flat[keep], minlength=n)[:n]
        return (out.astype(k.out_dtypes[0].np),)
    return compute


@register_kernel("ListDiff", device_types=("CPU",))
def _list_diff(k: KernelContext) -> Any:
    idx_dt = k.out_dtypes[1].np

    def compute(x: Any, y: Any) -> tuple[Any, Any]:
        if x.ndim != 1 or y.ndim != 1:
            raise InvalidArgumentError(f"'{k.name}': setdiff1d needs 1-D x and y, got shapes "
                                       f"{list(x.shape)} and {list(y.shape)}")
        idx = np.flatnonzero(~np.isin(x, y))
        return x[idx], idx.astype(idx_dt)
    return compute


def _mirror_index(n: int, lo: int, hi: int, offset: int) -> np.ndarray:
    """For each position of a dimension padded from `n` by (lo, hi), the input position it
    copies; `offset` 1 mirrors without the edge (REFLECT), 0 with it (SYMMETRIC)."""
    j = np.arange(-lo, n + hi)
    j = np.where(j < 0, -j - 1 + offset, j)
    return np.where(j >= n, 2 * n - j - 1 - offset, j)


def _mirror_args(k: KernelContext, shape: tuple[int, ...], paddings: Any) -> list[tuple[int, int]]:
    p = np.asarray(paddings)
    if p.shape != (len(shape), 2):
        raise InvalidArgumentError(f"'{k.name}': paddings of shape {list(p.shape)} must be "
                                   f"[{len(shape)}, 2], one [before, after] pair per dimension")
    offset = 1 if k.attrs["mode"] == "REFLECT" else 0
    pairs = [(int(a), int(b)) for a, b in p]
    for d, ((a, b), n) in enumerate(zip(pairs, shape, strict=True)):
        if a < 0 or b < 0 or max(a, b) > n - offset:
            most = f"less than {n}" if offset else f"at most {n}"
            raise InvalidArgumentError(
                f"'{k.name}': {k.attrs['mode']} padding of dimension {d} by [{a}, {b}] must be "
                f"non-negative and {most} (the dimension's size)")
    return pairs


@register_kernel("MirrorPad", device_types=("CPU",))
def _mirror_pad(k: KernelContext) -> Any:
    mode = k.attrs["mode"].lower()

    def compute(x: Any, paddings: Any) -> tuple[Any]:
        pairs = _mirror_args(k, x.shape, paddings)
        return (np.pad(x, pairs, mode=mode),)
    return compute


@register_kernel("MirrorPadGrad", device_types=("CPU",))
def _mirror_pad_grad(k: KernelContext) -> Any:
    """The gradient of MirrorPad: each padded position's gradient summed into the input
    position it copied, one dimension at a time."""
    offset = 1 if k.attrs["mode"] == "REFLECT" else 0

    def compute(g: Any, paddings: Any) -> tuple[Any]:
        p = np.asarray(paddings)
        shape = tuple(int(s - a - b) for s, (a, b) in zip(g.shape, p, strict=True))
        out = g
        for d, (a, b) in enumerate(p):
            if a == 0 and b == 0:
                continue
            idx = _mirror_index(shape[d], int(a), int(b), offset)
            acc = np.zeros(out.shape[:d] + (shape[d],) + out.shape[d + 1:], g.dtype)
            np.add.at(acc, (slice(None),) * d + (idx,), out)
            out = acc
        return (np.ascontiguousarray(out),)
    return compute
