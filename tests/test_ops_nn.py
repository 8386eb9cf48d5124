"""af.nn ops: forward against NumPy references written here, gradients against central
differences (float64), the fused losses' saved backprop, dropout statistics, and the
build-time and run-time error texts. Inputs are drawn fresh each run; the seed is printed."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_forward, check_gradient, run_op

SEED = int(np.random.SeedSequence().entropy % (1 << 32))
print(f"test_ops_nn seed: {SEED}")
rng = np.random.default_rng(SEED)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def away_from_zero(*shape):
    """Values with |v| >= 0.1, so finite differences never straddle relu's kink."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


# ---- NumPy references ---------------------------------------------------------------------
def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def same_pads(size, k, s, d=1):
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def np_conv2d(x, w, stride, padding, dilation=1):
    kh, kw, _, o = w.shape
    wd = np.zeros(((kh - 1) * dilation + 1, (kw - 1) * dilation + 1) + w.shape[2:], w.dtype)
    wd[::dilation, ::dilation] = w
    if padding == "SAME":
        pads = [same_pads(x.shape[1], kh, stride, dilation), same_pads(x.shape[2], kw, stride,
                                                                       dilation)]
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [padding[1], padding[2]]
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    eh, ew = wd.shape[:2]
    ho = (xp.shape[1] - eh) // stride + 1
    wo = (xp.shape[2] - ew) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, o), x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride:i * stride + eh, j * stride:j * stride + ew, :]
            out[:, i, j, :] = np.tensordot(patch, wd, axes=([1, 2, 3], [0, 1, 2]))
    return out


def np_pool(x, k, s, padding, kind):
    if padding == "SAME":
        pads = [same_pads(x.shape[1], k, s), same_pads(x.shape[2], k, s)]
    else:
        pads = [(0, 0), (0, 0)]
    fill = -np.inf if kind == "max" else np.nan
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], constant_values=fill)
    ho = (xp.shape[1] - k) // s + 1
    wo = (xp.shape[2] - k) // s + 1
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]), x.dtype)
    for i in range(ho):
        for j in range(wo):
            win = xp[:, i * s:i * s + k, j * s:j * s + k, :]
            out[:, i, j, :] = win.max(axis=(1, 2)) if kind == "max" else np.nanmean(win, (1, 2))
    return out


# ---- relu, softmax, log_softmax -------------------------------------------------------------
def test_nn_namespace_reexports_the_math_activations():
    assert af.nn.sigmoid is af.sigmoid and af.nn.tanh is af.tanh
    assert not hasattr(af, "conv2d")           # as TF1: the nn builders live under af.nn only
    with pytest.raises(AttributeError, match="af.nn"):
        af.nn.no_such_op  # noqa: B018


def test_relu_forward_and_gradient():
    check_forward(af.nn.relu, lambda x: np.maximum(x, 0), [randn(4, 7, dtype=np.float32)])
    big = randn(64, 512, dtype=np.float32)           # pooled output buffer
    check_forward(af.nn.relu, lambda x: np.maximum(x, 0), [big])
    check_gradient(af.nn.relu, [away_from_zero(3, 4)])


def test_relu_grad_is_one_fused_node_and_has_a_second_derivative():
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float64, (3,))
        dx, = af.gradients(af.reduce_sum(af.nn.relu(x)), [x])
        assert dx.op.type == "ReluGrad"
    c = randn(2, 5)
    check_gradient(lambda x: af.gradients(af.reduce_sum(af.nn.relu(x) * c), [x])[0],
                   [away_from_zero(2, 5)])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(axis):
    x = randn(3, 4, 5)
    check_forward(lambda t: af.nn.softmax(t, axis=axis), lambda v: np_softmax(v, axis), [x])
    check_forward(lambda t: af.nn.log_softmax(t, axis=axis), lambda v: np_log_softmax(v, axis),
                  [x])
    small = randn(2, 3, 4)
    check_gradient(lambda t: af.nn.softmax(t, axis=axis), [small])
    check_gradient(lambda t: af.nn.log_softmax(t, axis=axis), [small])


