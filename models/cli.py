"""The `actorflow` program: the top of the layers, so it may use the reference models.

    actorflow demo                      train the digits MLP in this process (sync API)
    actorflow train mlp [--ps 1 --workers 2 ...]   asynchronous PS training on a local cluster
    actorflow train mlp --rule R [--simulate N]    an update rule (issue 17: async, sync,
        backup, ssp, dcasgd, easgd, stale-lr, quantized8) on a local cluster or in af.sim;
        --compare R,R,... trains each with the same data and seed: a table and a PNG plot
    actorflow worker ... / cluster ...  the daemons (forwarded to `actorflow.cli`)
    actorflow keys DIR                  a cluster's key directory (SECURITY.md)
    actorflow status / doctor [TARGET]  every task's state; why a step is stuck
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

import actorflow as af
from models import digits, mlp


def demo(epochs: int = 15, batch_size: int = 32, learning_rate: float = 0.01,
         hidden: int = 64, optimizer: str = "adam", out=sys.stdout) -> float:  # type: ignore[no-untyped-def]
    """Train an MLP on scikit-learn's digits through the runtime; returns test accuracy."""
    data = digits.load()
    g = af.Graph()
    with g.as_default():
        model = mlp.build(hidden=(hidden,), optimizer=optimizer, learning_rate=learning_rate)
        init = af.global_variables_initializer()
    with af.Session(graph=g) as s:
        s.run(init)
        steps, t0 = 0, time.perf_counter()
        per_epoch = -(-len(data.train_x) // batch_size)
        for epoch in range(epochs):
            losses = []
            for xb, yb in digits.batches(data.train_x, data.train_y, batch_size, seed=epoch):
                _, loss = s.run([model.train_op, model.loss], {model.x: xb, model.y: yb})
                losses.append(loss)
                steps += 1
            rate = steps / (time.perf_counter() - t0)
            print(f"epoch {epoch + 1:2d}/{epochs}  loss {np.mean(losses):.4f}  "
                  f"{rate:,.0f} steps/s ({per_epoch} steps/epoch)", file=out, flush=True)
        acc = float(s.run(model.accuracy, {model.x: data.test_x, model.y: data.test_y}))
        devs = ", ".join(s.list_devices())
    print(f"test accuracy {acc:.2%} on {len(data.test_x)} held-out digits ({devs})", file=out)
    return acc


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("worker", "cluster", "keys"):  # keys: issue 12
        from actorflow import cli  # noqa: PLC0415 - the daemons live in the library
        return cli.main(argv)
    if argv and argv[0] in ("status", "doctor"):  # observability (#16)
        from actorflow.client import cli as obs_cli  # noqa: PLC0415
        return obs_cli.main(argv)
    ap = argparse.ArgumentParser(prog="actorflow", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train the digits MLP in this process")
    d.add_argument("--epochs", type=int, default=15)
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--learning-rate", type=float, default=0.01)
    d.add_argument("--optimizer", default="adam")
    t = sub.add_parser("train", help="asynchronous parameter-server training on a local cluster")
    t.add_argument("model", choices=["mlp"])
    t.add_argument("--ps", type=int, default=1)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--steps", type=int, default=None, help="steps per worker")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--learning-rate", type=float, default=None)
    t.add_argument("--optimizer", default=None)
    t.add_argument("--checkpoint-dir", default=None,
                   help="train under a MonitoredTrainingSession that saves checkpoints here "
                        "(every --save-checkpoint-steps) and resumes from them when run again; "
                        "a PS task that dies is restarted and restored (--steps = last step)")
    t.add_argument("--save-checkpoint-steps", type=int, default=100)
    t.add_argument("--logdir", default=None, help="write TensorBoard event files here "
                   "(loss, accuracy, steps/s, per-PS bytes, weights, the graph)")
    t.add_argument("--trace", default=None, metavar="DIR", help="write Chrome/Perfetto "
                   "traces of three training steps here")
    # research (issue 17): update rules, in af.sim or on a local cluster, and compared
    t.add_argument("--rule", default=None,
                   help="update rule(s), comma-separated: async, sync, backup, ssp, dcasgd, "
                        "easgd, stale-lr, quantized8 (several: a comparison)")
    t.add_argument("--compare", default=None, metavar="R,R,...",
                   help="train each rule with the same data and seed; print a table and draw "
                        "a PNG (--plot; needs matplotlib: the 'plot' extra)")
    t.add_argument("--plot", default=None, metavar="PNG", help="where --compare draws its "
                   "plot (default: LOGDIR/compare.png, or ./compare.png)")
    t.add_argument("--simulate", type=int, default=None, metavar="N",
                   help="simulate N virtual workers (af.sim) instead of a local cluster")
    t.add_argument("--stragglers", type=int, default=0)
    sub.add_parser("worker", help="run a worker daemon (see 'actorflow worker --help')")
    sub.add_parser("cluster", help="run a local cluster (see 'actorflow cluster --help')")
    sub.add_parser("status", help="every task's state (see 'actorflow status --help')")
    sub.add_parser("doctor", help="why a step is stuck (see 'actorflow doctor --help')")
    sub.add_parser("keys", help="make a cluster's key directory (see 'actorflow keys --help')")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except af.OpError as e:  # a bad flag value or an unreachable cluster: say what, no traceback
        print(f"actorflow {args.command}: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        acc = demo(args.epochs, args.batch_size, args.learning_rate, optimizer=args.optimizer)
        return 0 if acc >= 0.9 else 1
    if args.checkpoint_dir:
        from models.train_monitored import train_mlp_monitored  # noqa: PLC0415
        r = train_mlp_monitored(args.checkpoint_dir, last_step=args.steps or 600,
                                save_checkpoint_steps=args.save_checkpoint_steps, ps=args.ps,
                                batch_size=args.batch_size or 32,
                                optimizer=args.optimizer or "adam",
                                learning_rate=args.learning_rate)
        return 0 if r["test_accuracy"] >= 0.9 else 1
    if args.simulate is not None or args.compare or args.rule not in (None, "async"):
        return _run_rules(args)  # issue 17
    from models import train_async  # noqa: PLC0415
    kwargs = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size),
                                ("learning_rate", args.learning_rate),
                                ("optimizer", args.optimizer)) if v is not None}
    result = train_async.train_mlp_async(ps=args.ps, workers=args.workers, logdir=args.logdir,
                                         trace_dir=args.trace, **kwargs)
    print(f"test accuracy {result['test_accuracy']:.2%}")
    return 0


