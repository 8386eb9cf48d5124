"""The TF1 ops added for the programs, against NumPy (and TensorFlow's saved outputs where
noted): activations, conversions, norms, masks, segments, RNN cells against a NumPy LSTM,
sampled losses, trig, grids, images, depthwise convolutions, debugging ops, py_func."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_forward, check_gradient, run_op

rng = np.random.default_rng(1234)


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


def test_segment_extremes_and_embedding_lookup_sparse() -> None:
    x = rng.standard_normal((5, 3))
    ids = np.array([0, 2, 0, 2, 2])

    def ref(f, init):
        out = np.full((4, 3), init)
        for i, s in enumerate(ids):
            out[s] = f(out[s], x[i])
        return out
    check_forward(lambda t: af.unsorted_segment_max(t, ids, 4),
                  lambda t: ref(np.maximum, np.finfo(t.dtype).min), [x])  # TF: lowest
    check_forward(lambda t: af.unsorted_segment_min(t, ids, 4),
                  lambda t: ref(np.minimum, np.finfo(t.dtype).max), [x])
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
    'b<align_corners>' and 'n<align_corners>'), made once with the repository's .tfenv."""
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