def test_softmax_is_stable_for_huge_logits():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]], np.float32)
    sm, lsm = run_op(lambda t: [af.nn.softmax(t), af.nn.log_softmax(t)], [x])
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(lsm))
    np.testing.assert_allclose(sm, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(lsm[0, :2], np.log(0.5), rtol=1e-6)


def test_softmax_second_derivative():
    c = randn(3, 4)
    check_gradient(lambda x: af.gradients(af.reduce_sum(af.nn.softmax(x) * c), [x])[0],
                   [randn(3, 4)])


# ---- bias_add -----------------------------------------------------------------------------
def test_bias_add_nhwc_and_nchw():
    x, b = randn(2, 3, 4, 5), randn(5)
    check_forward(af.nn.bias_add, lambda x, b: x + b, [x, b])
    check_gradient(af.nn.bias_add, [x, b])
    x2, b2 = randn(2, 5, 3, 4), randn(5)
    nchw = lambda x, b: af.nn.bias_add(x, b, data_format="NCHW")  # noqa: E731
    check_forward(nchw, lambda x, b: x + b.reshape(5, 1, 1), [x2, b2])
    check_gradient(nchw, [x2, b2])


def test_bias_add_grad_is_fused_and_twice_differentiable():
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float64, (None, 3))
        b = af.placeholder(af.float64, (3,))
        _, db = af.gradients(af.reduce_sum(af.nn.bias_add(x, b)), [x, b])
        assert db.op.type == "BiasAddGrad"
    c = randn(4, 3)

    def db_of(u):  # db = BiasAddGrad(u): differentiate it w.r.t. u
        b0 = af.constant(np.zeros(3))
        return af.gradients(af.reduce_sum(af.nn.bias_add(af.constant(c), b0) * u), [b0])[0]

    check_gradient(db_of, [randn(4, 3)])
    c3 = randn(2, 3, 4)

    def db_nchw(u):
        b0 = af.constant(np.zeros(3))
        y = af.nn.bias_add(af.constant(c3), b0, data_format="NCHW")
        return af.gradients(af.reduce_sum(y * u), [b0])[0]

    check_gradient(db_nchw, [randn(2, 3, 4)])


# ---- fused losses -------------------------------------------------------------------------
def test_softmax_cross_entropy_forward_and_gradients():
    logits = randn(4, 5)
    labels = np_softmax(randn(4, 5))

    def ref(x, z):
        return -(z * np_log_softmax(x)).sum(-1)

    xent = lambda x, z: af.nn.softmax_cross_entropy_with_logits_v2(labels=z, logits=x)  # noqa
    check_forward(xent, ref, [logits, labels])
    check_gradient(xent, [logits, labels])
    # the class axis may be another one (labels are distributions along it, as TF assumes)
    labels0 = np_softmax(randn(4, 5), axis=0)
    xent0 = lambda x, z: af.nn.softmax_cross_entropy_with_logits_v2(  # noqa: E731
        labels=z, logits=x, axis=0)
    check_forward(xent0, lambda x, z: -(z * np_log_softmax(x, 0)).sum(0), [logits, labels0])
    check_gradient(xent0, [logits, labels0])


def test_softmax_cross_entropy_gradient_uses_saved_backprop():
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float64, (3, 4))
        z = af.placeholder(af.float64, (3, 4))
        loss = af.nn.softmax_cross_entropy_with_logits(labels=z, logits=x)
        dx, dz = af.gradients(af.reduce_sum(loss), [x, z])
        assert dz is None                        # TF1's version stops gradients to labels
        assert dx.op.type == "ExpandDimsMul"
        assert dx.op.inputs[1].op is loss.op     # the kernel's second output, not a recompute
        xv, zv = randn(3, 4), np_softmax(randn(3, 4))
        with af.Session(graph=g) as s:
            got = s.run(dx, {x: xv, z: zv})
    np.testing.assert_allclose(got, np_softmax(xv) - zv, rtol=1e-12, atol=1e-12)


