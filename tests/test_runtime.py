"""Graphs through Session: partial execution, fetch structures, rewrites, metadata, pool."""

import collections

import numpy as np
import pytest
import trio

import actorflow as af
from devices import pool as pool_mod

NO_REWRITES = af.ConfigProto(graph_options=af.GraphOptions(
    optimizer_options=af.OptimizerOptions(False, False)))


def _ran(md: af.RunMetadata) -> set[str]:
    return md.step_stats.node_names()


def test_partial_execution_white_paper_figure_6() -> None:
    """Feeding b and fetching f:0 runs neither d nor e (nor a, nor b's producer)."""
    with af.Graph().as_default() as g:
        a = af.placeholder(af.float32, (), name="a")
        b = af.add(a, 1.0, name="b")
        c = af.multiply(b, 2.0, name="c")
        d = af.add(c, 3.0, name="d")
        e = af.multiply(d, 4.0, name="e")
        af.subtract(c, b, name="f")
        with af.Session(graph=g, config=NO_REWRITES) as s:
            md = af.RunMetadata()
            value = s.run("f:0", {b: 5.0}, run_metadata=md)
            assert value == pytest.approx(5.0)
            ran = _ran(md)
            assert {"c", "f"} <= ran
            assert not ran & {"a", "b", "d", "e"}
            md2 = af.RunMetadata()
            assert s.run(e, {a: 1.0}, run_metadata=md2) == pytest.approx(28.0)
            assert {"a", "b", "c", "d", "e"} <= {n.split("/")[-1] for n in _ran(md2)} | {"a"}
            assert "f" not in _ran(md2)


def test_nested_fetches_and_ops() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (2,), name="x")
        y = x * 2.0
        noop = af.no_op()
        Pair = collections.namedtuple("Pair", "first second")
        with af.Session(graph=g) as s:
            v = np.array([1.0, 2.0], np.float32)
            out = s.run({"a": [y, (x, noop)], "b": Pair(y, x), "c": y}, {x: v})
    np.testing.assert_array_equal(out["a"][0], [2.0, 4.0])
    np.testing.assert_array_equal(out["a"][1][0], v)
    assert out["a"][1][1] is None
    assert isinstance(out["b"], Pair)
    np.testing.assert_array_equal(out["b"].second, v)
    np.testing.assert_array_equal(out["c"], [2.0, 4.0])


def test_feeds_accept_scalars_lists_and_arrays_and_fed_tensor_can_be_fetched() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (None, 2))
        y = x + 1.0
        with af.Session(graph=g) as s:
            np.testing.assert_array_equal(s.run(y, {x: [[1, 2]]}), [[2.0, 3.0]])
            np.testing.assert_array_equal(s.run(y, {x: np.ones((3, 2))}), np.full((3, 2), 2.0))
            assert s.run(x, {x: [[5.0, 6.0]]}).tolist() == [[5.0, 6.0]]
            p = af.placeholder(af.int32, ())
            assert s.run(p * 3, {p: 4}) == 12


def test_placeholder_with_default_and_intermediate_feed() -> None:
    with af.Graph().as_default() as g:
        d = af.placeholder_with_default(af.constant([1.0, 2.0]), (2,))
        y = d * 10.0
        with af.Session(graph=g) as s:
            np.testing.assert_array_equal(s.run(y), [10.0, 20.0])
            np.testing.assert_array_equal(s.run(y, {d: [3.0, 4.0]}), [30.0, 40.0])


def test_cse_and_constant_folding() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (), name="x")
        k = af.add(af.constant(2.0, name="two"), af.constant(3.0, name="three"), name="k")
        y1 = af.multiply(x, k, name="y1")
        y2 = af.multiply(x, k, name="y2")
        out = af.add(y1, y2, name="out")
        with af.Session(graph=g) as s:
            md = af.RunMetadata()
            assert s.run(out, {x: 1.5}, run_metadata=md) == pytest.approx(15.0)
            ran = _ran(md)
            assert "y2" not in ran            # merged into y1 by CSE
            assert "two" not in ran and "three" not in ran   # k folded to a constant
        with af.Session(graph=g, config=NO_REWRITES) as s:
            md = af.RunMetadata()
            assert s.run(out, {x: 1.5}, run_metadata=md) == pytest.approx(15.0)
            assert {"y1", "y2", "two", "three", "k"} <= _ran(md)


