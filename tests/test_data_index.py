"""The vectorized in-memory chain (`devices.dataset_index`) gives exactly the element path's
sequence (`devices.datasets.build(..., vector=False)`, TF's shuffle-buffer semantics) for
the same seed: over epochs, reshuffling on and off, windows larger and smaller than the data,
batches with and without the remainder, a take or skip in between."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from devices.dataset_index import Draws, compiled_loops, index_source
from devices.datasets import build


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def _loops(request: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs with the compiled shuffle loops and with their NumPy form."""
    loops = compiled_loops()
    assert all(loop.ready(120) for loop in loops)
    if request.param == "numpy":
        for loop in loops:
            monkeypatch.setattr(loop, "fn", None)


def _slices(n: int) -> dict:
    rng = np.random.default_rng(n)
    return {"op": "tensor_slices",
            "arrays": [np.arange(n, dtype=np.int64) * 10, rng.standard_normal((n, 3))]}


def _op(op: str, inp: dict, **kw: Any) -> dict:
    return {"op": op, "input": inp, **kw}


def _same(desc: dict, limit: int = 5000) -> int:
    """Asserts both paths give the same elements (at most `limit`); returns how many."""
    fast = list(itertools.islice(build(desc, None), limit))
    ref = list(itertools.islice(build(desc, None, vector=False), limit))
    assert len(fast) == len(ref)
    if fast:
        assert [[np.shape(c) for c in e] for e in fast] == [[np.shape(c) for c in e] for e in ref]
        for c in range(len(ref[0])):  # a component of every element at once
            np.testing.assert_array_equal(np.concatenate([np.ravel(e[c]) for e in fast]),
                                          np.concatenate([np.ravel(e[c]) for e in ref]))
    return len(fast)


@pytest.mark.parametrize("n,buffer", [(100, 10), (100, 1), (100, 99), (100, 100),
                                      (100, 101), (100, 1000), (600, 256), (0, 4)])
@pytest.mark.parametrize("reshuffle", [True, False])
def test_shuffle_repeat_same_sequence(n: int, buffer: int, reshuffle: bool) -> None:
    desc = _op("repeat", _op("shuffle", _slices(n), buffer=buffer, seed=3, reshuffle=reshuffle),
               count=3)
    assert index_source(desc) is not None  # the vectorized path runs
    assert _same(desc, 20000) == 3 * n


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("size", [1, 7, 32, 200])
def test_batch_of_shuffle_repeat_same_batches(drop: bool, size: int) -> None:
    inner = _op("shuffle", _slices(143), buffer=25, seed=0, reshuffle=True)
    got = _same(_op("repeat", _op("batch", inner, size=size, drop=drop), count=3))
    per_epoch = 143 // size + (0 if drop or 143 % size == 0 else 1)
    assert got == 3 * per_epoch
    # a batch across epochs (repeat inside the batch) and an endless repeat
    _same(_op("batch", _op("repeat", inner, count=3), size=size, drop=drop))
    assert _same(_op("batch", _op("repeat", inner, count=-1), size=size, drop=drop),
                 40) == 40


def test_take_skip_between_and_shuffle_of_repeat() -> None:
    src = _slices(90)
    chains = [
        _op("shuffle", _op("repeat", src, count=4), buffer=50, seed=1),     # across epochs
        _op("take", _op("shuffle", src, buffer=20, seed=2), count=37),
        _op("skip", _op("shuffle", src, buffer=20, seed=2), count=37),
        _op("repeat", _op("take", _op("shuffle", src, buffer=30, seed=4), count=50), count=2),
        _op("shuffle", _op("skip", _op("repeat", src, count=2), count=100), buffer=7, seed=5),
        _op("skip", src, count=200), _op("take", src, count=0), _op("skip", src, count=-1),
        _op("repeat", _op("shuffle", src, buffer=16, seed=None), count=0),
    ]
    for desc in chains:
        _same(desc)
    for desc in chains[1:3]:
        _same(_op("repeat", _op("batch", desc, size=8, drop=False), count=2))


def test_draws_follow_the_element_paths_order() -> None:
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    d = Draws(rng_a)
    got = np.concatenate([d.take(k) for k in (1, 700, 0, 1500, 3)])
    want = np.concatenate([rng_b.random(1024)[::-1] for _ in range(3)])[:2204]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("start,stop,step", [(0, 50, 1), (7, -30, -3), (5, 5, 1),
                                             (2**40, 2**40 + 90, 9)])
def test_a_range_source_same_values_and_dtypes(start: int, stop: int, step: int) -> None:
    rng_ = {"op": "range", "start": start, "stop": stop, "step": step}
    shuffled = _op("shuffle", rng_, buffer=8, seed=2)
    assert index_source(shuffled) is not None
    n = len(range(start, stop, step))
    assert _same(_op("repeat", shuffled, count=2)) == 2 * n
    _same(_op("repeat", _op("batch", shuffled, size=4, drop=False), count=2))
    _same(_op("batch", _op("skip", rng_, count=3), size=5, drop=True))
    got = list(build(_op("take", shuffled, count=3), None))
    assert all(type(e[0]) is np.int64 for e in got)
    endless = {"op": "range", "start": 0, "stop": 2**62, "step": 1}  # never materialized
    assert _same(_op("take", _op("shuffle", endless, buffer=5, seed=1), count=20)) == 20


def test_other_chains_keep_the_element_path() -> None:
    zipped = {"op": "zip", "inputs": [_slices(10)]}
    assert index_source(_op("shuffle", zipped, buffer=3, seed=0)) is None
