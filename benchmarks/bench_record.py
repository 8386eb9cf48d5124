"""The cost of staleness tracking and update recording (issue 17) on the null-model step.

One PS task and one worker task (daemons of `af.LocalCluster`), a client session on the
worker. The scalar null-model step of bench_distributed (read the PS scalar, ``x * 0 + 1`` on
the worker, assign_add on the PS) in three variants, timed in interleaved rounds:

- plain: the null step;
- staleness: the value read with its version, the update's staleness computed on the PS;
- recording: the same with the variable's update log on (one row appended per update).

The figure is each variant's median step time and its cost against plain; the target for
recording is <= 5% (against the staleness variant: what turning the log on adds, and against
plain: staleness and log together).

    python benchmarks/bench_record.py [--rounds 10] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

TF_SCALAR_MS_1 = 1.20  # TensorFlow 2.21's null scalar step at 1 worker (bench_distributed)


def main(argv: list[str] | None = None) -> int:
    import actorflow as af
    from actorflow.cluster import LocalCluster

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)
    with LocalCluster(ps=1, workers=1) as cluster:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                plain_v = af.Variable(np.float32(0), name="plain")
                rec_v = af.Variable(np.float32(0), name="stale")
            with af.device("/job:worker/task:0"):
                d = plain_v.value() * 0.0 + 1.0
            plain = plain_v.assign_add(d).op
            value, ver = af.train.read_with_version(rec_v)
            with af.device("/job:worker/task:0"):
                d2 = value * 0.0 + 1.0
            s = af.train.staleness(rec_v, ver, step=0, task=0)
            with af.control_dependencies([s.op]):
                stale = rec_v.assign_add(d2).op
            log_on = af.train.replay.update_log(rec_v, enable=True)
            log_off = af.train.replay.update_log(rec_v, enable=False)
            init = af.global_variables_initializer()
        with af.Session(cluster.target("worker", 0), graph=g) as sess:
            sess.run(init)
            runs = {"plain": sess.make_callable(plain), "staleness": sess.make_callable(stale)}
            times: dict[str, list[float]] = {"plain": [], "staleness": [], "recording": []}
            for _ in range(args.rounds):
                for name in ("plain", "staleness", "recording"):
                    sess.run(log_on if name == "recording" else log_off)
                    run = runs["plain" if name == "plain" else "staleness"]
                    for _ in range(20):
                        run()
                    clock = time.perf_counter
                    for _ in range(args.steps):
                        t0 = clock()
                        run()
                        times[name].append(clock() - t0)
            sess.run(log_on)
            rows = len(sess.run(af.train.replay.update_log(rec_v)))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"null scalar step, 1 PS + 1 worker task, {args.rounds} rounds x {args.steps} steps "
          f"(median ms; TensorFlow 2.21's plain step: {TF_SCALAR_MS_1:.2f} ms)")
    for k in ("plain", "staleness", "recording"):
        print(f"  {k:10s} {med[k]:.3f} ms  ({(med[k] / med['plain'] - 1) * 100:+.1f}% vs plain)")
    print(f"  recording vs staleness: {(med['recording'] / med['staleness'] - 1) * 100:+.1f}%"
          f"  ({rows} rows recorded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
