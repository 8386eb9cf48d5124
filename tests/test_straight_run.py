"""The straight run (scheduler.straight_run): a frame-less partition of inline kernels runs the
ready loop's own order, precomputed; it computes what the loop computes, releases what the loop
releases, fails as the loop fails, and still ends its slice about every millisecond."""

from __future__ import annotations

import numpy as np
import pytest
import trio

import actorflow as af
from devices.errors import InvalidArgumentError
from scheduler.executable import Executable

NO_REWRITES = af.ConfigProto(graph_options=af.GraphOptions(
    optimizer_options=af.OptimizerOptions(False, False)))


def _exe(s: af.Session, fetches: object, feed: dict | None = None) -> Executable:
    plan, _ = s._prepare(fetches, feed)
    (_, exe), = plan.step.parts
    return exe


def _training_graph() -> tuple[af.Graph, af.Tensor, af.Tensor, af.Operation, af.Operation]:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (4, 3), name="x")
        w = af.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 10, name="w")
        b = af.Variable(np.ones(2, np.float32), name="b")
        h = af.nn.relu(af.matmul(x, w) + b)
        loss = af.reduce_mean(af.square(h - 1.0)) + af.reduce_sum(af.abs(w)) * 0.01
        train = af.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = af.global_variables_initializer()
    return g, x, loss, train, init


def test_the_straight_order_is_the_order_the_ready_loop_runs() -> None:
    g, x, loss, train, init = _training_graph()
    feed = {x: np.ones((4, 3), np.float32)}
    with af.Session(graph=g, config=NO_REWRITES) as s:
        s.run(init)
        exe = _exe(s, [train, loss], feed)
        assert exe.straight is not None
        meta = af.RunMetadata()  # a traced step goes through the ready loop, node by node
        s.run([train, loss], feed, options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE),
              run_metadata=meta)
        bound = {exe.names[j] for j in exe.bound}
        looped = [n.node_name for n in meta.step_stats.nodes if n.node_name not in bound]
        assert looped == [exe.names[i] for *_, i in exe.straight]


def test_straight_steps_compute_what_the_loop_computes() -> None:
    g, x, loss, train, init = _training_graph()
    feed = {x: np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)}
    losses = []
    for traced in (False, True):  # the straight run, then the ready loop (traced steps)
        with af.Session(graph=g) as s:
            s.run(init)
            opts = dict(options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE),
                        run_metadata=af.RunMetadata()) if traced else {}
            losses.append([s.run([train, loss], feed, **opts)[1] for _ in range(5)])
    assert losses[0] == losses[1]  # bit for bit: the same kernels in the same order
    assert losses[0][-1] < losses[0][0]


def test_partitions_that_need_the_loop_have_no_straight_program() -> None:
    g = af.Graph()
    with g.as_default():
        n = af.placeholder(af.int32, ())
        i = af.while_loop(lambda i: i < n, lambda i: i + 1, [af.constant(0)])
        i = i[0] if isinstance(i, list | tuple) else i
        p = af.placeholder(af.float32, ())
        y = p * 2.0
    with af.Session(graph=g) as s:
        assert _exe(s, i, {n: 3}).straight is None  # frames
        assert s.run(i, {n: 3}) == 3
        assert _exe(s, y, {p: 1.0}).straight is not None


def test_a_failing_kernel_names_its_node_and_the_session_goes_on() -> None:
    g = af.Graph()
    with g.as_default():
        a = af.placeholder(af.float32, (None, None), name="a")
        b = af.placeholder(af.float32, (None, None), name="b")
        c = af.matmul(a, b, name="the_product") + 1.0
    with af.Session(graph=g) as s:
        assert _exe(s, c, {a: np.ones((2, 3)), b: np.ones((3, 2))}).straight is not None
        with pytest.raises(InvalidArgumentError, match="the_product"):
            s.run(c, {a: np.ones((2, 3)), b: np.ones((2, 3))})
        np.testing.assert_array_equal(s.run(c, {a: np.ones((2, 3)), b: np.ones((3, 2))}),
                                      np.full((2, 2), 4.0))


def test_buffers_go_back_to_the_pool_after_their_last_reader() -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (256, 256), name="x")
        y = af.abs(af.abs(x) * 2.0) + 1.0  # intermediates of 256 KB: pooled
    with af.Session(graph=g, config=NO_REWRITES) as s:
        feed = {x: np.zeros((256, 256), np.float32)}
        assert _exe(s, y, feed).straight is not None
        for _ in range(3):
            np.testing.assert_array_equal(s.run(y, feed), np.ones((256, 256)))
        pool = s.statistics()[0].pool
        assert pool.hits > 0  # the released intermediates were taken again


async def test_a_long_straight_step_ends_its_slices_and_lets_other_tasks_run() -> None:
    n = 300  # layers over 20,000 floats: several ms of kernels, several slices
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (20_000,), name="x")
        h = x
        for _ in range(n):
            h = af.abs(h) + 1.0
    async with af.Session(graph=g, config=NO_REWRITES) as s:
        feed = {x: np.zeros(20_000, np.float32)}
        assert _exe(s.session, h, feed).straight is not None
        turns = 0
        done = False
        started = trio.Event()

        async def other() -> None:
            nonlocal turns
            started.set()
            while not done:
                await trio.sleep(0)
                turns += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await started.wait()
            before = turns
            np.testing.assert_array_equal(await s.run(h, feed), np.full(20_000, n))
            done = True
            # the step ran in several slices (about 1 ms each) and the other task ran between
            assert turns - before >= 2


@pytest.mark.parametrize("dtype", [af.float32, af.int32])
def test_add_n_of_many_0d_terms_keeps_their_dtype(dtype: af.DType) -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(dtype, ())
        y = af.add_n([x + af.cast(i, dtype) for i in range(200)])  # one array, one sum
    with af.Session(graph=g) as s:
        got = s.run(y, {x: 3})
    assert type(got) is dtype.np.type and got == 3 * 200 + 199 * 200 // 2
