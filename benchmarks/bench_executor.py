"""The single-process runtime (issue 2): executor overhead on no-op graphs, the fixed cost of
Session.run (sync and async), and MLP training steps against a hand-written NumPy floor, all
measured side by side in one run; TensorFlow 2.21's figures beside them when `.tfenv` exists.

    python benchmarks/bench_executor.py [--quick] [--no-tf]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

import actorflow as af  # noqa: E402
from benchmarks import floors  # noqa: E402
from benchmarks.common import measure_interleaved, peer_tf, print_table  # noqa: E402

NO_REWRITES = af.ConfigProto(graph_options=af.GraphOptions(
    optimizer_options=af.OptimizerOptions(False, False)))


def noop_graph(kind: str, n: int) -> tuple[af.Graph, af.Operation]:
    g = af.Graph()
    with g.as_default():
        if kind == "chain":
            prev = af.no_op()
            for _ in range(n - 1):
                with af.control_dependencies([prev]):
                    prev = af.no_op()
            return g, prev
        leaves = [af.no_op() for _ in range(n)]
        with af.control_dependencies(leaves):
            return g, af.no_op(name="sink")


def bench_noop(repeat: int) -> list[dict]:
    rows = []
    for kind in ("chain", "wide"):
        for n in (1000, 10000):
            g, target = noop_graph(kind, n)
            with af.Session(graph=g, config=NO_REWRITES) as s:
                with g.as_default():
                    single = af.no_op()
                st = measure_interleaved({"run": lambda s=s, t=target: s.run(t),
                                          "one": lambda s=s, o=single: s.run(o)},
                                         repeat=repeat, number=0)
            nodes = n if kind == "chain" else n + 1
            rows.append({"kind": kind, "n": n,
                         "us_per_node": st["run"].median / nodes * 1e6,
                         "us_per_node_net": (st["run"].median - st["one"].median)
                         / (nodes - 1) * 1e6})
    return rows


def bench_fixed_cost(repeat: int) -> dict[str, float]:
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.float32, (), name="p")
        out = af.identity(p)
    with af.Session(graph=g) as s:
        st = measure_interleaved({"sync": lambda: s.run(out, {p: 1.0})}, repeat=repeat,
                                 number=0)["sync"]
    result = {"sync_us": st.median * 1e6, "sync_p90_us": st.p90 * 1e6}

    async def main() -> None:
        async with af.Session(graph=g) as s:
            for _ in range(200):
                await s.run(out, {p: 1.0})
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                for _ in range(2000):
                    await s.run(out, {p: 1.0})
                samples.append((time.perf_counter() - t0) / 2000)
            result["async_us"] = float(np.median(samples)) * 1e6
            result["async_p90_us"] = float(np.percentile(samples, 90)) * 1e6

    trio.run(main)
    return result


def mlp_graph(sizes: list[int], batch: int, lr: float,
              weights: list[tuple[np.ndarray, np.ndarray]]) -> tuple:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (batch, sizes[0]), name="x")
        y = af.placeholder(af.float32, (batch, sizes[-1]), name="y")
        h = x
        variables = []
        for i, (w0, b0) in enumerate(weights):
            w = af.Variable(w0, name=f"w{i}")
            b = af.Variable(b0, name=f"b{i}")
            variables.append((w, b))
            h = af.matmul(h, w) + b
            if i < len(weights) - 1:
                h = af.nn.relu(h)
        loss = af.reduce_mean(af.nn.softmax_cross_entropy_with_logits(labels=y, logits=h))
        train = af.train.GradientDescentOptimizer(lr).minimize(loss)
        init = af.global_variables_initializer()
    return g, x, y, loss, train, init, variables


def bench_mlp(sizes: list[int], batch: int, repeat: int) -> dict[str, float]:
    lr = 0.01
    data = floors.make_mlp_data(batch, sizes, 0)
    floor = floors.NumpyMLP(sizes, lr, 0)
    g, x, y, loss, train, init, variables = mlp_graph(sizes, batch, lr, floor.copy_weights())
    feed = {x: data.x, y: data.onehot}
    with af.Session(graph=g) as s:
        s.run(init)
        first = s.run([train, loss], feed)[1]
        first_np = floor.step(data.x, data.labels)
        st = measure_interleaved({"af": lambda: s.run([train, loss], feed),
                                  "numpy": lambda: floor.step(data.x, data.labels)},
                                 repeat=repeat, number=0 if sizes[1] < 512 else 1)
    return {"af_ms": st["af"].median * 1e3, "numpy_ms": st["numpy"].median * 1e3,
            "ratio": st["af"].median / st["numpy"].median,
            "first_loss_diff": abs(float(first) - float(first_np))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-tf", action="store_true")
    args = ap.parse_args()
    repeat = 7 if args.quick else 21
    tf = (lambda name, **kw: None) if args.no_tf else peer_tf
    rows = []
    for r in bench_noop(repeat):
        name = f"noop_{r['kind']}"
        peer = tf(name, n=r["n"])
        rows.append({"benchmark": f"executor, no-op {r['kind']} of {r['n']}",
                     "actorflow": f"{r['us_per_node']:.2f} us/node",
                     "TF 2.21": f"{peer['figures']['us_per_node']:.2f} us/node" if peer else "-",
                     "target": "<= 1.5 us/node",
                     "detail": f"net of one-node run {r['us_per_node_net']:.2f}"})
    fc = bench_fixed_cost(repeat)
    peer = tf("run_fixed_cost")
    tf_us = peer["figures"].get("us_per_run") if peer else None
    rows.append({"benchmark": "Session.run fixed cost, sync",
                 "actorflow": f"{fc['sync_us']:.1f} us",
                 "TF 2.21": f"{tf_us:.1f} us" if tf_us else "-", "target": "<= 80 us",
                 "detail": f"p90 {fc['sync_p90_us']:.1f} us"})
    rows.append({"benchmark": "Session.run fixed cost, async",
                 "actorflow": f"{fc['async_us']:.1f} us",
                 "TF 2.21": "-", "target": "< sync", "detail": f"p90 {fc['async_p90_us']:.1f} us"})
    for sizes, batch, target in (([64, 128, 10], 64, 3.0), ([784, 1024, 1024, 10], 256, 1.10)):
        m = bench_mlp(sizes, batch, repeat)
        peer = tf("mlp_step", sizes=sizes, batch=batch)
        tf_ms = peer["figures"]["ms_per_step"] if peer else None
        rows.append({"benchmark": f"MLP step {'-'.join(map(str, sizes))} b{batch} / NumPy floor",
                     "actorflow": f"{m['ratio']:.2f}x",
                     "TF 2.21": f"{tf_ms / m['numpy_ms']:.2f}x" if tf_ms else "-",
                     "target": f"<= {target:.2f}x",
                     "detail": f"af {m['af_ms']:.3f} ms, numpy {m['numpy_ms']:.3f} ms"
                               + (f", TF {tf_ms:.3f} ms" if tf_ms else "")
                               + f"; first-step loss diff {m['first_loss_diff']:.1e}"})
    print_table(rows, ["benchmark", "actorflow", "TF 2.21", "target", "detail"])


if __name__ == "__main__":
    main()
