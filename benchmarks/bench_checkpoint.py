"""Checkpoint speed: save and restore a ~1 GB model over 2 PS tasks, against the disk's own
speed (the same bytes written and read with NumPy in this run) and TensorFlow's Saver.

    python benchmarks/bench_checkpoint.py [--mb 1024] [--vars 16] [--repeat 3]
        [--tf-python .tfenv/bin/python]

actorflow: a LocalCluster with 2 PS tasks and 1 worker; `--vars` float32 variables (half on
each PS, initialized there from random_uniform), `Saver(sharded=True)`: each PS writes its
own data file from its memory (in parallel), the merge writes the index. Save = `saver.save`
(fsync of every file included). Restore, two ways, each PS task reading its share in parallel
(preadv from the page cache + CRC32C of every byte):
  "in place"   `saver.restore` over the initialized variables (what TF's benchmark does, and
               a restore mid-training): read straight into each variable's existing buffer,
               whose pages are resident (no allocation, no page faults);
  "new task"   a Saver of the same checkpoint names onto variables never initialized (as
               after a PS task restarts): read into freshly allocated buffers, so every page
               is faulted in (zeroed by the kernel) on first touch, then adopted.
NumPy floor: the same bytes, one file per PS share, `ndarray.tofile` + fsync, then read back
with `np.fromfile` (np.empty + read: fresh pages, faulted in on first touch, no checksum),
done in 2 parallel threads (as the PS tasks do) and sequentially; and "into existing arrays"
(`readinto` the arrays already in memory, 2 threads: no allocation, no faults, no checksum),
which is the like-for-like floor for the in-place restore, as np.fromfile is for the new task.
TensorFlow: the same variables in a TF1 graph on 2 CPU devices, `tf.train.Saver(sharded=True)`
(TensorFlow does not fsync: its save is to be read beside the "NumPy, no fsync" row, which
writes the same bytes to the page cache only). Reads come from the page cache in all (just
written).
Prints one table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af  # noqa: E402
from benchmarks.common import TFENV_PYTHON  # noqa: E402

TF_SCRIPT = r"""
import json, os, sys, time, statistics
import numpy as np
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
mb, nvars, repeat, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n = mb * (1 << 20) // 4 // nvars
vs = []
for i in range(nvars):
    with tf.device(f"/cpu:{i % 2}"):
        vs.append(tf.Variable(tf.random.uniform([n]), name=f"layer{i}/w"))
saver = tf.train.Saver(sharded=True, max_to_keep=1)
cfg = tf.ConfigProto(device_count={"CPU": 2})
with tf.Session(config=cfg) as s:
    s.run(tf.global_variables_initializer())
    saves, restores = [], []
    for r in range(repeat):
        t = time.perf_counter(); p = saver.save(s, os.path.join(d, "tf.ckpt"), global_step=r,
                                                write_meta_graph=False)
        saves.append(time.perf_counter() - t)
        t = time.perf_counter(); saver.restore(s, p); restores.append(time.perf_counter() - t)
print(json.dumps({"save_s": statistics.median(saves), "restore_s": statistics.median(restores),
                  "tf": tf.__version__}))
