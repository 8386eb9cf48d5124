"""The synchronous step in the cluster shape SyncReplicasOptimizer is for (issue 15, session
8): between-graph replication, 1 PS process and n worker processes, each worker its own
client process with its own replica, against TensorFlow 2.21's SyncReplicasOptimizer on the
same graph and the same cluster of separate processes, in the same run.

    python benchmarks/bench_sync_cluster.py [--shapes 2/2 2/3] [--trials 3] [--duration 3]
        [--no-tf]

The graph (both sides): softmax regression 64->10 on batches of 32 of random data
(``replica_device_setter``: the variables and the global step on the PS), GradientDescent(0.1)
wrapped in SyncReplicasOptimizer(k = replicas_to_aggregate, n = total_num_replicas).

Ours: ``af.LocalCluster(ps=1)`` (the PS a daemon process) and n worker processes, each hosting
its worker task in-process (``af.Server``, as TF's worker processes do) and stepping its
replica with the optimizer's hook (``hook.run``), the leader's aggregation folded into its
train step (``fold_sync=True``: one PS holds every variable).
TensorFlow's: ``peer_tf_coord.py sync_cluster``: a ``tf.distribute.Server`` per task (gRPC on
127.0.0.1, ``peer_tf.py``'s PS task and process machinery), the chief (task 0) running the
chief queue runner and the init tokens, as TF requires.

Each worker warms up (ours: also at least ``--warmup-s`` seconds, until the compiled loops
that the kernels load in the background on first use are there, in the PS daemon as well:
their one-time import must not land in the timed window), then steps for ``--duration`` s
reading the global step at the start and the end of its window: global steps/s. A trial's
figure is the median over its workers; the row's, the median over trials, ours and
TensorFlow's alternating (``bench_coordination``'s ``alternate`` and persistent ``TFPeer``).
Also the CPU time of a worker process per global step (its client and its worker task) and of
the PS process per global step (read from /proc between the windows' start, ours, or GO,
TensorFlow's, and the last worker's record). The bar (issue 15): our time per global step at
most 0.7x TensorFlow's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

import numpy as np  # noqa: E402

from benchmarks.bench_coordination import TFPeer, _fig, alternate  # noqa: E402
from benchmarks.bench_distributed import _read_line  # noqa: E402
from benchmarks.common import print_table, wait_for_compiled_loops  # noqa: E402
from benchmarks.peer_tf_coord import proc_cpu_seconds  # noqa: E402


# ---- the worker client process -------------------------------------------------------------
def _worker(params: dict[str, Any]) -> int:
    """Child: one worker task and its replica. The chief (task 0) initialises the variables
    and the optimizer's shared state before READY. On GO: the local step's init, `warmup`
    steps, then steps for `duration` s with the global step read at both ends; one JSON line;
    then it keeps stepping (so the others' windows finish) until STOP, and leaves."""
    import actorflow as af

    task, n, k = int(params["task"]), int(params["replicas"]), int(params["aggregate"])
    server = af.Server(af.ClusterSpec(params["cluster"]), "worker", task)
    rng = np.random.default_rng(task)
    data_x = rng.random((512, 64)).astype(np.float32)
    data_y = rng.integers(0, 10, 512).astype(np.int64)
    g = af.Graph()
    setter = af.train.replica_device_setter(cluster=params["cluster"],
                                            worker_device=f"/job:worker/task:{task}")
    with g.as_default(), af.device(setter):
        w = af.Variable(np.zeros((64, 10), np.float32), name="w")
        b = af.Variable(np.zeros(10, np.float32), name="b")
        step = af.train.get_or_create_global_step()
        x = af.placeholder(af.float32, (None, 64))
        y = af.placeholder(af.int64, (None,))
        loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=af.matmul(x, w) + b))
        opt = af.train.SyncReplicasOptimizer(af.train.GradientDescentOptimizer(0.1), k, n,
                                             fold_sync=not params.get("no_fold"))
        train = opt.minimize(loss, global_step=step)
        hook = opt.make_session_run_hook(is_chief=task == 0)
        init = af.global_variables_initializer()
        local_init = af.local_variables_initializer()
    try:
        with af.Session(server.target, graph=g) as sess:
            if task == 0:
                sess.run(init)
                sess.run(local_init)
                hook.after_create_session(sess)
            print("READY", flush=True)
            if sys.stdin.readline().strip() != "GO":
                return 0
            if task != 0:
                sess.run(local_init)
                hook.after_create_session(sess)
            stop = threading.Event()
            threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()),
                             daemon=True).start()

            def one() -> None:
                idx = rng.integers(0, 512, 32)
                hook.run(sess, train, {x: data_x[idx], y: data_y[idx]})

            # warm-up: `warmup` steps and at least `warmup_s` seconds, and this process's
            # compiled loops loaded: the kernels load them on a background thread on first
            # use (the PS's too, in its daemon: hence the seconds), and the timed window must
            # not share the CPU with that one-time import (~0.7-1.7 s of CPU a process)
            w_end = time.perf_counter() + float(params["warmup_s"])
            for _ in range(int(params["warmup"])):
                one()
            wait_for_compiled_loops()
            while time.perf_counter() < w_end:
                one()
            print("WINDOW", flush=True)
            s0, t0, c0 = int(sess.run(step)), time.perf_counter(), time.process_time()
            deadline = t0 + float(params["duration"])
            local = 0
            while time.perf_counter() < deadline:
                one()
                local += 1
            s1, t1, c1 = int(sess.run(step)), time.perf_counter(), time.process_time()
            print(json.dumps({"task": task, "global_steps": s1 - s0, "seconds": t1 - t0,
                              "cpu_seconds": c1 - c0, "local_steps": local,
                              "led": hook.leaders, "step_end": s1}), flush=True)
            try:
                while not stop.is_set():
                    one()
            except af.errors.OutOfRangeError:
                pass  # another replica left first and the gate closed: the job is over
            hook.end(sess)
    finally:
        server.stop()
    return 0


