"""The GPU device (CuPy): ops against the CPU results, transfers, the pool, training.

Skipped cleanly where CuPy sees no GPU; `test_no_gpu_is_reported_clearly` runs everywhere.
"""

import numpy as np
import pytest

import actorflow as af
from devices.gpu import gpu_count

GPU = af.ConfigProto(device_count={"GPU": 1})


def test_no_gpu_is_reported_clearly() -> None:
    if gpu_count() > 0:
        pytest.skip("this machine has a GPU")
    with af.Graph().as_default() as g:
        with af.device("/gpu:0"):
            y = af.constant(1.0) * 2.0
        with af.Session(graph=g) as s:
            assert not any("GPU" in d for d in s.list_devices())
            with pytest.raises(af.InvalidArgumentError, match="(?s)GPU.*available devices"):
                s.run(y)


UNARY = ["negative", "square", "sqrt", "exp", "log", "tanh", "sigmoid", "abs", "sign"]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "pow"]


def _compare(build, inputs, rtol=1e-5) -> None:  # type: ignore[no-untyped-def]
    results = []
    for dev in ("/cpu:0", "/gpu:0"):
        with af.Graph().as_default() as g:
            phs = [af.placeholder(af.as_dtype(x.dtype), x.shape) for x in inputs]
            with af.device(dev):
                out = build(*phs)
            with af.Session(graph=g, config=GPU) as s:
                md = af.RunMetadata()
                results.append(s.run(out, dict(zip(phs, inputs, strict=True)),
                                     run_metadata=md))
                if dev == "/gpu:0":
                    assert any("GPU" in n.device for n in md.step_stats.nodes)
    np.testing.assert_allclose(results[1], results[0], rtol=rtol, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_on_gpu(name: str) -> None:
    x = np.random.default_rng().uniform(0.1, 2.0, (33, 17)).astype(np.float32)
    _compare(getattr(af, name), [x])


@pytest.mark.gpu
@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_on_gpu(name: str) -> None:
    rng = np.random.default_rng()
    a = rng.uniform(0.5, 2.0, (8, 1, 5)).astype(np.float32)
    b = rng.uniform(0.5, 2.0, (4, 5)).astype(np.float32)
    _compare(getattr(af, name), [a, b])


@pytest.mark.gpu
def test_matmul_reductions_and_nn_on_gpu() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal((32, 16)).astype(np.float32)
    _compare(lambda x, y: af.nn.softmax(af.matmul(x, y)), [a, b], rtol=1e-4)
    _compare(lambda x: af.reduce_sum(af.nn.relu(x), axis=1), [a], rtol=1e-4)
    _compare(lambda x: af.reduce_max(x, axis=0), [a])


@pytest.mark.gpu
def test_cpu_gpu_transfers_and_pool_statistics() -> None:
    v = np.random.default_rng().standard_normal((1024, 1024)).astype(np.float32)
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float32, (1024, 1024))
        with af.device("/gpu:0"):
            y = af.tanh(x) * 2.0
        with af.device("/cpu:0"):
            z = y + 1.0
        with af.Session(graph=g, config=GPU) as s:
            np.testing.assert_allclose(s.run(z, {x: v}), np.tanh(v) * 2 + 1, rtol=1e-5)
            gpu = [d for d in s.devices if d.device_type == "GPU"][0]
            assert gpu.statistics().pool.peak_bytes_in_use >= 4 << 20


@pytest.mark.gpu
def test_digits_mlp_trains_on_gpu() -> None:
    from models import digits, mlp  # noqa: PLC0415 - the model layer, for this test only

    data = digits.load()
    with af.Graph().as_default() as g:
        with af.device("/gpu:0"):
            model = mlp.build(optimizer="adam", learning_rate=0.01)
        with af.Session(graph=g, config=GPU) as s:
            s.run(af.global_variables_initializer())
            for xb, yb in digits.batches(data.train_x, data.train_y, 64, epochs=30):
                s.run(model.train_op, {model.x: xb, model.y: yb})
            acc = s.run(model.accuracy, {model.x: data.test_x, model.y: data.test_y})
    assert acc >= 0.95
