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
machine do, or, with `background_load` E >= 0, share them fairly with each other and with E
other runnable processes (processor sharing, as the OS does: each of the k phases running
gets min(1, cores / (k + E)) of a CPU), for a machine other work loads. `outside_cpu_s` is a
step's CPU before its read that is not the client's (e.g. the worker's handling of the
step's other messages); `ps_read_s` the PS's, served one at a time with the updates (its
read and its reply, the PS being one process); with `read_at_ps` the read waits for the PS
even when it costs nothing (the PS serves it after what it is serving). `think_s` is a
step's client time outside the window between its read and its update (the driver's
turnaround: feeds, the run call, results), on a core and, with `one_client` (one Python
process drives every worker), one worker's at a time, in slices of `client_slice_s` (the
interpreter's switch interval), as threads share a GIL; `client_wait_s` is waiting outside
the window on no core (e.g. for a message in flight). `tail_cpu_s` and `ps_tail_s` are a
step's CPU after its update that is off the step's path (the processes finishing the step
while the client starts the next: replies, teardown): it takes a core beside the next step,
the PS's part one at a time with the PS's other service, so it costs throughput only when
the cores or the PS are busy. `ps_parallel` p: the PS serves p of its read's and its
update's service beside the worker's CPU that precedes them (the two processes handle a
step's messages at once: the PS reads while the worker sets its step up, takes in gradients
while the worker computes the next), the rest after it, as before.

Rules that coordinate the workers are modelled in virtual time with their production
semantics (blocking, never polling): `ssp_bound` s makes a worker wait before its read of
step c until every other worker has applied step c - s - 1 (`af.train.StaleSynchronous`);
`aggregate` k > 0 is synchronous replication (`af.train.SyncReplicasOptimizer`, k = n, or
backup workers with k < n): a worker's gradient of the current global step is accumulated,
the k-th one makes the PS apply their mean through the model's update path (one update, then
the step advances and wakes the contributors), and a gradient of a step already past (a
backup worker's, a straggler's) is dropped and counted (`SimReport.dropped`); `steps` is then
the number of global steps. A model may update worker-local state in `read` and talk to the
PS only on some steps (`needs_ps(step)`, e.g. EASGD's elastic pull every tau steps:
`ElasticSplitModel`).

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

import heapq
import time
from collections.abc import Callable
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
    background_load: float = -1.0   # >= 0: the cores are shared fairly with this many other
                                    # runnable processes (-1: first come first served)
    outside_cpu_s: float = 0.0      # a step's CPU outside its window, not the client's
    ps_read_s: float = 0.0          # the PS's service of a step outside its window (its read
                                    # and reply; one at a time with the updates, on a core)
    think_s: float = 0.0            # a step's client time outside its read..update window
    one_client: bool = False        # one client process drives every worker (one GIL)
    client_slice_s: float = 0.005   # ... which it hands round in slices (sys.getswitchinterval)
    client_wait_s: float = 0.0      # a step's waiting outside its window, on no core
    tail_cpu_s: float = 0.0         # a step's CPU after its update, off the step's path (the
                                    # worker's side: on a core while the next step goes on)
    ps_tail_s: float = 0.0          # the PS's, off the path, one at a time with its service
    read_at_ps: bool = False        # the read waits its turn at the PS even if ps_read_s is 0
    ps_parallel: float = 0.0        # the part of ps_read_s and ps_apply_s the PS serves beside
                                    # the worker's CPU before it (outside_cpu_s, compute_s)
    eval_every_s: float = 0.0       # evaluate accuracy every so much virtual time (0: end)
    ssp_bound: int = -1             # SSP: a worker waits at most this many steps ahead (-1: off)
    aggregate: int = 0              # sync replicas: gradients per update, k (0: asynchronous)
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
    log: dict[str, list[tuple[int, int, int, int, int]]] | None = None
    dropped: int = 0                        # sync: late gradients of a step already past
    worker_steps: int = 0                   # gradients computed (= updates when asynchronous)
    update_times: list[float] = field(default_factory=list)   # virtual time of each update


