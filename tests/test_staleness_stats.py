"""Staleness in `Session.statistics()` (issue 17, item 1): a deterministic two-worker schedule
gives per-variable counters and a histogram equal to the versions' differences. The same
schedule on a real cluster (two clients, the variable on a PS; `Session.statistics()` of both,
`actorflow status` table and JSON) is checked in tests/test_status.py, on its cluster."""

from __future__ import annotations

import numpy as np

import actorflow as af

# A reads, B reads, A applies (staleness 0), B applies (1), A reads, A applies (0), B applies
# what it read first (3): versions go 1 (initialised) -> 5
WANT = {"count": 4, "mean": 1.0, "max": 3, "hist": [2, 1, 0, 1], "version": 5}


def _graph(ps: str | None) -> tuple:
    with af.device(ps):
        w = af.Variable(np.zeros(3, np.float32), name="w")
    value, version = af.train.read_with_version(w)
    g = af.placeholder(af.float32, shape=(3,), name="g")
    rv = af.placeholder(af.int64, shape=(), name="rv")
    with af.control_dependencies([af.train.staleness(w, rv).op]):  # counted on w's device
        apply = w.assign_sub(g).op
    return w, value, version, g, rv, apply


def _schedule(a: af.Session, b: af.Session, value, version, g, rv, apply) -> None:
    one = np.ones(3, np.float32)
    _, va = a.run([value, version])
    _, vb = b.run([value, version])
    a.run(apply, {g: one, rv: va})
    b.run(apply, {g: one, rv: vb})
    _, va = a.run([value, version])
    a.run(apply, {g: one, rv: va})
    b.run(apply, {g: one, rv: vb})


def _stats_of(stats: list, device_part: str) -> dict:
    found = [d.staleness for d in stats if device_part in d.name and d.staleness]
    assert len(found) == 1, stats
    return found[0]


def test_staleness_in_local_session_statistics() -> None:
    graph = af.Graph()
    with graph.as_default():
        w, value, version, g, rv, apply = _graph(None)
    with af.Session(graph=graph) as s:
        s.run(w.initializer)
        assert all(not d.staleness for d in s.statistics())  # no update carried a version
        _schedule(s, s, value, version, g, rv, apply)
        assert _stats_of(s.statistics(), "CPU:0") == {"w": WANT}
        np.testing.assert_allclose(s.run(w), -4.0 * np.ones(3))
