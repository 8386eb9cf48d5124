"""Many devices (issue 4): branch overlap on two CPU actors, ALAP Recv scheduling's peak
memory, and placement time; TensorFlow's two-branch figure side by side when `.tfenv` exists.

    python benchmarks/bench_devices.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import actorflow as af  # noqa: E402
from benchmarks.common import measure_interleaved, peer_tf, print_table  # noqa: E402
from scheduler import placer  # noqa: E402
from scheduler.graphdef import GraphDef, NodeDef  # noqa: E402

NO_REWRITES = af.GraphOptions(optimizer_options=af.OptimizerOptions(False, False))


def two_branch(n: int, layers: int, repeat: int) -> dict[str, float]:
    """Two tanh chains on /cpu:0 and /cpu:1 against the same work as one chain on /cpu:0."""
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal(n, dtype=np.float32)
    b_np = rng.standard_normal(n, dtype=np.float32)

    def chain(t: af.Tensor, k: int) -> af.Tensor:
        for _ in range(k):
            t = af.tanh(t)
        return t[:1]

    g = af.Graph()
    with g.as_default():
        with af.device("/cpu:0"):
            a = af.constant(a_np)
            one_chain = chain(a, 2 * layers)
            branch_a = chain(a, layers)
            branch_b_here = chain(af.constant(b_np), layers)   # same work, same device
        with af.device("/cpu:1"):
            branch_b = chain(af.constant(b_np), layers)
    cfg = af.ConfigProto(device_count={"CPU": 2}, graph_options=NO_REWRITES)
    with af.Session(graph=g, config=cfg) as s:
        st = measure_interleaved({"two": lambda: s.run([branch_a, branch_b]),
                                  "one": lambda: s.run(one_chain),
                                  "same": lambda: s.run([branch_a, branch_b_here]),
                                  "half": lambda: s.run(branch_a)}, repeat=repeat)
    return {"two_devices_ms": st["two"].median * 1e3, "one_chain_ms": st["one"].median * 1e3,
            "one_device_two_branches_ms": st["same"].median * 1e3,
            "one_branch_ms": st["half"].median * 1e3,
            "speedup": st["one"].median / st["two"].median,
            "speedup_one_device": st["one"].median / st["same"].median,
            "speedup_p10": st["one"].p10 / st["two"].p10}


def alap_peak(count: int = 20, mbytes: int = 8) -> dict[str, float]:
    """Peak pool bytes on the receiving device with and without ALAP Recv scheduling, for
    `count` transfers of `mbytes` MB that the receiver consumes one after another, late."""
    n = mbytes * (1 << 20) // 4
    out = {}
    for alap in (False, True):
        g = af.Graph()
        with g.as_default():
            x = af.placeholder(af.float32, (n,), name="x")
            with af.device("/cpu:0"):
                sent = [af.add(x, float(i), name=f"produce_{i}") for i in range(count)]
            with af.device("/cpu:1"):
                acc = af.multiply(sent[0], 0.5)
                for t in sent[1:]:
                    acc = af.add(af.multiply(acc, 0.5), t)
                result = acc[:1]
        cfg = af.ConfigProto(device_count={"CPU": 2}, graph_options=af.GraphOptions(
            optimizer_options=af.OptimizerOptions(False, False),
            enable_recv_scheduling=alap))
        v = np.ones(n, np.float32)
        with af.Session(graph=g, config=cfg) as s:
            s.run(result, {x: v})
            dev1 = s.devices[1]
            peaks = []
            times = []
            for _ in range(3):
                dev1.pool.reset_peak()
                t0 = time.perf_counter()
                s.run(result, {x: v})
                times.append(time.perf_counter() - t0)
                peaks.append(dev1.pool.statistics().peak_bytes_in_use)
        key = "alap" if alap else "asap"
        out[f"{key}_peak_mb"] = min(peaks) / (1 << 20)
        out[f"{key}_ms"] = float(np.median(times)) * 1e3
    out["peak_ratio"] = out["alap_peak_mb"] / out["asap_peak_mb"]
    return out


def placement_time(n: int = 10_000) -> dict[str, float]:
    """Place a 10,000-node graph (a chain with side branches) over two CPU devices."""
    nodes = [NodeDef("n0", "Placeholder", [], "", {"dtype": "float32", "shape": (64,)},
                     ["float32"], [(64,)])]
    for i in range(1, n):
        ins = [f"n{i - 1}:0"] + ([f"n{i // 2}:0"] if i % 7 == 0 else [])
        op = "Add" if len(ins) == 2 else "Tanh"
        nodes.append(NodeDef(f"n{i}", op, ins, "", {}, ["float32"], [(64,)]))
    gd = GraphDef(nodes)
    devs = [f"/job:localhost/replica:0/task:0/device:CPU:{i}" for i in range(2)]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        placer.place(gd, devs)
        times.append(time.perf_counter() - t0)
    return {"nodes": n, "median_s": float(np.median(times)), "max_s": max(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeat = 7 if args.quick else 21
    tb = two_branch(2_000_000, 10, repeat)
    tf = peer_tf("two_branch_tanh", n=2_000_000, layers=10)
    rows = [["two tanh branches on 2 CPUs vs one chain", f"{tb['speedup']:.2f}x",
             f"{tf['figures']['speedup']:.2f}x" if tf else "-", ">= 1.6x",
             f"two {tb['two_devices_ms']:.1f} ms, one chain {tb['one_chain_ms']:.1f} ms"],
            ["the two branches on one CPU device vs one chain",
             f"{tb['speedup_one_device']:.2f}x",
             f"{tf['figures']['speedup_two_chains_one_device']:.2f}x" if tf else "-",
             "overlap", f"{tb['one_device_two_branches_ms']:.1f} ms (worker-thread kernels)"]]
    al = alap_peak()
    rows.append(["ALAP peak on receiver / ASAP peak", f"{al['peak_ratio']:.2f}", "-", "< 1",
                 f"{al['alap_peak_mb']:.0f} MB vs {al['asap_peak_mb']:.0f} MB; "
                 f"{al['alap_ms']:.1f} vs {al['asap_ms']:.1f} ms"])
    pt = placement_time()
    rows.append(["placement of a 10,000-node graph", f"{pt['median_s'] * 1e3:.0f} ms", "-",
                 "< 1 s", f"max {pt['max_s'] * 1e3:.0f} ms"])
    cols = ["benchmark", "actorflow", "TensorFlow 2.21", "target", "detail"]
    print_table([dict(zip(cols, r, strict=True)) for r in rows], cols)


if __name__ == "__main__":
    main()
