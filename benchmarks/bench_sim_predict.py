"""The simulator's prediction against real runs (issue 17): asynchronous SGD on the digits MLP
with 1, 2 and 4 worker daemons on one local cluster (1 PS task; `models.rules_cluster`, the
"async" rule: plain SGD whose staleness the PS counts, next to each update's apply), and
`af.sim`'s predicted updates per second and staleness (mean and p90) for the same counts.

Staleness of an update = the updates others applied between its read and its apply, so its
mean is (the others' update rate) x (the read-to-apply window). The window is measured, not
guessed: every `--trace-every`-th step of each replica is traced (SOFTWARE_TRACE: per-node
start times, no cost that shows in the step) and its window taken on the PS, from the read of
the first variable to that variable's staleness count. The table prints it beside the window
the staleness implies, for every worker count.

Nothing is set by hand: the simulator is calibrated from this machine and the 1-worker run
alone. The CPUs it shares are the ones this process may run on (`os.sched_getaffinity`); a
step's CPU time is measured per process while the 1-worker run steps (/proc/PID/stat of the
PS daemon and the worker daemon, `time.process_time` of this driver, read when the replicas
start stepping and when they end: building the graphs and sessions is left out),
overlapping CPU scaled to the step's wall time. The worker counts run in turn, `--rounds`
times (each time in fresh name scopes), so the load other work puts on the machine, which
drifts over minutes, weighs on every count alike, the calibrating one included.

That other work is inferred from the same run: the 1-worker step takes x wall seconds per
CPU second its processes use; if x > 1, all of that is taken as waiting for a CPU shared
fairly with E other runnable processes, where a lone phase gets 1 / x = cores / (1 + E) of a
CPU (`background_load` E = cores x - 1). The simulator shares its cores the same way
(processor sharing among the phases running and E others), so more replicas slow each other
as they do on a loaded machine. (A probe of one spinning process per CPU was tried for E: it
read 17-23 where the step implies 6-8, the CPUs being shared by more than processes.) The
simulated step (CPU in CPU seconds, stretched by the sharing):

- outside the window: the driver's CPU (`think_s`: one worker's at a time in
  `sys.getswitchinterval()` slices, as one Python process's threads share the GIL), the PS's
  and worker daemon's CPU that does not fit in the window (below), and the rest of the step
  (`client_wait_s`: messages in flight; on no core);
- the window (measured at 1 worker): the worker daemon's CPU (`compute_s`), the PS's
  (`ps_apply_s`: the PS is one process, so its work for all steps is served one at a time)
  and the rest of the window (`network_s`: on no core). When the window is shorter than that
  CPU stretched by x, both are scaled to fit and the rest goes outside the window: the
  worker's to `outside_cpu_s`, the PS's to `ps_read_s` (served one at a time with the
  updates, before the read: the step's read and, cyclically, the previous step's reply).

The spread of the 1-worker run's step times (sd of their logs) is the spread of the simulated
times. The real staleness mean's 95% confidence interval is from its histogram (the PS's
counters; updates taken as independent).

    python benchmarks/bench_sim_predict.py [--steps 300] [--workers 1 2 4] [--trace-every 4]
        [--rounds 2] [--sim-steps 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_s(pid: int) -> float:
    """utime + stime of process `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hist_stats(hist: list[int]) -> tuple[float, float, float]:
    """(mean, 95% CI half-width, p90) of a staleness histogram (bucket i: staleness i)."""
    import numpy as np

    h = np.asarray(hist, dtype=float)
    n = h.sum()
    if n == 0:
        return 0.0, 0.0, 0.0
    s = np.arange(len(h))
    mean = float((h * s).sum() / n)
    sd = float(np.sqrt((h * (s - mean) ** 2).sum() / max(1.0, n - 1)))
    p90 = int(np.searchsorted(np.cumsum(h), 0.9 * n))
    return mean, 1.96 * sd / float(np.sqrt(n)), float(p90)


def calibrate(step: float, window: float, ps: float, worker: float, driver: float,
              cores: int) -> dict[str, float]:
    """The simulator's per-step times and background load from the 1-worker run (see the
    module docstring)."""
    cpu = ps + worker + driver
    f = min(1.0, step / cpu) if cpu else 1.0  # CPU overlapping within the step: scale it
    ps, worker, driver = f * ps, f * worker, f * driver
    x = step / (f * cpu) if cpu else 1.0  # wall seconds per CPU second of the step
    background = cores * x - 1.0 if x > 1.0 else 0.0
    inside = ps + worker
    g = min(1.0, window / (inside * x)) if inside else 1.0
    return {"compute_s": g * worker, "ps_apply_s": g * ps, "ps_read_s": (1.0 - g) * ps,
            "think_s": driver, "outside_cpu_s": (1.0 - g) * worker,
            "network_s": max(0.0, window - g * inside * x),
            "client_wait_s": max(0.0, step - window - (driver + (1.0 - g) * inside) * x),
            "background_load": background}


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    import actorflow as af
    from actorflow.cluster import LocalCluster
    from models import digits, rules
    from models.rules_cluster import train_rule

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="steps per worker (real runs)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--learning-rate", type=float, default=0.2)
    ap.add_argument("--trace-every", type=int, default=4,
                    help="trace every k-th step of each replica to measure its window")
    ap.add_argument("--rounds", type=int, default=2,
                    help="run the worker counts in turn this many times (load drift)")
    ap.add_argument("--sim-steps", type=int, default=200, help="steps per simulated worker")
    args = ap.parse_args(argv)
    if 1 not in args.workers:
        ap.error("--workers must include 1: the simulator is calibrated from that run")
    workers = [1] + [w for w in args.workers if w != 1]
    cores = len(os.sched_getaffinity(0))
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    acc: dict[int, dict] = {w: {"updates": 0, "seconds": 0.0, "hist": np.zeros(64),
                                "windows": [], "step_times": [], "cpu": np.zeros(3)}
                            for w in workers}
    with LocalCluster(ps=1, workers=max(workers)) as cluster:
        ps_pid = cluster.pid("ps", 0)
        # in rounds, each worker count in turn: the load other work puts on the machine
        # drifts over minutes, and every count (the calibration's 1 included) sees it alike
        per_round = -(-args.steps // args.rounds)
        for i in range(args.rounds):
            for w in workers:
                pids = [cluster.pid("worker", t) for t in range(w)]

                def cpu(pids: list[int] = pids) -> tuple[float, float, float]:
                    return (_cpu_s(ps_pid), sum(_cpu_s(p) for p in pids),
                            time.process_time())

                r = train_rule(cluster, "async", w, per_round,
                               learning_rate=args.learning_rate, eval_every=3600.0,
                               scope=f"predict_w{w}_r{i}", trace_every=args.trace_every,
                               meter=cpu)
                c0, c1 = r.extra["meter"]
                a = acc[w]
                a["updates"] += r.updates
                a["seconds"] += r.seconds
                h = r.staleness["hist"]
                a["hist"][:len(h)] += h
                a["windows"] += [b for _, b in r.extra["traced"] if b is not None]
                a["step_times"] += r.extra["step_times"]
                a["cpu"] += np.subtract(c1, c0)
    load1 = os.getloadavg()
    t_real = time.perf_counter() - t_start
    real = {w: {"rate": a["updates"] / a["seconds"], "hist": list(a["hist"]),
                "cpu": a["cpu"] / a["updates"],
                "window": float(np.mean(a["windows"])) if a["windows"] else float("nan")}
            for w, a in acc.items()}
    one = acc[1]
    n = one["updates"]
    calib = {"step": one["seconds"] / n, "window": real[1]["window"],
             "ps": one["cpu"][0] / n, "worker": one["cpu"][1] / n, "driver": one["cpu"][2] / n,
             "sigma": float(np.log(np.asarray(one["step_times"])).std())}
    sim = calibrate(calib["step"], calib["window"], calib["ps"], calib["worker"],
                    calib["driver"], cores)
    print(f"calibration (1 worker): step {calib['step'] * 1e3:.2f} ms, read-to-update window "
          f"{calib['window'] * 1e3:.2f} ms (traced); CPU per step: PS {calib['ps'] * 1e3:.2f}"
          f" ms, worker daemon {calib['worker'] * 1e3:.2f} ms, driver "
          f"{calib['driver'] * 1e3:.2f} ms; {cores} cores (sched_getaffinity); step time "
          f"spread (log sd) {calib['sigma']:.2f}")
    print("simulated step: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in sim.items()
                                         if k != "background_load")
          + f"; background load {sim['background_load']:.2f} runnable processes")
    d = digits.load()
    print("workers | real upd/s | pred | err | real staleness mean (95% CI) | pred | err | "
          "real p90 | pred p90 | window real/implied/pred ms | CPU/update PS, workers, driver")
    worst = 0.0
    t_sim = time.perf_counter()
    for w in workers:
        with af.Graph().as_default():
            m = af.sim.SplitModel(rules.CountedSGD(args.learning_rate), d.train_x,
                                  d.train_y, d.test_x, d.test_y, rules.SIZES)
            with af.Session() as s:
                s.run(af.global_variables_initializer())
                rep = af.sim.simulate(m, s, af.sim.SimConfig(
                    workers=w, steps=args.sim_steps, compute_sigma=calib["sigma"],
                    cores=cores, one_client=True, client_slice_s=sys.getswitchinterval(),
                    **sim))
        rr = real[w]
        mean, ci, p90 = hist_stats(rr["hist"])
        p_rate = rep.updates_per_virtual_s
        p_mean, _, p_p90 = hist_stats(rep.staleness["hist"])
        e_rate = p_rate / rr["rate"] - 1
        if mean:
            e_stale = p_mean / mean - 1
        else:
            e_stale = 0.0 if p_mean < 0.05 else float("inf")
        worst = max(worst, abs(e_rate), abs(e_stale))
        others = (w - 1) / w
        implied = mean / (others * rr["rate"]) if w > 1 else 0.0
        p_window = p_mean / (others * p_rate) if w > 1 else float("nan")
        print(f"{w} | {rr['rate']:.1f} | {p_rate:.1f} | {e_rate * 100:+.0f}% | {mean:.3f} "
              f"(+-{ci:.3f}) | {p_mean:.3f} | {e_stale * 100:+.0f}% | {p90:.0f} | {p_p90:.0f} | "
              f"{rr['window'] * 1e3:.1f}/{implied * 1e3:.1f}/{p_window * 1e3:.1f} | "
              + "/".join(f"{c * 1e3:.1f}" for c in rr["cpu"]), flush=True)
    print(f"worst error {worst * 100:.0f}% ({'within' if worst <= 0.25 else 'NOT within'} "
          f"25%); load average {load0[0]:.1f} -> {load1[0]:.1f} over the real runs; "
          f"real runs {t_real:.0f} s, simulation {time.perf_counter() - t_sim:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
