"""TensorFlow 2.21 graph-mode (``tf.compat.v1``) peers of ``bench_coordination.py``.

Runs inside ``.tfenv`` (never in actorflow's environment) and prints one JSON line:

    .tfenv/bin/python benchmarks/peer_tf_coord.py NAME --params '{"steps": 200}'
    .tfenv/bin/python benchmarks/peer_tf_coord.py serve    # JSON requests on stdin, one a line

Benchmarks (``NAME``):
* ``sync_step``: TF's SyncReplicasOptimizer over a softmax regression on digits-shaped
  random data, `replicas` worker threads sharing one in-process Session (the same shape as
  ours: in-graph replicas, one process), the chief queue runner started as TF requires;
  seconds per global step.
* ``queue_throughput``: one producer thread enqueuing scalar float32 tensors and one consumer
  thread dequeuing them through a FIFOQueue of capacity 100 in one Session; elements/s.
* ``queue_two_sessions``: the same through two Sessions (producer, consumer) of one
  in-process server, the queue shared by name.
* ``sync_cluster``: the cluster shape SyncReplicasOptimizer is for: 1 PS process and
  `replicas` worker processes (between-graph, each its own client and `tf.distribute.Server`,
  gRPC on 127.0.0.1; peer_tf.py's process machinery), global steps per second per worker.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf() -> Any:
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    return tf


def sync_step(params: dict) -> dict:
    tf = _tf()
    v1 = tf.compat.v1
    n, k = int(params.get("replicas", 2)), int(params.get("aggregate", 2))
    steps = int(params.get("steps", 200))
    rng = __import__("numpy").random.default_rng(0)
    data_x = rng.random((512, 64)).astype("float32")
    data_y = rng.integers(0, 10, 512).astype("int64")
    g = tf.Graph()
    with g.as_default():
        w = v1.get_variable("w", initializer=tf.zeros((64, 10)))
        b = v1.get_variable("b", initializer=tf.zeros((10,)))
        step = v1.train.get_or_create_global_step()
        x = v1.placeholder(tf.float32, (None, 64))
        y = v1.placeholder(tf.int64, (None,))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=tf.matmul(x, w) + b))
        opt = v1.train.SyncReplicasOptimizer(v1.train.GradientDescentOptimizer(0.1), k, n)
        train = opt.minimize(loss, global_step=step)
        init = v1.global_variables_initializer()
        local_init = opt.local_step_init_op
        chief_qr = opt.get_chief_queue_runner()
        tokens = opt.get_init_tokens_op()
        sess = v1.Session(graph=g)
        sess.run([init, v1.local_variables_initializer()])
        sess.run(opt.chief_init_op)
        sess.run(local_init)
        coord = v1.train.Coordinator()
        qr_threads = chief_qr.create_threads(sess, coord=coord, daemon=True, start=True)
        sess.run(tokens)
        stop = threading.Event()

        def work(i: int) -> None:
            r = __import__("numpy").random.default_rng(i)
            while not stop.is_set():
                idx = r.integers(0, 512, 32)
                try:
                    sess.run(train, {x: data_x[idx], y: data_y[idx]})
                except Exception:  # noqa: BLE001 - the session closes at the end
                    return

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        while sess.run(step) < 20:  # warm up
            time.sleep(0.02)
        s0, t0, c0 = sess.run(step), time.perf_counter(), time.process_time()
        while sess.run(step) < s0 + steps:
            time.sleep(0.02)
        s1, t1, c1 = sess.run(step), time.perf_counter(), time.process_time()
        stop.set()
        coord.request_stop()
        sess.close()
        del qr_threads
    per_step = (t1 - t0) / (s1 - s0)
    return {"name": "sync_step", "tf_version": tf.__version__, "params": params,
            "seconds_per_step": per_step, "cpu_seconds_per_step": (c1 - c0) / (s1 - s0),
            "steps": int(s1 - s0)}


def queue_throughput(params: dict) -> dict:
    tf = _tf()
    v1 = tf.compat.v1
    n = int(params.get("elements", 5000))
    g = tf.Graph()
    with g.as_default():
        q = v1.FIFOQueue(100, [tf.float32], shapes=[()])
        enq = q.enqueue([tf.constant(1.0)])
        deq = q.dequeue()
        sess = v1.Session(graph=g)
        for _ in range(50):  # warm up
            sess.run(enq)
            sess.run(deq)

        def produce() -> None:
            for _ in range(n):
                sess.run(enq)

        t0, c0 = time.perf_counter(), time.process_time()
        t = threading.Thread(target=produce)
        t.start()
        for _ in range(n):
            sess.run(deq)
        t.join()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        sess.close()
    return {"name": "queue_throughput", "tf_version": tf.__version__, "params": params,
            "elements_per_s": n / dt, "cpu_seconds_per_element": cpu / n}


def queue_two_sessions(params: dict) -> dict:
    """The same, with the producer and the consumer in two Sessions of one in-process
    server (tf.distribute.Server.create_local_server), the queue shared by name."""
    tf = _tf()
    v1 = tf.compat.v1
    n = int(params.get("elements", 2000))
    server = v1.train.Server.create_local_server()
    sessions, ops = [], []
    for _ in range(2):
        g = tf.Graph()
        with g.as_default():
            q = v1.FIFOQueue(100, [tf.float32], shapes=[()], shared_name="bench_q")
            ops.append((q.enqueue([tf.constant(1.0)]), q.dequeue()))
        sessions.append(v1.Session(server.target, graph=g))
    prod, cons = sessions
    for _ in range(50):
        prod.run(ops[0][0])
        cons.run(ops[1][1])

    def produce() -> None:
        for _ in range(n):
            prod.run(ops[0][0])

    t0, c0 = time.perf_counter(), time.process_time()
    t = threading.Thread(target=produce)
    t.start()
    for _ in range(n):
        cons.run(ops[1][1])
    t.join()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    for s in sessions:
        s.close()
    return {"name": "queue_two_sessions", "tf_version": tf.__version__, "params": params,
            "elements_per_s": n / dt, "cpu_seconds_per_element": cpu / n}


# ---- between-graph replication: 1 PS process and n worker processes (issue 15, session 8)
def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc; stdlib only, so the
    main environment's bench_sync_cluster imports it too)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peer_tf() -> Any:
    """``benchmarks/peer_tf.py``: its process machinery (`_Children`, ports, the PS task)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import peer_tf

    return peer_tf


