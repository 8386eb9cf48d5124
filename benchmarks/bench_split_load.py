"""Issue 11: one 1.3M-float32 add (the dense null model's assign_add, 5 MiB) timed whole on
the caller, split over a 2-thread intra-op pool with its back-off after splits that did not
pay (devices.intra_op), and split with the back-off turned off (the pool before it), in
interleaved rounds. Run it on a quiet machine and beside a CPU hog on every core.

    python benchmarks/bench_split_load.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import devices.intra_op as io  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    n = 10 * 2**20 // 4 // 2
    a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    o = np.empty_like(a)
    backoff, always = io.IntraOpPool(2), io.IntraOpPool(2)
    always._judge = lambda t_job, estimate: None  # type: ignore[method-assign]
    fns = {"inline": lambda: np.add(a, a, out=o),
           "split_backoff": lambda: io.apply_split(backoff, np.add, (a, a), o),
           "split_always": lambda: io.apply_split(always, np.add, (a, a), o)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    try:
        for _ in range(args.rounds):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    finally:
        backoff.close()
        always.close()
    for k, v in times.items():
        v.sort()
        print(f"{k:14s} median {statistics.median(v) * 1e3:7.2f} ms  "
              f"p90 {v[int(0.9 * len(v))] * 1e3:7.2f} ms")
    print("back-off pool:", backoff.statistics())


if __name__ == "__main__":
    main()
