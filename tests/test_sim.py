"""af.sim (issue 17): virtual workers on trio's MockClock against the in-process PS path.
Rules train digits in simulation; a failure at step k loses that step's update and the
worker redoes it; runs are seeded (same seed, same update order); a simulated run's recorded
order replays bit for bit; staleness grows with the number of workers."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
import actorflow.sim as sim
from actorflow.train import replay
from models import digits


def _run(opt, config, sizes=(64, 64, 10)):
    d = digits.load()
    g = af.Graph()
    with g.as_default():
        m = sim.SplitModel(opt, d.train_x, d.train_y, d.test_x, d.test_y, sizes)
        s = af.Session(graph=g)
        s.run(af.global_variables_initializer())
    with g.as_default(), s:
        report = sim.simulate(m, s, config)
        return report, s.run(m.vars)


@pytest.mark.parametrize("make", [lambda: af.train.StalenessScaledSGD(0.5),
                                  lambda: af.train.DCASGDOptimizer(0.5)],
                         ids=["stale-lr", "dcasgd"])
def test_rules_train_digits_in_simulation(make):
    r, _ = _run(make(), sim.SimConfig(workers=4, steps=120, stragglers=1, eval_every_s=0.5))
    assert r.updates == 480 and r.accuracy[-1][1] >= 0.95
    assert r.staleness["count"] == 480 and r.staleness["max"] >= 3
    times = [t for t, _ in r.accuracy]
    assert times == sorted(times) and len(times) >= 3 and r.virtual_s > 0


def test_failure_at_step_k_loses_the_update_and_redoes_the_step():
    cfg = sim.SimConfig(workers=3, steps=10, failures={1: 4}, restart_s=1.0, record=True)
    r, params = _run(af.train.StalenessScaledSGD(0.5), cfg)
    assert r.failures == 1 and r.updates == 30
    rows = replay.order(r.log)
    assert [k for t, k, *_ in rows if t == 1] == list(range(10))  # step 4 applied once
    # the restarted worker is a new incarnation in the record, from the step it redid
    assert [(k, inc) for t, k, _, _, inc in rows if t == 1] == \
        [(k, 1 if k < 4 else 2) for k in range(10)]
    assert {inc for t, *_, inc in rows if t != 1} == {1}
    # the log across the restart replays bit for bit
    d = digits.load()
    with af.Graph().as_default():
        m = sim.SplitModel(af.train.StalenessScaledSGD(0.5), d.train_x, d.train_y, d.test_x,
                           d.test_y, (64, 64, 10))
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            assert replay.replay(r.log, lambda t, k: m.read(s, t, k),
                                 lambda t, k, h: m.apply(s, t, k, h)) == 30
            again = s.run(m.vars)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(params, again, strict=True))
    # the others finished during the 1 s restart: worker 1 redid step 4 from a fresh read
    # taken after every one of their updates
    redo_read = next(read for t, k, read, *_ in rows if (t, k) == (1, 4))
    assert all(applied <= redo_read for t, _, _, applied, _ in rows if t != 1)
    assert r.virtual_s >= 1.0
    r0, _ = _run(af.train.StalenessScaledSGD(0.5), sim.SimConfig(workers=3, steps=10))
    assert r.virtual_s > r0.virtual_s


def test_seeded_runs_repeat_and_replay_bit_for_bit():
    cfg = sim.SimConfig(workers=5, steps=8, record=True, seed=3)
    r1, p1 = _run(af.train.DCASGDOptimizer(0.5), cfg)
    r2, p2 = _run(af.train.DCASGDOptimizer(0.5), cfg)
    assert replay.order(r1.log) == replay.order(r2.log)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(p1, p2, strict=True))
    d = digits.load()
    g = af.Graph()
    with g.as_default():
        m = sim.SplitModel(af.train.DCASGDOptimizer(0.5), d.train_x, d.train_y, d.test_x,
                           d.test_y, (64, 64, 10))
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            replay.replay(r1.log, lambda t, k: m.read(s, t, k),
                          lambda t, k, h: m.apply(s, t, k, h))
            p3 = s.run(m.vars)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(p1, p3, strict=True))
    r4, p4 = _run(af.train.DCASGDOptimizer(0.5), sim.SimConfig(workers=5, steps=8, seed=4))
    assert any(a.tobytes() != b.tobytes() for a, b in zip(p1, p4, strict=True))


def test_cores_shared_with_background_load_stretch_virtual_time():
    """Processor sharing: 2 workers, each step 10 ms of CPU on 1 core shared with 1 other
    runnable process: alone a step takes 20 ms, two at once 30 ms each (1/3 of the core)."""
    import trio
    import trio.testing

    from actorflow.sim.simulator import _SharedCores

    ends: list[float] = []

    async def main() -> None:
        cores = _SharedCores(1, 1.0)

        async def phase(start: float) -> None:
            await trio.sleep(start)
            await cores.run(0.010)
            ends.append(trio.current_time())

        async with trio.open_nursery() as n:
            n.start_soon(phase, 0.0)
            n.start_soon(phase, 0.0)
            n.start_soon(phase, 1.0)  # alone
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert ends == pytest.approx([0.030, 0.030, 1.020])
    r, _ = _run(af.train.GradientDescentOptimizer(0.1), sim.SimConfig(
        workers=2, steps=4, compute_s=0.01, compute_sigma=0.0, network_s=0.0, cores=1,
        background_load=1.0, outside_cpu_s=0.01, ps_apply_s=0.0), sizes=(64, 10))
    # each step: 10 ms outside the window, 10 ms in it, the two workers always together
    assert r.virtual_s == pytest.approx(4 * 2 * 0.030, rel=1e-6)
    # the PS's service outside the window: one step's at a time
    r, _ = _run(af.train.GradientDescentOptimizer(0.1), sim.SimConfig(
        workers=2, steps=3, compute_s=0.0, compute_sigma=0.0, network_s=0.0, ps_apply_s=0.0,
        ps_read_s=0.01), sizes=(64, 10))
    assert r.virtual_s == pytest.approx(2 * 3 * 0.01, rel=1e-6)


def test_cores_cap_cpu_bound_workers_at_min_n_c_over_c():
    """The core model: N workers whose steps are c seconds of CPU on C cores make
    min(N, C) / c updates per virtual second (processor sharing or a FIFO of cores alike);
    with C >= N (or no core limit, C = 0) the cores change nothing."""
    c, steps = 0.010, 6
    d = digits.load()
    with af.Graph().as_default():
        m = sim.SplitModel(af.train.GradientDescentOptimizer(0.1), d.train_x, d.train_y,
                           d.test_x, d.test_y, (64, 10))
        with af.Session() as s:
            for background in (0.0, -1.0):  # shared, FIFO
                for cores, workers in [(2, 4), (1, 3), (2, 5), (4, 4), (8, 2), (0, 3)]:
                    s.run(af.global_variables_initializer())
                    r = sim.simulate(m, s, sim.SimConfig(
                        workers=workers, steps=steps, compute_s=c, compute_sigma=0.0,
                        network_s=0.0, ps_apply_s=0.0, cores=cores,
                        background_load=background))
                    n = min(workers, cores) if cores else workers
                    assert r.updates == workers * steps
                    assert r.updates_per_virtual_s == pytest.approx(n / c, rel=1e-6), \
                        (cores, workers, background)


def test_step_tails_take_cores_and_the_ps_but_not_the_steps_path():
    """A step's CPU after its update runs beside the next step: free when a core is idle,
    a cost in throughput when the cores (or, for the PS's part, the PS) are saturated; the
    PS's service beside the worker's CPU shortens the step by what overlaps."""
    def rate(**kw):
        cfg = dict(workers=1, steps=8, compute_s=0.010, compute_sigma=0.0, network_s=0.0,
                   ps_apply_s=0.0, background_load=0.0)
        cfg.update(kw)
        r, _ = _run(af.train.GradientDescentOptimizer(0.1), sim.SimConfig(**cfg),
                    sizes=(64, 10))
        return r.updates / r.virtual_s, r
    # two cores: 10 ms a step, the tails beside the steps (the last one ends the run)
    assert rate(cores=2, tail_cpu_s=0.005)[1].virtual_s == pytest.approx(8 * 0.010 + 0.005)
    # one core: each update costs 15 ms of it
    assert rate(cores=1, tail_cpu_s=0.005)[1].virtual_s == pytest.approx(8 * 0.015)
    # the PS's tail: 4 workers, no core limit, the PS busy 2 + 3 ms per update from the
    # first gradient on (10 ms): 200 updates/s
    ps, r = rate(workers=4, steps=10, cores=0, ps_apply_s=0.002, ps_tail_s=0.003)
    assert r.virtual_s == pytest.approx(0.010 + 40 * 0.005, rel=1e-3)
    free = rate(workers=4, steps=10, cores=0, ps_apply_s=0.002)[0]
    assert free > 1.4 * ps
    # reads that wait their turn at the PS (behind the updates it is serving) cost rate
    assert rate(workers=4, steps=10, cores=0, ps_apply_s=0.002, read_at_ps=True)[0] < \
        0.9 * free
    # the PS's service beside the worker's compute: hidden behind it, half of it, none
    for par, step in ((1.0, 0.010), (0.5, 0.012), (0.0, 0.014)):
        r = rate(cores=0, ps_apply_s=0.004, ps_parallel=par)[1]
        assert r.virtual_s == pytest.approx(8 * step), par


def test_staleness_grows_with_workers():
    means = []
    for w in (2, 16):
        r, _ = _run(af.train.StalenessScaledSGD(0.1), sim.SimConfig(workers=w, steps=4),
                    sizes=(64, 10))
        means.append(r.staleness["mean"])
    assert means[0] < 2 < means[1]
    assert np.isfinite(means).all()


def test_train_command_compares_rules_in_simulation(capsys):
    from models.cli import main

    assert main(["train", "mlp", "--rule", "async,stale-lr", "--simulate", "4", "--steps",
                 "100", "--learning-rate", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["rule", "accuracy"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert set(rows) == {"async", "stale-lr"}
    assert float(rows["stale-lr"][1].rstrip("%")) >= 95.0
    assert rows["async"][2] == rows["stale-lr"][2]  # the same virtual schedule for both
    assert main(["train", "mlp", "--rule", "nope", "--simulate", "2"]) == 2
    assert "unknown rule 'nope'" in capsys.readouterr().err


def _lead_of(rows, workers):
    """The most steps any worker's applied step was ahead of another's applied count."""
    done, lead = [0] * workers, 0
    for task, clock, *_ in rows:
        assert clock == done[task]
        lead = max(lead, max(clock - done[j] for j in range(workers) if j != task))
        done[task] += 1
    return lead


def test_ssp_trains_digits_in_simulation_within_its_bound():
    from models import rules

    r = rules.simulate_rule("ssp", 4, 200, stragglers=1, learning_rate=0.3, record=True)
    assert r.final_accuracy >= 0.95 and r.updates == 800
    rows = replay.order(r.extra["log"])
    # the straggler (4x slower) holds the others back: the bound is reached, never exceeded
    assert _lead_of(rows, 4) == rules.SSP_BOUND
    free = rules.simulate_rule("async", 4, 30, stragglers=1, learning_rate=0.3, record=True)
    assert _lead_of(replay.order(free.extra["log"]), 4) > rules.SSP_BOUND + 5


def test_easgd_trains_digits_in_simulation():
    from models import rules

    r = rules.simulate_rule("easgd", 4, 300, learning_rate=0.5)
    assert r.final_accuracy >= 0.95  # the centre, moved only by the elastic pulls
    assert r.updates == 1200 and r.staleness["count"] == 0


def test_sync_and_backup_workers_in_simulation():
    """k = n waits for the straggler every step; k = n - 1 drops its gradient and goes on:
    both train to >= 95% with staleness 0, backup in less virtual time."""
    from models import rules

    sync = rules.simulate_rule("sync", 4, 200, stragglers=1, learning_rate=1.0)
    backup = rules.simulate_rule("backup", 4, 200, stragglers=1, learning_rate=1.0)
    for r in (sync, backup):
        assert r.final_accuracy >= 0.95 and r.updates == 200
        assert r.staleness["count"] == 200 and r.staleness["max"] == 0
    assert sync.dropped == 0 and sync.extra["worker_steps"] == 800
    assert backup.dropped > 0 and backup.seconds < 0.6 * sync.seconds


def test_compare_writes_a_table_and_a_png(tmp_path, capsys):
    from models.cli import main

    rules_ = ["async", "sync", "backup", "ssp", "dcasgd", "easgd", "stale-lr"]
    png = tmp_path / "cmp.png"
    assert main(["train", "mlp", "--compare", ",".join(rules_), "--simulate", "2",
                 "--steps", "8", "--plot", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["rule", "accuracy"]
    rows = {ln.split()[0]: ln.split() for ln in out[1:-1]}
    assert list(rows) == rules_
    for r in rows.values():
        assert 0.0 <= float(r[1].rstrip("%")) <= 100.0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert out[-1] == f"plot: {png}"


def test_rule_writes_staleness_summaries(tmp_path):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from models.cli import main

    assert main(["train", "mlp", "--rule", "stale-lr", "--simulate", "3", "--steps", "30",
                 "--logdir", str(tmp_path)]) == 0
    acc = ea_mod.EventAccumulator(str(tmp_path / "stale-lr"),
                                  size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    for v in ("W0", "b0", "W1", "b1"):
        assert f"staleness/{v}/mean" in tags["scalars"]
        assert f"staleness/{v}" in tags["histograms"]
    hist = acc.Histograms("staleness/W0")[-1]
    assert hist.step == 90 and hist.histogram_value.num == 90  # every update's staleness
    mean = acc.Scalars("staleness/W0/mean")[-1].value
    assert hist.histogram_value.sum / 90 == pytest.approx(mean, rel=1e-5) and mean > 0.5
    assert hist.histogram_value.max >= 2
    assert "eval/accuracy" in tags["scalars"]
