"""Differential audit of ops against TensorFlow 2.21: the same TF1 program, on generated
shapes (0-d, empty, one element, broadcast pairs, batches of 0), run on actorflow and on
TensorFlow, forward values and the gradients of a weighted sum, compared (rtol 2e-4,
atol 2e-5; shapes and dtypes exactly); errors on both sides count as agreement.

    python benchmarks/audit_ops.py            # both sides (TF from the repository's .tfenv)

It runs itself once per side (``--side af|tf --out FILE``) and prints every case where the
two differ: values, shape, dtype, or one side failing. Not a timed benchmark: a check that
needs TensorFlow, kept beside the benchmarks that use the same side environment. Session 8:
1,387 cases; the differences it found were fixed (see RESULTS.md, "Session 8: op audit").
"""

# The cases are one flat table: each lambda is called at once, inside its loop (B023), and a
# case per line reads better than wrapped ones (E501).
# ruff: noqa: B023, E501, E731, B905

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def cases(tf, results):  # noqa: C901, PLR0915 - one flat list of cases
    R = np.random.RandomState(0)
    def f32(*s): return R.uniform(-2, 2, s).astype(np.float32)
    def i32(hi, *s): return R.randint(0, hi, s).astype(np.int32)
    def record(key, build, inputs, grad=True, consts=()):
        try:
            g = tf.Graph()
            with g.as_default():
                phs = [tf.placeholder(tf.as_dtype(x.dtype), x.shape) for x in inputs]
                y = build(*phs)
                ys = list(y) if isinstance(y, (list, tuple)) else [y]
                outs = list(ys)
                if grad:
                    fl = [p for p in phs if p.dtype == tf.float32]
                    tot = tf.add_n([tf.reduce_sum(v * (k + 1.0)) for k, v in enumerate(ys) if v.dtype == tf.float32])
                    gs = tf.gradients(tot, fl)
                    outs += [gg if gg is not None else tf.zeros_like(p) for gg, p in zip(gs, fl)]
                with tf.Session(graph=g) as s:
                    out = s.run(outs, dict(zip(phs, inputs)))
            out = [np.asarray(o.values if hasattr(o, "values") and hasattr(o, "indices") else o) for o in out]
            results[key] = {"ok": [o.tolist() for o in out], "shape": [list(o.shape) for o in out],
                            "dtype": [str(o.dtype) for o in out]}
        except Exception as e:
            results[key] = {"err": type(e).__name__ + ": " + str(e).splitlines()[0][:200]}

    SHAPES1 = [(), (0,), (3,), (2, 3), (3, 0), (1, 1, 4)]
    PAIRS = [((), ()), ((), (2, 3)), ((2, 1), (1, 3)), ((0, 3), (1, 3)), ((3,), (2, 3)), ((2, 3), (2, 3)), ((4, 1, 2), (3, 1))]
    UNARY = ["abs", "negative", "square", "sqrt", "rsqrt", "exp", "log", "log1p", "tanh", "sigmoid",
             "sin", "cos", "reciprocal", "sign", "floor", "ceil", "round", "softplus", "relu", "relu6",
             "elu", "selu", "erf", "lgamma", "digamma", "expm1", "atan", "asinh", "softsign",
             "is_finite", "logical_not", "zeros_like", "ones_like", "identity", "stop_gradient"]
    BINARY = ["add", "subtract", "multiply", "divide", "truediv", "floordiv", "floormod", "maximum",
              "minimum", "pow", "squared_difference", "atan2", "equal", "less", "greater_equal",
              "div_no_nan", "xdivy", "xlogy", "add_n2", "logical_and"]
    REDUCE = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
              "reduce_logsumexp", "reduce_any", "reduce_all", "argmax", "argmin", "cumsum", "cumprod",
              "softmax", "log_softmax", "l2_normalize", "norm", "reduce_euclidean_norm"]
    AXES = [None, 0, -1, (0, 1)]

    def fn(name):
        if name in ("relu", "relu6", "elu", "selu", "softplus", "softsign", "softmax", "log_softmax", "l2_normalize"):
            return getattr(tf.nn, name)
        if name in ("erf", "lgamma", "digamma", "expm1", "atan", "asinh", "is_finite", "reciprocal", "xdivy", "xlogy", "div_no_nan", "floormod"):
            return getattr(tf.math, name)
        if name == "add_n2":
            return lambda a, b: tf.add_n([a, b])
        return getattr(tf, name)

    def data(shape, dtype, seed, positive=False):
        r = np.random.RandomState(seed)
        x = r.uniform(0.2, 2.0, shape) if positive else r.uniform(-2, 2, shape)
        if dtype == "bool":
            return x > 0
        return x.astype(dtype)

    def record_fn(key, f):
        try:
            out = f()
            results[key] = {"ok": [np.asarray(o).tolist() if o is not None else None for o in out],
                            "shape": [list(np.shape(o)) if o is not None else None for o in out],
                            "dtype": [str(np.asarray(o).dtype) if o is not None else None for o in out]}
        except Exception as e:
            results[key] = {"err": type(e).__name__ + ": " + str(e).splitlines()[0][:200]}

    def run_case(build, inputs, grad):
        g = tf.Graph()
        with g.as_default():
            phs = [tf.placeholder(tf.as_dtype(x.dtype), x.shape) for x in inputs]
            y = build(*phs)
            outs = [y]
            if grad and y.dtype in (tf.float32, tf.float64):
                gs = tf.gradients(tf.reduce_sum(y), phs)
                outs += [gg for gg in gs if gg is not None]
            with tf.Session(graph=g) as s:
                return s.run(outs, dict(zip(phs, inputs)))

    for name in UNARY:
        for shape in SHAPES1:
            for dt in ("float32", "float64", "int32"):
                if dt == "int32" and name not in ("abs", "negative", "square", "sign", "zeros_like", "ones_like", "identity"):
                    continue
                if name == "logical_not":
                    dt = "bool"
                pos = name in ("sqrt", "rsqrt", "log", "lgamma", "digamma")
                x = data(shape, dt, 1, pos)
                record_fn(f"u/{name}/{shape}/{dt}", lambda: run_case(lambda a: fn(name)(a), [x], dt != "int32"))
    for name in BINARY:
        for sa, sb in PAIRS:
            for dt in ("float32", "int32"):
                if name in ("atan2", "xdivy", "xlogy", "div_no_nan", "truediv", "squared_difference") and dt == "int32":
                    continue
                if name == "logical_and":
                    dt = "bool"
                pos = name in ("pow",)
                a, b = data(sa, dt, 2, pos), data(sb, dt, 3, pos)
                if dt == "int32" and name in ("floordiv", "floormod", "divide"):
                    b = np.where(b == 0, 1, b).astype(dt)
                if name == "add_n2" and sa != sb:
                    continue
                record_fn(f"b/{name}/{sa}/{sb}/{dt}", lambda: run_case(lambda p, q: fn(name)(p, q), [a, b], dt == "float32"))
    for name in REDUCE:
        for shape in [(), (0,), (3,), (2, 3), (2, 0), (0, 3)]:
            for ax in AXES:
                if ax is not None and (isinstance(ax, tuple) and len(shape) < 2 or not isinstance(ax, tuple) and len(shape) < 1):
                    continue
                if name in ("argmax", "argmin", "cumsum", "cumprod", "softmax", "log_softmax") and (ax is None or isinstance(ax, tuple)):
                    continue
                dt = "bool" if name in ("reduce_any", "reduce_all") else "float32"
                x = data(shape, dt, 4)
                def build(a, name=name, ax=ax):
                    f = fn(name)
                    if name in ("argmax", "argmin", "cumsum", "cumprod"):
                        return f(a, axis=ax)
                    if name in ("softmax", "log_softmax", "l2_normalize"):
                        return f(a, axis=ax)
                    if name == "norm":
                        return f(a, axis=ax)
                    return f(a, axis=ax)
                record_fn(f"r/{name}/{shape}/{ax}", lambda: run_case(build, [x], dt == "float32"))
    for sa in [(2, 3), (0, 3), (2, 0)]:
        for ax in (0, 1, -1):
            record(f"concat/{sa}/{ax}", lambda a, b: tf.concat([a, b], ax), [f32(*sa), f32(*sa)])
            record(f"stack/{sa}/{ax}", lambda a, b: tf.stack([a, b], ax), [f32(*sa), f32(*sa)])
        record(f"transpose/{sa}", lambda a: tf.transpose(a), [f32(*sa)])
        record(f"reverse/{sa}", lambda a: tf.reverse(a, [1]), [f32(*sa)])
        record(f"tile/{sa}", lambda a: tf.tile(a, [2, 3]), [f32(*sa)])
        record(f"pad/{sa}", lambda a: tf.pad(a, [[1, 0], [2, 1]]), [f32(*sa)])
        record(f"pad_reflect/{sa}", lambda a: tf.pad(a, [[1, 0], [0, 0]], "SYMMETRIC"), [f32(*sa)])
        record(f"reshape/{sa}", lambda a: tf.reshape(a, [-1]), [f32(*sa)])
        record(f"expand/{sa}", lambda a: tf.expand_dims(a, 1), [f32(*sa)])
        record(f"slice/{sa}", lambda a: tf.slice(a, [0, 0], [-1, -1]), [f32(*sa)])
        record(f"strided/{sa}", lambda a: a[::-1, 1:], [f32(*sa)])
        record(f"strided2/{sa}", lambda a: a[:, None, ..., -1:], [f32(*sa)])
        record(f"matmul/{sa}", lambda a, b: tf.matmul(a, b, transpose_b=True), [f32(*sa), f32(*sa)])
        record(f"matmul_ta/{sa}", lambda a, b: tf.matmul(a, b, transpose_a=True), [f32(*sa), f32(*sa)])
        record(f"where3/{sa}", lambda c, a, b: tf.where(c, a, b), [f32(*sa) > 0, f32(*sa), f32(*sa)])
        record(f"boolean_mask/{sa}", lambda a, m: tf.boolean_mask(a, m), [f32(*sa), f32(sa[0]) > 0])
        record(f"l2_loss/{sa}", lambda a: tf.nn.l2_loss(a), [f32(*sa)])
        record(f"moments/{sa}", lambda a: tf.nn.moments(a, [0]), [f32(*sa)])
        record(f"split/{sa}", lambda a: tf.split(a, [1, sa[1] - 1] if sa[1] else [0, 0], 1), [f32(*sa)])
        record(f"squeeze/{sa}", lambda a: tf.squeeze(tf.expand_dims(a, 0)), [f32(*sa)])
        record(f"einsum/{sa}", lambda a, b: tf.einsum("ij,kj->ik", a, b), [f32(*sa), f32(*sa)])
        record(f"tensordot/{sa}", lambda a, b: tf.tensordot(a, b, [[1], [1]]), [f32(*sa), f32(*sa)])
        record(f"top_k/{sa}", lambda a: tf.nn.top_k(a, min(2, sa[1]))[0], [f32(*sa)])
        record(f"clip/{sa}", lambda a: tf.clip_by_value(a, -0.5, 0.5), [f32(*sa)])
        record(f"clip_norm/{sa}", lambda a: tf.clip_by_norm(a, 1.0), [f32(*sa)])
        record(f"sort/{sa}", lambda a: tf.sort(a), [f32(*sa)], grad=False)
    for n in (0, 1, 5):
        record(f"gather/{n}", lambda p, i: tf.gather(p, i), [f32(4, 3), i32(4, n)])
        record(f"gather_ax1/{n}", lambda p, i: tf.gather(p, i, axis=1), [f32(4, 3), i32(3, n)])
        record(f"gather_nd/{n}", lambda p, i: tf.gather_nd(p, i), [f32(4, 3), i32(3, n, 2)])
        record(f"embedding/{n}", lambda p, i: tf.nn.embedding_lookup(p, i), [f32(4, 3), i32(4, n)])
        record(f"one_hot/{n}", lambda i: tf.one_hot(i, 4), [i32(4, n)], grad=False)
        record(f"seg_sum/{n}", lambda d, i: tf.unsorted_segment_sum(d, i, 3), [f32(n, 2), i32(3, n)])
        record(f"seg_max/{n}", lambda d, i: tf.unsorted_segment_max(d, i, 3), [f32(n, 2), i32(3, n)])
        record(f"sorted_seg_sum/{n}", lambda d: tf.segment_sum(d, tf.constant(sorted(R.randint(0, 3, n).tolist()), tf.int32)), [f32(n, 2)])
        record(f"scatter_nd/{n}", lambda u, i: tf.scatter_nd(i, u, [4, 2]), [f32(n, 2), i32(4, n, 1)])
        record(f"sparse_xent/{n}", lambda l, y: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=l), [f32(n, 4), i32(4, n)])
        record(f"xent_v2/{n}", lambda l, y: tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=l), [f32(n, 4), np.abs(f32(n, 4))])
        record(f"sigmoid_xent/{n}", lambda l, y: tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=l), [f32(n, 4), np.abs(f32(n, 4)) / 2])
        record(f"losses_mse/{n}", lambda a, b: tf.losses.mean_squared_error(a, b), [f32(n, 4), f32(n, 4)])
        record(f"losses_sxent/{n}", lambda l, y: tf.losses.sparse_softmax_cross_entropy(y, l), [f32(n, 4), i32(4, n)])
        record(f"bias_add/{n}", lambda a, b: tf.nn.bias_add(a, b), [f32(n, 4), f32(4)])
        record(f"batchnorm/{n}", lambda a, m, v: tf.nn.batch_normalization(a, m, v, None, None, 1e-3), [f32(n, 4), f32(4), np.abs(f32(4))])
        record(f"in_top_k/{n}", lambda a, y: tf.nn.in_top_k(a, y, 2), [f32(n, 4), i32(4, n)], grad=False)
        record(f"cumsum_excl_rev/{n}", lambda a: tf.cumsum(a, 0, exclusive=True, reverse=True), [f32(n, 3)])
        record(f"bmm/{n}", lambda a, b: tf.matmul(a, b), [f32(n, 2, 3), f32(n, 3, 2)])
        record(f"conv2d/{n}", lambda x, w: tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"), [f32(n, 5, 5, 2), f32(3, 3, 2, 3)])
        record(f"conv2d_s2v/{n}", lambda x, w: tf.nn.conv2d(x, w, [1, 2, 2, 1], "VALID"), [f32(n, 6, 5, 2), f32(3, 2, 2, 3)])
        record(f"maxpool/{n}", lambda x: tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "SAME"), [f32(n, 5, 5, 2)])
        record(f"avgpool/{n}", lambda x: tf.nn.avg_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "VALID"), [f32(n, 5, 5, 2)])
        record(f"depthwise/{n}", lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"), [f32(n, 4, 4, 2), f32(3, 3, 2, 2)])
        record(f"conv2d_transpose/{n}", lambda x, w: tf.nn.conv2d_transpose(x, w, [n, 8, 8, 2], [1, 2, 2, 1], "SAME"), [f32(n, 4, 4, 3), f32(3, 3, 2, 3)])
        record(f"resize_bilinear/{n}", lambda x: tf.image.resize_bilinear(x, [7, 3]), [f32(n, 4, 5, 2)])
        record(f"lrn/{n}", lambda x: tf.nn.lrn(x, 2), [f32(n, 3, 3, 6)])
        record(f"dynamic_partition/{n}", lambda d, p: tf.dynamic_partition(d, p, 3), [f32(n, 2), i32(3, n)])
        record(f"dynamic_stitch/{n}", lambda a, b: tf.dynamic_stitch([tf.range(n), tf.range(n, 2 * n)], [a, b]), [f32(n, 2), f32(n, 2)])
        record(f"reduce_mean_keep/{n}", lambda a: tf.reduce_mean(a, [0, 1], keepdims=True), [f32(n, 3, 2)])
        record(f"unique/{n}", lambda i: tf.unique(i)[0], [i32(3, n)], grad=False)
        record(f"setdiff/{n}", lambda i: tf.setdiff1d(i, tf.constant([1], tf.int32))[0], [i32(3, n)], grad=False)
        record(f"bincount/{n}", lambda i: tf.bincount(i, minlength=3), [i32(3, n)], grad=False)
        record(f"matrix_band/{n}", lambda a: tf.matrix_band_part(a, 0, -1), [f32(n, 3, 3)])
        record(f"matrix_diag/{n}", lambda a: tf.matrix_diag(a), [f32(n, 3)])
        record(f"diag_part/{n}", lambda a: tf.matrix_diag_part(a), [f32(n, 3, 3)])
        record(f"trace/{n}", lambda a: tf.trace(a), [f32(n, 3, 3)])
        record(f"argsort/{n}", lambda a: tf.argsort(a), [f32(n)], grad=False)
        record(f"reduce_std/{n}", lambda a: tf.math.reduce_std(a, 0), [f32(n, 3)])
        record(f"log_sigmoid/{n}", lambda a: tf.log_sigmoid(a), [f32(n, 3)])
        record(f"leaky/{n}", lambda a: tf.nn.leaky_relu(a, 0.1), [f32(n, 3)])
        record(f"swish/{n}", lambda a: tf.nn.swish(a), [f32(n, 3)])
        record(f"cross/{n}", lambda a, b: tf.cross(a, b), [f32(n, 3), f32(n, 3)])
        record(f"matrix_inverse/{n}", lambda a: tf.matrix_inverse(a + 3 * tf.eye(3)), [f32(n, 3, 3)])
        record(f"cholesky/{n}", lambda a: tf.cholesky(tf.matmul(a, a, transpose_b=True) + tf.eye(3)), [f32(n, 3, 3)])
        record(f"det/{n}", lambda a: tf.matrix_determinant(a), [f32(n, 3, 3)])
        record(f"triangular_solve/{n}", lambda a, b: tf.matrix_triangular_solve(a + 3 * tf.eye(3), b), [f32(n, 3, 3), f32(n, 3, 2)])
        record(f"solve/{n}", lambda a, b: tf.matrix_solve(a + 3 * tf.eye(3), b), [f32(n, 3, 3), f32(n, 3, 2)])
    for n in (0, 1, 3):
        sq = lambda *s: (R.uniform(-1, 1, s) + 3 * np.eye(s[-1])).astype(np.float32)
        record(f"det/{n}", lambda a: tf.matrix_determinant(a), [sq(n, 3, 3)])
        record(f"det2/{n}", lambda a: tf.linalg.det(a), [sq(2, n, 4, 4)])
        record(f"slogdet/{n}", lambda a: tf.linalg.slogdet(a), [sq(n, 3, 3)])
        record(f"logdet/{n}", lambda a: tf.linalg.logdet(tf.matmul(a, a, transpose_b=True)), [sq(n, 3, 3)])
        record(f"solve/{n}", lambda a, b: tf.matrix_solve(a, b), [sq(n, 3, 3), f32(n, 3, 2)])
        record(f"solve_adj/{n}", lambda a, b: tf.matrix_solve(a, b, adjoint=True), [sq(n, 3, 3), f32(n, 3, 2)])
        record(f"solve0rhs/{n}", lambda a, b: tf.matrix_solve(a, b), [sq(n, 3, 3), f32(n, 3, 0)])
        for lower in (True, False):
            for adj in (True, False):
                record(f"trisolve/{n}/{lower}/{adj}", lambda a, b: tf.matrix_triangular_solve(a, b, lower=lower, adjoint=adj), [sq(n, 3, 3), f32(n, 3, 2)])
        for lo, up in ((0, -1), (-1, 0), (1, 1), (0, 0), (-1, -1)):
            record(f"band/{n}/{lo}/{up}", lambda a: tf.matrix_band_part(a, lo, up), [f32(n, 3, 4)])
        record(f"cross/{n}", lambda a, b: tf.cross(a, b), [f32(n, 3), f32(n, 3)])
        record(f"bincount/{n}", lambda i: tf.bincount(i), [i32(4, n)], grad=False)
        record(f"bincount_min/{n}", lambda i: tf.bincount(i, minlength=6), [i32(4, n)], grad=False)
        record(f"bincount_max/{n}", lambda i: tf.bincount(i, maxlength=2), [i32(4, n)], grad=False)
        record(f"bincount_w/{n}", lambda i, w: tf.bincount(i, weights=w), [i32(4, n), f32(n)], grad=False)
        record(f"setdiff/{n}", lambda i: tf.setdiff1d(i, tf.constant([1], tf.int32)), [i32(3, n)], grad=False)
        record(f"xdivy/{n}", lambda a, b: tf.math.xdivy(a * tf.cast(a > 0, tf.float32), b), [f32(n, 3), f32(n, 3)])
        record(f"xlogy/{n}", lambda a, b: tf.math.xlogy(a * tf.cast(a > 0, tf.float32), tf.abs(b)), [f32(n, 3), f32(n, 3)])
        record(f"xlogy_b/{n}", lambda a, b: tf.math.xlogy(a, tf.abs(b)), [f32(n, 3), f32(3)])
        record(f"std/{n}", lambda a: tf.math.reduce_std(a, 0), [f32(n, 3)])
        record(f"var/{n}", lambda a: tf.math.reduce_variance(a, 1, keepdims=True), [f32(n, 3)])
        record(f"seg_sum_sorted/{n}", lambda d: tf.segment_sum(d, tf.constant(sorted(R.randint(0, 3, n).tolist()), tf.int32)), [f32(n, 2)])
        record(f"seg_max_sorted/{n}", lambda d: tf.segment_max(d, tf.constant(sorted(R.randint(0, 3, n).tolist()), tf.int32)), [f32(n, 2)])
        record(f"seg_mean_sorted/{n}", lambda d: tf.segment_mean(d, tf.constant(sorted(R.randint(0, 3, n).tolist()), tf.int32)), [f32(n, 2)])
        record(f"useg_min/{n}", lambda d, i: tf.unsorted_segment_min(d, i, 3), [f32(n, 2), i32(3, n)])
        record(f"conv2d/{n}", lambda x, w: tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"), [f32(n, 5, 5, 2), f32(3, 3, 2, 3)])
        record(f"depthwise/{n}", lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"), [f32(n, 4, 4, 2), f32(3, 3, 2, 2)])
    for shape, p in [((2, 3), [[1, 1], [2, 2]]), ((3,), [[2, 0]]), ((2, 3, 4), [[0, 1], [1, 0], [3, 3]]), ((0, 3), [[0, 0], [1, 2]]), ((1, 1), [[0, 0], [0, 0]])]:
        for mode in ("REFLECT", "SYMMETRIC"):
            record(f"pad/{mode}/{shape}/{p}", lambda a: tf.pad(a, p, mode), [f32(*shape)])
    record("pad_bad_reflect", lambda a: tf.pad(a, [[0, 0], [3, 0]], "REFLECT"), [f32(2, 3)])
    record("pad_ok_symm", lambda a: tf.pad(a, [[0, 0], [3, 0]], "SYMMETRIC"), [f32(2, 3)])
    record("pad_bad_symm", lambda a: tf.pad(a, [[0, 0], [4, 0]], "SYMMETRIC"), [f32(2, 3)])
    record("solve_singular", lambda a, b: tf.matrix_solve(a * 0, b), [f32(3, 3), f32(3, 1)], grad=False)
    # training: the TF1 optimizers (5 steps: dense, sparse with a repeated row, a decayed
    # rate, clipped gradients) and tf.losses with every reduction
    def rec(key, f):
        try:
            out = f()
            out = [np.asarray(o) for o in out]
            results["train/" + key] = {"ok": [o.tolist() for o in out], "shape": [list(o.shape) for o in out], "dtype": [str(o.dtype) for o in out]}
        except Exception as e:
            results["train/" + key] = {"err": type(e).__name__ + ": " + str(e).splitlines()[0][:200]}
    R4 = np.random.RandomState(0)
    W0 = R4.uniform(-1, 1, (5, 3)).astype(np.float32)
    X = R4.uniform(-1, 1, (8, 5)).astype(np.float32)
    IDS = np.int32([0, 2, 2, 4])
    OPTS = {
      "sgd": lambda: tf.train.GradientDescentOptimizer(0.1),
      "momentum": lambda: tf.train.MomentumOptimizer(0.1, 0.9),
      "nesterov": lambda: tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
      "adagrad": lambda: tf.train.AdagradOptimizer(0.1),
      "adadelta": lambda: tf.train.AdadeltaOptimizer(1.0),
      "adam": lambda: tf.train.AdamOptimizer(0.01),
      "rmsprop": lambda: tf.train.RMSPropOptimizer(0.01),
      "rmsprop_c": lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.5, centered=True),
      "ftrl": lambda: tf.train.FtrlOptimizer(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01),
      "padagrad": lambda: tf.train.ProximalAdagradOptimizer(0.1, l1_regularization_strength=0.01),
      "pgd": lambda: tf.train.ProximalGradientDescentOptimizer(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01),
      "adagradda": lambda: tf.train.AdagradDAOptimizer(0.1, tf.train.get_or_create_global_step()),
    }
    for name, mk in OPTS.items():
        for mode in ("dense", "sparse", "decay", "clip"):
            def run(name=name, mk=mk, mode=mode):
                with tf.Graph().as_default():
                    w = tf.Variable(W0, name="w")
                    gs = tf.train.get_or_create_global_step()
                    if mode == "sparse":
                        loss = tf.reduce_sum(tf.square(tf.nn.embedding_lookup(w, IDS) - 0.3))
                    else:
                        loss = tf.reduce_sum(tf.square(tf.matmul(X, w) - 0.5))
                    if mode == "decay":
                        lr = tf.train.exponential_decay(0.1, gs, 2, 0.5, staircase=True)
                        opt = type(mk())(lr) if name in ("sgd", "adagrad", "adam", "rmsprop") else mk()
                    else:
                        opt = mk()
                    if mode == "clip":
                        gv = opt.compute_gradients(loss)
                        g, v = zip(*gv)
                        g, _ = tf.clip_by_global_norm(g, 1.0)
                        train = opt.apply_gradients(list(zip(g, v)), global_step=gs)
                    else:
                        train = opt.minimize(loss, global_step=gs)
                    with tf.Session() as s:
                        s.run(tf.global_variables_initializer())
                        for _ in range(5):
                            s.run(train)
                        return [s.run(w), s.run(gs)]
            rec(f"opt/{name}/{mode}", run)
    # losses with weights and reductions
    L = R4.uniform(-2, 2, (6, 4)).astype(np.float32)
    Y = (R4.uniform(0, 1, (6, 4)) > 0.5).astype(np.float32)
    YI = R4.randint(0, 4, 6).astype(np.int32)
    WT = np.float32([1, 0, 2, 1, 0, 1]).reshape(6, 1)
    for red in ["SUM", "MEAN", "SUM_OVER_BATCH_SIZE", "SUM_BY_NONZERO_WEIGHTS", "NONE", "SUM_OVER_NONZERO_WEIGHTS"]:
        for lname in ["mean_squared_error", "absolute_difference", "huber_loss", "log_loss", "hinge_loss", "sigmoid_cross_entropy", "softmax_cross_entropy", "sparse_softmax_cross_entropy", "cosine_distance", "mean_pairwise_squared_error"]:
            def run(red=red, lname=lname):
                with tf.Graph().as_default():
                    r = getattr(tf.losses.Reduction, red)
                    logits, labels = tf.constant(L), tf.constant(Y)
                    f = getattr(tf.losses, lname)
                    if lname == "sparse_softmax_cross_entropy":
                        out = f(tf.constant(YI), logits, weights=tf.constant(WT[:, 0]), reduction=r)
                    elif lname in ("sigmoid_cross_entropy", "softmax_cross_entropy"):
                        out = f(labels, logits, weights=tf.constant(WT) if lname == "sigmoid_cross_entropy" else tf.constant(WT[:, 0]), label_smoothing=0.1, reduction=r)
                    elif lname == "log_loss":
                        out = f(labels, tf.sigmoid(logits), weights=tf.constant(WT), reduction=r)
                    elif lname == "cosine_distance":
                        out = f(tf.nn.l2_normalize(labels, 1), tf.nn.l2_normalize(logits, 1), axis=1, weights=tf.constant(WT), reduction=r)
                    elif lname == "mean_pairwise_squared_error":
                        out = f(labels, logits, weights=tf.constant(WT[:, 0]))
                    else:
                        out = f(labels, logits, weights=tf.constant(WT), reduction=r)
                    g = tf.gradients(tf.reduce_sum(out), [logits])[0]
                    with tf.Session() as s:
                        return s.run([out, g])
            rec(f"loss/{lname}/{red}", run)


def compare(ours: dict, theirs: dict) -> list[tuple[str, str]]:
    bad = []
    for k in sorted(theirs):
        x, y = ours.get(k, {"err": "missing"}), theirs[k]
        if "err" in y and "err" in x:
            continue
        if "err" in y or "err" in x:
            bad.append((k, f"TF: {y.get('err', 'ok')[:90]} / actorflow: {x.get('err', 'ok')[:90]}"))
            continue
        if len(x["ok"]) != len(y["ok"]):
            bad.append((k, f"{len(x['ok'])} outputs vs TF's {len(y['ok'])}"))
            continue
        for i, (p, q) in enumerate(zip(x["ok"], y["ok"], strict=True)):
            if x["shape"][i] != y["shape"][i] or x["dtype"][i] != y["dtype"][i]:
                bad.append((k, f"output {i}: {x['dtype'][i]}{x['shape'][i]} vs TF's "
                               f"{y['dtype'][i]}{y['shape'][i]}"))
                continue
            p, q = np.array(p, dtype=float), np.array(q, dtype=float)
            if not np.allclose(p, q, rtol=2e-4, atol=2e-5, equal_nan=True):
                bad.append((k, f"output {i}: values differ by up to "
                               f"{np.nanmax(np.abs(p - q)):.3g}"))
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", choices=["af", "tf"])
    ap.add_argument("--out")
    ap.add_argument("--tf-python", default=str(ROOT / ".tfenv/bin/python"))
    args = ap.parse_args(argv)
    if args.side:
        if args.side == "af":
            sys.path.insert(0, str(ROOT))
            import actorflow as tf
        else:
            import tensorflow.compat.v1 as tf
            tf.disable_v2_behavior()
        results: dict = {}
        cases(tf, results)
        Path(args.out).write_text(json.dumps(results))
        return 0
    if not Path(args.tf_python).exists():
        print(f"no TensorFlow side environment at {args.tf_python}: run "
              f"benchmarks/setup_tf_env.sh first", file=sys.stderr)
        return 2
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        ours, theirs = Path(d) / "af.json", Path(d) / "tf.json"
        procs = [subprocess.Popen([py, __file__, "--side", side, "--out", str(out)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for py, side, out in ((sys.executable, "af", ours),
                                       (args.tf_python, "tf", theirs))]
        if any(p.wait() for p in procs):
            print("a side failed to run its cases", file=sys.stderr)
            return 1
        a, t = json.loads(ours.read_text()), json.loads(theirs.read_text())
    bad = compare(a, t)
    for k, why in bad:
        print(f"{k}: {why}")
    print(f"{len(t)} cases, {len(t) - len(bad)} agree, {len(bad)} differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
