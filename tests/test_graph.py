"""Graph building: names, scopes, shapes, control dependencies, collections, seeds, IR."""

import numpy as np
import pytest

import actorflow as af
from scheduler.graphdef import GraphDef


def test_names_are_unique_and_scoped() -> None:
    g = af.Graph()
    with g.as_default():
        a = af.constant(1.0, name="c")
        b = af.constant(2.0, name="c")
        with af.name_scope("layer"):
            c = af.constant(3.0, name="c")
            with af.name_scope("inner"):
                d = af.add(a, b)
        with af.name_scope("layer"):
            e = af.constant(3.0)
    assert [a.name, b.name, c.name, d.name] == ["c:0", "c_1:0", "layer/c:0",
                                                "layer/inner/Add:0"]
    assert e.name == "layer_1/Const:0"
    assert g.get_tensor_by_name("layer/c:0") is c
    with pytest.raises(af.NotFoundError, match="did you mean"):
        g.get_tensor_by_name("layer/cc:0")


def test_default_graph_is_per_context() -> None:
    g1, g2 = af.Graph(), af.Graph()
    with g1.as_default():
        x = af.constant(1.0)
        with g2.as_default():
            y = af.constant(1.0)
            assert af.get_default_graph() is g2
        assert af.get_default_graph() is g1
    assert x.graph is g1 and y.graph is g2
    with g2.as_default(), pytest.raises(af.InvalidArgumentError, match="another graph"):
        af.add(x, y)


def test_static_shapes_and_broadcast_errors() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.float32, (None, 3))
        y = af.placeholder(af.float32, (1, 3))
        assert (x + y).shape.as_list() == [None, 3]
        assert af.reduce_sum(x, axis=1).shape.as_list() == [None]
        assert af.reduce_sum(x, axis=0, keepdims=True).shape.as_list() == [1, 3]
        z = af.placeholder(af.float32, (4, 5))
        with pytest.raises(af.InvalidArgumentError, match=r"\(1, 3\) and \(4, 5\)"):
            y + z
        with pytest.raises(af.InvalidArgumentError, match="cast"):
            x + af.placeholder(af.float64, (None, 3))
        with pytest.raises(af.InvalidArgumentError, match="12 elements"):
            af.reshape(af.zeros((3, 4)), (5, 2))
        assert af.reshape(x, (-1,)).shape.as_list() == [None]
        assert af.reshape(af.zeros((3, 4)), (-1, 2)).shape.as_list() == [6, 2]


def test_python_scalars_take_the_tensor_dtype() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.float64, ())
        assert (x * 2).dtype is af.float64
        assert (2.0 - x).dtype is af.float64


def test_truth_value_of_a_tensor_is_an_error() -> None:
    with af.Graph().as_default():
        x = af.constant(1.0)
        with pytest.raises(TypeError, match="af.cond"):
            bool(x)


def test_control_dependencies_and_device_scopes_are_recorded() -> None:
    with af.Graph().as_default() as g:
        a = af.no_op(name="a")
        with af.control_dependencies([a]):
            b = af.constant(1.0, name="b")
            with af.control_dependencies(None):
                c = af.constant(1.0, name="c")
        with af.device("/cpu:0"):
            d = af.constant(1.0, name="d")
    assert b.op.control_inputs == [a]
    assert c.op.control_inputs == []
    assert "CPU:0" in d.op.device.upper()
    nd = {n.name: n for n in g.as_graph_def().nodes}
    assert nd["b"].inputs == ["^a"]


def test_collections_and_seeds() -> None:
    g = af.Graph()
    with g.as_default():
        g.add_to_collection("mine", 1)
        g.add_to_collection("mine", 2)
        af.set_random_seed(7)
        from actorflow.graph import get_seed
        s1 = get_seed(None)
        s2 = get_seed(5)
    assert g.get_collection("mine") == [1, 2]
    assert s1[0] == 7 and s2 == (7, 5)


def test_graph_def_round_trips_through_msgpack() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (None, 3), name="x")
        c = af.constant(np.arange(6, dtype=np.float32).reshape(2, 3), name="c")
        af.add(x, af.reduce_sum(c, axis=0), name="y")
    gd = g.as_graph_def()
    back = GraphDef.from_bytes(gd.to_bytes())
    assert [n.name for n in back.nodes] == [n.name for n in gd.nodes]
    by = back.by_name()
    np.testing.assert_array_equal(by["c"].attrs["value"], c.op.attrs["value"])
    assert by["x"].out_shapes == [(None, 3)]
    assert by["y"].inputs == ["x:0", "Sum:0"]
    with pytest.raises(af.InvalidArgumentError, match="malformed"):
        GraphDef.from_bytes(b"\x93garbage")
