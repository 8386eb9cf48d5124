"""af.train.replica_device_setter: variables over the PS tasks, computation on the worker."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from actorflow.train.device_setter import STANDARD_PS_OPS


def _var_devices(g: af.Graph) -> dict[str, str]:
    return {op.name: op.device for op in g.get_operations() if op.type == "VarHandleOp"}


def _cluster(n_ps: int, n_workers: int = 2) -> dict[str, list[str]]:
    return {"ps": [f"127.0.0.1:{2000 + i}" for i in range(n_ps)],
            "worker": [f"127.0.0.1:{3000 + i}" for i in range(n_workers)]}


@pytest.mark.parametrize("n_ps", [1, 2, 3])
def test_round_robin_over_ps_tasks(n_ps: int) -> None:
    g = af.Graph()
    with g.as_default(), af.device(af.train.replica_device_setter(cluster=_cluster(n_ps))):
        vs = [af.Variable(np.zeros(3, np.float32), name=f"v{i}") for i in range(7)]
    for i, v in enumerate(vs):
        assert v.device == f"/job:ps/task:{i % n_ps}", (i, v.device)
    # the initializer, reads and updates live with the handle (colocated), never the worker
    for v in vs:
        assert v.initializer.device == v.device
        assert v.value().op.device == v.device


def test_ps_tasks_argument_without_cluster() -> None:
    g = af.Graph()
    with g.as_default(), af.device(af.train.replica_device_setter(ps_tasks=2)):
        a = af.Variable(1.0, name="a")
        b = af.Variable(2.0, name="b")
        c = af.Variable(3.0, name="c")
        y = a * b + c
    assert (a.device, b.device, c.device) == ("/job:ps/task:0", "/job:ps/task:1",
                                              "/job:ps/task:0")
    assert y.device == "/job:worker"


def test_computation_goes_to_the_worker_device() -> None:
    g = af.Graph()
    setter = af.train.replica_device_setter(cluster=_cluster(2),
                                            worker_device="/job:worker/task:1")
    with g.as_default(), af.device(setter):
        x = af.placeholder(af.float32, (None, 4), name="x")
        w = af.Variable(np.ones((4, 2), np.float32), name="w")
        b = af.Variable(np.zeros(2, np.float32), name="b")
        y = af.matmul(x, w) + b
        loss = af.reduce_sum(y)
        train = af.train.GradientDescentOptimizer(0.1).minimize(loss)
    assert x.device == "/job:worker/task:1"
    assert y.device == "/job:worker/task:1"
    assert loss.device == "/job:worker/task:1"
    assert (w.device, b.device) == ("/job:ps/task:0", "/job:ps/task:1")
    # the fused updates sit with their variables; gradients on the worker
    for op in g.get_operations():
        if op.type.startswith("ResourceApply"):
            handle = op.inputs[0].op
            assert op.device == handle.device, op.name
        elif op.name.startswith("gradients/") and op.type == "MatMul":
            assert op.device == "/job:worker/task:1", op.name
    assert train.device == "/job:worker/task:1"  # the group that runs every update


def test_optimizer_slots_and_global_step_on_ps() -> None:
    g = af.Graph()
    with g.as_default(), af.device(af.train.replica_device_setter(cluster=_cluster(2))):
        w = af.Variable(np.ones((3, 3), np.float32), name="w")
        gs = af.train.get_or_create_global_step()
        opt = af.train.MomentumOptimizer(0.1, momentum=0.9)
        opt.minimize(af.reduce_sum(w * w), global_step=gs)
    assert w.device == "/job:ps/task:0"
    assert gs.device == "/job:ps/task:1"
    assert opt.get_slot(w, "momentum").device == w.device  # slots follow their variable


def test_greedy_load_balancing_puts_a_big_variable_alone() -> None:
    strategy = af.train.GreedyLoadBalancingStrategy(2)
    setter = af.train.replica_device_setter(ps_tasks=2, ps_strategy=strategy)
    g = af.Graph()
    with g.as_default(), af.device(setter):
        big = af.Variable(np.zeros((1000, 100), np.float32), name="big")     # 400,000 B
        small = [af.Variable(np.zeros(10, np.float32), name=f"s{i}") for i in range(5)]
        medium = af.Variable(np.zeros(1000, np.float64), name="medium")     # 8,000 B
    assert big.device == "/job:ps/task:0"
    assert {v.device for v in small} == {"/job:ps/task:1"}
    assert medium.device == "/job:ps/task:1"
    assert strategy.loads == (400_000.0, 5 * 40.0 + 8_000.0)


def test_greedy_load_balancing_balances_sizes_over_three_tasks() -> None:
    rng = np.random.default_rng()
    sizes = [int(s) for s in rng.integers(1, 500, size=12)]
    strategy = af.train.GreedyLoadBalancingStrategy(3)
    g = af.Graph()
    with g.as_default(), af.device(af.train.replica_device_setter(ps_tasks=3,
                                                                  ps_strategy=strategy)):
        vs = [af.Variable(np.zeros(n, np.float32), name=f"v{i}") for i, n in enumerate(sizes)]
    # replay the rule by hand: each variable goes to the least loaded task so far
    loads = [0, 0, 0]
    for n, v in zip(sizes, vs, strict=True):
        k = loads.index(min(loads))
        assert v.device == f"/job:ps/task:{k}", (sizes, loads)
        loads[k] += 4 * n
    assert strategy.loads == tuple(float(x) for x in loads)


def test_byte_size_needs_a_static_shape() -> None:
    g = af.Graph()
    setter = af.train.replica_device_setter(
        ps_tasks=2, ps_strategy=af.train.GreedyLoadBalancingStrategy(2))
    with g.as_default(), af.device(setter):
        init = af.placeholder_with_default(np.zeros(3, np.float32), (None,))
        with pytest.raises(af.InvalidArgumentError, match=r"'v'.*not known when the graph "
                                                          r"is built.*RoundRobinStrategy"):
            af.Variable(init, name="v", validate_shape=False)


def test_round_robin_strategy_order_and_reset() -> None:
    s = af.train.RoundRobinStrategy(3)
    assert [s(None) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    s.reset()
    assert s(None) == 0
    with pytest.raises(af.InvalidArgumentError, match="num_tasks >= 1"):
        af.train.RoundRobinStrategy(0)


def test_inner_device_scope_overrides_and_merges() -> None:
    g = af.Graph()
    with g.as_default(), af.device(af.train.replica_device_setter(cluster=_cluster(2))):
        a = af.Variable(1.0, name="a")                       # ps 0
        with af.device("/job:ps/task:1"):
            pinned = af.Variable(2.0, name="pinned")         # explicit: ps 1 (strategy ran)
        with af.device("/device:CPU:0"):
            b = af.Variable(3.0, name="b")                   # merged with the setter's choice
            c = af.constant(1.0, name="c")
        with af.device("/job:worker/task:1"):
            d = af.constant(2.0, name="d")
    assert a.device == "/job:ps/task:0"
    assert pinned.device == "/job:ps/task:1"
    assert b.device == "/job:ps/task:0/device:CPU:0"
    assert c.device == "/job:worker/device:CPU:0"
    assert d.device == "/job:worker/task:1"


def test_outer_device_scope_wins_field_by_field() -> None:
    g = af.Graph()
    setter = af.train.replica_device_setter(ps_tasks=2, worker_device="/job:worker/task:0")
    with g.as_default():
        with af.device("/device:CPU:0"), af.device(setter):
            v = af.Variable(1.0, name="v")
            x = af.constant(1.0, name="x")
        with af.device("/job:worker/task:1"), af.device(setter):
            w = af.Variable(1.0, name="w")   # another job than ps requested outside: stays
            y = af.constant(1.0, name="y")
        with af.device("/job:ps"), af.device(setter):
            u = af.Variable(1.0, name="u")   # the ps job itself: the strategy still picks
    assert v.device == "/job:ps/task:0/device:CPU:0"
    assert x.device == "/job:worker/task:0/device:CPU:0"
    assert w.device == "/job:worker/task:1"
    assert y.device == "/job:worker/task:1"
    assert u.device == "/job:ps/task:1"


def test_merge_devices_false_keeps_enclosing_requests() -> None:
    g = af.Graph()
    setter = af.train.replica_device_setter(ps_tasks=2, merge_devices=False)
    with g.as_default():
        with af.device("/device:CPU:0"), af.device(setter):
            v = af.Variable(1.0, name="v")
        with af.device(setter):
            w = af.Variable(1.0, name="w")
    assert v.device == "/device:CPU:0"
    assert w.device == "/job:ps/task:0"


def test_custom_ps_ops_and_strategy() -> None:
    g = af.Graph()
    setter = af.train.replica_device_setter(ps_tasks=3, ps_ops=["Const"],
                                            ps_strategy=lambda op: 2)
    with g.as_default(), af.device(setter):
        c = af.constant(1.0, name="c")
        v = af.Variable(np.zeros(2, np.float32), name="v")
    assert c.device == "/job:ps/task:2"
    assert v.device == "/job:worker"  # VarHandleOp is not a ps op here
    bad = af.train.replica_device_setter(ps_tasks=2, ps_strategy=lambda op: 5)
    with g.as_default(), af.device(bad), pytest.raises(
            af.InvalidArgumentError, match=r"gave task 5 for 'w'.*2 ps tasks"):
        af.Variable(1.0, name="w")


def test_no_ps_tasks_means_no_device_function() -> None:
    assert af.train.replica_device_setter(ps_tasks=0) is None
    assert af.train.replica_device_setter(cluster={"worker": ["127.0.0.1:1"]}) is None
    # af.device(None) clears the enclosing requests, as in TensorFlow
    g = af.Graph()
    with g.as_default(), af.device("/job:worker/task:0"), af.device(
            af.train.replica_device_setter(cluster={"worker": ["127.0.0.1:1"]})):
        c = af.constant(1.0)
    assert c.device == ""
    with pytest.raises(af.InvalidArgumentError, match="ClusterSpec or a dict"):
        af.train.replica_device_setter(cluster=["ps"])


def test_cluster_objects_with_as_dict_or_cluster_spec() -> None:
    class Spec:
        def as_dict(self) -> dict[str, list[str]]:
            return _cluster(3)

    class Local:
        cluster_spec = Spec()

    for cluster in (Spec(), Local()):
        g = af.Graph()
        with g.as_default(), af.device(af.train.replica_device_setter(cluster=cluster)):
            vs = [af.Variable(0.0, name=f"v{i}") for i in range(4)]
        assert [v.device for v in vs] == ["/job:ps/task:0", "/job:ps/task:1",
                                          "/job:ps/task:2", "/job:ps/task:0"]


def test_custom_ps_job_name() -> None:
    g = af.Graph()
    cluster = {"params": ["a:1", "b:2"], "trainer": ["c:3"]}
    setter = af.train.replica_device_setter(cluster=cluster, ps_device="/job:params",
                                            worker_device="/job:trainer/task:0")
    with g.as_default(), af.device(setter):
        v = af.Variable(0.0, name="v")
        w = af.Variable(0.0, name="w")
        y = v + w
    assert (v.device, w.device, y.device) == ("/job:params/task:0", "/job:params/task:1",
                                              "/job:trainer/task:0")


def test_standard_ps_ops_include_the_variable_handle() -> None:
    assert "VarHandleOp" in STANDARD_PS_OPS
