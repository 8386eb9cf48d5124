"""Coordination benchmarks (issue 15): backup workers, the synchronous step against
TensorFlow's SyncReplicasOptimizer, queue throughput against TensorFlow's, and a Dataset-fed
step against the same step fed from memory.

    python -m benchmarks.bench_coordination [--quick] [--no-tf] [--trials 5]
    python benchmarks/bench_coordination.py [--only sync_step queue2 ...]

Every comparison with TensorFlow alternates trials, ours and TensorFlow's (from a persistent
``peer_tf_coord.py serve`` process in ``.tfenv``), and reports the medians, their range and
the ratio of the medians: single figures on a shared, loaded machine swing 2-5x.

* ``backup``: 4 replicas (threads, in-graph, one Session) of softmax regression on digits;
  each step's compute is emulated by a delay before it (``--delay`` ms), and replica 3 is a
  straggler (3x the delay). Global steps/s with replicas_to_aggregate=3 vs 4 (bar: >= 1.5x).
* ``sync_step``: 2 replicas, k=2, no injected delay: seconds per global step, ours vs TF's
  SyncReplicasOptimizer with the same model and shape (``peer_tf_coord.py``; bar <= 0.7x),
  and the process's CPU seconds per global step (steady under load, where wall time is
  mostly the share of the CPUs a process gets). This is one process, one Session, replica
  threads (TF's in-graph use); ``bench_sync_cluster.py`` measures the between-graph shape
  (1 PS and 2-3 worker processes). ``sync_async`` (opt-in, with sync_step):
  ours again with the replicas as trio tasks of an async Session (`SyncReplicasHook.arun`).
* ``queue``: one producer thread and one consumer thread moving scalar float32 tensors
  through a FIFOQueue of capacity 100 in one Session: elements/s (bar: >= TF's).
* ``queue2``: the same through two Sessions (producer, consumer) of one in-process server,
  the queue shared by name (``af.Server`` / ``tf.distribute.Server``).
* ``dataset``: the small MLP (64-64-10) on digits batches of 32, fed by
  ``Dataset...batch(32).repeat().prefetch(2)`` vs fed from memory by feed_dict (bar <= 1.1x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

import numpy as np  # noqa: E402
import trio  # noqa: E402

import actorflow as af  # noqa: E402
from benchmarks.common import (  # noqa: E402
    REPO_ROOT,
    TFENV_PYTHON,
    measure_interleaved,
    print_table,
)
from devices.dataset_index import compiled_loops  # noqa: E402
from devices.kernels.accumulator import MEAN_UPDATE_LOOP  # noqa: E402
from devices.kernels.math import SGEMM_LOOP  # noqa: E402
from devices.kernels.nn import XENT_LOOP  # noqa: E402
from models import digits  # noqa: E402


def _replicas(n: int, k: int) -> tuple[Any, ...]:
    g = af.Graph()
    with g.as_default():
        w = af.Variable(np.zeros((64, 10), np.float32), name="w")
        b = af.Variable(np.zeros(10, np.float32), name="b")
        step = af.train.get_or_create_global_step()
        opt = af.train.SyncReplicasOptimizer(af.train.GradientDescentOptimizer(0.1), k, n)
        towers = []
        for _ in range(n):
            x = af.placeholder(af.float32, (None, 64))
            y = af.placeholder(af.int64, (None,))
            loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=af.matmul(x, w) + b))
            towers.append((x, y, opt.minimize(loss, global_step=step)))
        hooks = [opt.make_session_run_hook(i == 0, train_op=t[2]) for i, t in enumerate(towers)]
        init = [af.global_variables_initializer(), af.local_variables_initializer()]
        counters = opt.counters()["gate"]
    return g, towers, hooks, init, step, counters


def sync_rate(n: int, k: int, delays: list[float], steps: int, warm: int = 10
              ) -> dict[str, float]:
    """Global steps per second of n replicas aggregating k, replica i sleeping delays[i] s
    before each of its steps (its emulated compute)."""
    d = digits.load()
    labels = d.train_y.astype(np.int64)  # the placeholder's dtype, as TF's peer feeds them
    g, towers, hooks, init, step, counters = _replicas(n, k)
    s = af.Session(graph=g)
    s.run(init)
    for loop in (XENT_LOOP, SGEMM_LOOP, MEAN_UPDATE_LOOP):  # the step's compiled loops (loaded
        loop.ready(120)                   # off its thread on first use): measure the loaded step
    for h in hooks:
        h.after_create_session(s)
    stop = threading.Event()

    def work(i: int) -> None:
        rng = np.random.default_rng(i)
        x, y, op = towers[i]
        try:
            while not stop.is_set():
                if delays[i]:
                    time.sleep(delays[i])
                idx = rng.integers(0, len(labels), 32)
                hooks[i].run(s, op, {x: d.train_x[idx], y: labels[idx]})
        except af.errors.OutOfRangeError:
            pass
        hooks[i].end(s)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    gate = np.zeros(4)
    try:
        while s.run(step) < warm:
            time.sleep(0.02)
        s0, t0, c0 = int(s.run(step)), time.perf_counter(), time.process_time()
        while s.run(step) < s0 + steps:
            time.sleep(0.02)
        s1, t1, c1 = int(s.run(step)), time.perf_counter(), time.process_time()
        gate = s.run(counters)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        s.close()
    return {"steps_per_s": (s1 - s0) / (t1 - t0), "s_per_step": (t1 - t0) / (s1 - s0),
            "cpu_s_per_step": (c1 - c0) / (s1 - s0),
            "late_gradients": float(gate[1])}


def sync_rate_async(n: int, steps: int, warm: int = 10) -> dict[str, float]:
    """`sync_rate` of n replicas aggregating n with no delay, the replicas trio tasks of one
    async Session (``async with af.Session()``) instead of threads: a release wakes the
    waiting replica with no thread hop. Same graph."""
    d = digits.load()
    g, towers, hooks, init, step, _ = _replicas(n, n)
    out: dict[str, float] = {}

    async def run() -> None:
        async with af.Session(graph=g) as s:
            await s.run(init)
            for h in hooks:
                await h.aafter_create_session(s)
            marks: list[tuple[int, float, float]] = []

            async def work(i: int) -> None:
                rng = np.random.default_rng(i)
                x, y, op = towers[i]
                try:
                    while len(marks) < 2:
                        idx = rng.integers(0, len(d.train_y), 32)
                        await hooks[i].arun(s, op, {x: d.train_x[idx], y: d.train_y[idx]})
                except af.errors.OutOfRangeError:
                    pass  # the other replica left first: the job ended
                await hooks[i].aend(s)

            async def monitor() -> None:  # as sync_rate's: the step read every 20 ms
                for target in (warm, None):
                    while (got := int(await s.run(step))) < (
                            target if target is not None else marks[0][0] + steps):
                        await trio.sleep(0.02)
                    marks.append((got, time.perf_counter(), time.process_time()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(monitor)
                for i in range(n):
                    nursery.start_soon(work, i)
            (s0, t0, c0), (s1, t1, c1) = marks[:2]
            out.update(s_per_step=(t1 - t0) / (s1 - s0), cpu_s_per_step=(c1 - c0) / (s1 - s0))

    trio.run(run)
    return out


def queue_throughput(n: int) -> tuple[float, float]:
    g = af.Graph()
    with g.as_default():
        q = af.FIFOQueue(100, [af.float32], shapes=[()])
        enq = q.enqueue(af.constant(1.0))
        deq = q.dequeue()
    with af.Session(graph=g) as s:
        for _ in range(50):
            s.run(enq)
            s.run(deq)

        def produce() -> None:
            for _ in range(n):
                s.run(enq)
        t0, c0 = time.perf_counter(), time.process_time()
        t = threading.Thread(target=produce)
        t.start()
        for _ in range(n):
            s.run(deq)
        t.join()
        return n / (time.perf_counter() - t0), (time.process_time() - c0) / n


def queue_two_sessions(n: int) -> tuple[float, float]:
    """Elements/s through a FIFOQueue shared by name between a producer Session and a
    consumer Session of one in-process server (`af.Server`), as TF's peer does."""
    server = af.Server.create_local_server()
    sessions, ops = [], []
    try:
        for _ in range(2):
            g = af.Graph()
            with g.as_default():
                q = af.FIFOQueue(100, [af.float32], shapes=[()], shared_name="bench_q")
                ops.append((q.enqueue(af.constant(1.0)), q.dequeue()))
            sessions.append(af.Session(server.target, graph=g))
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
        return n / (time.perf_counter() - t0), (time.process_time() - c0) / n
    finally:
        for s in sessions:
            s.close()
        server.stop()


