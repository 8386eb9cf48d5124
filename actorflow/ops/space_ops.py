"""Rearrangements between space, depth and batch: space_to_depth / depth_to_space,
space_to_batch(_nd) / batch_to_space(_nd), extract_image_patches, and matrix_set_diag.

Each is composed of pad, reshape, transpose, strided slices and stack (no kernel of its own),
so its gradient is those ops' gradients -- the inverse rearrangement, as TF's. The spatial
and channel dimensions must be known when the graph is built (the batch may be unknown):

    space_to_depth: [B, H, W, C] -> reshape [B, H/b, b, W/b, b, C]
                    -> transpose [0, 1, 3, 2, 4, 5] -> reshape [B, H/b, W/b, b*b*C]
    space_to_batch_nd: pad, reshape [B, P1/b1, b1, ..], move the block axes in front of the
                    batch, reshape [b1*..*bM*B, P1/b1, ..]; batch_to_space_nd is the inverse,
                    then crops.
    extract_image_patches: one strided slice of the padded image per kernel offset
                    (i*rate_r, j*rate_c), stacked as TF orders the patch depth (row, col, C).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import constant_value, convert_to_tensor
from actorflow.ops import array_ops, join_ops, math_ops
from actorflow.ops.index_ops import slice_
from devices.errors import InvalidArgumentError

__all__ = ["space_to_depth", "depth_to_space", "space_to_batch_nd", "batch_to_space_nd",
           "space_to_batch", "batch_to_space", "extract_image_patches", "matrix_set_diag"]


def _static_dims(x: Tensor, what: str) -> list[int | None]:
    s = x._shape
    if s is None or any(d is None for d in s[1:]):
        raise InvalidArgumentError(
            f"{what} needs the dimensions of '{x.name}' after the batch known when the graph "
            f"is built, got {None if s is None else list(s)}; give it a static shape")
    return list(s)


def _ints(v: Any, what: str) -> np.ndarray:
    if isinstance(v, Tensor):
        c = constant_value(v)
        if c is None:
            raise InvalidArgumentError(f"{what} must be known when the graph is built (a "
                                       f"Python list or a constant)")
        v = c
    return np.asarray(v, dtype=np.int64)


def _batch(b: int | None) -> int:
    return -1 if b is None else b


def _nhwc(data_format: str, what: str) -> None:
    if data_format != "NHWC":
        raise InvalidArgumentError(f"{what} supports data_format='NHWC', got "
                                   f"{data_format!r}; transpose the input to NHWC")


def space_to_depth(input: Any, block_size: int, name: str | None = None,  # noqa: A002
                   data_format: str = "NHWC") -> Tensor:
    """Blocks of block_size x block_size pixels moved into the depth: [B, H/b, W/b, b*b*C]."""
    _nhwc(data_format, "space_to_depth")
    b = int(block_size)
    with name_scope(name, "SpaceToDepth"):
        x = convert_to_tensor(input)
        n, h, w, c = _static_dims(x, "space_to_depth")
        if b < 2 or h % b or w % b:
            raise InvalidArgumentError(f"space_to_depth: block_size {b} must be >= 2 and "
                                       f"divide height {h} and width {w}")
        y = array_ops.reshape(x, [_batch(n), h // b, b, w // b, b, c])
        y = array_ops.transpose(y, [0, 1, 3, 2, 4, 5])
        return array_ops.reshape(y, [_batch(n), h // b, w // b, b * b * c])


def depth_to_space(input: Any, block_size: int, name: str | None = None,  # noqa: A002
                   data_format: str = "NHWC") -> Tensor:
    """The inverse of space_to_depth: [B, H, W, C] -> [B, H*b, W*b, C/(b*b)]."""
    _nhwc(data_format, "depth_to_space")
    b = int(block_size)
    with name_scope(name, "DepthToSpace"):
        x = convert_to_tensor(input)
        n, h, w, c = _static_dims(x, "depth_to_space")
        if b < 2 or c % (b * b):
            raise InvalidArgumentError(f"depth_to_space: block_size {b} must be >= 2 and "
                                       f"block_size^2 must divide the depth {c}")
        y = array_ops.reshape(x, [_batch(n), h, w, b, b, c // (b * b)])
        y = array_ops.transpose(y, [0, 1, 3, 2, 4, 5])
        return array_ops.reshape(y, [_batch(n), h * b, w * b, c // (b * b)])


def space_to_batch_nd(input: Any, block_shape: Any, paddings: Any,  # noqa: A002
                      name: str | None = None) -> Tensor:
    """Spatial blocks moved into the batch, after zero-padding the spatial dimensions."""
    with name_scope(name, "SpaceToBatchND"):
        x = convert_to_tensor(input)
        bs = _ints(block_shape, "space_to_batch_nd: block_shape").reshape(-1)
        pads = _ints(paddings, "space_to_batch_nd: paddings").reshape(-1, 2)
        m = bs.size
        dims = _static_dims(x, "space_to_batch_nd")
        if pads.shape[0] != m or len(dims) < m + 1 or np.any(bs < 1) or np.any(pads < 0):
            raise InvalidArgumentError(
                f"space_to_batch_nd: block_shape {bs.tolist()} and paddings {pads.tolist()} "
                f"must have one positive block / non-negative pair per spatial dimension of "
                f"an input of shape {dims}")
        padded = [int(dims[1 + i] + pads[i].sum()) for i in range(m)]
        if any(p % int(b) for p, b in zip(padded, bs, strict=True)):
            raise InvalidArgumentError(f"space_to_batch_nd: padded spatial shape {padded} is "
                                       f"not divisible by block_shape {bs.tolist()}")
        rest = dims[1 + m:]
        full = [[0, 0], *pads.tolist(), *([[0, 0]] * len(rest))]
        y = array_ops.pad(x, full) if pads.any() else x
        split = [_batch(dims[0])]
        for p, b in zip(padded, bs.tolist(), strict=True):
            split += [p // b, b]
        y = array_ops.reshape(y, split + rest)
        perm = ([2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)]
                + list(range(1 + 2 * m, 1 + 2 * m + len(rest))))
        y = array_ops.transpose(y, perm)
        return array_ops.reshape(y, [-1] + [p // b for p, b in zip(padded, bs.tolist(),
                                                                   strict=True)] + rest)


def batch_to_space_nd(input: Any, block_shape: Any, crops: Any,  # noqa: A002
                      name: str | None = None) -> Tensor:
    """The inverse of space_to_batch_nd: batch blocks moved back into space, then cropped."""
    with name_scope(name, "BatchToSpaceND"):
        x = convert_to_tensor(input)
        bs = _ints(block_shape, "batch_to_space_nd: block_shape").reshape(-1)
        cr = _ints(crops, "batch_to_space_nd: crops").reshape(-1, 2)
        m = bs.size
        dims = _static_dims(x, "batch_to_space_nd")
        prod = int(np.prod(bs))
        if cr.shape[0] != m or len(dims) < m + 1 or np.any(bs < 1) or np.any(cr < 0) or (
                dims[0] is not None and dims[0] % prod):
            raise InvalidArgumentError(
                f"batch_to_space_nd: block_shape {bs.tolist()} and crops {cr.tolist()} must "
                f"have one entry per spatial dimension, and the batch of {dims} must divide "
                f"by {prod}")
        sp, rest = dims[1:1 + m], dims[1 + m:]
        y = array_ops.reshape(x, bs.tolist() + [-1] + sp + rest)
        perm = [m]
        for i in range(m):
            perm += [m + 1 + i, i]
        perm += list(range(2 * m + 1, 2 * m + 1 + len(rest)))
        y = array_ops.transpose(y, perm)
        full = [int(s * b) for s, b in zip(sp, bs.tolist(), strict=True)]
        y = array_ops.reshape(y, [-1] + full + rest)
        if not cr.any():
            return y
        size = [int(f - c.sum()) for f, c in zip(full, cr, strict=True)]
        if any(s < 0 for s in size):
            raise InvalidArgumentError(f"batch_to_space_nd: crops {cr.tolist()} are larger "
                                       f"than the output's spatial shape {full}")
        return slice_(y, [0, *cr[:, 0].tolist()] + [0] * len(rest), [-1, *size] + [-1] * len(rest))


def space_to_batch(input: Any, paddings: Any, block_size: int,  # noqa: A002
                   name: str | None = None, block_shape: Any = None) -> Tensor:
    """space_to_batch_nd with a square block over the two spatial dimensions of NHWC."""
    b = int(block_size if block_shape is None else block_shape)
    return space_to_batch_nd(input, [b, b], paddings, name=name or "SpaceToBatch")


def batch_to_space(input: Any, crops: Any, block_size: int,  # noqa: A002
                   name: str | None = None, block_shape: Any = None) -> Tensor:
    """batch_to_space_nd with a square block over the two spatial dimensions of NHWC."""
    b = int(block_size if block_shape is None else block_shape)
    return batch_to_space_nd(input, [b, b], crops, name=name or "BatchToSpace")


def _four(v: Any, what: str) -> tuple[int, int]:
    a = [int(x) for x in v]
    if len(a) != 4 or a[0] != 1 or a[3] != 1:
        raise InvalidArgumentError(f"extract_image_patches: {what} must be [1, rows, cols, 1], "
                                   f"got {a}")
    return a[1], a[2]


def extract_image_patches(images: Any, ksizes: Any = None, strides: Any = None,
                          rates: Any = None, padding: str = "VALID", name: str | None = None,
                          sizes: Any = None) -> Tensor:
    """Each output pixel holds the (dilated) kr x kc patch around it, flattened in (row, col,
    channel) order: [B, out_rows, out_cols, kr*kc*C]."""
    kr, kc = _four(ksizes if ksizes is not None else sizes, "ksizes")
    sr, sc = _four(strides, "strides")
    rr, rc = _four(rates if rates is not None else [1, 1, 1, 1], "rates")
    if padding not in ("VALID", "SAME"):
        raise InvalidArgumentError(f"extract_image_patches: padding must be 'VALID' or "
                                   f"'SAME', got {padding!r}")
    with name_scope(name, "ExtractImagePatches"):
        x = convert_to_tensor(images)
        n, h, w, c = _static_dims(x, "extract_image_patches")
        er, ec = (kr - 1) * rr + 1, (kc - 1) * rc + 1
        if padding == "VALID":
            oh, ow = max((h - er) // sr + 1, 0), max((w - ec) // sc + 1, 0)
            pt = pl = 0
        else:
            oh, ow = -(-h // sr), -(-w // sc)
            ph = max((oh - 1) * sr + er - h, 0)
            pw = max((ow - 1) * sc + ec - w, 0)
            pt, pl = ph // 2, pw // 2
            if ph or pw:
                x = array_ops.pad(x, [[0, 0], [pt, ph - pt], [pl, pw - pl], [0, 0]])
        if oh == 0 or ow == 0:
            raise InvalidArgumentError(
                f"extract_image_patches: a {kr}x{kc} patch at rates {rr}x{rc} does not fit "
                f"in a {h}x{w} image with padding='VALID'; use padding='SAME'")
        parts = []
        for i in range(kr):
            for j in range(kc):
                r0, c0 = i * rr, j * rc
                parts.append(x[:, r0:r0 + (oh - 1) * sr + 1:sr, c0:c0 + (ow - 1) * sc + 1:sc, :])
        y = join_ops.stack(parts, axis=3)
        return array_ops.reshape(y, [_batch(n), oh, ow, kr * kc * c])


def matrix_set_diag(input: Any, diagonal: Any, name: str | None = None,  # noqa: A002
                    k: int = 0) -> Tensor:
    """`input` with the main diagonal of each innermost matrix replaced by `diagonal`
    ([..., min(M, N)]); the gradient goes to the off-diagonal of input and to diagonal."""
    from actorflow.ops.linalg_ops import matrix_diag
    if k != 0:
        raise InvalidArgumentError("matrix_set_diag: only k=0 (the main diagonal) is supported")
    with name_scope(name, "MatrixSetDiag"):
        x = convert_to_tensor(input)
        d = convert_to_tensor(diagonal, dtype=x.dtype)
        s = x._shape
        if s is None or len(s) < 2 or s[-1] is None or s[-2] is None:
            raise InvalidArgumentError("matrix_set_diag needs an input of rank >= 2 whose "
                                       "last two dimensions are known when the graph is built")
        m, n = int(s[-2]), int(s[-1])
        kk = min(m, n)
        if d._shape is not None and d._shape[-1] is not None and d._shape[-1] != kk:
            raise InvalidArgumentError(f"matrix_set_diag: diagonal has {d._shape[-1]} entries "
                                       f"per matrix, the input's {m}x{n} matrices have {kk}")
        keep = convert_to_tensor(1.0 - np.eye(m, n), dtype=x.dtype)
        embed = matrix_diag(d)
        if m != n:
            lead = [[0, 0]] * (len(s) - 2)
            embed = array_ops.pad(embed, lead + [[0, m - kk], [0, n - kk]])
        return math_ops.add(math_ops.multiply(x, keep), embed)
