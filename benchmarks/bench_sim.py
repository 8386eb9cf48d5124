"""Simulation speed of `af.sim` (issue 17): virtual worker-steps per second of real time.

The digits MLP (64-64-10, batch 32) trained by staleness-scaled SGD, N virtual workers on
trio's MockClock against the in-process PS, each worker step a real read/gradient step and a
real update through the optimizer's path (what bounds the speed: the simulator itself only
schedules). Reports, per N: real seconds, worker-steps per real second, virtual seconds
simulated, updates per virtual second and the staleness the PS counted.

    python benchmarks/bench_sim.py [--workers 100 1000] [--steps 10 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    import actorflow as af
    from models import digits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 2])
    args = ap.parse_args(argv)
    d = digits.load()
    print("workers  steps/worker  real s  worker-steps/real s  virtual s  updates/virtual s  "
          "staleness mean/max  accuracy")
    for w, k in zip(args.workers, args.steps, strict=True):
        with af.Graph().as_default():
            m = af.sim.SplitModel(af.train.StalenessScaledSGD(0.5), d.train_x, d.train_y,
                                  d.test_x, d.test_y, (64, 64, 10))
            with af.Session() as s:
                s.run(af.global_variables_initializer())
                r = af.sim.simulate(m, s, af.sim.SimConfig(workers=w, steps=k))
        print(f"{w:7d}  {k:12d}  {r.real_s:6.2f}  {r.worker_steps_per_real_s:19.0f}  "
              f"{r.virtual_s:9.3f}  {r.updates_per_virtual_s:17.0f}  "
              f"{r.staleness['mean']:8.1f}/{r.staleness['max']:<8d}  {r.accuracy[-1][1]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
