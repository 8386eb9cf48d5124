"""Array and indexing ops: forward against NumPy and gradients against finite differences, on
fresh random inputs (the seed is printed on failure); static shapes, unknown dimensions,
run-time shapes, sparse gather gradients, and the error texts."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_forward, check_gradient, run_op

SEED = int(np.random.SeedSequence().entropy % 2**32)
rng = np.random.default_rng(SEED)


@pytest.fixture(autouse=True)
def _print_seed():
    print(f"random inputs from np.random.default_rng({SEED})")  # shown when a test fails


def rand(*shape: int, dtype=np.float64) -> np.ndarray:
    return rng.uniform(-2.0, 2.0, shape).astype(dtype)


def run(fetches, feeds=None, graph=None):
    with af.Session(graph=graph or af.get_default_graph()) as s:
        return s.run(fetches, feeds or {})


@pytest.fixture(autouse=True)
def _fresh_graph():
    g = af.Graph()
    with g.as_default():
        yield g


# ---- concat -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_forward_and_gradient(axis):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for i, s in enumerate(shapes):
        s[axis] = i + 1  # sizes 1, 2, 3 along the axis
    xs = [rand(*s) for s in shapes]
    check_forward(lambda *t: af.concat(list(t), axis), lambda *a: np.concatenate(a, axis), xs)
    check_gradient(lambda *t: af.concat(list(t), axis), xs)


def test_concat_empty_part_mixed_values_and_one_input():
    a, b = rand(0, 3), rand(2, 3)
    check_forward(lambda x, y: af.concat([x, y], 0), lambda x, y: np.concatenate([x, y]), [a, b])
    x = af.placeholder(af.float64, (2, 3))
    y = af.concat([x, [[1.0, 2.0, 3.0]]], 0)  # a list converts to x's dtype
    assert y.shape == (3, 3) and y.dtype is af.float64
    np.testing.assert_array_equal(run(y, {x: b}), np.concatenate([b, [[1, 2, 3]]]))
    one = af.concat([x], 1)
    np.testing.assert_array_equal(run(one, {x: b}), b)


def test_concat_unknown_dims():
    x = af.placeholder(af.float64, (None, 3))
    y = af.placeholder(af.float64, (None, 2))
    z = af.placeholder(af.float64, (None, None))
    c = af.concat([x, y], 1)
    assert c.shape == (None, 5)
    c0 = af.concat([x, z], 0)
    assert c0.shape == (None, 3)
    u = af.placeholder(af.float64)  # unknown rank
    assert af.concat([u, u], 0).shape.rank is None
    assert af.concat([x, u], 1).shape == (None, None)
    # gradient when several sizes along the axis are unknown: split at run time
    a, b = rand(2, 3), rand(4, 3)
    w = rand(6, 3)
    cz = af.concat([x, z], 0)
    ga, gb = af.gradients(af.reduce_sum(cz * w), [x, z])
    got = run([cz, ga, gb], {x: a, z: b})
    np.testing.assert_array_equal(got[0], np.concatenate([a, b]))
    np.testing.assert_allclose(got[1], w[:2])
    np.testing.assert_allclose(got[2], w[2:])


def test_concat_errors():
    x = af.placeholder(af.float32, (2, 3))
    with pytest.raises(af.InvalidArgumentError, match=r"dimension 1 of .* is 4 but an earlier"):
        af.concat([x, af.zeros((2, 4))], 0)
    with pytest.raises(af.InvalidArgumentError, match="one rank"):
        af.concat([x, af.zeros((2, 3, 1))], 0)
    with pytest.raises(af.InvalidArgumentError, match=r"axis 2 is out of range .* \[-2, 1\]"):
        af.concat([x, x], 2)
    with pytest.raises(af.InvalidArgumentError, match="use af.stack"):
        af.concat([af.constant(1.0), af.constant(2.0)], 0)
    with pytest.raises(af.InvalidArgumentError, match="float64 where float32 is required"):
        af.concat([x, af.zeros((2, 3), af.float64)], 0)
    with pytest.raises(af.InvalidArgumentError, match="axis known when the graph is built"):
        af.concat([x, x], af.placeholder(af.int32, ()))


# ---- split ------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_split_equal(axis):
    x = rand(4, 6, 2) if axis != -1 else rand(3, 2, 4)
    check_forward(lambda t: af.split(t, 2, axis), lambda a: np.split(a, 2, axis), [x])
    check_gradient(lambda t: af.concat(af.split(t, 2, axis)[::-1], axis), [x])


def test_split_sizes_with_rest_and_unused_output():
    x = rand(3, 7)
    check_forward(lambda t: af.split(t, [2, -1, 1], axis=1),
                  lambda a: [a[:, :2], a[:, 2:6], a[:, 6:]], [x])
    check_forward(lambda t: af.split(t, [0, 3], axis=0), lambda a: [a[:0], a], [x])
    # only the middle part reaches the loss: the others get zero gradient
    check_gradient(lambda t: af.split(t, [2, -1, 1], axis=1)[1] * 3.0, [x])


def test_split_dynamic():
    x = af.placeholder(af.float64, (None, 4))
    parts = af.split(x, 2, axis=0)
    assert parts[0].shape == (None, 4)
    sizes = af.placeholder(af.int32, (3,))
    dyn = af.split(x, sizes, axis=1)
    assert len(dyn) == 3 and dyn[0].shape == (None, None)
    v = rand(6, 4)
    got = run(parts + dyn, {x: v, sizes: [1, -1, 2]})
    np.testing.assert_array_equal(got[0], v[:3])
    np.testing.assert_array_equal(got[1], v[3:])
    for a, b in zip(got[2:], [v[:, :1], v[:, 1:2], v[:, 2:]], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(af.InvalidArgumentError, match="equal parts"):
        run(parts, {x: rand(5, 4)})
    with pytest.raises(af.InvalidArgumentError, match="add up to 5"):
        run(dyn, {x: v, sizes: [1, 2, 2]})


def test_split_errors():
    x = af.placeholder(af.float32, (4, 6))
    with pytest.raises(af.InvalidArgumentError, match="does not divide into 4 equal parts"):
        af.split(x, 4, axis=1)
    with pytest.raises(af.InvalidArgumentError, match=r"add up to 5, not to the dimension's 6"):
        af.split(x, [2, 3], axis=1)
    with pytest.raises(af.InvalidArgumentError, match="at most one -1"):
        af.split(x, [-1, -1], axis=1)
    with pytest.raises(af.InvalidArgumentError, match="pass num="):
        af.split(x, af.placeholder(af.int32, (None,)), axis=1)


# ---- stack / unstack --------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_unstack(axis):
    xs = [rand(2, 3) for _ in range(4)]
    check_forward(lambda *t: af.stack(list(t), axis), lambda *a: np.stack(a, axis), xs)
    check_gradient(lambda *t: af.stack(list(t), axis), xs)
    y = np.stack(xs, axis)
    check_forward(lambda t: af.unstack(t, axis=axis),
                  lambda a: [np.take(a, i, axis) for i in range(4)], [y])
    check_gradient(lambda t: af.add_n([u * float(i + 1) for i, u in
                                       enumerate(af.unstack(t, axis=axis))]), [y])


def test_stack_scalars_nested_lists_and_iteration():
    a = af.placeholder(af.float64, ())
    b = af.placeholder(af.float64, (2,))
    s = af.stack([a, 2.0, a])
    assert s.shape == (3,) and s.dtype is af.float64
    nested = af.convert_to_tensor([[a, 1.0], [b[0], b[1]]])
    assert nested.shape == (2, 2)
    m = af.constant([[1.0, 2.0], [3.0, 4.0]])
    rows = list(m)
    assert len(rows) == 2 and rows[0].shape == (2,)
    got = run([s, nested] + rows, {a: 5.0, b: [7.0, 8.0]})
    np.testing.assert_array_equal(got[0], [5.0, 2.0, 5.0])
    np.testing.assert_array_equal(got[1], [[5.0, 1.0], [7.0, 8.0]])
    np.testing.assert_array_equal(got[2], [1.0, 2.0])
    check_gradient(lambda x: af.convert_to_tensor([[x[0], 1.0], [x[1] * x[0], x[2]]]),
                   [rand(3)])


def test_stack_unstack_errors_and_unknown_shapes():
    x = af.placeholder(af.float32, (None, 3))
    assert af.stack([x, x], 1).shape == (None, 2, 3)
    with pytest.raises(af.InvalidArgumentError, match="one shape"):
        af.stack([x, af.zeros((2, 4))])
    with pytest.raises(af.InvalidArgumentError, match="pass num="):
        af.unstack(x)
    parts = af.unstack(x, num=2)
    assert parts[0].shape == (3,)
    with pytest.raises(af.InvalidArgumentError, match=r"size 3"):
        run(parts, {x: np.zeros((3, 3), np.float32)})
    with pytest.raises(TypeError, match="first dimension is not known"):
        iter(x)


# ---- gather -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_forward(axis):
    p = rand(5, 4, 3)
    n = p.shape[axis]
    for idx in (rng.integers(0, n, (6,)), rng.integers(0, n, (2, 3)), np.int64(n - 1),
                np.zeros((0,), np.int64)):
        idx = np.asarray(idx, np.int32)
        check_forward(lambda t, i: af.gather(t, i, axis=axis),
                      lambda a, i: np.take(a, i, axis=axis), [p, idx])


def test_gather_axis0_gradient_is_sparse():
    p = rand(6, 3)
    for idx in (np.array([4, 0, 4, 2], np.int32), np.array([[1, 5], [1, 1]], np.int64),
                np.array(3, np.int32)):
        g = af.Graph()
        with g.as_default():
            x = af.placeholder(af.float64, p.shape)
            i = af.placeholder(af.as_dtype(idx.dtype), idx.shape)
            y = af.gather(x, i)
            w = rng.standard_normal(y.shape.as_list())
            (grad,) = af.gradients(af.reduce_sum(y * w), [x])
            assert isinstance(grad, af.IndexedSlices)
            values, indices, dense_shape = run([grad.values, grad.indices, grad.dense_shape],
                                               {x: p, i: idx}, graph=g)
        np.testing.assert_array_equal(indices, idx.reshape(-1))
        np.testing.assert_array_equal(dense_shape, p.shape)
        dense = np.zeros_like(p)
        np.add.at(dense, indices, values)
        want = np.zeros_like(p)
        np.add.at(want, idx.reshape(-1), w.reshape(-1, 3))
        np.testing.assert_allclose(dense, want)


def test_gather_axis0_gradient_matches_finite_differences():
    p = rand(5, 2)
    idx = np.array([3, 1, 3], np.int32)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float64, p.shape)
        loss = af.reduce_sum(af.gather(x, idx) ** 2)
        (grad,) = af.gradients(loss, [x])
        with af.Session(graph=g) as s:
            values, indices = s.run([grad.values, grad.indices], {x: p})
            dense = np.zeros_like(p)
            np.add.at(dense, indices, values)
            num = np.zeros_like(p)
            for j in range(p.size):
                e = np.zeros(p.size)
                e[j] = 1e-6
                e = e.reshape(p.shape)
                num.reshape(-1)[j] = (s.run(loss, {x: p + e}) - s.run(loss, {x: p - e})) / 2e-6
    np.testing.assert_allclose(dense, num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [1, 2])
def test_gather_other_axis_gradient_is_dense(axis):
    p = rand(2, 4, 3)
    idx = np.array([0, 2, 0, 1][: p.shape[axis] + 1], np.int32)
    check_gradient(lambda t: af.gather(t, idx, axis=axis), [p])


def test_gather_errors():
    p = af.placeholder(af.float32, (4, 2))
    with pytest.raises(af.InvalidArgumentError, match="must be int32 or int64"):
        af.gather(p, af.constant([0.0]))
    with pytest.raises(af.InvalidArgumentError, match="out of range"):
        af.gather(p, [0], axis=2)
    y = af.gather(p, af.placeholder(af.int32, (None,), name="ids"))
    assert y.shape == (None, 2)
    ids = y.op.inputs[1]
    with pytest.raises(af.InvalidArgumentError, match=r"index 4 is out of range \[0, 4\)"):
        run(y, {p: np.zeros((4, 2), np.float32), ids: [1, 4]})
    with pytest.raises(af.InvalidArgumentError, match=r"index -1 is out of range"):
        run(y, {p: np.zeros((4, 2), np.float32), ids: [-1]})


# ---- slice and strided slicing ------------------------------------------------------------
def test_slice_forward_gradient_and_shapes():
    x = rand(4, 5, 3)
    check_forward(lambda t: af.slice(t, [1, 0, 2], [2, -1, 1]), lambda a: a[1:3, :, 2:3], [x])
    check_forward(lambda t: af.slice(t, [4, 0, 0], [0, 5, 3]), lambda a: a[4:4], [x])
    check_gradient(lambda t: af.slice(t, [1, 2, 0], [3, -1, 2]), [x])
    u = af.placeholder(af.float64, (None, 5, 3))
    y = af.slice(u, [1, 1, 0], [-1, 2, -1])
    assert y.shape == (None, 2, 3)
    np.testing.assert_array_equal(run(y, {u: x}), x[1:, 1:3])


def test_slice_dynamic_begin_and_size():
    x = rand(4, 5)
    b = af.placeholder(af.int32, (2,))
    s = af.placeholder(af.int32, (2,))
    t = af.placeholder(af.float64, (4, 5))
    y = af.slice(t, b, s)
    assert y.shape == (None, None)
    w = rand(2, 2)
    (g,) = af.gradients(af.reduce_sum(y * w), [t])
    got, grad = run([y, g], {t: x, b: [1, 3], s: [2, -1]})
    np.testing.assert_array_equal(got, x[1:3, 3:])
    want = np.zeros_like(x)
    want[1:3, 3:] = w
    np.testing.assert_array_equal(grad, want)
    with pytest.raises(af.InvalidArgumentError, match="do not fit dimension 1"):
        run(y, {t: x, b: [0, 4], s: [1, 2]})


def test_slice_errors():
    x = af.placeholder(af.float32, (4, 5))
    with pytest.raises(af.InvalidArgumentError, match="dimension 1 cannot take begin 3, size 3"):
        af.slice(x, [0, 3], [1, 3])
    with pytest.raises(af.InvalidArgumentError, match="has 1 entries but 'Placeholder:0' has rank"):
        af.slice(x, [0], [1])
    u = af.placeholder(af.float32, (None, 5))
    y = af.slice(u, [2, 0], [3, 5])
    with pytest.raises(af.InvalidArgumentError, match="does not fit"):
        run(y, {u: np.zeros((4, 5), np.float32)})


KEYS = [
    (1,), (-1,), (slice(None),), (slice(1, None),), (slice(None, None, -1),),
    (slice(None, None, 2), 0), (slice(3, 0, -2), slice(None), -2), (Ellipsis, 1),
    (None, 1, Ellipsis, None), (Ellipsis, None), (2, 3, 1), (slice(2, 1),),
    (slice(-100, 100),), (1, slice(None, None, -1), None), (Ellipsis,), (slice(1, 3), Ellipsis, 0),
    (0, None, 2),
]


@pytest.mark.parametrize("key", KEYS, ids=[str(k) for k in KEYS])
def test_getitem_matches_numpy(key):
    x = rand(4, 5, 3)
    check_forward(lambda t: t[key], lambda a: np.asarray(a[key]), [x])
    t = af.placeholder(af.float64, (4, 5, 3))
    assert t[key].shape == np.asarray(x[key]).shape
    u = af.placeholder(af.float64, (None, None, 3))
    np.testing.assert_array_equal(run(u[key], {u: x}), x[key])


@pytest.mark.parametrize("key", [(1, slice(None, None, -1)), (slice(3, 0, -2), None, -2),
                                 (Ellipsis, 1), (2, 3, 1), (slice(2, 1),), (None, 0, 1)])
def test_getitem_gradient(key):
    check_gradient(lambda t: t[key], [rand(4, 5, 3)])


def test_getitem_on_scalar_and_vector_results_are_arrays():
    x = af.placeholder(af.float64, (2, 2))
    y = x[1, 0]
    assert y.shape == ()
    got = run([y, x[...], x[None][0, 1]], {x: [[1.0, 2.0], [3.0, 4.0]]})
    assert isinstance(got[0], np.ndarray) and got[0].shape == () and got[0] == 3.0
    np.testing.assert_array_equal(got[1], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(got[2], [3, 4])
    s = af.placeholder(af.int32, ())
    assert af.constant(np.arange(5.0))[s].shape == ()


def test_getitem_with_tensors():
    x = rand(5, 4)
    t = af.placeholder(af.float64, (5, 4))
    i = af.placeholder(af.int32, ())
    j = af.placeholder(af.int64, ())
    y = t[i, j:]
    z = t[1:i:2, af.constant(-1)]
    assert y.shape == (None,) and z.shape == (None,)
    w = rand(4)[:2]
    (g,) = af.gradients(af.reduce_sum(y * w), [t])
    got = run([y, z, g], {t: x, i: 3, j: 2})
    np.testing.assert_array_equal(got[0], x[3, 2:])
    np.testing.assert_array_equal(got[1], x[1:3:2, -1])
    want = np.zeros_like(x)
    want[3, 2:] = w
    np.testing.assert_array_equal(got[2], want)
    with pytest.raises(af.InvalidArgumentError, match="index 7 is out of range"):
        run(y, {t: x, i: 7, j: 0})


def test_getitem_errors():
    x = af.placeholder(af.float32, (3, 4))
    with pytest.raises(af.InvalidArgumentError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(af.InvalidArgumentError, match=r"index 3 is out of range for dimension 0"):
        x[3]
    with pytest.raises(af.InvalidArgumentError, match="step cannot be zero"):
        x[::0]
    with pytest.raises(af.InvalidArgumentError, match="at most one Ellipsis"):
        x[..., 0, ...]
    with pytest.raises(TypeError, match="af.gather"):
        x[[0, 1]]
    with pytest.raises(TypeError, match="af.gather"):
        x[af.constant([0, 1])]
    with pytest.raises(TypeError, match="float32 cannot index"):
        x[af.constant(1.0)]
    u = af.placeholder(af.float32, (None, 4))
    with pytest.raises(af.InvalidArgumentError, match="index 5 is out of range"):
        run(u[5], {u: np.zeros((2, 4), np.float32)})


def test_strided_slice_masks_match_numpy():
    x = rand(4, 5, 3)
    check_forward(lambda t: af.strided_slice(t, [1, 0, 2], [3, 5, 0], [1, 2, -1]),
                  lambda a: a[1:3, 0:5:2, 2:0:-1], [x])
    check_forward(lambda t: af.strided_slice(t, [1, 9, 1], [0, 3, 0], [1, 1, 1],
                                             begin_mask=0b010, end_mask=0b001,
                                             shrink_axis_mask=0b100),
                  lambda a: a[1:, :3, 1], [x])
    check_forward(lambda t: af.strided_slice(t, [0, 0, 1], [0, 0, 2], None,
                                             ellipsis_mask=0b001, new_axis_mask=0b010),
                  lambda a: a[..., None, 1:2], [x])
    check_gradient(lambda t: af.strided_slice(t, [3, 1], [0, 4], [-2, 2]), [x])


# ---- transpose / expand_dims / squeeze ----------------------------------------------------
@pytest.mark.parametrize("perm", [None, [1, 0, 2], [2, 0, 1], [0, -1, 1]])
def test_transpose(perm):
    x = rand(2, 3, 4)
    np_perm = None if perm is None else [p % 3 for p in perm]
    check_forward(lambda t: af.transpose(t, perm), lambda a: np.transpose(a, np_perm), [x])
    check_gradient(lambda t: af.transpose(t, perm), [x])


def test_transpose_shapes_and_errors():
    u = af.placeholder(af.float32)
    assert af.transpose(u).shape.rank is None
    assert af.transpose(u, [1, 0]).shape == (None, None)
    np.testing.assert_array_equal(run(af.transpose(u), {u: np.ones((2, 3, 1))}).shape, (1, 3, 2))
    x = af.placeholder(af.float32, (None, 3))
    assert af.transpose(x).shape == (3, None)
    with pytest.raises(af.InvalidArgumentError, match="not a permutation"):
        af.transpose(x, [0, 0])
    with pytest.raises(af.InvalidArgumentError, match="has 3 entries but"):
        af.transpose(x, [0, 2, 1])


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_expand_dims(axis):
    x = rand(2, 3)
    check_forward(lambda t: af.expand_dims(t, axis), lambda a: np.expand_dims(a, axis), [x])
    check_gradient(lambda t: af.expand_dims(t, axis), [x])
    check_forward(lambda t: af.expand_dims(t, 0), lambda a: a[None], [np.array(2.0)])
    u = af.placeholder(af.float64)
    np.testing.assert_array_equal(run(af.expand_dims(u, axis), {u: x}), np.expand_dims(x, axis))


def test_squeeze():
    x = rand(1, 3, 1, 2)
    check_forward(lambda t: af.squeeze(t), lambda a: np.squeeze(a), [x])
    check_forward(lambda t: af.squeeze(t, [0, -2]), lambda a: np.squeeze(a, (0, 2)), [x])
    check_forward(lambda t: af.squeeze(t, 2), lambda a: np.squeeze(a, 2), [x])
    check_gradient(lambda t: af.squeeze(t, [2]), [x])
    check_gradient(lambda t: af.squeeze(t), [x])
    u = af.placeholder(af.float64, (None, 3, 1))
    assert af.squeeze(u).shape.rank is None
    y = af.squeeze(u, [0, 2])
    assert y.shape == (3,)
    np.testing.assert_array_equal(run(y, {u: x[:, :, :, 0].reshape(1, 3, 1)}),
                                  x[0, :, 0, 0])
    with pytest.raises(af.InvalidArgumentError, match="dimension 0 of a tensor of shape"):
        run(y, {u: np.zeros((2, 3, 1))})
    with pytest.raises(af.InvalidArgumentError, match="has size 3, not 1"):
        af.squeeze(u, 1)


# ---- tile / pad ---------------------------------------------------------------------------
def test_tile():
    x = rand(2, 3)
    for m in ([1, 1], [2, 3], [3, 1], [0, 2]):
        check_forward(lambda t, m=m: af.tile(t, m), lambda a, m=m: np.tile(a, m), [x])
    check_gradient(lambda t: af.tile(t, [2, 3]), [x])
    check_gradient(lambda t: af.tile(t, [3, 1, 2]), [rand(1, 2, 2)])
    t = af.placeholder(af.float64, (None, 3))
    m = af.placeholder(af.int32, (2,))
    y = af.tile(t, m)
    assert y.shape == (None, None) and af.tile(t, [2, 2]).shape == (None, 6)
    (g,) = af.gradients(af.reduce_sum(y), [t])
    got, grad = run([y, g], {t: x, m: [2, 2]})
    np.testing.assert_array_equal(got, np.tile(x, [2, 2]))
    np.testing.assert_array_equal(grad, np.full_like(x, 4.0))
    with pytest.raises(af.InvalidArgumentError, match="give one per dimension"):
        af.tile(t, [2])


def test_pad():
    x = rand(2, 3)
    p = [[1, 0], [2, 3]]
    check_forward(lambda t: af.pad(t, p), lambda a: np.pad(a, p), [x])
    check_forward(lambda t: af.pad(t, p, constant_values=-1.5),
                  lambda a: np.pad(a, p, constant_values=-1.5), [x])
    check_forward(lambda t: af.pad(t, [[0, 0], [0, 0]]), lambda a: a, [x])
    check_gradient(lambda t: af.pad(t, p), [x])
    check_gradient(lambda t: af.pad(t, [[0, 2], [1, 0], [0, 0]]), [rand(2, 2, 2)])
    u = af.placeholder(af.float64, (None, 3))
    assert af.pad(u, p).shape == (None, 8)
    pt = af.placeholder(af.int32, (2, 2))
    y = af.pad(u, pt, constant_values=7)
    assert y.shape == (None, None)
    (g,) = af.gradients(af.reduce_sum(y * y), [u])
    got, grad = run([y, g], {u: x, pt: p})
    np.testing.assert_array_equal(got, np.pad(x, p, constant_values=7))
    np.testing.assert_allclose(grad, 2 * x)


def test_pad_errors():
    x = af.placeholder(af.float32, (2, 3))
    with pytest.raises(af.InvalidArgumentError, match="one \\[before, after\\] pair"):
        af.pad(x, [[1, 1]])
    with pytest.raises(af.InvalidArgumentError, match="must not be negative"):
        af.pad(x, [[1, 1], [-1, 0]])
    with pytest.raises(af.InvalidArgumentError, match="not one of 'CONSTANT', 'REFLECT'"):
        af.pad(x, [[1, 1], [0, 0]], mode="EDGE")
    with pytest.raises(af.InvalidArgumentError, match="dimension 0 by \\[2, 0\\].*less than 2"):
        af.pad(x, [[2, 0], [0, 0]], mode="REFLECT")  # checked when the graph is built


# ---- size / rank / shape / one_hot ----------------------------------------------------------
def test_size_rank_shape():
    x = af.placeholder(af.float32, (2, 3))
    assert af.size(x).op.type == "Const" and af.rank(x).op.type == "Const"
    u = af.placeholder(af.float32)
    su, ru = af.size(u), af.rank(u)
    assert su.op.type == "Size" and ru.op.type == "Rank" and su.shape == ()
    got = run([af.size(x), af.rank(x), su, ru, af.size(u, out_type=af.int64)] + af.shape_n([u, x]),
              {u: np.zeros((4, 0, 2)), x: np.zeros((2, 3))})
    assert [int(v) for v in got[:5]] == [6, 2, 0, 3, 0]
    assert got[4].dtype == np.int64
    np.testing.assert_array_equal(got[5], [4, 0, 2])
    np.testing.assert_array_equal(got[6], [2, 3])


@pytest.mark.parametrize("axis", [None, 0, 1, 2])
def test_one_hot(axis):
    idx = rng.integers(-1, 5, (3, 4)).astype(np.int32)  # -1 and 4 fall outside depth 4

    def ref(i, on=1.0, off=0.0, dt=np.float32):
        hot = i[..., None] == np.arange(4)
        out = np.where(hot, on, off).astype(dt)
        return out if axis is None else np.moveaxis(out, -1, axis)

    check_forward(lambda i: af.one_hot(i, 4, axis=axis), ref, [idx])
    check_forward(lambda i: af.one_hot(i, 4, on_value=5.0, off_value=-1.0, axis=axis,
                                       dtype=af.float64),
                  lambda i: ref(i, 5.0, -1.0, np.float64), [idx])
    got = run_op(lambda i: af.one_hot(i, 4, on_value=np.int64(3), off_value=np.int64(1),
                                      axis=axis), [idx])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref(idx, 3, 1, np.int64))


def test_one_hot_shapes_and_errors():
    i = af.placeholder(af.int64, (None,))
    assert af.one_hot(i, 3).shape == (None, 3)
    assert af.one_hot(i, 3, axis=0).shape == (3, None)
    assert af.one_hot(i, 3).dtype is af.float32
    with pytest.raises(af.InvalidArgumentError, match="must be ints"):
        af.one_hot(af.constant([1.0]), 3)
    with pytest.raises(af.InvalidArgumentError, match=r"axis 3 is out of range .* rank 1"):
        af.one_hot(i, 3, axis=3)
    x = af.placeholder(af.float32, (2,))
    g = af.gradients(af.reduce_sum(af.one_hot(i, 3) * x[0]), [x])[0]
    assert g is not None  # one_hot itself passes no gradient, x still gets one


def test_shape_inference_keeps_unknown_dims():
    x = af.placeholder(af.float32, (None, 4, None))
    assert af.expand_dims(x, 1).shape == (None, 1, 4, None)
    assert af.transpose(x, [2, 0, 1]).shape == (None, None, 4)
    assert af.gather(x, af.constant([1, 2]), axis=1).shape == (None, 2, None)
    assert x[:, 1:3].shape == (None, 2, None)
    assert x[1:3].shape == (None, 4, None)
    assert af.split(x, 2, axis=1)[0].shape == (None, 2, None)
    assert af.pad(x, [[1, 1], [0, 0], [2, 2]]).shape == (None, 4, None)
    assert af.reshape(x, [af.shape(x)[0], -1]).shape == (None, None)
    assert af.fill([af.shape(x)[1], 2], 1.0).shape == (4, 2)
    y = af.placeholder(af.float32, (2, 4, 3))
    assert af.reshape(y, af.stack([af.shape(y)[0], -1])).shape == (2, 12)
    assert af.broadcast_to(af.constant(1.0), af.shape(x)).shape == (None, 4, None)


def test_shape_arguments_mixing_ints_and_tensors():
    x = af.placeholder(af.float64, (None, 3))
    z = af.zeros([af.shape(x)[0], 2])
    o = af.ones(af.shape(x), af.int32)
    r = af.reshape(x, [-1, af.shape(x)[0]])
    assert z.shape == (None, 2) and o.shape == (None, 3) and r.shape == (None, None)
    v = rand(2, 3)
    got = run([z, o, r], {x: v})
    np.testing.assert_array_equal(got[0], np.zeros((2, 2)))
    np.testing.assert_array_equal(got[1], np.ones((2, 3), np.int32))
    np.testing.assert_array_equal(got[2], v.reshape(3, 2))


def test_gather_gradient_densifies_and_aggregates():
    p = rand(5, 2)
    x = af.placeholder(af.float64, p.shape)
    y1 = af.gather(x, [1, 3, 1])
    y2 = af.gather(x, af.constant([[4], [1]]))
    (g,) = af.gradients(af.reduce_sum(y1 * y1) + af.reduce_sum(y2 * 3.0), [x])
    assert isinstance(g, af.IndexedSlices)  # both paths sparse: concatenated, still sparse
    got = run(af.convert_to_tensor(g), {x: p})
    want = np.zeros_like(p)
    np.add.at(want, [1, 3, 1], 2 * p[[1, 3, 1]])
    np.add.at(want, [4, 1], 3.0)
    np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("op", [
    lambda t: t[1:, ::-1],
    lambda t: af.tile(t, [2, 1]),
    lambda t: af.gather(t, [2, 0, 2], axis=1),
    lambda t: af.pad(t, [[1, 0], [0, 1]]),
    lambda t: af.slice(t, [1, 0], [1, 2]),
    lambda t: af.concat([t, t[:, :1]], 1),
    lambda t: af.transpose(af.stack([t, t * 2.0], axis=1), [2, 0, 1]),
], ids=["getitem", "tile", "gather1", "pad", "slice", "concat", "stack-transpose"])
def test_second_order_gradients(op):
    def first_derivative(t):
        y = op(t)
        return af.gradients(af.reduce_sum(y * y * y), [t])[0]
    check_gradient(first_derivative, [rand(2, 3)])
