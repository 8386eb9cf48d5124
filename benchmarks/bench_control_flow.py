"""Dynamic control flow (issue: control flow): while loops through the executor's frames,
measured side by side in one run with TensorFlow 2.21 (graph mode, TF1 control flow) when
`.tfenv` exists and with hand-written NumPy floors.

  (a) scalar loop ``while i < n: i, acc = i + 1, acc + i`` on int64 scalars: iterations per
      second (target: at least 100,000; TF here about 280,000);
  (b) while-loop RNN ``h = tanh(h @ W + x_t)``, T = 100, H = 64, batch 32, float32: forward,
      and forward plus dL/dW (L = sum h_T), against TF and `floors.rnn_forward(_backward)`
      (issue 11's bar: forward+gradient at most TF's time; values agree with NumPy's within
      5e-7 on h_T and 1e-5 on dW, printed);
  (c) parallel iterations: a loop whose body waits 2 ms on an asynchronous kernel, with
      parallel_iterations 1 and 10 (the speedup from overlapping iterations).

`--profile` prints instead where (b)'s forward+gradient run spends its time: per node of the
two loops (op, calls per run, time per run, 10th percentile per call) from FULL_TRACE run
metadata, beside the untraced run's time (tracing adds ~1 us a node).

    python benchmarks/bench_control_flow.py [--quick] [--no-tf] [--only-rnn] [--profile]
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
from actorflow.op_def import apply_op, define_op  # noqa: E402
from benchmarks import floors  # noqa: E402
from benchmarks.common import measure, measure_interleaved, peer_tf, print_table  # noqa: E402
from devices.kernels.math import SGEMM_LOOP  # noqa: E402
from devices.kernels.registry import register_kernel  # noqa: E402


def bench_while_scalar(n: int, repeat: int) -> dict:
    g = af.Graph()
    with g.as_default():
        limit = af.constant(n, af.int64)
        i, acc = af.while_loop(lambda i, a: i < limit, lambda i, a: (i + 1, a + i),
                               (af.constant(0, af.int64), af.constant(0, af.int64)))
    with af.Session(graph=g) as s:
        got = s.run([i, acc])
        assert (int(got[0]), int(got[1])) == floors.python_while_scalar(n)
        st = measure(lambda: s.run([i, acc]), warmup=1, repeat=repeat, number=1)
    t0 = time.perf_counter()
    floors.python_while_scalar(n)
    py = time.perf_counter() - t0
    return {"n": n, "iterations_per_s": n / st.median, "us_per_iteration": st.median / n * 1e6,
            "p90_us_per_iteration": st.p90 / n * 1e6, "python_us_per_iteration": py / n * 1e6}


def rnn_graph(x_np: np.ndarray, w_np: np.ndarray, h0_np: np.ndarray,
              parallel: int = 10, inputs: str = "gather") -> tuple:
    """The TF peer's RNN: x_t read with af.gather (as the peer does) or, with
    inputs="tensor_array", from a TensorArray unstacked once (as TF's dynamic_rnn does)."""
    T = x_np.shape[0]
    g = af.Graph()
    with g.as_default():
        x = af.Variable(x_np, name="x", trainable=False)
        w = af.Variable(w_np, name="W")
        h0 = af.constant(h0_np)
        if inputs == "gather":
            read = lambda t: af.gather(x, t)  # noqa: E731
        else:
            xs = af.TensorArray(af.float32, size=T).unstack(x)
            read = xs.read

        def body(t, h):
            return t + 1, af.tanh(af.matmul(h, w) + read(t))

        _, h_t = af.while_loop(lambda t, h: t < T, body, (af.constant(0, af.int32), h0),
                               parallel_iterations=parallel)
        loss = af.reduce_sum(h_t)
        (dw,) = af.gradients(loss, [w])
        init = af.global_variables_initializer()
    return g, h_t, loss, dw, init


def bench_rnn(T: int, H: int, batch: int, repeat: int, inputs: str = "gather") -> dict:
    x_np, w_np, h0_np = floors.make_rnn_data(T, batch, H, 0)
    g, h_t, loss, dw, init = rnn_graph(x_np, w_np, h0_np, inputs=inputs)
    with af.Session(graph=g) as s:
        s.run(init)
        h_v = s.run(h_t)
        loss_v, dw_v = s.run([loss, dw])
        SGEMM_LOOP.ready(60)  # the steady state: the compiled products loaded (off-thread)
        check = {
            "h_T_max_abs_diff": float(np.abs(h_v - floors.rnn_forward(x_np, w_np, h0_np)).max()),
            "dW_max_abs_diff": float(np.abs(
                dw_v - floors.rnn_forward_backward(x_np, w_np, h0_np)[1]).max()),
        }
        st = measure_interleaved({
            "forward": lambda: s.run(h_t),
            "forward_backward": lambda: s.run([loss, dw]),
            "numpy_forward": lambda: floors.rnn_forward(x_np, w_np, h0_np),
            "numpy_forward_backward": lambda: floors.rnn_forward_backward(x_np, w_np, h0_np),
        }, repeat=repeat, number=0)
    return {"forward_ms": st["forward"].median * 1e3,
            "forward_backward_ms": st["forward_backward"].median * 1e3,
            "numpy_forward_ms": st["numpy_forward"].median * 1e3,
            "numpy_forward_backward_ms": st["numpy_forward_backward"].median * 1e3,
            "check": check}


def profile_rnn(T: int, H: int, batch: int, runs: int) -> None:
    """Per-node kernel time of the RNN's forward+gradient run, from FULL_TRACE metadata."""
    x_np, w_np, h0_np = floors.make_rnn_data(T, batch, H, 0)
    g, _, loss, dw, init = rnn_graph(x_np, w_np, h0_np)
    opts = af.RunOptions(trace_level=af.RunOptions.FULL_TRACE)
    per: dict[tuple[str, str], list[float]] = {}
    with af.Session(graph=g) as s:
        s.run(init)
        for _ in range(5):
            s.run([loss, dw])
        SGEMM_LOOP.ready(60)
        plain = measure(lambda: s.run([loss, dw]), warmup=1, repeat=runs, number=0).median
        traced = []
        for _ in range(runs):
            md = af.RunMetadata()
            t0 = time.perf_counter()
            s.run([loss, dw], options=opts, run_metadata=md)
            traced.append(time.perf_counter() - t0)
            for n in md.step_stats.nodes:
                per.setdefault((n.node_name, n.op), []).append(n.end_s - n.start_s)
    rows = []  # per run: calls x the median call (a mean would carry the GC's pauses)
    cost = {k: float(np.median(ts)) * len(ts) / runs for k, ts in per.items()}
    for (name, op), ts in sorted(per.items(), key=lambda kv: -cost[kv[0]]):
        if cost[(name, op)] < 5e-6:
            continue
        rows.append({"node": name[-48:], "op": op, "calls_per_run": len(ts) // runs,
                     "ms_per_run": cost[(name, op)] * 1e3,
                     "median_us_per_call": float(np.median(ts)) * 1e6,
                     "p10_us_per_call": float(np.percentile(ts, 10)) * 1e6})
    total = sum(cost.values())
    print(f"\nRNN T={T} H={H} batch={batch} forward+gradient: untraced {plain * 1e3:.3f} ms, "
          f"traced {float(np.median(traced)) * 1e3:.3f} ms, traced nodes' own time "
          f"{total * 1e3:.3f} ms per run (calls x median; nodes under 5 us a run left out)")
    print_table(rows)


# ---- (c) overlapping iterations -------------------------------------------------------------
_WAIT_S = 0.002
define_op("BenchAsyncWait", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)],
          stateful=True)


