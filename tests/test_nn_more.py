"""tf.nn ops added in session 9 (s9api): conv3d and 3-D pooling, max_pool_with_argmax,
dilation2d, CTC loss and greedy decoding, the moment helpers, and TF's gradients of relu6 and
fused_batch_norm. Forward values against NumPy references written here, gradients against
central differences (tests/opcheck.py)."""

# the lambdas are called at once, inside their loop (B023)
# ruff: noqa: B023

import itertools

import numpy as np
import pytest

import actorflow as af
from devices.errors import InvalidArgumentError
from tests.opcheck import check_forward, check_gradient, run_op

R = np.random.default_rng(9)


def _same(size, k, s):
    out = -(-size // s)
    tot = max((out - 1) * s + k - size, 0)
    return out, tot // 2


def np_conv3d(x, w, st, padding):
    n, d, h, wd, _ = x.shape
    kd, kh, kw, _, o = w.shape
    pads, outs = [], []
    for size, k, s in ((d, kd, st[1]), (h, kh, st[2]), (wd, kw, st[3])):
        if padding == "SAME":
            out, before = _same(size, k, s)
        else:
            out, before = (size - k) // s + 1, 0
        outs.append(out)
        pads.append(before)
    xp = np.pad(x, [(0, 0), (pads[0], kd + st[1] * outs[0]), (pads[1], kh + st[2] * outs[1]),
                    (pads[2], kw + st[3] * outs[2]), (0, 0)])
    y = np.zeros((n, *outs, o))
    for i, j, k in itertools.product(*(range(v) for v in outs)):
        win = xp[:, i * st[1]:i * st[1] + kd, j * st[2]:j * st[2] + kh, k * st[3]:k * st[3] + kw]
        y[:, i, j, k] = np.tensordot(win, w, axes=([1, 2, 3, 4], [0, 1, 2, 3]))
    return y


def np_pool3d(x, ks, st, padding, kind):
    n, d, h, w, c = x.shape
    outs, pads = [], []
    for size, k, s in ((d, ks[1], st[1]), (h, ks[2], st[2]), (w, ks[3], st[3])):
        out, before = _same(size, k, s) if padding == "SAME" else ((size - k) // s + 1, 0)
        outs.append(out)
        pads.append(before)
    y = np.zeros((n, *outs, c))
    for i, j, k in itertools.product(*(range(v) for v in outs)):
        lo = [i * st[1] - pads[0], j * st[2] - pads[1], k * st[3] - pads[2]]
        win = x[:, max(lo[0], 0):lo[0] + ks[1], max(lo[1], 0):lo[1] + ks[2],
                max(lo[2], 0):lo[2] + ks[3]]
        y[:, i, j, k] = win.max((1, 2, 3)) if kind == "max" else win.mean((1, 2, 3))
    return y


@pytest.mark.parametrize("strides,padding", [([1, 1, 1, 1, 1], "VALID"),
                                             ([1, 2, 1, 2, 1], "SAME")])
def test_conv3d_values_and_gradients(strides, padding):
    x, w = R.standard_normal((2, 4, 5, 4, 2)), R.standard_normal((2, 3, 2, 2, 3))
    build = lambda a, b: af.nn.conv3d(a, b, strides, padding)  # noqa: E731
    check_forward(build, lambda a, b: np_conv3d(a, b, strides, padding), [x, w], rtol=1e-9)
    check_gradient(build, [x[:1, :3, :3, :3], w[:, :2]], seed=1)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool3d_values_and_gradients(kind):
    fn = af.nn.max_pool3d if kind == "max" else af.nn.avg_pool3d
    x = R.standard_normal((2, 5, 4, 5, 2))
    for ks, st, pad in (([1, 2, 2, 2, 1], [1, 2, 2, 2, 1], "VALID"),
                        ([1, 3, 2, 3, 1], [1, 2, 1, 2, 1], "SAME")):
        check_forward(lambda a: fn(a, ks, st, pad), lambda a: np_pool3d(a, ks, st, pad, kind),
                      [x], rtol=1e-9)
    check_gradient(lambda a: fn(a, [1, 2, 2, 2, 1], [1, 1, 2, 1, 1], "SAME"),
                   [R.standard_normal((1, 3, 3, 3, 2))], seed=2)


def test_max_pool_with_argmax_index_and_gradient():
    x = R.standard_normal((2, 5, 4, 3))
    for include_batch in (False, True):
        y, idx = run_op(lambda a: af.nn.max_pool_with_argmax(
            a, [1, 2, 2, 1], [1, 2, 2, 1], "SAME", include_batch_in_index=include_batch), [x])
        assert y.shape == idx.shape == (2, 3, 2, 3) and idx.dtype == np.int64
        flat = x.reshape(-1) if include_batch else x.reshape(2, -1)
        for b, i, j, c in itertools.product(range(2), range(3), range(2), range(3)):
            win = x[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
            assert y[b, i, j, c] == win.max()
            got = flat[idx[b, i, j, c]] if include_batch else flat[b, idx[b, i, j, c]]
            assert got == win.max()
            yy, xx = np.unravel_index(np.argmax(win), win.shape)
            want = ((2 * i + yy) * 4 + 2 * j + xx) * 3 + c + (b * 60 if include_batch else 0)
            assert idx[b, i, j, c] == want
    check_gradient(lambda a: af.nn.max_pool_with_argmax(a, [1, 2, 2, 1], [1, 1, 1, 1],
                                                        "VALID")[0], [x[:1, :3, :3, :2]], seed=3)


def np_dilation(x, f, s, r, padding):
    n, h, w, c = x.shape
    kh, kw, _ = f.shape
    ek = [(kh - 1) * r + 1, (kw - 1) * r + 1]
    if padding == "SAME":
        (oh, pt), (ow, pl) = _same(h, ek[0], s), _same(w, ek[1], s)
    else:
        (oh, pt), (ow, pl) = ((h - ek[0]) // s + 1, 0), ((w - ek[1]) // s + 1, 0)
    y = np.full((n, oh, ow, c), -np.inf)
    for i, j, dy, dx in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        yy, xx = i * s + dy * r - pt, j * s + dx * r - pl
        if 0 <= yy < h and 0 <= xx < w:
            y[:, i, j] = np.maximum(y[:, i, j], x[:, yy, xx] + f[dy, dx])
    return y


@pytest.mark.parametrize("s,r,padding", [(1, 1, "SAME"), (2, 2, "VALID"), (2, 1, "SAME")])
def test_dilation2d_values_and_gradients(s, r, padding):
    x, f = R.standard_normal((2, 6, 5, 2)), R.standard_normal((2, 3, 2))
    build = lambda a, b: af.nn.dilation2d(a, b, [1, s, s, 1], [1, r, r, 1], padding)  # noqa: E731
    check_forward(build, lambda a, b: np_dilation(a, b, s, r, padding), [x, f], rtol=1e-9)
    check_gradient(build, [x, f], seed=4)


# ---- CTC --------------------------------------------------------------------------------------
def brute_ctc(logits, label, merge=True):
    """-log of the summed probability of every path that collapses to `label`."""
    t_len, n = logits.shape
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    blank, total = n - 1, 0.0
    for path in itertools.product(range(n), repeat=t_len):
        out = [c for i, c in enumerate(path) if c != blank and not (
            merge and i > 0 and path[i - 1] == c)]
        if out == list(label):
            total += np.prod(p[np.arange(t_len), path])
    return -np.log(total)


def _sparse(labels):
    idx = [[b, j] for b, lab in enumerate(labels) for j in range(len(lab))]
    vals = [v for lab in labels for v in lab]
    return af.SparseTensor(np.int64(idx), np.int32(vals), [len(labels), max(map(len, labels))])


@pytest.mark.parametrize("merge", [True, False])
def test_ctc_loss_equals_brute_force_path_sum(merge):
    labels = [[0, 1], [1, 1], [2]]
    lens = [5, 5, 3]
    x = R.standard_normal((5, 3, 4))
    loss = run_op(lambda a: af.nn.ctc_loss(_sparse(labels), a, lens,
                                           ctc_merge_repeated=merge), [x])
    want = [brute_ctc(x[:n, b], labels[b], merge) for b, n in enumerate(lens)]
    np.testing.assert_allclose(loss, want, rtol=1e-9)


def test_ctc_loss_gradient_and_options():
    labels, lens = [[0, 1, 1], [2]], [5, 2]
    x = R.standard_normal((5, 2, 4))
    check_gradient(lambda a: af.nn.ctc_loss(_sparse([[0, 1], [1]]), a, [4, 2]), [x[:4, :, :3]],
                   seed=5, rtol=1e-5)
    # past a sequence's length the gradient is 0; collapsing [0, 1, 1] -> [0, 1]
    g = run_op(lambda a: af.gradients(af.reduce_sum(af.nn.ctc_loss(_sparse(labels), a, lens)),
                                      [a])[0], [x])
    assert not g[2:, 1].any() and g[:2, 1].any()
    got = run_op(lambda a: af.nn.ctc_loss(_sparse(labels), a, lens,
                                          preprocess_collapse_repeated=True), [x])
    np.testing.assert_allclose(got[0], brute_ctc(x[:, 0], [0, 1]), rtol=1e-9)
    with pytest.raises(InvalidArgumentError, match="Not enough time"):
        run_op(lambda a: af.nn.ctc_loss(_sparse([[0, 0, 0], [1]]), a, [2, 2]), [x[:4]])
    got = run_op(lambda a: af.nn.ctc_loss(_sparse([[0, 0, 0], [1]]), a, [2, 2],
                                          ignore_longer_outputs_than_inputs=True), [x[:4]])
    assert got[0] == 0 and got[1] > 0
    # fits by length, but the repeats need blanks: no path, TF's infinite loss
    loss = run_op(lambda a: af.nn.ctc_loss(_sparse([[0, 0, 0], [1]]), a, [4, 2]), [x[:4]])
    assert np.isinf(loss[0]) and np.isfinite(loss[1])


def test_ctc_greedy_decoder():
    x = np.full((6, 2, 3), -5.0)
    best = [[0, 0, 2, 0, 1, 1], [2, 1, 2, 2, 1, 0]]
    for b, row in enumerate(best):
        x[np.arange(6), b, row] = 1.0
    (sp,), score = run_op(lambda a: af.nn.ctc_greedy_decoder(a, [6, 5]), [x])
    assert sp.indices.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]
    assert sp.values.tolist() == [0, 0, 1, 1, 1] and sp.dense_shape.tolist() == [2, 3]
    np.testing.assert_allclose(score[:, 0], [-6.0, -5.0])
    (sp,), _ = run_op(lambda a: af.nn.ctc_greedy_decoder(a, [6, 5], merge_repeated=False), [x])
    assert sp.values.tolist() == [0, 0, 0, 1, 1, 1, 1]


# ---- moments and TF's gradient rules -----------------------------------------------------------
def test_moment_helpers():
    x, w = R.standard_normal((4, 3)), np.abs(R.standard_normal((4, 1)))
    check_forward(lambda a: list(af.nn.sufficient_statistics(a, [0])[:3]),
                  lambda a: [np.float64(4), a.sum(0), (a * a).sum(0)], [x])
    check_forward(lambda a, b: list(af.nn.weighted_moments(a, [0], b)),
                  lambda a, b: [(a * b).sum(0) / b.sum(),
                                (b * (a - (a * b).sum(0) / b.sum()) ** 2).sum(0) / b.sum()],
                  [x, w])
    check_gradient(lambda a, b: af.nn.weighted_moments(a, [0], b)[1], [x, w], seed=6)
    c, m, v = np.float64(4), x.sum(0), (x * x).sum(0)
    check_forward(lambda a, b, d: list(af.nn.normalize_moments(a, b, d, None)),
                  lambda a, b, d: [b / a, d / a - (b / a) ** 2], [c, m, v])


def test_relu6_gradient_passes_only_inside():
    g = run_op(lambda a: af.gradients(af.reduce_sum(af.nn.relu6(a)), [a])[0],
               [np.float32([-1, 0, 3, 6, 7])])
    assert g.tolist() == [0, 0, 1, 0, 0]


def test_fused_batch_norm_gradients_as_tf():
    x = R.standard_normal((2, 3, 3, 2))
    sc, off = R.standard_normal(2), R.standard_normal(2)
    mean, var = R.standard_normal(2), np.abs(R.standard_normal(2)) + 0.5

    def train(a, s, o):  # what flows into the batch statistics is ignored
        y, m, v = af.nn.fused_batch_norm(a, s, o, epsilon=1e-3)
        return af.reduce_sum(y * 1.0) + af.reduce_sum(m * 7.0) + af.reduce_sum(v * 5.0)

    def train_y_only(a, s, o):
        return af.reduce_sum(af.nn.fused_batch_norm(a, s, o, epsilon=1e-3)[0] * 1.0)
    g1 = run_op(lambda *t: af.gradients(train(*t), list(t)), [x, sc, off])
    g2 = run_op(lambda *t: af.gradients(train_y_only(*t), list(t)), [x, sc, off])
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    def infer(a, s, o, m, v):
        gs = af.gradients(af.reduce_sum(af.nn.fused_batch_norm(
            a, s, o, m, v, is_training=False)[0]), [m, v, a])
        assert gs[0] is None and gs[1] is None  # TF: none for mean and variance
        return gs[2]
    gx = run_op(infer, [x, sc, off, mean, var])
    np.testing.assert_allclose(gx, np.broadcast_to(sc / np.sqrt(var + 1e-3), x.shape),
                               rtol=1e-9)


def test_ctc_beam_search_finds_the_most_probable_labelings():
    x = R.standard_normal((4, 2, 3)) * 2
    paths, scores = run_op(lambda a: af.nn.ctc_beam_search_decoder(a, [4, 3], beam_width=50,
                                                                   top_paths=3), [x])
    for b, t_len in enumerate([4, 3]):
        logits = x[:t_len, b]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        probs: dict = {}
        for path in itertools.product(range(3), repeat=t_len):  # exact: every path's labeling
            lab = tuple(c for i, c in enumerate(path) if c != 2 and not (i and path[i - 1] == c))
            probs[lab] = probs.get(lab, 0.0) + np.prod(p[np.arange(t_len), path])
        best = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
        for k, (lab, prob) in enumerate(best):
            sp = paths[k]
            got = tuple(sp.values[sp.indices[:, 0] == b].tolist())
            # merge_repeated: a decoded (0, 0) (a blank between) is reported as (0,), as TF
            assert got == tuple(c for i, c in enumerate(lab) if not (i and lab[i - 1] == c))
            np.testing.assert_allclose(scores[b, k], np.log(prob), rtol=1e-9)


def test_ctc_beam_search_prunes_as_tensorflow():
    """Narrow beams keep the prefixes TF's decoder keeps (values TF 2.21 computed,
    tests/data/tf_ctc_beam.json)."""
    import json
    from pathlib import Path
    data = json.loads((Path(__file__).parent / "data" / "tf_ctc_beam.json").read_text())
    x = np.float32(data["x"])
    for r in data["runs"]:
        paths, lp = run_op(lambda a: af.nn.ctc_beam_search_decoder(
            a, [7, 6, 3], beam_width=r["width"], top_paths=r["top"],
            merge_repeated=r["merge"]), [x])
        assert [[p.indices.tolist(), p.values.tolist(), p.dense_shape.tolist()]
                for p in paths] == r["paths"]
        np.testing.assert_allclose(lp, r["log_probs"], rtol=1e-5)
