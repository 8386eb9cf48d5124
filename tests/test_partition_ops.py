"""dynamic_partition, dynamic_stitch and range against NumPy; their gradients against finite
differences; and embedding_lookup over shards ("mod" and "div") as in the papers' Figure 3:
the same rows as one table, sparse gradients per shard, and training that touches only the
rows that were read."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_forward, check_gradient, run_op


def _rng() -> np.random.Generator:
    seed = np.random.SeedSequence().entropy
    print("seed", seed)
    return np.random.default_rng(seed)


def test_dynamic_partition_and_stitch_match_numpy() -> None:
    rng = _rng()
    x = rng.standard_normal((7, 3))
    p = rng.integers(0, 3, 7).astype(np.int32)
    check_forward(lambda d, q: af.dynamic_partition(d, q, 3),
                  lambda d, q: [d[q == k] for k in range(3)], [x, p])
    # partitions over the first two dimensions; an empty partition
    x2 = rng.standard_normal((2, 3, 4))
    p2 = np.array([[0, 2, 0], [2, 2, 0]], np.int32)
    check_forward(lambda d, q: af.dynamic_partition(d, q, 3),
                  lambda d, q: [d[q == k] for k in range(3)], [x2, p2])
    # stitch: later pieces win on a repeated index, unnamed rows are zero
    i0, i1 = np.array([0, 4], np.int32), np.array([[1, 4]], np.int32)
    d0, d1 = rng.standard_normal((2, 2)), rng.standard_normal((1, 2, 2))
    want = np.zeros((5, 2))
    want[[0, 4]] = d0
    want[[1, 4]] = d1[0]
    check_forward(lambda a, b, c, d: af.dynamic_stitch([a, b], [c, d]),
                  lambda a, b, c, d: want, [i0, i1, d0, d1])
    np.testing.assert_array_equal(run_op(lambda n: af.range(n), [np.int32(4)]), np.arange(4))
    np.testing.assert_array_equal(
        run_op(lambda a, b: af.range(a, b, 3), [np.int64(2), np.int64(11)]), np.arange(2, 11, 3))


def test_partition_then_stitch_gradients() -> None:
    rng = _rng()
    x = rng.standard_normal((5, 2))
    p = np.array([2, 0, 1, 0, 2], np.int32)

    def build(d: af.Tensor, q: af.Tensor) -> af.Tensor:
        parts = af.dynamic_partition(d, q, 3)
        where = af.dynamic_partition(af.range(5), q, 3)
        y = af.dynamic_stitch(where, [parts[0] * 2.0, af.sin(parts[1]), parts[2] ** 2])
        return af.reshape(y, [5, 2])

    check_forward(build, lambda d, q: np.where((q == 0)[:, None], d * 2,
                                               np.where((q == 1)[:, None], np.sin(d), d ** 2)),
                  [x, p], rtol=1e-10)
    check_gradient(build, [x, p], wrt=[0])

    def one_part_used(d: af.Tensor, q: af.Tensor) -> af.Tensor:  # the others get no gradient
        return af.reduce_sum(af.dynamic_partition(d, q, 3)[1] * 3.0, axis=0)

    check_gradient(one_part_used, [x, p], wrt=[0])


def test_partition_and_stitch_errors() -> None:
    with pytest.raises(af.InvalidArgumentError, match="not in \\[0, 2\\)"):
        run_op(lambda d, q: af.dynamic_partition(d, q, 2),
               [np.ones(3), np.array([0, 2, 1], np.int32)])
    with pytest.raises(af.InvalidArgumentError, match="prefix"):
        run_op(lambda d, q: af.dynamic_partition(d, q, 2),
               [np.ones(3), np.array([0, 1], np.int32)])
    with pytest.raises(af.InvalidArgumentError, match="num_partitions"):
        af.dynamic_partition([1.0], [0], 0)
    with pytest.raises(af.InvalidArgumentError, match="must be integers"):
        af.dynamic_partition([1.0], [0.5], 1)
    with pytest.raises(af.InvalidArgumentError, match="indices must be >= 0"):
        run_op(lambda i, d: af.dynamic_stitch([i], [d]),
               [np.array([-1, 0], np.int32), np.ones(2)])
    with pytest.raises(af.InvalidArgumentError, match="same non-zero length"):
        af.dynamic_stitch([[0]], [])
    with pytest.raises(af.InvalidArgumentError, match="delta must not be 0"):
        run_op(lambda a: af.range(0, a, 0), [np.int32(3)])


@pytest.mark.parametrize("strategy, sizes", [("mod", [4, 4, 3]), ("div", [4, 4, 3]),
                                             ("div", [3, 3, 3]), ("mod", [5, 5])])
def test_sharded_embedding_lookup_reads_and_trains_only_the_rows_it_read(
        strategy: str, sizes: list[int]) -> None:
    rng = _rng()
    n, total = len(sizes), sum(sizes)
    table = rng.standard_normal((total, 3)).astype(np.float32)
    if strategy == "mod":
        owner = [(i % n, i // n) for i in range(total)]
    else:
        per, extras = divmod(total, n)
        owner, start = [], 0
        for k in range(n):
            rows = per + (k < extras)
            owner += [(k, r) for r in range(rows)]
            start += rows
    shards = [np.stack([table[i] for i in range(total) if owner[i][0] == k]) for k in range(n)]
    g = af.Graph()
    with g.as_default():
        vs = [af.Variable(s, name=f"shard{k}") for k, s in enumerate(shards)]
        ids = af.placeholder(af.int64, [None, 2])
        y = af.nn.embedding_lookup(vs, ids, partition_strategy=strategy)
        loss = af.reduce_sum(y * y)
        grads = af.gradients(loss, vs)
        assert all(isinstance(gr, af.IndexedSlices) for gr in grads)
        train = af.train.GradientDescentOptimizer(0.1).minimize(loss)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            iv = rng.integers(0, total, (4, 2))
            np.testing.assert_allclose(s.run(y, {ids: iv}), table[iv], rtol=1e-6)
            s.run(train, {ids: iv})
            after = s.run(vs)
    counts = np.bincount(iv.reshape(-1), minlength=total)
    for i in range(total):  # d(y*y)/d(row) = 2 row per read: row * (1 - 0.2 * reads)
        k, r = owner[i]
        # (atol: a row read 5 times ends at 0, up to float32 rounding of the 5 updates)
        np.testing.assert_allclose(after[k][r], table[i] * (1 - 0.2 * counts[i]), rtol=1e-5,
                                   atol=1e-6)
        if counts[i] == 0:
            np.testing.assert_array_equal(after[k][r], table[i])  # untouched rows stay


def test_div_strategy_needs_static_row_counts() -> None:
    g = af.Graph()
    with g.as_default():
        a = af.placeholder(af.float32, [None, 2])
        with pytest.raises(af.InvalidArgumentError, match=r"'div'\) needs every shard's"):
            af.nn.embedding_lookup([a, a], [0], partition_strategy="div")
        with pytest.raises(af.InvalidArgumentError, match="'mod' or 'div'"):
            af.nn.embedding_lookup([a, a], [0], partition_strategy="range")
