"""Kernels of the random ops. Each node has a generator, seeded from its ``seed`` (graph
seed) and ``seed2`` (op seed) attributes: successive steps draw new numbers, and the same graph
run in a new session draws the same sequence again.

The generator lives in the device's resources (container ``_random``, keyed by node name and
seeds), not in the kernel instance, because a session compiles one executable per call
signature: every executable holding the node then continues one stream, as in TF, instead of
each restarting it. Resetting the container restarts the streams.

On a CPU the generator is NumPy's PCG64 (`numpy.random.Generator`); on a GPU it is CuPy's
``RandomState``, which draws on the device. Float16 and bfloat16 values are drawn in float32
and rounded. The kernels write into fresh buffers only (pooled when large), then scale and
shift them in place; uniform floats are then clamped below maxval, which rounding of
``r * (max - min) + min`` can reach.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.outputs import out_allocator
from devices.kernels.registry import KernelContext, register_kernel

_MASK64 = (1 << 64) - 1
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


class Draws:
    """The generator of one node, with one interface over NumPy and CuPy."""

    def __init__(self, xp: Any, seed: int, seed2: int):
        self.xp = xp
        if xp is np:
            self._g = np.random.default_rng([int(seed) & _MASK64, int(seed2) & _MASK64])
            self._host = True
        else:  # pragma: no cover - GPU
            mixed = np.random.SeedSequence([int(seed) & _MASK64, int(seed2) & _MASK64])
            self._g = xp.random.RandomState(int(mixed.generate_state(1, np.uint64)[0]))
            self._host = False

    def normal(self, shape: Any, dtype: np.dtype, out: Any = None) -> Any:
        if self._host:
            if out is not None:
                return self._g.standard_normal(dtype=dtype, out=out)
            return self._g.standard_normal(shape, dtype=dtype)
        return self._g.standard_normal(shape, dtype=dtype)  # pragma: no cover

    def uniform(self, shape: Any, dtype: np.dtype, out: Any = None) -> Any:
        if self._host:
            if out is not None:
                return self._g.random(dtype=dtype, out=out)
            return self._g.random(shape, dtype=dtype)
        return self._g.random_sample(shape, dtype=dtype)  # pragma: no cover

    def integers(self, lo: int, hi: int, shape: Any, dtype: np.dtype) -> Any:
        if self._host:
            return self._g.integers(lo, hi, shape, dtype=dtype)
        return self._g.randint(lo, hi, shape, dtype=dtype)  # pragma: no cover

    def permutation(self, n: int) -> Any:
        return self._g.permutation(n)


def node_draws(k: KernelContext) -> Callable[[], Draws]:
    """A function returning the node's generator: looked up (or created) in the device's
    resources on the first call, and again after a container reset. Call it in compute, on the
    device's actor, which owns the resources."""
    seed, seed2 = int(k.attrs.get("seed", 0)), int(k.attrs.get("seed2", 0))
    resources = k.device.resources
    key = f"{k.name}:{seed}:{seed2}"
    xp = k.xp
    cell: list[Any] = [None, -1]  # [generator, resources.generation it was looked up in]

    def get() -> Draws:
        if cell[1] != resources.generation:
            cell[0] = resources.lookup_or_create("_random", key, lambda: Draws(xp, seed, seed2))
            cell[1] = resources.generation
        return cell[0]
    return get


def _shape_reader(k: KernelContext) -> tuple[Any, bool]:
    """(static shape or None, whether the first input is the shape)."""
    s = k.attrs.get("shape")
    if s is not None:
        return tuple(int(d) for d in s), False
    return None, True