def _sync_worker(params: dict) -> None:
    """Child: one worker task (its `tf.distribute.Server` in this process) running TF's
    SyncReplicasOptimizer between-graph (`replica_device_setter`, variables on the PS).
    The chief (task 0) initialises the variables, runs `chief_init_op`, starts the chief
    queue runner and puts the init tokens in, all before READY, as TF requires. On GO: the
    local step's init (non-chief), `warmup` steps, then train steps for `duration` s with
    the global step read at the start and the end; one JSON line; then it keeps stepping (so
    the others' windows finish) until STOP."""
    pt = _peer_tf()
    pt._import_tf("v1")
    tf, v1 = pt.tf, pt.v1
    task, n, k = int(params["task"]), int(params["replicas"]), int(params["aggregate"])
    chief = task == 0
    cluster = v1.train.ClusterSpec(params["cluster"])
    inter, intra = (0, 0) if params.get("threads") == "default" else (2, 1)
    server = tf.distribute.Server(cluster, job_name="worker", task_index=task, start=True,
                                  config=pt.session_config(inter_op=inter, intra_op=intra))
    np = __import__("numpy")
    rng = np.random.default_rng(task)
    data_x = rng.random((512, 64)).astype("float32")
    data_y = rng.integers(0, 10, 512).astype("int64")
    g = v1.Graph()
    setter = v1.train.replica_device_setter(cluster=cluster,
                                            worker_device=f"/job:worker/task:{task}")
    with g.as_default(), v1.device(setter):
        w = v1.get_variable("w", initializer=tf.zeros((64, 10)))
        b = v1.get_variable("b", initializer=tf.zeros((10,)))
        step = v1.train.get_or_create_global_step()
        x = v1.placeholder(tf.float32, (None, 64))
        y = v1.placeholder(tf.int64, (None,))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=tf.matmul(x, w) + b))
        opt = v1.train.SyncReplicasOptimizer(v1.train.GradientDescentOptimizer(0.1), k, n)
        train = opt.minimize(loss, global_step=step)
        init = v1.global_variables_initializer()
        if chief:
            chief_qr = opt.get_chief_queue_runner()
            tokens = opt.get_init_tokens_op()
    cfg = pt.session_config(inter_op=inter, intra_op=intra,
                            device_filters=["/job:ps", f"/job:worker/task:{task}"])
    sess = v1.Session(server.target, graph=g, config=cfg)
    if chief:
        sess.run(init)
        sess.run(opt.chief_init_op)
        sess.run(opt.local_step_init_op)
        coord = v1.train.Coordinator()
        chief_qr.create_threads(sess, coord=coord, daemon=True, start=True)
        sess.run(tokens)
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        os._exit(0)
    if not chief:
        sess.run(opt.local_step_init_op)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()

    def one() -> None:
        idx = rng.integers(0, 512, 32)
        sess.run(train, {x: data_x[idx], y: data_y[idx]})

    for _ in range(int(params["warmup"])):
        one()
    s0, t0, c0 = int(sess.run(step)), time.perf_counter(), time.process_time()
    deadline = t0 + float(params["duration"])
    local = 0
    while time.perf_counter() < deadline:
        one()
        local += 1
    s1, t1, c1 = int(sess.run(step)), time.perf_counter(), time.process_time()
    print(json.dumps({"task": task, "global_steps": s1 - s0, "seconds": t1 - t0,
                      "cpu_seconds": c1 - c0, "local_steps": local, "step_end": s1}),
          flush=True)
    while not stop.is_set():
        one()
    os._exit(0)  # TF's threads (the chief queue runner's) would otherwise hold the process