def test_sparse_softmax_cross_entropy():
    logits = randn(2, 3, 6)
    labels = rng.integers(0, 6, (2, 3)).astype(np.int32)

    def ref(x, z):
        lsm = np_log_softmax(x)
        return -np.take_along_axis(lsm, z[..., None].astype(np.int64), -1)[..., 0]

    sparse = lambda x, z: af.nn.sparse_softmax_cross_entropy_with_logits(  # noqa: E731
        labels=z, logits=x)
    check_forward(sparse, ref, [logits, labels])
    check_forward(sparse, ref, [logits.astype(np.float32), labels.astype(np.int64)], rtol=1e-5)
    check_gradient(sparse, [logits, labels])
    big = randn(512, 40, dtype=np.float32)        # pooled backprop buffer
    lab = rng.integers(0, 40, 512).astype(np.int64)
    check_forward(sparse, ref, [big, lab], rtol=1e-5, atol=1e-5)


def test_sparse_labels_out_of_range_fail_the_step_naming_the_label():
    logits = randn(3, 4)
    for bad in (4, -1):
        labels = np.array([0, bad, 2], np.int32)
        with pytest.raises(af.errors.InvalidArgumentError) as e:
            run_op(lambda x, z: af.nn.sparse_softmax_cross_entropy_with_logits(labels=z,
                                                                               logits=x),
                   [logits, labels])
        assert f"label {bad} at position (1,)" in str(e.value)
        assert "[0, 4)" in str(e.value)


def test_sigmoid_cross_entropy_forward_stable_and_gradients():
    x, z = randn(3, 5) * 3, rng.uniform(0, 1, (3, 5))

    def ref(x, z):
        p = 1 / (1 + np.exp(-x))
        return -(z * np.log(p) + (1 - z) * np.log(1 - p))

    sce = lambda x, z: af.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x)  # noqa
    check_forward(sce, ref, [x, z], rtol=1e-9)
    check_gradient(sce, [x, z])
    extreme = np.array([-500.0, -50.0, 0.0, 50.0, 500.0])
    zz = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    got = run_op(sce, [extreme, zz])
    np.testing.assert_allclose(got, [500.0, 0.0, np.log(2.0), 0.0, 500.0], atol=1e-12)
    dx = run_op(lambda x, z: af.gradients(af.reduce_sum(sce(x, z)), [x])[0], [extreme, zz])
    np.testing.assert_allclose(dx, [-1.0, 0.0, 0.0, 0.0, 1.0], atol=1e-12)


def test_l2_loss():
    x = randn(3, 4)
    check_forward(af.nn.l2_loss, lambda v: (v ** 2).sum() / 2, [x])
    check_gradient(af.nn.l2_loss, [x])
    assert run_op(af.nn.l2_loss, [x.astype(np.float32)]).dtype == np.float32


# ---- conv2d ------------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, filter shape, stride, padding, dilation)
    ((2, 5, 6, 3), (3, 3, 3, 4), 1, "SAME", 1),
    ((2, 7, 6, 2), (3, 2, 2, 3), 2, "VALID", 1),
    ((1, 6, 7, 2), (3, 3, 2, 2), 2, "SAME", 1),
    ((1, 4, 4, 2), (2, 2, 2, 3), 3, "SAME", 1),
    ((2, 7, 7, 2), (3, 3, 2, 2), 1, "SAME", 2),
    ((1, 5, 5, 2), (2, 3, 2, 2), 1, [[0, 0], [1, 2], [0, 1], [0, 0]], 1),
    ((2, 4, 5, 3), (1, 1, 3, 4), 1, "VALID", 1),
]


@pytest.mark.parametrize("xs,ws,s,pad,d", CONV_CASES)
def test_conv2d_forward(xs, ws, s, pad, d):
    x, w = randn(*xs), randn(*ws)
    build = lambda x, w: af.nn.conv2d(x, w, strides=[1, s, s, 1], padding=pad,  # noqa: E731
                                      dilations=[1, d, d, 1])
    check_forward(build, lambda x, w: np_conv2d(x, w, s, pad, d), [x, w], rtol=1e-9)


@pytest.mark.parametrize("xs,ws,s,pad,d", CONV_CASES[:6])
def test_conv2d_gradients(xs, ws, s, pad, d):
    xs = (1,) + xs[1:]
    x, w = randn(*xs), randn(*ws)
    check_gradient(lambda x, w: af.nn.conv2d(x, w, strides=s, padding=pad, dilations=d),
                   [x, w])


