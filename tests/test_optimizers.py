"""Optimizers against hand-written NumPy updates, dense and sparse (IndexedSlices gradients,
with repeated rows), plus slots, global step, tensor learning rates and error texts."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af


def _rng():
    seed = np.random.SeedSequence().entropy
    print("seed", seed)
    return np.random.default_rng(seed)


# ---- NumPy references: state dict in, new state out ----------------------------------------
def _dedup(idx, vals):
    uniq, inv = np.unique(idx, return_inverse=True)
    summed = np.zeros((len(uniq),) + vals.shape[1:])
    np.add.at(summed, inv, vals)
    return uniq, summed


class NpSGD:
    slots: dict = {}

    def __init__(self, lr):
        self.lr = lr

    def dense(self, w, g, s):
        w -= self.lr * g

    def sparse(self, w, idx, vals, s):
        np.subtract.at(w, idx, self.lr * vals)


class NpMomentum:
    slots = {"momentum": 0.0}

    def __init__(self, lr, m, nesterov=False):
        self.lr, self.m, self.nesterov = lr, m, nesterov

    def _rows(self, w, g, a, rows):
        a[rows] = self.m * a[rows] + g
        if self.nesterov:
            w[rows] -= self.lr * g + self.lr * self.m * a[rows]
        else:
            w[rows] -= self.lr * a[rows]

    def dense(self, w, g, s):
        self._rows(w, g, s["momentum"], slice(None))

    def sparse(self, w, idx, vals, s):
        rows, g = _dedup(idx, vals)
        self._rows(w, g, s["momentum"], rows)


class NpAdagrad:
    slots = {"accumulator": 0.1}

    def __init__(self, lr):
        self.lr = lr

    def _rows(self, w, g, acc, rows):
        acc[rows] += g * g
        w[rows] -= self.lr * g / np.sqrt(acc[rows])

    def dense(self, w, g, s):
        self._rows(w, g, s["accumulator"], slice(None))

    def sparse(self, w, idx, vals, s):
        rows, g = _dedup(idx, vals)
        self._rows(w, g, s["accumulator"], rows)


class NpRMSProp:
    def __init__(self, lr, decay, momentum, eps, centered):
        self.lr, self.rho, self.m, self.eps, self.centered = lr, decay, momentum, eps, centered
        self.slots = {"rms": 1.0, "momentum": 0.0}
        if centered:
            self.slots["mg"] = 0.0

    def _rows(self, w, g, s, rows):
        ms, mom = s["rms"], s["momentum"]
        ms[rows] = self.rho * ms[rows] + (1 - self.rho) * g * g
        denom = ms[rows] + self.eps
        if self.centered:
            mg = s["mg"]
            mg[rows] = self.rho * mg[rows] + (1 - self.rho) * g
            denom = denom - mg[rows] ** 2
        mom[rows] = self.m * mom[rows] + self.lr * g / np.sqrt(denom)
        w[rows] -= mom[rows]

    def dense(self, w, g, s):
        self._rows(w, g, s, slice(None))

    def sparse(self, w, idx, vals, s):
        rows, g = _dedup(idx, vals)
        self._rows(w, g, s, rows)


class NpAdam:
    slots = {"m": 0.0, "v": 0.0}

    def __init__(self, lr, b1, b2, eps):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.t = 0

    def dense(self, w, g, s):
        self.t += 1
        lr_t = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        s["m"][...] = self.b1 * s["m"] + (1 - self.b1) * g
        s["v"][...] = self.b2 * s["v"] + (1 - self.b2) * g * g
        w -= lr_t * s["m"] / (np.sqrt(s["v"]) + self.eps)

    def sparse(self, w, idx, vals, s):
        dense = np.zeros_like(w)
        np.add.at(dense, idx, vals)
        self.dense(w, dense, s)


CASES = [
    ("sgd", lambda: af.train.GradientDescentOptimizer(0.1), lambda: NpSGD(0.1)),
    ("momentum", lambda: af.train.MomentumOptimizer(0.1, 0.9), lambda: NpMomentum(0.1, 0.9)),
    ("nesterov", lambda: af.train.MomentumOptimizer(0.05, 0.8, use_nesterov=True),
     lambda: NpMomentum(0.05, 0.8, True)),
    ("adagrad", lambda: af.train.AdagradOptimizer(0.3), lambda: NpAdagrad(0.3)),
    ("rmsprop", lambda: af.train.RMSPropOptimizer(0.01, decay=0.8, momentum=0.5, epsilon=1e-6),
     lambda: NpRMSProp(0.01, 0.8, 0.5, 1e-6, False)),
    ("rmsprop_centered",
     lambda: af.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.0, epsilon=1e-3,
                                       centered=True),
     lambda: NpRMSProp(0.01, 0.9, 0.0, 1e-3, True)),
    ("adam", lambda: af.train.AdamOptimizer(0.05, 0.8, 0.95, 1e-7),
     lambda: NpAdam(0.05, 0.8, 0.95, 1e-7)),
]
IDS = [c[0] for c in CASES]


def _check_slots(opt, np_opt, var, s, state):
    assert sorted(opt.get_slot_names()) == sorted(np_opt.slots)
    for name in np_opt.slots:
        slot = opt.get_slot(var, name)
        assert slot is not None and not slot.trainable
        assert slot.device == var.device
        np.testing.assert_allclose(s.run(slot), state[name], rtol=1e-10, atol=1e-12,
                                   err_msg=f"slot {name}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dense_updates_match_numpy(case):
    _, make, make_np = case
    rng = _rng()
    w0 = rng.standard_normal((4, 3))
    c, d = rng.standard_normal((4, 3)), rng.uniform(0.5, 1.5, (4, 3))
    g = af.Graph()
    with g.as_default():
        w = af.Variable(w0, name="w")
        loss = af.reduce_sum(w * af.constant(c)) + af.reduce_sum(w * w * af.constant(d))
        opt = make()
        gs = af.train.get_or_create_global_step()
        train = opt.minimize(loss, global_step=gs)
        np_opt = make_np()
        wn = w0.copy()
        state = {k: np.full_like(w0, v) for k, v in np_opt.slots.items()}
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            for step in range(5):
                s.run(train)
                np_opt.dense(wn, c + 2 * wn * d, state)
                np.testing.assert_allclose(s.run(w), wn, rtol=1e-10, atol=1e-12,
                                           err_msg=f"step {step}")
            _check_slots(opt, np_opt, w, s, state)
            assert s.run(gs) == 5


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sparse_updates_match_numpy(case):
    """IndexedSlices gradients with repeated rows, fed directly."""
    _, make, make_np = case
    rng = _rng()
    w0 = rng.standard_normal((6, 2))
    g = af.Graph()
    with g.as_default():
        w = af.Variable(w0, name="emb")
        vals = af.placeholder(af.float64, (None, 2))
        idx = af.placeholder(af.int32, (None,))
        opt = make()
        train = opt.apply_gradients([(af.IndexedSlices(vals, idx, af.constant([6, 2])), w)])
        np_opt = make_np()
        wn = w0.copy()
        state = {k: np.full_like(w0, v) for k, v in np_opt.slots.items()}
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            for step in range(4):
                iv = rng.integers(0, 6, size=5).astype(np.int32)
                iv[1] = iv[0]  # a repeated row
                vv = rng.standard_normal((5, 2))
                s.run(train, {vals: vv, idx: iv})
                np_opt.sparse(wn, iv, vv, state)
                np.testing.assert_allclose(s.run(w), wn, rtol=1e-10, atol=1e-12,
                                           err_msg=f"step {step}")
            _check_slots(opt, np_opt, w, s, state)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gather_loss_gives_sparse_updates(case):
    if not hasattr(af, "gather"):
        pytest.skip("af.gather is not available yet")
    _, make, make_np = case
    rng = _rng()
    w0 = rng.standard_normal((7, 3))
    iv = np.array([1, 4, 1, 6], np.int32)
    c = rng.standard_normal((4, 3))
    g = af.Graph()
    with g.as_default():
        w = af.Variable(w0, name="emb")
        rows = af.gather(w, af.constant(iv))
        loss = af.reduce_sum(rows * rows * af.constant(c))
        opt = make()
        ((grad, _),) = opt.compute_gradients(loss, [w])
        assert isinstance(grad, af.IndexedSlices)
        train = opt.apply_gradients([(grad, w)])
        np_opt = make_np()
        wn = w0.copy()
        state = {k: np.full_like(w0, v) for k, v in np_opt.slots.items()}
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            for step in range(4):
                s.run(train)
                np_opt.sparse(wn, iv, 2 * wn[iv] * c, state)
                np.testing.assert_allclose(s.run(w), wn, rtol=1e-10, atol=1e-12,
                                           err_msg=f"step {step}")


# ---- API details ---------------------------------------------------------------------------
def test_learning_rate_tensor_and_var_list():
    g = af.Graph()
    with g.as_default():
        a = af.Variable(np.ones(3), name="a")
        b = af.Variable(np.ones(3), name="b")
        lr = af.placeholder(af.float64, ())
        loss = af.reduce_sum(a * b)
        train = af.train.GradientDescentOptimizer(lr).minimize(loss, var_list=[a])
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            s.run(train, {lr: 0.5})
            s.run(train, {lr: 0.25})
            np.testing.assert_allclose(s.run(a), 1 - 0.5 - 0.25)
            np.testing.assert_allclose(s.run(b), np.ones(3))


def test_float32_variables_and_callable_hyperparameters():
    g = af.Graph()
    with g.as_default():
        w = af.Variable(np.ones(3, np.float32), name="w")
        loss = af.reduce_sum(w * w)
        opt = af.train.MomentumOptimizer(lambda: 0.1, momentum=0.5)
        train = opt.minimize(loss)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            s.run(train)
            s.run(train)
            got = s.run(w)
    assert got.dtype == np.float32
    # step 1: a = 2, w = 1 - .2 = .8; step 2: a = .5*2 + 1.6 = 2.6, w = .8 - .26
    np.testing.assert_allclose(got, np.full(3, 0.54), rtol=1e-6)


def test_compute_gradients_and_errors():
    g = af.Graph()
    with g.as_default():
        a = af.Variable(np.ones(2), name="a")
        unused = af.Variable(np.ones(2), name="unused")
        n = af.Variable(3, name="n", trainable=False)
        loss = af.reduce_sum(a * 3.0)
        opt = af.train.GradientDescentOptimizer(0.1)
        gv = opt.compute_gradients(loss)
        assert [v for _, v in gv] == [a, unused]
        assert gv[1][0] is None and isinstance(gv[0][0], af.Tensor)
        with pytest.raises(af.InvalidArgumentError, match="no gradients for any variable"):
            opt.minimize(loss, var_list=[unused])
        with pytest.raises(af.InvalidArgumentError, match="dtype int32.*float"):
            opt.compute_gradients(loss, var_list=[n])
        with pytest.raises(af.InvalidArgumentError, match="af.Variable"):
            opt.compute_gradients(loss, var_list=[a.value()])
        train = opt.apply_gradients(gv)  # (None, unused) is skipped
        assert train in g.get_collection(af.GraphKeys.TRAIN_OP)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            s.run(train)
            np.testing.assert_allclose(s.run(a), [0.7, 0.7])
            np.testing.assert_allclose(s.run(unused), [1.0, 1.0])


def test_global_step_helpers():
    g = af.Graph()
    with g.as_default():
        assert af.train.get_global_step() is None
        gs = af.train.get_or_create_global_step()
        assert af.train.get_or_create_global_step() is gs
        assert gs.dtype is af.int64 and not gs.trainable and gs.name == "global_step:0"
        with pytest.raises(af.InvalidArgumentError, match="already has a global step"):
            af.train.create_global_step()
        w = af.Variable(2.0, name="w")
        train = af.train.AdamOptimizer(0.1).minimize(w * w, global_step=gs)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            for _ in range(3):
                s.run(train)
            assert af.train.global_step(s, gs) == 3


def test_slots_are_colocated_and_built_once():
    g = af.Graph()
    with g.as_default():
        with af.device("/cpu:0"):
            w = af.Variable(np.zeros((2, 2)), name="w")
        with af.control_dependencies([af.no_op(name="unrelated")]):
            opt = af.train.AdamOptimizer()
            opt.minimize(af.reduce_sum(w * w))
        m = opt.get_slot(w, "m")
        assert m.name == "w/Adam:0" and opt.get_slot(w, "v").name == "w/Adam_1:0"
        assert m.device == w.device and m.initializer.control_inputs == []
        assert m in af.global_variables() and m not in af.trainable_variables()
        opt.minimize(af.reduce_sum(w * w))  # a second train op shares the slots
        assert len(opt.variables()) == 4


def test_learning_rate_variable_and_gate_graph():
    g = af.Graph()
    with g.as_default():
        w = af.Variable(np.ones(2), name="w")
        lr = af.Variable(0.5, trainable=False, name="lr", dtype=af.float64)
        opt = af.train.GradientDescentOptimizer(lr)
        train = opt.minimize(af.reduce_sum(w * 2.0),
                             gate_gradients=af.train.Optimizer.GATE_GRAPH)
        decay = lr.assign(lr * 0.5)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            s.run(train)      # w -= 0.5 * 2
            s.run(decay)
            s.run(train)      # w -= 0.25 * 2
            np.testing.assert_allclose(s.run(w), [-0.5, -0.5])