def _small_mlp(x: Any, y: Any) -> Any:
    """64-64-10 ReLU MLP with SGD on inputs `x` (float32) and `y` (int64)."""
    rng = np.random.default_rng(0)
    w1 = af.Variable(rng.normal(0, 0.1, (64, 64)).astype(np.float32))
    b1 = af.Variable(np.zeros(64, np.float32))
    w2 = af.Variable(rng.normal(0, 0.1, (64, 10)).astype(np.float32))
    b2 = af.Variable(np.zeros(10, np.float32))
    logits = af.matmul(af.nn.relu(af.matmul(x, w1) + b1), w2) + b2
    loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))
    return af.train.GradientDescentOptimizer(0.1).minimize(loss)


def dataset_vs_memory(repeat: int) -> dict[str, float]:
    """Median seconds per step of the small MLP fed from memory (feed_dict of ready NumPy
    batches) and fed by a Dataset pipeline (shuffle, batch, repeat, prefetch)."""
    d = digits.load()
    y = d.train_y.astype(np.int64)
    gm = af.Graph()
    with gm.as_default():
        px = af.placeholder(af.float32, (None, 64))
        py = af.placeholder(af.int64, (None,))
        train_m = _small_mlp(px, py)
        init_m = af.global_variables_initializer()
    gd = af.Graph()
    with gd.as_default():
        ds = (af.data.Dataset.from_tensor_slices((d.train_x, y)).shuffle(256, seed=0)
              .batch(32, drop_remainder=True).repeat().prefetch(2))
        xb, yb = ds.make_one_shot_iterator().get_next()
        train_d = _small_mlp(xb, yb)
        init_d = af.global_variables_initializer()
    sm, sd = af.Session(graph=gm), af.Session(graph=gd)
    sm.run(init_m)
    sd.run(init_d)
    sd.run(train_d)  # the first element starts loading the shuffle's compiled loops: wait
    for loop in (*compiled_loops(), SGEMM_LOOP):  # for them, and for the small products'
        loop.ready(120)                           # (both steps), as a warm-up does
    rng = np.random.default_rng(0)
    batches = [(d.train_x[i], y[i]) for i in (rng.integers(0, len(y), 32) for _ in range(64))]
    counter = [0]

    cpu = {"memory": [0.0, 0], "dataset": [0.0, 0]}  # CPU seconds of the process, steps

    def memory() -> None:
        bx, by = batches[counter[0] % 64]
        counter[0] += 1
        c0 = time.process_time()
        sm.run(train_m, {px: bx, py: by})
        cpu["memory"][0] += time.process_time() - c0
        cpu["memory"][1] += 1

    def dataset() -> None:
        c0 = time.process_time()
        sd.run(train_d)
        cpu["dataset"][0] += time.process_time() - c0
        cpu["dataset"][1] += 1

    try:
        stats = measure_interleaved({"memory": memory, "dataset": dataset}, warmup=20,
                                    repeat=repeat, number=20)
    finally:
        sm.close()
        sd.close()
    out = {k: v.median for k, v in stats.items()}
    out.update({f"{k}_cpu": c / max(1, n) for k, (c, n) in cpu.items()})
    return out