def test_conv2d_large_pooled_and_unknown_batch():
    x, w = randn(8, 12, 12, 16, dtype=np.float32), randn(3, 3, 16, 32, dtype=np.float32)
    ref = np_conv2d(x.astype(np.float64), w.astype(np.float64), 1, "SAME")
    check_forward(lambda x, w: af.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"), lambda x, w: ref,
                  [x, w], rtol=1e-4, atol=1e-4)
    g = af.Graph()
    with g.as_default():
        xp = af.placeholder(af.float32, (None, 12, 12, 16))
        y = af.nn.conv2d(xp, w, strides=2, padding="SAME")
        assert y.shape.as_list() == [None, 6, 6, 32]
        dx, = af.gradients(af.reduce_sum(y), [xp])
        with af.Session(graph=g) as s:
            yv, dxv = s.run([y, dx], {xp: x})
    np.testing.assert_allclose(yv, np_conv2d(x.astype(np.float64), w.astype(np.float64), 2,
                                             "SAME"), rtol=1e-4, atol=1e-4)
    assert dxv.shape == x.shape


def test_conv2d_in_several_image_blocks(monkeypatch):
    import devices.kernels.conv as conv_kernels
    monkeypatch.setattr(conv_kernels, "_BLOCK_ELEMS", 200)   # one image per block
    x, w = randn(3, 5, 4, 2), randn(3, 3, 2, 2)
    build = lambda x, w: af.nn.conv2d(x, w, strides=2, padding="SAME")  # noqa: E731
    check_forward(build, lambda x, w: np_conv2d(x, w, 2, "SAME"), [x, w], rtol=1e-9)
    check_gradient(build, [x, w])


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    x, w = randn(2, 7, 6, 3), randn(3, 3, 3, 4)
    y_shape = np_conv2d(x, w, 2, "SAME").shape
    dy = randn(*y_shape)
    xt = run_op(lambda dy, w: af.nn.conv2d_transpose(dy, w, output_shape=[2, 7, 6, 3],
                                                     strides=[1, 2, 2, 1], padding="SAME"),
                [dy, w])
    assert xt.shape == x.shape
    # <conv(x), dy> == <x, conv_transpose(dy)>
    np.testing.assert_allclose((np_conv2d(x, w, 2, "SAME") * dy).sum(), (x * xt).sum(),
                               rtol=1e-9)


def test_conv2d_second_derivatives():
    x, w = randn(1, 4, 4, 2), randn(2, 2, 2, 2)
    c = randn(1, 2, 2, 2)

    def dx_of(x, w):
        y = af.nn.conv2d(x, w, 2, "SAME")
        return af.gradients(af.reduce_sum(y * y * c), [x])[0]

    def dw_of(x, w):
        y = af.nn.conv2d(x, w, 2, "SAME")
        return af.gradients(af.reduce_sum(y * y * c), [w])[0]

    check_gradient(dx_of, [x, w])
    check_gradient(dw_of, [x, w])


# ---- pooling -----------------------------------------------------------------------------
POOL_CASES = [((2, 5, 6, 3), 2, 2, "VALID"), ((1, 5, 6, 2), 3, 2, "SAME"),
              ((2, 4, 4, 2), 2, 1, "SAME"), ((1, 7, 5, 2), 3, 3, "SAME")]


@pytest.mark.parametrize("xs,k,s,pad", POOL_CASES)
def test_pooling_forward_and_gradients(xs, k, s, pad):
    x = randn(*xs)
    for kind, fn in (("max", af.nn.max_pool), ("avg", af.nn.avg_pool)):
        build = lambda t, fn=fn: fn(t, ksize=[1, k, k, 1], strides=[1, s, s, 1],  # noqa: E731
                                    padding=pad)
        check_forward(build, lambda v, kind=kind: np_pool(v, k, s, pad, kind), [x],
                      rtol=1e-12)
        check_gradient(build, [randn(1, *xs[1:])])


