"""Differential audit of ops against TensorFlow 2.21: the same TF1 program, on generated
shapes (0-d, empty, one element, broadcast pairs, batches of 0), run on actorflow and on
TensorFlow, forward values and the gradients of a weighted sum, compared (rtol 2e-4,
atol 2e-5; shapes and dtypes exactly); errors on both sides count as agreement.

    python benchmarks/audit_ops.py            # both sides (TF from the repository's .tfenv)

It runs itself once per side (``--side af|tf --out FILE``) and prints every case where the
two differ: values, shape, dtype, or one side failing. Not a timed benchmark: a check that
needs TensorFlow (and tf-keras, for tf.layers and rnn_cell; benchmarks/setup_tf_env.sh
installs both), kept beside the benchmarks that use the same side environment. Session 8:
about 1,480 cases; the differences it found were fixed (RESULTS.md, "Session 8: op audit").
Session 9 added `benchmarks/audit_more.py` (strings, sparse tensors, tf.metrics, scatters,
more array/nn/image ops, casts, initializers, random ops: ~290 cases), run with these.
"""

# The cases are one flat table: each lambda (and each `build`, F811) is called at once, inside
# its loop (B023), and a case per line reads better than wrapped ones (E501, E70x).
# ruff: noqa: B023, E501, E731, B905, F811, E701, E702

from __future__ import annotations