def simulate(model: Any, sess: Any, config: SimConfig,
             on_eval: Callable[[float, float, int], None] | None = None) -> SimReport:
    """Run `config.workers` virtual workers of `model` (a `SplitModel` in `sess`'s graph,
    variables initialised) for `config.steps` steps each. `on_eval(virtual time, accuracy,
    updates so far)` is called at every evaluation (e.g. to write summaries)."""
    from actorflow.train import replay

    cfg = config
    # one generator per worker: trio runs tasks woken together in a random order, so a shared
    # one would hand out draws in a different order on every run
    rngs = [np.random.default_rng((cfg.seed, w)) for w in range(cfg.workers)]
    if cfg.record:
        replay.record(sess, model.vars)
    acc: list[tuple[float, float]] = []
    counts = {"updates": 0, "failures": 0, "dropped": 0, "worker_steps": 0}
    pending_failures = dict(cfg.failures)
    times: list[float] = []

    def delay(w: int) -> tuple[float, float]:
        rng = rngs[w]
        c = cfg.compute_s * float(rng.lognormal(0.0, cfg.compute_sigma))
        if w < cfg.stragglers:
            c *= cfg.straggler_factor
        return c, float(rng.exponential(cfg.network_s)) if cfg.network_s > 0 else 0.0

    cpus = trio.CapacityLimiter(cfg.cores) if cfg.cores > 0 else None
    shared = _SharedCores(cfg.cores, cfg.background_load) \
        if cfg.cores > 0 and cfg.background_load >= 0 else None
    client = trio.Lock() if cfg.one_client else None

    async def compute(seconds: float) -> None:
        if shared is not None:
            await shared.run(seconds)
        elif cpus is None:
            await trio.sleep(seconds)
        else:
            async with cpus:  # FIFO: a worker's compute waits for a free core
                await trio.sleep(seconds)

    done = [0] * cfg.workers          # steps each worker has applied (SSP's clocks)
    changed = [trio.Event()]           # set (and replaced) whenever a clock or the step moves
    sync = {"step": 0, "grads": []}    # aggregate > 0: the global step and its gradients
    needs_ps = getattr(model, "needs_ps", None)

    def moved() -> None:
        changed[0].set()
        changed[0] = trio.Event()

    async def until(ready: Any) -> None:
        while not ready():
            await changed[0].wait()

    async def step_of(w: int, step: int, incarnation: int) -> Any:
        """Read, compute and send one step; None when the worker died in it (after a restart
        it redoes the step), else whether the PS took the gradient."""
        if cfg.client_wait_s > 0:
            await trio.sleep(cfg.client_wait_s * float(rngs[w].lognormal(0.0, cfg.compute_sigma)))
        if cfg.think_s > 0:  # the client's turnaround before the step reads (on a core)
            think = cfg.think_s * float(rngs[w].lognormal(0.0, cfg.compute_sigma))
            if client is None:
                await compute(think)
            while client is not None and think > 0:  # the GIL, in slices, first come first
                async with client:                    # served
                    await compute(min(think, cfg.client_slice_s))
                think -= cfg.client_slice_s
        # the PS's and the worker's handling outside the window; the PS serves the step's
        # read (and, cyclically, its reply)
        await beside(cfg.outside_cpu_s * float(rngs[w].lognormal(0.0, cfg.compute_sigma))
                     if cfg.outside_cpu_s > 0 else 0.0, cfg.ps_read_s)
        rest = (1.0 - cfg.ps_parallel) * cfg.ps_read_s
        if rest > 0 or cfg.read_at_ps:
            async with ps:  # the read is the PS's: it waits while the PS serves others
                await compute(rest)
        held = model.read(sess, w, step)
        counts["worker_steps"] += 1
        c, net = delay(w)
        await beside(c, cfg.ps_apply_s)
        await trio.sleep(net)
        if pending_failures.get(w) == step:
            del pending_failures[w]
            counts["failures"] += 1
            await trio.sleep(cfg.restart_s)
            return None  # the in-flight update is lost
        if needs_ps is not None and not needs_ps(step):
            model.apply(sess, w, step, held, incarnation)  # worker-local
            return True
        async with ps:  # one update at a time on the PS, first come first served
            rest = (1.0 - cfg.ps_parallel) * cfg.ps_apply_s
            if rest > 0:
                await compute(rest)  # the PS's CPU is one of the cores too
            took = update(w, step, held, incarnation)
        if cfg.tail_cpu_s > 0:  # the step's work after its update, beside the next step
            tails[0].start_soon(compute, cfg.tail_cpu_s)
        if cfg.ps_tail_s > 0:
            tails[0].start_soon(ps_tail)
        return took

    async def ps_tail() -> None:
        await ps_serve(cfg.ps_tail_s)

    async def ps_serve(seconds: float) -> None:
        if seconds > 0:
            async with ps:  # the PS serves one thing at a time
                await compute(seconds)

    async def beside(worker_s: float, ps_s: float) -> None:
        """The worker's `worker_s` of CPU, and `ps_parallel` of the PS's `ps_s` beside it
        (both done before it returns)."""
        par = cfg.ps_parallel * ps_s
        if par <= 0:
            await compute(worker_s)
            return
        async with trio.open_nursery() as both:
            both.start_soon(ps_serve, par)
            await compute(worker_s)

    def update(w: int, step: int, held: Any, incarnation: int) -> bool:
        """The PS applies `held` (asynchronous), or takes it into the global step's
        aggregate (sync): False when it is dropped, being of a step already past."""
        if cfg.aggregate <= 0:
            model.apply(sess, w, step, held, incarnation)
            return True
        if step != sync["step"] or step >= cfg.steps:
            counts["dropped"] += 1
            return False
        sync["grads"].append(held)
        if len(sync["grads"]) == cfg.aggregate:
            grads = [np.mean([h[0][i] for h in sync["grads"]], axis=0)
                     for i in range(len(held[0]))]
            model.apply(sess, w, step, (grads, held[1], held[2]), incarnation)
            counts["updates"] += 1
            times.append(trio.current_time())
            sync["step"], sync["grads"] = step + 1, []
            moved()
        return True

    async def worker(w: int) -> None:
        step, incarnation = 0, 1
        while step < cfg.steps:
            if cfg.ssp_bound >= 0:
                await until(lambda c=step: all(done[j] >= c - cfg.ssp_bound
                                               for j in range(cfg.workers) if j != w))
            took = await step_of(w, step, incarnation)
            if took is None:
                incarnation += 1
                continue  # redo the step from a fresh read
            counts["updates"] += 1
            times.append(trio.current_time())
            step += 1
            done[w] = step
            moved()

    async def sync_worker(w: int) -> None:
        incarnation = 1
        while sync["step"] < cfg.steps:
            step = sync["step"]
            took = await step_of(w, step, incarnation)
            if took is None:
                incarnation += 1
            elif took:  # a contributor waits for the step to move past its own
                await until(lambda c=step: sync["step"] > c)

    ps = trio.Lock()
    tails: list[Any] = []  # the nursery the steps' tails run in

    async def main() -> float:
        async with trio.open_nursery() as outer:
            if cfg.eval_every_s > 0:
                async def evaluate() -> None:
                    while True:
                        await trio.sleep(cfg.eval_every_s)
                        acc.append((trio.current_time(), model.test_accuracy(sess)))
                        if on_eval is not None:
                            on_eval(*acc[-1], counts["updates"])
                outer.start_soon(evaluate)
            async with trio.open_nursery() as n:
                tails.append(n)
                for w in range(cfg.workers):
                    n.start_soon(sync_worker if cfg.aggregate > 0 else worker, w)
            outer.cancel_scope.cancel()
        return trio.current_time()

    t0 = time.perf_counter()
    virtual = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    real = time.perf_counter() - t0
    acc.append((virtual, model.test_accuracy(sess)))
    if on_eval is not None:
        on_eval(*acc[-1], counts["updates"])
    stats = decode_stats(sess.run(model.staleness_stats))
    log = replay.collect(sess, model.vars) if cfg.record else None
    n = counts["updates"]
    return SimReport(virtual, real, n, n / virtual if virtual else 0.0,
                     counts["worker_steps"] / real if real else 0.0, stats, acc,
                     counts["failures"], log, counts["dropped"], counts["worker_steps"], times)


