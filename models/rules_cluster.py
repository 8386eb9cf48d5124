"""Update rules on a real local cluster (issue 17): `actorflow train mlp --rule R` without
``--simulate``. One `LocalCluster` (1 PS task, N worker daemons on 127.0.0.1); this process
drives N replicas, one thread each, every replica its own graph and `Session` on its worker
task (between-graph replication), the shared variables on the PS.

    async, stale-lr, dcasgd, quantized8   the rule's optimizer, asynchronous updates
    sync, backup                          `SyncReplicasOptimizer` with k = n or k = n - 1
                                          (its hook: the leader applies, the others wait)
    ssp                                   `StaleSynchronous` gates on the PS (bound SSP_BOUND)
    easgd                                 worker-local copies on each worker task, centre
                                          variables on the PS, `ElasticAverage` every tau

Every rule runs in its own name scope, so several rules can share one cluster (`--compare`).
The chief samples test accuracy (of the shared variables, or of the centre) while the replicas
train, and reads the staleness counters from the PS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import actorflow as af
from actorflow.train.staleness import decode_stats
from models import digits
from models.common import classifier, glorot_weights
from models.rules import (
    EASGD_ALPHA,
    EASGD_TAU,
    SIZES,
    SSP_BOUND,
    RuleRun,
    StalenessSummaries,
    check_rules,
    make_rule,
)

PS = "/job:ps/task:0"


class _Replica:
    """Worker `task`'s graph and session for `rule`."""

    def __init__(self, cluster: Any, rule: str, task: int, n: int, lr: float, seed: int,
                 scope: str | None = None):
        spec = cluster.as_dict()
        self.rule, self.task, self.hook, self.wait_op = rule, task, None, None
        self.elastic: Any = None
        self.graph = g = af.Graph()
        worker = f"/job:worker/task:{task}"
        weights = glorot_weights(SIZES, seed)
        with g.as_default(), af.name_scope(scope or rule.replace("-", "_")):
            if rule == "easgd":
                with af.device(PS), af.name_scope("center"):  # shared by name on the PS
                    centers = [af.Variable(w, trainable=False, name=f"p{i}")
                               for i, w in enumerate(x for pair in weights for x in pair)]
                with af.device(worker):  # the worker's own copy
                    m = classifier(SIZES, optimizer=af.train.GradientDescentOptimizer(lr),
                                   weights=weights, name="local")
                    ea = af.train.ElasticAverage(m.variables, alpha=EASGD_ALPHA,
                                                 tau=EASGD_TAU, centers=centers)
                    # every tau steps, from here: a cond over the two tasks' resources
                    # would colocate them
                    self.elastic = ea.elastic_op()
                self.train = m.train_op
                self.shared = ea.centers
                shared = {id(c) for c in centers}
                local = [v for v in af.global_variables() if id(v) not in shared]
                self.init = af.global_variables_initializer() if task == 0 else \
                    af.variables_initializer(local)
            else:
                with af.device(af.train.replica_device_setter(cluster=spec,
                                                              worker_device=worker)):
                    opt = make_rule(rule, lr)
                    opt.task = task
                    if rule in ("sync", "backup"):
                        k = n if rule == "sync" else max(1, n - 1)
                        opt = af.train.SyncReplicasOptimizer(opt, k, n)
                    m = classifier(SIZES, optimizer=opt, weights=weights, name="mlp")
                    self.train = m.train_op
                    if rule in ("sync", "backup"):
                        self.hook = opt.make_session_run_hook(is_chief=task == 0)
                    if rule == "ssp":
                        ssp = af.train.StaleSynchronous(n, task, SSP_BOUND, device_=PS)
                        self.wait_op = ssp.wait_op
                        self.train = ssp.step(m.train_op)
                self.shared = m.variables
                self.init = af.global_variables_initializer() if task == 0 else None
                self.local_init = af.local_variables_initializer()
            self.m = m
            x = m.x
            h = x
            for i in range(0, len(self.shared), 2):
                h = af.matmul(h, self.shared[i]) + self.shared[i + 1]
                if i + 2 < len(self.shared):
                    h = af.nn.relu(h)
            correct = af.equal(af.cast(af.argmax(h, 1), af.int32), m.y)
            self.accuracy = af.reduce_mean(af.cast(correct, af.float32))
            self.stats = af.train.staleness_stats(self.shared[0])
        self.sess = af.Session(cluster.target("worker", task), graph=g)
        self.done = 0
        self.step_times: list[float] = []  # wall seconds of each step (the driver's view)
        self.traced: list[tuple[float, float | None]] = []  # (step, window) of traced steps
        self._trace = af.RunOptions(trace_level=af.RunOptions.SOFTWARE_TRACE)
        self.error: BaseException | None = None

    def start(self) -> None:
        if self.init is not None:
            self.sess.run(self.init)
        if self.rule != "easgd":
            self.sess.run(self.local_init)
        if self.hook is not None:
            self.hook.after_create_session(self.sess)

    def window_of(self, md: Any) -> float | None:
        """The read-to-update window of the first shared variable in a traced step (seconds,
        on the PS: from its read to its staleness count, i.e. next to its apply), or None."""
        v = self.shared[0].op.name
        read = stale = None
        for n in md.step_stats.nodes:
            if n.op == "ReadVariableOp" and n.node_name.startswith(v + "/"):
                read = n.start_s if read is None else min(read, n.start_s)
            elif n.op == "VariableStaleness" and \
                    "update_" + v.replace("/", "_") + "/" in n.node_name:
                stale = n.start_s
        return None if read is None or stale is None else stale - read

    def loop(self, steps: int, seed: int, trace_every: int = 0, batch_size: int = 32) -> None:
        d = digits.load()
        try:
            batches = digits.batches(d.train_x, d.train_y, batch_size,
                                     seed=seed * 1000 + self.task,
                                     epochs=1 + steps * batch_size // len(d.train_x))
            for k, (xb, yb) in enumerate(batches):
                if k == steps:
                    break
                feed = {self.m.x: xb, self.m.y: yb}
                t0 = time.perf_counter()
                if self.wait_op is not None:
                    self.sess.run(self.wait_op)
                if self.hook is not None:
                    self.hook.run(self.sess, self.train, feed)
                elif trace_every and k % trace_every == trace_every - 1:
                    md = af.RunMetadata()
                    self.sess.run(self.train, feed, options=self._trace, run_metadata=md)
                    self.traced.append((time.perf_counter() - t0, self.window_of(md)))
                    self.done += 1
                    continue  # a traced step is slower: not one of step_times
                else:
                    self.sess.run(self.train, feed)
                if self.elastic is not None and (k + 1) % EASGD_TAU == 0:
                    self.sess.run(self.elastic)
                self.step_times.append(time.perf_counter() - t0)
                self.done += 1
        except af.errors.OutOfRangeError:
            pass  # sync: fewer than k replicas remain, the gate closed: the run is over
        except BaseException as e:  # noqa: BLE001 - reported by the driver
            self.error = e
        finally:
            if self.hook is not None:
                try:
                    self.hook.end(self.sess)
                except af.OpError:
                    pass


def train_rule(cluster: Any, rule: str, workers: int, steps: int, *, learning_rate: float,
               seed: int = 0, logdir: str | None = None, eval_every: float = 0.5,
               scope: str | None = None, trace_every: int = 0,
               meter: Callable[[], Any] | None = None, batch_size: int = 32) -> RuleRun:
    """`rule` with `workers` replicas of `steps` steps each (`batch_size` examples) on
    `cluster` (its variables in name scope `scope`, default the rule's name: another scope,
    fresh variables). With
    `trace_every` k > 0 (asynchronous rules), every k-th step of each replica is traced and
    its read-to-update window measured on the PS (`extra["traced"]`: (step seconds, window
    seconds) pairs; the traced steps are left out of `extra["step_times"]`). `meter()` (e.g.
    CPU clocks) is read when the replicas start stepping and when the last one ends:
    `extra["meter"]` = (start, end), building and initialising left out."""
    replicas = [_Replica(cluster, rule, t, workers, learning_rate, seed, scope)
                for t in range(workers)]
    chief = replicas[0]
    d = digits.load()
    test = {chief.m.x: d.test_x, chief.m.y: d.test_y}
    writer = summaries = None
    if logdir:
        writer = af.summary.FileWriter(str(Path(logdir) / rule))
        with chief.graph.as_default():
            summaries = StalenessSummaries(chief.shared, writer)
    try:
        for r in replicas:
            r.start()
        threads = [threading.Thread(target=r.loop, args=(steps, seed, trace_every, batch_size),
                                    daemon=True)
                   for r in replicas]
        m0 = meter() if meter is not None else None
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        acc: list[tuple[float, float]] = []

        def sample() -> None:
            a = float(chief.sess.run(chief.accuracy, test))
            acc.append((time.perf_counter() - t0, a))
            if summaries is not None:
                summaries.write(chief.sess, sum(r.done for r in replicas), a)

        for t in threads:
            while t.is_alive():
                t.join(eval_every)  # sample the accuracy while the replicas train
                if t.is_alive():
                    sample()
        seconds = time.perf_counter() - t0
        m1 = meter() if meter is not None else None
        sample()
        errors = [r.error for r in replicas if r.error is not None]
        if errors:
            raise errors[0]
        stats = decode_stats(chief.sess.run(chief.stats))
        worker_steps = updates = sum(r.done for r in replicas)
        dropped = 0
        if rule in ("sync", "backup"):  # every gradient is one of a step's k, or dropped
            updates = int(chief.sess.run(chief.m.global_step))
            dropped = worker_steps - updates * (workers if rule == "sync" else
                                                max(1, workers - 1))
        acc[-1] = (seconds, acc[-1][1])
        return RuleRun(rule, "cluster", acc, seconds, updates, stats, dropped,
                       extra={"worker_steps": worker_steps,
                              "step_times": [t for r in replicas for t in r.step_times],
                              "traced": [t for r in replicas for t in r.traced],
                              "meter": (m0, m1)})
    finally:
        if writer is not None:
            writer.close()
        for r in replicas:
            r.sess.close()


def train_rules_on_cluster(rules: list[str], workers: int, steps: int, *,
                           learning_rate: float = 0.5, seed: int = 0,
                           logdir: str | None = None, batch_size: int = 32,
                           **_: Any) -> dict[str, RuleRun]:
    """Every rule in turn on one local cluster (1 PS, `workers` worker daemons)."""
    from actorflow.cluster import LocalCluster  # noqa: PLC0415

    check_rules(rules)
    runs = {}
    with LocalCluster(ps=1, workers=workers) as cluster:
        for rule in rules:
            runs[rule] = train_rule(cluster, rule, workers, steps,
                                    learning_rate=learning_rate, seed=seed, logdir=logdir,
                                    batch_size=batch_size)
    return runs
