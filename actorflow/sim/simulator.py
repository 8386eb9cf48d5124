"""`af.sim`: N virtual workers against in-process PS device actors, on virtual time.

Each virtual worker is a trio task on trio's `MockClock` (autojumping: virtual time moves only
when every task waits, so a simulated hour takes the real time of its computation). A
worker's step is the production path split in two (`SplitModel`): it reads the variables with
their versions and computes its gradient (a real step of the in-process session: the same
kernels, optimizer and update path as a cluster), waits its compute and network delay in
virtual time, then sends the update, whose staleness the PS computes. Meanwhile the other
workers' updates land, so staleness arises from the delays as it does on a cluster. The PS
serves one update at a time for `ps_apply_s` virtual seconds each (first come first served),
so many workers saturate it as they would a real one; with `cores` > 0 the workers' compute
and the PS's service share that many CPUs (each waits for a free one), as processes on one
machine do.

Delays are drawn from seeded generators (one per worker, so a seed gives the same virtual
schedule and the same update order on every run): compute time lognormal around `compute_s`,
network time exponential around `network_s`, `stragglers` workers `straggler_factor` x
slower. `failures` {worker: step}: the worker dies in that step after its read (its
gradient is lost, as a killed task's in-flight step is), restarts `restart_s` later as a new
incarnation (its updates' (task, incarnation) in the record change, as a restarted task's
do) and redoes the step from a fresh read. The run reports accuracy against virtual time,
updates per virtual second, the staleness histogram (from the PS's own counters) and, when
`record` is on, the update log (`actorflow.train.replay` replays it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio
import trio.testing

from actorflow.train.staleness import decode_stats


@dataclass
class SimConfig:
    workers: int = 4
    steps: int = 50                 # per worker
    compute_s: float = 0.010        # median virtual compute time of a step
    compute_sigma: float = 0.2      # lognormal spread
    network_s: float = 0.002        # mean virtual network time of a step (read + update)
    stragglers: int = 0             # the first `stragglers` workers are slower
    straggler_factor: float = 4.0
    failures: dict[int, int] = field(default_factory=dict)   # worker -> step it dies in
    restart_s: float = 0.5          # virtual time for a failed worker to come back
    ps_apply_s: float = 0.0002      # virtual PS service time of one update (FIFO: saturation)
    cores: int = 0                  # CPUs compute and PS service share (0: unlimited)
    eval_every_s: float = 0.0       # evaluate accuracy every so much virtual time (0: end)
    record: bool = False
    seed: int = 0


@dataclass
class SimReport:
    virtual_s: float
    real_s: float
    updates: int
    updates_per_virtual_s: float
    worker_steps_per_real_s: float
    staleness: dict[str, Any]
    accuracy: list[tuple[float, float]]     # (virtual time, test accuracy)
    failures: int
    log: dict[str, list[tuple[int, int, int, int]]] | None = None


def simulate(model: Any, sess: Any, config: SimConfig) -> SimReport:
    """Run `config.workers` virtual workers of `model` (a `SplitModel` in `sess`'s graph,
    variables initialised) for `config.steps` steps each."""
    from actorflow.train import replay

    cfg = config
    # one generator per worker: trio runs tasks woken together in a random order, so a shared
    # one would hand out draws in a different order on every run
    rngs = [np.random.default_rng((cfg.seed, w)) for w in range(cfg.workers)]
    if cfg.record:
        replay.record(sess, model.vars)
    acc: list[tuple[float, float]] = []
    counts = {"updates": 0, "failures": 0}
    pending_failures = dict(cfg.failures)

    def delay(w: int) -> tuple[float, float]:
        rng = rngs[w]
        c = cfg.compute_s * float(rng.lognormal(0.0, cfg.compute_sigma))
        if w < cfg.stragglers:
            c *= cfg.straggler_factor
        return c, float(rng.exponential(cfg.network_s)) if cfg.network_s > 0 else 0.0

    cpus = trio.CapacityLimiter(cfg.cores) if cfg.cores > 0 else None

    async def compute(seconds: float) -> None:
        if cpus is None:
            await trio.sleep(seconds)
        else:
            async with cpus:  # FIFO: a worker's compute waits for a free core
                await trio.sleep(seconds)

    async def worker(w: int) -> None:
        step, incarnation = 0, 1
        while step < cfg.steps:
            held = model.read(sess, w, step)
            c, net = delay(w)
            await compute(c)
            await trio.sleep(net)
            if pending_failures.get(w) == step:
                del pending_failures[w]
                counts["failures"] += 1
                await trio.sleep(cfg.restart_s)
                incarnation += 1
                continue  # the in-flight update is lost; redo the step from a fresh read
            async with ps:  # one update at a time on the PS, first come first served
                if cfg.ps_apply_s > 0:
                    await compute(cfg.ps_apply_s)  # the PS's CPU is one of the cores too
                model.apply(sess, w, step, held, incarnation)
            counts["updates"] += 1
            step += 1

    ps = trio.Lock()

    async def main() -> float:
        async with trio.open_nursery() as outer:
            if cfg.eval_every_s > 0:
                async def evaluate() -> None:
                    while True:
                        await trio.sleep(cfg.eval_every_s)
                        acc.append((trio.current_time(), model.test_accuracy(sess)))
                outer.start_soon(evaluate)
            async with trio.open_nursery() as n:
                for w in range(cfg.workers):
                    n.start_soon(worker, w)
            outer.cancel_scope.cancel()
        return trio.current_time()

    t0 = time.perf_counter()
    virtual = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    real = time.perf_counter() - t0
    acc.append((virtual, model.test_accuracy(sess)))
    stats = decode_stats(sess.run(model.staleness_stats))
    log = replay.collect(sess, model.vars) if cfg.record else None
    n = counts["updates"]
    return SimReport(virtual, real, n, n / virtual if virtual else 0.0,
                     n / real if real else 0.0, stats, acc, counts["failures"], log)