def _tf_python() -> Path | None:
    for p in (TFENV_PYTHON,):
        if p.exists():
            return p
    return None


class TFPeer:
    """``peer_tf_coord.py serve`` in the TensorFlow side environment, kept running so that
    our trials and TensorFlow's alternate in one run (TensorFlow imported once)."""

    def __init__(self) -> None:
        py = _tf_python()
        if py is None:
            raise FileNotFoundError("no .tfenv (benchmarks/setup_tf_env.sh makes one)")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._log = tempfile.TemporaryFile("w+")  # TF's deprecation chatter, for errors
        self._proc = subprocess.Popen(
            [str(py), str(REPO_ROOT / "benchmarks" / "peer_tf_coord.py"), "serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            env=env, cwd=REPO_ROOT)
        self._read()  # {"ready": true}

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("{"):
                out: dict[str, Any] = json.loads(line)
                return out
        code = self._proc.wait()
        self._log.seek(0)
        raise RuntimeError(f"peer_tf_coord serve ended (exit {code}):\n"
                           f"{self._log.read()[-3000:]}")

    def __call__(self, name: str, **params: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"name": name, "params": params}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


def alternate(trials: int, ours: Callable[[], float], tf: Callable[[], float] | None
              ) -> tuple[list[float], list[float]]:
    """`trials` figures of each, ours and TensorFlow's alternating (who goes first
    alternates too, so drift in the machine's load falls on both)."""
    a: list[float] = []
    b: list[float] = []
    for i in range(trials):
        if i % 2 == 0 or tf is None:
            a.append(ours())
            if tf is not None:
                b.append(tf())
        else:
            b.append(tf())
            a.append(ours())
    return a, b


def _fig(xs: list[float], scale: float, unit: str, fmt: str = ".2f") -> str:
    """"median (min-max, n trials)"."""
    med = statistics.median(xs) * scale
    return (f"{med:{fmt}} {unit} (median of {len(xs)}; {min(xs) * scale:{fmt}}-"
            f"{max(xs) * scale:{fmt}})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--no-tf", action="store_true", help="skip TensorFlow's figures")
    ap.add_argument("--trials", type=int, default=5,
                    help="alternating trials (ours, TF's) per comparison; medians reported")
    ap.add_argument("--only", nargs="*", choices=["backup", "sync_step", "sync_async", "queue",
                                                  "queue2", "dataset"],
                    help="run only these rows (sync_async, with sync_step: not by default)")
    ap.add_argument("--delay", type=float, default=30.0,
                    help="emulated compute per replica step, ms (the straggler: 3x)")
    a = ap.parse_args(argv)
    only = set(a.only or ["backup", "sync_step", "queue", "queue2", "dataset"])
    steps = 30 if a.quick else 150
    trials = 1 if a.quick else a.trials
    rows = []
    tasks: list[dict[str, float]] = []
    tfp = None if a.no_tf or not ({"sync_step", "queue", "queue2"} & only) else TFPeer()
    try:
        if "backup" in only:
            delay = a.delay / 1000
            delays = [delay, delay, delay, 3 * delay]
            r4 = sync_rate(4, 4, delays, steps // 2)
            r3 = sync_rate(4, 3, delays, steps // 2)
            ratio = r3["steps_per_s"] / r4["steps_per_s"]
            rows.append({"benchmark": "backup workers (4, one 3x straggler)",
                         "ours": f"k=3 {r3['steps_per_s']:.1f} steps/s "
                                 f"({r3['late_gradients']:.0f} late dropped), k=4 "
                                 f"{r4['steps_per_s']:.1f} steps/s",
                         "ratio": f"{ratio:.2f}x", "bar": ">= 1.5x", "ok": ratio >= 1.5})
        if "sync_step" in only:
            n = steps * 2
            cpu: dict[str, list[float]] = {"ours": [], "tf": []}

            def ours_sync() -> float:
                r = sync_rate(2, 2, [0.0, 0.0], n)
                cpu["ours"].append(r["cpu_s_per_step"])
                return r["s_per_step"]

            def tf_sync() -> float:
                assert tfp is not None
                r = tfp("sync_step", replicas=2, aggregate=2, steps=n)
                cpu["tf"].append(float(r["cpu_seconds_per_step"]))
                return float(r["seconds_per_step"])

            ours, tf = alternate(trials, ours_sync, None if tfp is None else tf_sync)
            tasks = [sync_rate_async(2, n) for _ in range(trials)] if "sync_async" in only \
                else []
            row = {"benchmark": "sync step (2 replicas, k=2), wall time per global step",
                   "ours": _fig(ours, 1e3, "ms")}
            crow = {"benchmark": "sync step: CPU time of the process per global step",
                    "ours": _fig(cpu["ours"], 1e3, "ms")}
            if tf:
                r = statistics.median(ours) / statistics.median(tf)
                row.update(tf=_fig(tf, 1e3, "ms"), ratio=f"{r:.2f}x", bar="<= 0.7x",
                           ok=r <= 0.7)
                r = statistics.median(cpu["ours"]) / statistics.median(cpu["tf"])
                crow.update(tf=_fig(cpu["tf"], 1e3, "ms"), ratio=f"{r:.2f}x")
            rows += [row, crow]
        if tasks:
            arow = {"benchmark": "sync step, our replicas as trio tasks of an async Session "
                                 "(no thread hop): wall / CPU per global step",
                    "ours": _fig([t["s_per_step"] for t in tasks], 1e3, "ms") + " / "
                    + _fig([t["cpu_s_per_step"] for t in tasks], 1e3, "ms")}
            if tf:
                r = statistics.median(t["s_per_step"] for t in tasks) / statistics.median(tf)
                arow.update(tf="(wall, as above)", ratio=f"{r:.2f}x")
            rows.append(arow)
        n = 1000 if a.quick else 5000
        for key, label, fn, tfname, m in (
                ("queue", "queue throughput (1 Session, 1 producer + 1 consumer thread)",
                 queue_throughput, "queue_throughput", n),
                ("queue2", "queue throughput (producer and consumer Sessions of one "
                 "in-process server)", queue_two_sessions, "queue_two_sessions", n // 2)):
            if key not in only:
                continue
            qcpu: dict[str, list[float]] = {"ours": [], "tf": []}

            def ours_q(fn: Callable[[int], tuple[float, float]] = fn, m: int = m,
                       qcpu: dict[str, list[float]] = qcpu) -> float:
                rate, cpu_each = fn(m)
                qcpu["ours"].append(cpu_each)
                return rate

            def tf_q(tfname: str = tfname, m: int = m,
                     qcpu: dict[str, list[float]] = qcpu) -> float:
                assert tfp is not None
                r = tfp(tfname, elements=m)
                qcpu["tf"].append(float(r["cpu_seconds_per_element"]))
                return float(r["elements_per_s"])

            ours, tf = alternate(trials, ours_q, None if tfp is None else tf_q)
            row = {"benchmark": label, "ours": _fig(ours, 1, "elements/s", ".0f")}
            crow = {"benchmark": "  the same, CPU time of the process per element",
                    "ours": _fig(qcpu["ours"], 1e6, "us", ".0f")}
            if tf:
                r = statistics.median(ours) / statistics.median(tf)
                row.update(tf=_fig(tf, 1, "elements/s", ".0f"), ratio=f"{r:.2f}x",
                           bar=">= 1x", ok=r >= 1.0)
                r = statistics.median(qcpu["ours"]) / statistics.median(qcpu["tf"])
                crow.update(tf=_fig(qcpu["tf"], 1e6, "us", ".0f"), ratio=f"{r:.2f}x")
            rows += [row, crow]
        if "dataset" in only:
            dm = dataset_vs_memory(5 if a.quick else 15)
            r = dm["dataset"] / dm["memory"]
            rows.append({"benchmark": "Dataset-fed MLP step vs memory-fed",
                         "ours": f"dataset {dm['dataset'] * 1e6:.0f} us, memory "
                                 f"{dm['memory'] * 1e6:.0f} us", "ratio": f"{r:.2f}x",
                         "bar": "<= 1.1x", "ok": r <= 1.1})
            rc = dm["dataset_cpu"] / dm["memory_cpu"]  # (the same steps, CPU: mean)
            rows.append({"benchmark": "  the same, CPU per step (mean, whole process)",
                         "ours": f"dataset {dm['dataset_cpu'] * 1e6:.0f} us, memory "
                                 f"{dm['memory_cpu'] * 1e6:.0f} us", "ratio": f"{rc:.2f}x",
                         "bar": "-", "ok": "-"})
    finally:
        if tfp is not None:
            tfp.close()
    print_table(rows, ["benchmark", "ours", "tf", "ratio", "bar", "ok"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
