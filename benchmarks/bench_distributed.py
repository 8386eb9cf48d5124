"""The papers' null-model parameter-server step (OSDI Figure 7), scaled to one machine.

2 PS tasks (worker daemons started by `af.LocalCluster`), and 1, 2 and 4 worker client
processes stepping asynchronously. Each worker step reads the parameters from the PS tasks,
does a trivial computation on its own task, and sends an update:

- scalar: one float32 on ps0: read, ``x * 0 + 1``, assign_add;
- dense: 10 MiB as two float32 vectors, one per PS task: read both, ``x * 0 + 1e-3``,
  assign_add both;
- sparse: a 64 MiB table of 64-float rows, row r on PS task r % 2: 32 random ids split by
  parity with dynamic_partition on the worker, the rows gathered on each PS, ``rows * 0 +
  1e-3`` on the worker, scatter-added back (the same graph as TensorFlow's).

Each worker process hosts its own worker task in-process (``af.Server``, as TF's worker
processes do; ``--worker-daemons`` uses daemons instead and clients connect to them), builds the
three models in one graph, and on ``GO MODEL`` warms up then times steps for ``--duration``
seconds. The figure is the median step time over every step of every worker, side by side with
TensorFlow 2.21's (``peer_tf("nullmodel_ps")``, the same graph) in the same run; the target is
a ratio <= 0.7.

    python benchmarks/bench_distributed.py [--workers 1 2 4] [--duration 3] [--no-tf]
        [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import peer_tf, print_table  # noqa: E402

MODELS = ("scalar", "dense", "sparse")
DENSE_BYTES = 10 * 2**20    # 10 MiB over the 2 PS tasks
SPARSE_BYTES = 64 * 2**20   # 64 MiB table, half per PS task
SPARSE_WIDTH = 64           # floats per row
SPARSE_ROWS_PER_STEP = 32
TF_MS = {  # TensorFlow 2.21 measured on this machine (the figures), ms at 1/2/4
    "scalar": {1: 1.20, 2: 1.85, 4: 4.07},
    "dense": {1: 15.9, 2: 36.6, 4: 63.1},
    "sparse": {1: 2.83, 2: 5.50, 4: 7.24},
}


# ---- the worker client process -------------------------------------------------------------
def build_null_models(task: int) -> tuple[Any, dict[str, Any], Any, Any]:
    """(graph, step op per model, scalar variable, init op) for worker `task`."""
    import actorflow as af

    ps = ["/job:ps/task:0", "/job:ps/task:1"]
    wk = f"/job:worker/task:{task}"
    g = af.Graph()
    steps: dict[str, Any] = {}
    with g.as_default():
        with af.device(ps[0]):
            s = af.Variable(np.float32(0), name="scalar")
        with af.device(wk):
            s_delta = s.value() * 0.0 + 1.0
        steps["scalar"] = s.assign_add(s_delta).op

        half = DENSE_BYTES // 4 // 2
        updates = []
        for k, dev in enumerate(ps):
            with af.device(dev):
                d = af.Variable(af.zeros((half,), af.float32), name=f"dense{k}")
            with af.device(wk):
                d_delta = d.value() * 0.0 + 1e-3
            updates.append(d.assign_add(d_delta).op)
        with af.device(wk):  # where TF's session puts it (its client task), not on a PS
            steps["dense"] = af.group(*updates)

        rows_total = SPARSE_BYTES // 4 // SPARSE_WIDTH  # row r lives on ps r % 2, as in TF's
        rows_per_ps = rows_total // 2
        tables = []
        for k, dev in enumerate(ps):
            with af.device(dev):
                tables.append(af.Variable(af.zeros((rows_per_ps, SPARSE_WIDTH), af.float32),
                                          name=f"table{k}"))
        with af.device(wk):
            ids = af.random_uniform([SPARSE_ROWS_PER_STEP], 0, rows_total, dtype=af.int64)
            local = af.dynamic_partition(ids // 2, af.cast(ids % 2, af.int32), 2)
        updates = []
        for k, dev in enumerate(ps):
            with af.device(dev):
                rows = af.gather(tables[k], local[k])  # on the PS: only the rows travel
            with af.device(wk):
                delta = rows * 0.0 + 1e-3
            updates.append(af.scatter_add(tables[k].handle, local[k], delta).op)
        with af.device(wk):
            steps["sparse"] = af.group(*updates)
        init = af.global_variables_initializer()
    return g, steps, s, init


def _worker(params: dict[str, Any]) -> int:
    """Child: one worker task. READY once its session is up (task 0 initialises first), then
    obeys stdin: ``GO MODEL`` (warm up, time steps for `duration` s, print the times as one
    JSON line), ``CHECK`` (print the scalar's value), ``QUIT``."""
    import actorflow as af

    task = int(params["task"])
    if params.get("no_send_ahead"):  # issue 11: measure the master's send-ahead against none
        from scheduler.distributed import _Flight
        _Flight.send_ahead = lambda self: None  # type: ignore[method-assign]
    server = None
    target = params["target"]
    if params["inproc"]:
        server = af.Server(af.ClusterSpec(params["cluster"]), "worker", task)
        target = server.target
    g, steps, scalar, init = build_null_models(task)
    with g.as_default():
        scalar_value = scalar.read_value()
    try:
        with af.Session(target, graph=g) as sess:
            if task == 0:
                sess.run(init)
            print("READY", flush=True)
            for line in sys.stdin:
                cmd = line.split()
                if not cmd or cmd[0] == "QUIT":
                    break
                if cmd[0] == "CHECK":
                    print(json.dumps({"scalar": float(sess.run(scalar_value))}), flush=True)
                    continue
                op = steps[cmd[1]]
                run = sess.make_callable(op)
                for _ in range(int(params["warmup"])):
                    run()
                times = []
                clock = time.perf_counter
                deadline = clock() + float(params["duration"])
                while True:
                    t0 = clock()
                    run()
                    t1 = clock()
                    times.append(t1 - t0)
                    if t1 >= deadline:
                        break
                print(json.dumps({"model": cmd[1], "task": task, "times": times}), flush=True)
    finally:
        if server is not None:
            server.stop()
    return 0


# ---- the driver ----------------------------------------------------------------------------
def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    if not line:
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        raise RuntimeError(f"a worker process exited (status {rc}) without output; its "
                           f"stderr is above")
    return line


def run_actorflow(workers_list: list[int], models: list[str], duration: float, warmup: int,
                  inproc: bool, no_send_ahead: bool = False
                  ) -> dict[str, dict[int, dict[str, float]]]:
    from actorflow.cluster import LocalCluster, child_env, spawn, stop_processes

    table: dict[str, dict[int, dict[str, float]]] = {m: {} for m in models}
    for nw in workers_list:
        daemon_jobs = ("ps",) if inproc else ("ps", "worker")
        with LocalCluster(ps=2, workers=nw, daemon_jobs=daemon_jobs) as cluster:
            spec = cluster.as_dict()
            procs: list[subprocess.Popen[str]] = []
            try:
                env = child_env()
                for k in range(nw):
                    params = {"task": k, "cluster": spec, "target": cluster.target("worker", k),
                              "inproc": inproc, "duration": duration, "warmup": warmup,
                              "no_send_ahead": no_send_ahead}
                    procs.append(spawn([sys.executable, __file__, "_worker", json.dumps(params)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       env=env, text=True))
                # All at once: a session waits for every task of the cluster; task 0
                # initialises the variables before its READY, and nobody steps before GO.
                for p in procs:
                    if _read_line(p, 300).strip() != "READY":
                        raise RuntimeError(f"worker {p.args} did not say READY")
                for model in models:
                    for p in procs:
                        p.stdin.write(f"GO {model}\n")
                        p.stdin.flush()
                    per_worker = [np.asarray(json.loads(_read_line(p, 120 + 4 * duration))
                                             ["times"]) for p in procs]
                    times = np.concatenate(per_worker)
                    p10, med, p90 = np.percentile(times, [10, 50, 90])
                    table[model][nw] = {
                        "median_ms": float(med) * 1e3, "p10_ms": float(p10) * 1e3,
                        "p90_ms": float(p90) * 1e3, "steps": int(times.size),
                        "steps_per_s": float(sum(len(t) / t.sum() for t in per_worker))}
                    print(f"actorflow {model:6s} workers={nw}: median "
                          f"{table[model][nw]['median_ms']:.3g} ms "
                          f"({table[model][nw]['steps']} steps)", file=sys.stderr, flush=True)
                for p in procs:
                    p.stdin.write("QUIT\n")
                    p.stdin.flush()
                for p in procs:
                    p.wait(timeout=30)
            finally:
                stop_processes(procs, timeout=2.0)
    return table


def _median_of(trials: list[dict[str, float]]) -> dict[str, float]:
    """One figure from several trials of a configuration: each field's median over them."""
    return {k: float(np.median([t[k] for t in trials])) for k in trials[0]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        return _worker(json.loads(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--duration", type=float, default=3.0, help="timed seconds per config")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--worker-daemons", action="store_true",
                    help="worker tasks as daemons, clients in other processes")
    ap.add_argument("--no-tf", action="store_true", help="skip the TensorFlow peer")
    ap.add_argument("--repeat", type=int, default=1,
                    help="trials per worker count, actorflow and TensorFlow alternating; each "
                         "figure is then the median of the trials' medians")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--no-send-ahead", action="store_true",
                    help="sync masters do not send run_graph requests from the caller's thread")
    args = ap.parse_args(argv)

    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    # Each worker count: actorflow, then TensorFlow right after (the machine's speed drifts
    # over minutes, so the two sides of a ratio are measured close together), `repeat` times.
    ours: dict[str, dict[int, dict[str, float]]] = {m: {} for m in args.models}
    tf: dict[str, Any] | None = None if args.no_tf else {"table": {m: {} for m in args.models}}
    trials: dict[str, dict[int, list]] = {m: {nw: [] for nw in args.workers}
                                          for m in args.models}
    for nw in args.workers:
        tf_trials: dict[str, list[float]] = {m: [] for m in args.models}
        for _ in range(args.repeat):
            part = run_actorflow([nw], args.models, args.duration, args.warmup,
                                 inproc=not args.worker_daemons,
                                 no_send_ahead=args.no_send_ahead)
            for m in args.models:
                trials[m][nw].append(part[m][nw])
            if tf is not None:
                got = peer_tf("nullmodel_ps", workers=[nw], models=args.models,
                              duration=args.duration, warmup=args.warmup)
                for m in args.models:
                    tf_trials[m].append(got["table"][m][str(nw)]["median_ms"])
                tf.setdefault("runs", []).append(got)
        for m in args.models:
            ours[m][nw] = _median_of(trials[m][nw])
            if tf is not None:
                tf["table"][m][str(nw)] = {"median_ms": float(np.median(tf_trials[m])),
                                           "trials_ms": tf_trials[m]}
    rows = []
    for m in args.models:
        for nw in args.workers:
            a = ours[m][nw]
            t = tf["table"][m][str(nw)]["median_ms"] if tf else None
            rows.append({"model": m, "workers": nw, "af_ms": a["median_ms"],
                         "af_p10": a["p10_ms"], "af_p90": a["p90_ms"], "tf_ms": t,
                         "ratio": a["median_ms"] / t if t else None,
                         "tf_ref_ms": TF_MS[m].get(nw),
                         "ratio_ref": a["median_ms"] / TF_MS[m][nw] if nw in TF_MS[m] else None,
                         "af_steps_s": a["steps_per_s"]})
    print("null-model PS step, 2 PS tasks, asynchronous workers; median ms per step "
          "(ratio = actorflow / TensorFlow, target <= 0.7)")
    print_table(rows)
    if args.repeat > 1:
        print(f"(each figure: the median of {args.repeat} trials' medians; actorflow's trials "
              "in ms:)")
        for m in args.models:
            for nw in args.workers:
                got = ", ".join(f"{t['median_ms']:.3g}" for t in trials[m][nw])
                theirs = (", ".join(f"{t:.3g}" for t in tf["table"][m][str(nw)]["trials_ms"])
                          if tf else "")
                print(f"  {m} {nw}: {got}" + (f"   TensorFlow: {theirs}" if theirs else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "tf": tf, "trials": trials},
                                              indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
