"""Kernels of the array ops: shapes, reshape, fill, broadcasting, joining and splitting,
transposing, tiling and padding. Static attributes are parsed once in the factory; most
kernels return views of their input (never writing to it)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext, register_kernel

_SHAPE_CACHE_SIZE = 64  # distinct input shapes a Shape node keeps its answer for


@register_kernel("Shape")
def _shape(k: KernelContext) -> Any:
    """The input's shape as a vector. The answers are kept per shape (read-only arrays: a
    step's shape arithmetic sees the same few shapes every step, ~0.5 us less a call)."""
    dt = k.out_dtypes[0].np
    seen: dict[tuple[int, ...], Any] = {}

    def compute(x: Any) -> tuple[Any]:
        r = seen.get(x.shape)
        if r is None:
            r = np.array(x.shape, dtype=dt)
            r.flags.writeable = False
            if len(seen) < _SHAPE_CACHE_SIZE:
                seen[x.shape] = r
        return (r,)
    return compute


@register_kernel("Reshape")
def _reshape(k: KernelContext) -> Any:
    # the array's method with the shape as Python ints: np.reshape's wrapper costs ~3 us
    return lambda x, s: (x.reshape(s.tolist()),)


@register_kernel("Fill")
def _fill(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    return lambda dims, v: (xp.full([int(d) for d in dims], v, dtype=dt),)


@register_kernel("ZerosLike")
def _zeros_like(k: KernelContext) -> Any:
    xp = k.xp
    return lambda x: (xp.zeros_like(x),)


@register_kernel("OnesLike")
def _ones_like(k: KernelContext) -> Any:
    xp = k.xp

    def compute(x: Any) -> tuple[Any]:
        out = xp.empty(x.shape, x.dtype)  # empty + fill: ones_like's wrapper costs ~2 us
        out.fill(1)
        return (out,)
    return compute


_SMALL_BROADCAST = 4096  # elements: below this a filled copy is cheaper than a view


@register_kernel("BroadcastTo")
def _broadcast_to(k: KernelContext) -> Any:
    """x broadcast to the shape s: a small result is a new array filled by assignment (~1 us,
    against ~4 us for broadcast_to's view), a large one broadcast_to's read-only view."""
    xp = k.xp

    def compute(x: Any, s: Any) -> tuple[Any]:
        shape = tuple(s.tolist())
        if xp is np and x.ndim <= len(shape) and math.prod(shape) <= _SMALL_BROADCAST:
            out = np.empty(shape, x.dtype)
            try:
                out[...] = x
            except ValueError:  # incompatible shapes: broadcast_to raises its own error
                return (xp.broadcast_to(x, shape),)
            return (out,)
        return (xp.broadcast_to(x, shape),)
    return compute


_BCAST_CACHE_SIZE = 256  # distinct shape pairs kept by a BroadcastGradientArgs node


def _bcast_reduction_axes(sx: list[int], sy: list[int]) -> tuple[Any, Any]:
    n = max(len(sx), len(sy))
    px, py = [1] * (n - len(sx)) + sx, [1] * (n - len(sy)) + sy
    rx = [i for i in range(n) if px[i] == 1 and py[i] != 1 or i < n - len(sx)]
    ry = [i for i in range(n) if py[i] == 1 and px[i] != 1 or i < n - len(sy)]
    ax, ay = np.array(rx, np.int32), np.array(ry, np.int32)
    ax.flags.writeable = ay.flags.writeable = False
    return ax, ay


@register_kernel("BroadcastGradientArgs")
def _bcast_grad_args(k: KernelContext) -> Any:
    """The axes to sum each operand's gradient over, kept per pair of shapes (a training
    step asks the same question every step)."""
    seen: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[Any, Any]] = {}

    def compute(sx: Any, sy: Any) -> tuple[Any, Any]:
        key = (tuple(sx.tolist()), tuple(sy.tolist()))
        r = seen.get(key)
        if r is None:
            r = _bcast_reduction_axes([int(d) for d in key[0]], [int(d) for d in key[1]])
            if len(seen) < _BCAST_CACHE_SIZE:
                seen[key] = r
        return r
    return compute


@register_kernel("ReducedShape")
def _reduced_shape(k: KernelContext) -> Any:
    def compute(s: Any, axes: Any) -> tuple[Any]:
        out = np.array(s, np.int32).copy()
        rank = len(out)
        out[[int(a) % rank for a in np.reshape(axes, -1)]] = 1
        return (out,)
    return compute


# ---- helpers ------------------------------------------------------------------------------
def axis_index(axis: int, key: Any) -> tuple[Any, ...]:
    """An index tuple applying `key` on `axis` (negative axes count from the end)."""
    if axis >= 0:
        return (slice(None),) * axis + (key,)
    return (Ellipsis, key) + (slice(None),) * (-axis - 1)


def static_dim(shape: Any, axis: int) -> int | None:
    """Dimension `axis` of a static shape, or None when not known."""
    if shape is None:
        return None
    try:
        return shape[axis]
    except IndexError:
        return None