def test_pooling_large_pooled_buffers():
    x = randn(8, 16, 16, 32, dtype=np.float32)
    for kind, fn in (("max", af.nn.max_pool), ("avg", af.nn.avg_pool)):
        check_forward(lambda t, fn=fn: fn(t, 3, 1, "SAME"),
                      lambda v, kind=kind: np_pool(v, 3, 1, "SAME", kind), [x], rtol=1e-5)
        dx = run_op(lambda t, fn=fn: af.gradients(af.reduce_sum(fn(t, 2, 2, "VALID")), [t])[0],
                    [x])
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx.sum(), 8 * 8 * 8 * 32, rtol=1e-5)


def test_max_pool_gradient_goes_to_the_first_maximum_on_ties():
    x = np.zeros((1, 4, 4, 1))
    dx = run_op(lambda t: af.gradients(af.reduce_sum(af.nn.max_pool(t, 2, 2, "VALID")), [t])[0],
                [x])
    want = np.zeros((4, 4))
    want[::2, ::2] = 1.0
    np.testing.assert_array_equal(dx[0, :, :, 0], want)
    # overlapping windows: each window's own first maximum, gradients summed
    x = np.array([[1.0, 5.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).reshape(1, 3, 3, 1)
    dx = run_op(lambda t: af.gradients(af.reduce_sum(af.nn.max_pool(t, 2, 1, "VALID")), [t])[0],
                [x])
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 2, 0], [1, 1, 0], [0, 0, 0]])


def test_pooling_second_derivatives():
    c = randn(1, 2, 2, 2)
    for fn in (af.nn.max_pool, af.nn.avg_pool):
        def build(x, fn=fn):
            y = fn(x, 2, 2, "SAME")
            return af.gradients(af.reduce_sum(y * y * c), [x])[0]
        check_gradient(build, [randn(1, 3, 4, 2)])


# ---- dropout -----------------------------------------------------------------------------
def test_dropout_statistics_and_gradient():
    x = rng.uniform(1.0, 2.0, (200, 500))
    rate = 0.3
    g = af.Graph()
    with g.as_default():
        xp = af.placeholder(af.float64, x.shape)
        y = af.nn.dropout(xp, rate=rate)
        dx, = af.gradients(af.reduce_sum(y), [xp])
        with af.Session(graph=g) as s:
            yv, dxv = s.run([y, dx], {xp: x})
            yv2 = s.run(y, {xp: x})
    zeroed = np.mean(yv == 0)
    assert abs(zeroed - rate) < 0.01, zeroed                  # 100k draws: sd 0.0015
    assert abs(yv.mean() / x.mean() - 1) < 0.01
    kept = yv != 0
    np.testing.assert_allclose(yv[kept], x[kept] / (1 - rate), rtol=1e-12)
    np.testing.assert_array_equal(dxv, kept / (1 - rate))      # gradient = mask / keep_prob
    assert not np.array_equal(yv == 0, yv2 == 0)               # a fresh mask every step


def test_dropout_keep_prob_placeholder_noise_shape_and_seeds():
    x = np.ones((64, 3, 5))
    g = af.Graph()
    with g.as_default():
        xp = af.placeholder(af.float64, (None, 3, 5))
        kp = af.placeholder(af.float64, ())
        y = af.nn.dropout(xp, kp, noise_shape=[64, 1, 5])
        with af.Session(graph=g) as s:
            assert np.array_equal(s.run(y, {xp: x, kp: 1.0}), x)
            yv = s.run(y, {xp: x, kp: 0.5})
            assert set(np.unique(yv)) <= {0.0, 2.0}
            assert np.all(yv == yv[:, :1, :])                  # one decision per slice
            with pytest.raises(af.errors.InvalidArgumentError, match="keep_prob must be in"):
                s.run(y, {xp: x, kp: 0.0})

    def masks():
        g = af.Graph()
        with g.as_default():
            af.set_random_seed(7)
            y = af.nn.dropout(af.ones((1000,), af.float64), rate=0.5)
            with af.Session(graph=g) as s:
                return s.run(y), s.run(y)

    a, b = masks(), masks()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])


def test_dropout_identity_and_errors():
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (2, 3))
        assert af.nn.dropout(x, rate=0.0) is x
        assert af.nn.dropout(x, keep_prob=1.0) is x
        with pytest.raises(af.errors.InvalidArgumentError, match="exactly one of"):
            af.nn.dropout(x)
        with pytest.raises(af.errors.InvalidArgumentError, match=r"got keep_prob -0\.5"):
            af.nn.dropout(x, rate=1.5)
        with pytest.raises(af.errors.InvalidArgumentError, match="noise_shape"):
            af.nn.dropout(x, 0.5, noise_shape=[2, 2])