def test_run_metadata_has_device_and_times() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, ())
        y = x * 2.0
        with af.Session(graph=g) as s:
            md = af.RunMetadata()
            s.run(y, {x: 1.0}, run_metadata=md)
    stats = {n.node_name: n for n in md.step_stats.nodes}
    node = stats[y.op.name]
    assert node.device.endswith("CPU:0")
    assert node.end_s >= node.start_s > 0


def test_plans_are_cached_and_graph_may_grow() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, ())
        y = x + 1.0
        with af.Session(graph=g) as s:
            s.run(y, {x: 1.0})
            s.run(y, {x: 2.0})
            assert len(s._plans) == 1
            z = y * 3.0
            assert s.run(z, {x: 1.0}) == pytest.approx(6.0)
            assert s.run(y, {x: 1.0}) == pytest.approx(2.0)
            assert len(s._plans) == 2


async def test_async_session_runs_in_the_trio_loop() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (3,))
        y = af.reduce_sum(x * x)
    async with af.Session(graph=g) as s:
        results = []

        async def one(i: int) -> None:
            v = np.arange(3, dtype=np.float32) + i
            results.append((i, await s.run(y, {x: v})))

        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(one, i)
    assert sorted(results) == [(i, float(((np.arange(3) + i) ** 2).sum())) for i in range(10)]


async def test_async_session_refuses_sync_run() -> None:
    with af.Graph().as_default() as g:
        y = af.constant(1.0) + 1.0
    async with af.Session(graph=g) as s:
        with pytest.raises(af.FailedPreconditionError, match="await"):
            s.session.run(y)


def test_closed_session_raises() -> None:
    with af.Graph().as_default() as g:
        y = af.constant(1.0) + 1.0
    s = af.Session(graph=g)
    assert s.run(y) == 2.0
    s.close()
    with pytest.raises(af.FailedPreconditionError, match="closed session"):
        s.run(y)


# ---- the memory pool ------------------------------------------------------------------------
def _big_graph() -> tuple[af.Graph, af.Tensor, af.Tensor, af.Tensor]:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (256, 256), name="x")
        y = af.add(x, 1.0, name="y")            # pooled buffer
        r = af.reshape(y, (-1,), name="r")      # a view of y's buffer, fetched
        with af.control_dependencies([r.op]):
            w = af.multiply(x, 3.0, name="w")   # allocated after y's last consumer ran
    return g, x, r, w


def test_pool_never_reuses_a_buffer_a_live_view_still_uses() -> None:
    g, x, r, w = _big_graph()
    v = np.random.default_rng().standard_normal((256, 256)).astype(np.float32)
    with af.Session(graph=g, config=NO_REWRITES) as s:
        for _ in range(3):
            rv, wv = s.run([r, w], {x: v})
            np.testing.assert_array_equal(rv, (v + 1.0).reshape(-1))
            np.testing.assert_array_equal(wv, v * 3.0)


def test_the_view_test_fails_when_reuse_ignores_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the pool believe every released block is free: the fetched view gets corrupted,
    which is what the test above guards against."""
    monkeypatch.setattr(pool_mod, "_FREE_REFS", 1 << 30)
    g, x, r, w = _big_graph()
    v = np.random.default_rng().standard_normal((256, 256)).astype(np.float32)
    with af.Session(graph=g, config=NO_REWRITES) as s:
        rv, wv = s.run([r, w], {x: v})
    assert not np.array_equal(rv, (v + 1.0).reshape(-1))
    np.testing.assert_array_equal(rv, (v * 3.0).reshape(-1))


def test_pool_reuses_buffers_across_steps() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (512, 512))
        y = af.reduce_sum(((x + 1.0) * 2.0) * x, axis=0)
        # rewrites off: element-wise fusion would make the three buffers one
        with af.Session(graph=g, config=NO_REWRITES) as s:
            v = np.ones((512, 512), np.float32)
            for _ in range(5):
                np.testing.assert_allclose(s.run(y, {x: v}), np.full(512, 2048.0))
            stats = s.statistics()[0].pool
    assert stats.hits >= 8          # after the first step every buffer comes from the pool
    assert stats.misses <= 3
    assert stats.peak_bytes_in_use >= 2 * 512 * 512 * 4


def test_pool_reuses_buffers_in_a_training_loop() -> None:
    """After the first steps, a training step's large buffers all come from the pool."""
    rng = np.random.default_rng()
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (256, 128))
        y = af.placeholder(af.int32, (256,))
        w1 = af.Variable(rng.standard_normal((128, 256)).astype(np.float32) * 0.05)
        w2 = af.Variable(rng.standard_normal((256, 10)).astype(np.float32) * 0.05)
        h = af.nn.relu(af.matmul(x, w1))
        loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=af.matmul(h, w2)))
        train = af.train.GradientDescentOptimizer(0.1).minimize(loss)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            xv = rng.standard_normal((256, 128)).astype(np.float32)
            yv = rng.integers(0, 10, 256).astype(np.int32)
            losses = [s.run([train, loss], {x: xv, y: yv})[1] for _ in range(3)]
            warm = s.statistics()[0].pool
            for _ in range(10):
                losses.append(s.run([train, loss], {x: xv, y: yv})[1])
            after = s.statistics()[0].pool
    assert losses[-1] < losses[0]                     # it trains
    assert after.misses == warm.misses                # no new blocks after warm-up
    assert after.hits - warm.hits >= 10 * 3           # >= 3 pooled buffers reused per step


