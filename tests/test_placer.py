"""The placer: constraints, kernel feasibility, colocation groups, soft placement, the greedy
earliest-finish simulation, measured costs, and speed on a 10,000-node chain."""

import time

import pytest

from devices.device_spec import DeviceSpec
from devices.errors import InvalidArgumentError
from scheduler.cost_model import CostModel
from scheduler.graphdef import GraphDef, NodeDef
from scheduler.placer import colocation_groups, place

LOCAL = "/job:localhost/replica:0/task:0/device:"
CPU0, CPU1, GPU0 = LOCAL + "CPU:0", LOCAL + "CPU:1", LOCAL + "GPU:0"
PS0 = "/job:ps/replica:0/task:0/device:CPU:0"

KERNELS = {
    "Cpu": {"CPU"}, "Gpu": {"GPU"}, "Any": {"CPU", "GPU"},
    "MatMul": {"CPU", "GPU"}, "Neg": {"CPU", "GPU"}, "Var": {"CPU", "GPU"},
    "Read": {"CPU", "GPU"}, "Assign": {"CPU", "GPU"}, "CpuOnlyUpdate": {"CPU"},
}


def kinds(op: str) -> set[str]:
    return KERNELS.get(op, set())


def node(name, op="Any", inputs=(), device="", shape=(4,), dtype="float32", **attrs):
    return NodeDef(name, op, list(inputs), device, dict(attrs), [dtype], [shape])


def run(nodes, devices=(CPU0, CPU1), **kw):
    return place(GraphDef(list(nodes)), list(devices), device_types_for=kinds, **kw)


# -- constraints and kernels ------------------------------------------------------------------

def test_partial_constraints_match_a_set_of_devices():
    devices = [CPU0, CPU1, GPU0, PS0]
    got = run([node("a", device="/job:ps"), node("b", device="/device:GPU:*"),
               node("c", device="/cpu:1"), node("d", device=CPU0),
               node("e", "Gpu"), node("f", device="/job:localhost/task:0/device:CPU:*")],
              devices)
    assert got["a"] == PS0
    assert got["b"] == GPU0
    assert got["c"] == CPU1
    assert got["d"] == CPU0
    assert got["e"] == GPU0          # the only kind with a kernel
    assert got["f"] in (CPU0, CPU1)


def test_device_strings_are_canonicalised_and_partial_available_devices_rejected():
    got = run([node("a")], ["/job:localhost/replica:0/task:0/cpu:0"])
    assert got == {"a": CPU0}
    with pytest.raises(InvalidArgumentError, match="available device '/cpu:0' is not fully"):
        run([node("a")], ["/cpu:0"])
    with pytest.raises(InvalidArgumentError, match="at least one available device"):
        run([node("a")], [])


def test_request_matching_no_device_names_node_request_and_available_devices():
    with pytest.raises(InvalidArgumentError) as info:
        run([node("a"), node("b", "Cpu", ["a"], device="/device:GPU:0")])
    msg = str(info.value)
    assert "cannot place node 'b' (op Cpu, asked for '/device:GPU:0'" in msg
    assert "matches no available device" in msg
    assert f"available devices: {CPU0}, {CPU1}" in msg
    assert "allow_soft_placement=True" in msg
    assert info.value.node == "b" and info.value.device == "/device:GPU:0"


def test_request_on_a_device_without_the_kernel():
    with pytest.raises(InvalidArgumentError) as info:
        run([node("a", "Cpu", device="/gpu:0")], [CPU0, GPU0])
    msg = str(info.value)
    assert "'a' (op Cpu, asked for '/gpu:0', kernels for: CPU)" in msg
    assert "no requested device has a kernel for its op" in msg
    assert f"available devices: {CPU0}, {GPU0}" in msg


def test_op_without_any_available_kernel_fails_even_with_soft_placement():
    for soft in (False, True):
        with pytest.raises(InvalidArgumentError) as info:
            run([node("g", "Gpu")], allow_soft_placement=soft)
        msg = str(info.value)
        assert "cannot place node 'g': op 'Gpu' has kernels only for: GPU" in msg
        assert f"available devices: {CPU0}, {CPU1}" in msg
    with pytest.raises(InvalidArgumentError, match="no kernel is registered for op 'Mystery'"):
        run([node("m", "Mystery")])


