"""The partitioner: Send/Recv pairs per cross-device edge, one Recv per (tensor, destination),
control edges, lossy marks, and ALAP Recv scheduling without cycles."""

import random
from collections import deque

import numpy as np
import pytest

from devices.errors import InvalidArgumentError
from scheduler.cost_model import CostModel
from scheduler.graphdef import GraphDef, NodeDef, parse_input
from scheduler.partition import partition

LOCAL = "/job:localhost/replica:0/task:0/device:"
CPU0, CPU1, GPU0 = LOCAL + "CPU:0", LOCAL + "CPU:1", LOCAL + "GPU:0"
PS0 = "/job:ps/replica:0/task:0/device:CPU:0"


def node(name, op="Op", inputs=(), dtypes=("float32",), shape=(8,)):
    return NodeDef(name, op, list(inputs), "", {}, list(dtypes), [shape] * len(dtypes))


def ops(part: GraphDef, op: str) -> list[NodeDef]:
    return [n for n in part.nodes if n.op == op]


def all_nodes(parts: dict[str, GraphDef]) -> list[NodeDef]:
    return [n for g in parts.values() for n in g.nodes]


def topologically_sortable(parts: dict[str, GraphDef]) -> bool:
    """Kahn over every partition at once, with each Send -> Recv (same key) as an edge."""
    nodes = all_nodes(parts)
    index = {n.name: i for i, n in enumerate(nodes)}
    assert len(index) == len(nodes), "node names must be unique across partitions"
    send_by_key = {n.attrs["key"]: index[n.name] for n in nodes if n.op == "_Send"}
    preds = [[index[parse_input(s.lstrip("^"))[0]] for s in n.inputs] for n in nodes]
    for i, n in enumerate(nodes):
        if n.op == "_Recv":
            preds[i].append(send_by_key[n.attrs["key"]])
    succs: list[list[int]] = [[] for _ in nodes]
    for i, ps in enumerate(preds):
        for j in ps:
            succs[j].append(i)
    pending = [len(p) for p in preds]
    ready = deque(i for i, c in enumerate(pending) if c == 0)
    seen = 0
    while ready:
        i = ready.popleft()
        seen += 1
        for k in succs[i]:
            pending[k] -= 1
            if pending[k] == 0:
                ready.append(k)
    return seen == len(nodes)


def test_same_device_graph_is_copied_with_devices_assigned():
    g = GraphDef([node("a"), node("b", inputs=["a", "^a"])])
    parts = partition(g, {"a": CPU0, "b": CPU0})
    assert list(parts) == [CPU0]
    assert [(n.name, n.inputs, n.device) for n in parts[CPU0].nodes] == [
        ("a", [], CPU0), ("b", ["a", "^a"], CPU0)]
    assert g.nodes[1].device == ""  # the input graph is not modified


def test_cross_device_edge_becomes_a_send_recv_pair_with_the_attribute_contract():
    g = GraphDef([node("a", dtypes=("float32", "int32"), shape=(3, 4)),
                  node("b", inputs=["a:1"])])
    parts = partition(g, {"a": CPU0, "b": CPU1})
    (send,) = ops(parts[CPU0], "_Send")
    (recv,) = ops(parts[CPU1], "_Recv")
    contract = {"key": f"a:1->{CPU1}", "send_device": CPU0, "recv_device": CPU1,
                "tensor_name": "a:1"}
    assert send.inputs == ["a:1"] and send.device == CPU0
    assert send.attrs == contract
    assert recv.inputs == [] and recv.device == CPU1
    assert recv.attrs == {**contract, "dtype": "int32"}
    assert recv.out_dtypes == ["int32"] and recv.out_shapes == [(3, 4)]
    (b,) = [n for n in parts[CPU1].nodes if n.name == "b"]
    assert b.inputs == [recv.name]
    # names are unique everywhere and the result survives the wire format
    names = [n.name for n in all_nodes(parts)]
    assert len(names) == len(set(names))
    for part in parts.values():
        assert GraphDef.from_bytes(part.to_bytes()).nodes == part.nodes


def test_one_recv_per_tensor_per_destination_device():
    g = GraphDef([node("a", dtypes=("float32", "float32")),
                  node("b", inputs=["a", "a:0"]), node("c", inputs=["a:0"]),
                  node("d", inputs=["a:1", "a"]), node("e", inputs=["a"]),
                  node("f", inputs=["a:0"])])
    placement = {"a": CPU0, "b": CPU1, "c": CPU1, "d": CPU1, "e": GPU0, "f": CPU0}
    parts = partition(g, placement)
    recvs_cpu1 = ops(parts[CPU1], "_Recv")
    assert sorted(r.attrs["tensor_name"] for r in recvs_cpu1) == ["a:0", "a:1"]
    assert [r.attrs["tensor_name"] for r in ops(parts[GPU0], "_Recv")] == ["a:0"]
    sends = ops(parts[CPU0], "_Send")
    assert sorted(s.attrs["key"] for s in sends) == sorted(
        [f"a:0->{CPU1}", f"a:1->{CPU1}", f"a:0->{GPU0}"])
    recv_of = {r.attrs["tensor_name"]: r.name for r in recvs_cpu1}
    by_name = {n.name: n for n in parts[CPU1].nodes}
    assert by_name["b"].inputs == [recv_of["a:0"], recv_of["a:0"]]
    assert by_name["c"].inputs == [recv_of["a:0"]]
    assert by_name["d"].inputs == [recv_of["a:1"], recv_of["a:0"]]
    # the same-device consumer reads `a` directly
    assert [n.inputs for n in parts[CPU0].nodes if n.name == "f"] == [["a:0"]]
    assert topologically_sortable(parts)