def _fully_known(shape: Any) -> bool:
    return shape is not None and None not in shape


# ---- size / rank --------------------------------------------------------------------------
@register_kernel("Size")
def _size(k: KernelContext) -> Any:
    dt = k.out_dtypes[0].np
    return lambda x: (np.array(x.size, dtype=dt),)


@register_kernel("Rank")
def _rank(k: KernelContext) -> Any:
    return lambda x: (np.array(x.ndim, dtype=np.int32),)


# ---- expand_dims / squeeze / transpose --------------------------------------------------------
@register_kernel("ExpandDims")
def _expand_dims(k: KernelContext) -> Any:
    index = axis_index(int(k.attrs["axis"]), None)
    return lambda x: (x[index],)


@register_kernel("Squeeze")
def _squeeze(k: KernelContext) -> Any:
    xp = k.xp
    out = k.out_shapes[0]
    if _fully_known(k.in_shapes[0]) and _fully_known(out):
        out = tuple(out)
        return lambda x: (xp.reshape(x, out),)  # checked when the graph was built
    axes = k.attrs.get("axis")
    axes = None if axes is None else tuple(int(a) for a in axes)

    def compute(x: Any) -> tuple[Any]:
        if axes is not None:
            for a in axes:
                if x.shape[a] != 1:
                    raise InvalidArgumentError(
                        f"cannot squeeze dimension {a} of a tensor of shape {tuple(x.shape)}: "
                        f"its size is {x.shape[a]}, not 1")
        return (xp.squeeze(x, axis=axes),)
    return compute


@register_kernel("Transpose")
def _transpose(k: KernelContext) -> Any:
    xp = k.xp
    perm = k.attrs.get("perm")
    perm = None if perm is None else tuple(int(p) for p in perm)
    return lambda x: (xp.transpose(x, perm),)


# ---- concat / split -----------------------------------------------------------------------
@register_kernel("ConcatV2")
def _concat(k: KernelContext) -> Any:
    concatenate = k.xp.concatenate
    axis = int(k.attrs["axis"])
    alloc = out_allocator(k)
    if alloc is None:
        return lambda *xs: (concatenate(xs, axis=axis),)
    return lambda *xs: (concatenate(xs, axis=axis, out=alloc()),)


def _cuts(sizes: list[int]) -> list[tuple[int, int]]:
    out, at = [], 0
    for s in sizes:
        out.append((at, at + s))
        at += s
    return out