@register_kernel("BenchAsyncWait", device_types=("CPU", "GPU"), stateful=True, is_async=True)
def _bench_wait(k):  # an asynchronous kernel: 2 ms of waiting (an RPC, a device event)
    async def compute(ctx, x):
        await trio.sleep(_WAIT_S)
        return (x,)
    compute.poll = lambda ctx, x: None
    return compute


def bench_parallel_iterations(n: int, repeat: int) -> dict:
    g = af.Graph()
    loops = {}
    with g.as_default():
        for p in (1, 10):
            def body(i, acc):
                waited = apply_op("BenchAsyncWait", [af.cast(i, af.float32)])[0]
                return i + 1, acc + waited
            loops[p] = af.while_loop(lambda i, a: i < n, body, (0, 0.0),
                                     parallel_iterations=p)[1]
    with af.Session(graph=g) as s:
        st = measure_interleaved({p: (lambda t=t: s.run(t)) for p, t in loops.items()},
                                 warmup=1, repeat=repeat, number=1)
    return {"iterations": n, "wait_ms": _WAIT_S * 1e3,
            "parallel_1_ms": st[1].median * 1e3, "parallel_10_ms": st[10].median * 1e3,
            "speedup": st[1].median / st[10].median}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--no-tf", action="store_true", help="skip the TensorFlow peer")
    ap.add_argument("--only-rnn", action="store_true", help="only (b), the RNN rows")
    ap.add_argument("--profile", action="store_true",
                    help="only the per-node profile of (b)'s forward+gradient run")
    args = ap.parse_args()
    if args.profile:
        profile_rnn(100, 64, 32, 5 if args.quick else 20)
        return
    repeat = 5 if args.quick else 15
    n = 100_000

    # TF runs before and after ours (these machines are noisy); each side keeps its best
    tf_scalar = tf_rnn = None
    rounds = 1 if args.quick or args.no_tf else 2
    scalars, rnns, rnns_ta, tf_scalars, tf_rnns = [], [], [], [], []
    for _ in range(rounds):
        if not args.no_tf:
            if not args.only_rnn:
                tf_scalars.append(peer_tf("while_scalar", n=n, repeat=3 if args.quick else 7))
            tf_rnns.append(peer_tf("rnn", T=100, H=64, batch=32, repeat=repeat))
        if not args.only_rnn:
            scalars.append(bench_while_scalar(n, 3 if args.quick else 7))
        rnns.append(bench_rnn(100, 64, 32, repeat))
        rnns_ta.append(bench_rnn(100, 64, 32, repeat, inputs="tensor_array"))
    rnn = {k: min(r[k] for r in rnns) if k != "check" else rnns[0][k] for k in rnns[0]}
    rnn_ta = {k: min(r[k] for r in rnns_ta) if k != "check" else rnns_ta[0][k]
              for k in rnns_ta[0]}
    if tf_scalars and tf_scalars[0] is not None:
        tf_scalar = min(tf_scalars, key=lambda r: r["figures"]["us_per_iteration"])
    if tf_rnns and tf_rnns[0] is not None:
        tf_rnn = {"figures": {k: min(r["figures"][k] for r in tf_rnns)
                              for k in ("forward_ms", "forward_backward_ms")}}
    if not args.only_rnn:
        _print_scalar(min(scalars, key=lambda r: r["us_per_iteration"]), tf_scalar)
    _print_rnn(rnn, rnn_ta, tf_rnn)
    if not args.only_rnn:
        print("\n(c) overlapping iterations: each body waits 2 ms on an asynchronous kernel")
        print_table([bench_parallel_iterations(40, 3 if args.quick else 7)])