# ---- the driver ----------------------------------------------------------------------------
def run_ours(n: int, k: int, duration: float, warmup: int, warmup_s: float
             ) -> tuple[list[dict[str, float]], float]:
    """One trial: a LocalCluster's PS daemon and n worker processes; each worker's record,
    and the PS process's CPU seconds from GO to the last record."""
    from actorflow.cluster import LocalCluster, child_env, spawn, stop_processes

    with LocalCluster(ps=1, workers=n, daemon_jobs=("ps",)) as cluster:
        spec = cluster.as_dict()
        procs: list[subprocess.Popen[str]] = []
        try:
            env = child_env()
            common = {"cluster": spec, "replicas": n, "aggregate": k, "duration": duration,
                      "warmup": warmup, "warmup_s": warmup_s}
            for i in range(n):
                procs.append(spawn([sys.executable, __file__, "_worker",
                                    json.dumps({**common, "task": i})],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                   text=True))
            for p in procs:  # the chief's READY comes after the shared state's init
                if _read_line(p, 300).strip() != "READY":
                    raise RuntimeError(f"worker {p.args} did not say READY")
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("GO\n")
                p.stdin.flush()
            for p in procs:  # the PS's CPU counts from the timed windows' start
                if _read_line(p, 120 + 4 * warmup_s).strip() != "WINDOW":
                    raise RuntimeError(f"worker {p.args} did not start its window")
            ps_cpu0 = proc_cpu_seconds(cluster.pid("ps", 0))
            per = [json.loads(_read_line(p, 120 + 4 * duration)) for p in procs]
            ps_cpu = proc_cpu_seconds(cluster.pid("ps", 0)) - ps_cpu0
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("STOP\n")
                p.stdin.flush()
            for p in procs:
                p.wait(timeout=60)
        finally:
            stop_processes(procs, timeout=2.0)
    return per, ps_cpu


