"""Shared checks for op tests: forward against a NumPy reference, gradients against central
finite differences in float64, each on the inputs the test passes (draw them fresh)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import actorflow as af


def run_op(build: Callable[..., Any], inputs: Sequence[np.ndarray]) -> Any:
    """Build `build(*placeholders)` in a fresh graph, feed `inputs`, return its value(s)."""
    g = af.Graph()
    with g.as_default():
        phs = [af.placeholder(af.as_dtype(x.dtype), x.shape) for x in inputs]
        out = build(*phs)
        with af.Session(graph=g) as s:
            return s.run(out, dict(zip(phs, inputs, strict=True)))


def numeric_grad(f: Callable[[np.ndarray], float], x: np.ndarray,
                 eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function `f` (a NumPy reference) at `x`."""
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        out[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return out


def check_forward(build: Callable[..., Any], reference: Callable[..., Any],
                  inputs: Sequence[np.ndarray], rtol: float = 1e-6, atol: float = 1e-6) -> None:
    got = run_op(build, inputs)
    want = reference(*inputs)
    if isinstance(want, list | tuple):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
            assert np.shape(a) == np.shape(b), (np.shape(a), np.shape(b))
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
        assert np.shape(got) == np.shape(want), (np.shape(got), np.shape(want))


def check_gradient(build: Callable[..., Any], inputs: Sequence[np.ndarray],
                   wrt: Sequence[int] | None = None, eps: float = 1e-6, rtol: float = 1e-4,
                   atol: float = 1e-6, seed: int | None = None) -> None:
    """Compare af.gradients of sum(w * build(x)) with central differences, in float64.

    `w` is a fixed random weighting so every output element matters. Inputs at index in
    `wrt` (default: every floating input) are differentiated; others are fed unchanged.
    """
    rng = np.random.default_rng(seed)
    inputs = [np.asarray(x) for x in inputs]
    wrt = [i for i, x in enumerate(inputs) if x.dtype.kind == "f"] if wrt is None else list(wrt)
    g = af.Graph()
    with g.as_default():
        phs = [af.placeholder(af.as_dtype(x.dtype), x.shape) for x in inputs]
        out = build(*phs)
        w = af.placeholder(af.float64, out.shape)
        w_val = rng.standard_normal(np.shape(out.shape.as_list() if out.shape.rank else ()))
        if out.shape.rank is None or not out.shape.is_fully_defined():
            raise AssertionError("check_gradient needs an output of fully known static shape")
        w_val = rng.standard_normal(out.shape.as_list())
        loss = af.reduce_sum(out * w)
        grads = af.gradients(loss, [phs[i] for i in wrt])
        with af.Session(graph=g) as s:
            feed = dict(zip(phs, inputs, strict=True))
            feed[w] = w_val
            analytic = s.run([gr if gr is not None else loss for gr in grads], feed)
            for k, i in enumerate(wrt):
                assert grads[k] is not None, f"no gradient for input {i}"
                x = inputs[i].astype(np.float64)
                num = np.zeros_like(x)
                flat = x.reshape(-1)
                for j in range(flat.size):
                    old = flat[j]
                    flat[j] = old + eps
                    feed[phs[i]] = x
                    up = s.run(loss, feed)
                    flat[j] = old - eps
                    feed[phs[i]] = x
                    down = s.run(loss, feed)
                    flat[j] = old
                    num.reshape(-1)[j] = (up - down) / (2 * eps)
                feed[phs[i]] = inputs[i]
                np.testing.assert_allclose(analytic[k], num, rtol=rtol, atol=atol,
                                           err_msg=f"gradient of input {i}")
