"""The single-process runtime (issue 2): executor overhead on no-op graphs, the fixed cost of
Session.run (sync and async), and MLP training steps against a hand-written NumPy floor, all
measured side by side in one run; TensorFlow 2.21's figures beside them when `.tfenv` exists.

    python benchmarks/bench_executor.py [--quick] [--no-tf] [--issue11 | --only-issue11 |
                                        --only-mlp | --only-tanh-layers ROUNDS]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

import actorflow as af  # noqa: E402
from benchmarks import floors  # noqa: E402
from benchmarks.common import (  # noqa: E402
    measure_interleaved,
    peer_tf,
    print_table,
    wait_for_compiled_loops,
)

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


# ---- issue 11: real small kernels, and large ones over the intra-op pool ------------------
def scalar_chain_graph(n: int) -> tuple[af.Graph, af.Tensor, af.Tensor]:
    """A chain of `n` scalar ``x + 1.0`` on a fed float32 ``x`` (nothing to fold)."""
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (), name="x")
        y = x
        for _ in range(n):
            y = y + 1.0
    return g, x, y


def scalar_add_n_graph(n: int) -> tuple[af.Graph, af.Tensor, af.Tensor]:
    """``add_n([x + float(i) for i in range(n)])`` on a fed float32 scalar."""
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (), name="x")
        y = af.add_n([x + float(i) for i in range(n)])
    return g, x, y


def bench_scalar_kernels(n: int, repeat: int) -> dict[str, float | str]:
    """us per node of the scalar chain and the scalar add_n, beside the no-op chain of the
    same length, all interleaved in one process."""
    g1, x1, y1 = scalar_chain_graph(n)
    g2, x2, y2 = scalar_add_n_graph(n)
    g3, t3 = noop_graph("chain", n)
    out: dict[str, float | str] = {}
    with af.Session(graph=g1) as s1, af.Session(graph=g2) as s2, \
            af.Session(graph=g3, config=NO_REWRITES) as s3:
        assert float(s1.run(y1, {x1: 0.5})) == 0.5 + n
        fns = {"chain": lambda: s1.run(y1, {x1: 0.5}), "noop": lambda: s3.run(t3)}
        try:
            s2.run(y2, {x2: 0.5})
            fns["add_n"] = lambda: s2.run(y2, {x2: 0.5})
        except af.errors.OpError as e:  # AddN of 0-d values fails on a main without #13's fix
            out["add_n_error"] = str(e).split(" on inputs")[0][:120]
        st = measure_interleaved(fns, repeat=repeat, number=1)
    out["chain_us_per_node"] = st["chain"].median / n * 1e6
    out["noop_us_per_node"] = st["noop"].median / n * 1e6
    if "add_n" in st:
        out["add_n_us_per_node"] = st["add_n"].median / (n + 1) * 1e6
    return out


def tanh_layers_graph(x_np: np.ndarray, layers: int) -> tuple[af.Graph, af.Tensor, Any]:
    """`layers` x ``h = tanh(h) * 1.5 + c`` over a variable, fetching one element (as the TF
    peer does, so no 8 MB copy out)."""
    g = af.Graph()
    with g.as_default():
        x = af.Variable(x_np, name="x")
        c = af.constant(np.float32(0.25))
        h = x.read_value() if hasattr(x, "read_value") else af.identity(x)
        for _ in range(layers):
            h = af.tanh(h) * 1.5 + c
        out = h[:1]
        init = af.global_variables_initializer()
    return g, out, init


def bench_tanh_layers(n: int, layers: int, repeat: int) -> dict[str, float]:
    """The layers fused and split over 2 threads (the default), fused on 1 thread, and unfused
    (rewrites off) on 1 thread: what fusion and the pool each bring; plus the NumPy floor."""
    x_np = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    g, out, init = tanh_layers_graph(x_np, layers)
    ref = np.float64(x_np[0])
    for _ in range(layers):
        ref = np.tanh(ref) * 1.5 + 0.25
    one = af.ConfigProto(intra_op_parallelism_threads=1)
    unfused = af.ConfigProto(intra_op_parallelism_threads=1, graph_options=af.GraphOptions(
        optimizer_options=af.OptimizerOptions(False, False)))
    buf = np.empty_like(x_np)

    def floor() -> None:
        floors.tanh_layers(x_np, layers, 0.25, buf)

    with af.Session(graph=g) as s, af.Session(graph=g, config=one) as s1, \
            af.Session(graph=g, config=unfused) as s0:
        for sess in (s, s1, s0):
            sess.run(init)
            assert abs(float(sess.run(out)[0]) - ref) < 1e-5
        st = measure_interleaved({"fused_split": lambda: s.run(out),
                                  "fused_1_thread": lambda: s1.run(out),
                                  "unfused_1_thread": lambda: s0.run(out),
                                  "numpy": floor}, repeat=repeat, number=1, warmup=1)
    return {k: v.median * 1e3 for k, v in st.items()}


def tanh_layers_interleaved(rounds: int, with_tf: bool, n: int = 2_000_000, layers: int = 24,
                            per_round: int = 3) -> None:
    """Issue 11's tanh-layer bar, ours and TensorFlow's interleaved: each round times
    `per_round` runs of ours (fused, split over the intra-op pool: the default) and then
    `per_round` of TensorFlow's (a long-lived `tf_tanh_layers.py` process in ``.tfenv``,
    same graph), in the same seconds; prints every round (the medians), then the median and
    worst of each side and of the per-round ratio against the bar (<= 0.8x TF)."""
    import json
    import os
    import subprocess

    from benchmarks.common import REPO_ROOT, TFENV_PYTHON, tfenv_available
    from devices.intra_op import shared_pool

    x_np = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    g, out, init = tanh_layers_graph(x_np, layers)
    ref = np.float64(x_np[0])
    for _ in range(layers):
        ref = np.tanh(ref) * 1.5 + 0.25
    peer = None
    if with_tf and tfenv_available():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)
        peer = subprocess.Popen(
            [str(TFENV_PYTHON), str(REPO_ROOT / "benchmarks" / "tf_tanh_layers.py"), str(n),
             str(layers)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=REPO_ROOT, env=env)
        ready = json.loads(peer.stdout.readline())
        assert abs(ready["ready"] - ref) < 1e-5, ready
    rows = []
    try:
        with af.Session(graph=g) as s:
            s.run(init)
            assert abs(float(s.run(out)[0]) - ref) < 1e-5
            for r in range(rounds):
                times = []
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    s.run(out)
                    times.append(time.perf_counter() - t0)
                ours = float(np.median(times)) * 1e3
                theirs = float("nan")
                if peer is not None:
                    peer.stdin.write(f"{per_round}\n")
                    peer.stdin.flush()
                    theirs = float(np.median(json.loads(peer.stdout.readline()))) * 1e3
                rows.append({"round": r + 1, "actorflow ms": f"{ours:.1f}",
                             "TF 2.21 ms": f"{theirs:.1f}", "ours/TF": f"{ours / theirs:.2f}x"})
    finally:
        if peer is not None:
            peer.stdin.close()
            peer.wait(timeout=60)
    stats = shared_pool(0).statistics()  # the pool the session's kernels split over
    print_table(rows)
    ours_ms = [float(r["actorflow ms"]) for r in rows]
    tf_ms = [float(r["TF 2.21 ms"]) for r in rows]
    ratio = [a / b for a, b in zip(ours_ms, tf_ms, strict=True)]
    print_table([{"benchmark": f"{layers} x tanh(h)*1.5+c over {n / 1e6:g}M float32, "
                               f"{rounds} interleaved rounds of {per_round} runs",
                  "actorflow": f"median {np.median(ours_ms):.1f} ms, worst {max(ours_ms):.1f}",
                  "TF 2.21": f"median {np.median(tf_ms):.1f} ms, worst {max(tf_ms):.1f}",
                  "ours/TF": f"median {np.median(ratio):.2f}x, worst {max(ratio):.2f}x",
                  "target": "<= 0.8x TF (issue 11: <= TF)",
                  "detail": f"intra-op jobs split {stats.jobs_split}, declined "
                            f"{stats.jobs_declined}"}],
                ["benchmark", "actorflow", "TF 2.21", "ours/TF", "target", "detail"])


def bench_split_threshold(repeat: int) -> list[dict[str, float]]:
    """np.add / np.tanh into a preallocated output, whole vs split over a 2-thread pool, by
    size: where the split starts to pay (devices.intra_op.MIN_CHUNK_ELEMENTS)."""
    from devices.intra_op import IntraOpPool, apply_split

    pool = IntraOpPool(2)
    rows = []
    try:
        for n in (1 << 14, 1 << 16, 1 << 17, 1 << 18, 1 << 20):
            a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
            o = np.empty_like(a)
            row: dict[str, float] = {"elements": n}
            for name, f, args in (("add", np.add, (a, a)), ("tanh", np.tanh, (a,))):
                def split(f=f, args=args, n=n, o=o) -> None:
                    pool.parallel_for(n, lambda lo, hi: f(*[x[lo:hi] for x in args],
                                                          out=o[lo:hi]), 1024)
                st = measure_interleaved({"whole": lambda f=f, args=args, o=o: f(*args, out=o),
                                          "split": split}, repeat=repeat, number=0)
                row[f"{name}_whole_us"] = st["whole"].median * 1e6
                row[f"{name}_split_us"] = st["split"].median * 1e6
            rows.append(row)
            apply_split(pool, np.add, (a, a), o)
    finally:
        pool.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-tf", action="store_true")
    ap.add_argument("--issue11", action="store_true",
                    help="also the issue-11 rows: scalar kernels, tanh layers, split threshold")
    ap.add_argument("--only-issue11", action="store_true", help="only the issue-11 rows")
    ap.add_argument("--only-tanh-layers", type=int, metavar="ROUNDS", default=0,
                    help="only the tanh layers, ours and TF interleaved for ROUNDS rounds")
    ap.add_argument("--only-mlp", action="store_true",
                    help="only the MLP rows (ours, the NumPy floor and TF, both ratios)")
    args = ap.parse_args()
    wait_for_compiled_loops()
    repeat = 7 if args.quick else 21
    tf = (lambda name, **kw: None) if args.no_tf else peer_tf
    if args.only_issue11:
        issue11(repeat, tf)
        return
    if args.only_tanh_layers:
        tanh_layers_interleaved(args.only_tanh_layers, not args.no_tf)
        return
    if args.only_mlp:
        print_table(mlp_rows(repeat, tf), ["benchmark", "actorflow", "TF 2.21", "target",
                                           "detail"])
        return
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
    rows += mlp_rows(repeat, tf)
    print_table(rows, ["benchmark", "actorflow", "TF 2.21", "target", "detail"])
    if args.issue11:
        issue11(repeat, tf)


def mlp_rows(repeat: int, tf: Any) -> list[dict]:
    """The MLP training steps against the NumPy floor: ours and TF's per step, both ratios
    (issue 11's bars: 64-128-10 at most 2.0x the floor, 784-1024-1024-10 at most 1.05x)."""
    rows = []
    for sizes, batch, target in (([64, 128, 10], 64, 2.0), ([784, 1024, 1024, 10], 256, 1.05)):
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
    return rows


def issue11(repeat: int, tf: Any) -> None:
    """Issue 11's rows: scalar kernels, the tanh layers, the split threshold."""
    rows = []
    n = 10_000
    sk = bench_scalar_kernels(n, repeat)
    peer = tf("scalar_chain", n=n, rewrites="off")
    peer_on = tf("scalar_chain", n=n, rewrites="on")
    rows.append({"benchmark": f"chain of {n:,} scalar x + 1.0",
                 "actorflow": f"{sk['chain_us_per_node']:.2f} us/node",
                 "TF 2.21": (f"{peer['figures']['us_per_node']:.2f} us/node" if peer else "-"),
                 "target": "<= 0.8 us/node",
                 "detail": f"no-op chain {sk['noop_us_per_node']:.2f} us/node"
                           + (f"; TF with Grappler {peer_on['figures']['us_per_node']:.3f}"
                              if peer_on else "")})
    peer = tf("scalar_add_n", n=n)
    rows.append({"benchmark": f"add_n over {n:,} scalar x + float(i)",
                 "actorflow": (f"{sk['add_n_us_per_node']:.2f} us/node"
                               if "add_n_us_per_node" in sk else "fails"),
                 "TF 2.21": (f"{peer['figures']['us_per_node']:.2f} us/node" if peer else "-"),
                 "target": "<= 1.2 us/node", "detail": str(sk.get("add_n_error", ""))})
    tl = bench_tanh_layers(2_000_000, 24, max(3, repeat // 3))
    peer = tf("tanh_layers", n=2_000_000, layers=24, repeat=max(3, repeat // 3))
    tf_ms = peer["figures"]["ms_per_run"] if peer else None
    rows.append({"benchmark": "24 x tanh(h)*1.5+c over 2M float32",
                 "actorflow": f"{tl['fused_split']:.1f} ms",
                 "TF 2.21": f"{tf_ms:.1f} ms" if tf_ms else "-",
                 "target": "<= TF",
                 "detail": f"fused 1 thread {tl['fused_1_thread']:.1f} ms, unfused 1 thread "
                           f"{tl['unfused_1_thread']:.1f} ms, NumPy {tl['numpy']:.1f} ms"
                           + (f"; ours/TF {tl['fused_split'] / tf_ms:.2f}x" if tf_ms else "")})
    print_table(rows, ["benchmark", "actorflow", "TF 2.21", "target", "detail"])
    print("\nintra-op split threshold (2 threads; us per call)")
    print_table(bench_split_threshold(max(5, repeat // 2)))


if __name__ == "__main__":
    main()