def _print_scalar(scalar: dict, tf_scalar: dict | None) -> None:
    print("\n(a) scalar while loop, int64, n = 100,000")
    row = {"system": "actorflow", "iterations_per_s": scalar["iterations_per_s"],
           "us_per_iteration": scalar["us_per_iteration"]}
    rows = [row]
    if tf_scalar:
        rows.append({"system": "tensorflow", **{k: tf_scalar["figures"][k] for k in
                                                ("iterations_per_s", "us_per_iteration")}})
    rows.append({"system": "pure python", "iterations_per_s":
                 1e6 / scalar["python_us_per_iteration"],
                 "us_per_iteration": scalar["python_us_per_iteration"]})
    print_table(rows)
    print(f"target >= 100,000 iterations/s: "
          f"{'met' if scalar['iterations_per_s'] >= 1e5 else 'NOT met'}")


def _print_rnn(rnn: dict, rnn_ta: dict, tf_rnn: dict | None) -> None:
    print("\n(b) while-loop RNN, T = 100, H = 64, batch 32 (ms per run; TF and the NumPy floor "
          "measured in the same run)")
    tf_f = tf_rnn["figures"] if tf_rnn else {}
    rows = []
    for label, r in (("x_t by gather, as TF's peer", rnn), ("x_t from a TensorArray", rnn_ta)):
        for key, floor_key, bar in (("forward_ms", "numpy_forward_ms", None),
                                    ("forward_backward_ms", "numpy_forward_backward_ms", 1.0)):
            tf_ms = tf_f.get(key)
            ratio = r[key] / tf_ms if tf_ms else None
            rows.append({"actorflow": f"{label}, {key[:-3]}", "ours_ms": r[key],
                         "tensorflow_ms": tf_ms if tf_ms else "-",
                         "numpy_floor_ms": r[floor_key],
                         "ours/tf": f"{ratio:.2f}" if ratio else "-",
                         "ours/floor": f"{r[key] / r[floor_key]:.2f}",
                         "bar": (f"<= {bar:.1f} TF: {'met' if ratio <= bar else 'NOT met'}"
                                 if bar and ratio else "-")})
    print_table(rows)
    print(f"agreement with NumPy (max abs difference; bars 5e-7 and 1e-5): {rnn['check']}")


if __name__ == "__main__":
    main()
