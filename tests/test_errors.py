"""The error cases of the runtime: each raises its canonical type with a helpful message."""

import numpy as np
import pytest

import actorflow as af
from actorflow.op_def import apply_op, define_op, same_as_input

define_op("TestOpWithoutKernel", infer=same_as_input)


def test_feed_of_the_wrong_shape() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (None, 3), name="x")
        with af.Session(graph=g) as s, pytest.raises(
                af.InvalidArgumentError, match=r"shape \(2, 4\) for tensor 'x:0'.*\(\?, 3\)"):
            s.run(x * 2.0, {x: np.zeros((2, 4))})


def test_feed_of_the_wrong_dtype() -> None:
    with af.Graph().as_default() as g:
        i = af.placeholder(af.int32, (2,), name="i")
        with af.Session(graph=g) as s:
            with pytest.raises(af.InvalidArgumentError, match="float64 array to tensor 'i:0'"):
                s.run(i + 1, {i: np.array([1.5, 2.5])})
            with pytest.raises(af.InvalidArgumentError, match="'i:0' of dtype int32"):
                s.run(i + 1, {i: [1.5, 2.5]})


def test_fetch_from_another_graph() -> None:
    g1, g2 = af.Graph(), af.Graph()
    with g1.as_default():
        a = af.constant(1.0)
    with g2.as_default():
        af.constant(2.0)
    with af.Session(graph=g2) as s, pytest.raises(af.InvalidArgumentError, match="another graph"):
        s.run(a)


def test_fetch_name_that_no_tensor_has() -> None:
    with af.Graph().as_default() as g:
        af.constant(1.0, name="alpha")
        with af.Session(graph=g) as s:
            with pytest.raises(af.NotFoundError, match="'alphx:0'.*did you mean 'alpha'"):
                s.run("alphx:0")
            with pytest.raises(af.NotFoundError, match="1 output"):
                s.run("alpha:3")
            with pytest.raises(af.InvalidArgumentError, match="cannot fetch"):
                s.run(3.0)


def test_graph_with_a_cycle() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, ())
        a = af.add(x, 1.0, name="a")
        b = af.multiply(a, 2.0, name="b")
        a.op._add_control_inputs([b.op])
        with af.Session(graph=g) as s, pytest.raises(
                af.InvalidArgumentError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
            s.run(b, {x: 1.0})


def test_unfed_placeholder() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (None, 3), name="x")
        with af.Session(graph=g) as s, pytest.raises(
                af.InvalidArgumentError, match=r"must feed a value for placeholder 'x'.*\(\?, 3\)"):
            s.run(x + 1.0)


def test_op_with_no_kernel() -> None:
    with af.Graph().as_default() as g:
        y = apply_op("TestOpWithoutKernel", [af.constant(1.0)], name="nokernel")[0]
        with af.Session(graph=g) as s, pytest.raises(
                af.InvalidArgumentError,
                match="no kernel is registered for op .TestOpWithoutKernel.*available devices"):
            s.run(y)


def test_kernel_failing_at_run_time_names_the_node() -> None:
    with af.Graph().as_default() as g:
        a = af.placeholder(af.float32, (None, 3), name="a")
        b = af.placeholder(af.float32, (None, 3), name="b")
        c = af.add(a, b, name="sum_ab")
        with af.Session(graph=g) as s:
            with pytest.raises(af.InvalidArgumentError, match=r"node 'sum_ab'.*CPU:0") as e:
                s.run(c, {a: np.zeros((2, 3)), b: np.zeros((4, 3))})
            assert e.value.node == "sum_ab"
            # the session survives the failed step
            np.testing.assert_array_equal(s.run(c, {a: np.ones((1, 3)), b: np.ones((1, 3))}),
                                          np.full((1, 3), 2.0))


def test_matmul_whose_unknown_dims_disagree() -> None:
    with af.Graph().as_default() as g:
        a = af.placeholder(af.float32, (None, None), name="a")
        b = af.placeholder(af.float32, (None, 2), name="b")
        c = af.matmul(a, b, name="mm")
        with af.Session(graph=g) as s, pytest.raises(af.InvalidArgumentError, match="'mm'"):
            s.run(c, {a: np.zeros((2, 3)), b: np.zeros((4, 2))})


def test_memory_over_the_pool_limit() -> None:
    cfg = af.ConfigProto(memory_limit_bytes={"CPU": 1 << 20})
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (1024, 1024), name="x")
        y = af.multiply(x, 2.0, name="double")
        with af.Session(graph=g, config=cfg) as s, pytest.raises(
                af.ResourceExhaustedError, match=r"4,194,304 bytes.*limit of 1,048,576") as e:
            s.run(y, {x: np.zeros((1024, 1024), np.float32)})
    assert e.value.node == "double"


def test_errors_rebuild_from_their_code() -> None:
    from devices.errors import error_from_code
    err = error_from_code(9, "not ready", node="n", device="/cpu:0")
    assert isinstance(err, af.FailedPreconditionError)
    assert "node 'n'" in str(err) and err.code == 9
    assert isinstance(af.InternalError("boom"), af.OpError)
    assert "please report" in str(af.InternalError("boom"))