import argparse
import json
import os
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
            results[key] = {"ok": [o.tolist() for o in out], "shape": [list(o.shape) for o in out], "dtype": [str(o.dtype) for o in out]}
        except Exception as e:
            results[key] = {"err": type(e).__name__ + ": " + str(e).splitlines()[0][:200]}
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
    # models: RNN cells and dynamic/static/bidirectional RNNs, control flow, layers, images
    # (variables set by sorted name; TF's side needs tf-keras for tf.layers and rnn_cell)
    R5 = np.random.RandomState(0)
    def run_model(build, feeds=()):
        """build() -> (outputs list, input tensors to differentiate). Variables set deterministically by sorted name."""
        with tf.Graph().as_default():
            outs, xs = build()
            vs = sorted(tf.trainable_variables(), key=lambda v: v.name)
            ys = [o for o in outs if o.dtype == tf.float32]
            tot = tf.add_n([tf.reduce_sum(tf.square(o)) * (k + 1) for k, o in enumerate(ys)])
            gs = tf.gradients(tot, xs + vs)
            gs = [g if g is not None else tf.zeros_like(t) for g, t in zip(gs, xs + vs)]
            gs = [tf.convert_to_tensor(g) for g in gs]
            upd = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
            with tf.Session() as s:
                s.run(tf.global_variables_initializer())
                for k, v in enumerate(vs):
                    shape = v.get_shape().as_list()
                    v.load(np.random.RandomState(k).uniform(-0.5, 0.5, shape).astype(np.float32), s)
                res = s.run(outs + gs)
                if upd:
                    s.run(upd)
                    res += s.run(sorted(tf.global_variables(), key=lambda v: v.name))
            names = np.array([v.name for v in vs] or [""]).astype(str)
            return res + [names]
    X = R5.uniform(-1, 1, (3, 5, 4)).astype(np.float32)
    IMG = R5.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    LENS = np.int32([5, 0, 3])
    def cells():
        return {
            "basic_rnn": lambda: tf.nn.rnn_cell.BasicRNNCell(6),
            "basic_lstm": lambda: tf.nn.rnn_cell.BasicLSTMCell(6, forget_bias=1.0),
            "lstm_peep_proj": lambda: tf.nn.rnn_cell.LSTMCell(6, use_peepholes=True, num_proj=3, cell_clip=2.0),
            "gru": lambda: tf.nn.rnn_cell.GRUCell(6),
            "multi": lambda: tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.BasicLSTMCell(5), tf.nn.rnn_cell.GRUCell(4)]),
            "dropout_keep1": lambda: tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.GRUCell(4), output_keep_prob=1.0),
            "residual": lambda: tf.nn.rnn_cell.ResidualWrapper(tf.nn.rnn_cell.GRUCell(4)),
        }
    for name, mk in cells().items():
        for lens in (None, LENS):
            def build(mk=mk, lens=lens, name=name):
                x = tf.constant(X[:, :, :4] if name != "residual" else X[:, :, :4])
                o, st = tf.nn.dynamic_rnn(mk(), x, sequence_length=None if lens is None else tf.constant(lens), dtype=tf.float32)
                flat = tf.nest.flatten(st) if hasattr(tf, "nest") else [st]
                return [o] + list(flat), [x]
            rec(f"rnn/{name}/{'lens' if lens is not None else 'full'}", lambda: run_model(build))
    def build_bi():
        x = tf.constant(X)
        (of, ob), (sf, sb) = tf.nn.bidirectional_dynamic_rnn(tf.nn.rnn_cell.GRUCell(3), tf.nn.rnn_cell.GRUCell(3), x, sequence_length=tf.constant(LENS), dtype=tf.float32)
        return [of, ob, sf, sb], [x]
    rec("rnn/bidirectional", lambda: run_model(build_bi))
    def build_static():
        x = tf.constant(X)
        o, st = tf.nn.static_rnn(tf.nn.rnn_cell.BasicLSTMCell(3), tf.unstack(x, axis=1), dtype=tf.float32)
        return list(o) + [st.c, st.h], [x]
    rec("rnn/static", lambda: run_model(build_static))
    def build_static_bi():
        x = tf.constant(X)
        o, sf, sb = tf.nn.static_bidirectional_rnn(tf.nn.rnn_cell.BasicLSTMCell(3), tf.nn.rnn_cell.GRUCell(2), tf.unstack(x, axis=1), dtype=tf.float32, sequence_length=tf.constant(LENS))
        return list(o) + [sf.c, sf.h, sb], [x]
    rec("rnn/static_bidirectional", lambda: run_model(build_static_bi))
    def build_time_major():
        x = tf.constant(X)
        o, st = tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(3), tf.transpose(x, [1, 0, 2]), time_major=True, dtype=tf.float32)
        return [o, st], [x]
    rec("rnn/time_major", lambda: run_model(build_time_major))
    # control flow
    def cf_cond():
        x = tf.constant(X[0]); p = tf.constant(True)
        y = tf.cond(p, lambda: tf.square(x) * 2.0, lambda: x + 1.0)
        z = tf.cond(tf.reduce_sum(x) > 100.0, lambda: tf.sin(x), lambda: tf.cos(x) * x)
        return [y, z], [x]
    rec("cf/cond", lambda: run_model(cf_cond))
    def cf_while():
        x = tf.constant(X[0])
        i0 = tf.constant(0)
        _, y = tf.while_loop(lambda i, h: i < 4, lambda i, h: (i + 1, tf.tanh(h * 1.5 + x)), [i0, x])
        return [y], [x]
    rec("cf/while", lambda: run_model(cf_while))
    def cf_while_zero():
        x = tf.constant(X[0])
        _, y = tf.while_loop(lambda i, h: i < 0, lambda i, h: (i + 1, h * 2.0), [tf.constant(0), x])
        return [y], [x]
    rec("cf/while_zero_iters", lambda: run_model(cf_while_zero))
    def cf_nested():
        x = tf.constant(X[0, 0])
        def outer(i, h):
            _, h2 = tf.while_loop(lambda j, g: j < 2, lambda j, g: (j + 1, g * tf.sigmoid(g + tf.cast(i, tf.float32))), [0, h])
            return i + 1, h2
        _, y = tf.while_loop(lambda i, h: i < 3, outer, [0, x])
        return [y], [x]
    rec("cf/nested_while", lambda: run_model(cf_nested))
    def cf_ta():
        x = tf.constant(X)
        ta = tf.TensorArray(tf.float32, size=5).unstack(tf.transpose(x, [1, 0, 2]))
        def body(t, acc, out):
            v = ta.read(t) * acc
            return t + 1, acc + v, out.write(t, tf.reduce_sum(v, 1))
        _, acc, out = tf.while_loop(lambda t, *_: t < 5, body, [0, tf.ones([3, 4]), tf.TensorArray(tf.float32, size=5)])
        return [acc, out.stack()], [x]
    rec("cf/tensor_array", lambda: run_model(cf_ta))
    def cf_map():
        x = tf.constant(X)
        return [tf.map_fn(lambda r: tf.reduce_sum(tf.square(r), 0), x), tf.foldl(lambda a, r: a + r * 2.0, x), tf.scan(lambda a, r: a * 0.5 + r, x)], [x]
    rec("cf/map_fold_scan", lambda: run_model(cf_map))
    def cf_case():
        x = tf.constant(X[0])
        y = tf.case([(tf.reduce_sum(x) > 100.0, lambda: x * 2.0), (tf.reduce_sum(x) < 100.0, lambda: x * 3.0)], default=lambda: x)
        return [y], [x]
    rec("cf/case", lambda: run_model(cf_case))
    # layers (with tf_keras on TF's side)
    for lname in ["dense", "conv2d", "batchnorm_train", "batchnorm_infer", "max_pool", "flatten", "conv2d_transpose", "separable", "conv1d", "avg_pool1d", "conv3d"]:
        def build(lname=lname):
            x = tf.constant(IMG)
            if lname == "dense":
                y = tf.layers.dense(tf.reshape(x, [2, -1]), 4, activation=tf.nn.relu)
            elif lname == "conv2d":
                y = tf.layers.conv2d(x, 4, 3, strides=2, padding="same", activation=tf.nn.elu)
            elif lname == "batchnorm_train":
                y = tf.layers.batch_normalization(x, training=True, momentum=0.9)
            elif lname == "batchnorm_infer":
                y = tf.layers.batch_normalization(x, training=False)
            elif lname == "max_pool":
                y = tf.layers.max_pooling2d(x, 2, 2, padding="same")
            elif lname == "flatten":
                y = tf.layers.flatten(x)
            elif lname == "conv2d_transpose":
                y = tf.layers.conv2d_transpose(x, 2, 3, strides=2, padding="same")
            elif lname == "separable":
                y = tf.layers.separable_conv2d(x, 4, 3, depth_multiplier=2)
            elif lname == "conv1d":
                y = tf.layers.conv1d(tf.reshape(x, [2, 12, 9]), 4, 3, dilation_rate=2)
            elif lname == "avg_pool1d":
                y = tf.layers.average_pooling1d(tf.reshape(x, [2, 12, 9]), 3, 2)
            elif lname == "conv3d":
                y = tf.layers.conv3d(tf.reshape(x, [2, 3, 4, 6, 3]), 2, 2, padding="same")
            return [y], [x]
        rec(f"layer/{lname}", lambda: run_model(build))
    # image
    for meth in ["resize_bilinear", "resize_nearest_neighbor", "resize_bicubic", "resize_area"]:
        for ac in (False, True):
            def build(meth=meth, ac=ac):
                x = tf.constant(IMG)
                return [getattr(tf.image, meth)(x, [4, 9], align_corners=ac)], [x]
            rec(f"image/{meth}/{ac}", lambda: run_model(build))
    def build_crop():
        x = tf.constant(IMG)
        return [tf.image.crop_and_resize(x, tf.constant([[0.1, 0.2, 0.8, 0.9], [0.0, 0.0, 1.0, 1.0]]), tf.constant([1, 0]), [3, 4])], [x]
    rec("image/crop_and_resize", lambda: run_model(build_crop))
    for meth in ("bilinear", "nearest"):
        def build_crop_boxes(meth=meth):
            x = tf.constant(IMG)
            bx = tf.constant(np.float32([[0.1, 0.2, 0.8, 0.9], [-0.2, 0.05, 1.1, 0.7], [0.3, 0.3, 0.3, 0.6]]))
            return [tf.image.crop_and_resize(x, bx, tf.constant([1, 0, 1]), [3, 1], method=meth, extrapolation_value=0.5)], [x, bx]
        rec(f"image/crop_and_resize_boxes/{meth}", lambda: run_model(build_crop_boxes))
    # every resize against TF's, values only
    IMG6 = np.random.RandomState(0).uniform(-1, 1, (2, 7, 5, 3)).astype(np.float32)
    for size in ([3, 2], [4, 9], [14, 10], [1, 1], [7, 5]):
        for ac in (False, True):
            for op, kw in (("resize_area", {}), ("resize_bicubic", {}), ("resize_bicubic", {"half_pixel_centers": True}), ("resize_bilinear", {}), ("resize_nearest_neighbor", {})):
                if ac and kw: continue
                key = f"{op}/{size}/{ac}/{kw}"
                try:
                    with tf.Graph().as_default():
                        y = getattr(tf.image, op)(tf.constant(IMG6), size, align_corners=ac, **kw)
                        with tf.Session() as s: out = [s.run(y)]
                    results["resize/" + key] = {"ok": [o.tolist() for o in out], "shape": [list(o.shape) for o in out], "dtype": [str(o.dtype) for o in out]}
                except Exception as e:
                    results["resize/" + key] = {"err": type(e).__name__ + ": " + str(e).splitlines()[0][:200]}


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
            if x["dtype"][i].startswith("<U") or y["dtype"][i].startswith("<U"):  # names
                if p != q:
                    bad.append((k, f"output {i}: names {p} vs TF's {q}"))
                continue
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
            os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.layers and rnn_cell need tf-keras
            import tensorflow.compat.v1 as tf
            tf.disable_v2_behavior()
        results: dict = {}
        cases(tf, results)
        import audit_more  # beside this file (the script's directory is on sys.path)
        audit_more.cases(tf, results)
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
