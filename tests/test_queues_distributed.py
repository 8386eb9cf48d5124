"""Queues across tasks, with real worker daemons on 127.0.0.1: a FIFOQueue on the PS is fed
by one client and drained by another; close wakes a blocked remote consumer; a dequeue past
its step deadline fails with DeadlineExceeded, leaves no waiter behind, and the session goes
on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import actorflow as af
from actorflow.cluster import LocalCluster

pytestmark = pytest.mark.multiprocess

HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_timeout": 2.0}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """One PS and two workers, shared by this module's tests (each uses its own queue)."""
    with LocalCluster(ps=1, workers=2) as c:
        yield c


def _client(cluster: LocalCluster, task: int, timeout_ms: int = 0,
            shared_name: str = "shared_q") -> tuple[af.Session, Any]:
    g = af.Graph()
    with g.as_default(), af.device("/job:ps/task:0"):
        q = af.FIFOQueue(8, [af.int64, af.float32], shapes=[(), (3,)], shared_name=shared_name)
        i = af.placeholder(af.int64, ())
        x = af.placeholder(af.float32, (3,))
        ops = {"enq": q.enqueue([i, x]), "deq": q.dequeue(), "close": q.close(),
               "size": q.size(), "i": i, "x": x}
    config = af.ConfigProto()
    config.rpc_options = af.RPCOptions(**HEARTBEAT)  # type: ignore[attr-defined]
    config.operation_timeout_in_ms = timeout_ms
    return af.Session(cluster.target("worker", task), graph=g, config=config), ops


def test_two_clients_share_a_queue_on_the_ps(cluster: LocalCluster) -> None:
    rng = np.random.default_rng()
    data = rng.standard_normal((40, 3)).astype(np.float32)
    prod, p = _client(cluster, 0)
    cons, c = _client(cluster, 1)
    with prod, cons:
        def produce() -> None:
            for k in range(40):  # capacity 8: the producer blocks until the consumer takes
                prod.run(p["enq"], {p["i"]: k, p["x"]: data[k]})
        t = threading.Thread(target=produce, daemon=True)
        t.start()
        got = [cons.run(c["deq"]) for _ in range(40)]
        t.join(30)
        assert not t.is_alive()
        assert [int(k) for k, _ in got] == list(range(40))
        np.testing.assert_array_equal(np.stack([v for _, v in got]), data)
        # a consumer blocked on the empty queue wakes with OutOfRange when the producer
        # closes it
        errs: list[Any] = []

        def consume() -> None:
            try:
                cons.run(c["deq"])
            except af.errors.OpError as e:
                errs.append(e)
        t = threading.Thread(target=consume, daemon=True)
        t.start()
        time.sleep(0.3)  # not synchronisation: only lets the dequeue reach the PS first
        prod.run(p["close"])
        t.join(30)
        assert len(errs) == 1 and isinstance(errs[0], af.errors.OutOfRangeError), errs


def test_dequeue_past_the_deadline_fails_and_leaves_no_waiter(
        cluster: LocalCluster) -> None:
    s, o = _client(cluster, 0, timeout_ms=400, shared_name="deadline_q")
    with s:
        t0 = time.monotonic()
        with pytest.raises(af.errors.DeadlineExceededError):
            s.run(o["deq"])
        assert time.monotonic() - t0 < 10
        # the session is usable, and the timed-out dequeue took nothing: the next
        # element goes to the next dequeue
        s.run(o["enq"], {o["i"]: 7, o["x"]: np.ones(3, np.float32)})
        assert s.run(o["size"]) == 1
        k, v = s.run(o["deq"])
        assert int(k) == 7 and v.tolist() == [1, 1, 1]
        with pytest.raises(af.errors.DeadlineExceededError):
            s.run(o["deq"])
