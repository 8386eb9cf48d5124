"""Dynamic control flow through Session: cond, case, while_loop, map_fn/foldl/foldr/scan,
checked against plain Python; executor semantics (dead branches, stateful ops, frames,
parallel iterations); build-time errors."""

import collections
import time

import numpy as np
import pytest
import trio

import actorflow as af
from actorflow.op_def import define_op
from devices.kernels.registry import register_kernel
from scheduler.executor import StepContext, StepRun

NO_REWRITES = af.ConfigProto(graph_options=af.GraphOptions(
    optimizer_options=af.OptimizerOptions(False, False)))
CONFIGS = [None, NO_REWRITES]


def _ran(md: af.RunMetadata) -> set[str]:
    return md.step_stats.node_names()


@pytest.fixture(autouse=True, params=["fused", "frames"])
def loop_mode(request, monkeypatch):
    """Every test twice: simple loops fused (the default), and every loop run iteration by
    iteration through the executor's frames."""
    if request.param == "frames":
        monkeypatch.setattr("scheduler.executable.plan_fused", lambda *a, **k: None)
    return request.param


# ---- loops against plain Python ----------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
def test_sum_of_1_to_n(config) -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        i, total = af.while_loop(lambda i, s: i <= n, lambda i, s: (i + 1, s + i), (1, 0))
        with af.Session(graph=g, config=config) as s:
            for nv in [0, 1, 2, 17, int(np.random.default_rng().integers(30, 300))]:
                assert s.run([i, total], {n: nv}) == [max(nv, 0) + 1, sum(range(1, nv + 1))]


def test_fibonacci() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        _, a, _ = af.while_loop(lambda k, a, b: k < n, lambda k, a, b: (k + 1, b, a + b),
                                (0, af.constant(0, af.int64), af.constant(1, af.int64)))
        with af.Session(graph=g) as s:
            for nv in (0, 1, 2, 10, 50, 90):
                x, y = 0, 1
                for _ in range(nv):
                    x, y = y, x + y
                assert int(s.run(a, {n: nv})) == x


@pytest.mark.parametrize("config", CONFIGS)
def test_nested_loops_count_a_triangle(config) -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())

        def outer(i, total):
            _, row = af.while_loop(lambda j, c: j <= i, lambda j, c: (j + 1, c + 1), (0, 0))
            return i + 1, total + row

        _, tri = af.while_loop(lambda i, t: i < n, outer, (0, 0))
        with af.Session(graph=g, config=config) as s:
            for nv in (0, 1, 4, 13):
                assert s.run(tri, {n: nv}) == nv * (nv + 1) // 2


def test_three_level_nesting_with_outer_values_inside() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        w = af.placeholder(af.int32, ())

        def level1(i, acc):
            def level2(j, acc2):
                _, c = af.while_loop(lambda k, c: k < j, lambda k, c: (k + 1, c + w + i), (0, 0))
                return j + 1, acc2 + c
            _, s2 = af.while_loop(lambda j, a: j < i, level2, (0, 0))
            return i + 1, acc + s2

        _, out = af.while_loop(lambda i, a: i < n, level1, (0, 0))
        with af.Session(graph=g) as s:
            for nv, wv in ((0, 1), (3, 2), (5, -1)):
                want = sum(sum(k_ * 0 + (wv + i_) for j_ in range(i_) for k_ in range(j_))
                           for i_ in range(nv))
                assert s.run(out, {n: nv, w: wv}) == want


@pytest.mark.parametrize("config", CONFIGS)
def test_cond_inside_a_loop(config) -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())

        def body(i, s):
            s2 = af.cond(af.equal(af.floormod(i, 3), 0), lambda: s + i * 10, lambda: s - i)
            return i + 1, s2

        _, r = af.while_loop(lambda i, s: i < n, body, (0, 0))
        with af.Session(graph=g, config=config) as s:
            for nv in (0, 1, 7, 20):
                assert s.run(r, {n: nv}) == sum(i * 10 if i % 3 == 0 else -i for i in range(nv))


@pytest.mark.parametrize("config", CONFIGS)
def test_a_loop_inside_a_cond(config) -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.int32, ())

        def doubling():
            return af.while_loop(lambda k, p: k < x, lambda k, p: (k + 1, p * 2), (0, 1))[1]

        r = af.cond(x > 0, doubling, lambda: x * 100)
        with af.Session(graph=g, config=config) as s:
            md = af.RunMetadata()
            assert s.run(r, {x: 6}) == 64
            assert s.run(r, {x: -3}, run_metadata=md) == -300
            assert not any("LoopCond" in name for name in _ran(md))


