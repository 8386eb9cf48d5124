"""Synchronous replication across real worker daemons on 127.0.0.1 (between-graph: one graph
and one Session per replica, variables sharded over two PS tasks): 3 workers aggregating 2
per step reach 95% on digits with every shard at the same step; killing a worker's daemon
mid-run lets the others finish; with k = n a dead replica makes the others fail within their
deadline instead of hanging."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import actorflow as af
from actorflow.cluster import LocalCluster
from models import digits

pytestmark = pytest.mark.multiprocess

HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0}
DAEMON_HEARTBEAT = ["--heartbeat-interval", "0.2", "--heartbeat-timeout", "1.0"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two PS tasks and three workers, shared by the tests that kill nothing (each names its
    optimizer, so their gates and accumulators on the PS are their own)."""
    with LocalCluster(ps=2, workers=3) as c:
        yield c


class Replica:
    def __init__(self, cluster: LocalCluster, task: int, k: int, n: int, timeout_ms: int = 0,
                 name: str = "sync_replicas"):
        spec = cluster.as_dict()
        self.graph = g = af.Graph()
        setter = af.train.replica_device_setter(cluster=spec,
                                                worker_device=f"/job:worker/task:{task}")
        with g.as_default(), af.device(setter):
            self.w = af.Variable(np.zeros((64, 10), np.float32), name="w")
            self.b = af.Variable(np.zeros(10, np.float32), name="b")
            self.step = af.train.get_or_create_global_step()
            self.x = af.placeholder(af.float32, (None, 64))
            self.y = af.placeholder(af.int64, (None,))
            loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
                labels=self.y, logits=af.matmul(self.x, self.w) + self.b))
            self.opt = af.train.SyncReplicasOptimizer(af.train.GradientDescentOptimizer(0.5),
                                                      k, n, name=name)
            self.train = self.opt.minimize(loss, global_step=self.step)
            self.hook = self.opt.make_session_run_hook(is_chief=task == 0)
            self.pred = af.argmax(af.matmul(self.x, self.w) + self.b, 1)
            self.init = af.global_variables_initializer()
            self.local_init = af.local_variables_initializer()
            self.counters = self.opt.counters()
        config = af.ConfigProto()
        config.rpc_options = af.RPCOptions(**HEARTBEAT)  # type: ignore[attr-defined]
        config.operation_timeout_in_ms = timeout_ms
        self.sess = af.Session(cluster.target("worker", task), graph=g, config=config)
        self.task = task
        self.done = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        if self.task == 0:
            self.sess.run(self.init)
        self.sess.run(self.local_init)
        self.hook.after_create_session(self.sess)

    def loop(self, until_step: int, data: Any, seed: int, kill_at: threading.Event | None = None
             ) -> None:
        rng = np.random.default_rng(seed)
        try:
            while self.sess.run(self.step) < until_step:
                idx = rng.integers(0, len(data.train_y), 32)
                self.hook.run(self.sess, self.train,
                              {self.x: data.train_x[idx], self.y: data.train_y[idx]})
                self.done += 1
                if kill_at is not None and self.done == 10:
                    kill_at.set()
            self.hook.end(self.sess)
        except af.errors.OutOfRangeError:
            pass
        except BaseException as e:  # noqa: BLE001
            self.error = e


def _run(replicas: list[Replica], until: int, data: Any,
         kill_at: threading.Event | None = None) -> list[threading.Thread]:
    threads = [threading.Thread(target=r.loop, args=(until, data, i, kill_at), daemon=True)
               for i, r in enumerate(replicas)]
    for t in threads:
        t.start()
    return threads


def test_three_workers_two_aggregated_reach_95_percent_and_shards_agree(
        cluster: LocalCluster) -> None:
    d = digits.load()
    reps = [Replica(cluster, i, k=2, n=3, name="sync_k2n3") for i in range(3)]
    try:
        reps[0].start()
        for r in reps[1:]:
            r.start()
        threads = _run(reps, 300, d)  # (200 steps land at 94.7-96%: too close to 95)
        for t in threads:
            t.join(180)
        assert not any(t.is_alive() for t in threads)
        assert [r.error for r in reps] == [None, None, None]
        s = reps[0].sess
        acc = float(np.mean(s.run(reps[0].pred, {reps[0].x: d.test_x}) == d.test_y))
        gstep = int(s.run(reps[0].step))
        gate, accs = s.run([reps[0].counters["gate"], reps[0].counters["accumulators"]])
        # the variables are on two PS tasks; both shards' accumulators applied every step
        devices = {v.device for v in (reps[0].w, reps[0].b)}
        assert len(devices) == 2, devices
    finally:
        for r in reps:
            r.sess.close()
    assert acc >= 0.95, acc
    assert gstep >= 200 and gate[0] == gate[2] == gstep
    for applied, dropped, taken, astep in accs:
        assert taken == 2 * gstep and astep == gstep and dropped == gate[1]
        assert 0 <= applied - taken <= 1


def test_killing_a_worker_mid_run_lets_the_others_finish() -> None:
    d = digits.load()
    with LocalCluster(ps=1, workers=3, daemon_args=DAEMON_HEARTBEAT) as cluster:
        reps = [Replica(cluster, i, k=2, n=3) for i in range(3)]
        try:
            for r in reps:
                r.start()
            kill = threading.Event()
            threads = _run(reps[:2], 80, d) + _run([reps[2]], 80, d, kill_at=kill)
            assert kill.wait(120)
            cluster.kill("worker", 2)  # kill -9 of replica 2's worker daemon
            for t in threads:
                t.join(180)
            assert not any(t.is_alive() for t in threads)
            assert reps[0].error is None and reps[1].error is None
            assert isinstance(reps[2].error, af.errors.OpError)  # the killed one failed
            assert int(reps[0].sess.run(reps[0].step)) >= 80
        finally:
            for r in reps:
                r.sess.close()


def test_with_k_equal_n_a_dead_replica_fails_the_others_within_the_deadline(
        cluster: LocalCluster) -> None:
    d = digits.load()
    reps = [Replica(cluster, i, k=2, n=2, timeout_ms=1500, name="sync_k2n2") for i in range(2)]
    try:
        for r in reps:
            r.start()
        # replica 1 never steps (as if it died holding its place): replica 0 must not hang
        t0 = time.monotonic()
        reps[0].loop(10, d, 0)
        assert isinstance(reps[0].error, af.errors.DeadlineExceededError), reps[0].error
        assert time.monotonic() - t0 < 15
        assert reps[0].done == 0
    finally:
        for r in reps:
            r.sess.close()