# ---- embedding_lookup, moments -------------------------------------------------------------
def test_embedding_lookup_gradient_is_sparse():
    params, ids = randn(6, 3), np.array([[4, 0], [4, 5]], np.int32)
    check_forward(af.nn.embedding_lookup, lambda p, i: p[i], [params, ids])
    g = af.Graph()
    with g.as_default():
        p = af.placeholder(af.float64, (6, 3))
        e = af.nn.embedding_lookup([p], ids)
        dp, = af.gradients(af.reduce_sum(e), [p])
        assert isinstance(dp, af.IndexedSlices)
        with af.Session(graph=g) as s:
            dense = s.run(af.convert_to_tensor(dp), {p: params})
    want = np.zeros((6, 3))
    np.add.at(want, ids.reshape(-1), 1.0)
    np.testing.assert_allclose(dense, want)


def test_moments():
    x = randn(4, 3, 5)
    check_forward(lambda t: list(af.nn.moments(t, [0, 2])),
                  lambda v: [v.mean((0, 2)), v.var((0, 2))], [x], rtol=1e-10)
    check_forward(lambda t: list(af.nn.moments(t, [1], keepdims=True)),
                  lambda v: [v.mean(1, keepdims=True), v.var(1, keepdims=True)], [x],
                  rtol=1e-10)
    check_gradient(lambda t: af.nn.moments(t, [0])[1], [randn(4, 3)])


# ---- build-time errors --------------------------------------------------------------------
def test_build_time_errors_name_the_shapes():
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, (None, 8, 8, 3))
        E = af.errors.InvalidArgumentError
        with pytest.raises(E, match=r"\(\?, 8, 8, 3\) has 3 channels but the filter of shape "
                                    r"\(3, 3, 4, 8\) expects 4"):
            af.nn.conv2d(x, af.zeros((3, 3, 4, 8)), strides=1, padding="SAME")
        with pytest.raises(E, match="does not fit the input"):
            af.nn.conv2d(x, af.zeros((9, 9, 3, 8)), strides=1, padding="VALID")
        with pytest.raises(E, match=r"strides must be \[1, h, w, 1\]"):
            af.nn.conv2d(x, af.zeros((3, 3, 3, 8)), strides=[2, 1, 1, 1], padding="SAME")
        with pytest.raises(E, match="padding must be 'SAME' or 'VALID'"):
            af.nn.max_pool(x, 2, 2, "FULL")
        with pytest.raises(E, match="needs a 4-D input"):
            af.nn.max_pool(af.placeholder(af.float32, (4, 4)), 2, 2, "VALID")
        with pytest.raises(E, match=r"bias of shape \(4,\) does not match the 3 channels"):
            af.nn.bias_add(x, af.zeros((4,)))
        with pytest.raises(E, match=r"labels of shape \(5,\) must have the shape of the logits "
                                    r"\(4, 3\) without its last"):
            af.nn.sparse_softmax_cross_entropy_with_logits(
                labels=af.zeros((5,), af.int32), logits=af.zeros((4, 3)))
        with pytest.raises(E, match="labels must be int32 or int64"):
            af.nn.sparse_softmax_cross_entropy_with_logits(labels=af.zeros((4,)),
                                                           logits=af.zeros((4, 3)))
        with pytest.raises(E, match=r"logits of shape \(4, 3\) and labels of shape \(4, 2\)"):
            af.nn.softmax_cross_entropy_with_logits_v2(labels=af.zeros((4, 2)),
                                                       logits=af.zeros((4, 3)))
        with pytest.raises(E, match="needs a floating-point tensor"):
            af.nn.softmax(af.zeros((2, 3), af.int32))
        with pytest.raises(E, match="axis 2 is out of range"):
            af.nn.softmax(af.zeros((2, 3)), axis=2)
        with pytest.raises(af.errors.UnimplementedError, match="NHWC"):
            af.nn.conv2d(x, af.zeros((3, 3, 3, 8)), 1, "SAME", data_format="NCHW")
