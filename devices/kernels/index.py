"""Kernels of the indexing ops: strided slicing and its gradient, slice, gather, one_hot.

A strided slice's ``spec`` attribute (see `actorflow.ops.index_ops`) becomes a NumPy index
tuple once per node; parts given as ``{"input": k}`` are filled from the k-th extra input on
each step. Slicing returns a view of the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.array import axis_index, static_dim
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext, register_kernel


def _index_builder(spec: list[list[Any]]) -> tuple[tuple[Any, ...] | None, Any]:
    """(the index tuple, None) for a static spec, else (None, fn(dynamic values) -> index)."""
    dynamic = False

    def part(v: Any, vals: Any) -> Any:
        if isinstance(v, dict):
            return int(vals[int(v["input"]) - 1])
        return v

    def build(vals: Any) -> tuple[Any, ...]:
        out: list[Any] = []
        for e in spec:
            kind = e[0]
            if kind == "i":
                out.append(part(e[1], vals))
            elif kind == "s":
                out.append(slice(part(e[1], vals), part(e[2], vals), part(e[3], vals)))
            elif kind == "n":
                out.append(None)
            else:
                out.append(Ellipsis)
        if not any(e[0] == "e" for e in spec):
            out.append(Ellipsis)  # same meaning, and NumPy then returns arrays, not scalars
        return tuple(out)

    for e in spec:
        if any(isinstance(v, dict) for v in e[1:]):
            dynamic = True
    if dynamic:
        return None, build
    return build(()), None


def _check_ints(spec: list[list[Any]], index: tuple[Any, ...], shape: tuple[int, ...]) -> None:
    """Integer indices out of range raise (NumPy would raise IndexError too; this names it)."""
    dim = 0
    used = sum(e[0] in "is" for e in spec)
    for e, v in zip(spec, index, strict=False):
        if e[0] == "e":
            dim += len(shape) - used
        elif e[0] == "i":
            if dim < len(shape) and not -shape[dim] <= v < shape[dim]:
                raise InvalidArgumentError(f"index {v} is out of range for dimension {dim} of "
                                           f"size {shape[dim]} (shape {tuple(shape)})")
            dim += 1
        elif e[0] == "s":
            if e[3] == 0 or v.step == 0:
                raise InvalidArgumentError("slice step cannot be zero")
            dim += 1


@register_kernel("StridedSlice")
def _strided_slice(k: KernelContext) -> Any:
    spec = k.attrs["spec"]
    index, build = _index_builder(spec)
    if index is not None:
        def compute(x: Any) -> tuple[Any]:
            try:
                return (x[index],)
            except IndexError:
                _check_ints(spec, index, x.shape)
                raise
        return compute

    def dynamic(x: Any, *vals: Any) -> tuple[Any]:
        idx = build(vals)
        _check_ints(spec, idx, x.shape)
        return (x[idx],)
    return dynamic


@register_kernel("StridedSliceGrad")
def _strided_slice_grad(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    index, build = _index_builder(k.attrs["spec"])
    alloc = out_allocator(k)

    def compute(shape: Any, g: Any, *vals: Any) -> tuple[Any]:
        if alloc is not None:
            out = alloc()
            out.fill(0)
        else:
            out = xp.zeros([int(d) for d in shape], dtype=dt)
        out[index if index is not None else build(vals)] = g
        return (out,)
    return compute


@register_kernel("Slice")
def _slice(k: KernelContext) -> Any:
    begin, size = k.attrs.get("begin"), k.attrs.get("size")
    if begin is None:
        def dynamic(x: Any, b: Any, s: Any) -> tuple[Any]:
            bs, ss = [int(v) for v in b], [int(v) for v in s]
            if len(bs) != x.ndim or len(ss) != x.ndim:
                raise InvalidArgumentError(f"slice: begin {bs} and size {ss} need one entry per "
                                           f"dimension of the input of shape {tuple(x.shape)}")
            idx = []
            for i, (bi, si, d) in enumerate(zip(bs, ss, x.shape, strict=True)):
                si = d - bi if si == -1 else si
                if bi < 0 or si < 0 or bi + si > d:
                    raise InvalidArgumentError(
                        f"slice: begin {bs} and size {ss} do not fit dimension {i} of the input "
                        f"of shape {tuple(x.shape)}")
                idx.append(slice(bi, bi + si))
            return (x[tuple(idx)],)
        return dynamic
    index = tuple(slice(int(b), None if s == -1 else int(b) + int(s))
                  for b, s in zip(begin, size, strict=True))
    shape = k.in_shapes[0]
    checks = [(i, int(b) if s == -1 else int(b) + int(s))
              for i, (b, s) in enumerate(zip(begin, size, strict=True))
              if static_dim(shape, i) is None]
    if not checks:
        return lambda x: (x[index],)

    def compute(x: Any) -> tuple[Any]:
        for i, need in checks:
            if x.shape[i] < need:
                raise InvalidArgumentError(
                    f"slice with begin {list(begin)} and size {list(size)} does not fit the "
                    f"input of shape {tuple(x.shape)} (dimension {i})")
        return (x[index],)
    return compute


@register_kernel("GatherV2")
def gather_factory(k: KernelContext) -> Any:
    """GatherV2 (attr ``axis``; inputs params, indices); also used by ResourceGather."""
    xp = k.xp
    axis = int(k.attrs["axis"])
    on_host = xp is np  # CuPy's take wraps out-of-range indices instead of raising
    out_shape = k.out_shapes[0]
    take = xp.take
    if out_shape is None or len(out_shape) == 0:  # NumPy returns a scalar for a 0-d result
        def take(p: Any, i: Any, axis: int) -> Any:
            return xp.asarray(xp.take(p, i, axis=axis))

    scalar_rows = on_host and axis == 0 and k.in_shapes[1:2] == [()]

    def compute(p: Any, i: Any) -> tuple[Any]:
        if scalar_rows and i.ndim == 0:  # one row: a view, ~0.3 us instead of take's ~6 us
            r = int(i)
            if not 0 <= r < p.shape[0]:
                raise InvalidArgumentError(
                    f"gather: index {r} is out of range [0, {p.shape[0]}) for dimension 0 of "
                    f"params of shape {tuple(p.shape)}")
            return (p[r],)
        if on_host and i.size:
            lo, hi = int(i.min()), int(i.max())
            n = p.shape[axis]
            if lo < 0 or hi >= n:
                raise InvalidArgumentError(
                    f"gather: index {lo if lo < 0 else hi} is out of range [0, {n}) for "
                    f"dimension {axis} of params of shape {tuple(p.shape)}")
        return (take(p, i, axis=axis),)
    return compute


@register_kernel("GatherGrad")
def _gather_grad(k: KernelContext) -> Any:
    xp = k.xp
    axis = int(k.attrs["axis"])
    dt = k.out_dtypes[0].np
    if xp is np:
        scatter_add = np.add.at
    else:  # pragma: no cover - GPU
        import cupyx
        scatter_add = cupyx.scatter_add

    def compute(g: Any, i: Any, shape: Any) -> tuple[Any]:
        out = xp.zeros([int(d) for d in shape], dtype=dt)
        scatter_add(out, axis_index(axis, i), g)
        return (out,)
    return compute


@register_kernel("OneHot")
def _one_hot(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    depth, axis = int(k.attrs["depth"]), int(k.attrs["axis"])
    on, off = k.attrs["on_value"], k.attrs["off_value"]
    plain = on == 1 and off == 0
    on_a, off_a = xp.asarray(on, dtype=dt), xp.asarray(off, dtype=dt)
    positions = xp.arange(depth)

    def compute(i: Any) -> tuple[Any]:
        hot = i[..., None] == positions
        out = hot.astype(dt) if plain else xp.where(hot, on_a, off_a)
        if axis != -1 and axis != i.ndim:
            out = xp.moveaxis(out, -1, axis)
        return (out,)
    return compute
