"""Issue 11's figures for two source trees, measured in alternating trials (base, new, TF),
so that a loaded machine's drift hits every side alike; prints every trial and the medians.

    python benchmarks/ab_issue11.py --base /tmp/base-tree [--rounds 3] [--tf]
        [--what chain,tanh,while,rnn,mlp_small,mlp_big]

`--base` is a checkout of the code to compare with (e.g. ``git archive <commit> | tar -x``);
the other side is this tree. Each figure of each tree runs in a fresh process started in
that tree (``--one WHAT``), with this tree's benchmark functions (`bench_executor`'s scalar
chain and tanh layers use only the public API, so they run on either tree).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TF_PEERS: dict[str, tuple[str, dict[str, Any]]] = {
    "chain": ("scalar_chain", {"n": 10_000, "rewrites": "off", "repeat": 9}),
    "tanh": ("tanh_layers", {"n": 2_000_000, "layers": 24, "repeat": 3}),
    "while": ("while_scalar", {"n": 100_000, "repeat": 3}),
    "rnn": ("rnn", {"T": 100, "H": 64, "batch": 32, "repeat": 7}),
    "mlp_small": ("mlp_step", {"sizes": [64, 128, 10], "batch": 64, "repeat": 9}),
    "mlp_big": ("mlp_step", {"sizes": [784, 1024, 1024, 10], "batch": 256, "repeat": 7}),
}


def one(what: str) -> dict[str, Any]:
    """One figure, measured with the tree in the current directory (first on sys.path)."""
    import importlib.util

    sys.path.insert(0, os.getcwd())
    import actorflow  # the measured tree's, cached before this tree's bench_executor loads
    from benchmarks import bench_control_flow as cf
    assert Path(actorflow.__file__).resolve().is_relative_to(Path.cwd().resolve())
    sys.path.insert(1, str(HERE))
    import bench_executor as be  # this tree's benchmark functions (public API only)

    spec = importlib.util.spec_from_file_location("_floors_here", HERE / "floors.py")
    assert spec is not None and spec.loader is not None
    be.floors = importlib.util.module_from_spec(spec)  # this tree's floors (tanh_layers)
    spec.loader.exec_module(be.floors)
    assert Path(sys.modules["actorflow"].__file__).resolve().is_relative_to(Path.cwd().resolve())
    if what == "chain":
        return be.bench_scalar_kernels(10_000, 9)
    if what == "tanh":
        return be.bench_tanh_layers(2_000_000, 24, 3)
    if what == "while":
        return cf.bench_while_scalar(100_000, 3)
    if what == "rnn":
        r = cf.bench_rnn(100, 64, 32, 7)
        r.pop("check", None)
        return r
    if what == "mlp_small":
        return be.bench_mlp([64, 128, 10], 64, 9)
    if what == "mlp_big":
        return be.bench_mlp([784, 1024, 1024, 10], 256, 7)
    raise SystemExit(f"unknown figure {what!r}; choose from {sorted(TF_PEERS)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="the tree to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tf", action="store_true", help="a TensorFlow trial in every round")
    ap.add_argument("--what", default="chain,tanh,while,rnn,mlp_small,mlp_big")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    if not args.base:
        raise SystemExit("--base DIR is required (a checkout of the code to compare with)")
    sys.path.insert(0, str(HERE.parent))
    from benchmarks.common import peer_tf

    trees = {"base": Path(args.base).resolve(), "new": HERE.parent}
    whats = args.what.split(",")
    out: dict[str, dict[str, list[Any]]] = {w: {"base": [], "new": [], "tf": []} for w in whats}
    for r in range(args.rounds):
        for w in whats:
            for side in (("base", "new") if r % 2 == 0 else ("new", "base")):
                p = subprocess.run([sys.executable, __file__, "--one", w], cwd=trees[side],
                                   capture_output=True, text=True)
                lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
                out[w][side].append(json.loads(lines[-1]) if lines
                                    else {"error": p.stderr[-300:]})
            if args.tf:
                name, params = TF_PEERS[w]
                peer = peer_tf(name, **params)
                out[w]["tf"].append(peer["figures"] if peer else {})
        print(time.strftime("%H:%M:%S"), f"round {r} done", file=sys.stderr, flush=True)
    for w, sides in out.items():
        print(f"== {w}")
        for side, trials in sides.items():
            keys = [k for k in (trials[0] if trials else {}) if isinstance(trials[0][k], float)]
            cells = {k: (round(statistics.median(t[k] for t in trials if k in t), 3),
                         [round(t[k], 3) for t in trials if k in t]) for k in keys}
            print(f"{side}: {cells}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
