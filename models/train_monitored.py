"""Digits MLP training under `af.train.MonitoredTrainingSession`, with checkpoints, resumption
and recovery from a lost task (`actorflow train mlp --checkpoint-dir D`).

The chief runs in this process against a `LocalCluster` (variables on the PS tasks, math on
worker 0) whose opt-in supervisor restarts a daemon that dies. A checkpoint is written every
`save_checkpoint_steps` global steps into `checkpoint_dir`; running again with the same
directory resumes from the latest one. When a task is killed, the monitored session notices,
the restarted task gets the latest checkpoint, and training goes on to `last_step`; the
result reports every recovery with the steps lost (the global step reached before the
failure minus the step restored).

    r = train_mlp_monitored("/tmp/mlp", last_step=600, save_checkpoint_steps=50)
    r["test_accuracy"], r["recoveries"]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

import actorflow as af
from actorflow.cluster import LocalCluster
from models import digits
from models.train_async import DEFAULT_LEARNING_RATES, build_mlp_replica

STDOUT = object()  # `out`'s default: sys.stdout looked up at the call (a test may swap it)


def train_mlp_monitored(checkpoint_dir: str, *, last_step: int = 600,
                        save_checkpoint_steps: int = 50, ps: int = 1, batch_size: int = 32,
                        optimizer: str = "adam", learning_rate: float | None = None,
                        cluster: LocalCluster | None = None,
                        on_step: Callable[[int, LocalCluster], None] | None = None,
                        out: IO[str] | None | Any = STDOUT, rpc: dict | None = None
                        ) -> dict[str, Any]:
    """Train to global step `last_step`; returns accuracy, steps, resumption and recoveries.
    Progress goes to `out` (default: `sys.stdout` as it is when called; None: silent)."""
    if out is STDOUT:
        out = sys.stdout
    key = optimizer.lower()
    lr = DEFAULT_LEARNING_RATES[key] if learning_rate is None else learning_rate
    own = cluster is None
    if cluster is None:
        cluster = LocalCluster(ps=ps, workers=1, supervise=True)
    try:
        spec = cluster.as_dict()
        g, model = build_mlp_replica(spec, 0, optimizer=key, learning_rate=lr)
        data = digits.load()
        config = None
        if rpc:
            config = af.ConfigProto()
            config.rpc_options = af.RPCOptions(**rpc)  # type: ignore[attr-defined]
        seen = 0          # the highest global step this loop saw
        local = 0
        t0 = time.perf_counter()
        with g.as_default():
            stop = af.train.StopAtStepHook(last_step=last_step)
            sess = af.train.MonitoredTrainingSession(
                master=cluster.target("worker", 0), is_chief=True,
                checkpoint_dir=checkpoint_dir, save_checkpoint_steps=save_checkpoint_steps,
                hooks=[stop, af.train.NanTensorHook(model.loss)], config=config,
                log_step_count_steps=None, max_wait_secs=120)
            lost: list[dict[str, Any]] = []
            with sess:
                start_step = int(sess.raw_session().run(model.global_step))
                epoch = 0
                while not sess.should_stop():
                    for xb, yb in digits.batches(data.train_x, data.train_y, batch_size,
                                                 seed=epoch):
                        n_rec = len(sess.recoveries)
                        _, step = sess.run([model.train_op, model.global_step],
                                           {model.x: xb, model.y: yb})
                        if len(sess.recoveries) > n_rec:
                            r = sess.recoveries[-1]
                            lost.append({"error": r.error, "before": seen,
                                         "restored": r.restored_step,
                                         "steps_lost": seen - (r.restored_step or 0),
                                         "seconds": r.seconds})
                            if out:
                                print(f"recovered after {r.error.split(':')[0]}: resumed at "
                                      f"step {r.restored_step}, {lost[-1]['steps_lost']} steps "
                                      f"lost, {r.seconds:.1f} s", file=out, flush=True)
                        seen, local = max(seen, int(step)), local + 1
                        if on_step is not None:
                            on_step(int(step), cluster)
                        if out and local % 100 == 0:
                            print(f"step {int(step)}/{last_step}", file=out, flush=True)
                        if sess.should_stop():
                            break
                    epoch += 1
                acc, gstep = sess.run([model.accuracy, model.global_step],
                                      {model.x: data.test_x, model.y: data.test_y})
        seconds = time.perf_counter() - t0
        result = {"test_accuracy": float(acc), "global_step": int(gstep),
                  "resumed_from": start_step, "local_steps": local,
                  "recoveries": lost, "seconds": seconds,
                  "checkpoint": af.train.latest_checkpoint(checkpoint_dir),
                  "max_steps_lost": max([r["steps_lost"] for r in lost], default=0)}
        if out:
            print(f"test accuracy {acc:.2%} at global step {int(gstep)} (resumed from "
                  f"{result['resumed_from']}, {len(lost)} recoveries, at most "
                  f"{result['max_steps_lost']} steps lost; checkpoints every "
                  f"{save_checkpoint_steps} steps in {checkpoint_dir})", file=out, flush=True)
        return result
    finally:
        if own:
            cluster.close()


