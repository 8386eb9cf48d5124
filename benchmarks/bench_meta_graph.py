"""What writing the `.meta` beside each checkpoint costs: `Saver.save` of a small MLP (and of a
graph with an LSTM, which has many ops) with and without `write_meta_graph`, alternating, and
TensorFlow 2.21's `Saver.save` of the same MLP with its .meta for reference when its side
environment is present.

    python benchmarks/bench_meta_graph.py [--saves 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

TF_SCRIPT = r"""
import os, sys, tempfile, time, numpy as np
import tensorflow.compat.v1 as tf
tf.disable_v2_behavior()
x = tf.placeholder(tf.float32, [None, 64])
w1 = tf.Variable(tf.random_normal([64, 128])); b1 = tf.Variable(tf.zeros([128]))
w2 = tf.Variable(tf.random_normal([128, 10])); b2 = tf.Variable(tf.zeros([10]))
y = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
tf.train.AdamOptimizer().minimize(tf.reduce_sum(y))
saver = tf.train.Saver(max_to_keep=2)
d = tempfile.mkdtemp()
with tf.Session() as s:
    s.run(tf.global_variables_initializer())
    for meta in (True, False):
        t = []
        for i in range(int(sys.argv[1])):
            t0 = time.perf_counter(); saver.save(s, os.path.join(d, "m"), global_step=i,
                                                 write_meta_graph=meta)
            t.append(time.perf_counter() - t0)
        print(meta, sorted(t)[len(t) // 2] * 1e3)
"""


def _build(kind: str) -> None:
    import actorflow as af
    x = af.placeholder(af.float32, [None, 64])
    if kind == "lstm":
        seq = af.reshape(x, [-1, 8, 8])
        out, _ = af.nn.dynamic_rnn(af.nn.rnn_cell.BasicLSTMCell(32), seq, dtype=af.float32)
        y = af.layers.dense(out[:, -1], 10)
    else:
        y = af.layers.dense(af.layers.dense(x, 128, activation=af.nn.relu), 10)
    af.train.AdamOptimizer().minimize(af.reduce_sum(y))


def ours(kind: str, saves: int) -> dict[bool, float]:
    import actorflow as af
    times: dict[bool, list[float]] = {True: [], False: []}
    with af.Graph().as_default() as g:
        _build(kind)
        saver = af.train.Saver(max_to_keep=2)
        d = tempfile.mkdtemp()
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            for i in range(saves):
                for meta in (True, False):  # alternating, so load drift hits both alike
                    t0 = time.perf_counter()
                    saver.save(s, os.path.join(d, "m"), global_step=i, write_meta_graph=meta)
                    times[meta].append(time.perf_counter() - t0)
        ops = len(g.get_operations())
    size = os.path.getsize(os.path.join(d, f"m-{saves - 2}.meta"))
    print(f"actorflow {kind}: {ops} ops, .meta of {size} bytes")
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--saves", type=int, default=40)
    args = ap.parse_args()
    for kind in ("mlp", "lstm"):
        r = ours(kind, args.saves)
        print(f"actorflow {kind}: save with .meta {r[True]:.2f} ms, without {r[False]:.2f} ms "
              f"(+{(r[True] / r[False] - 1) * 100:.0f}%)")
    tf_py = os.path.join(os.path.dirname(HERE), ".tfenv", "bin", "python")
    if os.path.exists(tf_py):
        out = subprocess.run([tf_py, "-c", TF_SCRIPT, str(args.saves)], capture_output=True,
                             text=True, timeout=600).stdout.split("\n")
        tf_t = {ln.split()[0] == "True": float(ln.split()[1]) for ln in out if ln.strip()}
        print(f"TensorFlow mlp: save with .meta {tf_t[True]:.2f} ms, without "
              f"{tf_t[False]:.2f} ms")


if __name__ == "__main__":
    main()