def test_malformed_request_and_unknown_input_name_the_node():
    with pytest.raises(InvalidArgumentError, match=r"node 'a' \(op Any\): invalid device spec "
                                                   r"'/job:ps/tsk:0'"):
        run([node("a", device="/job:ps/tsk:0")])
    with pytest.raises(InvalidArgumentError, match="node 'b' .* has input 'zz:1', but the graph "
                                                   "has no node named 'zz'"):
        run([node("b", inputs=["zz:1"])])
    with pytest.raises(InvalidArgumentError, match="two nodes named 'a'"):
        run([node("a"), node("a")])


def test_soft_placement_drops_the_request_but_keeps_the_task_and_kernels():
    got = run([node("a", "Cpu", device="/device:GPU:0")], allow_soft_placement=True)
    assert got["a"] == CPU0
    # a request for a GPU on ps: stay in the ps task
    got = run([node("b", "Any", device="/job:ps/device:GPU:0")], [CPU0, PS0],
              allow_soft_placement=True)
    assert got["b"] == PS0
    # kernel feasibility is kept: CPU-only op asked onto the GPU goes to the CPU
    got = run([node("c", "Cpu", device="/gpu:0")], [GPU0, CPU0], allow_soft_placement=True)
    assert got["c"] == CPU0


# -- colocation ---------------------------------------------------------------------------------

def variable_graph(var_device="", update_device="", update_op="Assign"):
    return [
        node("v", "Var", device=var_device, dtype="resource", shape=()),
        node("r", "Read", ["v"]),
        node("g", "Neg", ["r"]),
        node("u", update_op, ["v", "g"], device=update_device),
        node("z", "Neg", ["g"], _class=["loc:@r"]),
    ]


def test_union_find_groups_from_class_attr_and_resource_edges():
    nodes = variable_graph() + [
        node("p", _class=["loc:@q", "not-a-loc"]), node("q"), node("s", _class="loc:@p"),
        node("w", _class=["loc:@pruned_away"])]
    groups = colocation_groups(GraphDef(nodes))
    assert ["v", "r", "u", "z"] in groups        # resource consumers + loc:@r
    assert ["g"] in groups
    assert ["p", "q", "s"] in groups              # transitive through a string _class
    assert ["w"] in groups                        # a missing target is ignored


def test_stateful_ops_follow_their_variable():
    got = run(variable_graph(var_device="/cpu:1"))
    assert got["v"] == got["r"] == got["u"] == got["z"] == CPU1


def test_group_intersects_kernel_sets():
    # the update op has only a CPU kernel, so the variable cannot go to the GPU
    got = run(variable_graph(update_op="CpuOnlyUpdate"), [GPU0, CPU0])
    assert got["v"] == got["u"] == CPU0


def test_conflicting_requests_in_a_group_list_every_member():
    with pytest.raises(InvalidArgumentError) as info:
        run(variable_graph(var_device="/cpu:0", update_device="/cpu:1"))
    msg = str(info.value)
    assert "cannot place colocated nodes" in msg
    assert "'v' (op Var, asked for '/cpu:0'" in msg
    assert "'u' (op Assign, asked for '/cpu:1'" in msg
    assert "'r' (op Read, no device request" in msg
    assert "their device requests conflict" in msg
    assert f"available devices: {CPU0}, {CPU1}" in msg


def test_group_with_empty_kernel_intersection_fails_even_when_soft():
    nodes = [node("a", "Gpu", dtype="resource"), node("b", "Cpu", ["a"])]
    with pytest.raises(InvalidArgumentError) as info:
        run(nodes, [CPU0, GPU0], allow_soft_placement=True)
    msg = str(info.value)
    assert "'a' (op Gpu, no device request, kernels for: GPU)" in msg
    assert "'b' (op Cpu, no device request, kernels for: CPU)" in msg
    assert "no available device has a kernel for every op" in msg


def test_soft_placement_keeps_a_conflicting_group_together():
    got = run(variable_graph(var_device="/cpu:0", update_device="/cpu:1"),
              allow_soft_placement=True)
    assert got["v"] == got["r"] == got["u"] == got["z"]


def test_compatible_partial_requests_in_a_group_merge():
    devices = [CPU0, PS0, "/job:ps/replica:0/task:0/device:GPU:0"]
    nodes = [node("v", "Var", device="/job:ps", dtype="resource", shape=()),
             node("u", "CpuOnlyUpdate", ["v"], device="/device:CPU:*")]
    got = run(nodes, devices)
    assert got["v"] == got["u"] == PS0