def test_loop_and_cond_in_both_branches_of_a_cond_inside_a_loop() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())

        def body(i, acc):
            inner = af.cond(i > 2,
                            lambda: af.while_loop(lambda k, c: k < i, lambda k, c: (k + 1, c + k),
                                                  (0, 0))[1],
                            lambda: af.cond(i > 0, lambda: i * 100, lambda: af.constant(-7)))
            return i + 1, acc + inner

        _, r = af.while_loop(lambda i, a: i < n, body, (0, 0))
        with af.Session(graph=g) as s:
            def ref(nv):
                return sum((sum(range(i)) if i > 2 else (i * 100 if i > 0 else -7))
                           for i in range(nv))
            for nv in (0, 1, 3, 6):
                assert s.run(r, {n: nv}) == ref(nv)


def test_scan_map_fold_against_numpy() -> None:
    rng = np.random.default_rng()
    with af.Graph().as_default() as g:
        e = af.placeholder(af.float64, (None, 3))
        running = af.scan(lambda a, x: a + x, e)
        with_init = af.scan(lambda a, x: a * 0.5 + x, e, initializer=af.ones((3,), af.float64))
        backwards = af.scan(lambda a, x: a + x, e, reverse=True)
        squares = af.map_fn(lambda x: x * x, e)
        pair = af.map_fn(lambda x: (af.reduce_sum(x), af.cast(af.reduce_sum(x) > 0, af.int32)),
                         e, dtype=(af.float64, af.int32))
        total = af.foldl(lambda a, x: a + af.reduce_sum(x), e, initializer=af.constant(0.0,
                                                                                      af.float64))
        horner = af.foldr(lambda a, x: a * 2.0 + x, e)
        with af.Session(graph=g) as s:
            for rows in (1, 4, 9):
                ev = rng.standard_normal((rows, 3))
                out = s.run([running, with_init, backwards, squares, pair, total, horner], {e: ev})
                np.testing.assert_allclose(out[0], np.cumsum(ev, 0))
                a, ref = np.ones(3), []
                for r in ev:
                    a = a * 0.5 + r
                    ref.append(a)
                np.testing.assert_allclose(out[1], np.stack(ref))
                np.testing.assert_allclose(out[2], np.cumsum(ev[::-1], 0)[::-1])
                np.testing.assert_allclose(out[3], ev * ev)
                np.testing.assert_allclose(out[4][0], ev.sum(1))
                np.testing.assert_array_equal(out[4][1], (ev.sum(1) > 0).astype(np.int32))
                assert out[5] == pytest.approx(ev.sum())
                a = ev[-1]
                for r in ev[-2::-1]:
                    a = a * 2.0 + r
                np.testing.assert_allclose(out[6], a)


def test_tensor_array_in_a_loop() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        ta = af.TensorArray(af.float32, size=n)

        def body(i, ta):
            return i + 1, ta.write(i, af.fill([2], af.cast(i, af.float32) * 2.0))

        _, ta = af.while_loop(lambda i, ta: i < n, body, (0, ta))
        stacked = ta.stack()
        size = ta.size()
        with af.Session(graph=g) as s:
            out, sz = s.run([stacked, size], {n: 4})
            np.testing.assert_array_equal(out, np.repeat(np.arange(4.0)[:, None] * 2, 2, 1))
            assert sz == 4


def test_a_loop_of_20000_iterations_keeps_few_iterations_alive() -> None:
    with af.Graph().as_default() as g:
        n = af.constant(20_000, af.int64)
        i, acc = af.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + i),
                               (af.constant(0, af.int64), af.constant(0, af.int64)),
                               parallel_iterations=10)
        with af.Session(graph=g) as s:
            assert s.run([i, acc]) == [20_000, sum(range(20_000))]
            run = _run_step(s, [i, acc])
            assert run.root.children is None  # every frame was freed
            assert 1 <= run.peak_iterations <= 10


def _run_step(s: af.Session, fetches, feed=None) -> StepRun:
    """Run one step of `fetches` on the session's device directly, to look at the StepRun."""
    plan, args = s._prepare(fetches, feed or {})
    ((dev, exe),) = plan.step.parts
    errors = []
    ctx = StepContext(1, args, len(plan.step.fetches), 1, errors.append)
    run = StepRun(exe, ctx)
    while run.run_slice(dev, False) is not None:  # the device's own loop, on this thread
        pass
    assert errors == [None]
    return run


