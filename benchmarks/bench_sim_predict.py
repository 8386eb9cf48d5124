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
start stepping and when they end: building the graphs and sessions is left out), and all of
it is simulated: the cores cap the replicas at cores / (CPU per update) however many there
are. The worker counts run in turn, `--rounds` times (each time in fresh name scopes), so
the load other work puts on the machine, which drifts over minutes, weighs on every count
alike, the calibrating one included.

That other work is inferred from the same run: the 1-worker step takes x wall seconds per
CPU second its processes use; if x > 1 (a loaded machine), all of that is taken as waiting
for a CPU shared fairly with E other runnable processes, where a lone phase gets 1 / x =
cores / (1 + E) of a CPU (`background_load` E = cores x - 1). The simulator shares its cores
the same way (processor sharing among the phases running and E others), so more replicas
slow each other as they do on a loaded machine. (A probe of one spinning process per CPU was
tried for E: it read 17-23 where the step implies 6-8, the CPUs being shared by more than
processes. The daemons' run-queue waits (/proc/PID/schedstat) and the CPU other work uses
(/proc/stat) are printed for the record: E taken from them predicted 2 workers' staleness
-22% where x gave -15%.) If x < 1 (a quiet machine: session 7's quiet run spent 8.7 ms of
CPU per update, its 1-worker step took 6.0 ms), the processes overlap within the step: E = 0
and part of their CPU is off the step's path (below). The simulated step (CPU in CPU
seconds, stretched by the sharing):

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
- off the step's path: a fraction of the daemons' CPU outside the window runs beside the
  next step (`tail_cpu_s`, and `ps_tail_s` one at a time with the PS's other service: the
  replies and the step's teardown while the driver goes on), on the cores all the same.

The read waits its turn at the PS (`read_at_ps`: the PS serves it after what it is serving,
however little of its CPU the read itself takes), so a queue at the PS forms before the read
as well as before the update. Two things are fitted by simulating the 1-worker run
(bisection, `fit`) until its step is the measured one: the off-path fraction (when the CPU on
the path makes the step too long: the overlap; if even all of the CPU outside the window is
not enough, part of the window's CPU goes off the path too) or the waiting outside the
window (`client_wait_s`, when it makes it too short).

The spread of the 1-worker run's step times (sd of their logs) is the spread of the simulated
times. The real staleness mean's 95% confidence interval is from its histogram (the PS's
counters; updates taken as independent).

Past this machine, the same calibration predicts `--beyond` worker counts (16 and 1,000) on
this machine's cores (with its background) and on `--beyond-cores` (64) idle ones: the steady
state, the updates after every worker's first (one driver process for all of them, as here).

    python benchmarks/bench_sim_predict.py [--steps 300] [--workers 1 2 4] [--trace-every 4]
        [--rounds 2] [--sim-steps 200] [--beyond 16 1000] [--beyond-cores 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_s(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sched_s(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable waiting for one) of process `pid`'s main thread
    (/proc/PID/schedstat; a daemon's work is on its main thread)."""
    run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(run) * 1e-9, int(wait) * 1e-9


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (/proc/stat: user, nice, system,
    irq, softirq)."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(f[i]) for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")


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


def sim_params(cal: dict[str, float], tail: float, wait: float,
               keep: float = 1.0) -> dict[str, float]:
    """`af.sim`'s per-step times from the calibration `cal` (see the module docstring): of
    the daemons' CPU outside the read-to-update window a fraction `tail` off the step's path,
    `wait` seconds of the step on no core outside the window, and a fraction `keep` of the
    CPU that fits the window in it (the rest goes outside it)."""
    ps, worker, x = cal["ps"], cal["worker"], cal["x"]
    inside = ps + worker
    g = keep * min(1.0, cal["window"] / (inside * x)) if inside else 1.0
    out_ps, out_worker = (1.0 - g) * ps, (1.0 - g) * worker
    return {"compute_s": g * worker, "ps_apply_s": g * ps,
            "network_s": max(0.0, keep * cal["window"] - g * inside * x),
            "ps_read_s": (1.0 - tail) * out_ps, "outside_cpu_s": (1.0 - tail) * out_worker,
            "ps_tail_s": tail * out_ps, "tail_cpu_s": tail * out_worker,
            "think_s": cal["driver"], "client_wait_s": wait,
            "background_load": cal["background"]}


def fit(cal: dict[str, float], step_of: Any,
        iters: int = 10) -> tuple[float, float, float, float]:
    """(keep, tail, wait, simulated step) such that the simulated 1-worker step
    `step_of(params)` equals the measured one. CPU beyond the step's wall time must overlap:
    first the daemons' CPU outside the window, off the step's path (`tail`, bisected in
    [0, 1]); if even all of it is not enough, the window's CPU overlaps too: the part that
    does (1 - `keep`, bisected) goes outside the window, off the path. Wall time beyond the
    path's CPU (stretched by the sharing) is waiting on no core: one worker's chain is
    sequential, so it adds as is."""
    step = cal["step"]

    def bisect(f: Any, up: bool) -> float:
        """The least v in [0, 1] with f(v) <= step (f falls with v), or with `up` (f rises
        with v) the greatest."""
        lo, hi = 0.0, 1.0
        for _ in range(iters):
            mid = (lo + hi) / 2
            if (f(mid) > step) != up:
                lo = mid
            else:
                hi = mid
        return lo if up else hi

    t0 = step_of(sim_params(cal, 0.0, 0.0))
    if t0 <= step:
        return 1.0, 0.0, step - t0, step_of(sim_params(cal, 0.0, step - t0))
    if step_of(sim_params(cal, 1.0, 0.0)) <= step:
        tail = bisect(lambda v: step_of(sim_params(cal, v, 0.0)), up=False)
        return 1.0, tail, 0.0, step_of(sim_params(cal, tail, 0.0))
    keep = bisect(lambda v: step_of(sim_params(cal, 1.0, 0.0, v)), up=True)
    return keep, 1.0, 0.0, step_of(sim_params(cal, 1.0, 0.0, keep))


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    import actorflow as af
    from actorflow.cluster import LocalCluster
    from actorflow.train import replay
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
    ap.add_argument("--warmup-steps", type=int, default=200,
                    help="untimed steps per worker, every daemon, before the real runs")
    ap.add_argument("--sim-steps", type=int, default=200, help="steps per simulated worker")
    ap.add_argument("--beyond", type=int, nargs="*", default=[16, 1000],
                    help="worker counts to predict past this machine")
    ap.add_argument("--beyond-cores", type=int, default=64,
                    help="the hypothetical bigger machine's cores")
    args = ap.parse_args(argv)
    if 1 not in args.workers:
        ap.error("--workers must include 1: the simulator is calibrated from that run")
    workers = [1] + [w for w in args.workers if w != 1]
    cores = len(os.sched_getaffinity(0))
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    acc: dict[int, dict] = {w: {"updates": 0, "seconds": 0.0, "hist": np.zeros(64),
                                "windows": [], "step_times": [], "cpu": np.zeros(8)}
                            for w in workers}
    with LocalCluster(ps=1, workers=max(workers)) as cluster:
        ps_pid = cluster.pid("ps", 0)
        # warm-up on every daemon: their kernels load compiled loops in the background on
        # first use (~0.7-1.7 s of CPU a process, once), which must not land in the
        # calibration (it doubled the worker's CPU per step there) or the measured rounds
        if args.warmup_steps:
            train_rule(cluster, "async", max(workers), args.warmup_steps,
                       learning_rate=args.learning_rate, eval_every=3600.0,
                       scope="predict_warmup")
        # in rounds, each worker count in turn: the load other work puts on the machine
        # drifts over minutes, and every count (the calibration's 1 included) sees it alike
        per_round = -(-args.steps // args.rounds)
        for i in range(args.rounds):
            for w in workers:
                pids = [cluster.pid("worker", t) for t in range(w)]

                def meter(pids: list[int] = pids) -> tuple[float, ...]:
                    ps_s, ws = _sched_s(ps_pid), [_sched_s(p) for p in pids]
                    return (_cpu_s(ps_pid), sum(_cpu_s(p) for p in pids),
                            time.process_time(), ps_s[0], ps_s[1], sum(r for r, _ in ws),
                            sum(q for _, q in ws), _machine_busy_s())

                r = train_rule(cluster, "async", w, per_round,
                               learning_rate=args.learning_rate, eval_every=3600.0,
                               scope=f"predict_w{w}_r{i}", trace_every=args.trace_every,
                               meter=meter)
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
                "cpu": a["cpu"][:3] / a["updates"],
                "window": float(np.mean(a["windows"])) if a["windows"] else float("nan")}
            for w, a in acc.items()}
    one = acc[1]
    n, c = one["updates"], one["cpu"]
    daemons = c[3] + c[5]
    x = (daemons + c[4] + c[6]) / daemons if daemons else 1.0
    others = max(0.0, (c[7] - c[:3].sum()) / one["seconds"])
    step, cpu = one["seconds"] / n, c[:3].sum() / n
    stretch = step / cpu  # wall seconds of the step per CPU second of its processes
    cal = {"step": step, "window": real[1]["window"], "ps": c[0] / n,
           "worker": c[1] / n, "driver": c[2] / n, "x": max(1.0, stretch),
           "background": cores * stretch - 1.0 if stretch > 1.0 else 0.0, "sched_x": x,
           "others": others,
           "sigma": float(np.log(np.asarray(one["step_times"])).std())}
    d = digits.load()
    t_sim = time.perf_counter()

    def simulate(w: int, steps: int, params: dict[str, float], record: bool = False,
                 cores_: int = cores) -> Any:
        with af.Graph().as_default():
            m = af.sim.SplitModel(rules.CountedSGD(args.learning_rate), d.train_x,
                                  d.train_y, d.test_x, d.test_y, rules.SIZES)
            with af.Session() as s:
                s.run(af.global_variables_initializer())
                return af.sim.simulate(m, s, af.sim.SimConfig(
                    workers=w, steps=steps, compute_sigma=cal["sigma"], cores=cores_,
                    one_client=True, client_slice_s=sys.getswitchinterval(), record=record,
                    read_at_ps=True, **params))

    keep, tail, wait, fitted = fit(cal, lambda prm: 1.0 / simulate(
        1, max(50, args.sim_steps // 2), prm).updates_per_virtual_s)
    params = sim_params(cal, tail, wait, keep)
    print(f"calibration (1 worker, {n} steps): step {cal['step'] * 1e3:.2f} ms, "
          f"read-to-update window {cal['window'] * 1e3:.2f} ms (traced); CPU per step: PS "
          f"{cal['ps'] * 1e3:.2f} ms, worker daemon {cal['worker'] * 1e3:.2f} ms, driver "
          f"{cal['driver'] * 1e3:.2f} ms (sum {cpu * 1e3:.2f}: {stretch:.2f} wall s per CPU s "
          f"-> background {cal['background']:.2f} runnable processes); {cores} cores "
          f"(sched_getaffinity); step time spread (log sd) {cal['sigma']:.2f}; for the "
          f"record: daemons runnable {x:.2f} s per CPU s (schedstat), other work on the "
          f"machine {others:.2f} cores (/proc/stat)")
    print(f"fitted to the 1-worker step: {tail * 100:.0f}% of the daemons' CPU outside the "
          f"window off the step's path, {(1 - keep) * 100:.0f}% of the window's too, "
          f"{wait * 1e3:.2f} ms waiting (simulated step "
          f"{fitted * 1e3:.2f} ms)" + ("; NOT fitted: the step overlaps more than all "
                                       "the daemons' CPU" if fitted > 1.02 * step else ""))
    print("calibration: " + json.dumps({k: round(v, 6) for k, v in cal.items()}))
    print("simulated step: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in params.items()
                                         if k != "background_load"))
    print("workers | real upd/s | pred | err | real staleness mean (95% CI) | pred | err | "
          "real p90 | pred p90 | window real/implied/pred ms | CPU/update PS, workers, driver")
    worst = 0.0
    for w in workers:
        rep = simulate(w, args.sim_steps, params)
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
        others_ = (w - 1) / w
        implied = mean / (others_ * rr["rate"]) if w > 1 else 0.0
        p_window = p_mean / (others_ * p_rate) if w > 1 else float("nan")
        print(f"{w} | {rr['rate']:.1f} | {p_rate:.1f} | {e_rate * 100:+.0f}% | {mean:.3f} "
              f"(+-{ci:.3f}) | {p_mean:.3f} | {e_stale * 100:+.0f}% | {p90:.0f} | {p_p90:.0f} | "
              f"{rr['window'] * 1e3:.1f}/{implied * 1e3:.1f}/{p_window * 1e3:.1f} | "
              + "/".join(f"{c * 1e3:.1f}" for c in rr["cpu"]), flush=True)
    print(f"worst error {worst * 100:.0f}% ({'within' if worst <= 0.25 else 'NOT within'} "
          f"25%); load average {load0[0]:.1f} -> {load1[0]:.1f} over the real runs; "
          f"real runs {t_real:.0f} s", flush=True)
    if args.beyond:
        print(f"beyond this machine (steady state: the updates after each worker's first; "
              f"{cores} cores with the background above, {args.beyond_cores} cores idle):")
        print("cores | workers | steps each | pred upd/s | pred staleness mean | p90 | "
              "real s to simulate")
        quiet = dict(params, background_load=0.0)
        for cores_, prm in ((cores, params), (args.beyond_cores, quiet)):
            for w in args.beyond:
                k = max(3, min(40, 3000 // w))
                t0 = time.perf_counter()
                rep = simulate(w, k, prm, record=True, cores_=cores_)
                times = rep.update_times[w:]
                rate = (len(times) - 1) / (times[-1] - times[0])
                st = np.array([a - r for _, _, r, a, _ in replay.order(rep.log)][w:])
                print(f"{cores_} | {w} | {k} | {rate:.1f} | {st.mean():.1f} | "
                      f"{np.percentile(st, 90):.0f} | {time.perf_counter() - t0:.1f}",
                      flush=True)
    print(f"simulation {time.perf_counter() - t_sim:.0f} s; whole run "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
