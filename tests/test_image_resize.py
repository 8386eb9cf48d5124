"""resize_bicubic and resize_area (checked against TensorFlow 2.21 over 45 sizes and flags by
benchmarks/audit_ops.py): known values, the identity at the same size, and the bicubic
gradient against central differences."""

from __future__ import annotations

import numpy as np

import actorflow as af
from tests.opcheck import run_op

RNG = np.random.default_rng(4)


def test_area_halving_is_the_two_by_two_mean_and_same_size_is_identity() -> None:
    x = RNG.standard_normal((1, 4, 6, 2)).astype(np.float32)
    half = run_op(lambda t: af.image.resize_area(t, [2, 3]), [x])
    want = x.reshape(1, 2, 2, 3, 2, 2).mean((2, 4))
    np.testing.assert_allclose(half, want, rtol=1e-6, atol=1e-6)
    for f in (af.image.resize_area, af.image.resize_bicubic):
        np.testing.assert_allclose(run_op(lambda t, f=f: f(t, [4, 6]), [x]), x, atol=1e-6)
    same = run_op(lambda t: af.image.resize_images(t, [2, 3], af.image.ResizeMethod.AREA), [x])
    np.testing.assert_allclose(same, want, rtol=1e-6, atol=1e-6)


def test_bicubic_gradient_matches_finite_differences() -> None:
    x = RNG.standard_normal((1, 4, 5, 2)).astype(np.float32)
    w = RNG.standard_normal((1, 7, 3, 2)).astype(np.float32)
    for kw in ({}, {"half_pixel_centers": True}, {"align_corners": True}):
        with af.Graph().as_default():
            p = af.placeholder(af.float32, x.shape)
            loss = af.reduce_sum(af.image.resize_bicubic(p, [7, 3], **kw) * w)
            g = af.gradients(loss, [p])[0]
            with af.Session() as s:
                got = s.run(g, {p: x})
                for idx in list(np.ndindex(x.shape))[::9]:
                    up, dn = x.copy(), x.copy()
                    up[idx] += 1e-2
                    dn[idx] -= 1e-2
                    num = (s.run(loss, {p: up}) - s.run(loss, {p: dn})) / 2e-2
                    assert abs(got[idx] - num) < 1e-3 * max(1.0, abs(num)), (kw, idx)
