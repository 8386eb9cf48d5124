"""TF1 input pipelines: producers, batchers, QueueRunner and Coordinator, end to end."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest

import actorflow as af


@pytest.fixture(autouse=True)
def _fresh_graph() -> Any:
    with af.Graph().as_default() as g:
        yield g


def test_slice_input_producer_epochs_exact_and_clean_end() -> None:
    data = np.arange(10, dtype=np.int64) * 10
    labels = np.arange(10, dtype=np.int32)
    x, y = af.train.slice_input_producer([data, labels], num_epochs=3, seed=4, capacity=8)
    xb, yb = af.train.batch([x, y], batch_size=4, allow_smaller_final_batch=True)
    seen: list[tuple[int, int]] = []
    with af.Session() as s:
        s.run(af.local_variables_initializer())
        coord = af.train.Coordinator()
        threads = af.train.start_queue_runners(s, coord)
        try:
            while not coord.should_stop():
                bx, by = s.run([xb, yb])
                seen += list(zip(bx.tolist(), by.tolist(), strict=True))
        except af.errors.OutOfRangeError:
            pass
        finally:
            coord.request_stop()
        coord.join(threads, stop_grace_period_secs=20)
    assert all(a == 10 * b for a, b in seen)  # rows stay together
    assert Counter(b for _, b in seen) == {i: 3 for i in range(10)}
    assert [b for _, b in seen][:10] != list(range(10))  # shuffled


def test_coordinator_keeps_first_error_and_stop_on_exception() -> None:
    coord = af.train.Coordinator()

    def work() -> None:
        with coord.stop_on_exception():
            raise ValueError("boom in a pipeline thread")
    t = threading.Thread(target=work)
    t.start()
    with pytest.raises(ValueError, match="boom"):
        coord.join([t], stop_grace_period_secs=5)
    assert coord.should_stop()
    coord.clear_stop()
    assert not coord.should_stop()
    coord.request_stop(af.errors.OutOfRangeError("end of data"))  # a clean stop
    coord.join([], stop_grace_period_secs=1)


def test_stop_wakes_runner_blocked_on_full_queue() -> None:
    v = af.constant([1.0, 2.0])
    xb = af.train.batch([v], batch_size=2, capacity=4, num_threads=2)
    with af.Session() as s:
        coord = af.train.Coordinator()
        threads = af.train.start_queue_runners(s, coord)
        np.testing.assert_array_equal(s.run(xb)[0], [[1, 2], [1, 2]])
        coord.request_stop()  # the runners are blocked on the full queue; cancel wakes them
        coord.join(threads, stop_grace_period_secs=20)
        assert not any(t.is_alive() for t in threads)


def test_shuffle_batch_join_and_dynamic_pad() -> None:
    a = af.constant(1, dtype=af.int32)
    b = af.constant(2, dtype=af.int32)
    sb = af.train.shuffle_batch_join([[a], [b]], batch_size=20, capacity=40,
                                     min_after_dequeue=5, seed=3)
    padded = af.train.batch([af.constant([7, 7, 7])], batch_size=2, dynamic_pad=True,
                            shapes=[(None,)])
    with af.Session() as s:
        coord = af.train.Coordinator()
        threads = af.train.start_queue_runners(s, coord)
        out = s.run(sb)[0]
        assert set(out.tolist()) <= {1, 2} and len(out) == 20
        np.testing.assert_array_equal(s.run(padded)[0], [[7, 7, 7], [7, 7, 7]])
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=20)


def test_queue_pipeline_trains_softmax_regression_on_digits() -> None:
    from models import digits

    d = digits.load()
    x, y = af.train.slice_input_producer(
        [d.train_x, d.train_y.astype(np.int64)], num_epochs=30, seed=0, capacity=256)
    xb, yb = af.train.batch([x, y], batch_size=32, capacity=256, num_threads=2,
                            allow_smaller_final_batch=True)
    w = af.Variable(np.zeros((64, 10), np.float32))
    b = af.Variable(np.zeros(10, np.float32))
    logits = af.matmul(xb, w) + b
    loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
        labels=yb, logits=logits))
    train = af.train.GradientDescentOptimizer(0.5).minimize(loss)
    tx = af.placeholder(af.float32, (None, 64))
    pred = af.argmax(af.matmul(tx, w) + b, 1)
    steps = 0
    with af.Session() as s:
        s.run([af.global_variables_initializer(), af.local_variables_initializer()])
        coord = af.train.Coordinator()
        threads = af.train.start_queue_runners(s, coord)
        try:
            while not coord.should_stop():
                s.run(train)
                steps += 1
        except af.errors.OutOfRangeError:
            pass
        finally:
            coord.request_stop()
        coord.join(threads, stop_grace_period_secs=30)
        acc = float(np.mean(s.run(pred, {tx: d.test_x}) == d.test_y))
    assert steps == -(-30 * len(d.train_y) // 32) or steps >= 30 * len(d.train_y) // 32
    assert acc >= 0.9, acc
