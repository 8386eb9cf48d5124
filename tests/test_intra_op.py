"""The intra-op pool (devices.intra_op): ranges, inline paths, errors, and split element-wise
passes that equal the unsplit NumPy result on odd sizes, 0-d, empty, broadcast and
non-contiguous operands."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from devices.intra_op import (
    MIN_CHUNK_ELEMENTS,
    IntraOpPool,
    apply_split,
    resolve_threads,
    shared_pool,
    split_operands,
)

BIG = 2 * MIN_CHUNK_ELEMENTS + 7  # odd, and large enough to split


@pytest.fixture
def pool():
    p = IntraOpPool(3)
    yield p
    p.close()


def test_parallel_for_covers_every_index_once(pool):
    hits = np.zeros(BIG * 3, np.int64)
    threads = set()

    def body(lo, hi):
        hits[lo:hi] += 1
        threads.add(threading.get_ident())

    pool.parallel_for(hits.size, body)
    assert (hits == 1).all()
    assert pool.statistics().jobs_split == 1
    assert len(threads) >= 1


def test_long_jobs_are_cut_into_more_and_shorter_chunks():
    from devices.intra_op import (
        CHUNKS_PER_THREAD,
        FINE_CHUNK_FACTOR,
        MAX_CHUNKS_PER_THREAD,
        chunk_count,
    )

    assert chunk_count(2, 3 * 100, 100) == 3  # each chunk holds the minimum
    assert chunk_count(2, 30 * 100, 100) == 2 * CHUNKS_PER_THREAD  # a short job: as before
    # a long job: up to MAX per thread, each still FINE_CHUNK_FACTOR times the minimum
    long_n = (2 * MAX_CHUNKS_PER_THREAD - 3) * FINE_CHUNK_FACTOR * 100
    assert chunk_count(2, long_n, 100) == 2 * MAX_CHUNKS_PER_THREAD - 3
    assert chunk_count(2, 1000 * long_n, 100) == 2 * MAX_CHUNKS_PER_THREAD
    p = IntraOpPool(2)
    try:
        ranges = []
        p.parallel_for(1000 * long_n, lambda lo, hi: ranges.append((lo, hi)), 100)
        ranges.sort()
        assert len(ranges) == 2 * MAX_CHUNKS_PER_THREAD
        assert ranges[0][0] == 0 and ranges[-1][1] == 1000 * long_n
        assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
    finally:
        p.close()


def test_small_work_and_one_thread_run_inline_on_the_caller():
    one = IntraOpPool(1)
    seen = []
    one.parallel_for(BIG * 4, lambda lo, hi: seen.append((lo, hi, threading.get_ident())))
    assert seen == [(0, BIG * 4, threading.get_ident())]
    assert one._workers == []  # no thread was ever started
    p = IntraOpPool(2)
    calls = []
    p.parallel_for(100, lambda lo, hi: calls.append((lo, hi)))
    assert calls == [(0, 100)] and p.statistics().jobs_inline == 1
    p.parallel_for(0, lambda lo, hi: calls.append((lo, hi)))
    assert calls == [(0, 100)]  # nothing to do for n == 0
    p.close()


def test_an_error_in_a_chunk_reaches_the_caller(pool):
    def body(lo, hi):
        if lo > 0:
            raise ValueError(f"bad chunk at {lo}")

    with pytest.raises(ValueError, match="bad chunk at"):
        pool.parallel_for(BIG * 2, body)
    out = np.zeros(BIG)
    pool.parallel_for(BIG, lambda lo, hi: out.__setitem__(slice(lo, hi), 1.0))
    assert out.sum() == BIG  # the pool still works after a failed job


def test_nested_parallel_for_does_not_deadlock(pool):
    out = np.zeros((4, BIG))

    def outer(lo, hi):
        for r in range(lo, hi):
            pool.parallel_for(BIG, lambda a, b, r=r: out[r].__setitem__(slice(a, b), r + 1))

    pool.parallel_for(4, outer, min_chunk=1)
    assert (out == np.arange(1, 5)[:, None]).all()


def test_threads_resolve_like_configproto():
    assert resolve_threads(3) == 3
    assert resolve_threads(0) >= 1
    with pytest.raises(ValueError, match="0: one per core"):
        resolve_threads(-1)
    assert shared_pool(0) is shared_pool(resolve_threads(0))
    with pytest.raises(ValueError, match="at least 1 thread"):
        IntraOpPool(0)


def _cases(rng):
    x = rng.standard_normal(BIG, dtype=np.float32)
    y = rng.standard_normal(BIG, dtype=np.float32)
    m = rng.standard_normal((BIG // 3 + 1, 3), dtype=np.float32)
    wide = rng.standard_normal((3, BIG), dtype=np.float32)
    yield "1-d", np.add, (x, y)
    yield "scalar operand", np.multiply, (x, np.float32(1.5))
    yield "0-d array operand", np.subtract, (np.array(2.0, np.float32), x)
    yield "size-1 operand", np.add, (x, np.ones((1,), np.float32))
    yield "unary", np.tanh, (x,)
    yield "2-d contiguous", np.add, (m, m * 2)
    yield "broadcast row", np.add, (m, np.arange(3, dtype=np.float32))
    yield "broadcast column", np.multiply, (m, m[:, :1].copy())
    yield "transposed (non-contiguous)", np.add, (wide.T, wide.T)
    yield "strided", np.maximum, (x[::2], y[::2])
    yield "comparison to bool", np.less, (x, y)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_apply_split_equals_the_unsplit_result(threads):
    rng = np.random.default_rng(threads)
    p = IntraOpPool(threads)
    try:
        for label, f, args in _cases(rng):
            want = f(*args)
            out = np.empty(want.shape, want.dtype)
            got = apply_split(p, f, args, out)
            assert got is out, label
            np.testing.assert_array_equal(got, want, err_msg=label)
        if threads > 1:
            assert p.statistics().jobs_split > 0
    finally:
        p.close()


def test_apply_split_small_0d_and_empty_run_in_one_call(pool):
    for args in ((np.array(1.5, np.float32), np.float32(2.0)),
                 (np.ones(7, np.float32), np.ones(7, np.float32)),
                 (np.ones((0, 5), np.float32), np.ones((0, 5), np.float32))):
        want = np.add(*args)
        out = np.empty(np.shape(want), np.float32)
        np.testing.assert_array_equal(apply_split(pool, np.add, args, out), want)
    assert pool.statistics().jobs_split == 0


def test_split_operands_picks_flat_or_outer_cuts():
    out = np.empty((10, 4), np.float32)
    o, ops, cut = split_operands((np.ones((10, 4), np.float32), np.float32(3)), out)
    assert o.shape == (40,) and cut == [True, False]
    o, ops, cut = split_operands((np.ones((10, 4), np.float32), np.ones(4, np.float32)), out)
    assert o is out and cut == [True, False]
    assert split_operands((np.float32(1),), np.empty((), np.float32)) is None


@pytest.mark.parametrize("threads", [1, 2])
def test_row_reductions_split_equal_numpy(threads):
    import actorflow as af

    rng = np.random.default_rng(threads)
    x_np = rng.standard_normal((BIG // 9 + 1, 9)).astype(np.float32)
    y_np = rng.standard_normal((601, 7, 131)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, x_np.shape)
        y = af.placeholder(af.float32, y_np.shape)
        outs = [af.reduce_sum(x, axis=1), af.reduce_mean(x, axis=-1, keepdims=True),
                af.reduce_max(y, axis=[1, 2]), af.reduce_min(y, axis=2),
                af.reduce_sum(y, axis=1), af.reduce_sum(x, axis=0)]
    before = shared_pool(threads).statistics()
    with af.Session(graph=g, config=af.ConfigProto(intra_op_parallelism_threads=threads)) as s:
        got = s.run(outs, {x: x_np, y: y_np})
    want = [np.add.reduce(x_np, axis=1), np.add.reduce(x_np, axis=-1, keepdims=True)
            * np.float32(1 / 9), np.max(y_np, axis=(1, 2)), np.min(y_np, axis=2),
            np.add.reduce(y_np, axis=1), np.add.reduce(x_np, axis=0)]
    for g_, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g_, w)
    if threads > 1:
        # offered to the pool: split, or declined after a split that did not pay (load)
        after = shared_pool(threads).statistics()
        assert (after.jobs_split + after.jobs_declined
                >= before.jobs_split + before.jobs_declined + 5)


def test_a_split_that_did_not_pay_makes_the_next_ones_run_inline():
    from devices.intra_op import BACKOFF_JOBS

    p = IntraOpPool(2)
    caller = threading.get_ident()
    try:
        def straggler(lo, hi):  # a worker the OS preempted for 50 ms (a hog on its core)
            if threading.get_ident() != caller:
                time.sleep(0.05)

        p.parallel_for(BIG * 4, straggler, 1)
        stats = p.statistics()
        assert stats.jobs_split == 1 and stats.jobs_declined == 0
        seen = set()
        for _ in range(BACKOFF_JOBS):
            p.parallel_for(BIG * 4, lambda lo, hi: seen.add(threading.get_ident()), 1)
        stats = p.statistics()
        assert stats.jobs_declined == BACKOFF_JOBS and stats.jobs_split == 1
        assert seen == {caller}  # declined jobs ran whole on the caller
        p.parallel_for(BIG * 4, straggler, 1)  # tried again, lost again: twice the back-off
        assert p.statistics().jobs_split == 2 and p._declining == 2 * BACKOFF_JOBS
        p._judge(0.001, 0.002)  # a split that paid resets the back-off
        assert p._backoff == BACKOFF_JOBS
    finally:
        p.close()


# -- keyed work: split or inline as measured -------------------------------------------------
def _measured_pool_run(p, kind, n, slow_way, delay=0.02):
    """One keyed job of 4 chunks, each 1 ms of work (so the worker surely takes one), whose
    `slow_way` is clearly the slower: "split", a worker's chunk takes `delay` more; "inline",
    the whole range does. Returns how it ran."""
    caller = threading.get_ident()
    ways = []

    def body(lo, hi):
        whole = lo == 0 and hi == n
        ways.append("inline" if whole else "split")
        time.sleep(0.001)
        if (slow_way == "split" and threading.get_ident() != caller) or (
                slow_way == "inline" and whole):
            time.sleep(delay)
    p.parallel_for(n, body, n // 4, kind)
    return "inline" if ways == ["inline"] else "split"


def test_keyed_work_runs_the_way_measured_faster_and_tries_the_other_now_and_then():
    from devices.intra_op import EXPLORE_RARELY

    p = IntraOpPool(2)
    try:
        slow_split, slow_inline = object(), object()
        # each kind: split once, inline once, then the faster way
        assert [_measured_pool_run(p, slow_split, BIG, "split") for _ in range(2)] == [
            "split", "inline"]
        assert [_measured_pool_run(p, slow_inline, BIG, "inline") for _ in range(2)] == [
            "split", "inline"]
        ways = [_measured_pool_run(p, slow_split, BIG, "split")
                for _ in range(EXPLORE_RARELY)]
        # inline but for one try of the split (the loss is clear: tried rarely)
        assert ways.count("split") == 1 and ways.count("inline") == EXPLORE_RARELY - 1
        ways = [_measured_pool_run(p, slow_inline, BIG, "inline") for _ in range(10)]
        assert ways == ["split"] * 10
        # another size of the same kind is measured on its own
        assert _measured_pool_run(p, slow_split, BIG * 8, "split") == "split"
        stats = p.statistics()
        assert stats.jobs_declined == stats.jobs_inline  # every inline run was a choice
    finally:
        p.close()


def test_keyed_work_follows_a_change_of_the_machine():
    """A split that paid and then stops paying (a hog arrives: its chunks take three times
    what the whole job took inline) goes inline within a few tries of it."""
    from devices.intra_op import EXPLORE_EVERY

    p = IntraOpPool(2)
    kind = object()
    try:
        _measured_pool_run(p, kind, BIG, "inline")
        _measured_pool_run(p, kind, BIG, "inline")
        assert _measured_pool_run(p, kind, BIG, "inline") == "split"
        ways = [_measured_pool_run(p, kind, BIG, "split", 0.06) for _ in range(2 * EXPLORE_EVERY)]
        assert ways[-EXPLORE_EVERY:].count("inline") >= EXPLORE_EVERY - 1, ways
    finally:
        p.close()


def test_the_table_of_kinds_is_bounded(monkeypatch):
    import devices.intra_op as intra_op

    monkeypatch.setattr(intra_op, "MAX_KINDS", 4)
    p = IntraOpPool(2)
    try:
        for _ in range(9):
            p.parallel_for(BIG, lambda lo, hi: None, 1, object())
        assert 1 <= len(p._kinds) <= 4
    finally:
        p.close()
