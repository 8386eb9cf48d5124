"""Issue 11: element-wise kernels on one float32 vector through a Session with
``intra_op_parallelism_threads`` 2 against 1, in interleaved rounds, and what the intra-op
pool chose (jobs split / run inline by its measured choice, `devices.intra_op`). On a machine
where splitting does not pay for a kernel, the 2-thread session should cost what the
1-thread one does; where it pays, less.

    python benchmarks/bench_split_choice.py [--rounds 9] [--runs 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import actorflow as af  # noqa: E402
from benchmarks.common import print_table, wait_for_compiled_loops  # noqa: E402
from devices.intra_op import shared_pool  # noqa: E402

KERNELS = {"tanh": af.tanh, "add": lambda x: x + x,
           "sqrt(abs(x)) fused": lambda x: af.sqrt(af.abs(x))}


def _session(n: int, threads: int, op) -> tuple[af.Session, af.Tensor, dict]:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (n,))
        y = op(x)
    v = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    s = af.Session(graph=g, config=af.ConfigProto(intra_op_parallelism_threads=threads))
    return s, y, {x: v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    wait_for_compiled_loops()
    rows = []
    for name, op in KERNELS.items():
        for n in (1 << 17, 1 << 18, 1 << 20, 1 << 21):
            best = {2: float("inf"), 1: float("inf")}
            before = shared_pool(2).statistics()
            # both creation orders: the first of two sessions made alike can run an add 1.8x
            # slower than the second (where its buffers land), whatever its thread count
            for order in ((2, 1), (1, 2)):
                sessions = {t: _session(n, t, op) for t in order}
                for s, y, feed in sessions.values():
                    for _ in range(40):
                        s.run(y, feed)
                for _ in range(args.rounds):
                    for t, (s, y, feed) in sessions.items():
                        t0 = time.perf_counter()
                        for _ in range(args.runs):
                            s.run(y, feed)
                        best[t] = min(best[t], (time.perf_counter() - t0) / args.runs)
                for s, _, _ in sessions.values():
                    s.close()
            after = shared_pool(2).statistics()
            rows.append({"kernel": name, "elements": n, "1 thread us": best[1] * 1e6,
                         "2 threads us": best[2] * 1e6, "2/1": best[2] / best[1],
                         "split": after.jobs_split - before.jobs_split,
                         "inline (chosen)": after.jobs_declined - before.jobs_declined})
    print("best round of both session orders, us per run; split / inline: the 2-thread pool's jobs")
    print_table(rows)


if __name__ == "__main__":
    main()
