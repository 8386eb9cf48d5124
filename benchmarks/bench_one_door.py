"""The device's one door (issue 11): Session.run's fixed cost (sync and async), the per-node
cost of a chain of scalar ``x + 1.0``, and how long a 200k-iteration ``while_loop`` run through
the async API keeps another trio task waiting (its longest gap), all in one run. Each figure is
given in wall-clock time and in CPU time (of the whole process, every thread): on a machine
loaded by other work, wall-clock time includes the time the OS gave the CPU to others, and CPU
time is the steadier measure of what the code costs. The gap is in CPU time of the trio thread
(the work done between two turns of the other task).

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


def timed(fn, number: int, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median seconds per call of `fn`, (wall clock, CPU time), over `repeat` runs of `number`."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        wall.append((time.perf_counter() - t0) / number)
        cpu.append((time.process_time() - c0) / number)
    return float(np.median(wall)), float(np.median(cpu))


def fixed_cost(repeat: int) -> dict[str, float]:
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.float32, (), name="p")
        out = af.identity(p)
    with af.Session(graph=g) as s:
        for _ in range(200):
            s.run(out, {p: 1.0})
        wall, cpu = timed(lambda: s.run(out, {p: 1.0}), 2000, repeat)
    result = {"sync_us": wall * 1e6, "sync_cpu_us": cpu * 1e6}

    async def main() -> None:
        async with af.Session(graph=g) as s:
            for _ in range(200):
                await s.run(out, {p: 1.0})
            samples, cpus = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(2000):
                    await s.run(out, {p: 1.0})
                samples.append((time.perf_counter() - t0) / 2000)
                cpus.append((time.process_time() - c0) / 2000)
            result["async_us"] = float(np.median(samples)) * 1e6
            result["async_cpu_us"] = float(np.median(cpus)) * 1e6

    trio.run(main)
    return result


def scalar_chain(n: int, repeat: int) -> tuple[float, float]:
    """Microseconds per node of a chain of `n` scalar ``x + 1.0`` (rewrites off): wall, CPU."""
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
        wall, cpu = timed(lambda: s.run(h, {x: 0.0}), 5, repeat)
    return wall / n * 1e6, cpu / n * 1e6


def scalar_add_n(n: int, repeat: int) -> tuple[float, float]:
    """Microseconds per node (n + 1 nodes: the Adds and the AddN; the Consts are bound at
    compile time) of ``add_n([x + float(i) for i in range(n)])`` on a fed scalar: wall, CPU."""
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (), name="x")
        y = af.add_n([x + float(i) for i in range(n)])
    with af.Session(graph=g) as s:
        assert abs(s.run(y, {x: 0.5}) / (0.5 * n + n * (n - 1) / 2) - 1) < 1e-4
        wall, cpu = timed(lambda: s.run(y, {x: 0.5}), 3, repeat)
    return wall / (n + 1) * 1e6, cpu / (n + 1) * 1e6


def loop_gap(n: int = 200_000) -> dict[str, float]:
    """The longest gap another trio task sees while one `await s.run` runs an n-iteration
    while_loop; and the loop's iterations per second."""
    g = af.Graph()
    with g.as_default():
        limit = af.placeholder(af.int32, ())
        i, acc = af.while_loop(lambda i, a: i < limit, lambda i, a: (i + 1, a + 1.0),
                               (af.constant(0), af.constant(0.0)))
    out: dict[str, float] = {}

    async def main() -> None:
        async with af.Session(graph=g) as s:
            await s.run(i, {limit: 3})  # compiled before timing
            done = False
            gaps = [0.0]

            ticking = trio.Event()

            async def ticker() -> None:
                last = time.thread_time()
                ticking.set()
                while not done:
                    await trio.sleep(0)
                    now = time.thread_time()
                    gaps.append(now - last)
                    last = now

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                await ticking.wait()
                t0, c0 = time.perf_counter(), time.process_time()
                assert (await s.run(i, {limit: n})) == n
                out["iters_per_s"] = n / (time.perf_counter() - t0)
                out["iters_per_cpu_s"] = n / (time.process_time() - c0)
                done = True
            out["longest_gap_ms"] = max(gaps) * 1e3

    trio.run(main)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-tf", action="store_true", help="without TensorFlow's figures")
    args = ap.parse_args()

    def tf(name: str, key: str, **params: object) -> str:  # TF's wall-clock figure, same run
        if args.no_tf:
            return ""
        from benchmarks.common import peer_tf

        peer = peer_tf(name, **params)
        return f"; TF 2.21 {peer['figures'][key]:.2f} us wall" if peer else "; TF 2.21 -"

    fc = fixed_cost(args.repeat)
    print(f"Session.run fixed cost: sync {fc['sync_us']:.1f} us ({fc['sync_cpu_us']:.1f} CPU), "
          f"async {fc['async_us']:.1f} us ({fc['async_cpu_us']:.1f} CPU)"
          + tf("run_fixed_cost", "us_per_run"))
    wall, cpu = scalar_chain(10_000, args.repeat)
    print(f"scalar chain of 10,000 x + 1.0: {wall:.2f} us/node ({cpu:.2f} CPU)")
    wall, cpu = scalar_add_n(10_000, args.repeat)
    print(f"add_n over 10,000 scalar x + float(i): {wall:.2f} us/node ({cpu:.2f} CPU)"
          + tf("scalar_add_n", "us_per_node", n=10_000))
    lg = loop_gap()
    print(f"200k-iteration while_loop via the async API: {lg['iters_per_s'] / 1e3:.0f}k "
          f"iterations/s ({lg['iters_per_cpu_s'] / 1e3:.0f}k per CPU s), another task's "
          f"longest gap {lg['longest_gap_ms']:.1f} ms of CPU")


if __name__ == "__main__":
    main()
