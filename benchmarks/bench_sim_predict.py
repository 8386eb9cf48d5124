"""The simulator's prediction against real runs (issue 17): asynchronous SGD on the digits MLP
with 1, 2 and 4 worker processes on a local cluster (`train_mlp_async`, 1 PS task), and
`af.sim`'s predicted updates per second for the same worker counts, calibrated from the
1-worker run alone: its step time T1 is split into worker compute (1 - `--ps-share`) and PS
service (`--ps-share`), and compute and PS service share the machine's CPUs (`--cores`).

    python benchmarks/bench_sim_predict.py [--steps 300] [--ps-share 0.3]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    import actorflow as af
    from models import digits
    from models.train_async import train_mlp_async

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--ps-share", type=float, default=0.3)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    real = {}
    for w in args.workers:
        r = train_mlp_async(ps=1, workers=w, steps=args.steps, optimizer="sgd",
                            progress=False, out=io.StringIO())
        real[w] = r["steps_per_sec"]
    t1 = 1.0 / real[args.workers[0]]
    d = digits.load()
    cores = args.cores
    print(f"1-worker step {t1 * 1e3:.2f} ms; PS share {args.ps_share:.0%}; {cores} cores")
    print("workers  real updates/s  predicted updates/s  error")
    for w in args.workers:
        with af.Graph().as_default():
            m = af.sim.SplitModel(af.train.GradientDescentOptimizer(0.2), d.train_x,
                                  d.train_y, d.test_x, d.test_y, (64, 64, 10))
            with af.Session() as s:
                s.run(af.global_variables_initializer())
                rep = af.sim.simulate(m, s, af.sim.SimConfig(
                    workers=w, steps=min(args.steps, 100), compute_s=t1 * (1 - args.ps_share),
                    compute_sigma=0.1, network_s=0.0, ps_apply_s=t1 * args.ps_share,
                    cores=cores))
        pred = rep.updates_per_virtual_s
        print(f"{w:7d}  {real[w]:14.0f}  {pred:19.0f}  {(pred / real[w] - 1) * 100:+5.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