def test_recv_comes_before_its_first_consumer_and_send_after_its_source():
    g = GraphDef([node("x"), node("a"), node("y", inputs=["a"]), node("b", inputs=["a"])])
    parts = partition(g, {"x": CPU1, "a": CPU0, "y": CPU0, "b": CPU1})
    assert [n.op for n in parts[CPU0].nodes] == ["Op", "_Send", "Op"]
    assert [n.op if n.op != "Op" else n.name for n in parts[CPU1].nodes] == ["x", "_Recv", "b"]


def test_control_edge_across_devices_uses_a_dummy_send():
    g = GraphDef([node("a"), node("b", inputs=["^a"]), node("c", inputs=["^a"])])
    parts = partition(g, {"a": CPU0, "b": CPU1, "c": CPU1})
    (dummy,) = ops(parts[CPU0], "Const")
    assert dummy.inputs == ["^a"] and dummy.device == CPU0
    assert dummy.attrs["dtype"] == "float32"
    assert np.asarray(dummy.attrs["value"]).shape == (0,)
    (send,) = ops(parts[CPU0], "_Send")
    assert send.inputs == [f"{dummy.name}:0"]
    assert send.attrs["tensor_name"] == f"{dummy.name}:0" and send.attrs["control"] is True
    (recv,) = ops(parts[CPU1], "_Recv")  # shared by both consumers
    assert recv.attrs["key"] == send.attrs["key"] and recv.attrs["dtype"] == "float32"
    by_name = {n.name: n for n in parts[CPU1].nodes}
    assert by_name["b"].inputs == ["^" + recv.name]
    assert by_name["c"].inputs == ["^" + recv.name]
    assert topologically_sortable(parts)
    back = GraphDef.from_bytes(parts[CPU0].to_bytes())  # the dummy's array attr survives
    assert [n.name for n in back.nodes] == [n.name for n in parts[CPU0].nodes]


def test_control_edge_reuses_a_data_recv_of_the_same_source():
    g = GraphDef([node("a"), node("b", inputs=["a"]), node("c", inputs=["^a"])])
    parts = partition(g, {"a": CPU0, "b": CPU1, "c": CPU1})
    assert ops(parts[CPU0], "Const") == []
    (recv,) = ops(parts[CPU1], "_Recv")
    assert [n.inputs for n in parts[CPU1].nodes if n.name == "c"] == [["^" + recv.name]]


def test_names_stay_unique_when_a_derived_name_is_taken():
    taken = "_recv_a_0_on_CPU1"
    g = GraphDef([node("a"), node(taken), node("b", inputs=["a"])])
    parts = partition(g, {"a": CPU0, taken: CPU1, "b": CPU1})
    names = [n.name for n in all_nodes(parts)]
    assert len(names) == len(set(names))
    (recv,) = ops(parts[CPU1], "_Recv")
    assert recv.name != taken


def test_names_across_tasks_carry_the_task():
    g = GraphDef([node("a"), node("b", inputs=["a"])])
    parts = partition(g, {"a": CPU0, "b": PS0})
    (recv,) = ops(parts[PS0], "_Recv")
    assert recv.name == "_recv_a_0_on_ps_0_0_CPU0"
    assert recv.attrs["key"] == f"a:0->{PS0}"


def test_lossy_marks_only_float32_pairs():
    g = GraphDef([node("f"), node("i", dtypes=("int32",)), node("h", dtypes=("float16",)),
                  node("use", inputs=["f", "i", "h"]), node("ctl", inputs=["^use"])])
    placement = {"f": CPU0, "i": CPU0, "h": CPU0, "use": CPU1, "ctl": CPU0}
    lossy = partition(g, placement, lossy=True)
    marks = {n.attrs["tensor_name"].split(":")[0]: n.attrs.get("lossy")
             for n in all_nodes(lossy) if n.op in ("_Send", "_Recv")}
    assert marks["f"] is True and marks["i"] is None and marks["h"] is None
    for n in all_nodes(lossy):
        if n.op in ("_Send", "_Recv") and n.attrs.get("control"):
            assert "lossy" not in n.attrs  # nothing to compress in a control token
    assert sum(1 for n in all_nodes(lossy) if n.attrs.get("lossy")) == 2  # the f pair
    plain = partition(g, placement)
    assert not any("lossy" in n.attrs for n in all_nodes(plain))