def test_parallel_iterations_bound_the_live_iterations() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        outs = {}
        for p in (1, 3, 10):
            outs[p] = af.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + i * i), (0, 0),
                                    parallel_iterations=p)
        with af.Session(graph=g) as s:
            for p, out in outs.items():
                run = _run_step(s, list(out), {n: 50})
                assert run.ctx.rets[1] == sum(i * i for i in range(50))
                assert run.peak_iterations <= p


# ---- the executor's semantics ------------------------------------------------------------
def test_only_the_taken_branch_runs() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (), name="x")
        p = af.placeholder(af.bool, (), name="p")
        r = af.cond(p, lambda: af.multiply(x, 2.0, name="double"),
                    lambda: af.negative(af.square(x, name="sq"), name="neg"), name="c")
        # rewrites off: element-wise fusion would run sq and neg as one node named c/neg
        with af.Session(graph=g, config=NO_REWRITES) as s:
            md = af.RunMetadata()
            assert s.run(r, {x: 3.0, p: True}, run_metadata=md) == 6.0
            ran = _ran(md)
            assert "c/double" in ran and not {"c/sq", "c/neg"} & ran
            md = af.RunMetadata()
            assert s.run(r, {x: 3.0, p: False}, run_metadata=md) == -9.0
            ran = _ran(md)
            assert {"c/sq", "c/neg"} <= ran and "c/double" not in ran


def test_a_stateful_op_in_the_untaken_branch_does_not_change_its_variable() -> None:
    with af.Graph().as_default() as g:
        v = af.Variable(10.0, name="v")
        p = af.placeholder(af.bool, ())
        r = af.cond(p, lambda: v.assign_add(1.0), lambda: af.identity(v.read_value()))
        with af.Session(graph=g) as s:
            s.run(v.initializer)
            for _ in range(3):
                assert s.run(r, {p: False}) == 10.0
            assert s.run(v.read_value()) == 10.0
            assert s.run(r, {p: True}) == 11.0
            assert s.run(v.read_value()) == 11.0


def test_stateful_ops_in_a_body_run_once_per_iteration_in_order() -> None:
    with af.Graph().as_default() as g:
        v = af.Variable(0.0, name="counter")
        n = af.placeholder(af.int32, ())

        def body(i, seen):
            inc = v.assign_add(1.0)
            with af.control_dependencies([inc]):
                now = v.read_value()  # after this iteration's increment
            return i + 1, seen + now

        _, seen = af.while_loop(lambda i, s: i < n, body, (0, 0.0), parallel_iterations=1)
        with af.Session(graph=g) as s:
            s.run(v.initializer)
            assert s.run(seen, {n: 5}) == 1 + 2 + 3 + 4 + 5
            assert s.run(v.read_value()) == 5.0
            s.run(seen, {n: 3})
            assert s.run(v.read_value()) == 8.0


def test_control_dependencies_from_outside_hold_inside_a_body() -> None:
    with af.Graph().as_default() as g:
        v = af.Variable(0.0)
        set_v = v.assign(7.0)
        n = af.placeholder(af.int32, ())

        def body(i, acc):
            with af.control_dependencies([set_v]):
                r = v.read_value()
            return i + 1, acc + r

        _, out = af.while_loop(lambda i, a: i < n, body, (0, 0.0))
        with af.Session(graph=g) as s:
            s.run(v.initializer)
            assert s.run(out, {n: 3}) == 21.0


def test_fetching_a_value_of_the_untaken_branch_is_an_error() -> None:
    with af.Graph().as_default() as g:
        p = af.placeholder(af.bool, ())
        inside = []

        def branch():
            t = af.constant(1.0) * 3.0
            inside.append(t)
            return t

        af.cond(p, branch, lambda: af.constant(0.0))
        with af.Session(graph=g) as s:
            assert s.run(inside[0], {p: True}) == 3.0
            with pytest.raises(af.InvalidArgumentError, match="untaken|not taken"):
                s.run(inside[0], {p: False})


def test_fetching_a_value_inside_a_loop_is_an_error() -> None:
    with af.Graph().as_default() as g:
        inside = []

        def body(i):
            inside.append(i * 2)
            return i + 1

        af.while_loop(lambda i: i < 3, body, [0])
        with af.Session(graph=g) as s:
            with pytest.raises(af.InvalidArgumentError, match="inside while loop"):
                s.run(inside[0])