# -- feeds and fetches --------------------------------------------------------------------------

def test_feeds_and_fetches_go_to_the_client_device():
    nodes = [node("_arg_x_0_0", "Placeholder"), node("a", "_Arg", device="/cpu:0"),
             node("b", "Neg", ["a"]), node("ret", "_Retval", ["b"])]
    got = run(nodes, [CPU0, CPU1], client_device=CPU1)
    assert got["_arg_x_0_0"] == got["a"] == got["ret"] == CPU1
    assert run(nodes, [GPU0, CPU0])["ret"] == CPU0  # the default client: the first CPU
    with pytest.raises(InvalidArgumentError, match="client device '/gpu:3' matches no"):
        run(nodes, client_device="/gpu:3")


# -- greedy simulation --------------------------------------------------------------------------

def mm(name, inputs, n=512):
    return NodeDef(name, "MatMul", list(inputs), out_dtypes=["float32"], out_shapes=[(n, n)])


def test_independent_heavy_branches_spread_over_two_devices():
    nodes = [node("x", shape=(512, 512)),
             mm("a1", ["x", "x"]), mm("a2", ["a1", "a1"]), mm("a3", ["a2", "a2"]),
             mm("b1", ["x", "x"]), mm("b2", ["b1", "b1"]), mm("b3", ["b2", "b2"])]
    got = run(nodes)
    assert got["a1"] == got["a2"] == got["a3"]
    assert got["b1"] == got["b2"] == got["b3"]
    assert got["a1"] != got["b1"]


def test_a_chain_stays_on_one_device():
    nodes = [node("n0")] + [node(f"n{i}", "Neg", [f"n{i - 1}"]) for i in range(1, 50)]
    assert set(run(nodes, [CPU0, CPU1]).values()) == {CPU0}
    assert set(run(nodes, [CPU1, CPU0]).values()) == {CPU1}  # ties go to the first device


def test_heavy_work_goes_to_the_faster_device_and_tiny_work_stays():
    heavy = [node("x", shape=(1024, 1024)), mm("m", ["x", "x"], 1024)]
    assert run(heavy, [CPU0, GPU0])["m"] == GPU0
    tiny = [node("x", shape=(2,)), node("y", "Neg", ["x"], shape=(2,))]
    assert set(run(tiny, [CPU0, GPU0]).values()) == {CPU0}


def test_measured_times_are_preferred():
    nodes = [node("x", shape=(1024, 1024)), mm("m", ["x", "x"], 1024)]
    cm = CostModel()
    assert run(nodes, [CPU0, GPU0], cost_model=cm)["m"] == GPU0
    for _ in range(3):
        cm.record("m", GPU0, 5.0)  # the GPU turned out to be slow for this node
    assert run(nodes, [CPU0, GPU0], cost_model=cm)["m"] == CPU0


def test_control_edges_and_loops_are_ordered():
    nodes = [node("a"), node("b", inputs=["^a"]),
             node("enter", "Enter", ["b"]), node("merge", "Merge", ["enter", "next"]),
             node("body", "Neg", ["merge"]), node("next", "NextIteration", ["body"])]
    got = run(nodes)
    assert set(got) == {"a", "b", "enter", "merge", "body", "next"}


def test_a_source_follows_its_pinned_consumers():
    nodes = [node("v", "Var", device="/job:ps", dtype="resource", shape=()),
             node("init", shape=(1024,)), node("u", "Assign", ["v", "init"]),
             node("free"), node("w", "Neg", ["free"], device="/job:ps")]
    got = run(nodes, [CPU0, PS0])
    assert got["v"] == got["u"] == got["init"] == PS0  # made where it is consumed
    assert got["free"] == got["w"] == PS0
    # a source feeding an unpinned consumer keeps its own greedy choice
    got = run([node("x", shape=(1024, 1024)), mm("m", ["x", "x"], 1024)], [CPU0, GPU0])
    assert got["m"] == GPU0


def test_log_receives_one_line_per_node():
    lines: list[str] = []
    run([node("a"), node("b", "Neg", ["a"])], log=lines.append)
    assert lines == [f"a -> {CPU0}", f"b -> {CPU0}"]