def test_errors_name_the_node():
    g = GraphDef([node("a"), node("b", inputs=["a"])])
    with pytest.raises(InvalidArgumentError, match="node 'b' .* has no device in the placement"):
        partition(g, {"a": CPU0})
    bad = GraphDef([NodeDef("a", "Op"), node("b", inputs=["a"])])
    with pytest.raises(InvalidArgumentError, match="node 'a' .* declares 0 output dtype"):
        partition(bad, {"a": CPU0, "b": CPU1})
    with pytest.raises(InvalidArgumentError, match="has input 'zz', but the graph has no node "
                                                   "named 'zz'"):
        partition(GraphDef([node("b", inputs=["zz"])]), {"b": CPU0})


# -- ALAP Recv scheduling -----------------------------------------------------------------------

def late_consumer_graph():
    """Big tensors made early on CPU:0, consumed at the end of a long chain on CPU:1."""
    big = (1024, 1024)
    nodes, placement = [], {}
    for k in range(3):
        nodes.append(node(f"x{k}", "Fill", shape=big))
        placement[f"x{k}"] = CPU0
    prev: list[str] = []
    for i in range(20):
        nodes.append(NodeDef(f"c{i}", "MatMul", prev * 2, "", {}, ["float32"], [big]))
        placement[f"c{i}"] = CPU1
        prev = [f"c{i}"]
    nodes.append(node("s", "AddN", ["c19", "x0", "x1"], shape=big))
    nodes.append(node("t", "Mul", ["c19", "x2"], shape=big))
    placement["s"] = placement["t"] = CPU1
    return GraphDef(nodes), placement


def test_alap_delays_recvs_until_just_before_use():
    g, placement = late_consumer_graph()
    eager = partition(g, placement)
    assert all(r.inputs == [] for r in ops(eager[CPU1], "_Recv"))
    parts = partition(g, placement, schedule_recvs_alap=True, cost_model=CostModel())
    recvs = ops(parts[CPU1], "_Recv")
    assert len(recvs) == 3
    on_cpu1 = {n.name for n in parts[CPU1].nodes}
    chain = [f"c{i}" for i in range(20)]
    for r in recvs:
        (anchor,) = r.inputs
        assert anchor.startswith("^") and anchor[1:] in on_cpu1  # a node of its own device
        assert chain.index(anchor[1:]) >= 15                      # late in the chain
    assert topologically_sortable(parts)


def test_alap_does_not_touch_graphs_with_control_flow():
    g, placement = late_consumer_graph()
    g.nodes.append(node("sw", "Switch", ["c0"]))
    placement["sw"] = CPU1
    parts = partition(g, placement, schedule_recvs_alap=True)
    assert all(r.inputs == [] for r in ops(parts[CPU1], "_Recv"))


@pytest.mark.parametrize("trial", range(20))
def test_alap_never_creates_cycles_on_random_graphs(trial):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    devices = [CPU0, CPU1, GPU0, PS0][: rng.randint(2, 4)]
    nodes, placement = [], {}
    for i in range(rng.randint(5, 60)):
        inputs = []
        for j in rng.sample(range(i), min(i, rng.randint(0, 3))):
            inputs.append(f"n{j}" if rng.random() < 0.8 else f"^n{j}")
        shape = (rng.choice([1, 64, 512]), rng.choice([1, 64, 512]))
        nodes.append(NodeDef(f"n{i}", rng.choice(["MatMul", "Add", "Neg"]), inputs, "", {},
                             ["float32"], [shape]))
        placement[f"n{i}"] = rng.choice(devices)
    parts = partition(GraphDef(nodes), placement, schedule_recvs_alap=True)
    assert topologically_sortable(parts), f"cycle with seed {seed}"
    for part in parts.values():
        names = {n.name for n in part.nodes}
        for r in ops(part, "_Recv"):
            assert all(s.startswith("^") and s[1:] in names for s in r.inputs), seed


def test_sends_that_wait_for_no_recv_are_early() -> None:
    from scheduler.distributed_plan import _early_send_tasks

    me = "/job:w/replica:0/task:0/device:CPU:0"
    ps0, ps1 = "/job:ps/replica:0/task:0/device:CPU:0", "/job:ps/replica:0/task:1/device:CPU:0"
    g = GraphDef([
        NodeDef("c", "Const", [], me, {"value": np.ones(2), "dtype": "float64"}),
        NodeDef("early", "_Send", ["c"], me, {"key": "c:0->" + ps0, "recv_device": ps0}),
        NodeDef("r", "_Recv", [], me, {"key": "x:0->" + me, "recv_device": me}),
        NodeDef("late_in", "Identity", ["c", "^r"], me, {}),
        NodeDef("late", "_Send", ["late_in"], me, {"key": "l:0->" + ps1, "recv_device": ps1}),
        NodeDef("local", "_Send", ["c"], me, {"key": "c:0->" + me, "recv_device": me}),
    ])
    assert _early_send_tasks(g, ("w", 0)) == {("ps", 0)}
