"""The TF1 API surface programs use: app/flags, gfile, compat, errors, InteractiveSession,
variable scopes, layers, losses, learning-rate schedules, optimizers, metrics, moving
averages, logging (the ops themselves are in test_tf1_ops.py)."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af

rng = np.random.default_rng(1234)


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


def test_batch_norm_moving_variance_is_tensorflows() -> None:
    """TF1 runs 4-D inputs (channels axis) through its fused kernel, whose moving variance
    takes the unbiased batch variance; other ranks take the biased one (checked against
    TensorFlow 2.21 by benchmarks/audit_ops.py)."""
    x0 = np.random.default_rng(3).random((2, 6, 6, 3)).astype(np.float32)
    for shape, ddof in (((2, 6, 6, 3), 1), ((24, 3), 0)):
        g = af.Graph()
        with g.as_default():
            x = af.constant(x0.reshape(shape) if shape[0] == 2 else x0.reshape(-1, 3)[:24])
            af.layers.batch_normalization(x, training=True, momentum=0.0)
            mv = [v for v in af.global_variables() if "moving_variance" in v.name][0]
            with af.Session(graph=g) as s:
                s.run(af.global_variables_initializer())
                s.run(af.get_collection(af.GraphKeys.UPDATE_OPS))
                got = s.run(mv)
        flat = (x0.reshape(shape) if shape[0] == 2 else x0.reshape(-1, 3)[:24]).reshape(-1, 3)
        np.testing.assert_allclose(got, flat.var(0, ddof=ddof), rtol=1e-5)