"""


def _numpy_floor(arrays: list[np.ndarray], d: str, parallel: bool,
                 fsync: bool = True, into: bool = False) -> tuple[float, float]:
    groups = [arrays[0::2], arrays[1::2]]
    paths = [os.path.join(d, f"np-{k}.bin") for k in range(2)]

    def write(k: int) -> None:
        with open(paths[k], "wb") as f:
            for a in groups[k]:
                a.tofile(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())

    def read(k: int) -> None:
        with open(paths[k], "rb") as f:
            for a in groups[k]:
                np.fromfile(f, a.dtype, a.size)

    def read_into(k: int) -> None:
        with open(paths[k], "rb", buffering=0) as f:
            for a in groups[k]:
                view = memoryview(a.view(np.uint8))
                got = 0
                while got < len(view):
                    got += f.readinto(view[got:])

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        if parallel:
            ts = [threading.Thread(target=fn, args=(k,)) for k in range(2)]
            for th in ts:
                th.start()
            for th in ts:
                th.join()
        else:
            for k in range(2):
                fn(k)
        return time.perf_counter() - t

    w = timed(write)
    r = timed(read_into if into else read)
    for p in paths:
        os.remove(p)
    return w, r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--vars", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--tf-python", default=str(TFENV_PYTHON),
                    help="the TensorFlow side environment's python (default .tfenv)")
    args = ap.parse_args()
    n = args.mb * (1 << 20) // 4 // args.vars
    d = tempfile.mkdtemp(prefix="af-bench-ckpt-", dir=args.dir)
    total_mb = n * 4 * args.vars / (1 << 20)
    out: dict[str, float | str] = {"mb": total_mb}
    try:
        with af.LocalCluster(ps=2, workers=1) as cluster:
            g = af.Graph()
            with g.as_default():
                for i in range(args.vars):
                    with af.device(f"/job:ps/task:{i % 2}"):
                        af.Variable(af.random_uniform([n]), name=f"layer{i}/w")
                init = af.global_variables_initializer()
                saver = af.train.Saver(sharded=True, max_to_keep=1)
                fresh = []  # per repeat: the same names onto variables never initialized
                for r in range(args.repeat):
                    vs = {}
                    for i in range(args.vars):
                        with af.device(f"/job:ps/task:{i % 2}"):
                            vs[f"layer{i}/w"] = af.Variable(af.zeros([n]),
                                                            name=f"fresh{r}/layer{i}/w")
                    fresh.append(af.train.Saver(vs, sharded=True))
            config = af.ConfigProto()
            # random_uniform of a big variable runs on the PS loop for seconds under load
            config.rpc_options = af.RPCOptions(heartbeat_timeout=60.0)  # type: ignore
            with af.Session(cluster.target("worker", 0), graph=g, config=config) as s:
                s.run(init)
                saves, restores, news = [], [], []
                for r in range(args.repeat):
                    t = time.perf_counter()
                    p = saver.save(s, os.path.join(d, "af.ckpt"), global_step=r)
                    saves.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    saver.restore(s, p)
                    restores.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    fresh[r].restore(s, p)
                    news.append(time.perf_counter() - t)
        out["af_save_s"] = statistics.median(saves)
        out["af_restore_s"] = statistics.median(restores)
        out["af_restore_new_s"] = statistics.median(news)
        shutil.rmtree(d)
        os.makedirs(d)
        rng = np.random.default_rng(0)
        arrays = [rng.random(n, np.float32) for _ in range(args.vars)]
        np_par = [_numpy_floor(arrays, d, True) for _ in range(args.repeat)]
        np_seq = [_numpy_floor(arrays, d, False) for _ in range(args.repeat)]
        # what TensorFlow's save is comparable with: it does not fsync (page cache only)
        np_nosync = [_numpy_floor(arrays, d, True, fsync=False) for _ in range(args.repeat)]
        out["np_nosync_write_s"] = statistics.median(w for w, _ in np_nosync)
        np_into = [_numpy_floor(arrays, d, True, into=True) for _ in range(args.repeat)]
        out["np_into_read_s"] = statistics.median(r for _, r in np_into)
        del arrays
        out["np_par_write_s"] = statistics.median(w for w, _ in np_par)
        out["np_par_read_s"] = statistics.median(r for _, r in np_par)
        out["np_seq_write_s"] = statistics.median(w for w, _ in np_seq)
        out["np_seq_read_s"] = statistics.median(r for _, r in np_seq)
        if Path(args.tf_python).exists():
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env["TF_CPP_MIN_LOG_LEVEL"] = "2"
            res = subprocess.run([args.tf_python, "-c", TF_SCRIPT, str(args.mb),
                                  str(args.vars), str(args.repeat), d], capture_output=True,
                                 text=True, timeout=900, env=env)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            if line:
                tf = json.loads(line[-1])
                out["tf_save_s"], out["tf_restore_s"] = tf["save_s"], tf["restore_s"]
                out["tf_version"] = tf["tf"]
            else:
                print("TensorFlow peer failed:", res.stderr[-2000:], file=sys.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)

    def rate(s: float) -> str:
        return f"{total_mb / s / 1024:.2f} GB/s" if s == s else "-"

    print(f"checkpoint of {total_mb:.0f} MB ({args.vars} float32 variables) over 2 PS tasks, "
          f"median of {args.repeat}")
    nan = float("nan")
    rows = [("actorflow Saver(sharded), in place", out["af_save_s"], out["af_restore_s"]),
            ("actorflow restore onto a new task", nan, out["af_restore_new_s"]),
            ("NumPy, 2 threads (+fsync)", out["np_par_write_s"], out["np_par_read_s"]),
            ("NumPy, sequential (+fsync)", out["np_seq_write_s"], out["np_seq_read_s"]),
            ("NumPy, 2 threads, no fsync", out["np_nosync_write_s"], nan),
            ("NumPy readinto existing, 2 thr", nan, out["np_into_read_s"])]
    if "tf_save_s" in out:
        rows.append((f"TensorFlow {out['tf_version']} Saver(sharded)", out["tf_save_s"],
                     out["tf_restore_s"]))
    print(f"{'':36s} {'save':>18s} {'restore':>18s}")
    for name, sv, rs in rows:
        print(f"{name:36s} {sv:7.3f} s {rate(sv):>9s} {rs:7.3f} s {rate(rs):>9s}")
    best_w = min(out["np_par_write_s"], out["np_seq_write_s"])  # type: ignore[type-var]
    best_r = min(out["np_par_read_s"], out["np_seq_read_s"])  # type: ignore[type-var]
    out["save_vs_numpy"] = best_w / out["af_save_s"]  # type: ignore[operator]
    out["restore_vs_numpy"] = best_r / out["af_restore_s"]  # type: ignore[operator]
    out["restore_vs_numpy_into"] = out["np_into_read_s"] / out["af_restore_s"]  # type: ignore
    out["restore_new_vs_numpy"] = best_r / out["af_restore_new_s"]  # type: ignore[operator]
    print(f"actorflow / best NumPy speed: save {out['save_vs_numpy']:.2f}x, "
          f"restore in place {out['restore_vs_numpy']:.2f}x of np.fromfile "
          f"({out['restore_vs_numpy_into']:.2f}x of NumPy readinto existing arrays), "
          f"restore onto a new task {out['restore_new_vs_numpy']:.2f}x of np.fromfile "
          f"(bar: 0.8x)")
    if "tf_save_s" in out:
        out["save_vs_tf"] = out["tf_save_s"] / out["af_save_s"]  # type: ignore[operator]
        out["restore_vs_tf"] = out["tf_restore_s"] / out["af_restore_s"]  # type: ignore[operator]
        out["restore_new_vs_tf"] = out["tf_restore_s"] / out["af_restore_new_s"]  # type: ignore
        print(f"actorflow / TensorFlow speed: save {out['save_vs_tf']:.2f}x, "
              f"restore in place {out['restore_vs_tf']:.2f}x, onto a new task "
              f"{out['restore_new_vs_tf']:.2f}x (TF's RestoreV2 reads into new tensors)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
