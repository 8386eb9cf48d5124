"""TF1 sparse-tensor ops (actorflow.ops.sparse_ops, sparse_segment_*, embedding_lookup_sparse,
sparse_tensor_dense_matmul) and gather/gather_nd with batch_dims, each against a NumPy
reference written here on its dense form: generated sparse tensors (empty, 1-D to 3-D,
shuffled so the indices are unsorted), gradients against finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actorflow as af
from actorflow.indexed_slices import IndexedSlices
from devices.errors import InvalidArgumentError
from tests.opcheck import numeric_grad

BUDGET = settings(max_examples=8, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _fresh_default_graph() -> None:
    af.reset_default_graph()


def dense_of(idx: Any, vals: Any, shape: Any) -> np.ndarray:
    out = np.zeros(tuple(int(d) for d in shape), np.asarray(vals).dtype)
    for i, v in zip(np.asarray(idx).reshape(len(vals), len(out.shape)), vals, strict=True):
        out[tuple(i)] += v
    return out


def run(fetches: Any, feed: Any = None) -> Any:
    with af.Session() as s:
        return s.run(fetches, feed)


@st.composite
def sparse_cases(draw: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Distinct indices in a random order (so unsorted), 0 or more entries, rank 1-3."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    cells = list(np.ndindex(shape))
    n = draw(st.integers(0, min(len(cells), 6)))
    pick = draw(st.permutations(range(len(cells))))[:n]
    idx = np.array([cells[p] for p in pick], np.int64).reshape(n, len(shape))
    vals = np.array(draw(st.lists(st.integers(-5, 5).filter(bool), min_size=n, max_size=n)),
                    np.float32)
    return idx, vals, shape


def _sp(idx: np.ndarray, vals: np.ndarray, shape: Any) -> af.SparseTensor:
    return af.SparseTensor(af.constant(idx.reshape(len(vals), len(shape)), af.int64),
                           af.constant(vals), af.constant(np.int64(shape)))


@BUDGET
@given(case=sparse_cases())
def test_reorder_transpose_reshape_slice_expand_keep_the_dense_value(case: tuple) -> None:
    idx, vals, shape = case
    d = dense_of(idx, vals, shape)
    sp = _sp(idx, vals, shape)
    r = len(shape)
    start = [s // 2 for s in shape]
    size = [2] * r
    outs = run([af.sparse_reorder(sp), af.sparse_transpose(sp),
                af.sparse_reshape(sp, [-1]), af.sparse_reshape(sp, [1, -1]),
                af.sparse_slice(sp, start, size), af.sparse.expand_dims(sp, -1)])
    reo, tr, flat, row, sl, ex = outs
    assert reo.indices.tolist() == sorted(idx.tolist())
    np.testing.assert_array_equal(dense_of(*reo), d)
    order = np.lexsort(tr.indices.T[::-1]) if len(tr.values) else []
    assert list(order) == list(range(len(tr.values)))            # row-major output
    np.testing.assert_array_equal(dense_of(*tr), d.transpose())
    np.testing.assert_array_equal(dense_of(*flat), d.reshape(-1))
    np.testing.assert_array_equal(dense_of(*row), d.reshape(1, -1))
    box = tuple(slice(a, a + b) for a, b in zip(start, size, strict=True))
    np.testing.assert_array_equal(dense_of(*sl), d[box])
    np.testing.assert_array_equal(dense_of(*ex), d[..., None])


@BUDGET
@given(a=sparse_cases(), seed=st.integers(0, 1000))
def test_add_maximum_minimum_against_dense(a: tuple, seed: int) -> None:
    idx, vals, shape = a
    rng = np.random.default_rng(seed)
    cells = list(np.ndindex(shape))
    pick = rng.permutation(len(cells))[:rng.integers(0, len(cells) + 1)]
    idx2 = np.array([cells[p] for p in pick], np.int64).reshape(len(pick), len(shape))
    vals2 = (rng.integers(1, 5, len(pick)) * rng.choice([-1, 1], len(pick))).astype(np.float32)
    spa, spb = _sp(idx, vals, shape), _sp(idx2, vals2, shape)
    da, db = dense_of(idx, vals, shape), dense_of(idx2, vals2, shape)
    dense = rng.standard_normal(shape).astype(np.float32)
    s, mx, mn, sd = run([af.sparse_add(spa, spb), af.sparse_maximum(spa, spb),
                         af.sparse_minimum(spa, spb), af.sparse_add(af.constant(dense), spa)])
    union = {tuple(i) for i in idx.tolist()} | {tuple(i) for i in idx2.tolist()}
    assert sorted(map(tuple, s.indices.tolist())) == sorted(union) == \
        [tuple(i) for i in s.indices.tolist()]
    np.testing.assert_array_equal(dense_of(*s), da + db)
    np.testing.assert_array_equal(dense_of(*mx), np.maximum(da, db))
    np.testing.assert_array_equal(dense_of(*mn), np.minimum(da, db))
    np.testing.assert_allclose(sd, dense + da)


def test_add_threshold_drops_small_sums_only_and_shapes_must_match() -> None:
    a = af.SparseTensor([[0, 1], [1, 0], [2, 3]], [1.0, -2.0, 3.0], [3, 4])
    b = af.SparseTensor([[0, 1], [2, 2]], [-0.9, 0.1], [3, 4])
    out = run(af.sparse_add(a, b, thresh=0.2))
    # 1.0 - 0.9 = 0.1 is a sum below the threshold: dropped; a lone 0.1 is kept (TF's rule)
    assert out.indices.tolist() == [[1, 0], [2, 2], [2, 3]]
    np.testing.assert_allclose(out.values, [-2.0, 0.1, 3.0])
    with pytest.raises(InvalidArgumentError, match="shapes disagree"):
        af.sparse_add(a, af.SparseTensor([[0, 0]], [1.0], [2, 2]))


def test_concat_axis_and_expand_nonconcat_dim() -> None:
    a = af.SparseTensor([[1, 0], [0, 1]], [1.0, 2.0], [2, 2])
    b = af.SparseTensor([[0, 0]], [3.0], [2, 3])
    c = af.SparseTensor([[3, 0]], [3.0], [4, 3])
    c1, c0, ce = run([af.sparse_concat(1, [a, b]), af.sparse_concat(0, [a, a]),
                      af.sparse_concat(1, [a, c], expand_nonconcat_dim=True)])
    assert c1.indices.tolist() == [[0, 1], [0, 2], [1, 0]]
    np.testing.assert_array_equal(c1.dense_shape, [2, 5])
    np.testing.assert_array_equal(dense_of(*c0), np.array([[0, 2], [1, 0], [0, 2], [1, 0]]))
    np.testing.assert_array_equal(ce.dense_shape, [4, 5])
    np.testing.assert_array_equal(ce.indices, [[0, 1], [1, 0], [3, 2]])
    with pytest.raises(InvalidArgumentError, match="expand_nonconcat_dim"):
        af.sparse_concat(1, [a, c])


def test_fill_empty_rows_retain_split_to_indicator() -> None:
    sp = af.SparseTensor([[2, 3], [0, 1], [2, 0]], [1.0, 2.0, 3.0], [4, 4])
    empty = af.SparseTensor(af.zeros([0, 2], af.int64), af.zeros([0]), [2, 3])
    (filled, ind), (f2, ind2), kept, parts, hot = run([
        af.sparse_fill_empty_rows(sp, -1.0), af.sparse_fill_empty_rows(empty, 7.0),
        af.sparse_retain(sp, [True, False, True]),
        af.sparse_split(sp_input=sp, num_split=3, axis=1),
        af.sparse_to_indicator(af.SparseTensor([[0, 0], [0, 1], [1, 0]],
                                               af.constant([1, 3, 2], af.int64), [2, 2]), 4)])
    assert filled.indices.tolist() == [[0, 1], [1, 0], [2, 3], [2, 0], [3, 0]]
    np.testing.assert_array_equal(filled.values, [2.0, -1.0, 1.0, 3.0, -1.0])
    assert ind.tolist() == [False, True, False, True]
    assert f2.indices.tolist() == [[0, 0], [1, 0]] and f2.values.tolist() == [7.0, 7.0]
    assert ind2.tolist() == [True, True]
    assert kept.indices.tolist() == [[2, 3], [2, 0]] and kept.values.tolist() == [1.0, 3.0]
    d = dense_of([[2, 3], [0, 1], [2, 0]], np.float32([1, 2, 3]), [4, 4])
    widths = [2, 1, 1]  # 4 columns in 3: the first gets the extra one
    col = 0
    for p, w in zip(parts, widths, strict=True):
        np.testing.assert_array_equal(p.dense_shape, [4, w])
        np.testing.assert_array_equal(dense_of(*p), d[:, col:col + w])
        col += w
    assert hot.tolist() == [[False, True, False, True], [False, False, True, False]]


@BUDGET
@given(case=sparse_cases())
def test_reductions_over_present_values(case: tuple) -> None:
    idx, vals, shape = case
    sp = _sp(idx, vals, shape)
    ax = len(shape) - 1
    mx, mxs, sms = run([af.sparse_reduce_max(sp, axis=ax),
                        af.sparse_reduce_max_sparse(sp, axis=ax),
                        af.sparse_reduce_sum_sparse(sp, axis=ax)])
    ref_max = np.zeros(shape[:-1], np.float32)
    seen: dict = {}
    for i, v in zip(idx.tolist(), vals, strict=True):  # max over present values only
        key = tuple(i[:-1])
        seen[key] = max(seen.get(key, -np.inf), v)
    for key, v in seen.items():
        ref_max[key] = v
    np.testing.assert_array_equal(mx, ref_max)
    assert sorted(seen) == [tuple(i) for i in mxs.indices.tolist()]
    np.testing.assert_array_equal(dense_of(*mxs), ref_max)
    np.testing.assert_array_equal(dense_of(*sms), dense_of(idx, vals, shape).sum(-1))


def test_softmax_over_each_rows_present_entries_and_its_gradient() -> None:
    idx = np.int64([[0, 1], [0, 0], [2, 3], [2, 1], [2, 0]])
    v = np.float64([1.0, 2.0, 3.0, -1.0, 0.5])
    w = np.float64([1.0, -2.0, 0.5, 3.0, 1.5])
    x = af.placeholder(af.float64, [5])
    out = af.sparse_softmax(af.SparseTensor(idx, x, [3, 4]))
    g = af.gradients(af.reduce_sum(out.values * w), x)[0]

    def ref(z: np.ndarray) -> np.ndarray:
        o = np.empty_like(z)
        for rows in ([0, 1], [2, 3, 4]):
            e = np.exp(z[rows] - z[rows].max())
            o[rows] = e / e.sum()
        return o
    with af.Session() as s:
        got, gg = s.run([out.values, g], {x: v})
    np.testing.assert_allclose(got, ref(v), rtol=1e-12)
    num = [(ref(v + e) @ w - ref(v - e) @ w) / 2e-6 for e in np.eye(5) * 1e-6]
    np.testing.assert_allclose(gg, num, rtol=1e-6, atol=1e-8)


def test_value_gradients_are_dense_through_add_concat_reorder_slice() -> None:
    idx = np.int64([[2, 0], [0, 1], [1, 3]])
    v0 = np.float64([1.0, -2.0, 3.0])
    w = np.random.default_rng(9).standard_normal((3, 4))
    x = af.placeholder(af.float64, [3])
    a = af.SparseTensor(idx, x, [3, 4])
    b = af.SparseTensor([[0, 1], [2, 2]], af.constant([0.5, 4.0], af.float64), [3, 4])
    added = af.sparse_tensor_to_dense(af.sparse_add(a, b))
    cat = af.sparse_concat(1, [af.sparse_reorder(a), a])
    sl, tr = af.sparse_slice(a, [1, 0], [2, 4]), af.sparse_transpose(a)
    g = af.gradients(af.reduce_sum(added * w) + af.reduce_sum(cat.values * 2.0)
                     + af.reduce_sum(sl.values * 3.0) + af.reduce_sum(tr.values), x)[0]
    with af.Session() as s:
        gg = s.run(g, {x: v0})
    assert isinstance(gg, np.ndarray)
    # d/dv: w at each entry's position (sparse_add), 2 twice (both concat copies),
    # 3 for the entries in rows 1-2 (slice), 1 (transpose)
    want = np.array([w[2, 0], w[0, 1], w[1, 3]]) + 4.0 + np.array([3.0, 0.0, 3.0]) + 1.0
    np.testing.assert_allclose(gg, want)


def test_eye_and_from_dense() -> None:
    e, fd = run([af.sparse.eye(2, 3), af.sparse.from_dense(af.constant([[0, 1], [2, 0]]))])
    np.testing.assert_array_equal(dense_of(*e), np.eye(2, 3))
    assert fd.indices.tolist() == [[0, 1], [1, 0]] and fd.values.tolist() == [1, 2]


def test_bad_sparse_input_is_a_clear_error() -> None:
    bad = af.SparseTensor([[0, 5]], [1.0], [2, 2])
    with pytest.raises(InvalidArgumentError, match=r"index \[0, 5\] is out of bounds"):
        run(af.sparse_fill_empty_rows(bad, 0.0)[1])
    with pytest.raises(InvalidArgumentError, match="cannot reshape"):
        run(af.sparse_reshape(af.SparseTensor([[0, 1]], [1.0], [2, 3]), [4, -1]).indices)
    unsorted = af.sparse_segment_sum(af.ones([3, 2]), [0, 1, 2], [1, 0, 1])
    with af.Session() as s, pytest.raises(InvalidArgumentError, match="not sorted: 1 is"):
        s.run(unsorted)
    with pytest.raises(InvalidArgumentError, match="integer ids"):
        af.sparse_to_indicator(af.SparseTensor([[0, 0]], [1.0], [1, 1]), 3)



@pytest.mark.parametrize("kind", ["sum", "mean", "sqrt_n"])
def test_sparse_segment_values_and_dense_gradient(kind: str) -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((5, 3))
    indices, ids = np.array([0, 2, 2, 4, 1]), np.array([0, 0, 1, 3, 3])
    w = rng.standard_normal((4, 3))

    def ref(d: np.ndarray, n: int = 4) -> np.ndarray:
        out = np.zeros((n, 3))
        for s in range(n):
            rows = d[indices[ids == s]]
            if len(rows):
                div = {"sum": 1.0, "mean": len(rows), "sqrt_n": np.sqrt(len(rows))}[kind]
                out[s] = rows.sum(0) / div
        return out
    fn = getattr(af, f"sparse_segment_{kind}")
    x = af.placeholder(af.float64, [5, 3])
    y = fn(x, indices, ids)
    y6 = fn(x, indices, ids, num_segments=6)
    empty = fn(x, af.constant([], af.int32), af.constant([], af.int32))
    g = af.gradients(af.reduce_sum(y * w), x)[0]
    with af.Session() as s:
        got, got6, e, gg = s.run([y, y6, empty, g], {x: data})
    np.testing.assert_allclose(got, ref(data), rtol=1e-12)
    np.testing.assert_allclose(got6, ref(data, 6), rtol=1e-12)
    assert e.shape == (0, 3)
    assert isinstance(gg, np.ndarray)  # dense, as TF's SparseSegment*Grad
    np.testing.assert_allclose(gg, numeric_grad(lambda d: (ref(d) * w).sum(), data), rtol=1e-6)


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_embedding_lookup_sparse_gradient_is_over_unique_ids(combiner: str) -> None:
    rng = np.random.default_rng(4)
    table = rng.standard_normal((6, 2))
    rows, ids, wts = [0, 0, 0, 2], [4, 1, 4, 1], np.array([2.0, 0.5, 1.0, 3.0])
    p = af.placeholder(af.float64, [6, 2])
    sp_ids = af.SparseTensor([[r, k] for k, r in enumerate(rows)], af.constant(ids, af.int64),
                             [3, 4])
    sp_w = af.SparseTensor([[r, k] for k, r in enumerate(rows)], af.constant(wts), [3, 4])
    out = af.nn.embedding_lookup_sparse(p, sp_ids, sp_w, combiner=combiner)
    g = af.gradients(af.reduce_sum(out), p)[0]
    assert isinstance(g, IndexedSlices)

    def ref(t: np.ndarray) -> np.ndarray:
        o = np.zeros((3, 2))
        for r in (0, 2):
            m = np.array(rows) == r
            s = (t[np.array(ids)[m]] * wts[m, None]).sum(0)
            den = {"sum": 1.0, "mean": wts[m].sum(), "sqrtn": np.sqrt((wts[m] ** 2).sum())}
            o[r] = s / den[combiner]
        return o
    with af.Session() as s:
        got, gi, gv = s.run([out, g.indices, g.values], {p: table})
    np.testing.assert_allclose(got, ref(table), rtol=1e-12)
    assert gi.tolist() == [4, 1]  # each distinct id once, in order of first occurrence
    dense = np.zeros_like(table)
    np.add.at(dense, gi, gv)
    np.testing.assert_allclose(dense, numeric_grad(lambda t: ref(t).sum(), table), rtol=1e-6)


@pytest.mark.parametrize("adjoint_a", [False, True])
def test_sparse_dense_matmul_gradients_are_dense(adjoint_a: bool) -> None:
    rng = np.random.default_rng(5)
    idx = np.int64([[0, 1], [1, 0], [2, 3], [0, 3]])
    vals, b = rng.standard_normal(4), rng.standard_normal((3 if adjoint_a else 4, 2))
    v, bt = af.placeholder(af.float64, [4]), af.placeholder(af.float64, b.shape)
    y = af.sparse_tensor_dense_matmul(af.SparseTensor(idx, v, [3, 4]), bt, adjoint_a=adjoint_a)
    gv, gb = af.gradients(af.reduce_sum(y * y), [v, bt])

    def ref(vv: np.ndarray, bb: np.ndarray) -> np.ndarray:
        a = dense_of(idx, vv, [3, 4])
        return (a.T if adjoint_a else a) @ bb
    with af.Session() as s:
        got, g1, g2 = s.run([y, gv, gb], {v: vals, bt: b})
    assert isinstance(g1, np.ndarray) and isinstance(g2, np.ndarray)
    np.testing.assert_allclose(got, ref(vals, b), rtol=1e-12)
    np.testing.assert_allclose(g1, numeric_grad(lambda x: (ref(x, b) ** 2).sum(), vals), rtol=1e-6)
    np.testing.assert_allclose(g2, numeric_grad(lambda x: (ref(vals, x) ** 2).sum(), b), rtol=1e-6)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_gather_batch_dims_against_per_batch_take(axis: int) -> None:
    rng = np.random.default_rng(6)
    p = rng.standard_normal((2, 3, 4))
    n = p.shape[axis]
    idx = rng.integers(0, n, (2, 5))
    w = rng.standard_normal((2, 5, 4) if axis == 1 else (2, 3, 5))
    x = af.placeholder(af.float64, p.shape)
    y = af.gather(x, idx, axis=axis, batch_dims=1)
    g = af.gradients(af.reduce_sum(y * w), x)[0]

    def ref(pp: np.ndarray) -> np.ndarray:
        return np.stack([np.take(pp[b], idx[b], axis=(axis % 3) - 1) for b in range(2)])
    with af.Session() as s:
        got, gg = s.run([y, g], {x: p})
    assert y.shape.as_list() == list(ref(p).shape)
    np.testing.assert_allclose(got, ref(p))
    np.testing.assert_allclose(gg, numeric_grad(lambda q: (ref(q) * w).sum(), p), rtol=1e-6)


def test_gather_nd_batch_dims() -> None:
    rng = np.random.default_rng(7)
    p = rng.standard_normal((2, 4, 3))
    idx = np.array([[[0, 1], [3, 2]], [[1, 1], [2, 0]]])
    idx1 = np.array([[[0], [3]], [[1], [1]]])
    a, b = run([af.gather_nd(af.constant(p), idx, batch_dims=1),
                af.gather_nd(af.constant(p), idx1, batch_dims=-2)])
    np.testing.assert_array_equal(a, [[p[0, 0, 1], p[0, 3, 2]], [p[1, 1, 1], p[1, 2, 0]]])
    np.testing.assert_array_equal(b, [[p[0, 0], p[0, 3]], [p[1, 1], p[1, 1]]])
    with pytest.raises(InvalidArgumentError, match="batch_dims=3"):
        af.gather_nd(af.constant(p), idx, batch_dims=3)