def test_case_picks_the_first_true_branch() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.int32, ())
        r = af.case([(x < 0, lambda: af.constant(-1)), (af.equal(x, 0), lambda: af.constant(0)),
                     (x < 10, lambda: x * 2)], default=lambda: af.constant(100))
        r2 = af.case({x > 5: lambda: x}, default=lambda: -x)
        with af.Session(graph=g) as s:
            assert [s.run(r, {x: v}) for v in (-5, 0, 3, 50)] == [-1, 0, 6, 100]
            assert [s.run(r2, {x: v}) for v in (9, 2)] == [9, -2]


def test_nested_structures_of_loop_variables() -> None:
    State = collections.namedtuple("State", "count values")
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (2,))
        init = {"s": State(0, x), "t": [af.constant(1.0), (af.constant(2.0),)]}

        def body(d):
            st = d["s"]
            return {"s": State(st.count + 1, st.values * 2.0),
                    "t": [d["t"][0] + 1.0, (d["t"][1][0] * d["t"][0],)]}

        out = af.while_loop(lambda d: d["s"].count < 3, body, [init])
        assert isinstance(out, dict) and isinstance(out["s"], State)
        same = af.while_loop(lambda v: v < 4.0, lambda v: [v + 1.0], [af.constant(0.0)],
                             return_same_structure=True)
        with af.Session(graph=g) as s:
            r, r2 = s.run([out, same], {x: [1.0, -1.0]})
        assert r["s"].count == 3
        np.testing.assert_array_equal(r["s"].values, [8.0, -8.0])
        assert r["t"][0] == 4.0 and r["t"][1][0] == 2.0 * 1 * 2 * 3
        assert r2 == [4.0]


def test_a_loop_variable_may_change_shape_with_a_shape_invariant() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        _, grown = af.while_loop(
            lambda i, v: i < n, lambda i, v: (i + 1, af.concat([v, af.cast(af.reshape(i, [1]),
                                                                            af.float32)], 0)),
            (0, af.zeros((0,), af.float32)), shape_invariants=((), (None,)))
        assert grown.shape.as_list() == [None]
        with af.Session(graph=g) as s:
            np.testing.assert_array_equal(s.run(grown, {n: 4}), [0.0, 1.0, 2.0, 3.0])


def test_maximum_iterations_bounds_a_loop_that_would_not_end() -> None:
    with af.Graph().as_default() as g:
        i, acc = af.while_loop(lambda i, a: af.constant(True), lambda i, a: (i + 1, a + 2),
                               (0, 0), maximum_iterations=25)
        bounded = af.while_loop(lambda i: i < 3, lambda i: i + 1, [0], maximum_iterations=10)
        with af.Session(graph=g) as s:
            assert s.run([i, acc, bounded]) == [25, 50, 3]


async def test_loops_under_the_async_session() -> None:
    with af.Graph().as_default() as g:
        n = af.placeholder(af.int32, ())
        _, r = af.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, s + i), (0, 0))
        async with af.Session(graph=g) as s:
            assert await s.run(r, {n: 1000}) == sum(range(1000))


# ---- parallel iterations with an asynchronous kernel -----------------------------------
_SLEEP = 0.02
define_op("TestAsyncSleep", infer=lambda ins, a: [(ins[0].dtype, ins[0]._shape)],
          stateful=True)


@register_kernel("TestAsyncSleep", device_types=("CPU",), stateful=True, is_async=True)
def _test_sleep(k):
    async def compute(ctx, x):
        await trio.sleep(_SLEEP)
        return (x,)
    compute.poll = lambda ctx, x: None
    return compute


def _sleepy_loop(n: int, parallel: int):
    from actorflow.op_def import apply_op

    def body(i, acc):
        slow = apply_op("TestAsyncSleep", [af.cast(i, af.float32)])[0]  # depends on i only
        return i + 1, acc + slow

    return af.while_loop(lambda i, a: i < n, body, (0, 0.0), parallel_iterations=parallel)[1]


def test_iterations_overlap_while_a_body_waits_on_an_asynchronous_kernel() -> None:
    n = 12
    with af.Graph().as_default() as g:
        serial = _sleepy_loop(n, 1)
        overlapped = _sleepy_loop(n, 12)
        with af.Session(graph=g) as s:
            times = {}
            for name, t in (("serial", serial), ("overlapped", overlapped)):
                s.run(t)
                t0 = time.perf_counter()
                assert s.run(t) == sum(range(n))
                times[name] = time.perf_counter() - t0
    assert times["serial"] >= n * _SLEEP
    assert times["overlapped"] < times["serial"] / 3, times