def _summary(per: list[dict[str, float]], ps_cpu: float) -> tuple[float, float, float]:
    """(global steps/s, CPU s of a worker process per global step: medians over workers, CPU
    s of the PS process per global step: from GO (the global step then 0: a fresh cluster)
    to the last worker's record)."""
    rates = [w["global_steps"] / w["seconds"] for w in per]
    cpu = [w["cpu_seconds"] / max(w["global_steps"], 1) for w in per]
    return (statistics.median(rates), statistics.median(cpu),
            ps_cpu / max(max(w["step_end"] for w in per), 1))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        return _worker(json.loads(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["2/2", "2/3"],
                    help="k/n: replicas_to_aggregate / worker processes")
    ap.add_argument("--trials", type=int, default=3, help="alternating trials per shape")
    ap.add_argument("--duration", type=float, default=3.0, help="timed window, s")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up steps (both systems)")
    ap.add_argument("--warmup-s", type=float, default=2.5,
                    help="ours: warm-up seconds at least (the daemons' compiled loops load)")
    ap.add_argument("--no-tf", action="store_true", help="skip TensorFlow's figures")
    a = ap.parse_args(argv)
    tfp = None if a.no_tf else TFPeer()
    rows = []
    try:
        for shape in a.shapes:
            k, n = (int(v) for v in shape.split("/"))
            cpu: dict[str, list[float]] = {"ours": [], "tf": []}
            pcpu: dict[str, list[float]] = {"ours": [], "tf": []}

            def ours(k: int = k, n: int = n, cpu: dict[str, list[float]] = cpu,
                     pcpu: dict[str, list[float]] = pcpu) -> float:
                rate, c, pc = _summary(*run_ours(n, k, a.duration, a.warmup, a.warmup_s))
                cpu["ours"].append(c)
                pcpu["ours"].append(pc)
                return 1.0 / rate

            def tf(k: int = k, n: int = n, cpu: dict[str, list[float]] = cpu,
                   pcpu: dict[str, list[float]] = pcpu) -> float:
                assert tfp is not None
                r = tfp("sync_cluster", replicas=n, aggregate=k, duration=a.duration,
                        warmup=a.warmup)
                rate, c, pc = _summary(r["workers"], float(r["ps_cpu_seconds"]))
                cpu["tf"].append(c)
                pcpu["tf"].append(pc)
                return 1.0 / rate

            mine, theirs = alternate(a.trials, ours, None if tfp is None else tf)
            label = f"k={k} of n={n} worker processes, 1 PS"
            row: dict[str, Any] = {"benchmark": f"{label}: wall time per global step",
                                   "ours": _fig(mine, 1e3, "ms")}
            crow: dict[str, Any] = {"benchmark": "  CPU of one worker process per global step",
                                    "ours": _fig(cpu["ours"], 1e3, "ms")}
            prow: dict[str, Any] = {"benchmark": "  CPU of the PS process per global step",
                                    "ours": _fig(pcpu["ours"], 1e3, "ms")}
            if theirs:
                r = statistics.median(mine) / statistics.median(theirs)
                row.update(tf=_fig(theirs, 1e3, "ms"), ratio=f"{r:.2f}x", bar="<= 0.7x",
                           ok=r <= 0.7)
                r = statistics.median(cpu["ours"]) / statistics.median(cpu["tf"])
                crow.update(tf=_fig(cpu["tf"], 1e3, "ms"), ratio=f"{r:.2f}x")
                r = statistics.median(pcpu["ours"]) / statistics.median(pcpu["tf"])
                prow.update(tf=_fig(pcpu["tf"], 1e3, "ms"), ratio=f"{r:.2f}x")
            rows += [row, crow, prow]
            print(f"done {shape}", file=sys.stderr, flush=True)
    finally:
        if tfp is not None:
            tfp.close()
    print("synchronous step, between-graph replication (separate processes, 127.0.0.1); "
          "ratio = ours / TensorFlow (medians)")
    print_table(rows, ["benchmark", "ours", "tf", "ratio", "bar", "ok"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
