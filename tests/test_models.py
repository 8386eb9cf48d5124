"""The reference models: the digits data, accuracy reached with Adam and Momentum, and plain
SGD following a hand-written NumPy implementation step by step."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from models import common, digits, logistic, mlp


# ---- data ------------------------------------------------------------------------------
def test_digits_split_and_helpers():
    d = digits.load()
    assert d.train_x.shape == (1437, 64) and d.test_x.shape == (360, 64)
    assert d.train_y.shape == (1437,) and d.test_y.shape == (360,)
    assert d.train_x.dtype == np.float32 and d.train_y.dtype == np.int32
    assert 0.0 <= d.train_x.min() and d.train_x.max() <= 1.0 and d.train_x.max() == 1.0
    assert set(np.unique(d.train_y)) == set(range(10))
    assert digits.load() is d  # cached, read-only
    assert not d.train_x.flags.writeable
    # the split is fixed by its seed: no example in both halves
    train_rows = {r.tobytes() for r in d.train_x}
    overlap = sum(r.tobytes() in train_rows for r in d.test_x)
    assert overlap <= 5  # the set itself holds a few duplicate images
    other = digits.load(seed=1)
    assert not np.array_equal(other.test_y, d.test_y)
    assert digits.load(dtype=np.float64).train_x.dtype == np.float64

    oh = digits.one_hot(np.array([3, 0, 9]))
    assert oh.shape == (3, 10) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(1), [3, 0, 9])
    assert oh.sum() == 3


def test_batches_cover_each_example_once_per_epoch():
    x = np.arange(10)[:, None]
    y = np.arange(10)
    got = list(digits.batches(x, y, 4, seed=3, epochs=2))
    assert [len(b[1]) for b in got] == [4, 4, 2, 4, 4, 2]
    for epoch in (got[:3], got[3:]):
        seen = np.concatenate([b[1] for b in epoch])
        assert sorted(seen) == list(range(10))
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0], yb)
    assert not np.array_equal(np.concatenate([b[1] for b in got[:3]]), np.arange(10))
    in_order = list(digits.batches(x, y, 4, seed=None, drop_remainder=True))
    assert [list(b[1]) for b in in_order] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="rows"):
        next(digits.batches(x, y[:5], 2))


def test_make_optimizer_names():
    assert isinstance(common.make_optimizer("adam", 0.1), af.train.AdamOptimizer)
    assert isinstance(common.make_optimizer("SGD", 0.1), af.train.GradientDescentOptimizer)
    nesterov = common.make_optimizer("nesterov", 0.1)
    assert isinstance(nesterov, af.train.MomentumOptimizer) and nesterov._nesterov
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'.*adam"):
        common.make_optimizer("lbfgs", 0.1)


# ---- accuracy --------------------------------------------------------------------------
@pytest.mark.parametrize("build,optimizer,lr,kwargs", [
    (logistic.build, "adam", 0.02, {}),
    (logistic.build, "momentum", 0.1, {}),
    (mlp.build, "adam", 0.005, {"hidden": (128,)}),
    (mlp.build, "momentum", 0.05, {"hidden": (128,)}),
], ids=["logistic-adam", "logistic-momentum", "mlp-adam", "mlp-momentum"])
def test_models_reach_95_percent(build, optimizer, lr, kwargs):
    data = digits.load()
    g = af.Graph()
    with g.as_default():
        m = build(optimizer=optimizer, learning_rate=lr, **kwargs)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            before = common.evaluate(s, m, data.test_x, data.test_y)
            losses = common.fit(s, m, data.train_x, data.train_y, epochs=20, batch_size=32)
            after = common.evaluate(s, m, data.test_x, data.test_y)
            assert s.run(m.global_step) == len(losses) == 20 * 45
    assert before["accuracy"] < 0.5
    assert np.mean(losses[-45:]) < losses[0] / 10
    assert after["accuracy"] >= 0.95, after


# ---- SGD against NumPy -----------------------------------------------------------------
def _numpy_sgd(weights, batches, lr, dtype):
    """Plain SGD on a ReLU MLP with mean softmax cross-entropy; returns the loss before
    each step and the final weights."""
    ws = [(w.astype(dtype).copy(), b.astype(dtype).copy()) for w, b in weights]
    losses = []
    for x, y in batches:
        x = x.astype(dtype)
        acts = [x]
        h = x
        for i, (w, b) in enumerate(ws):
            h = h @ w + b
            if i < len(ws) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(y)
        losses.append(-logp[np.arange(n), y].mean())
        d = np.exp(logp)
        d[np.arange(n), y] -= 1
        d /= n
        for i in reversed(range(len(ws))):
            w, b = ws[i]
            dw, db = acts[i].T @ d, d.sum(axis=0)
            if i > 0:
                d = (d @ w.T) * (acts[i] > 0)
            w -= lr * dw
            b -= lr * db
    return np.array(losses), ws


@pytest.mark.parametrize("build,sizes,dtype,atol", [
    (logistic.build, (64, 10), np.float64, 1e-10),
    (mlp.build, (64, 32, 10), np.float64, 1e-10),
    (mlp.build, (64, 32, 10), np.float32, 1e-5),
], ids=["logistic-f64", "mlp-f64", "mlp-f32"])
def test_sgd_follows_numpy(build, sizes, dtype, atol):
    data = digits.load(dtype=dtype)
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print("seed", seed)
    rng = np.random.default_rng(seed)
    weights = [(w, rng.uniform(-0.1, 0.1, b.shape).astype(dtype))
               for w, b in common.glorot_weights(sizes, seed, dtype)]
    batches = list(digits.batches(data.train_x, data.train_y, 32, seed=seed))[:20]
    # the reference computes in the model's dtype: a float32 run drifts from a float64 one by
    # more than 1e-5 over 20 steps at lr 0.5 on some seeds, whatever the runtime does
    want, want_ws = _numpy_sgd(weights, batches, 0.5, dtype)
    kwargs = {"hidden": sizes[1:-1]} if build is mlp.build else {}
    g = af.Graph()
    with g.as_default():
        m = build(optimizer="sgd", learning_rate=0.5, weights=weights, dtype=dtype, **kwargs)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            got = [s.run([m.loss, m.train_op], {m.x: x, m.y: y})[0] for x, y in batches]
            got_ws = s.run(m.variables)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    # it learns (the comparison is not of flat curves): the last steps' mean loss is well
    # under the first's on every seed tried (the single last step can be noisy)
    assert want[-5:].mean() < want[0] * 0.85
    flat_want = [a for wb in want_ws for a in wb]
    for a, b in zip(got_ws, flat_want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol * 10)