def _float_kernel(kind: str) -> Any:
    """A kernel factory for RandomStandardNormal / RandomUniform / TruncatedNormal."""

    def factory(k: KernelContext) -> Any:
        get = node_draws(k)
        xp = k.xp
        dt = k.out_dtypes[0].np
        gen = dt if dt in _NATIVE else np.dtype(np.float32)
        scale = float(k.attrs.get("scale", 1.0))
        offset = float(k.attrs.get("offset", 0.0))
        static, _ = _shape_reader(k)
        alloc = out_allocator(k) if gen == dt else None
        uniform = kind == "uniform"
        top = _below(offset + scale, dt, xp) if uniform and scale > 0 else None

        def compute(*ins: Any) -> tuple[Any]:
            shape = static if static is not None else tuple(int(d) for d in ins[0])
            draws = get()
            buf = alloc() if alloc is not None else None
            out = draws.uniform(shape, gen, buf) if uniform else draws.normal(shape, gen, buf)
            if kind == "truncated":
                _redraw_tails(xp, draws, out, gen)
            if scale != 1.0:
                out *= scale
            if offset != 0.0:
                out += offset
            if gen != dt:
                out = out.astype(dt)
            if top is not None:  # rounding may have reached maxval: keep [minval, maxval)
                xp.minimum(out, top, out=out)
            return (out,)
        return compute

    return factory


def _below(bound: float, dt: np.dtype, xp: Any) -> Any:
    """The largest value of `dt` strictly below `bound`, as a 0-d array."""
    b = np.array(bound, dtype=dt)
    if float(b) >= bound:
        b = np.nextafter(b, np.array(-np.inf, dtype=dt))
    return xp.asarray(b)


def _redraw_tails(xp: Any, draws: Draws, out: Any, dtype: np.dtype) -> None:
    """Redraw, in place, every value more than two standard deviations from 0."""
    flat = out.reshape(-1)
    bad = xp.flatnonzero(xp.abs(flat) > 2.0)
    while bad.size:
        v = draws.normal((int(bad.size),), dtype)
        flat[bad] = v
        bad = bad[xp.abs(v) > 2.0]


register_kernel("RandomStandardNormal", stateful=True)(_float_kernel("normal"))
register_kernel("TruncatedNormal", stateful=True)(_float_kernel("truncated"))
register_kernel("RandomUniform", stateful=True)(_float_kernel("uniform"))


@register_kernel("RandomUniformInt", stateful=True)
def _uniform_int(k: KernelContext) -> Any:
    get = node_draws(k)
    dt = k.out_dtypes[0].np
    static, _ = _shape_reader(k)
    if "minval" in k.attrs:
        lo, hi = int(k.attrs["minval"]), int(k.attrs["maxval"])
        if static is not None:
            return lambda: (get().integers(lo, hi, static, dt),)
        return lambda s: (get().integers(lo, hi, tuple(int(d) for d in s), dt),)

    def compute(*ins: Any) -> tuple[Any]:
        shape = static if static is not None else tuple(int(d) for d in ins[0])
        a, b = int(ins[-2]), int(ins[-1])
        if a >= b:
            raise InvalidArgumentError(f"random_uniform needs minval < maxval, got [{a}, {b})")
        return (get().integers(a, b, shape, dt),)
    return compute


@register_kernel("RandomShuffle", stateful=True)
def _shuffle(k: KernelContext) -> Any:
    get = node_draws(k)

    def compute(x: Any) -> tuple[Any]:
        if x.ndim == 0 or x.shape[0] <= 1:
            return (x,)
        return (x[get().permutation(x.shape[0])],)
    return compute


@register_kernel("Multinomial", stateful=True)
def _multinomial(k: KernelContext) -> Any:
    get = node_draws(k)
    xp = k.xp
    n = int(k.attrs["num_samples"])
    dt = k.out_dtypes[0].np

    def compute(logits: Any) -> tuple[Any]:
        batch, classes = logits.shape
        if n == 0 or batch == 0:
            return (xp.empty((batch, n), dtype=dt),)
        if classes == 0:
            raise InvalidArgumentError("categorical: logits have no classes to draw from")
        z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        cdf = xp.cumsum(xp.exp(z), axis=1)
        u = get().uniform((batch, n), np.dtype(np.float64)) * cdf[:, -1:]
        out = xp.empty((batch, n), dtype=dt)
        for r in range(batch):
            out[r] = xp.minimum(xp.searchsorted(cdf[r], u[r], side="right"), classes - 1)
        return (out,)
    return compute
