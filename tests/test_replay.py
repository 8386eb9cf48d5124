"""Record and replay (issue 17): a run records the order in which its variables took updates
(task, step, read version, applied version) to a msgpack file; replaying the file in a fresh
session reproduces the final parameters bit for bit, and another order does not."""

from __future__ import annotations

import msgpack
import pytest

import actorflow as af
from actorflow.train import replay
from tests.staleness_harness import SplitNet, run_async


def _fresh():
    g = af.Graph()
    with g.as_default():
        net = SplitNet(af.train.DCASGDOptimizer(0.5))
        s = af.Session(graph=g)
        s.run(af.global_variables_initializer())
    return g, net, s


def _replayed(log):
    g, net, s = _fresh()
    with g.as_default(), s:
        n = replay.replay(log, lambda t, k: net.read(s, t, k),
                          lambda t, k, r: net.apply_update(s, t, k, r))
        return n, s.run(net.vars)


def test_recorded_run_replays_bit_for_bit(tmp_path):
    g, net, s = _fresh()
    with g.as_default(), s:
        replay.record(s, net.vars)
        run_async(s, net, workers=3, steps=20, seed=7)
        final = s.run(net.vars)
        log = replay.collect(s, net.vars)
    path = tmp_path / "run.updates"
    replay.save(path, log)
    raw = msgpack.unpackb(path.read_bytes())
    assert raw["version"] == 2 and len(raw["variables"]) == 4
    # every update names its sender's life: one process, one incarnation, never the default
    incs = {r[4] for rows in raw["variables"].values() for r in rows}
    assert len(incs) == 1 and incs != {-1} and incs != {0}
    loaded = replay.load(path)
    rows = replay.order(loaded)
    assert len(rows) == 60 and max(r[3] - 1 - r[2] for r in rows) >= 2  # real staleness
    n, again = _replayed(loaded)
    assert n == 60
    for a, b in zip(final, again, strict=True):
        assert a.tobytes() == b.tobytes()
    # another interleaving of the same steps ends elsewhere: the order is what was replayed
    g2, net2, s2 = _fresh()
    with g2.as_default(), s2:
        run_async(s2, net2, workers=3, steps=20, seed=8)
        other = s2.run(net2.vars)
    assert any(a.tobytes() != b.tobytes() for a, b in zip(final, other, strict=True))


def test_bad_log_is_named(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(msgpack.packb([1, 2]))
    with pytest.raises(af.errors.InvalidArgumentError, match="not an update log"):
        replay.load(p)
    with pytest.raises(af.errors.InvalidArgumentError, match="jumps from version"):
        replay.replay([(0, 0, 1, 2), (0, 1, 2, 4)], lambda t, k: None,
                      lambda t, k, r: None)