def _run_rules(args: argparse.Namespace) -> int:
    """``train mlp --rule R[,R] | --compare R,R [--simulate N]``: update rules in af.sim or on
    a local cluster (issue 17); several rules are compared (a table, and with --compare or
    --plot a PNG)."""
    from pathlib import Path  # noqa: PLC0415

    from models import rules  # noqa: PLC0415

    names = rules.check_rules((args.compare or args.rule or "async").split(","))
    plot = args.plot
    if plot is None and args.compare:
        plot = str(Path(args.logdir or ".") / "compare.png")
    if args.logdir:
        Path(args.logdir).mkdir(parents=True, exist_ok=True)
    simulate = args.simulate is not None
    runs = rules.compare(names, args.simulate if simulate else args.workers,
                         args.steps or (100 if simulate else 200), simulate=simulate,
                         stragglers=args.stragglers, learning_rate=args.learning_rate or 0.5,
                         logdir=args.logdir, plot_path=plot,
                         **({"batch_size": args.batch_size} if args.batch_size else {}))
    return 0 if all(r.updates for r in runs.values()) else 1


# -- the commands this package adds to the `actorflow` program (pyproject.toml entry points) --
def demo_command(argv: Sequence[str]) -> int:
    """``actorflow demo ...``"""
    return main(["demo", *argv])


def train_command(argv: Sequence[str]) -> int:
    """``actorflow train ...``"""
    return main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
