"""The simulator's prediction against real runs (issue 17): asynchronous SGD on the digits MLP
with 1, 2 and 4 worker daemons on one local cluster (1 PS task; `models.rules_cluster`, the
"async" rule: plain SGD whose staleness the PS counts), and `af.sim`'s predicted updates per
second and mean staleness for the same worker counts.

Nothing is set by hand: the simulator is calibrated from this machine and the 1-worker run
alone. The CPUs it shares are the ones this process may run on (`os.sched_getaffinity`); a
step's CPU time is measured per process during the 1-worker run (/proc/PID/stat of the PS
daemon and the worker daemon, `time.process_time` of this driver): the PS's share becomes the
PS's service time of an update (FIFO, one at a time, on one of the cores), the worker
daemon's the compute between the step's read and its update (on a core), the driver's the
client's turnaround outside that window (`think_s`, on a core, one worker's at a time: one
Python process drives them all); CPU that overlaps within the step is scaled to its wall time,
and wall time no CPU accounts for (other work holding the CPUs) is split like the CPU: the
window's share is network delay, the rest waiting outside the window on no core. The spread
of the 1-worker run's step times (sd of their logs) is the spread of the simulated times.

    python benchmarks/bench_sim_predict.py [--steps 300] [--workers 1 2 4]
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
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    real: dict[int, tuple[float, float]] = {}
    calib: dict[str, float] = {}
    with LocalCluster(ps=1, workers=max(args.workers)) as cluster:
        ps_pid = cluster.pid("ps", 0)
        for w in args.workers:
            pids = [cluster.pid("worker", t) for t in range(w)]
            c0 = (_cpu_s(ps_pid), sum(_cpu_s(p) for p in pids), time.process_time())
            r = train_rule(cluster, "async", w, args.steps, learning_rate=args.learning_rate,
                           eval_every=3600.0, scope=f"predict_w{w}")
            c1 = (_cpu_s(ps_pid), sum(_cpu_s(p) for p in pids), time.process_time())
            real[w] = (r.updates / r.seconds, r.staleness["mean"])
            if not calib:
                n = r.updates
                logs = np.log(np.asarray(r.extra["step_times"]))
                calib = {"step": r.seconds / n, "ps": (c1[0] - c0[0]) / n,
                         "worker": (c1[1] - c0[1]) / n, "driver": (c1[2] - c0[2]) / n,
                         "sigma": float(logs.std())}
    step = calib["step"]
    cpu = calib["ps"] + calib["worker"] + calib["driver"]
    # the processes' CPU overlaps within a step (threads, pipelining): scale it to the step
    f = min(1.0, step / cpu)
    ps_s, worker_s, driver_s = f * calib["ps"], f * calib["worker"], f * calib["driver"]
    # wall time no CPU accounts for (other work holding the CPUs, messages in flight) slows
    # every phase alike: the window's share of it is network delay, the rest client waiting
    waiting = max(0.0, step - cpu)
    net_s, wait_s = waiting * calib["worker"] / cpu, waiting * (1 - calib["worker"] / cpu)
    print(f"calibration (1 worker): step {step * 1e3:.2f} ms; CPU per step: PS "
          f"{calib['ps'] * 1e3:.2f} ms, worker daemon {calib['worker'] * 1e3:.2f} ms, driver "
          f"{calib['driver'] * 1e3:.2f} ms (x{f:.2f} overlap); {waiting * 1e3:.2f} ms waiting; "
          f"{cores} cores (sched_getaffinity); step time spread (log sd) "
          f"{calib['sigma']:.2f}")
    d = digits.load()
    print("workers  real updates/s  predicted  error   real staleness  predicted  error")
    worst = 0.0
    for w in args.workers:
        with af.Graph().as_default():
            m = af.sim.SplitModel(rules.CountedSGD(args.learning_rate), d.train_x,
                                  d.train_y, d.test_x, d.test_y, rules.SIZES)
            with af.Session() as s:
                s.run(af.global_variables_initializer())
                rep = af.sim.simulate(m, s, af.sim.SimConfig(
                    workers=w, steps=min(args.steps, 150), compute_s=worker_s,
                    compute_sigma=calib["sigma"], network_s=net_s, ps_apply_s=ps_s, cores=cores,
                    think_s=driver_s, one_client=True, client_wait_s=wait_s,
                    client_slice_s=sys.getswitchinterval()))
        rate, stale = real[w]
        p_rate, p_stale = rep.updates_per_virtual_s, rep.staleness["mean"]
        e_rate = p_rate / rate - 1
        e_stale = (p_stale / stale - 1) if stale else (0.0 if p_stale < 0.05 else float("inf"))
        worst = max(worst, abs(e_rate), abs(e_stale))
        print(f"{w:7d}  {rate:14.0f}  {p_rate:9.0f}  {e_rate * 100:+5.0f}%  {stale:14.2f}  "
              f"{p_stale:9.2f}  {e_stale * 100:+5.0f}%", flush=True)
    print(f"worst error {worst * 100:.0f}% ({'within' if worst <= 0.25 else 'NOT within'} 25%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
