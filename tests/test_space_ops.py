"""TF1 array ops of session 9 (actorflow.ops.space_ops, actorflow.ops.array_extra_ops), each
against a NumPy reference written here with explicit loops (not the ops' reshapes):
space/depth/batch rearrangements and extract_image_patches with their gradients against
finite differences, matrix_set_diag, searchsorted, histogram_fixed_width, unravel_index,
unique_with_counts, tensor_scatter_nd_*, batch_scatter_update, edit_distance, identity_n."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import actorflow as af
from devices.errors import InvalidArgumentError
from tests.opcheck import numeric_grad


@pytest.fixture(autouse=True)
def _fresh_default_graph() -> None:
    af.reset_default_graph()



def _value_and_grad(build: Any, x: np.ndarray, ref: Any, seed: int = 0) -> None:
    """build(placeholder) against ref(array), and d sum(w * y)/dx against finite differences."""
    p = af.placeholder(af.float64, x.shape)
    y = build(p)
    want = ref(x)
    w = np.random.default_rng(seed).standard_normal(want.shape)
    g = af.gradients(af.reduce_sum(y * w), p)[0]
    with af.Session() as s:
        got, gg = s.run([y, g], {p: x})
    assert y.shape.as_list() == list(want.shape)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(gg, numeric_grad(lambda z: (ref(z) * w).sum(), x), atol=1e-7)


def s2d_ref(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    out = np.zeros((n, h // b, w // b, b * b * c))
    for i, j, di, dj in np.ndindex(h // b, w // b, b, b):
        out[:, i, j, (di * b + dj) * c:(di * b + dj + 1) * c] = x[:, i * b + di, j * b + dj]
    return out


def d2s_ref(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    co = c // (b * b)
    out = np.zeros((n, h * b, w * b, co))
    for i, j, di, dj in np.ndindex(h, w, b, b):
        out[:, i * b + di, j * b + dj] = x[:, i, j, (di * b + dj) * co:(di * b + dj + 1) * co]
    return out


def s2b_ref(x: np.ndarray, block: list[int], pads: list[list[int]]) -> np.ndarray:
    xp = np.pad(x, [[0, 0], *pads, [0, 0]])
    n, h, w, c = xp.shape
    b0, b1 = block
    out = np.zeros((b0 * b1 * n, h // b0, w // b1, c))
    for o0, o1, k, i, j in np.ndindex(b0, b1, n, h // b0, w // b1):
        out[(o0 * b1 + o1) * n + k, i, j] = xp[k, i * b0 + o0, j * b1 + o1]
    return out


def b2s_ref(x: np.ndarray, block: list[int], crops: list[list[int]]) -> np.ndarray:
    b0, b1 = block
    nb, h, w, c = x.shape
    n = nb // (b0 * b1)
    full = np.zeros((n, h * b0, w * b1, c))
    for o0, o1, k, i, j in np.ndindex(b0, b1, n, h, w):
        full[k, i * b0 + o0, j * b1 + o1] = x[(o0 * b1 + o1) * n + k, i, j]
    (t, bo), (le, r) = crops
    return full[:, t:h * b0 - bo, le:w * b1 - r]


@pytest.mark.parametrize("b", [2, 3])
def test_space_to_depth_and_back(b: int) -> None:
    x = np.random.default_rng(b).standard_normal((2, 2 * b, b, 2))
    _value_and_grad(lambda p: af.space_to_depth(p, b), x, functools.partial(s2d_ref, b=b))
    z = np.random.default_rng(b + 1).standard_normal((1, 2, 1, b * b * 2))
    _value_and_grad(lambda p: af.depth_to_space(p, b), z, functools.partial(d2s_ref, b=b))
    with pytest.raises(InvalidArgumentError, match="divide"):
        af.space_to_depth(af.zeros([1, 5, 4, 1]), 2)


@pytest.mark.parametrize(("shape", "block", "pads"), [
    ((1, 4, 4, 1), [2, 2], [[0, 0], [0, 0]]),
    ((2, 3, 3, 2), [2, 2], [[1, 0], [1, 0]]),
    ((1, 2, 5, 1), [1, 3], [[0, 0], [0, 1]]),
])
def test_space_to_batch_nd_and_back(shape: tuple, block: list, pads: list) -> None:
    x = np.random.default_rng(1).standard_normal(shape)
    _value_and_grad(lambda p: af.space_to_batch_nd(p, block, pads), x,
                    lambda z: s2b_ref(z, block, pads))
    y = s2b_ref(x, block, pads)
    _value_and_grad(lambda p: af.batch_to_space_nd(p, block, pads), y,
                    lambda z: b2s_ref(z, block, pads))
    back = af.batch_to_space_nd(af.space_to_batch_nd(af.constant(x), block, pads), block, pads)
    with af.Session() as s:
        np.testing.assert_allclose(s.run(back), x)  # crops = paddings: the round trip


def test_space_to_batch_square_block_and_errors() -> None:
    x = np.random.default_rng(2).standard_normal((1, 3, 3, 1))
    with af.Session() as s:
        got = s.run(af.space_to_batch(af.constant(x), [[1, 0], [1, 0]], 2))
        np.testing.assert_allclose(got, s2b_ref(x, [2, 2], [[1, 0], [1, 0]]))
        y = s2b_ref(x, [2, 2], [[1, 0], [1, 0]])
        np.testing.assert_allclose(s.run(af.batch_to_space(af.constant(y), [[1, 0], [1, 0]], 2)),
                                   x)
    with pytest.raises(InvalidArgumentError, match="not divisible"):
        af.space_to_batch_nd(af.zeros([1, 3, 3, 1]), [2, 2], [[0, 0], [0, 0]])


def patches_ref(x: np.ndarray, k: tuple, s: tuple, r: tuple, padding: str) -> np.ndarray:
    n, h, w, c = x.shape
    eff = [(k[i] - 1) * r[i] + 1 for i in range(2)]
    if padding == "VALID":
        oh, ow = (h - eff[0]) // s[0] + 1, (w - eff[1]) // s[1] + 1
        top = left = 0
    else:
        oh, ow = -(-h // s[0]), -(-w // s[1])
        top = max((oh - 1) * s[0] + eff[0] - h, 0) // 2
        left = max((ow - 1) * s[1] + eff[1] - w, 0) // 2
    out = np.zeros((n, oh, ow, k[0] * k[1] * c))
    for i, j, a, b in np.ndindex(oh, ow, k[0], k[1]):
        y, z = i * s[0] + a * r[0] - top, j * s[1] + b * r[1] - left
        if 0 <= y < h and 0 <= z < w:  # outside the image: the zero padding
            out[:, i, j, (a * k[1] + b) * c:(a * k[1] + b + 1) * c] = x[:, y, z]
    return out


@pytest.mark.parametrize(("shape", "k", "s", "r", "padding"), [
    ((1, 5, 5, 2), (3, 3), (2, 2), (1, 1), "SAME"),
    ((1, 6, 6, 1), (2, 2), (1, 1), (2, 2), "VALID"),
    ((2, 4, 5, 1), (2, 3), (3, 2), (1, 2), "SAME"),
])
def test_extract_image_patches(shape: tuple, k: tuple, s: tuple, r: tuple, padding: str) -> None:
    x = np.random.default_rng(3).standard_normal(shape)
    _value_and_grad(lambda p: af.extract_image_patches(p, [1, *k, 1], [1, *s, 1], [1, *r, 1],
                                                       padding), x,
                    lambda z: patches_ref(z, k, s, r, padding))


@pytest.mark.parametrize("shape", [(2, 3, 3), (3, 2), (2, 4)])
def test_matrix_set_diag(shape: tuple) -> None:
    rng = np.random.default_rng(4)
    x, d = rng.standard_normal(shape), rng.standard_normal(shape[:-2] + (min(shape[-2:]),))

    def ref(z: np.ndarray) -> np.ndarray:
        out = z.copy()
        for i in range(min(shape[-2:])):
            out[..., i, i] = d[..., i]
        return out
    _value_and_grad(lambda p: af.matrix_set_diag(p, d), x, ref)


def test_searchsorted_histogram_unravel_unique_counts() -> None:
    seq = np.array([[1.0, 3.0, 5.0], [0.0, 0.0, 2.0]])
    vals = np.array([[0.0, 3.0, 6.0, 3.5], [0.0, 1.0, 2.0, -1.0]])
    data = np.array([3, 1, 3, 2, 1, 3, 7])
    with af.Session() as s:
        left, right, hist, unr, unr0, (y, idx, cnt) = s.run([
            af.searchsorted(seq, vals),
            af.searchsorted(seq, vals, side="right", out_type=af.int64),
            af.histogram_fixed_width([-1.0, 0.0, 1.5, 2.0, 4.99, 5.0, 15.0], [0.0, 5.0], nbins=5),
            af.unravel_index([1, 5, 7, 0], [2, 4]), af.unravel_index(5, [2, 4]),
            af.unique_with_counts(data)])
    for r in range(2):
        np.testing.assert_array_equal(left[r], [sum(v > q for q in seq[r]) for v in vals[r]])
        np.testing.assert_array_equal(right[r], [sum(v >= q for q in seq[r]) for v in vals[r]])
    assert right.dtype == np.int64 and left.dtype == np.int32
    assert hist.tolist() == [2, 1, 1, 0, 3]  # below -> first bin, at/above 5 -> last
    assert unr.tolist() == [[0, 1, 1, 0], [1, 1, 3, 0]] and unr0.tolist() == [1, 1]
    assert y.tolist() == [3, 1, 2, 7] and cnt.tolist() == [3, 2, 1, 1]
    assert [y[i] for i in idx] == data.tolist()
    with af.Session() as s, pytest.raises(InvalidArgumentError, match="out of bounds"):
        s.run(af.unravel_index([8], [2, 4]))
    with pytest.raises(InvalidArgumentError, match="scalar or a vector"):
        af.unravel_index([[1]], [2, 4])


def test_tensor_scatter_nd_ops_and_gradients() -> None:
    rng = np.random.default_rng(5)
    t0, u0 = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    t, u = af.placeholder(af.float64, [4, 3]), af.placeholder(af.float64, [2, 3])
    idx = [[0], [2]]
    upd = af.tensor_scatter_nd_update(t, idx, u)
    add = af.tensor_scatter_nd_add(t, [[1, 1], [1, 1], [3, 0]], [1.0, 2.0, 5.0])
    sub = af.tensor_scatter_sub(t, idx, u)
    w = rng.standard_normal((4, 3))
    gt, gu = af.gradients(af.reduce_sum(upd * w), [t, u])
    with af.Session() as s:
        a, b, c, g1, g2 = s.run([upd, add, sub, gt, gu], {t: t0, u: u0})
    ref = t0.copy()
    ref[0], ref[2] = u0[0], u0[1]
    np.testing.assert_allclose(a, ref)
    ref = t0.copy()
    ref[1, 1] += 3.0
    ref[3, 0] += 5.0
    np.testing.assert_allclose(b, ref)
    ref = t0.copy()
    ref[0] -= u0[0]
    ref[2] -= u0[1]
    np.testing.assert_allclose(c, ref)
    np.testing.assert_allclose(g1, w * np.array([0, 1, 0, 1])[:, None])  # overwritten rows: 0
    np.testing.assert_allclose(g2, w[[0, 2]])
    bad = af.tensor_scatter_nd_update(af.zeros([3]), [[3]], [1.0])
    with af.Session() as s, pytest.raises(InvalidArgumentError, match="out of bounds"):
        s.run(bad)


def test_batch_scatter_update_writes_the_variable() -> None:
    v0 = np.arange(12, dtype=np.float32).reshape(4, 3)
    v = af.Variable(v0)
    op = af.batch_scatter_update(v, af.constant([[1], [0], [2], [0]]),
                                 af.constant(np.float32([[9], [8], [7], [6]])))
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        got = s.run(op)
        after = s.run(v)
    ref = v0.copy()
    for i, (j, x) in enumerate([(1, 9), (0, 8), (2, 7), (0, 6)]):
        ref[i, j] = x
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(after, ref)


def lev(a: tuple, b: tuple) -> int:
    @functools.lru_cache(None)
    def d(i: int, j: int) -> int:  # recursive definition, not the kernel's table
        if not i or not j:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    return d(len(a), len(b))


@pytest.mark.parametrize("strings", [False, True])
def test_edit_distance_against_levenshtein(strings: bool) -> None:
    hyp = {(0, 0): "abcd", (0, 1): "", (1, 0): "xy", (1, 1): "kitten"}
    tru = {(0, 0): "abd", (0, 1): "q", (1, 0): "", (1, 1): "sitting"}

    def sp(seqs: dict) -> af.SparseTensor:
        idx, vals = [], []
        for key, s in seqs.items():
            for k, ch in enumerate(s):
                idx.append([*key, k])
                vals.append(ch.encode() if strings else ord(ch))
        idx.reverse()  # unsorted input
        vals.reverse()
        return af.SparseTensor(np.int64(idx), af.constant(vals, af.string if strings
                                                          else af.int64), [2, 2, 7])
    with af.Session() as s:
        norm, raw = s.run([af.edit_distance(sp(hyp), sp(tru)),
                           af.edit_distance(sp(hyp), sp(tru), normalize=False)])
    for key in hyp:
        d = lev(tuple(hyp[key]), tuple(tru[key]))
        assert raw[key] == d
        assert norm[key] == (d / len(tru[key]) if tru[key] else np.inf)


def test_identity_n_passes_values_and_gradients() -> None:
    a, b = af.constant([1.0, 2.0]), af.constant([[3.0]])
    x, y = af.identity_n([a, b])
    ga, gb = af.gradients(af.reduce_sum(x * 2.0) + af.reduce_sum(y), [a, b])
    with af.Session() as s:
        got = s.run([x, y, ga, gb])
    assert [g.tolist() for g in got] == [[1.0, 2.0], [[3.0]], [2.0, 2.0], [[1.0]]]
