"""What tracing costs (issue 16): the null-model PS step with tracing off, this tree against the
tree it branched from (the hooks must cost nothing measurable when off), and the small MLP
training step with FULL_TRACE against without (target <= 1.3x), with TensorFlow 2.21's own
FULL_TRACE ratio on the same MLP beside it.

    python benchmarks/bench_tracing.py [--base COMMIT] [--trials 5] [--steps 400] [--no-tf]

The base tree (default ``main``) is extracted with ``git archive`` into a temporary directory
(nothing in the repository changes). Each null-model trial starts a 1-PS 1-worker
`LocalCluster` of the tree under test and times ``steps`` steps of: read a float32 scalar on
the PS, ``x * 0 + 1`` on the worker, ``assign_add`` on the PS; trials alternate between the
trees (this tree, the base, then TensorFlow's same scalar step, ``peer_tf("nullmodel_ps")``
with 1 worker, when ``.tfenv`` exists), so all three see the same load; each figure is the
median of the per-trial medians. Besides wall time per step, each trial reports the CPU time
per step of the client and both daemons together (``/proc/PID/stat``, every thread): on a
loaded machine that is far steadier than wall time, which mostly measures the wait for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import peer_tf  # noqa: E402

TFENV = REPO / ".tfenv" / "bin" / "python"  # benchmarks/setup_tf_env.sh makes it

NULL_MODEL = r'''
import json, os, sys, time
import numpy as np
import actorflow as af
from actorflow.cluster import LocalCluster
steps = int(sys.argv[1])
with LocalCluster(ps=1, workers=1) as c:
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            v = af.Variable(np.float32(0.0), name="v")
        with af.device("/job:worker/task:0"):
            u = af.identity(v) * 0.0 + 1.0
        with af.device("/job:ps/task:0"):
            step = af.assign_add(v, u)
    pids = [c.pid("ps", 0), c.pid("worker", 0)]
    def cpu():  # seconds of CPU: this client and both daemons (every thread of each)
        total = time.process_time()
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total
    with af.Session(c.target("worker", 0), graph=g) as s:
        s.run(v.initializer)
        for _ in range(100):
            s.run(step)
        ts = []
        c0 = cpu()
        for _ in range(steps):
            t0 = time.perf_counter(); s.run(step); ts.append(time.perf_counter() - t0)
        cpu_us = (cpu() - c0) / steps * 1e6
print(json.dumps({"median_ms": float(np.median(ts)) * 1e3, "cpu_us": cpu_us}))
'''

MLP = r'''
import json, sys, time
import numpy as np
import actorflow as af
steps = int(sys.argv[1])
rng = np.random.default_rng(0)
sizes, batch = [64, 128, 10], 64
g = af.Graph()
with g.as_default():
    x = af.placeholder(af.float32, (batch, 64)); y = af.placeholder(af.float32, (batch, 10))
    a = x
    for i in range(2):
        w = af.Variable(rng.standard_normal((sizes[i], sizes[i + 1])).astype(np.float32) * 0.1)
        b = af.Variable(np.zeros(sizes[i + 1], np.float32))
        a = af.matmul(a, w) + b
        if i == 0:
            a = af.nn.relu(a)
    loss = af.reduce_mean(af.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=a))
    train = af.train.GradientDescentOptimizer(0.01).minimize(loss)
    init = af.global_variables_initializer()
feed = {x: rng.random((batch, 64), np.float32),
        y: np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]}
opts = af.RunOptions(trace_level=af.RunOptions.FULL_TRACE)
with af.Session(graph=g) as s:
    s.run(init)
    def one(traced):
        if traced:
            md = af.RunMetadata()
            s.run([train, loss], feed, options=opts, run_metadata=md)
        else:
            s.run([train, loss], feed)
    for _ in range(50):
        one(False); one(True)
    off, on = [], []
    for _ in range(steps):  # interleaved: the two figures see the same machine load
        t0 = time.perf_counter(); one(False); t1 = time.perf_counter(); one(True)
        t2 = time.perf_counter(); off.append(t1 - t0); on.append(t2 - t1)
print(json.dumps({"off_ms": float(np.median(off)) * 1e3, "full_ms": float(np.median(on)) * 1e3}))
'''

WAITS = r'''
import json, timeit
from scheduler.rendezvous import Rendezvous
cb = lambda resume: None
def step():
    r = Rendezvous(1)
    r.subscribe("k", cb)  # a Recv that has to wait: this tree stamps when it began to wait
    r.send("k", 1.0)
    r.try_recv("k")
print(json.dumps({"ns": min(timeit.repeat(step, number=5000, repeat=5)) / 5000 * 1e9}))
'''

TF_MLP = r'''
import json, sys, time, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
v1 = tf.compat.v1
v1.disable_eager_execution()
steps = int(sys.argv[1])
rng = np.random.default_rng(0)
sizes, batch = [64, 128, 10], 64
g = v1.Graph()
with g.as_default():
    x = v1.placeholder(tf.float32, (batch, 64)); y = v1.placeholder(tf.float32, (batch, 10))
    a = x
    for i in range(2):
        w = v1.Variable(rng.standard_normal((sizes[i], sizes[i + 1])).astype(np.float32) * 0.1)
        b = v1.Variable(np.zeros(sizes[i + 1], np.float32))
        a = tf.matmul(a, w) + b
        if i == 0:
            a = tf.nn.relu(a)
    loss = tf.reduce_mean(v1.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=a))
    train = v1.train.GradientDescentOptimizer(0.01).minimize(loss)
    init = v1.global_variables_initializer()
feed = {x: rng.random((batch, 64), np.float32),
        y: np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]}
opts = v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE)
with v1.Session(graph=g) as s:
    s.run(init)
    def one(traced):
        if traced:
            md = v1.RunMetadata()
            s.run([train, loss], feed, options=opts, run_metadata=md)
        else:
            s.run([train, loss], feed)
    for _ in range(50):
        one(False); one(True)
    off, on = [], []
    for _ in range(steps):
        t0 = time.perf_counter(); one(False); t1 = time.perf_counter(); one(True)
        t2 = time.perf_counter(); off.append(t1 - t0); on.append(t2 - t1)
print(json.dumps({"off_ms": float(np.median(off)) * 1e3, "full_ms": float(np.median(on)) * 1e3}))
'''


def _run(tree: Path, code: str, *args: str, python: str = sys.executable) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env.pop("AF_CONFIG", None)
    # one BLAS thread: on a loaded 2-core machine, spinning BLAS threads stall small steps
    # for ~100 ms at random, which drowns what is measured here
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([python, "-c", code, *args], cwd=tree, env=env, capture_output=True,
                         text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed in {tree}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", default="main", help="commit to compare the null model with")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--no-tf", action="store_true", help="skip TensorFlow's figures")
    ap.add_argument("--only-waits", action="store_true",
                    help="only the cost of a waiting Recv in the rendezvous, both trees")
    args = ap.parse_args()
    use_tf = TFENV.exists() and not args.no_tf
    tf_null: list[float] = []
    with tempfile.TemporaryDirectory(prefix="af_base_") as tmp:
        base = Path(tmp)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        w_here, w_there = [], []
        for _ in range(15):  # a waiting Recv's cost in the rendezvous (the per-wait stamp)
            w_here.append(_run(REPO, WAITS)["ns"])
            w_there.append(_run(base, WAITS)["ns"])
        print(f"a rendezvous, one waiting Recv and its send (min of 15 alternating runs): this "
              f"tree {min(w_here):.0f} ns   base {args.base} {min(w_there):.0f} ns   "
              f"difference {min(w_here) - min(w_there):.0f} ns per waiting Recv")
        if args.only_waits:
            return
        here, there, here_cpu, there_cpu = [], [], [], []
        for _ in range(args.trials):
            got = _run(REPO, NULL_MODEL, str(args.steps))
            here.append(got["median_ms"])
            here_cpu.append(got["cpu_us"])
            got = _run(base, NULL_MODEL, str(args.steps))
            there.append(got["median_ms"])
            there_cpu.append(got["cpu_us"])
            if use_tf:
                got = peer_tf("nullmodel_ps", workers=[1], models=["scalar"], duration=2.0,
                              warmup=50)
                tf_null.append(got["table"]["scalar"]["1"]["median_ms"])
    mlp = [_run(REPO, MLP, str(args.steps)) for _ in range(args.trials)]
    off = statistics.median(m["off_ms"] for m in mlp)
    full = statistics.median(m["full_ms"] for m in mlp)
    ratios = [m["full_ms"] / m["off_ms"] for m in mlp]
    tf = _run(REPO, TF_MLP, str(args.steps), python=str(TFENV)) if use_tf else None
    print(f"null-model scalar step, tracing off ({args.trials} trials x {args.steps} steps, "
          f"median of medians):")
    print(f"  this tree {statistics.median(here):.3f} ms   base {args.base} "
          f"{statistics.median(there):.3f} ms   ratio "
          f"{statistics.median(here) / statistics.median(there):.3f}   "
          f"(per trial: {[round(h, 3) for h in here]} vs {[round(t, 3) for t in there]})")
    print(f"  CPU per step (client + PS + worker daemons, every thread; steadier than wall "
          f"time on a loaded machine): this tree {statistics.median(here_cpu):.0f} us   base "
          f"{statistics.median(there_cpu):.0f} us   ratio "
          f"{statistics.median(here_cpu) / statistics.median(there_cpu):.3f}   (per trial: "
          f"{[round(h) for h in here_cpu]} vs {[round(t) for t in there_cpu]})")
    if tf_null:
        print(f"  TensorFlow 2.21 (same run, 2 PS tasks, 1 worker): "
              f"{statistics.median(tf_null):.3f} ms (per trial "
              f"{[round(t, 3) for t in tf_null]})")
    print(f"MLP step [64,128,10] batch 64 SGD, one process ({args.trials} x {args.steps}):")
    print(f"  off {off:.3f} ms   FULL_TRACE {full:.3f} ms   ratio {full / off:.3f} "
          f"(per trial {[round(r, 3) for r in ratios]})")
    if tf is not None:
        print(f"  TensorFlow 2.21: off {tf['off_ms']:.3f} ms   FULL_TRACE {tf['full_ms']:.3f} ms"
              f"   ratio {tf['full_ms'] / tf['off_ms']:.3f}")


if __name__ == "__main__":
    main()
