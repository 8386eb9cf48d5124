"""Kernels of conv2d and pooling (NHWC input, HWIO filter) and of their gradients.

Convolution is im2col: the patches of a block of images are copied, one window tap at a time,
into a ``(B*Ho*Wo, kh*kw*C)`` matrix that is multiplied with the filter reshaped to
``(kh*kw*C, O)``. Blocks of images keep that matrix near `_BLOCK_ELEMS` elements (cache sized,
and no huge temporary for a big batch). The input gradient multiplies ``dy @ W^T`` and adds the
columns back tap by tap (col2im); the filter gradient sums ``cols^T @ dy`` over blocks.
Pooling loops over the ``kh*kw`` window taps, each one vectorised over the whole batch.

`geometry` is the one definition of output sizes and padding; the op definitions in
`actorflow.ops.nn_conv_ops` use it for static shape inference, so build time and run time agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext, register_kernel

_BLOCK_ELEMS = 1 << 20  # elements of the im2col matrix per block of images

# ------------------------------------------------------------------------------------------
# Geometry (shared with shape inference)
# ------------------------------------------------------------------------------------------
Padding = str | Sequence[Sequence[int]]


def geometry(size: int, k: int, s: int, d: int, pad: str | tuple[int, int]
             ) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of one spatial dimension.

    ``pad`` is "SAME", "VALID" or an explicit (before, after) pair. The output size is
    negative when the (dilated) window is larger than the padded input; callers report that."""
    eff = (k - 1) * d + 1
    if pad == "VALID":
        return (size - eff) // s + 1 if size >= eff else size - eff, 0, 0
    if pad == "SAME":
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        return out, total // 2, total - total // 2
    before, after = pad  # type: ignore[misc]
    padded = size + before + after
    return ((padded - eff) // s + 1 if padded >= eff else padded - eff), before, after


def _spatial_pads(padding: Any) -> tuple[Any, Any]:
    """Per spatial dim (H, W) padding specs from the op's attr."""
    if isinstance(padding, str):
        return padding, padding
    return tuple(padding[1]), tuple(padding[2])


class _Geom:
    """Per-(H, W) geometry of a windowed op: output size, padding and the tap slices."""

    __slots__ = ("ho", "wo", "hp", "wp", "ph", "pw", "padded", "taps")

    def __init__(self, h: int, w: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
                 padding: Any, opname: str):
        pad_h, pad_w = _spatial_pads(padding)
        ho, ph0, ph1 = geometry(h, kh, sh, dh, pad_h)
        wo, pw0, pw1 = geometry(w, kw, sw, dw, pad_w)
        if ho < 0 or wo < 0:
            raise InvalidArgumentError(
                f"{opname}: a window of {kh}x{kw} (dilation {dh}x{dw}) does not fit an input of "
                f"{h}x{w} with padding {padding!r}; use padding='SAME' or a larger input")
        self.ho, self.wo = ho, wo
        self.hp, self.wp = h + ph0 + ph1, w + pw0 + pw1
        self.ph, self.pw = (ph0, ph0 + h), (pw0, pw0 + w)
        self.padded = bool(ph0 or ph1 or pw0 or pw1)
        # taps[t] = (i, j, row slice, col slice) into the padded input for window tap (i, j)
        self.taps = [(i, j, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                      slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
                     for i in range(kh) for j in range(kw)]


def _window_attrs(k: KernelContext, window_key: str) -> tuple[int, int, int, int, int, int]:
    """(kh, kw, sh, sw, dh, dw) of a pooling op (window from ksize) or conv (window None)."""
    strides = k.attrs["strides"]
    dil = k.attrs.get("dilations") or (1, 1, 1, 1)
    if window_key:
        ks = k.attrs[window_key]
        return ks[1], ks[2], strides[1], strides[2], 1, 1
    return 0, 0, strides[1], strides[2], dil[1], dil[2]


def _geom_cache(make: Any) -> Any:
    cache: dict[tuple[int, ...], _Geom] = {}

    def get(*key: int) -> _Geom:
        g = cache.get(key)
        if g is None:
            g = cache[key] = make(*key)
        return g
    return get


def _pad_input(xp: Any, x: Any, g: _Geom, fill: Any) -> Any:
    if not g.padded:
        return x
    n, _, _, c = x.shape
    xpad = xp.full((n, g.hp, g.wp, c), fill, dtype=x.dtype)
    xpad[:, g.ph[0]:g.ph[1], g.pw[0]:g.pw[1], :] = x
    return xpad


def _zeroed_full(xp: Any, g: _Geom, n: int, c: int, dtype: Any, alloc: Any,
                 k: KernelContext) -> Any:
    """A zeroed (N, Hp, Wp, C) buffer to scatter an input gradient into (the output buffer
    itself when there is no padding to crop)."""
    out = None if g.padded else _alloc_if(alloc, (n, g.hp, g.wp, c), k)
    if out is None:
        return xp.zeros((n, g.hp, g.wp, c), dtype=dtype)
    out[...] = 0
    return out


def _cropped(xp: Any, full: Any, g: _Geom, alloc: Any, k: KernelContext) -> Any:
    """The unpadded part of `full` as a contiguous array (pooled when possible)."""
    if not g.padded:
        return full
    view = full[:, g.ph[0]:g.ph[1], g.pw[0]:g.pw[1], :]
    out = _alloc_if(alloc, tuple(view.shape), k)
    if out is None:
        return xp.ascontiguousarray(view)
    xp.copyto(out, view)
    return out


def _alloc_if(alloc: Any, shape: tuple[int, ...], k: KernelContext, index: int = 0) -> Any:
    """A pooled buffer when the run-time shape is the static one, else None."""
    if alloc is not None and tuple(k.out_shapes[index]) == shape:  # type: ignore[arg-type]
        return alloc()
    return None


# ------------------------------------------------------------------------------------------
# conv2d
# ------------------------------------------------------------------------------------------
def _conv_geom(k: KernelContext) -> Any:
    _, _, sh, sw, dh, dw = _window_attrs(k, "")
    padding = k.attrs["padding"]

    def make(h: int, w: int, kh: int, kw: int) -> _Geom:
        return _Geom(h, w, kh, kw, sh, sw, dh, dw, padding, k.op)
    return _geom_cache(make)


def _is_pointwise(g: _Geom, x_hw: tuple[int, int], kh: int, kw: int) -> bool:
    """A 1x1, stride-1, unpadded conv: the patch matrix is the input itself."""
    return kh == kw == 1 and not g.padded and (g.ho, g.wo) == x_hw


def _im2col_blocks(xp: Any, x: Any, g: _Geom, kh: int, kw: int
                   ) -> Iterator[tuple[int, int, Any]]:
    """(n0, n1, cols) for blocks of images: cols is the (nb*Ho*Wo, kh*kw*C) patch matrix of
    images n0:n1. The buffers are reused from block to block."""
    n, c = x.shape[0], x.shape[3]
    per_image = g.ho * g.wo * kh * kw * c
    b = max(1, min(n, _BLOCK_ELEMS // max(per_image, 1)))
    cols = xp.empty((b, g.ho, g.wo, kh, kw, c), dtype=x.dtype)
    xpad = xp.zeros((b, g.hp, g.wp, c), dtype=x.dtype) if g.padded else None
    for n0 in range(0, n, b):
        nb = min(b, n - n0)
        src = x[n0:n0 + nb]
        if xpad is not None:
            xpad[:nb, g.ph[0]:g.ph[1], g.pw[0]:g.pw[1], :] = src
            src = xpad[:nb]
        cb = cols[:nb]
        for i, j, rs, cs in g.taps:
            cb[:, :, :, i, j, :] = src[:, rs, cs, :]
        yield n0, n0 + nb, cb.reshape(nb * g.ho * g.wo, kh * kw * c)


def _check_channels(opname: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> None:
    if x_shape[3] != w_shape[2]:
        raise InvalidArgumentError(
            f"{opname}: the input has {x_shape[3]} channels (shape {tuple(x_shape)}) but the "
            f"filter expects {w_shape[2]} (shape {tuple(w_shape)}, layout [height, width, in, "
            f"out])")


def _check_dy(opname: str, dy: Any, want: tuple[int, ...]) -> None:
    if tuple(dy.shape) != want:
        raise InvalidArgumentError(
            f"{opname}: out_backprop has shape {tuple(dy.shape)} where the forward op gives "
            f"{want}")


def _sizes(s: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in s)


@register_kernel("Conv2D")
def _conv2d(k: KernelContext) -> Any:
    xp = k.xp
    geom = _conv_geom(k)
    alloc = out_allocator(k)

    def compute(x: Any, w: Any) -> tuple[Any]:
        _check_channels("Conv2D", x.shape, w.shape)
        kh, kw, c, o = w.shape
        n = x.shape[0]
        g = geom(x.shape[1], x.shape[2], kh, kw)
        out = _alloc_if(alloc, (n, g.ho, g.wo, o), k)
        if out is None:
            out = xp.empty((n, g.ho, g.wo, o), dtype=x.dtype)
        wm = w.reshape(kh * kw * c, o)
        if _is_pointwise(g, x.shape[1:3], kh, kw):
            xp.matmul(x.reshape(-1, c), wm, out=out.reshape(-1, o))
            return (out,)
        for n0, n1, cols in _im2col_blocks(xp, x, g, kh, kw):
            xp.matmul(cols, wm, out=out[n0:n1].reshape(-1, o))
        return (out,)
    return compute


@register_kernel("Conv2DBackpropInput")
def _conv2d_backprop_input(k: KernelContext) -> Any:
    """dx from (input_sizes, filter, dy): per block, dcols = dy @ W^T, then col2im."""
    xp = k.xp
    geom = _conv_geom(k)
    alloc = out_allocator(k)

    def compute(sizes: Any, w: Any, dy: Any) -> tuple[Any]:
        n, h, wd, c = _sizes(sizes)
        kh, kw, _, o = w.shape
        _check_channels("Conv2DBackpropInput", (n, h, wd, c), w.shape)
        g = geom(h, wd, kh, kw)
        _check_dy("Conv2DBackpropInput", dy, (n, g.ho, g.wo, o))
        wt = w.reshape(kh * kw * c, o).T
        if _is_pointwise(g, (h, wd), kh, kw):
            out = _alloc_if(alloc, (n, h, wd, c), k)
            return (xp.matmul(dy.reshape(-1, o), wt,
                              out=None if out is None else out.reshape(-1, c)).reshape(
                                  n, h, wd, c),)
        full = _zeroed_full(xp, g, n, c, dy.dtype, alloc, k)
        per_image = g.ho * g.wo * kh * kw * c
        b = max(1, min(n, _BLOCK_ELEMS // max(per_image, 1)))
        dcols = xp.empty((b * g.ho * g.wo, kh * kw * c), dtype=dy.dtype)
        for n0 in range(0, n, b):
            nb = min(b, n - n0)
            dc = dcols[:nb * g.ho * g.wo]
            xp.matmul(dy[n0:n0 + nb].reshape(-1, o), wt, out=dc)
            dc = dc.reshape(nb, g.ho, g.wo, kh, kw, c)
            fb = full[n0:n0 + nb]
            for i, j, rs, cs in g.taps:
                fb[:, rs, cs, :] += dc[:, :, :, i, j, :]
        return (_cropped(xp, full, g, alloc, k),)
    return compute


@register_kernel("Conv2DBackpropFilter")
def _conv2d_backprop_filter(k: KernelContext) -> Any:
    """dW from (input, filter_sizes, dy): the sum over blocks of cols^T @ dy."""
    xp = k.xp
    geom = _conv_geom(k)

    def compute(x: Any, sizes: Any, dy: Any) -> tuple[Any]:
        kh, kw, c, o = _sizes(sizes)
        _check_channels("Conv2DBackpropFilter", x.shape, (kh, kw, c, o))
        g = geom(x.shape[1], x.shape[2], kh, kw)
        _check_dy("Conv2DBackpropFilter", dy, (x.shape[0], g.ho, g.wo, o))
        if _is_pointwise(g, x.shape[1:3], kh, kw):
            return (xp.matmul(x.reshape(-1, c).T, dy.reshape(-1, o)).reshape(kh, kw, c, o),)
        acc = part = None
        for n0, n1, cols in _im2col_blocks(xp, x, g, kh, kw):
            d = dy[n0:n1].reshape(-1, o)
            if acc is None:
                acc = xp.matmul(cols.T, d)
            else:
                part = xp.matmul(cols.T, d, out=part)
                acc += part
        if acc is None:  # no images (a batch of 0): no contribution
            acc = xp.zeros((kh * kw * c, o), dy.dtype)
        return (acc.reshape(kh, kw, c, o),)
    return compute


# ------------------------------------------------------------------------------------------
# Pooling
# ------------------------------------------------------------------------------------------
def _pool_geom(k: KernelContext) -> Any:
    kh, kw, sh, sw, _, _ = _window_attrs(k, "ksize")
    padding = k.attrs["padding"]

    def make(h: int, w: int) -> _Geom:
        return _Geom(h, w, kh, kw, sh, sw, 1, 1, padding, k.op)
    return _geom_cache(make)


def _overlapping(k: KernelContext) -> bool:
    ks, st = k.attrs["ksize"], k.attrs["strides"]
    return ks[1] > st[1] or ks[2] > st[2]


def _lowest(dt: Any) -> Any:
    dt = np.dtype(dt)
    return -np.inf if dt.kind == "f" else np.iinfo(dt).min


def _first_tap(xp: Any, src: Any, g: _Geom, out: Any) -> Any:
    _, _, rs, cs = g.taps[0]
    if out is None:
        return xp.array(src[:, rs, cs, :])
    xp.copyto(out, src[:, rs, cs, :])
    return out


@register_kernel("MaxPool")
def _max_pool(k: KernelContext) -> Any:
    xp = k.xp
    geom = _pool_geom(k)
    alloc = out_allocator(k)

    def compute(x: Any) -> tuple[Any]:
        g = geom(x.shape[1], x.shape[2])
        xpad = _pad_input(xp, x, g, _lowest(x.dtype))
        out = _first_tap(xp, xpad, g, _alloc_if(alloc, (x.shape[0], g.ho, g.wo, x.shape[3]), k))
        for _, _, rs, cs in g.taps[1:]:
            xp.maximum(out, xpad[:, rs, cs, :], out=out)
        return (out,)
    return compute


def _first_max_hits(xp: Any, xpad: Any, y: Any, g: _Geom) -> Iterator[tuple[Any, Any, Any]]:
    """(rows, cols, hit) per tap: where that tap is its window's first maximum (y is the
    pooled output, so a tap holds a maximum where it equals y)."""
    taken = None
    last = len(g.taps) - 1
    for t, (_, _, rs, cs) in enumerate(g.taps):
        hit = xp.equal(xpad[:, rs, cs, :], y)
        if taken is None:
            taken = hit.copy() if last else hit
        else:
            xp.greater(hit, taken, out=hit)       # hit and not already taken
            if t < last:
                taken |= hit
        yield rs, cs, hit


@register_kernel("MaxPoolGrad")
def _max_pool_grad(k: KernelContext) -> Any:
    """MaxPoolGrad(x, y, dy): dy routed to each window's (first) maximum."""
    xp = k.xp
    geom = _pool_geom(k)
    alloc = out_allocator(k)
    overlap = _overlapping(k)

    def compute(x: Any, y: Any, dy: Any) -> tuple[Any]:
        g = geom(x.shape[1], x.shape[2])
        xpad = _pad_input(xp, x, g, _lowest(x.dtype))
        full = _zeroed_full(xp, g, x.shape[0], x.shape[3], dy.dtype, alloc, k)
        for rs, cs, hit in _first_max_hits(xp, xpad, y, g):
            if overlap:
                full[:, rs, cs, :] += xp.multiply(dy, hit)
            else:  # each input position is in one window: write in place
                xp.multiply(dy, hit, out=full[:, rs, cs, :])
        return (_cropped(xp, full, g, alloc, k),)
    return compute


@register_kernel("MaxPoolGradGrad")
def _max_pool_grad_grad(k: KernelContext) -> Any:
    """MaxPoolGradGrad(x, y, ddx): ddx read back at each window's (first) maximum."""
    xp = k.xp
    geom = _pool_geom(k)

    def compute(x: Any, y: Any, ddx: Any) -> tuple[Any]:
        g = geom(x.shape[1], x.shape[2])
        xpad = _pad_input(xp, x, g, _lowest(x.dtype))
        dpad = _pad_input(xp, ddx, g, 0)
        out = xp.zeros(y.shape, dtype=ddx.dtype)
        for rs, cs, hit in _first_max_hits(xp, xpad, y, g):
            xp.copyto(out, dpad[:, rs, cs, :], where=hit)
        return (out,)
    return compute


def _avg_scale(xp: Any, g: _Geom, dtype: Any) -> Any:
    """1 / (number of real, unpadded inputs) of each output position, shape (1, Ho, Wo, 1)."""
    valid = np.zeros((g.hp, g.wp), dtype=np.float64)
    valid[g.ph[0]:g.ph[1], g.pw[0]:g.pw[1]] = 1
    count = np.zeros((g.ho, g.wo), dtype=np.float64)
    for _, _, rs, cs in g.taps:
        count += valid[rs, cs]
    return xp.asarray((1.0 / count).reshape(1, g.ho, g.wo, 1).astype(dtype))


def _avg_cache(xp: Any, geom: Any) -> Any:
    cache: dict[tuple[int, int, Any], Any] = {}

    def get(h: int, w: int, dtype: Any) -> tuple[_Geom, Any]:
        g = geom(h, w)
        s = cache.get((h, w, dtype))
        if s is None:
            s = cache[(h, w, dtype)] = _avg_scale(xp, g, dtype)
        return g, s
    return get


@register_kernel("AvgPool")
def _avg_pool(k: KernelContext) -> Any:
    xp = k.xp
    scale = _avg_cache(xp, _pool_geom(k))
    alloc = out_allocator(k)

    def compute(x: Any) -> tuple[Any]:
        g, s = scale(x.shape[1], x.shape[2], x.dtype)
        xpad = _pad_input(xp, x, g, 0)
        out = _first_tap(xp, xpad, g, _alloc_if(alloc, (x.shape[0], g.ho, g.wo, x.shape[3]), k))
        for _, _, rs, cs in g.taps[1:]:
            out += xpad[:, rs, cs, :]
        out *= s
        return (out,)
    return compute


@register_kernel("AvgPoolGrad")
def _avg_pool_grad(k: KernelContext) -> Any:
    """AvgPoolGrad(input_sizes, dy): dy / count spread over each window."""
    xp = k.xp
    scale = _avg_cache(xp, _pool_geom(k))
    alloc = out_allocator(k)
    overlap = _overlapping(k)

    def compute(sizes: Any, dy: Any) -> tuple[Any]:
        n, h, w, c = _sizes(sizes)
        g, s = scale(h, w, dy.dtype)
        _check_dy("AvgPoolGrad", dy, (n, g.ho, g.wo, c))
        ds = dy * s
        full = _zeroed_full(xp, g, n, c, dy.dtype, alloc, k)
        for _, _, rs, cs in g.taps:
            if overlap:
                full[:, rs, cs, :] += ds
            else:
                full[:, rs, cs, :] = ds
        return (_cropped(xp, full, g, alloc, k),)
    return compute