@register_kernel("Split")
def _split(k: KernelContext) -> Any:
    n = int(k.attrs["num_split"])
    axis = int(k.attrs["axis"])
    d = static_dim(k.in_shapes[0], axis)
    if d is not None:
        idx = [axis_index(axis, slice(a, b)) for a, b in _cuts([d // n] * n)]
        return lambda x: tuple([x[i] for i in idx])

    def compute(x: Any) -> tuple[Any, ...]:
        dim = x.shape[axis]
        if dim % n:
            raise InvalidArgumentError(f"cannot split dimension {axis} of size {dim} (shape "
                                       f"{tuple(x.shape)}) into {n} equal parts")
        return tuple([x[axis_index(axis, slice(a, b))] for a, b in _cuts([dim // n] * n)])
    return compute


def split_sizes(sizes: list[int], dim: int) -> list[int]:
    """Resolve one -1 and check the sizes add up to `dim` (run-time check)."""
    known = sum(s for s in sizes if s != -1)
    if -1 in sizes:
        if known > dim or sizes.count(-1) > 1:
            raise InvalidArgumentError(f"split sizes {sizes} do not fit a dimension of {dim}")
        return [dim - known if s == -1 else s for s in sizes]
    if known != dim or min(sizes, default=0) < 0:
        raise InvalidArgumentError(f"split sizes {sizes} add up to {known}, not to the "
                                   f"dimension's {dim}")
    return sizes


@register_kernel("SplitV")
def _split_v(k: KernelContext) -> Any:
    axis = int(k.attrs["axis"])
    sizes = k.attrs.get("size_splits")
    if sizes is None:
        n = int(k.attrs["num_split"])

        def dynamic(x: Any, s: Any) -> tuple[Any, ...]:
            got = [int(v) for v in s]
            if len(got) != n:
                raise InvalidArgumentError(f"split expected {n} sizes, got {got}")
            cuts = _cuts(split_sizes(got, x.shape[axis]))
            return tuple([x[axis_index(axis, slice(a, b))] for a, b in cuts])
        return dynamic
    sizes = [int(s) for s in sizes]
    d = static_dim(k.in_shapes[0], axis)
    if d is not None:
        idx = [axis_index(axis, slice(a, b)) for a, b in _cuts(split_sizes(sizes, d))]
        return lambda x: tuple([x[i] for i in idx])

    def compute(x: Any) -> tuple[Any, ...]:
        cuts = _cuts(split_sizes(sizes, x.shape[axis]))
        return tuple([x[axis_index(axis, slice(a, b))] for a, b in cuts])
    return compute


# ---- stack / unstack ----------------------------------------------------------------------
@register_kernel("Pack")
def _pack(k: KernelContext) -> Any:
    xp = k.xp
    axis = int(k.attrs["axis"])
    out_shape = k.out_shapes[0]
    if not _fully_known(out_shape) or not all(_fully_known(s) for s in k.in_shapes) or (
            k.out_dtypes[0].is_string):  # slot writes would store 0-d string arrays as objects
        return lambda *xs: (xp.stack(xs, axis=axis),)
    # Known shape: write each input into its slot (NumPy's stack is Python-level and slower).
    shape, dt = tuple(out_shape), k.out_dtypes[0].np
    alloc = out_allocator(k) or (lambda: xp.empty(shape, dtype=dt))
    slots = [axis_index(axis, i) for i in range(shape[axis])]

    def compute(*xs: Any) -> tuple[Any]:
        out = alloc()
        for slot, x in zip(slots, xs, strict=True):
            out[slot] = x
        return (out,)
    return compute


@register_kernel("Unpack")
def _unpack(k: KernelContext) -> Any:
    num, axis = int(k.attrs["num"]), int(k.attrs["axis"])
    idx = [axis_index(axis, i) for i in range(num)]
    known = static_dim(k.in_shapes[0], axis) is not None

    def compute(x: Any) -> tuple[Any, ...]:
        if not known and x.shape[axis] != num:
            raise InvalidArgumentError(f"cannot unstack dimension {axis} of size "
                                       f"{x.shape[axis]} (shape {tuple(x.shape)}) into {num} "
                                       f"tensors")
        return tuple([x[i] for i in idx])
    return compute


# ---- tile ---------------------------------------------------------------------------------
@register_kernel("Tile")
def _tile(k: KernelContext) -> Any:
    xp = k.xp
    m = k.attrs.get("multiples")
    if m is None:
        return lambda x, mt: (_tile_checked(xp, x, [int(v) for v in mt]),)
    m = [int(v) for v in m]
    return lambda x: (_tile_checked(xp, x, m),)


def _tile_checked(xp: Any, x: Any, m: list[int]) -> Any:
    if len(m) != x.ndim:
        raise InvalidArgumentError(f"tile: multiples {m} has {len(m)} entries for a tensor of "
                                   f"shape {tuple(x.shape)}")
    return xp.tile(x, m)


@register_kernel("TileGrad")
def _tile_grad(k: KernelContext) -> Any:
    m = k.attrs.get("multiples")
    xp = k.xp

    def compute(g: Any, x_shape: Any, *mt: Any) -> tuple[Any]:
        mult = [int(v) for v in (mt[0] if mt else m)]
        dims = [int(d) for d in x_shape]
        inter = [v for pair in zip(mult, dims, strict=True) for v in pair]
        summed = g.reshape(inter).sum(axis=tuple(range(0, 2 * len(dims), 2)))
        return (np.asarray(summed, dtype=g.dtype) if xp is np else summed.astype(g.dtype),)
    return compute


# ---- pad ----------------------------------------------------------------------------------
@register_kernel("Pad")
def _pad(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    cv = k.attrs.get("constant_value", 0)
    p = k.attrs.get("paddings")
    if p is None:
        def dynamic(x: Any, pt: Any) -> tuple[Any]:
            pairs = [(int(a), int(b)) for a, b in np.asarray(pt).reshape(-1, 2)]
            if len(pairs) != x.ndim or any(a < 0 or b < 0 for a, b in pairs):
                raise InvalidArgumentError(f"pad: paddings {pairs} do not fit a tensor of shape "
                                           f"{tuple(x.shape)} (one non-negative pair per dim)")
            return (_pad_into(xp, x, pairs, cv, dt),)
        return dynamic
    pairs = [(int(a), int(b)) for a, b in p]
    interior = tuple(slice(a, -b if b else None) for a, b in pairs)
    totals = [a + b for a, b in pairs]
    alloc = out_allocator(k)
    n = len(pairs)
    fill = xp.zeros if cv == 0 else (lambda shape, dtype: xp.full(shape, cv, dtype=dtype))

    def compute(x: Any) -> tuple[Any]:
        if x.ndim != n:
            raise InvalidArgumentError(f"pad: {n} padding pairs for a tensor of shape "
                                       f"{tuple(x.shape)}")
        if alloc is not None:
            out = alloc()
            out.fill(cv)
        else:
            out = fill([d + t for d, t in zip(x.shape, totals, strict=True)], dtype=dt)
        out[interior] = x
        return (out,)
    return compute


def _pad_into(xp: Any, x: Any, pairs: list[tuple[int, int]], cv: Any, dt: Any) -> Any:
    out = xp.full([d + a + b for d, (a, b) in zip(x.shape, pairs, strict=True)], cv, dtype=dt)
    out[tuple(slice(a, -b if b else None) for a, b in pairs)] = x
    return out
