"""One GradientDescent step of softmax regression (issue 11, "small kernels cheap"): the per-
kernel cost of a small training step, ours against TensorFlow 2.21 and a NumPy floor.

    python benchmarks/bench_small_step.py [--steps 2000] [--trials 5]

The step: x[32, 64] fed, w[64, 10], b[10], logits = x @ w + b, loss = reduce_mean of the
sparse softmax cross-entropy against fed int64 labels, one GradientDescentOptimizer(0.1)
step (the graph has 26 operations; main dc017fb runs 26 kernels a step, this tree 15).
Figures are CPU microseconds per step (``time.process_time``, the best of `trials` runs of
`steps` steps; wall time is printed beside). TensorFlow runs the same graph in the
repository's ``.tfenv`` (a subprocess of this script, ``--tf-peer``); the NumPy floor is
`floors.softmax_regression_step`. Bar: at most 150 us of CPU per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH, FEATURES, CLASSES, LR = 32, 64, 10, 0.1


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.random((BATCH, FEATURES), dtype=np.float32),
            rng.integers(0, CLASSES, BATCH).astype(np.int64))


def _time(step: Any, steps: int, trials: int) -> dict[str, float]:
    for _ in range(min(200, steps)):
        step()
    cpu, wall = [], []
    for _ in range(trials):
        t0, w0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            step()
        cpu.append((time.process_time() - t0) / steps * 1e6)
        wall.append((time.perf_counter() - w0) / steps * 1e6)
    return {"cpu_us": min(cpu), "wall_us": min(wall)}


def _graph(lib: Any) -> tuple[Any, ...]:
    """The step's graph in actorflow or tf.compat.v1 (the same TF1 calls)."""
    g = lib.Graph()
    with g.as_default():
        w = lib.Variable(np.zeros((FEATURES, CLASSES), np.float32), name="w")
        b = lib.Variable(np.zeros(CLASSES, np.float32), name="b")
        x = lib.placeholder(lib.float32, (None, FEATURES))
        y = lib.placeholder(lib.int64, (None,))
        logits = lib.matmul(x, w) + b
        loss = lib.reduce_mean(lib.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
        op = lib.train.GradientDescentOptimizer(LR).minimize(loss)
        init = lib.global_variables_initializer()
    return g, x, y, loss, op, init


def run_session(lib: Any, steps: int, trials: int) -> dict[str, Any]:
    g, x, y, loss, op, init = _graph(lib)
    X, Y = _data()
    feed = {x: X, y: Y}
    s = lib.Session(graph=g)
    s.run(init)
    first = float(s.run(loss, feed))
    figures = _time(lambda: s.run(op, feed), steps, trials)
    figures.update(first_loss=first, nodes=len(g.get_operations()))
    s.close()
    return figures


def numpy_floor(steps: int, trials: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import floors  # noqa: PLC0415 - the benchmarks' own module

    X, Y = _data()
    w, b = np.zeros((FEATURES, CLASSES), np.float32), np.zeros(CLASSES, np.float32)
    return _time(lambda: floors.softmax_regression_step(X, Y, w, b, LR), steps, trials)


def tf_peer(steps: int, trials: int) -> dict[str, Any] | None:
    py = ROOT / ".tfenv" / "bin" / "python"
    if not py.exists():
        return None
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([str(py), __file__, "--tf-peer", "--steps", str(steps),
                          "--trials", str(trials)], capture_output=True, text=True, env=env,
                         timeout=600, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--tf-peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tf_peer:
        import tensorflow as tf  # noqa: PLC0415 - only in the peer's own environment

        tf.compat.v1.disable_eager_execution()
        print(json.dumps(run_session(tf.compat.v1, args.steps, args.trials)))
        return
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import wait_for_compiled_loops  # noqa: PLC0415 - not in the peer

    wait_for_compiled_loops()
    import actorflow as af  # noqa: PLC0415 - after the repository is on the path

    ours = run_session(af, args.steps, args.trials)
    floor = numpy_floor(args.steps, args.trials)
    peer = tf_peer(args.steps, args.trials)
    print(f"softmax regression GD step, x[{BATCH},{FEATURES}] w[{FEATURES},{CLASSES}] "
          f"({ours['nodes']} operations in our graph); CPU us per step, best of {args.trials} x "
          f"{args.steps}")
    print(f"{'':14}{'CPU us':>10}{'wall us':>10}{'vs floor':>10}")
    rows = [("actorflow", ours), ("TF 2.21", peer), ("NumPy floor", floor)]
    for name, f in rows:
        if f is None:
            print(f"{name:14}{'-':>10}")
            continue
        print(f"{name:14}{f['cpu_us']:10.1f}{f['wall_us']:10.1f}"
              f"{f['cpu_us'] / floor['cpu_us']:9.2f}x")
    if peer is not None:
        print(f"actorflow / TF: {ours['cpu_us'] / peer['cpu_us']:.2f}x CPU; first loss "
              f"{ours['first_loss']:.6f} vs TF {peer['first_loss']:.6f}")
    print(f"bar: actorflow <= 150 us CPU per step: "
          f"{'MET' if ours['cpu_us'] <= 150 else 'NOT MET'}")


if __name__ == "__main__":
    main()
