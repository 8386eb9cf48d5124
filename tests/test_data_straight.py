"""A get_next is *poll-first*: a step that reads an `af.data` iterator runs on the straight run
(`scheduler.straight_run`) when its element is ready, and when it is not (a generator's
producer thread has nothing yet) the step leaves the straight run there, waits in the ready
loop asynchronously, and computes the same values, never blocking the device's trio loop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import trio
import trio.testing

import actorflow as af
from scheduler.executable import Executable


def _exe(s: af.Session, fetches: object, feed: dict | None = None) -> Executable:
    plan, _ = s._prepare(fetches, feed)
    (_, exe), = plan.step.parts
    return exe


def _graph(gen: object) -> tuple[af.Graph, af.Tensor, af.Tensor]:
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.float32, (), name="p")
        twice = p * 2.0  # runs before the get_next in the straight program
        nxt = af.data.Dataset.from_generator(gen, af.int64, ()).prefetch(1) \
            .make_one_shot_iterator().get_next()
        y = af.cast(nxt, af.float32) * 10.0 + twice
    return g, p, y


def test_an_in_memory_pipelines_step_is_straight_and_computes_what_the_loop_does() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    got = []
    for traced in (False, True):  # the straight run, then the ready loop (traced steps)
        with af.Graph().as_default() as g:
            ds = af.data.Dataset.from_tensor_slices(x).shuffle(7, seed=1).batch(3).repeat(2)
            nxt = ds.prefetch(2).make_one_shot_iterator().get_next()
            out = af.reduce_sum(nxt, axis=1) * 2.0
        with af.Session(graph=g) as s:
            exe = _exe(s, out)
            assert exe.straight is not None and len(exe.straight_resume) == 1
            opts = dict(options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE),
                        run_metadata=af.RunMetadata()) if traced else {}
            steps = []
            while True:
                try:
                    steps.append(s.run(out, **opts))
                except af.errors.OutOfRangeError:
                    break
            got.append(np.concatenate(steps))
    np.testing.assert_array_equal(got[0], got[1])
    assert sorted(got[0].tolist()) == sorted((x.sum(axis=1) * 2).tolist() * 2)


async def test_a_get_next_that_must_wait_leaves_the_straight_run_without_blocking() -> None:
    release = threading.Event()

    def gen() -> object:
        yield 1
        release.wait(30)  # the producer thread blocks here, never the device's loop
        yield 2

    g, p, y = _graph(gen)
    with g.as_default():
        plain = p + 1.0  # a step of the same graph without the iterator
    async with af.Session(graph=g) as s:
        exe = _exe(s.session, y, {p: 1.0})
        assert exe.straight is not None and exe.straight_resume
        assert await s.run(y, {p: 1.0}) == 12.0
        got: list[float] = []

        async def step() -> None:
            got.append(await s.run(y, {p: 0.5}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(step)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # the step waits for its element...
            with af.Graph().as_default() as g2:  # ...while the loop runs other steps
                q = af.placeholder(af.float32, ())
                z = q * 3.0
            async with af.Session(graph=g2) as s2:
                assert await s2.run(z, {q: 2.0}) == 6.0
            assert await s.run(plain, {p: 4.0}) == 5.0  # (this session's device too)
            assert got == []
            release.set()
        assert got == [21.0]  # the values the straight run made before it left are kept
        with pytest.raises(af.errors.OutOfRangeError):
            await s.run(y, {p: 0.0})


def test_a_sync_step_whose_get_next_waits_finishes_in_the_loop() -> None:
    release = threading.Event()

    def gen() -> object:
        release.wait(30)
        yield 5

    g, p, y = _graph(gen)
    with af.Session(graph=g) as s:
        assert _exe(s, y, {p: 1.0}).straight is not None

        def release_once_waiting() -> None:  # (a real wait: polled, bounded)
            deadline = time.monotonic() + 30
            while s.statistics()[0].async_kernels_waiting == 0:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
            release.set()

        helper = threading.Thread(target=release_once_waiting)
        helper.start()
        try:
            assert s.run(y, {p: 1.5}) == 53.0
        finally:
            release.set()
            helper.join()
        with pytest.raises(af.errors.OutOfRangeError):
            s.run(y, {p: 0.0})


def test_another_asynchronous_kernel_keeps_the_step_on_the_loop() -> None:
    g = af.Graph()
    with g.as_default():
        q = af.FIFOQueue(2, af.float32, shapes=[()])
        fill = q.enqueue_many([[1.0, 2.0]])
        nxt = af.data.Dataset.from_tensor_slices(np.array([3.0, 4.0], np.float32)) \
            .make_one_shot_iterator().get_next()
        y = q.dequeue() + nxt  # a dequeue is not poll-first: its wait decides the order
    with af.Session(graph=g) as s:
        s.run(fill)
        assert _exe(s, y).straight is None
        assert [s.run(y), s.run(y)] == [4.0, 6.0]