def test_ten_thousand_node_chain_is_placed_quickly():
    n = 10_000
    nodes = [node("n0")] + [node(f"n{i}", "Neg", [f"n{i - 1}"]) for i in range(1, n)]
    graph = GraphDef(nodes)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        got = place(graph, [CPU0, CPU1, GPU0], device_types_for=kinds)
        best = min(best, time.perf_counter() - start)
    assert len(got) == n and set(got.values()) == {CPU0}
    assert best < 1.0, f"placing a {n}-node chain took {best:.3f} s"


# -- the cost model -----------------------------------------------------------------------------

def test_output_bytes_with_unknown_dims_dtypes_and_ranks():
    cm = CostModel()
    n = NodeDef("n", "Op", out_dtypes=["float32", "int8", "float64", "float32", "mystery"],
                out_shapes=[(3, 4), (), (None, 2), None, (5,)])
    unknown = cm.params.unknown_dim
    assert cm.output_bytes(n) == [48, 1, unknown * 2 * 8, cm.params.unknown_rank_elements * 4,
                                  20]
    assert cm.output_bytes(NodeDef("h", "Var", out_dtypes=["resource"], out_shapes=[()])) == [8]


def test_compute_time_heuristics():
    cm = CostModel()
    cpu, gpu = DeviceSpec.parse(CPU0), DeviceSpec.parse(GPU0)
    mat = NodeDef("m", "MatMul", ["a", "b"], out_dtypes=["float32"], out_shapes=[(64, 32)])
    flops, _ = cm.work(mat, [(64, 128), (128, 32)])
    assert flops == 2 * 64 * 32 * 128
    flops_t, _ = cm.work(NodeDef("t", "MatMul", ["a", "b"], attrs={"transpose_a": True},
                                 out_dtypes=["float32"], out_shapes=[(64, 32)]),
                         [(16, 64), (16, 32)])
    assert flops_t == 2 * 64 * 32 * 16
    big = NodeDef("m", "MatMul", ["a", "b"], out_dtypes=["float32"], out_shapes=[(1024, 1024)])
    shapes = [(1024, 1024), (1024, 1024)]
    assert cm.compute_time(big, gpu, shapes) < cm.compute_time(big, cpu, shapes) / 10
    noop = NodeDef("n", "NoOp")
    assert cm.compute_time(noop, cpu) == cm.params.rates["CPU"].launch_s
    add = NodeDef("a", "Add", ["x", "y"], out_dtypes=["float32"], out_shapes=[(1000,)])
    expected = cm.params.rates["CPU"].launch_s + 12000 / cm.params.rates["CPU"].bytes_per_s
    assert cm.compute_time(add, cpu, [(1000,), (1000,)]) == pytest.approx(expected)


def test_transfer_times_depend_on_the_link():
    cm, p = CostModel(), CostModel().params
    assert cm.transfer_time(10**6, CPU0, CPU0) == 0.0
    local = cm.transfer_time(10**6, CPU0, GPU0)
    remote = cm.transfer_time(10**6, CPU0, PS0)
    assert local == pytest.approx(p.local_latency_s + 10**6 / p.local_bytes_per_s)
    assert remote == pytest.approx(p.remote_latency_s + 10**6 / p.remote_bytes_per_s)
    assert remote > local


def test_recorded_times_are_a_moving_average():
    cm = CostModel()
    node_ = NodeDef("m", "MatMul", out_dtypes=["float32"], out_shapes=[(8, 8)])
    assert cm.measured("m", CPU0) is None
    cm.record("m", CPU0, 1.0)
    assert cm.compute_time(node_, CPU0) == 1.0
    cm.record("m", "/job:localhost/replica:0/task:0/cpu:0", 2.0)  # same device, other spelling
    alpha = cm.params.ema_alpha
    assert cm.measured("m", CPU0) == pytest.approx(alpha * 2.0 + (1 - alpha) * 1.0)
    assert cm.measured("m", CPU1) == pytest.approx(cm.measured("m", CPU0))  # same kind
    assert cm.measured("m", GPU0) is None
    with pytest.raises(InvalidArgumentError, match="measured time -1.0 of node 'm'"):
        cm.record("m", CPU0, -1.0)
    with pytest.raises(InvalidArgumentError, match="measured time nan"):
        cm.record("m", CPU0, float("nan"))
