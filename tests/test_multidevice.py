"""Many devices in one process: placement, partitioning with Send/Recv, lossy transfers,
soft placement, placement logging, concurrent steps over the same partitions."""

import numpy as np
import pytest
import trio

import actorflow as af

TWO_CPUS = af.ConfigProto(device_count={"CPU": 2})


def _model_parallel(g: af.Graph, split: bool) -> tuple[af.Tensor, af.Tensor]:
    with g.as_default():
        x = af.placeholder(af.float32, (8, 16), name="x")
        w1 = af.constant(np.random.default_rng(1).standard_normal((16, 32)).astype(np.float32))
        w2 = af.constant(np.random.default_rng(2).standard_normal((32, 4)).astype(np.float32))
        with af.device("/cpu:0"):
            h = af.tanh(af.matmul(x, w1), name="h")
        with af.device("/cpu:1" if split else "/cpu:0"):
            y = af.matmul(h, w2, name="y")
            z = af.reduce_sum(y * h[:, :4], name="z")
    return x, z


def test_model_parallel_graph_matches_one_device() -> None:
    v = np.random.default_rng().standard_normal((8, 16)).astype(np.float32)
    g1, g2 = af.Graph(), af.Graph()
    x1, z1 = _model_parallel(g1, split=False)
    x2, z2 = _model_parallel(g2, split=True)
    with af.Session(graph=g1) as s:
        want = s.run(z1, {x1: v})
    with af.Session(graph=g2, config=TWO_CPUS) as s:
        md = af.RunMetadata()
        got = s.run(z2, {x2: v}, run_metadata=md)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    devices_used = {n.device for n in md.step_stats.nodes}
    assert {d[-5:] for d in devices_used} == {"CPU:0", "CPU:1"}
    ops = {n.node_name for n in md.step_stats.nodes}
    assert any(n.startswith("_send_h") for n in ops)
    assert sum(1 for n in ops if n.startswith("_recv_h")) == 1   # one Recv for two consumers
    assert md.bytes_moved > 0


def test_lossy_transfers_halve_bytes_within_bfloat16_error() -> None:
    rng = np.random.default_rng()
    v = (rng.standard_normal((256, 256)) * 10 ** rng.uniform(-3, 3, (256, 256))).astype(
        np.float32)
    results = {}
    for lossy in (False, True):
        cfg = af.ConfigProto(device_count={"CPU": 2}, graph_options=af.GraphOptions(
            enable_bfloat16_sendrecv=lossy))
        with af.Graph().as_default() as g:
            x = af.placeholder(af.float32, (256, 256))
            with af.device("/cpu:0"):
                a = af.identity(x * 1.0)
            with af.device("/cpu:1"):
                b = a * 1.0
            with af.Session(graph=g, config=cfg) as s:
                md = af.RunMetadata()
                results[lossy] = (s.run(b, {x: v}, run_metadata=md), md.bytes_moved)
    exact, exact_bytes = results[False]
    cut, cut_bytes = results[True]
    np.testing.assert_array_equal(exact, v)
    assert cut_bytes * 2 == pytest.approx(exact_bytes, rel=0.01)
    rel = np.abs(cut - v) / np.abs(v)
    assert rel.max() <= 2.0 ** -8
    assert rel.max() > 2.0 ** -10     # it really was cut
    low = cut.view(np.uint32) & 0xFFFF
    assert not low.any()              # the receiver zero-filled the low 16 bits


def test_conflicting_device_request_lists_available_devices() -> None:
    with af.Graph().as_default() as g:
        with af.device("/gpu:0"):
            y = af.constant(1.0) + 1.0
        cfg = af.ConfigProto(device_count={"CPU": 2, "GPU": 0})
        with af.Session(graph=g, config=cfg) as s, pytest.raises(
                af.InvalidArgumentError, match="(?s)GPU:0.*available devices.*CPU:0.*CPU:1"):
            s.run(y)
        soft = af.ConfigProto(device_count={"CPU": 2, "GPU": 0}, allow_soft_placement=True)
        with af.Session(graph=g, config=soft) as s:
            assert s.run(y) == 2.0


def test_log_device_placement_prints_each_node(capsys: pytest.CaptureFixture[str]) -> None:
    with af.Graph().as_default() as g:
        with af.device("/cpu:1"):
            y = af.add(af.constant(1.0, name="one"), 1.0, name="plus")
        cfg = af.ConfigProto(device_count={"CPU": 2}, log_device_placement=True)
        with af.Session(graph=g, config=cfg) as s:
            s.run(y)
    out = capsys.readouterr().out
    assert "plus -> /job:localhost/replica:0/task:0/device:CPU:1" in out


async def test_concurrent_steps_pipeline_over_two_devices() -> None:
    g = af.Graph()
    x, z = _model_parallel(g, split=True)
    inputs = [np.random.default_rng(i).standard_normal((8, 16)).astype(np.float32)
              for i in range(16)]
    with af.Session(graph=g, config=af.ConfigProto(allow_soft_placement=True)) as s1:
        want = [s1.run(z, {x: v}) for v in inputs]
    got: dict[int, float] = {}
    async with af.Session(graph=g, config=TWO_CPUS) as s:
        async def one(i: int) -> None:
            got[i] = await s.run(z, {x: inputs[i]})

        async with trio.open_nursery() as n:
            for i in range(16):
                n.start_soon(one, i)
    for i in range(16):
        np.testing.assert_allclose(got[i], want[i], rtol=1e-5)


def test_error_in_one_partition_aborts_the_step_everywhere() -> None:
    with af.Graph().as_default() as g:
        a = af.placeholder(af.float32, (None, 3), name="a")
        b = af.placeholder(af.float32, (None, 3), name="b")
        with af.device("/cpu:1"):
            bad = af.add(a, b, name="bad")
        with af.device("/cpu:0"):
            out = af.multiply(bad, 2.0, name="out")
        with af.Session(graph=g, config=TWO_CPUS) as s:
            with pytest.raises(af.InvalidArgumentError, match="node 'bad'.*CPU:1"):
                s.run(out, {a: np.zeros((2, 3)), b: np.zeros((3, 3))})
            ok = s.run(out, {a: np.ones((2, 3)), b: np.ones((2, 3))})
            np.testing.assert_array_equal(ok, np.full((2, 3), 4.0))