# ---- build-time errors -------------------------------------------------------------------
def test_a_loop_variable_that_changes_shape_needs_a_shape_invariant() -> None:
    with af.Graph().as_default():
        with pytest.raises(af.InvalidArgumentError,
                           match=r"loop variable 1 enters the loop with shape \(0,\) but has "
                                 r"shape \(1,\) after one iteration.*shape_invariants"):
            af.while_loop(lambda i, v: i < 3,
                          lambda i, v: (i + 1, af.concat([v, af.ones((1,))], 0)),
                          (0, af.zeros((0,))))


def test_a_body_must_keep_dtypes_and_structure() -> None:
    with af.Graph().as_default():
        with pytest.raises(af.InvalidArgumentError, match="enters the loop as int32 but the "
                                                          "body returns float32"):
            af.while_loop(lambda i: i < 3, lambda i: af.cast(i, af.float32), [0])
        with pytest.raises(af.InvalidArgumentError, match="structure of loop_vars"):
            af.while_loop(lambda i, j: i < 3, lambda i, j: (i + 1,), (0, 0))


def test_cond_branches_must_agree_in_structure_and_dtype() -> None:
    with af.Graph().as_default():
        p = af.placeholder(af.bool, ())
        with pytest.raises(af.InvalidArgumentError, match="different structures"):
            af.cond(p, lambda: (af.constant(1.0), af.constant(2.0)), lambda: af.constant(1.0))
        with pytest.raises(af.InvalidArgumentError,
                           match="output 0 of true_fn is float32.*false_fn is int32"):
            af.cond(p, lambda: af.constant(1.0), lambda: af.constant(1))


def test_a_predicate_must_be_a_boolean_scalar() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.int32, ())
        with pytest.raises(af.InvalidArgumentError, match="af.cond needs a boolean predicate, "
                                                          "got int32"):
            af.cond(x, lambda: x, lambda: x)
        with pytest.raises(af.InvalidArgumentError, match="boolean predicate, got int32"):
            af.while_loop(lambda i: i + 1, lambda i: i + 1, [0])
        with pytest.raises(af.InvalidArgumentError, match="scalar predicate"):
            af.cond(af.placeholder(af.bool, (2,)), lambda: x, lambda: x)
        with pytest.raises(af.InvalidArgumentError, match="must be callable"):
            af.cond(x > 0, x, lambda: x)


def test_using_a_loop_value_outside_the_loop_is_an_error() -> None:
    with af.Graph().as_default():
        leaked = []

        def body(i):
            leaked.append(i * 2)
            return i + 1

        af.while_loop(lambda i: i < 3, body, [0])
        with pytest.raises(af.InvalidArgumentError, match="while loop.*cannot be used"):
            af.cond(af.constant(True), lambda: leaked[0], lambda: af.constant(0))


@pytest.mark.parametrize("config", CONFIGS)
def test_branches_of_constants_are_not_folded_into_live_values(config) -> None:
    with af.Graph().as_default() as g:
        p = af.placeholder(af.bool, ())
        r = af.cond(p, lambda: af.constant(1.0) * 3.0 + 1.0, lambda: af.constant(0.0) - 2.0)
        r2 = af.cond(p, lambda: af.constant(5), lambda: af.constant(6))
        _, w = af.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, af.constant(2.0) * 4.0),
                             (0, 1.0))
        with af.Session(graph=g, config=config) as s:
            for _ in range(3):
                assert s.run([r, r2, w], {p: True}) == [4.0, 5, 8.0]
                assert s.run([r, r2, w], {p: False}) == [-2.0, 6, 8.0]


def test_a_loop_invariant_that_arrives_late_reaches_every_iteration() -> None:
    from actorflow.op_def import apply_op
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, ())
        late = apply_op("TestAsyncSleep", [x])[0]  # ready only after the loop has started

        def body(i, acc):
            return i + 1, acc + late * af.cast(i, af.float32)

        _, out = af.while_loop(lambda i, a: i < 6, body, (0, 0.0), parallel_iterations=4)
        with af.Session(graph=g) as s:
            assert s.run(out, {x: 2.0}) == 2.0 * sum(range(6))


def test_a_kernel_error_inside_a_loop_names_the_node() -> None:
    with af.Graph().as_default() as g:
        table = af.constant(np.arange(4.0))

        def body(i, acc):
            return i + 1, acc + af.gather(table, i, name="lookup")

        _, out = af.while_loop(lambda i, a: i < 6, body, (0, af.constant(0.0, af.float64)))
        with af.Session(graph=g) as s:
            with pytest.raises(af.InvalidArgumentError, match="out of range") as info:
                s.run(out)
            assert "lookup" in str(info.value)
            ok = af.while_loop(lambda i: i < 3, lambda i: i + 1, [0])
            assert s.run(ok) == 3  # the session still works
