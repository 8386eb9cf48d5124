"""Recovery latency (issue 14): kill -9 of a task during MonitoredTrainingSession training.

Trains the digits MLP with `models.train_monitored.train_mlp_monitored` on a supervised
`LocalCluster` (1 PS, 1 worker task), kills `--victim` at half of `--steps`, and prints, for
each recovery, the seconds from the kill to the next successful step, the seconds the
monitored session spent recovering, the steps lost and the phases (INFO log lines of
"actorflow.train" and "actorflow.cluster" go to stderr with a millisecond clock).

    python benchmarks/bench_recovery.py --victim ps --steps 300
    python benchmarks/bench_recovery.py --victim worker --no-standby
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af  # noqa: E402
from actorflow.cluster import LocalCluster  # noqa: E402
from models.train_monitored import train_mlp_monitored  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", choices=["ps", "worker"], default="ps")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--interval", type=int, default=50, help="checkpoint every N steps")
    ap.add_argument("--no-standby", action="store_true",
                    help="restart the dead daemon as a new process (no warm standby)")
    args = ap.parse_args(argv)
    af.logging.set_verbosity(af.logging.INFO)
    logging.getLogger("actorflow").handlers[0].setFormatter(
        logging.Formatter("%(relativeCreated)d ms %(levelname)s:%(name)s:%(message)s"))
    kill_at, killed = args.steps // 2, [0.0]
    first_after: list[float] = []

    def on_step(step: int, cluster: LocalCluster) -> None:
        if not killed[0] and step >= kill_at:
            killed[0] = time.perf_counter()
            cluster.kill(args.victim, 0)
        elif killed[0] and not first_after:
            first_after.append(time.perf_counter() - killed[0])

    with LocalCluster(ps=1, workers=1, supervise=True,
                      standby=not args.no_standby) as cluster, \
            tempfile.TemporaryDirectory() as d:
        r = train_mlp_monitored(d, last_step=args.steps, save_checkpoint_steps=args.interval,
                                cluster=cluster, on_step=on_step, out=None,
                                rpc={"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0})
    for rec in r["recoveries"]:
        print(f"kill -9 of {args.victim}:0 at global step {kill_at}: next step "
              f"{first_after[0]:.2f} s after the kill; recovery {rec['seconds']:.2f} s; "
              f"restored step {rec['restored']}, {rec['steps_lost']} steps lost "
              f"({rec['error'][:60]}...)")
    print(f"test accuracy {r['test_accuracy']:.2%} at global step {r['global_step']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