class _SharedCores:
    """`cores` CPUs shared fairly (processor sharing, as the OS scheduler shares them) by the
    simulated phases running now and `background` other runnable processes: each phase
    runs at min(1, cores / (phases + background)) CPU seconds per virtual second.

    Every running phase progresses at the same rate, so one cumulative clock of CPU served
    per phase (`served`) orders them: a phase that needs s seconds from when `served` was S
    ends when `served` reaches S + s. They wait in a heap by that target; only its top
    keeps a timer (rescheduled when the number running changes), so an event costs
    O(log phases), not one wakeup per running phase (1,000 workers)."""

    def __init__(self, cores: int, background: float):
        self.cores, self.background = cores, background
        self.heap: list[tuple[float, int, _Phase]] = []   # (target, arrival, phase)
        self.served = 0.0                                  # CPU served to each phase so far
        self.t = 0.0
        self.arrivals = 0

    def _rate(self) -> float:
        n = len(self.heap)
        return min(1.0, self.cores / (n + self.background)) if n else 0.0

    def _advance(self) -> None:
        now = trio.current_time()
        self.served += (now - self.t) * self._rate()
        self.t = now

    def _kick(self) -> None:
        if self.heap:  # the top's timer is stale (the rate or the top changed)
            self.heap[0][2].wake.set()

    async def run(self, seconds: float) -> None:
        """Take `seconds` of CPU, at the shared rate (which changes as phases come and go)."""
        self._advance()
        me = _Phase(self.served + seconds)
        self.arrivals += 1
        heapq.heappush(self.heap, (me.target, self.arrivals, me))
        self._kick()
        try:
            while self.served < me.target - 1e-12:
                me.wake = trio.Event()
                if self.heap[0][2] is me:
                    with trio.move_on_after((me.target - self.served) / self._rate()):
                        await me.wake.wait()
                else:
                    await me.wake.wait()
                self._advance()
        finally:
            self._advance()
            if self.heap[0][2] is me:
                heapq.heappop(self.heap)
            else:  # cancelled while waiting behind others
                self.heap = [e for e in self.heap if e[2] is not me]
                heapq.heapify(self.heap)
            self._kick()


class _Phase:
    __slots__ = ("target", "wake")

    def __init__(self, target: float):
        self.target = target
        self.wake = trio.Event()
