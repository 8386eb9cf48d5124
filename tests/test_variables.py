"""Variables and state ops: creation, initialization, snapshots, in-place updates, scatters,
concurrency (threads on the sync API, trio tasks on the async one), get_variable."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest
import trio

import actorflow as af
from actorflow.graph import GraphKeys


@pytest.fixture
def graph():
    g = af.Graph()
    with g.as_default():
        yield g


def _rng():
    seed = np.random.SeedSequence().entropy
    print("seed", seed)
    return np.random.default_rng(seed)


# ---- creation ---------------------------------------------------------------------------
def test_variable_names_collections_and_ops(graph):
    v = af.Variable(np.arange(6.0).reshape(2, 3), name="v")
    c = af.Variable(1, trainable=False, name="counter")
    anon = af.Variable(af.zeros((4,)))
    assert v.name == "v:0" and v.op.name == "v" and v.op.type == "VarHandleOp"
    assert v.op.attrs["shared_name"] == "v"
    assert v.dtype is af.float64 and v.shape.as_list() == [2, 3]
    assert v.get_shape() == (2, 3)
    assert v.initializer.name == "v/Assign" and v.initializer.type == "AssignVariableOp"
    assert v.value().op.type == "ReadVariableOp" and v.value().name == "v/Read/ReadVariableOp:0"
    assert v.value() is v.value() is af.convert_to_tensor(v)
    assert c.dtype is af.int32 and c.shape.as_list() == []
    assert anon.name == "Variable:0" and anon.dtype is af.float32
    assert af.global_variables() == [v, c, anon]
    assert af.trainable_variables() == [v, anon]
    assert graph.get_collection(GraphKeys.GLOBAL_VARIABLES) == [v, c, anon]
    v2 = af.Variable(1.0, name="v")
    assert v2.name == "v_1:0"
    assert "VarHandleOp" in repr(type(v.op)) or repr(v).startswith("<af.Variable 'v:0'")


def test_variable_under_scopes_and_devices(graph):
    with af.name_scope("layer"), af.device("/cpu:0"):
        w = af.Variable(af.ones((2,)), name="w")
    assert w.name == "layer/w:0"
    assert "CPU:0" in w.device
    assert w.value().device == w.device and w.initializer.device == w.device
    upd = w.assign_add([1.0, 2.0])
    assert upd.device == w.device


def test_initializer_ignores_outer_control_dependencies(graph):
    step = af.no_op(name="step")
    with af.control_dependencies([step]):
        v = af.Variable(1.0, name="v")
        r = v.read_value()
    assert v.initializer.control_inputs == [] and v.value().op.control_inputs == []
    assert r.op.control_inputs == [step]


def test_initial_value_callable_and_dtype(graph):
    v = af.Variable(lambda: af.ones((3,), af.float64) * 2.0, name="f")
    assert v.initial_value.op.name.startswith("f/Initializer/")
    w = af.Variable([1, 2, 3], dtype=af.float32, name="w")
    assert w.dtype is af.float32
    with pytest.raises(af.InvalidArgumentError, match="af.cast"):
        af.Variable(af.ones((2,), af.float32), dtype=af.float64)
    with pytest.raises(af.InvalidArgumentError, match="initial_value"):
        af.Variable()
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        np.testing.assert_array_equal(s.run(v), [2.0, 2.0, 2.0])
        assert s.run(w).dtype == np.float32


# ---- initialization ------------------------------------------------------------------------
def test_read_before_init_names_the_variable(graph):
    v = af.Variable(af.zeros((2,)), name="weights")
    with af.Session() as s:
        with pytest.raises(af.FailedPreconditionError, match="uninitialized variable 'weights'"):
            s.run(v)
        with pytest.raises(af.FailedPreconditionError) as info:
            s.run(v + 1.0)
        assert info.value.node == "weights/Read/ReadVariableOp"
        assert not s.run(v.is_initialized())
        s.run(v.initializer)
        assert s.run(af.is_variable_initialized(v))
        np.testing.assert_array_equal(s.run(v), [0.0, 0.0])


def test_variables_initializer_subset(graph):
    a = af.Variable(1.0, name="a")
    b = af.Variable(2.0, name="b")
    with af.Session() as s:
        s.run(af.variables_initializer([a]))
        assert s.run(a) == 1.0
        with pytest.raises(af.FailedPreconditionError, match="'b'"):
            s.run(b)
        assert s.run(af.assert_variables_initialized([a, b])) == [True, False]
        s.run(af.initialize_all_variables())
        assert s.run(b) == 2.0
    assert af.variables_initializer([]).type == "NoOp"


def test_each_session_has_its_own_state(graph):
    v = af.Variable(0.0, name="v")
    inc = v.assign_add(1.0)
    with af.Session() as s1, af.Session() as s2:
        s1.run(v.initializer)
        s2.run(v.initializer)
        s1.run(inc)
        s1.run(inc)
        assert s1.run(v) == 2.0 and s2.run(v) == 0.0


def test_container_reset_drops_the_variable(graph):
    v = af.Variable(3.0, name="v")
    with af.Session() as s:
        s.run(v.initializer)
        assert s.run(v) == 3.0
        for d in s.devices:
            d.resources.reset()
        with pytest.raises(af.FailedPreconditionError, match="'v'"):
            s.run(v)
        s.run(v.initializer)
        assert s.run(v.assign_add(1.0)) == 4.0


# ---- updates -------------------------------------------------------------------------------
def test_assign_ops_return_new_values(graph):
    rng = _rng()
    init = rng.standard_normal((3, 4))
    delta = rng.standard_normal((3, 4))
    v = af.Variable(init, name="v")
    with af.Session() as s:
        s.run(v.initializer)
        np.testing.assert_allclose(s.run(v.assign_add(delta)), init + delta)
        np.testing.assert_allclose(s.run(v), init + delta)
        np.testing.assert_allclose(s.run(af.assign_sub(v, delta)), init)
        np.testing.assert_allclose(s.run(af.assign(v, delta)), delta)
        np.testing.assert_allclose(s.run(v.read_value()), delta)
        # scalar deltas broadcast to the variable's shape
        np.testing.assert_allclose(s.run(v.assign_add(2.0)), delta + 2.0)
        assert isinstance(v.assign(init, read_value=False), af.Operation)


def test_operators_delegate_to_the_snapshot(graph):
    v = af.Variable(np.array([1.0, -2.0]), name="v")
    w = af.Variable(np.array([3.0, 4.0]), name="w")
    m = af.Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), name="m")
    outs = [v + 1.0, 1.0 + v, v * w, -v, v - w, 2.0 * v, v / w, v < w, v[1], m @ m,
            np.array([1.0, 1.0]) + v, abs(v), v ** 2]
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        got = s.run(outs)
    want = [[2, -1], [2, -1], [3, -8], [-1, 2], [-2, -6], [2, -4], [1 / 3, -0.5],
            [True, True], -2.0, [[7, 10], [15, 22]], [2, -1], [1, 2], [1, 4]]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b)
    with pytest.raises(TypeError, match="truth value"):
        bool(v)


def test_snapshot_is_consistent_and_never_changes(graph):
    v = af.Variable(np.arange(4.0), name="v")
    with af.control_dependencies([v.value()]):
        inc = v.assign_add(np.ones(4))
    with af.Session() as s:
        s.run(v.initializer)
        old, new = s.run([v.value(), inc])
        np.testing.assert_array_equal(old, [0, 1, 2, 3])
        np.testing.assert_array_equal(new, [1, 2, 3, 4])
        held = s.run(v)
        for _ in range(5):
            s.run(inc)
        np.testing.assert_array_equal(old, [0, 1, 2, 3])
        np.testing.assert_array_equal(new, [1, 2, 3, 4])
        np.testing.assert_array_equal(held, [1, 2, 3, 4])
        np.testing.assert_array_equal(s.run(v), [6, 7, 8, 9])
        # a fetched snapshot is read-only: it cannot corrupt the variable
        with pytest.raises(ValueError):
            held[0] = 100.0
        np.testing.assert_array_equal(s.run(v), [6, 7, 8, 9])


def test_updates_run_in_place_when_nobody_holds_the_value(graph):
    v = af.Variable(np.zeros(1000), name="v")
    inc = v.assign_add(1.0, read_value=False)
    with af.Session() as s:
        s.run(v.initializer)
        s.run(inc)
        var = s.devices[0].resources.lookup("", "v")
        buf = weakref.ref(var.value)  # watch the buffer without holding it
        for _ in range(3):
            s.run(inc)
        assert buf() is var.value  # updated in place
        snap = s.run(v)
        s.run(inc)
        assert buf() is not var.value  # a fetched snapshot was held: copied first
        assert snap.base is buf()
        np.testing.assert_array_equal(snap, np.full(1000, 4.0))
        np.testing.assert_array_equal(s.run(v), np.full(1000, 5.0))


def test_assign_build_errors(graph):
    v = af.Variable(np.zeros((2, 3)), name="v")
    with pytest.raises(af.InvalidArgumentError, match=r"shape \(3, 2\).*'v'.*\(2, 3\)"):
        v.assign(np.zeros((3, 2)))
    with pytest.raises(af.InvalidArgumentError,
                       match="'v' of dtype float64 with a float32 value.*af.cast"):
        v.assign_add(af.zeros((2, 3), af.float32))
    with pytest.raises(af.InvalidArgumentError, match="af.Variable"):
        af.assign_add(np.zeros(3), 1.0)


def test_validate_shape_false_lets_the_shape_change(graph):
    v = af.Variable(np.zeros(2), validate_shape=False, name="v")
    assert v.shape.rank is None
    grow = v.assign(np.arange(5.0))
    with af.Session() as s:
        s.run(v.initializer)
        np.testing.assert_array_equal(s.run(grow), np.arange(5.0))
        np.testing.assert_array_equal(s.run(v), np.arange(5.0))


def test_eval_and_load(graph):
    v = af.Variable(np.zeros(3), name="v")
    with af.Session() as s:
        s.run(v.initializer)
        v.load([1.0, 2.0, 3.0], s)
        np.testing.assert_array_equal(v.eval(session=s), [1, 2, 3])
        n_ops = len(graph.get_operations())
        v.load([4.0, 5.0, 6.0], s)
        assert len(graph.get_operations()) == n_ops
        np.testing.assert_array_equal(v.eval(s), [4, 5, 6])


# ---- scatters ------------------------------------------------------------------------------
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_scatter_ops_match_numpy_with_repeated_indices(graph, idx_dtype):
    rng = _rng()
    init = rng.standard_normal((6, 3))
    idx = rng.integers(0, 6, size=10).astype(idx_dtype)
    idx[:3] = 2  # repeated for sure
    upd = rng.standard_normal((10, 3))
    v = af.Variable(init, name="table")
    i_ph = af.placeholder(af.as_dtype(idx_dtype), (None,))
    u_ph = af.placeholder(af.float64, (None, 3))
    add = af.scatter_add(v, i_ph, u_ph)
    sub = af.scatter_sub(v, i_ph, u_ph)
    uniq = np.unique(idx)
    with af.Session() as s:
        s.run(v.initializer)
        want = init.copy()
        np.add.at(want, idx, upd)
        np.testing.assert_allclose(s.run(add, {i_ph: idx, u_ph: upd}), want)
        np.subtract.at(want, idx, upd)
        np.testing.assert_allclose(s.run(sub, {i_ph: idx, u_ph: upd}), want)
        rows = rng.standard_normal((len(uniq), 3))
        want[uniq] = rows
        got = s.run(v.scatter_update(af.IndexedSlices(af.constant(rows),
                                                      af.constant(uniq.astype(idx_dtype)))))
        np.testing.assert_allclose(got, want)
        np.testing.assert_allclose(s.run(v), want)


def test_scatter_errors(graph):
    v = af.Variable(np.zeros((4, 2)), name="t")
    with pytest.raises(af.InvalidArgumentError, match=r"updates of shape \(3, 2\)"):
        af.scatter_add(v, [0, 1, 2], np.zeros((3, 5)))
    with pytest.raises(af.InvalidArgumentError, match="int32 or int64"):
        af.scatter_add(v, af.constant([0.0]), np.zeros((1, 2)))
    bad = af.scatter_add(v, [1, 7], np.ones((2, 2)))
    with af.Session() as s:
        s.run(v.initializer)
        with pytest.raises(af.InvalidArgumentError, match=r"indices\[1\] = 7 is not in \[0, 4\)"):
            s.run(bad)
        np.testing.assert_array_equal(s.run(v), np.zeros((4, 2)))  # untouched


# ---- concurrency ---------------------------------------------------------------------------
def test_threads_increment_exactly(graph):
    v = af.Variable(0, name="counter")
    inc = af.assign_add(v, 1)
    with af.Session() as s:
        s.run(v.initializer)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(100):
                    s.run(inc)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert s.run(v) == 800


async def test_trio_tasks_increment_exactly():
    g = af.Graph()
    with g.as_default():
        v = af.Variable(0, name="counter")
        inc = af.assign_add(v, 1)
        async with af.Session(graph=g) as s:
            await s.run(v.initializer)

            async def worker() -> None:
                for _ in range(100):
                    await s.run(inc)

            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(worker)
            assert await s.run(v) == 800


# ---- gradients ------------------------------------------------------------------------------
def test_gradients_wrt_variables(graph):
    rng = _rng()
    wv = rng.standard_normal(4)
    xv = rng.standard_normal(4)
    w = af.Variable(wv, name="w")
    x = af.constant(xv)
    loss = af.reduce_sum(w * w * x)
    (g,) = af.gradients(loss, [w])
    # through the handle: every read of w counts (the snapshot and a fresh read)
    loss2 = af.reduce_sum(w * x) + af.reduce_sum(w.read_value() * x)
    (h,) = af.gradients(loss2, [w.handle])
    with af.Session() as s:
        s.run(w.initializer)
        np.testing.assert_allclose(s.run(g), 2 * wv * xv)
        np.testing.assert_allclose(s.run(h), 2 * xv)


# ---- get_variable ----------------------------------------------------------------------------
def test_get_variable_and_scopes(graph):
    with af.variable_scope("layer"):
        w = af.get_variable("w", (3, 4), initializer=af.zeros_initializer())
        b = af.get_variable("b", (4,), initializer=af.constant_initializer(0.5))
        g = af.get_variable("g", (30, 40))
    assert w.name == "layer/w:0" and w.dtype is af.float32
    with pytest.raises(af.InvalidArgumentError, match="already exists.*reuse"):
        with af.variable_scope("layer"):
            af.get_variable("w", (3, 4))
    with af.variable_scope("layer", reuse=True):
        assert af.get_variable("w", (3, 4)) is w
        with pytest.raises(af.InvalidArgumentError, match="does not exist"):
            af.get_variable("nope", (1,))
    with af.variable_scope("layer", reuse=af.AUTO_REUSE):
        assert af.get_variable("b") is b
        c = af.get_variable("c", (2,), initializer=af.ones_initializer())
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        np.testing.assert_array_equal(s.run(w), np.zeros((3, 4)))
        np.testing.assert_array_equal(s.run(b), np.full(4, 0.5))
        np.testing.assert_array_equal(s.run(c), np.ones(2))
        gv = s.run(g)
    limit = np.sqrt(6.0 / 70)
    assert gv.shape == (30, 40) and np.abs(gv).max() <= limit and gv.std() > limit / 3


def test_random_initializers_have_the_right_moments(graph):
    af.set_random_seed(5)
    n = af.get_variable("n", (200, 100), initializer=af.random_normal_initializer(1.0, 2.0))
    t = af.get_variable("t", (200, 100),
                        initializer=af.truncated_normal_initializer(0.0, 1.0))
    u = af.get_variable("u", (200, 100), initializer=af.random_uniform_initializer(-1, 3))
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        nv, tv, uv = s.run([n, t, u])
    assert abs(nv.mean() - 1.0) < 0.1 and abs(nv.std() - 2.0) < 0.1
    assert np.abs(tv).max() <= 2.0 and abs(tv.std() - 0.88) < 0.05
    assert uv.min() >= -1 and uv.max() < 3 and abs(uv.mean() - 1.0) < 0.1


# ---- the resource itself ---------------------------------------------------------------------
def test_resource_variable_snapshots_and_copy_on_write():
    from devices.resources import ResourceMgr, ResourceVariable

    var = ResourceVariable("v", np.dtype(np.float64), (3,), "/cpu:0")
    with pytest.raises(af.FailedPreconditionError, match="'v'"):
        var.snapshot()
    src = np.arange(6.0)[::2]  # a view: the variable must own its own copy
    var.assign(src)
    assert var.value.base is None and var.value is not src
    snap = var.snapshot()
    assert not snap.flags.writeable and snap.base is var.value
    first = weakref.ref(var.value)
    w = var.writable()  # a snapshot is held: copy first
    assert w is not first() and first() is not None
    w += 1
    np.testing.assert_array_equal(snap, [0, 2, 4])
    del snap, w
    w = weakref.ref(var.writable())  # nobody holds it now: in place
    assert w() is var.value
    assert var.assign_copy(np.ones(3)) is w()  # in place as well
    s2 = var.snapshot()
    var.assign_copy(np.zeros(3))  # a new buffer: s2 keeps its value
    np.testing.assert_array_equal(s2, np.ones(3))
    with pytest.raises(af.InvalidArgumentError, match=r"shape \(4,\).*'v'"):
        var.assign(np.zeros(4))

    mgr = ResourceMgr("/cpu:0")
    gen = mgr.generation
    assert mgr.lookup_or_create("c", "v", lambda: var) is var
    assert mgr.lookup_or_create("c", "v", lambda: None) is var
    assert mgr.reset("c") == ["c"] and mgr.generation == gen + 1
    with pytest.raises(af.NotFoundError, match="'v'"):
        mgr.lookup("c", "v")


def test_a_gather_from_a_variable_reads_rows_late_and_holds_no_snapshot(graph):
    """ReadVariableOp -> GatherV2 runs as one ResourceGather: rows match NumPy (a 0-d index
    too, as a copy), and while a step waits for its indices the table is not held, so an
    update from another step stays in place."""
    from scheduler.prune import prune
    from scheduler.rewrite import optimize

    table0 = np.arange(40.0).reshape(10, 4)
    v = af.Variable(table0, name="table")
    ids = af.placeholder(af.int32, [None], name="ids")
    one = af.placeholder(af.int32, [], name="one")
    rows = af.gather(v, ids)
    row = af.gather(v, one)
    bump = v.assign_add(np.ones((10, 4)), read_value=False)
    for t, feed in ((rows, ids), (row, one)):  # as a step compiles it: pruned, then rewritten
        gd = optimize(prune(graph.as_graph_def(), [feed.name], [t.name], []))
        assert {nd.name: nd.op for nd in gd.nodes}[t.op.name] == "ResourceGather"
    with af.Session() as s:
        s.run(v.initializer)
        np.testing.assert_array_equal(s.run(rows, {ids: [3, 0, 3]}), table0[[3, 0, 3]])
        got = s.run(row, {one: 7})
        np.testing.assert_array_equal(got, table0[7])
        var = s.devices[0].resources.lookup("", "table")
        buf = weakref.ref(var.value)
        s.run(bump)
        assert buf() is var.value  # the fetched row is a copy: the update stayed in place
        with pytest.raises(af.InvalidArgumentError, match="out of range"):
            s.run(rows, {ids: [10]})


def test_updates_while_a_snapshot_is_held_double_buffer(graph):
    """An update while someone holds the value writes another buffer in one pass; the buffer it
    left behind is reused by a later shared update once its holder let go."""
    v = af.Variable(np.zeros(1000), name="v2")
    inc = v.assign_add(1.0, read_value=False)
    with af.Session() as s:
        s.run(v.initializer)
        var = s.devices[0].resources.lookup("", "v2")
        first = id(var.value)
        held = s.run(v)              # a snapshot of the first buffer
        s.run(inc)                   # shared: the new value goes to a second buffer
        second = id(var.value)
        assert second != first
        np.testing.assert_array_equal(held, np.zeros(1000))  # the snapshot did not change
        held2 = s.run(v)             # now the second buffer is held, the first is free
        del held
        s.run(inc)
        assert id(var.value) == first  # the spare was reused, not a fresh allocation
        np.testing.assert_array_equal(held2, np.ones(1000))
        np.testing.assert_array_equal(s.run(v), np.full(1000, 2.0))
