"""af.data: sources, transformations, iterators, exact element counts over epochs with fixed
seeds, and the end of data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import actorflow as af


@pytest.fixture(autouse=True)
def _fresh_graph() -> Any:
    with af.Graph().as_default() as g:
        yield g


def _drain(s: af.Session, nxt: Any) -> list:
    out = []
    while True:
        try:
            out.append(s.run(nxt))
        except af.errors.OutOfRangeError:
            return out


def test_map_filter_batch_prefetch_values() -> None:
    rng = np.random.default_rng()
    x = rng.standard_normal((11, 3)).astype(np.float32)
    y = rng.integers(0, 5, 11)
    ds = (af.data.Dataset.from_tensor_slices((x, y))
          .map(lambda a, b: (a * 2.0 + 1.0, b + 1), num_parallel_calls=3)
          .filter(lambda a, b: b > 1).batch(4).prefetch(2))
    assert ds.output_types == (af.float32, af.int64)
    assert ds.output_shapes == ((None, 3), (None,))
    nxt = ds.make_one_shot_iterator().get_next()
    with af.Session() as s:
        got = _drain(s, nxt)
    keep = y + 1 > 1
    np.testing.assert_allclose(np.concatenate([a for a, _ in got]), x[keep] * 2 + 1, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), y[keep] + 1)
    assert [len(b) for _, b in got][:-1] == [4] * (len(got) - 1)


def test_shuffle_repeat_counts_exact_and_seeded() -> None:
    def run(seed: int, reshuffle: bool = True) -> list[int]:
        with af.Graph().as_default():
            ds = af.data.Dataset.range(25).shuffle(10, seed=seed,
                                                   reshuffle_each_iteration=reshuffle).repeat(3)
            nxt = af.data.make_one_shot_iterator(ds).get_next()
            with af.Session() as s:
                return [int(v) for v in _drain(s, nxt)]

    a, b, c = run(5), run(5), run(6)
    assert Counter(a) == {i: 3 for i in range(25)}
    assert a == b and a != c
    assert a[:25] != a[25:50]  # reshuffled per epoch
    d = run(5, reshuffle=False)
    assert d[:25] == d[25:50] == d[50:]


def test_take_skip_cache_zip_and_from_tensors() -> None:
    ds = af.data.Dataset.zip((af.data.Dataset.range(10).skip(2).take(5),
                              af.data.Dataset.from_tensor_slices(np.arange(100, 110))))
    nxt = ds.make_one_shot_iterator().get_next()
    one = af.data.Dataset.from_tensors({"a": np.ones((2, 2), np.float32)}).repeat(2)
    one_next = one.make_one_shot_iterator().get_next()
    calls = []

    def gen() -> Any:
        calls.append(1)
        yield from range(3)
    cached = af.data.Dataset.from_generator(gen, af.int64, ()).cache().repeat(3)
    cached_next = cached.make_one_shot_iterator().get_next()
    with af.Session() as s:
        assert [(int(i), int(j)) for i, j in _drain(s, nxt)] == [
            (2, 100), (3, 101), (4, 102), (5, 103), (6, 104)]
        got = _drain(s, one_next)
        assert len(got) == 2 and got[0]["a"].shape == (2, 2)
        assert [int(v) for v in _drain(s, cached_next)] == [0, 1, 2] * 3
    assert len(calls) == 1  # the cache served epochs 2 and 3


def test_flat_map_interleave_and_padded_batch() -> None:
    ds = af.data.Dataset.range(1, 4).flat_map(
        lambda n: af.data.Dataset.from_tensor_slices(af.fill(af.reshape(n, [1]), n)))
    inter = af.data.Dataset.from_tensor_slices(np.array([[1, 1, 1], [2, 2, 2]])).interleave(
        lambda row: af.data.Dataset.from_tensor_slices(row), cycle_length=2, block_length=2)
    padded = af.data.Dataset.range(1, 4).map(lambda n: af.fill(af.reshape(n, [1]), n)) \
        .padded_batch(3, padded_shapes=(None,))
    with af.Session() as s:
        assert [int(v) for v in _drain(s, ds.make_one_shot_iterator().get_next())] == \
            [1, 2, 2, 3, 3, 3]
        assert [int(v) for v in _drain(s, inter.make_one_shot_iterator().get_next())] == \
            [1, 1, 2, 2, 1, 2]
        (p,) = _drain(s, padded.make_one_shot_iterator().get_next())
        np.testing.assert_array_equal(p, [[1, 0, 0], [2, 2, 0], [3, 3, 3]])


def test_initializable_and_reinitializable_iterators() -> None:
    train = af.data.Dataset.range(5).batch(2, drop_remainder=True)
    test = af.data.Dataset.range(100, 103).batch(2, drop_remainder=True)
    it = train.make_initializable_iterator()
    nxt = it.get_next()
    shared = af.data.Iterator.from_structure(train.output_types, train.output_shapes)
    init_train, init_test = shared.make_initializer(train), shared.make_initializer(test)
    snext = shared.get_next()
    with af.Session() as s:
        with pytest.raises(af.errors.FailedPreconditionError, match="not initialized"):
            s.run(nxt)
        for _ in range(2):  # re-initializing starts over
            s.run(it.initializer)
            assert [v.tolist() for v in _drain(s, nxt)] == [[0, 1], [2, 3]]
        s.run(init_test)
        assert [v.tolist() for v in _drain(s, snext)] == [[100, 101]]
        s.run(init_train)
        assert s.run(snext).tolist() == [0, 1]


def test_dataset_trains_softmax_regression_on_digits() -> None:
    from models import digits

    d = digits.load()
    ds = (af.data.Dataset.from_tensor_slices((d.train_x, d.train_y.astype(np.int64)))
          .shuffle(500, seed=0).repeat(8).batch(32).prefetch(4))
    xb, yb = ds.make_one_shot_iterator().get_next()
    w = af.Variable(np.zeros((64, 10), np.float32))
    b = af.Variable(np.zeros(10, np.float32))
    loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
        labels=yb, logits=af.matmul(xb, w) + b))
    train = af.train.GradientDescentOptimizer(0.5).minimize(loss)
    tx = af.placeholder(af.float32, (None, 64))
    pred = af.argmax(af.matmul(tx, w) + b, 1)
    steps = 0
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        try:
            while True:
                s.run(train)
                steps += 1
        except af.errors.OutOfRangeError:
            pass
        acc = float(np.mean(s.run(pred, {tx: d.test_x}) == d.test_y))
    assert steps == -(-8 * len(d.train_y) // 32)
    assert acc >= 0.9, acc


def test_bad_inputs() -> None:
    with pytest.raises(af.errors.InvalidArgumentError, match="same first dimension"):
        af.data.Dataset.from_tensor_slices((np.zeros(3), np.zeros(4)))
    with pytest.raises(af.errors.InvalidArgumentError, match="one bool"):
        af.data.Dataset.range(3).filter(lambda x: x + 1)
    outer = af.constant(3, dtype=af.int64)
    with pytest.raises(af.errors.InvalidArgumentError, match="another graph"):
        af.data.Dataset.range(3).map(lambda x: x + outer)


def test_an_in_memory_prefetch_makes_elements_inline_and_a_generator_one_keeps_its_thread(
        ) -> None:
    from devices import datasets as D

    arrays = [np.arange(10), np.arange(10) * 2.0]
    chain = {"op": "batch", "size": 4, "drop": False, "input": {
        "op": "shuffle", "buffer": 3, "seed": 1, "input": {"op": "tensor_slices",
                                                             "arrays": arrays}}}
    plain = [tuple(a.tolist() for a in e) for e in D.build(chain, None)]
    inline = D.build({"op": "prefetch", "buffer": 2, "input": chain}, None)
    assert isinstance(inline, D._Prefetch) and not inline.threaded
    assert [tuple(a.tolist() for a in e) for e in inline] == plain
    assert sorted(x for e in plain for x in e[0]) == list(range(10))
    D.GENERATORS["t"] = lambda: iter([(np.int64(i),) for i in range(5)])
    try:
        threaded = D.build({"op": "prefetch", "buffer": 2,
                            "input": {"op": "generator", "key": "t",
                                                  "types": ["int64"]}}, None)
        assert threaded.threaded
        assert [int(e[0]) for e in threaded] == [0, 1, 2, 3, 4]
    finally:
        del D.GENERATORS["t"]
