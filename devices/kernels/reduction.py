"""Kernels of the reductions, argmax/argmin, segment sums and their gradient helpers
(MeanGrad: the gradient of a mean over static axes in one division; ProdGrad).

Static axes (the ``axis`` attribute) are parsed once in the factory; a second input holds
the axes when they are only known at run time. Results are always arrays, never NumPy
scalars (``np.sum`` of a whole array returns a scalar, hence the ``asarray``). Large
reductions that keep axis 0 (row sums, means, maxima) split their rows over the device's
intra-op pool (`_row_split`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devices.device import elementwise_cost_us, shape_bytes
from devices.errors import InvalidArgumentError
from devices.intra_op import MIN_CHUNK_ELEMENTS
from devices.kernels.registry import KernelContext, register_kernel


def _input_cost(k: KernelContext) -> float:
    shape = k.in_shapes[0] if k.in_shapes else None
    return elementwise_cost_us(shape_bytes(shape, k.in_dtypes[0].size))


def _static_axes(k: KernelContext) -> tuple[int, ...] | None:
    axis = k.attrs.get("axis")
    return None if axis is None else tuple(int(a) for a in axis)


def _dynamic_axes(axes: Any) -> tuple[int, ...]:
    """Axes from a run-time tensor (NumPy or CuPy: ``tolist`` works on both)."""
    return tuple(int(a) for a in axes.reshape(-1).tolist())


def _reducer(k: KernelContext) -> Any:
    """f(x, axis) for the node's op, with its keepdims and output dtype bound."""
    xp = k.xp
    keep = bool(k.attrs.get("keepdims", False))
    dt = k.out_dtypes[0].np
    op = k.op
    if op == "Sum":
        if xp is np:  # the ufunc's reduce skips np.sum's Python wrapper (~2 us a call)
            add = np.add.reduce
            return lambda x, ax: add(x, axis=ax, dtype=dt, keepdims=keep)
        return lambda x, ax: xp.sum(x, axis=ax, dtype=dt, keepdims=keep)
    if op == "Prod":
        if xp is np:  # the ufunc's reduce: np.prod's wrapper costs ~3 us on a shape vector
            mul = np.multiply.reduce
            return lambda x, ax: mul(x, axis=ax, dtype=dt, keepdims=keep)
        return lambda x, ax: xp.prod(x, axis=ax, dtype=dt, keepdims=keep)
    if op in ("Max", "Min") and xp is np:
        # TF's identity for an empty reduction: -inf / +inf (the lowest / highest integer)
        lim = (np.inf if op == "Min" else -np.inf) if dt.kind == "f" else (
            np.iinfo(dt).max if op == "Min" else np.iinfo(dt).min) if dt.kind in "iu" else None
        if lim is not None:
            f = np.minimum.reduce if op == "Min" else np.maximum.reduce
            return lambda x, ax: f(x, axis=ax, keepdims=keep, initial=lim)
    if op == "Max":
        return lambda x, ax: xp.max(x, axis=ax, keepdims=keep)
    if op == "Min":
        return lambda x, ax: xp.min(x, axis=ax, keepdims=keep)
    if op == "Any":
        return lambda x, ax: xp.any(x, axis=ax, keepdims=keep)
    if op == "All":
        return lambda x, ax: xp.all(x, axis=ax, keepdims=keep)
    if k.out_dtypes[0].is_floating:
        shape = k.in_shapes[0] if k.in_shapes else None
        axes = k.attrs.get("axis")
        if xp is np and shape is not None and None not in shape and len(k.in_shapes) == 1:
            count = math.prod(shape) if axes is None else math.prod(shape[a] for a in axes)
            if count > 0:  # the sum times 1/n, with n known at compile time
                add, inv = np.add.reduce, dt.type(1.0 / count)
                return lambda x, ax: add(x, axis=ax, dtype=dt, keepdims=keep) * inv
        if xp is np and dt.itemsize >= 4:
            return _dynamic_mean(dt, keep)
        return lambda x, ax: xp.mean(x, axis=ax, keepdims=keep)

    def int_mean(x: Any, ax: tuple[int, ...] | None) -> Any:
        # the sum divided by the count, rounded toward zero (TF's integer mean)
        s = xp.sum(x, axis=ax, dtype=dt, keepdims=keep)
        n = x.size if ax is None else math.prod(x.shape[a] for a in ax)
        if n == 0:
            return xp.zeros_like(s)
        return xp.sign(s) * (xp.abs(s) // n)
    return int_mean


def _dynamic_mean(dt: Any, keep: bool) -> Any:
    """A float32/float64 mean when the count is only known at run time: the sum divided by
    the count, as np.mean computes it (its Python wrapper costs ~8 us of a small mean). An
    empty reduction is np.mean's NaN."""
    add = np.add.reduce

    def mean(x: Any, ax: tuple[int, ...] | None) -> Any:
        shape = x.shape
        n = math.prod(shape) if ax is None else math.prod(shape[a] for a in ax)
        if n == 0:  # TF's NaN, without NumPy's warnings
            with np.errstate(invalid="ignore", divide="ignore"):
                return add(x, axis=ax, dtype=dt, keepdims=keep) / dt.type(0)
        return add(x, axis=ax, dtype=dt, keepdims=keep) / n
    return mean


_ROW_UFUNCS = {"Sum": np.add, "Mean": np.add, "Max": np.maximum, "Min": np.minimum}


def _row_split(k: KernelContext, ax: tuple[int, ...] | None) -> Any:
    """A reduction that keeps axis 0, split by rows over the intra-op pool (each row is
    reduced exactly as in one call, so the values are the same), or None when the node is
    small, its shapes are not static, or its axes include axis 0."""
    ufunc = _ROW_UFUNCS.get(k.op)
    shape = k.in_shapes[0] if k.in_shapes else None
    out_shape = k.out_shapes[0] if k.out_shapes else None
    if (ufunc is None or k.xp is not np or ax is None or shape is None or None in shape
            or out_shape is None or None in out_shape or len(shape) < 2):
        return None
    axes = sorted({a % len(shape) for a in ax})
    if not axes or axes[0] == 0 or not k.device.intra_op.worth_splitting(math.prod(shape)):
        return None
    if k.op == "Mean" and not k.out_dtypes[0].is_floating:
        return None
    pool = k.device.intra_op
    keep = bool(k.attrs.get("keepdims", False))
    dt = k.out_dtypes[0].np
    red = tuple(axes)
    row = math.prod(shape[1:])
    inv = dt.type(1.0 / math.prod(shape[a] for a in axes)) if k.op == "Mean" else None
    out_shape = tuple(out_shape)
    kw = {"dtype": dt} if ufunc is np.add else {}
    kind = object()  # this kernel's work, measured split and inline by the pool

    def compute(x: Any) -> tuple[Any]:
        out = np.empty(out_shape, dt)

        def body(lo: int, hi: int) -> None:
            o = out[lo:hi]
            ufunc.reduce(x[lo:hi], axis=red, keepdims=keep, out=o, **kw)
            if inv is not None:
                np.multiply(o, inv, out=o)

        pool.parallel_for(x.shape[0], body, max(1, MIN_CHUNK_ELEMENTS // max(row, 1)), kind)
        return (out,)
    return compute


def _reduction(k: KernelContext) -> Any:
    f = _reducer(k)
    asarray = k.xp.asarray
    if len(k.in_dtypes) > 1:
        return lambda x, axes: (asarray(f(x, _dynamic_axes(axes))),)
    ax = _static_axes(k)
    split = _row_split(k, ax)
    if split is not None:
        return split
    return lambda x: (asarray(f(x, ax)),)


for _op in ("Sum", "Mean", "Max", "Min", "Prod", "Any", "All"):
    register_kernel(_op, cost=_input_cost)(_reduction)


@register_kernel("MeanGrad", cost=_input_cost)
def _mean_grad(k: KernelContext) -> Any:
    """MeanGrad(g, x) (the gradient of Mean over the static axes `axis`): g / count
    broadcast to x's shape in one division into a new array, where count is x's elements per
    element of the mean, cast to g's dtype as TF's gradient casts it (an empty x gives an
    empty result). The kept shape and the count are worked out once per shape of x (a step
    sees one or a few)."""
    xp = k.xp
    axes = k.attrs.get("axis")
    keep = bool(k.attrs.get("keepdims", False))
    dt = k.out_dtypes[0].np
    divide, empty = xp.true_divide, xp.empty
    per_shape: dict[tuple[int, ...], tuple[tuple[int, ...], Any, bool]] = {}

    def plan(shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any, bool]:
        nd = len(shape)
        red = range(nd) if axes is None else [a % nd for a in axes] if nd else ()
        count = 1
        kept = list(shape)
        for a in red:
            count *= shape[a]
            kept[a] = 1
        size = 1
        for d in shape:
            size *= d
        got = (tuple(kept), dt.type(count), size > 0)
        if len(per_shape) < 64:
            per_shape[shape] = got
        return got

    def compute(g: Any, x: Any) -> tuple[Any]:
        shape = x.shape
        got = per_shape.get(shape)
        kept, count, nonempty = plan(shape) if got is None else got
        out = empty(shape, dt)
        if nonempty:
            divide(g if keep else g.reshape(kept), count, out=out)
        return (out,)
    return compute


@register_kernel("ProdGrad", cost=_input_cost)
def _prod_grad(k: KernelContext) -> Any:
    """(x, g[, axes]) -> g * (the product of the other elements of each element's group)."""
    xp = k.xp

    def others(x: Any, axes: tuple[int, ...] | None) -> Any:
        nd = x.ndim
        red = list(range(nd)) if axes is None else sorted({a % nd for a in axes})
        keep = [i for i in range(nd) if i not in red]
        perm = keep + red
        xt = xp.transpose(x, perm)
        lead = xt.shape[:len(keep)]
        n = math.prod(xt.shape[len(keep):])
        r = xp.reshape(xt, lead + (n,))
        if n == 0:
            return xp.zeros_like(x)
        # exclusive products from the left and from the right: p[i] = prod(r[:i]) prod(r[i+1:])
        left = xp.ones_like(r)
        right = xp.ones_like(r)
        if n > 1:
            left[..., 1:] = xp.cumprod(r[..., :-1], axis=-1)
            right[..., :-1] = xp.cumprod(r[..., :0:-1], axis=-1)[..., ::-1]
        p = xp.reshape(left * right, xt.shape)
        return xp.transpose(p, tuple(int(i) for i in np.argsort(perm)))

    if len(k.in_dtypes) > 2:
        return lambda x, g, axes: (xp.multiply(g, others(x, _dynamic_axes(axes))),)
    ax = _static_axes(k)
    return lambda x, g: (xp.multiply(g, others(x, ax)),)


# ---- argmax / argmin --------------------------------------------------------------------
def _arg(name: str) -> Any:
    def factory(k: KernelContext) -> Any:
        f = getattr(k.xp, name)
        asarray = k.xp.asarray
        axis = int(k.attrs["axis"])
        dt = k.out_dtypes[0].np
        return lambda x: (asarray(f(x, axis=axis), dtype=dt),)
    return factory


register_kernel("ArgMax", cost=_input_cost)(_arg("argmax"))
register_kernel("ArgMin", cost=_input_cost)(_arg("argmin"))


# ---- segment sums -----------------------------------------------------------------------
_SPARSE_MIN_ELEMENTS = 4096  # below this np.add.at is faster than building a CSR matrix


@register_kernel("UnsortedSegmentSum")
def _unsorted_segment_sum(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np
    csr = None
    if xp is np and dt in (np.float32, np.float64, np.int32, np.int64):
        try:
            from scipy.sparse import csr_matrix as csr
        except ImportError:  # pragma: no cover - scipy comes with scikit-learn
            csr = None
    add_at = getattr(xp.add, "at", None)
    if add_at is None:  # CuPy without ufunc.at
        from cupyx import scatter_add as add_at  # type: ignore[import-not-found]

    def compute(data: Any, ids: Any, num_segments: Any) -> tuple[Any]:
        n = int(num_segments)
        if n < 0:
            raise InvalidArgumentError(f"'{k.name}': num_segments must be >= 0, got {n}")
        if data.shape[:ids.ndim] != ids.shape:
            raise InvalidArgumentError(
                f"'{k.name}': segment_ids of shape {ids.shape} must be a prefix of the shape "
                f"of data {data.shape}")
        inner = data.shape[ids.ndim:]
        flat_ids = ids.reshape(-1)
        rows = data.reshape((flat_ids.size,) + inner)
        if flat_ids.size == 0:
            return (xp.zeros((n,) + inner, dt),)
        hi = int(flat_ids.max())
        if hi >= n:
            raise InvalidArgumentError(
                f"'{k.name}': segment id {hi} is out of range: num_segments is {n}")
        if int(flat_ids.min()) < 0:  # negative ids are dropped, as in TF
            kept = flat_ids >= 0
            flat_ids, rows = flat_ids[kept], rows[kept]
        if csr is not None and rows.ndim > 1 and rows.size >= _SPARSE_MIN_ELEMENTS:
            m = len(flat_ids)
            onehot = csr((np.ones(m, dt), (flat_ids, np.arange(m))), shape=(n, m))
            out = np.asarray(onehot @ rows.reshape(m, -1), dtype=dt)
            return (out.reshape((n,) + inner),)
        out = xp.zeros((n,) + inner, dt)
        add_at(out, flat_ids, rows)
        return (out,)
    return compute


@register_kernel("GatherDropNegatives")
def _gather_drop_negatives(k: KernelContext) -> Any:
    xp = k.xp

    def compute(params: Any, ids: Any) -> tuple[Any]:
        if ids.size and int(ids.min()) < 0:
            out = xp.take(params, xp.maximum(ids, 0), axis=0)
            out[ids < 0] = 0
            return (out,)
        return (xp.take(params, ids, axis=0),)
    return compute
