"""Staleness as a value (issue 17): versions advance with every write, and the staleness of
an update equals the versions' difference in a hand-interleaved two-worker schedule."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from actorflow.train.staleness import decode_stats


def _two_worker_graph(opt=None):
    w = af.Variable(np.zeros(3, np.float32), name="w")
    value, version = af.train.read_with_version(w)
    g = af.placeholder(af.float32, shape=(3,), name="g")
    rv = af.placeholder(af.int64, shape=(), name="rv")
    if opt is None:
        s = af.train.staleness(w, rv)
        with af.control_dependencies([s.op]):
            apply = w.assign_sub(g).op
    else:
        s = None
        apply = opt.apply_gradients([(g, w)], read_versions={w: rv})
    return w, value, version, g, rv, s, apply


def test_versions_advance_with_every_write():
    w = af.Variable(np.zeros(4, np.float32), name="w")
    ver = af.train.variable_version(w)
    ops = [w.assign_add(np.ones(4, np.float32)), w.assign(np.ones(4, np.float32)),
           af.train.GradientDescentOptimizer(0.1).apply_gradients(
               [(af.constant(np.ones(4, np.float32)), w)]),
           w.scatter_add(af.IndexedSlices(af.constant(np.ones((1,), np.float32)),
                                          af.constant([2])))]
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        v0 = int(s.run(ver))
        assert v0 == 1  # the initializer's assignment
        for i, op in enumerate(ops):
            s.run(op)
            assert int(s.run(ver)) == v0 + i + 1


def test_staleness_equals_version_difference_two_workers():
    w, value, version, g, rv, s_t, apply = _two_worker_graph()
    one = np.ones(3, np.float32)
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        # A reads, B reads, A applies, B applies, A reads, A applies, B applies (B read early)
        _, va = s.run([value, version])
        _, vb = s.run([value, version])
        assert int(va) == int(vb) == 1
        sa, _ = s.run([s_t, apply], {g: one, rv: va})
        sb, _ = s.run([s_t, apply], {g: one, rv: vb})
        assert (int(sa), int(sb)) == (0, 1)
        _, va2 = s.run([value, version])
        assert int(va2) == 3
        sa2, _ = s.run([s_t, apply], {g: one, rv: va2})
        sb2, _ = s.run([s_t, apply], {g: one, rv: vb})
        assert (int(sa2), int(sb2)) == (0, 3)  # B's read version 1, applied at version 5
        stats = decode_stats(s.run(af.train.staleness_stats(w)))
        assert stats["count"] == 4 and stats["max"] == 3 and stats["version"] == 5
        assert stats["hist"] == [2, 1, 0, 1]
        local = af.train.staleness_statistics(s)
        (dev_stats,) = local.values()
        (rec,) = dev_stats.values()
        assert rec["hist"] == [2, 1, 0, 1] and rec["version"] == 5
        np.testing.assert_array_equal(s.run(w), -4 * one)


def test_optimizer_gets_staleness_scaled_lr():
    opt = af.train.StalenessScaledSGD(1.0)
    w, value, version, g, rv, _, apply = _two_worker_graph(opt)
    one = np.ones(3, np.float32)
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        _, va = s.run([value, version])
        _, vb = s.run([value, version])
        s.run(apply, {g: one, rv: va})  # staleness 0: step 1
        s.run(apply, {g: one, rv: vb})  # staleness 1: step 1/2
        np.testing.assert_allclose(s.run(w), -1.5 * one)


def test_minimize_reads_versions_in_the_step():
    w = af.Variable(np.ones(2, np.float32), name="w")
    loss = af.reduce_sum(w * w)
    train = af.train.StalenessScaledSGD(0.25).minimize(loss)
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        for _ in range(3):
            s.run(train)
        np.testing.assert_allclose(s.run(w), 0.5 ** 3 * np.ones(2), rtol=1e-6)
        st = decode_stats(s.run(af.train.staleness_stats(w)))
        assert st["count"] == 3 and st["max"] == 0


def test_bad_read_version_is_named():
    w, value, version, g, rv, s_t, apply = _two_worker_graph()
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        with pytest.raises(af.errors.InvalidArgumentError, match="read version 7"):
            s.run(s_t, {rv: 7})


def test_version_of_a_held_snapshot_is_exact():
    """A snapshot pins its buffer: writes after it go elsewhere, so the version it was taken
    at is known even after several updates (what minimize() relies on)."""
    from devices.resources import ResourceVariable

    v = ResourceVariable("v", np.dtype(np.float32), (3,), "/cpu:0")
    v.assign(np.zeros(3, np.float32))
    v.update(np.add, np.ones(3, np.float32))  # in place: nobody holds the value
    assert v.version == 2
    snap = v.snapshot()
    assert v.version_of(snap) == 2
    v.update(np.add, np.ones(3, np.float32))  # copies: snap is held
    v.writable()[0] = 5.0
    v.assign(np.full(3, 7, np.float32))
    assert v.version == 5 and v.version_of(snap) == 2
    np.testing.assert_array_equal(snap, np.ones(3))
    snap2 = v.snapshot()
    assert v.version_of(snap2) == 5


def test_version_of_read_in_a_step():
    w = af.Variable(np.ones(2, np.float32), name="w")
    ver = af.train.version_of_read(w, w.value())
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        s.run(w.assign_add(np.ones(2, np.float32)))
        assert int(s.run(ver)) == 2


def test_sparse_gradient_reaches_a_staleness_optimizer_densified():
    table = af.Variable(np.ones((4, 2), np.float32), name="table")
    loss = af.reduce_sum(af.gather(table, [1, 1, 3]))
    train = af.train.StalenessScaledSGD(0.5).minimize(loss)
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        s.run(train)
        np.testing.assert_allclose(s.run(table), [[1, 1], [0, 0], [1, 1], [0.5, 0.5]])
        assert decode_stats(s.run(af.train.staleness_stats(table)))["count"] == 1
