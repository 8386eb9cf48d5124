"""The TF1 API surface programs use: app/flags, gfile, compat, errors, InteractiveSession,
composite ops against NumPy, RNN cells against a NumPy LSTM, layers, losses, learning-rate
schedules, candidate sampling."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_forward, check_gradient, run_op

rng = np.random.default_rng(1234)


# ---- flags, app, gfile, compat, errors ----------------------------------------------------
def test_flags_parse_like_absl() -> None:
    fv = af.flags.FlagValues()
    af.flags.DEFINE_string("name", "a", "", flag_values=fv)
    af.flags.DEFINE_integer("n", 1, "", flag_values=fv)
    af.flags.DEFINE_float("lr", 0.1, "", flag_values=fv)
    af.flags.DEFINE_boolean("fast", False, "", flag_values=fv)
    af.flags.DEFINE_boolean("slow", True, "", flag_values=fv)
    af.flags.DEFINE_list("dims", "1,2", "", flag_values=fv)
    rest = fv(["prog", "--name=b", "--n", "7", "pos", "--lr=0.5", "--fast", "--noslow",
               "--dims=3,4,5", "--unknown=1", "--", "--n=9"])
    assert (fv.name, fv.n, fv.lr, fv.fast, fv.slow, fv.dims) == \
        ("b", 7, 0.5, True, False, ["3", "4", "5"])
    assert rest == ["prog", "pos", "--unknown=1", "--n=9"]
    assert getattr(fv, "__flags")["n"] == 7  # TF <= 1.4 programs read FLAGS.__flags
    with pytest.raises(af.flags.IllegalFlagValueError, match="--n=x"):
        fv(["prog", "--n=x"])
    with pytest.raises(af.flags.Error, match="defined twice"):
        af.flags.DEFINE_integer("n", 2, "", flag_values=fv)
    with pytest.raises(AttributeError, match="no flag named 'missing'"):
        _ = fv.missing


def test_app_run_calls_main_with_the_rest_and_exits() -> None:
    seen = []
    af.flags.FLAGS.reset()
    af.flags.DEFINE_integer("steps", 3, "")
    with pytest.raises(SystemExit) as e:
        af.app.run(lambda argv: seen.append((argv, af.flags.FLAGS.steps)) or 5,
                   argv=["p", "--steps=4", "x"])
    assert e.value.code == 5 and seen == [(["p", "x"], 4)]
    af.flags.FLAGS.reset()


def test_gfile(tmp_path) -> None:
    d = str(tmp_path / "a" / "b")
    assert not af.gfile.Exists(d)
    af.gfile.MakeDirs(d)
    assert af.gfile.IsDirectory(d)
    with af.gfile.GFile(d + "/f.txt", "w") as f:
        f.write("hi")
    with af.gfile.Open(d + "/f.txt") as f:
        assert f.read() == "hi"
    assert af.gfile.ListDirectory(d) == ["f.txt"]
    assert af.gfile.Glob(d + "/*.txt") == [d + "/f.txt"]
    af.gfile.DeleteRecursively(str(tmp_path / "a"))
    assert not af.gfile.Exists(d)
    with pytest.raises(af.errors.NotFoundError):
        af.gfile.GFile(d + "/nope")


def test_compat_and_errors() -> None:
    import actorflow.compat.v1 as tf
    assert tf is af and af.compat.v1 is af
    assert af.compat.as_str(b"x") == "x" and af.compat.as_bytes("x") == b"x"
    for name in ("OutOfRangeError", "DataLossError", "PermissionDeniedError",
                 "UnauthenticatedError", "UnknownError", "AbortedError"):
        cls = getattr(af.errors, name)
        e = af.errors.error_from_code(cls.code, "m")
        assert type(e) is cls
    assert af.errors.OUT_OF_RANGE == 11 and af.errors.DATA_LOSS == 15


def test_interactive_session_is_default_until_closed() -> None:
    g = af.Graph()
    with g.as_default():
        v = af.Variable(3.0)
        sess = af.InteractiveSession()
        try:
            af.global_variables_initializer().run()
            assert (v * 2.0).eval() == 6.0
            assert af.get_default_session() is sess
        finally:
            sess.close()
        with pytest.raises(af.errors.FailedPreconditionError, match="no default session"):
            af.get_default_session()


# ---- composite ops ------------------------------------------------------------------------
ACTS = {
    "softplus": (af.nn.softplus, lambda x: np.log1p(np.exp(x))),
    "softsign": (af.nn.softsign, lambda x: x / (1 + np.abs(x))),
    "elu": (af.nn.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "selu": (af.nn.selu, lambda x: 1.0507009873554805 * np.where(
        x > 0, x, 1.6732632423543772 * np.expm1(x))),
    "relu6": (af.nn.relu6, lambda x: np.clip(x, 0, 6)),
    "leaky_relu": (af.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    "log_sigmoid": (af.nn.log_sigmoid, lambda x: -np.log1p(np.exp(-x))),
}


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activations(name: str) -> None:
    f, ref = ACTS[name]
    x = rng.uniform(-8, 8, (4, 5))
    x[np.abs(x) < 0.05] = 0.3  # away from the kinks for finite differences
    check_forward(f, ref, [x])
    check_gradient(f, [x])


def test_conversions_and_small_math() -> None:
    x = np.array([[1.5, 0.0, -2.0], [0.0, 3.0, 1.0]], np.float32)
    out = run_op(lambda t: [af.to_int64(t), af.to_double(t), af.arg_min(t, 1),
                            af.arg_max(t, 0), af.count_nonzero(t), af.count_nonzero(t, 1)],
                 [x])
    assert out[0].dtype == np.int64 and out[1].dtype == np.float64
    np.testing.assert_array_equal(out[2], [2, 0])
    np.testing.assert_array_equal(out[3], [0, 1, 1])
    assert out[4] == 4
    np.testing.assert_array_equal(out[5], [2, 2])
    a = np.array([-7, 7, -7, 7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    got = run_op(lambda p, q: [af.truncatediv(p, q), af.truncatemod(p, q)], [a, b])
    np.testing.assert_array_equal(got[0], np.trunc(a / b))
    np.testing.assert_array_equal(got[1], np.fmod(a, b))


def test_norms_and_clipping() -> None:
    x = rng.standard_normal((3, 4))
    y = rng.standard_normal((5,))
    check_forward(lambda t: af.norm(t), lambda t: np.linalg.norm(t), [x])
    check_forward(lambda t: af.norm(t, ord=1, axis=1), lambda t: np.abs(t).sum(1), [x])
    check_forward(lambda t: af.norm(t, ord=np.inf, axis=[0, 1]),
                  lambda t: np.linalg.norm(t, np.inf), [x])
    check_forward(lambda t: af.clip_by_norm(t, 1.0),
                  lambda t: t / max(np.linalg.norm(t), 1.0), [x])
    check_gradient(lambda t: af.clip_by_norm(t, 1.0), [x])

    def ref(a, b):
        gn = np.sqrt((a ** 2).sum() + (b ** 2).sum())
        s = 2.0 / max(gn, 2.0)
        return [a * s, b * s, gn]
    check_forward(lambda a, b: [*af.clip_by_global_norm([a, b], 2.0)[0],
                                af.global_norm([a, b])], ref, [x, y])


def test_masks_segments_in_top_k() -> None:
    x = rng.standard_normal((4, 3))
    m = np.array([True, False, True, True])
    check_forward(lambda t: af.boolean_mask(t, m), lambda t: t[m], [x])
    check_gradient(lambda t: af.reduce_sum(af.square(af.boolean_mask(t, m))), [x])
    m2 = rng.random((4, 3)) > 0.5
    check_forward(lambda t: af.boolean_mask(t, m2), lambda t: t[m2], [x])
    got = run_op(lambda: af.sequence_mask([1, 3, 0], 4), [])
    np.testing.assert_array_equal(got, np.arange(4) < np.array([[1], [3], [0]]))
    ids = np.array([0, 0, 2, 2])
    check_forward(lambda t: af.segment_sum(t, ids),
                  lambda t: np.stack([t[:2].sum(0), 0 * t[0], t[2:].sum(0)]), [x])
    check_forward(lambda t: af.segment_mean(t, ids),
                  lambda t: np.stack([t[:2].mean(0), 0 * t[0], t[2:].mean(0)]), [x])
    p = np.array([[0.1, 0.5, 0.5, 0.2], [np.nan, 1, 2, 3], [4, 3, 2, 1]], np.float32)
    got = run_op(lambda t: [af.nn.in_top_k(t, [1, 3, 3], 1), af.nn.in_top_k(t, [2, 3, 1], 2)],
                 [p])
    np.testing.assert_array_equal(got[0], [True, False, False])  # ties count as in
    np.testing.assert_array_equal(got[1], [True, False, True])


def test_nn_helpers_against_numpy() -> None:
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    check_forward(af.nn.xw_plus_b, lambda a, c, d: a @ c + d, [x, w, b])
    mean, var = rng.standard_normal(4), rng.random(4) + 0.5
    check_forward(lambda t: af.nn.batch_normalization(t, mean, var, 0.5, 2.0, 1e-3),
                  lambda t: 2.0 * (t - mean) / np.sqrt(var + 1e-3) + 0.5, [x])
    z = rng.random((3, 4))
    check_forward(lambda t: af.nn.weighted_cross_entropy_with_logits(targets=z, logits=t,
                                                                     pos_weight=3.0),
                  lambda t: -(3 * z * np.log(1 / (1 + np.exp(-t))) +
                              (1 - z) * np.log(1 - 1 / (1 + np.exp(-t)))), [x])
    check_forward(lambda t: af.nn.log_poisson_loss(z, t), lambda t: np.exp(t) - z * t, [x])
    check_forward(lambda t: af.nn.l2_normalize(t, 1),
                  lambda t: t / np.linalg.norm(t, axis=1, keepdims=True), [x])


# ---- RNNs ---------------------------------------------------------------------------------
def _np_lstm(x: np.ndarray, k: np.ndarray, b: np.ndarray, n: int, lengths: np.ndarray):
    batch, steps, _ = x.shape
    c = np.zeros((batch, n))
    h = np.zeros((batch, n))
    outs = np.zeros((batch, steps, n))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(steps):
        z = np.concatenate([x[:, t], h], 1) @ k + b
        i, j, f, o = np.split(z, 4, 1)
        nc = c * sig(f + 1.0) + sig(i) * np.tanh(j)
        nh = np.tanh(nc) * sig(o)
        live = (t < lengths)[:, None]
        c, h = np.where(live, nc, c), np.where(live, nh, h)
        outs[:, t] = np.where(live, nh, 0)
    return outs, c, h


@pytest.mark.parametrize("runner", ["dynamic", "static"])
def test_lstm_matches_numpy(runner: str) -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float64, [None, 4, 3])
        lengths = af.placeholder(af.int32, [None])
        cell = af.nn.rnn_cell.BasicLSTMCell(5)
        if runner == "dynamic":
            out, st = af.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=af.float64)
        else:
            outs, st = af.nn.static_rnn(cell, af.unstack(x, axis=1), sequence_length=lengths,
                                        dtype=af.float64)
            out = af.stack(outs, axis=1)
        names = [v.name for v in af.trainable_variables()]
        assert names == ["rnn/basic_lstm_cell/kernel:0", "rnn/basic_lstm_cell/bias:0"]
        loss = af.reduce_sum(out * out) + af.reduce_sum(st.c)
        grads = af.gradients(loss, [x])
        xv = rng.standard_normal((3, 4, 3))
        lv = np.array([4, 2, 0], np.int32)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            k, b = s.run(af.trainable_variables())
            o, c, h, gx = s.run([out, st.c, st.h, grads[0]], {x: xv, lengths: lv})
    ro, rc, rh = _np_lstm(xv, k, b, 5, lv)
    np.testing.assert_allclose(o, ro, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c, rc, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, rh, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(gx[2], 0)  # a row of length 0 gets no gradient


def test_cells_shapes_and_bidirectional() -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [2, 6, 3])
        L = np.array([6, 3], np.int32)
        fw = af.contrib.rnn.MultiRNNCell([af.contrib.rnn.GRUCell(4),
                                          af.contrib.rnn.LSTMCell(3, num_proj=2)])
        bw = af.contrib.rnn.DropoutWrapper(af.contrib.rnn.BasicRNNCell(2),
                                           output_keep_prob=1.0)
        (of, ob), (sf, sb) = af.nn.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=L,
                                                              dtype=af.float32)
        assert isinstance(sf[1], af.contrib.rnn.LSTMStateTuple)
        xv = rng.standard_normal((2, 6, 3)).astype(np.float32)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            ofv, obv, sbv = s.run([of, ob, sb], {x: xv})
    assert ofv.shape == (2, 6, 2) and obv.shape == (2, 6, 2)
    np.testing.assert_array_equal(ofv[1, 3:], 0)
    np.testing.assert_array_equal(obv[1, 3:], 0)
    # the backward cell's last output (at time 0 after re-reversal) is its final state
    np.testing.assert_allclose(obv[:, 0], sbv, rtol=1e-6)


def test_reverse_sequence() -> None:
    x = np.arange(2 * 4 * 2, dtype=np.float64).reshape(2, 4, 2)
    lens = np.array([3, 1])

    def ref(v):
        out = v.copy()
        for i, n in enumerate(lens):
            out[i, :n] = v[i, :n][::-1]
        return out
    check_forward(lambda t: af.reverse_sequence(t, lens, seq_axis=1, batch_axis=0), ref, [x])


# ---- layers, losses, schedules ------------------------------------------------------------
def test_layers_names_reuse_and_regularizers() -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None, 3])
        reg = af.contrib.layers.l2_regularizer(0.5)
        a = af.layers.dense(x, 2, kernel_regularizer=reg)
        af.layers.dense(x, 2)
        shared = af.layers.dense(x, 2, name="d")
        again = af.layers.dense(x, 2, name="d", reuse=True)
        names = [v.name for v in af.global_variables()]
        assert names == ["dense/kernel:0", "dense/bias:0", "dense_1/kernel:0",
                         "dense_1/bias:0", "d/kernel:0", "d/bias:0"]
        regs = af.get_collection(af.GraphKeys.REGULARIZATION_LOSSES)
        assert len(regs) == 1
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            k = s.run(af.global_variables()[0])
            xv = rng.standard_normal((2, 3)).astype(np.float32)
            av, sv, rv, tot = s.run([a, shared, regs[0], af.losses.get_regularization_loss()],
                                    {x: xv})
            np.testing.assert_allclose(s.run(again, {x: xv}), sv)
    np.testing.assert_allclose(av, xv @ k, rtol=1e-5)
    np.testing.assert_allclose(rv, 0.25 * (k ** 2).sum(), rtol=1e-5)
    assert tot == pytest.approx(rv)


def test_batch_normalization_updates_and_modes() -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None, 2])
        training = af.placeholder(af.bool, [])
        y = af.layers.batch_normalization(x, momentum=0.5, training=training)
        upd = af.get_collection(af.GraphKeys.UPDATE_OPS)
        assert len(upd) == 2
        xv = np.array([[1, 10], [3, 30]], np.float32)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            yt, _ = s.run([y, upd], {x: xv, training: True})
            mm, mv = s.run(af.get_collection(af.GraphKeys.MOVING_AVERAGE_VARIABLES))
            ye = s.run(y, {x: xv, training: False})
    mean, var = xv.mean(0), xv.var(0)
    np.testing.assert_allclose(yt, (xv - mean) / np.sqrt(var + 1e-3), rtol=1e-4)
    np.testing.assert_allclose(mm, 0.5 * mean, rtol=1e-6)
    np.testing.assert_allclose(mv, 0.5 + 0.5 * var, rtol=1e-6)
    np.testing.assert_allclose(ye, (xv - mm) / np.sqrt(mv + 1e-3), rtol=1e-4)


def test_conv_pool_flatten_dropout_layers() -> None:
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        t = af.placeholder(af.float32, [None, 6, 6, 3])
        c = af.layers.conv2d(t, 4, [3, 3], strides=2, padding="same")
        p = af.layers.max_pooling2d(t, 2, 2)
        a = af.layers.average_pooling2d(t, 3, 3)
        f = af.layers.flatten(t)
        d_eval = af.layers.dropout(t, 0.5)
        d_train = af.layers.dropout(t, 0.5, training=True)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            cv, pv, av, fv, de, dt = s.run([c, p, a, f, d_eval, d_train], {t: x})
    assert cv.shape == (2, 3, 3, 4)
    np.testing.assert_allclose(pv, x.reshape(2, 3, 2, 3, 2, 3).max((2, 4)))
    np.testing.assert_allclose(av, x.reshape(2, 2, 3, 2, 3, 3).mean((2, 4)), rtol=1e-5)
    np.testing.assert_array_equal(fv, x.reshape(2, -1))
    np.testing.assert_array_equal(de, x)
    kept = dt != 0
    np.testing.assert_allclose(dt[kept], 2 * x[kept], rtol=1e-6)


def test_losses_against_numpy() -> None:
    y = rng.standard_normal((4, 3))
    p = rng.standard_normal((4, 3))
    w = np.array([[1.0], [0.0], [2.0], [1.0]])
    g = af.Graph()
    with g.as_default():
        L = af.losses
        out = [L.mean_squared_error(y, p), L.mean_squared_error(y, p, weights=w),
               L.absolute_difference(y, p, reduction=L.Reduction.SUM),
               L.huber_loss(y, p, delta=0.5, reduction=L.Reduction.MEAN),
               L.sparse_softmax_cross_entropy([0, 2, 1, 1], p),
               L.softmax_cross_entropy(np.eye(3)[[0, 2, 1, 1]], p, label_smoothing=0.1),
               L.sigmoid_cross_entropy((y > 0).astype(np.float64), p),
               L.log_loss((y > 0).astype(np.float64), 1 / (1 + np.exp(-p))),
               L.mean_squared_error(y, p, reduction=L.Reduction.NONE, loss_collection=None)]
        assert len(L.get_losses()) == len(out) - 1
        total = L.get_total_loss()
        with af.Session(graph=g) as s:
            got = s.run(out + [total])
    d = p - y
    e = np.abs(d)
    hub = np.where(e <= 0.5, 0.5 * d ** 2, 0.5 * (e - 0.25))
    lsm = p - np.log(np.exp(p).sum(1, keepdims=True))
    smooth = np.eye(3)[[0, 2, 1, 1]] * 0.9 + 0.1 / 3
    z = (y > 0).astype(np.float64)
    sp = 1 / (1 + np.exp(-p))
    want = [(d ** 2).mean(), ((d ** 2) * w).sum() / 9, e.sum(), hub.mean(),
            -lsm[np.arange(4), [0, 2, 1, 1]].mean(), -(smooth * lsm).sum(1).mean(),
            np.mean(np.maximum(p, 0) - p * z + np.log1p(np.exp(-np.abs(p)))),
            np.mean(-z * np.log(sp + 1e-7) - (1 - z) * np.log(1 - sp + 1e-7)), d ** 2]
    for a, b in zip(got, want, strict=False):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert got[-1] == pytest.approx(sum(got[:-2]), rel=1e-6)  # the NONE loss is not added


def test_learning_rate_schedules() -> None:
    g = af.Graph()
    with g.as_default():
        step = af.placeholder(af.int64, [])
        lrs = [af.train.exponential_decay(0.1, step, 10, 0.5),
               af.train.exponential_decay(0.1, step, 10, 0.5, staircase=True),
               af.train.inverse_time_decay(0.1, step, 10, 0.5),
               af.train.polynomial_decay(0.1, step, 100, 0.01, power=2.0),
               af.train.cosine_decay(0.1, step, 100, alpha=0.1),
               af.train.piecewise_constant(step, [10, 20], [1.0, 0.5, 0.1])]
        with af.Session(graph=g) as s:
            for t in (0, 15, 20, 150):
                got = s.run(lrs, {step: t})
                c = min(t, 100)
                want = [0.1 * 0.5 ** (t / 10), 0.1 * 0.5 ** (t // 10), 0.1 / (1 + 0.5 * t / 10),
                        0.09 * (1 - c / 100) ** 2 + 0.01,
                        0.1 * (0.9 * 0.5 * (1 + np.cos(np.pi * c / 100)) + 0.1),
                        1.0 if t <= 10 else 0.5 if t <= 20 else 0.1]
                np.testing.assert_allclose(got, want, rtol=1e-5)
    assert af.train.ClusterSpec is af.ClusterSpec and af.train.Server is af.Server


def test_candidate_sampler_and_sampled_losses() -> None:
    g = af.Graph()
    with g.as_default():
        labels = af.constant([[1], [5]], af.int64)
        s_u, t_e, s_e = af.nn.log_uniform_candidate_sampler(labels, 1, 20, True, 100, seed=3)
        w = af.Variable(rng.standard_normal((100, 4)).astype(np.float32))
        b = af.Variable(np.zeros(100, np.float32))
        x = af.constant(rng.standard_normal((2, 4)).astype(np.float32))
        nce = af.nn.nce_loss(w, b, labels, x, 5, 100)
        ssm = af.nn.sampled_softmax_loss(w, b, labels, x, 5, 100)
        gw = af.gradients(af.reduce_sum(nce), [w])[0]
        assert isinstance(gw, af.IndexedSlices)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            su, te, se, nv, sv = s.run([s_u, t_e, s_e, nce, ssm])
    assert len(set(su.tolist())) == 20 and su.min() >= 0 and su.max() < 100
    p = (np.log(su + 2.0) - np.log(su + 1.0)) / np.log(101.0)
    assert np.all(se >= p * 0.999) and np.all(se <= 1.0)   # 1 - (1-p)^tries >= p
    assert te.shape == (2, 1) and nv.shape == (2,) and sv.shape == (2,)
    assert np.all(nv > 0) and np.all(sv > 0)


def test_variable_scope_reuse_regularizer_partitioner() -> None:
    g = af.Graph()
    with g.as_default():
        reg = af.contrib.layers.l2_regularizer(0.5)
        with af.variable_scope("m", regularizer=reg) as sc:
            w = af.get_variable("w", [3, 2], initializer=af.ones_initializer())
            sc.reuse_variables()
            assert af.get_variable("w") is w
        with af.variable_scope(sc, reuse=True):
            assert af.get_variable("w") is w
        with af.variable_scope("m", reuse=af.AUTO_REUSE):
            assert af.get_variable("w", [3, 2]) is w
        with pytest.raises(af.errors.InvalidArgumentError, match="already exists"):
            with af.variable_scope("m"):
                af.get_variable("w", [3, 2])
        with af.variable_scope(None, default_name="blk"):
            a = af.get_variable("a", [1])
        with af.variable_scope(None, default_name="blk"):
            b = af.get_variable("b", [1])
        assert (a.name, b.name) == ("blk/a:0", "blk_1/b:0")
        e = af.get_variable("emb", [10, 4], partitioner=af.fixed_size_partitioner(3),
                            initializer=af.random_normal_initializer(seed=1))
        assert [p.shape.as_list() for p in e] == [[4, 4], [3, 4], [3, 4]]
        rows = af.nn.embedding_lookup(e, [0, 9, 4])
        regs = af.get_collection(af.GraphKeys.REGULARIZATION_LOSSES)
        assert len(regs) == 1
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            full, got, r = s.run([af.convert_to_tensor(e), rows,
                                  af.losses.get_regularization_loss()])
    np.testing.assert_allclose(got, full[[0, 9, 4]])
    assert r == pytest.approx(0.5 * 6 / 2)


def test_segment_extremes_and_embedding_lookup_sparse() -> None:
    x = rng.standard_normal((5, 3))
    ids = np.array([0, 2, 0, 2, 2])

    def ref(f, init):
        out = np.full((4, 3), init)
        for i, s in enumerate(ids):
            out[s] = f(out[s], x[i])
        return out
    check_forward(lambda t: af.unsorted_segment_max(t, ids, 4),
                  lambda t: ref(np.maximum, -np.inf), [x])
    check_forward(lambda t: af.unsorted_segment_min(t, ids, 4),
                  lambda t: ref(np.minimum, np.inf), [x])
    check_gradient(lambda t: af.unsorted_segment_max(t, ids, 3)[::2], [x])
    check_forward(lambda t: af.unsorted_segment_prod(t, ids, 4),
                  lambda t: ref(np.multiply, 1.0), [x])
    check_forward(lambda t: af.segment_max(t, [0, 0, 1, 1, 1]),
                  lambda t: np.stack([t[:2].max(0), t[2:].max(0)]), [x])
    p = rng.standard_normal((6, 2))
    g = af.Graph()
    with g.as_default():
        sp = af.SparseTensor([[0, 0], [0, 1], [2, 0]], [1, 4, 5], [3, 2])
        w = af.SparseTensor([[0, 0], [0, 1], [2, 0]], [1.0, 3.0, 2.0], [3, 2])
        with af.Session(graph=g) as s:
            got = s.run([af.nn.embedding_lookup_sparse(p, sp, w, combiner=c)
                         for c in ("sum", "mean", "sqrtn")] + [af.sparse_tensor_to_dense(sp)])
    want = np.stack([p[1] + 3 * p[4], 0 * p[0], 2 * p[5]])
    np.testing.assert_allclose(got[0], want)
    np.testing.assert_allclose(got[1], want / np.array([[4], [1], [2]]), rtol=1e-6)
    np.testing.assert_allclose(got[2], want / np.sqrt([[10], [1], [4]]), rtol=1e-6)
    np.testing.assert_array_equal(got[3], [[1, 4], [0, 0], [5, 0]])


def test_exponential_moving_average_metrics_logging() -> None:
    g = af.Graph()
    with g.as_default():
        w = af.Variable(af.ones([2]))
        ema = af.train.ExponentialMovingAverage(0.9)
        inc = w.assign_add([1.0, 2.0])
        with af.control_dependencies([inc]):
            up = ema.apply([w])
        assert ema.average_name(w) == "Variable/ExponentialMovingAverage"
        assert list(ema.variables_to_restore()) == ["Variable/ExponentialMovingAverage"]
        y = af.placeholder(af.int64, [None])
        p = af.placeholder(af.int64, [None])
        acc, acc_up = af.metrics.accuracy(y, p)
        pr, pr_up = af.metrics.precision(y, p)
        rc, rc_up = af.metrics.recall(y, p)
        mse, mse_up = af.metrics.mean_squared_error(y, p)
        with af.Session(graph=g) as s:
            s.run([af.global_variables_initializer(), af.local_variables_initializer()])
            s.run(up)
            s.run(up)
            shadow = s.run(ema.average(w))
            s.run([acc_up, pr_up, rc_up, mse_up], {y: [1, 0, 1, 1], p: [1, 1, 0, 1]})
            s.run([acc_up, pr_up, rc_up, mse_up], {y: [0, 0], p: [0, 0]})
            got = s.run([acc, pr, rc, mse])
    # w: 1 -> 2 -> 3 (and 1 -> 3 -> 5); shadow 1 -> 1.1 -> 1.29 (and 1 -> 1.2 -> 1.58)
    np.testing.assert_allclose(shadow, [1.29, 1.58], rtol=1e-6)
    np.testing.assert_allclose(got, [4 / 6, 2 / 3, 2 / 3, 2 / 6], rtol=1e-6)
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())
    h = Keep()
    af.logging.get_logger().addHandler(h)
    af.logging.set_verbosity(af.logging.INFO)
    try:
        af.logging.info("step %d", 3)
        af.logging.debug("not shown")
        for _ in range(5):
            af.logging.log_every_n(af.logging.INFO, "every", 2)
    finally:
        af.logging.get_logger().removeHandler(h)
        af.logging.set_verbosity(af.logging.WARN)
    assert seen == ["step 3", "every", "every", "every"]


def test_grid_contraction_and_nn_extras() -> None:
    x = rng.standard_normal((2, 3, 3, 7))

    def lrn_ref(v, r=2, bias=1.0, alpha=0.5, beta=0.75):
        sq, out, c = v ** 2, np.empty_like(v), v.shape[-1]
        for d in range(c):
            s = sq[..., max(0, d - r):min(c, d + r + 1)].sum(-1)
            out[..., d] = v[..., d] / (bias + alpha * s) ** beta
        return out
    check_forward(lambda t: af.nn.lrn(t, 2, 1.0, 0.5, 0.75), lrn_ref, [x])
    check_gradient(lambda t: af.nn.lrn(t, 2, 1.0, 0.5, 0.75), [x[:1, :1, :2]])
    np.testing.assert_allclose(run_op(lambda: af.linspace(0.0, 1.0, 5), []),
                               [0, 0.25, 0.5, 0.75, 1])
    for ix in ("xy", "ij"):
        got = run_op(lambda ix=ix: af.meshgrid([1, 2, 3], [4, 5], [6, 7, 8, 9], indexing=ix),
                     [])
        for a, b in zip(got, np.meshgrid([1, 2, 3], [4, 5], [6, 7, 8, 9], indexing=ix),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    p, q = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 3, 5))
    check_forward(lambda s, t: af.tensordot(s, t, [[1, 2], [1, 0]]),
                  lambda s, t: np.tensordot(s, t, [[1, 2], [1, 0]]), [p, q])
    check_gradient(lambda s, t: af.tensordot(s, t, 1), [p, q])
    w, xx = rng.standard_normal((3, 4, 2)), rng.standard_normal((2, 9, 4))

    def conv1d_ref(v, k):
        vp = np.pad(v, ((0, 0), (1, 1), (0, 0)))
        return np.stack([np.einsum("bki,kio->bo", vp[:, i:i + 3], k) for i in range(0, 9, 2)],
                        1)
    check_forward(lambda a, b: af.nn.conv1d(a, b, 2, "SAME"), conv1d_ref, [xx, w])
    assert run_op(lambda: af.nn.zero_fraction([0, 1, 0, 3]), []) == 0.5
    np.testing.assert_array_equal(run_op(lambda: af.diag([1, 2]), []), [[1, 0], [0, 2]])
    assert af.VERSION == af.__version__


def test_conv2d_transpose_contrib_dropout_batch_norm_projector(tmp_path) -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None, 4, 4, 3])
        y = af.layers.conv2d_transpose(x, 5, 3, strides=2, padding="same")
        z = af.layers.conv2d_transpose(x, 2, 3, strides=2)
        assert y.shape.as_list() == [None, 8, 8, 5] and z.shape.as_list() == [None, 9, 9, 2]
        d = af.contrib.layers.dropout(x, 0.5, is_training=False)
        af.contrib.layers.batch_norm(x, is_training=True)
        names = [v.name for v in af.global_variables()]
        assert names[-3:] == ["BatchNorm/beta:0", "BatchNorm/moving_mean:0",
                              "BatchNorm/moving_variance:0"]  # contrib's default: no scale
        xv = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            yv, dv, k = s.run([y, d, af.global_variables()[0]], {x: xv})
    np.testing.assert_array_equal(dv, xv)
    # the transpose of a stride-2 SAME conv2d: its adjoint against a random probe
    h = af.Graph()
    with h.as_default():
        probe = rng.standard_normal((2, 8, 8, 5)).astype(np.float32)
        fwd = af.nn.conv2d(af.constant(probe), af.constant(k), [1, 2, 2, 1], "SAME")
        with af.Session(graph=h) as s:
            back = s.run(fwd)
    np.testing.assert_allclose(np.sum(yv * probe), np.sum(back * xv), rtol=1e-4)
    from actorflow.contrib.tensorboard.plugins import projector
    assert af.contrib.tensorboard.plugins.projector is projector
    cfg = projector.ProjectorConfig()
    e = cfg.embeddings.add()
    e.tensor_name, e.metadata_path = "emb:0", "meta.tsv"
    path = projector.visualize_embeddings(str(tmp_path), cfg)
    assert open(path).read() == ('embeddings {\n  tensor_name: "emb:0"\n'
                                 '  metadata_path: "meta.tsv"\n}\n')


def test_print_assert_check_numerics(capfd) -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None])
        y = af.Print(x, [af.reduce_sum(x), x], "sum and x: ", summarize=2) * 2.0
        (gx,) = af.gradients(af.reduce_sum(y), [x])
        ok = af.assert_positive(x, message="x must be positive")
        with af.control_dependencies([ok]):
            z = af.log(x)
        checked = af.check_numerics(af.log(x), "log of x")
        with af.Session(graph=g) as s:
            yv, gv = s.run([y, gx], {x: [1.0, 2.0, 3.0]})
            assert s.run(z, {x: [1.0]}) == [0.0]
            with pytest.raises(af.errors.InvalidArgumentError, match="assertion failed"):
                s.run(z, {x: [1.0, -1.0]})
            with pytest.raises(af.errors.InvalidArgumentError, match="log of x : Tensor had NaN"):
                s.run(checked, {x: [-1.0]})
    np.testing.assert_array_equal(yv, [2, 4, 6])
    np.testing.assert_array_equal(gv, [2, 2, 2])
    assert "sum and x: 6.0[1.0 2.0...]" in capfd.readouterr().err


def test_trig_small_composites_and_namespaces() -> None:
    x = rng.uniform(-0.8, 0.8, (3, 4))
    y = rng.uniform(0.2, 2.0, (4,))
    for f, ref in [(af.tan, np.tan), (af.asin, np.arcsin), (af.acos, np.arccos),
                   (af.atan, np.arctan), (af.sinh, np.sinh), (af.cosh, np.cosh),
                   (af.asinh, np.arcsinh), (af.atanh, np.arctanh)]:
        check_forward(f, ref, [x])
        check_gradient(f, [x])
    check_forward(af.acosh, np.arccosh, [1.5 + np.abs(x)])
    check_gradient(af.atan2, [x, y])
    np.testing.assert_array_equal(run_op(lambda: af.div_no_nan([1.0, 2.0], [0.0, 4.0]), []),
                                  [0, 0.5])
    np.testing.assert_array_equal(
        run_op(lambda: af.roll([[1, 2, 3], [4, 5, 6]], [1, -1], [0, 1]), []),
        np.roll([[1, 2, 3], [4, 5, 6]], [1, -1], [0, 1]))
    np.testing.assert_array_equal(run_op(lambda: af.invert_permutation([2, 0, 1]), []),
                                  [1, 2, 0])
    check_gradient(af.nn.swish, [x])
    check_gradient(af.nn.gelu, [x])
    check_forward(lambda t: af.nn.gelu(t, approximate=True),
                  lambda t: 0.5 * t * (1 + np.tanh(np.sqrt(2 / np.pi) * (t + 0.044715 * t ** 3))),
                  [x])
    check_forward(af.nn.crelu, lambda t: np.concatenate([np.maximum(t, 0), np.maximum(-t, 0)],
                                                        -1), [x])
    assert af.math.reduce_sum is af.reduce_sum and af.math.erf is af.erf
    assert af.linalg.inv is af.matrix_inverse and af.linalg.matmul is af.matmul
    with pytest.raises(AttributeError, match="af.linalg"):
        _ = af.linalg.no_such_op


def test_layers_rebuilt_under_reuse_share_variables_like_tf1() -> None:
    """A GAN's discriminator is built twice; the second time, under reuse=True, its unnamed
    layers get the same names (counts restart when the scope is entered) and so share."""
    g = af.Graph()
    with g.as_default():
        def disc(x, reuse=False):
            with af.variable_scope("Discriminator", reuse=reuse):
                h = af.layers.conv2d(x, 4, 3)
                h = af.layers.conv2d(h, 4, 3)
                h = af.layers.batch_normalization(h, training=True)
                cell = af.nn.rnn_cell.GRUCell(3)
                _, s = cell(af.layers.flatten(h)[:, :5], af.zeros([2, 3]))
                return af.layers.dense(s, 1)
        x = af.placeholder(af.float32, [2, 8, 8, 1])
        real, fake = disc(x), disc(x * 2.0, reuse=True)
        names = [v.name for v in af.global_variables()]
        assert names == [
            "Discriminator/conv2d/kernel:0", "Discriminator/conv2d/bias:0",
            "Discriminator/conv2d_1/kernel:0", "Discriminator/conv2d_1/bias:0",
            "Discriminator/batch_normalization/gamma:0",
            "Discriminator/batch_normalization/beta:0",
            "Discriminator/batch_normalization/moving_mean:0",
            "Discriminator/batch_normalization/moving_variance:0",
            "Discriminator/gru_cell/gates/kernel:0", "Discriminator/gru_cell/gates/bias:0",
            "Discriminator/gru_cell/candidate/kernel:0",
            "Discriminator/gru_cell/candidate/bias:0",
            "Discriminator/dense/kernel:0", "Discriminator/dense/bias:0"]
        d_vars = af.get_collection(af.GraphKeys.TRAINABLE_VARIABLES, scope="Discriminator")
        assert len(d_vars) == 12
        xv = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            a, b = s.run([real, fake], {x: xv})
            c = s.run(real, {x: 2 * xv})
    np.testing.assert_allclose(b, c, rtol=1e-5)  # the same weights on the same input
    assert not np.allclose(a, b)


def test_adadelta_and_proximal_gd_match_numpy() -> None:
    g = af.Graph()
    with g.as_default():
        w0 = np.array([1.0, -2.0, 3.0])
        w = af.Variable(w0)
        v = af.Variable(w0)
        loss_w = af.reduce_sum(af.square(w) * [1.0, 2.0, 3.0])
        loss_v = af.reduce_sum(af.square(v) * [1.0, 2.0, 3.0])
        ada = af.train.AdadeltaOptimizer(1.0, rho=0.9, epsilon=1e-6).minimize(loss_w)
        prox = af.train.ProximalGradientDescentOptimizer(
            0.1, l1_regularization_strength=0.5, l2_regularization_strength=0.2).minimize(loss_v)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            for _ in range(3):
                s.run([ada, prox])
            got_w, got_v = s.run([w, v])
    c = np.array([1.0, 2.0, 3.0])
    x, acc, acc_up = w0.copy(), np.zeros(3), np.zeros(3)
    y = w0.copy()
    for _ in range(3):
        gr = 2 * c * x
        acc = 0.9 * acc + 0.1 * gr ** 2
        up = np.sqrt(acc_up + 1e-6) / np.sqrt(acc + 1e-6) * gr
        acc_up = 0.9 * acc_up + 0.1 * up ** 2
        x = x - up
        p = y - 0.1 * 2 * c * y
        y = np.sign(p) * np.maximum(np.abs(p) - 0.05, 0) / (1 + 0.02)
    np.testing.assert_allclose(got_w, x, rtol=1e-10)
    np.testing.assert_allclose(got_v, y, rtol=1e-10)


def test_py_func() -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None, 3])

        def flip_and_count(a):
            return np.flip(a, 1), np.int64(a.shape[0])
        y, n = af.py_func(flip_and_count, [x], [af.float32, af.int64])
        z = af.py_func(lambda a: a * 2, [y + 1.0], af.float32)
        bad = af.py_func(lambda a: (a, a), [x], af.float32)
        with af.Session(graph=g) as s:
            yv, nv, zv = s.run([y, n, z], {x: [[1, 2, 3]]})
            with pytest.raises(af.errors.InvalidArgumentError, match="returned 2 values"):
                s.run(bad, {x: [[1, 2, 3]]})
    np.testing.assert_array_equal(yv, [[3, 2, 1]])
    assert nv == 1 and nv.dtype == np.int64
    np.testing.assert_array_equal(zv, [[8, 6, 4]])


def test_contrib_layers_variable_names_as_tf() -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None, 4, 4, 1])
        h = af.contrib.layers.conv2d(x, 2, 3)
        f = af.contrib.layers.fully_connected(af.contrib.layers.flatten(h), 3)
        af.layers.dense(f, 2)
        assert [v.name for v in af.global_variables()] == [
            "Conv/weights:0", "Conv/biases:0", "fully_connected/weights:0",
            "fully_connected/biases:0", "dense/kernel:0", "dense/bias:0"]


def test_image_ops() -> None:
    img = rng.uniform(0, 255, (5, 6, 3)).astype(np.float32)
    batch = rng.uniform(0, 1, (4, 5, 6, 3)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.constant(img)
        b = af.constant(batch)
        std = af.image.per_image_standardization(x)
        crop = af.random_crop(x, [3, 4, 3], seed=1)
        flips = af.image.random_flip_left_right(b, seed=2)
        pad = af.image.resize_image_with_crop_or_pad(x, 3, 8)
        con = af.image.adjust_contrast(x, 2.0)
        u8 = af.image.convert_image_dtype(af.constant(np.array([0, 255], np.uint8)),
                                          af.float32)
        with af.Session(graph=g) as s:
            sv, cv, fv, pv, kv, uv = s.run([std, crop, flips, pad, con, u8])
    np.testing.assert_allclose(sv, (img - img.mean()) / max(img.std(), 1 / np.sqrt(img.size)),
                               rtol=1e-4, atol=1e-4)
    windows = [img[i:i + 3, j:j + 4] for i in range(3) for j in range(3)]
    assert any(np.array_equal(cv, w) for w in windows)
    for i in range(4):
        assert np.array_equal(fv[i], batch[i]) or np.array_equal(fv[i], batch[i, :, ::-1])
    np.testing.assert_array_equal(pv[:, 1:7], img[1:4])
    np.testing.assert_array_equal(pv[:, [0, 7]], 0)
    mean = img.mean((0, 1), keepdims=True)
    np.testing.assert_allclose(kv, (img - mean) * 2 + mean, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(uv, [0.0, 1.0])


def test_resize_images_match_tensorflow() -> None:
    """tests/fixtures/tf_resize_v1.npz holds TensorFlow 2.21's tf.compat.v1.image
    resize_bilinear / resize_nearest_neighbor of a random [2, 5, 7, 3] batch to [8, 4] (keys
    'b<align_corners>' and 'n<align_corners>'), made once with /work/main/.tfenv."""
    import os
    ref = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "tf_resize_v1.npz"))
    x = ref["x"]
    g = af.Graph()
    with g.as_default():
        outs = {}
        for ac in (False, True):
            outs[f"b{ac}"] = af.image.resize_bilinear(x, [8, 4], align_corners=ac)
            outs[f"n{ac}"] = af.image.resize_nearest_neighbor(x, [8, 4], align_corners=ac)
        with af.Session(graph=g) as s:
            got = s.run(outs)
    for k, v in got.items():
        np.testing.assert_allclose(v, ref[k], rtol=1e-6, atol=1e-6, err_msg=k)
    check_gradient(lambda t: af.image.resize_images(t, [4, 3]), [x[:1, :3, :4, :1]
                                                                  .astype(np.float64)])


def test_depthwise_and_separable_conv2d() -> None:
    x = rng.standard_normal((1, 5, 5, 2))
    dw = rng.standard_normal((3, 3, 2, 2))
    pw = rng.standard_normal((1, 1, 4, 3))

    def depthwise_ref(v, k):
        vp = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros((1, 5, 5, 4))
        for i in range(5):
            for j in range(5):
                win = vp[0, i:i + 3, j:j + 3]                       # [3, 3, in]
                out[0, i, j] = np.einsum("hwc,hwcm->cm", win, k).reshape(-1)
        return out
    check_forward(lambda a, b: af.nn.depthwise_conv2d(a, b, [1, 1, 1, 1], "SAME"),
                  depthwise_ref, [x, dw])
    check_forward(lambda a, b, c: af.nn.separable_conv2d(a, b, c, [1, 1, 1, 1], "SAME"),
                  lambda a, b, c: np.einsum("nhwc,co->nhwo", depthwise_ref(a, b), c[0, 0]),
                  [x, dw, pw])
    check_gradient(lambda a, b: af.nn.depthwise_conv2d(a, b, [1, 1, 1, 1], "VALID"),
                   [x[:, :4, :4], dw])
