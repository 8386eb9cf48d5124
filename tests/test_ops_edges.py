"""Edges the first op tests missed: AddN over 0-d inputs, short errors over long input lists,
and fetching an IndexedSlices (TF returns an IndexedSlicesValue)."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from actorflow.indexed_slices import IndexedSlicesValue


def test_gradient_of_a_scalar_used_three_times() -> None:
    w = af.Variable(2.0)
    x = af.constant(3.0)
    y = x * w + w * w + af.exp(w)
    (g,) = af.gradients(y, [w])
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        got = s.run(g)
    assert np.shape(got) == ()
    np.testing.assert_allclose(got, 3.0 + 4.0 + np.exp(2.0), rtol=1e-6)


@pytest.mark.parametrize("n", [3, 5])
def test_add_n_of_0d_inputs(n: int) -> None:
    xs = [af.placeholder(af.float64, ()) for _ in range(n)]
    with af.Session() as s:
        got = s.run(af.add_n(xs), {x: float(i) for i, x in enumerate(xs)})
    assert np.shape(got) == () and got == sum(range(n))


def test_long_input_lists_are_summarised_in_errors() -> None:
    xs = [af.placeholder(af.float32, None) for _ in range(10_000)]
    total = af.add_n(xs)
    feed = {x: np.zeros(2, np.float32) for x in xs}
    feed[xs[7]] = np.zeros(3, np.float32)
    with af.Session() as s, pytest.raises(af.errors.InvalidArgumentError) as e:
        s.run(total, feed)
    msg = str(e.value)
    assert len(msg) < 400, msg
    assert "10000 inputs: 9999 x float32[2], 1 x float32[3]" in msg


def test_fetch_indexed_slices_gives_a_value() -> None:
    p = af.Variable(np.arange(12.0).reshape(4, 3))
    loss = af.reduce_sum(af.gather(p, [0, 2, 2]) * 2.0)
    (g,) = af.gradients(loss, [p])
    assert isinstance(g, af.IndexedSlices)
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        v, (v2, dense) = s.run([g, [g, af.convert_to_tensor(g)]])
    assert isinstance(v, IndexedSlicesValue) and isinstance(v2, IndexedSlicesValue)
    np.testing.assert_array_equal(v.indices, [0, 2, 2])
    np.testing.assert_array_equal(v.values, np.full((3, 3), 2.0))
    np.testing.assert_array_equal(v.dense_shape, [4, 3])
    np.testing.assert_array_equal(dense, [[2, 2, 2], [0, 0, 0], [4, 4, 4], [0, 0, 0]])


def test_fetch_sparse_tensor_gives_a_value() -> None:
    sp = af.SparseTensor([[0, 1], [1, 0]], [5.0, 6.0], [2, 3])
    with af.Session() as s:
        v = s.run(sp)
    assert isinstance(v, af.SparseTensorValue)
    np.testing.assert_array_equal(v.indices, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(v.values, [5.0, 6.0])
    np.testing.assert_array_equal(v.dense_shape, [2, 3])
