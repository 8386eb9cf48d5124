"""What ``actorflow status`` costs, and what the RPC server's per-connection stamp costs
(issue 16, session 7: how long since each task heard from each master).

    python benchmarks/bench_status.py [--base main] [--calls 200] [--rounds 7]

1. **The status call.** On a 1-PS 1-worker `LocalCluster` with a session open (so the tasks
   list a master's connection, and the PS has registered graphs): the ``status`` RPC on one
   open `RpcClient` to the PS (median of `calls`), and a whole `cluster_status()` of both
   tasks, as the tool does it (fresh connections; median of `calls // 10`).
2. **The stamp.** The server's reader on one message: `RpcServer._dispatch` of a one-way
   message to a plain handler that does nothing (decode, the stamp, the handler), timed in
   this tree and in the `base` tree (extracted with ``git archive``, nothing in the repository
   changes), alternating, `rounds` rounds of 3 x 5,000 messages (the best, in CPU time); the
   difference is what the stamp adds to every message a task receives. (TensorFlow has no
   such figure: its gRPC server keeps no per-client ages.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STAMP = r'''
import json, sys, time
from transport.codec import encode
from transport.rpc_server import RpcServer
n = int(sys.argv[1])
srv = RpcServer({"noop": lambda h, t: (None, [])})
frames = [7, *encode({"k": "s", "m": "noop", "h": None})]
best = float("inf")
for _ in range(3):  # CPU time of this thread: on a loaded machine wall time is mostly waiting
    t0 = time.thread_time()
    for _ in range(n):
        srv._dispatch(list(frames))
    best = min(best, (time.thread_time() - t0) / n)
print(json.dumps({"us": best * 1e6}))
'''

STATUS = r'''
import json, statistics, sys, time
import numpy as np
import trio
import actorflow as af
from actorflow.cluster import LocalCluster
from actorflow.client.cluster_status import cluster_status
from transport import local_ipc
from transport.rpc import RpcClient, RpcConfig
calls = int(sys.argv[1])
with LocalCluster(ps=1, workers=1) as c:
    g = af.Graph()
    with g.as_default():
        with af.device("/job:ps/task:0"):
            v = af.Variable(np.ones((100, 10), np.float32), name="v")
        with af.device("/job:worker/task:0"):
            y = af.reduce_sum(v * 2.0)
    with af.Session(c.target("worker", 0), graph=g) as s:
        s.run(v.initializer)
        s.run(y)

        async def rpc() -> list[float]:
            out = []
            # this host: the PS's Unix socket, as the tool uses (TCP needs the cluster's keys)
            ep = await local_ipc.prefer_ipc("tcp://" + c.as_dict()["ps"][0])
            async with RpcClient(ep, config=RpcConfig()) as cl:
                await cl.call("status", None, timeout=10)
                for _ in range(calls):
                    t0 = time.perf_counter()
                    h, _ = await cl.call("status", None, timeout=10)
                    out.append(time.perf_counter() - t0)
            assert any((m["name"] or "").startswith("master") for m in h["clients"])
            return out

        one = trio.run(rpc)
        whole = []
        for _ in range(max(3, calls // 10)):
            t0 = time.perf_counter()
            st = cluster_status(c.as_dict())
            whole.append(time.perf_counter() - t0)
        assert all(t.masters() for t in st.tasks)
print(json.dumps({"status_rpc_ms": statistics.median(one) * 1e3,
                  "cluster_status_ms": statistics.median(whole) * 1e3}))
'''


def _run(tree: Path, code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, capture_output=True,
                         text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1",
                              "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree)})
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="commit to compare the stamp with")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    st = _run(REPO, STATUS, str(args.calls))
    print(f"status RPC to the PS (one open client), median of {args.calls}: "
          f"{st['status_rpc_ms']:.2f} ms")
    print(f"cluster_status() of 2 tasks (fresh connections), median: "
          f"{st['cluster_status_ms']:.1f} ms")
    with tempfile.TemporaryDirectory(prefix="af_base_") as tmp:
        base = Path(tmp)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        here, there = [], []
        for _ in range(args.rounds):
            here.append(_run(REPO, STAMP, "5000")["us"])
            there.append(_run(base, STAMP, "5000")["us"])
    h, b = statistics.median(here), statistics.median(there)
    print(f"server reader, one one-way message (decode + stamp + handler), median of "
          f"{args.rounds} rounds (each the best of 3 x 5,000 (CPU time)): this tree {h:.2f} us, "
          f"{args.base} {b:.2f} us, difference {h - b:+.2f} us "
          f"(per round: here {', '.join(f'{x:.2f}' for x in here)}; "
          f"{args.base} {', '.join(f'{x:.2f}' for x in there)})")


if __name__ == "__main__":
    main()