def sync_cluster(params: dict) -> dict:
    """TF's SyncReplicasOptimizer between-graph: 1 PS process and `replicas` worker processes
    on 127.0.0.1 (gRPC), `aggregate` gradients per global step; global steps per second seen
    by each worker over its window (the driver's figure: their median)."""
    pt = _peer_tf()
    n, k = int(params.get("replicas", 2)), int(params.get("aggregate", 2))
    duration, warmup = float(params.get("duration", 3.0)), int(params.get("warmup", 10))
    threads = params.get("threads", "pinned")
    children = pt._Children()
    try:
        ports = pt._free_ports(1 + n)
        cluster = pt._null_cluster(ports[:1], ports[1:])
        ps = children.spawn(["_ps_task", "--params", json.dumps(
            {"cluster": cluster, "task": 0, "threads": threads})], stdout=subprocess.PIPE)
        common = {"cluster": cluster, "replicas": n, "aggregate": k, "duration": duration,
                  "warmup": warmup, "threads": threads}
        workers = [children.spawn(["_sync_worker", "--params", json.dumps({**common, "task": i})],
                                  script=Path(__file__).resolve(), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE) for i in range(n)]
        for p in [ps, *workers]:
            line = pt._read_line(p, 300).strip()
            if line != "READY":
                raise RuntimeError(f"TF child {p.args[2:4]} said {line!r}, not READY")
        ps_cpu0 = proc_cpu_seconds(ps.pid)
        for p in workers:
            p.stdin.write("GO\n")
            p.stdin.flush()
        per = [json.loads(pt._read_line(p, 120 + 4 * duration)) for p in workers]
        ps_cpu = proc_cpu_seconds(ps.pid) - ps_cpu0
        for p in workers:
            p.stdin.write("STOP\n")
            p.stdin.flush()
    finally:
        children.kill_all()
    return {"name": "sync_cluster", "tf_version": _tf().__version__, "params": params,
            "workers": per, "ps_cpu_seconds": ps_cpu}


BENCHMARKS = {"sync_step": sync_step, "queue_throughput": queue_throughput,
              "queue_two_sessions": queue_two_sessions, "sync_cluster": sync_cluster}


def serve() -> None:
    """Run benchmarks on request, one JSON line in ({"name", "params"}), one out, until
    stdin ends: the caller alternates its own trials with these in one run, paying
    TensorFlow's import once."""
    _tf()
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        out = BENCHMARKS[req["name"]](req.get("params", {}))
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=[*BENCHMARKS, "serve", "_sync_worker"])
    ap.add_argument("--params", default="{}")
    a = ap.parse_args()
    if a.name == "_sync_worker":
        _sync_worker(json.loads(a.params))
    elif a.name == "serve":
        serve()
    else:
        out = BENCHMARKS[a.name](json.loads(a.params))
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    os._exit(0)  # TF's threads would otherwise hold the process


if __name__ == "__main__":
    sys.exit(main())
