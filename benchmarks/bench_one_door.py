"""The device's one door (issue 11): Session.run's fixed cost (sync and async), the per-node
cost of a chain of scalar ``x + 1.0``, and how long a 200k-iteration ``while_loop`` run through
the async API keeps another trio task waiting (its longest gap), all in one run.

    python benchmarks/bench_one_door.py [--repeat 7]
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
from benchmarks.common import measure_interleaved  # noqa: E402


def fixed_cost(repeat: int) -> dict[str, float]:
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.float32, (), name="p")
        out = af.identity(p)
    with af.Session(graph=g) as s:
        st = measure_interleaved({"sync": lambda: s.run(out, {p: 1.0})}, repeat=repeat,
                                 number=0)["sync"]
    result = {"sync_us": st.median * 1e6}

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

    trio.run(main)
    return result


def scalar_chain(n: int, repeat: int) -> float:
    """Microseconds per node of a chain of `n` scalar ``x + 1.0`` (rewrites off)."""
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (), name="x")
        h = x
        for _ in range(n):
            h = h + 1.0
    cfg = af.ConfigProto(graph_options=af.GraphOptions(
        optimizer_options=af.OptimizerOptions(False, False)))
    with af.Session(graph=g, config=cfg) as s:
        assert s.run(h, {x: 0.0}) == n
        st = measure_interleaved({"run": lambda: s.run(h, {x: 0.0})}, repeat=repeat,
                                 number=0)["run"]
    return st.median / n * 1e6


def loop_gap(n: int = 200_000) -> dict[str, float]:
    """The longest gap another trio task sees while one `await s.run` runs an n-iteration
    while_loop; and the loop's iterations per second."""
    g = af.Graph()
    with g.as_default():
        i, acc = af.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + 1.0),
                               (af.constant(0), af.constant(0.0)))
    out: dict[str, float] = {}

    async def main() -> None:
        async with af.Session(graph=g) as s:
            await s.run(i)
            done = False
            gaps = [0.0]

            ticking = trio.Event()

            async def ticker() -> None:
                last = time.perf_counter()
                ticking.set()
                while not done:
                    await trio.sleep(0)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                await ticking.wait()
                t0 = time.perf_counter()
                assert (await s.run(i)) == n
                out["iters_per_s"] = n / (time.perf_counter() - t0)
                done = True
            out["longest_gap_ms"] = max(gaps) * 1e3

    trio.run(main)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    fc = fixed_cost(args.repeat)
    print(f"Session.run fixed cost: sync {fc['sync_us']:.1f} us, async {fc['async_us']:.1f} us")
    print(f"scalar chain of 10,000 x + 1.0: {scalar_chain(10_000, args.repeat):.2f} us/node")
    lg = loop_gap()
    print(f"200k-iteration while_loop via the async API: {lg['iters_per_s'] / 1e3:.0f}k "
          f"iterations/s, another task's longest gap {lg['longest_gap_ms']:.1f} ms")


if __name__ == "__main__":
    main()