def _layer_graph(read_product: bool) -> tuple[af.Graph, list, dict, af.Operation]:
    rng = np.random.default_rng()
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (16, 8))
        w = af.Variable(rng.standard_normal((8, 6)).astype(np.float32))
        b = af.Variable(rng.standard_normal(6).astype(np.float32))
        product = af.matmul(x, w, name="product")
        h = af.nn.relu(af.nn.bias_add(product, b), name="h")
        loss = af.reduce_sum(h * h) + (af.reduce_sum(product) if read_product else 0.0)
        fetches = [h, *af.gradients(loss, [w, b])]
        init = af.global_variables_initializer()
    return g, fetches, {x: rng.standard_normal((16, 8)).astype(np.float32)}, init


@pytest.mark.parametrize("read_product", [False, True])
def test_matmul_bias_relu_fusion(read_product: bool) -> None:
    """The rewrite fuses a layer into one node (named as its last op) only when nothing else
    reads the intermediate product; values and gradients match the unfused graph exactly."""
    g, fetches, feed, init = _layer_graph(read_product)
    results, ran = [], []
    for config in (af.ConfigProto(), NO_REWRITES):
        with af.Session(graph=g, config=config) as s:
            s.run(init)
            md = af.RunMetadata()
            results.append(s.run(fetches, feed, run_metadata=md))
            ran.append(_ran(md))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ("product" in ran[0]) == read_product     # fused away unless someone reads it
    assert "product" in ran[1] and "h" in ran[0]


# ---- Consts bound at compile time; scalar feeds ------------------------------------------
def test_consts_are_bound_into_their_consumers_at_compile_time() -> None:
    """An input-less Const is not scheduled: its value is in the step's slots from the start,
    its consumers do not wait for it, and it stays there across steps (never released)."""
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (), name="x")
        big = af.constant(np.arange(50_000, dtype=np.float32), name="big")
        y = af.add_n([x + float(i) for i in range(5)], name="y")
        z = af.reduce_sum(big * 2.0, name="z") + x
        with af.Session(graph=g, config=NO_REWRITES) as s:
            for k in range(3):  # the bound values survive every step
                assert s.run(y, {x: float(k)}) == pytest.approx(5 * k + 10)
                assert s.run(z, {x: 1.0}) == pytest.approx(2 * 49_999 * 50_000 / 2 + 1, rel=1e-6)
            plan = s._plans[next(iter(s._plans))]
            ((_, exe),) = plan.step.parts
            consts = [j for j, op in enumerate(exe.ops) if op == "Const"]
            assert consts and set(consts) == set(exe.bound)
            assert not set(consts) & set(exe.roots)
            md = af.RunMetadata()
            s.run(y, {x: 1.0}, run_metadata=md)
            assert {exe.names[j] for j in consts} <= _ran(md)  # traced as having run


def test_a_fed_scalar_reaches_kernels_as_a_numpy_scalar() -> None:
    with af.Graph().as_default() as g:
        p = af.placeholder(af.float32, (), name="p")
        q = af.placeholder(af.int32, (), name="q")
        v = af.placeholder(af.float32, (2,), name="v")
        with af.Session(graph=g) as s:
            for fed in (1.5, np.float64(1.5), np.array(1.5), 3):
                out = s.run(af.identity(p), {p: fed})
                assert type(out) is np.float32 and out == np.float32(fed)
            assert type(s.run(q, {q: np.array(7)})) is np.int32
            with pytest.raises(af.errors.InvalidArgumentError, match="dtype int32"):
                s.run(q, {q: 1.5})
            with pytest.raises(af.errors.InvalidArgumentError, match="shape"):
                s.run(v, {v: 1.5})
