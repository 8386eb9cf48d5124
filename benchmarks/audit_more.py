"""The op audit's second table (`benchmarks/audit_ops.py` runs it with the first): the TF1 API
that programs reach for beyond element-wise math -- strings, sparse tensors, tf.metrics,
variable scatters, more array, nn and image ops, casts, initializers and random ops.

Every case builds one TF1 graph on a side (`tf` is actorflow or TensorFlow's compat.v1),
runs it in a fresh session (local variables initialized, `updates` run over three batches
where a metric needs them) and records the outputs, normalized to plain lists: strings as
text, a SparseTensorValue as its indices, values and dense shape. Where values are random,
the case records what both sides must agree on (shapes, dtypes, bounds, moments rounded
coarsely, permutations sorted), never the draws themselves.
"""

# One flat table, as audit_ops.py's: each lambda is called at once inside its loop (B023).
# ruff: noqa: B023, E501, E731, E701, E702

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np


def _norm(o: Any) -> list[Any]:
    """One fetched value as JSON-able outputs (a sparse value is three)."""
    if hasattr(o, "indices") and hasattr(o, "dense_shape"):
        return [*_norm(o.indices), *_norm(o.values), *_norm(o.dense_shape)]
    a = np.asarray(o)
    if a.dtype == object or a.dtype.kind == "S":
        text = np.vectorize(lambda b: b.decode("latin-1") if isinstance(b, bytes) else str(b),
                            otypes=[object])(a) if a.size else a.astype(object)
        return [{"text": text.tolist(), "shape": list(a.shape)}]
    return [a]


def _store(results: dict, key: str, f: Callable[[], list[Any]]) -> None:
    try:
        outs = [n for o in f() for n in _norm(o)]
        results[key] = {
            "ok": [o["text"] if isinstance(o, dict) else o.tolist() for o in outs],
            "shape": [o["shape"] if isinstance(o, dict) else list(o.shape) for o in outs],
            "dtype": ["<U" if isinstance(o, dict) else str(o.dtype) for o in outs]}
    except Exception as e:  # noqa: BLE001 - a failure is a result to compare
        results[key] = {"err": type(e).__name__ + ": " + (str(e).splitlines() or [""])[0][:200]}


def cases(tf: Any, results: dict) -> None:  # noqa: C901, PLR0915 - one flat table
    R = np.random.RandomState(1)
    def f32(*s): return R.uniform(-2, 2, s).astype(np.float32)

    def case(key: str, build: Callable[[], Any], post: Callable[[list], list] | None = None,
             updates: int = 0, grad: bool = False) -> None:
        """build() -> fetches (a list), or (fetches, update ops[, feed_dict]). With `grad`, the gradient of
        the float outputs' weighted sum with respect to every float32 constant made by `c`."""
        def go() -> list[Any]:
            R.seed(zlib.crc32(key.encode()))  # each case draws its own inputs, whatever failed before
            with tf.Graph().as_default():
                consts.clear()
                b = build()
                outs, upd, feed = (b + (None,) * (3 - len(b))) if isinstance(b, tuple) else (b, None, None)
                outs = list(outs)
                if grad:
                    fl = [o for o in outs if getattr(o, "dtype", None) == tf.float32]
                    tot = tf.add_n([tf.reduce_sum(o * (k + 1.0)) for k, o in enumerate(fl)])
                    gs = tf.gradients(tot, consts)
                    outs += [g if g is not None else tf.zeros_like(x) for g, x in zip(gs, consts, strict=True)]
                with tf.Session() as s:
                    s.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
                    for _ in range(updates):
                        s.run(upd)
                    got = s.run(outs, feed)
            return post(got) if post else got
        _store(results, key, go)

    consts: list[Any] = []
    def c(x: Any) -> Any:
        t = tf.constant(x)
        if t.dtype == tf.float32:
            consts.append(t)
        return t

    # ---- strings ------------------------------------------------------------------------
    S = np.array([b"a b c", b"", b"d  e", b"hello world"], dtype=object)
    case("str/split", lambda: [tf.string_split(tf.constant(S))])
    case("str/split_comma", lambda: [tf.string_split(tf.constant([b"1,2,,3", b","]), delimiter=",")])
    case("str/split_keep_empty", lambda: [tf.string_split(tf.constant([b"1,2,,3"]), delimiter=",", skip_empty=False)])
    case("str/join", lambda: [tf.string_join([tf.constant(S), tf.constant(b"!")], separator="-")])
    case("str/reduce_join", lambda: [tf.reduce_join(tf.constant([[b"a", b"b"], [b"c", b"d"]]), 0)])
    case("str/reduce_join_sep", lambda: [tf.reduce_join(tf.constant([[b"a", b"b"], [b"c", b"d"]]), 1, separator=",")])
    case("str/reduce_join_all", lambda: [tf.reduce_join(tf.constant([[b"a", b"b"], [b"c", b"d"]]))])
    case("str/as_string_int", lambda: [tf.as_string(tf.constant([1, -20, 300]))])
    case("str/as_string_float", lambda: [tf.as_string(tf.constant([1.5, -0.25, 3e10], tf.float32))])
    case("str/as_string_prec", lambda: [tf.as_string(tf.constant([1.5, -0.25], tf.float32), precision=3)])
    case("str/as_string_width", lambda: [tf.as_string(tf.constant([7, 42]), width=4, fill="0")])
    case("str/as_string_bool", lambda: [tf.as_string(tf.constant([True, False]))])
    case("str/to_number", lambda: [tf.string_to_number(tf.constant([b"1.5", b"-2", b"1e3"]))])
    case("str/to_number_int", lambda: [tf.string_to_number(tf.constant([b"12", b"-7"]), out_type=tf.int32)])
    case("str/to_number_bad", lambda: [tf.string_to_number(tf.constant([b"abc"]))])
    case("str/substr", lambda: [tf.substr(tf.constant([b"hello", b"ab"]), 1, 3)])
    case("str/length", lambda: [tf.strings.length(tf.constant(S))])
    case("str/regex_replace", lambda: [tf.regex_replace(tf.constant([b"a1b22c333"]), "[0-9]+", "#")])
    case("str/regex_replace_first", lambda: [tf.regex_replace(tf.constant([b"a1b22c333"]), "[0-9]+", "#", replace_global=False)])
    case("str/regex_full_match", lambda: [tf.strings.regex_full_match(tf.constant([b"abc", b"ab1"]), "[a-z]+")])
    case("str/hash_fast", lambda: [tf.string_to_hash_bucket_fast(tf.constant(S), 1000)])
    case("str/hash", lambda: [tf.string_to_hash_bucket(tf.constant(S), 1000)])
    case("str/hash_strong", lambda: [tf.string_to_hash_bucket_strong(tf.constant(S), 1000, key=[1, 2])])
    case("str/strip", lambda: [tf.strings.strip(tf.constant([b"  a b  ", b"\tc\n"]))])
    case("str/upper", lambda: [tf.strings.upper(tf.constant([b"aBc"]))])
    case("str/lower", lambda: [tf.strings.lower(tf.constant([b"aBc"]))])
    case("str/decode_raw", lambda: [tf.decode_raw(tf.constant([b"\x01\x02\x03\x04"]), tf.int16)])
    case("str/decode_raw_u8", lambda: [tf.decode_raw(tf.constant(b"abc"), tf.uint8)])
    case("str/base64", lambda: [tf.encode_base64(tf.constant([b"hello?>", b""])), tf.decode_base64(tf.encode_base64(tf.constant([b"hi there"])))])
    case("str/base64_pad", lambda: [tf.encode_base64(tf.constant([b"ab"]), pad=True)])
    case("str/format", lambda: [tf.strings.format("x={} y={}", (tf.constant(3), tf.constant([1.5, 2.0])))])

    # ---- sparse tensors -----------------------------------------------------------------
    IDX = [[0, 1], [1, 0], [2, 3]]
    def st(vals=None):
        return tf.SparseTensor(indices=IDX, values=c(np.float32([1.0, -2.0, 3.0]) if vals is None else vals), dense_shape=[3, 4])
    D = f32(4, 2)
    case("sp/to_dense", lambda: [tf.sparse_tensor_to_dense(st())], grad=True)
    case("sp/reorder", lambda: [tf.sparse_reorder(tf.SparseTensor([[2, 0], [0, 1], [1, 3]], [1.0, 2.0, 3.0], [3, 4]))])
    case("sp/reduce_sum", lambda: [tf.sparse_reduce_sum(st(), axis=1)], grad=True)
    case("sp/reduce_sum_keep", lambda: [tf.sparse_reduce_sum(st(), axis=0, keepdims=True)])
    case("sp/reduce_sum_all", lambda: [tf.sparse_reduce_sum(st())])
    case("sp/reduce_max", lambda: [tf.sparse_reduce_max(st(), axis=1)])
    case("sp/reduce_sum_sparse", lambda: [tf.sparse_reduce_sum_sparse(st(), axis=1)])
    case("sp/dense_matmul", lambda: [tf.sparse_tensor_dense_matmul(st(), c(D))], grad=True)
    case("sp/dense_matmul_adj", lambda: [tf.sparse_tensor_dense_matmul(st(), c(f32(3, 2)), adjoint_a=True)], grad=True)
    case("sp/add_sparse", lambda: [tf.sparse_add(st(), tf.SparseTensor([[0, 1], [2, 2]], [10.0, 20.0], [3, 4]))])
    case("sp/add_dense", lambda: [tf.sparse_add(c(f32(3, 4)), st())], grad=True)
    case("sp/concat", lambda: [tf.sparse_concat(1, [st(), st()])])
    case("sp/concat0", lambda: [tf.sparse_concat(0, [st(), st()])])
    case("sp/reshape", lambda: [tf.sparse_reshape(st(), [4, 3])])
    case("sp/reshape_infer", lambda: [tf.sparse_reshape(st(), [2, -1])])
    case("sp/slice", lambda: [tf.sparse_slice(st(), [1, 0], [2, 4])])
    case("sp/retain", lambda: [tf.sparse_retain(st(), tf.constant([True, False, True]))])
    case("sp/fill_empty", lambda: list(tf.sparse_fill_empty_rows(tf.SparseTensor([[0, 1], [2, 3]], [1.0, 2.0], [4, 4]), -1.0)))
    case("sp/to_dense_op", lambda: [tf.sparse_to_dense([[0, 0], [1, 2]], [2, 3], [5.0, 6.0], default_value=-1.0)])
    case("sp/to_dense_1d", lambda: [tf.sparse_to_dense([1, 3], [5], 7)])
    case("sp/to_indicator", lambda: [tf.sparse_to_indicator(tf.SparseTensor([[0, 0], [0, 1], [1, 0]], tf.constant([1, 3, 2], tf.int64), [2, 2]), 4)])
    case("sp/softmax", lambda: [tf.sparse_softmax(st())])
    case("sp/maximum", lambda: [tf.sparse_maximum(st(), tf.SparseTensor([[0, 1], [2, 2]], [10.0, 20.0], [3, 4]))])
    case("sp/transpose", lambda: [tf.sparse_transpose(st())])
    case("sp/split", lambda: list(tf.sparse_split(sp_input=st(), num_split=2, axis=1)))
    case("sp/expand_dims", lambda: [tf.sparse.expand_dims(st(), 0)])
    case("sp/dense_to_sparse_where", lambda: [tf.where(tf.not_equal(c(np.float32([[0, 1], [2, 0]])), 0))])
    case("sp/from_dense", lambda: [tf.sparse.from_dense(tf.constant([[0, 1], [2, 0]]))])
    case("sp/eye", lambda: [tf.sparse.eye(3)])
    def sp_fed():
        p = tf.sparse_placeholder(tf.float32)
        return [tf.sparse_tensor_to_dense(p), tf.sparse_reduce_sum(p, 1)], None, {p: tf.SparseTensorValue(np.int64([[0, 0], [1, 2]]), np.float32([1.5, 2.5]), np.int64([2, 3]))}
    case("sp/placeholder", sp_fed)
    case("sp/add_dense_shape_mismatch", lambda: [tf.sparse_add(st(), tf.SparseTensor([[0, 0]], [1.0], [2, 2]))])
    P = f32(5, 3)
    for comb in ("sum", "mean", "sqrtn"):
        case(f"sp/embedding_sparse/{comb}", lambda: [tf.nn.embedding_lookup_sparse(c(P), tf.SparseTensor([[0, 0], [0, 1], [2, 0]], tf.constant([1, 4, 1], tf.int64), [3, 2]), None, combiner=comb)], grad=True)
        case(f"sp/embedding_sparse_w/{comb}", lambda: [tf.nn.embedding_lookup_sparse(c(P), tf.SparseTensor([[0, 0], [0, 1], [2, 0]], tf.constant([1, 4, 1], tf.int64), [3, 2]), tf.SparseTensor([[0, 0], [0, 1], [2, 0]], [2.0, 0.5, 1.0], [3, 2]), combiner=comb)], grad=True)
    for name in ("sparse_segment_sum", "sparse_segment_mean", "sparse_segment_sqrt_n"):
        case(f"sp/{name}", lambda: [getattr(tf, name)(c(P), tf.constant([0, 2, 2, 4]), tf.constant([0, 0, 1, 3]))], grad=True)
        case(f"sp/{name}_empty", lambda: [getattr(tf, name)(c(P), tf.constant([], tf.int32), tf.constant([], tf.int32))])

    # ---- metrics (three batches of updates, then the value) ------------------------------
    LAB = np.int64([[1], [0], [1], [1], [0], [0]])
    PRED = np.float32([[0.9], [0.2], [0.4], [0.7], [0.6], [0.1]])
    def m(name, fn):
        case(f"metric/{name}", lambda: (lambda vu: ([vu[0]], vu[1]))(fn()), updates=3)
    m("accuracy", lambda: tf.metrics.accuracy(tf.constant(LAB), tf.constant(np.int64(PRED > 0.5))))
    m("accuracy_w", lambda: tf.metrics.accuracy(tf.constant(LAB), tf.constant(np.int64(PRED > 0.5)), weights=tf.constant(np.float32([[1], [0], [2], [1], [1], [0]]))))
    m("mean", lambda: tf.metrics.mean(tf.constant(PRED)))
    m("mean_w", lambda: tf.metrics.mean(tf.constant(PRED), weights=tf.constant(np.float32([[1], [0], [2], [1], [1], [0]]))))
    m("auc", lambda: tf.metrics.auc(tf.constant(LAB), tf.constant(PRED)))
    m("auc_pr", lambda: tf.metrics.auc(tf.constant(LAB), tf.constant(PRED), curve="PR"))
    m("auc_careful", lambda: tf.metrics.auc(tf.constant(LAB), tf.constant(PRED), summation_method="careful_interpolation"))
    m("precision", lambda: tf.metrics.precision(tf.constant(LAB), tf.constant(PRED > 0.5)))
    m("recall", lambda: tf.metrics.recall(tf.constant(LAB), tf.constant(PRED > 0.5)))
    m("tp", lambda: tf.metrics.true_positives(tf.constant(LAB), tf.constant(PRED > 0.5)))
    m("fn", lambda: tf.metrics.false_negatives(tf.constant(LAB), tf.constant(PRED > 0.5)))
    m("tn", lambda: tf.metrics.true_negatives(tf.constant(LAB), tf.constant(PRED > 0.5)))
    m("precision_at_thr", lambda: tf.metrics.precision_at_thresholds(tf.constant(LAB), tf.constant(PRED), [0.3, 0.5, 0.8]))
    m("recall_at_thr", lambda: tf.metrics.recall_at_thresholds(tf.constant(LAB), tf.constant(PRED), [0.3, 0.5, 0.8]))
    m("mae", lambda: tf.metrics.mean_absolute_error(tf.constant(np.float32(LAB)), tf.constant(PRED)))
    m("mse", lambda: tf.metrics.mean_squared_error(tf.constant(np.float32(LAB)), tf.constant(PRED)))
    m("rmse", lambda: tf.metrics.root_mean_squared_error(tf.constant(np.float32(LAB)), tf.constant(PRED)))
    m("mean_iou", lambda: tf.metrics.mean_iou(tf.constant([0, 1, 2, 2, 1]), tf.constant([0, 2, 2, 1, 1]), 3))
    m("mean_per_class_acc", lambda: tf.metrics.mean_per_class_accuracy(tf.constant([0, 1, 2, 2, 1]), tf.constant([0, 2, 2, 1, 1]), 3))
    m("percentage_below", lambda: tf.metrics.percentage_below(tf.constant(PRED), 0.5))
    m("mean_relative_error", lambda: tf.metrics.mean_relative_error(tf.constant(np.float32(LAB) + 1), tf.constant(PRED), tf.constant(np.float32(LAB) + 1)))
    m("mean_cosine", lambda: tf.metrics.mean_cosine_distance(tf.constant(np.float32([[1, 0], [0, 1]])), tf.constant(np.float32([[0.6, 0.8], [1, 0]])), dim=1))
    m("sens_at_spec", lambda: tf.metrics.sensitivity_at_specificity(tf.constant(LAB), tf.constant(PRED), 0.5))
    m("spec_at_sens", lambda: tf.metrics.specificity_at_sensitivity(tf.constant(LAB), tf.constant(PRED), 0.5))
    m("precision_at_k", lambda: tf.metrics.precision_at_k(tf.constant(np.int64([[1], [2]])), tf.constant(np.float32([[0.1, 0.9, 0.3], [0.8, 0.1, 0.5]])), 2))
    m("recall_at_k", lambda: tf.metrics.recall_at_k(tf.constant(np.int64([[1], [2]])), tf.constant(np.float32([[0.1, 0.9, 0.3], [0.8, 0.1, 0.5]])), 1))
    m("avg_precision_at_k", lambda: tf.metrics.average_precision_at_k(tf.constant(np.int64([[1, 2], [2, 0]])), tf.constant(np.float32([[0.1, 0.9, 0.3], [0.8, 0.1, 0.5]])), 2))
    case("metric/confusion", lambda: [tf.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 1, 1])])
    case("metric/confusion_w", lambda: [tf.confusion_matrix([0, 1, 2], [0, 2, 2], num_classes=4, weights=[1.0, 2.0, 0.5])])

    # ---- variable scatters --------------------------------------------------------------
    V0 = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    def sc(name, *a, **kw):
        def build():
            v = tf.Variable(V0)
            return [getattr(tf, name)(v, *a, **kw)]
        case(f"scatter/{name}", build)
    U = np.float32([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    for name in ("scatter_update", "scatter_add", "scatter_sub", "scatter_mul", "scatter_div", "scatter_min", "scatter_max"):
        sc(name, tf.constant([0, 2, 2]) if name != "scatter_update" else tf.constant([0, 2, 3]), U)
    sc("scatter_nd_update", tf.constant([[0], [3]]), U[:2])
    sc("scatter_nd_add", tf.constant([[1, 1], [1, 1]]), np.float32([10, 20]))
    sc("scatter_nd_sub", tf.constant([[0, 2]]), np.float32([5]))
    sc("scatter_add", tf.constant([5]), U[:1])  # out of range
    case("scatter/tensor_update", lambda: [tf.tensor_scatter_nd_update(c(V0), [[0], [2]], c(U[:2]))], grad=True)
    case("scatter/tensor_add", lambda: [tf.tensor_scatter_nd_add(c(V0), [[1, 1], [1, 1]], c(np.float32([1, 2])))], grad=True)
    case("scatter/assign_sub", lambda: (lambda v: [tf.assign_sub(v, tf.ones_like(v))])(tf.Variable(V0)))
    case("scatter/assign_noshape", lambda: (lambda v: [tf.assign(v, tf.zeros([2, 2]), validate_shape=False)])(tf.Variable(V0)))
    case("scatter/batch_update", lambda: (lambda v: [tf.batch_scatter_update(v, tf.constant([[1], [0], [2], [0]]), tf.constant(np.float32([[9], [8], [7], [6]])))])(tf.Variable(V0)))

    # ---- array ops ----------------------------------------------------------------------
    A = f32(2, 3, 4)
    case("arr/unstack", lambda: tf.unstack(c(A), axis=1), grad=True)
    case("arr/meshgrid", lambda: tf.meshgrid(c(np.float32([1, 2, 3])), c(np.float32([4, 5]))), grad=True)
    case("arr/meshgrid_ij", lambda: tf.meshgrid(tf.constant([1, 2, 3]), tf.constant([4, 5]), indexing="ij"))
    case("arr/linspace", lambda: [tf.linspace(0.0, 1.0, 5), tf.lin_space(-1.0, 1.0, 1)])
    case("arr/range", lambda: [tf.range(5, 0, -2), tf.range(0.0, 1.0, 0.3), tf.range(3, dtype=tf.float32), tf.range(4, 1)])
    case("arr/reverse_sequence", lambda: [tf.reverse_sequence(c(A), [3, 1], seq_axis=1, batch_axis=0)], grad=True)
    case("arr/space_to_depth", lambda: [tf.space_to_depth(c(f32(1, 4, 4, 2)), 2)], grad=True)
    case("arr/depth_to_space", lambda: [tf.depth_to_space(c(f32(1, 2, 2, 8)), 2)], grad=True)
    case("arr/space_to_batch_nd", lambda: [tf.space_to_batch_nd(c(f32(1, 4, 4, 1)), [2, 2], [[0, 0], [0, 0]])], grad=True)
    case("arr/batch_to_space_nd", lambda: [tf.batch_to_space_nd(c(f32(4, 2, 2, 1)), [2, 2], [[0, 0], [0, 1]])], grad=True)
    case("arr/space_to_batch_pad", lambda: [tf.space_to_batch(c(f32(1, 3, 3, 1)), [[1, 0], [1, 0]], 2)], grad=True)
    case("arr/extract_patches", lambda: [tf.extract_image_patches(c(f32(1, 5, 5, 2)), [1, 3, 3, 1], [1, 2, 2, 1], [1, 1, 1, 1], "SAME")], grad=True)
    case("arr/extract_patches_valid_rate", lambda: [tf.extract_image_patches(c(f32(1, 6, 6, 1)), [1, 2, 2, 1], [1, 1, 1, 1], [1, 2, 2, 1], "VALID")], grad=True)
    case("arr/roll", lambda: [tf.roll(c(A), [1, -1], [0, 2])], grad=True)
    case("arr/searchsorted", lambda: [tf.searchsorted(tf.constant([[1.0, 3.0, 5.0]]), tf.constant([[0.0, 3.0, 6.0]])), tf.searchsorted(tf.constant([[1.0, 3.0, 5.0]]), tf.constant([[3.0]]), side="right")])
    case("arr/histogram", lambda: [tf.histogram_fixed_width(tf.constant([-1.0, 0.0, 1.5, 2.0, 5.0, 15.0]), [0.0, 5.0], nbins=5)])
    case("arr/unravel_index", lambda: [tf.unravel_index(tf.constant([1, 5, 7]), tf.constant([2, 4]))])
    case("arr/broadcast_to", lambda: [tf.broadcast_to(c(f32(3, 1)), [2, 3, 4])], grad=True)
    case("arr/fill", lambda: [tf.fill([2, 3], 7.5), tf.fill([0], 1)])
    case("arr/eye_batch", lambda: [tf.eye(2, 3, batch_shape=[2])])
    case("arr/diag", lambda: [tf.diag(c(np.float32([1, 2, 3]))), tf.diag_part(c(f32(3, 3)))], grad=True)
    case("arr/set_diag", lambda: [tf.matrix_set_diag(c(f32(2, 3, 3)), c(f32(2, 3)))], grad=True)
    case("arr/sequence_mask", lambda: [tf.sequence_mask([1, 3, 0], 4), tf.sequence_mask(tf.constant([[1, 2]]), dtype=tf.float32)])
    case("arr/gather_batch_dims", lambda: [tf.gather(c(f32(2, 4, 3)), tf.constant([[0, 3], [1, 1]]), batch_dims=1, axis=1)], grad=True)
    case("arr/gather_nd_batch", lambda: [tf.gather_nd(c(f32(2, 4, 3)), tf.constant([[[0], [3]], [[1], [1]]]), batch_dims=1)], grad=True)
    case("arr/where1", lambda: [tf.where(tf.constant([[True, False], [False, True]]))])
    case("arr/shape_n", lambda: tf.shape_n([tf.zeros([2, 3]), tf.zeros([4])]) + [tf.rank(tf.zeros([2, 3])), tf.size(tf.zeros([2, 3]))])
    case("arr/one_hot_axis", lambda: [tf.one_hot([0, 2, -1], 3, on_value=5.0, off_value=-1.0, axis=0)])
    case("arr/one_hot_int", lambda: [tf.one_hot([[0, 1], [2, 3]], 3, dtype=tf.int32)])
    case("arr/pad_const", lambda: [tf.pad(c(f32(2, 2)), [[1, 1], [0, 2]], constant_values=3.0)], grad=True)
    case("arr/split_num", lambda: tf.split(c(f32(4, 6)), 3, axis=1), grad=True)
    case("arr/unique_counts", lambda: list(tf.unique_with_counts(tf.constant([3, 1, 3, 2, 1, 3]))))
    case("arr/clip_avg_norm", lambda: [tf.clip_by_average_norm(c(f32(2, 3)), 0.5)], grad=True)
    case("arr/clip_global", lambda: list(tf.clip_by_global_norm([c(f32(2, 3)), c(f32(4))], 1.0)[0]) + [tf.clip_by_global_norm([c(f32(2))], 1.0)[1]], grad=True)
    case("arr/global_norm", lambda: [tf.global_norm([c(f32(2, 3)), c(f32(4))])], grad=True)
    case("arr/norm_ord1", lambda: [tf.norm(c(f32(3, 4)), ord=1, axis=1), tf.norm(c(f32(3, 4)), ord=np.inf, axis=0)], grad=True)
    case("arr/norm_fro", lambda: [tf.norm(c(f32(3, 4)), ord="fro", axis=[0, 1])], grad=True)
    case("arr/matrix_transpose", lambda: [tf.matrix_transpose(c(f32(2, 3, 4)))], grad=True)
    case("arr/identity_n", lambda: tf.identity_n([c(f32(2)), c(f32(3))]), grad=True)
    case("arr/concat_neg", lambda: [tf.concat([c(f32(2, 1)), c(f32(2, 2))], -1)], grad=True)
    case("arr/slice_neg", lambda: [tf.slice(c(f32(4, 5)), [1, 2], [-1, 2])], grad=True)
    case("arr/strided_shrink", lambda: [c(f32(4, 5))[1, ::2], c(f32(3, 4, 5))[..., 1], c(f32(4, 5))[-1]], grad=True)
    case("arr/strided_mask", lambda: [tf.strided_slice(c(f32(4, 5)), [1, 0], [3, 5], [1, 2], begin_mask=1, end_mask=2)], grad=True)
    case("arr/tile_grad", lambda: [tf.tile(c(f32(2, 1, 3)), [1, 4, 2])], grad=True)
    case("arr/squeeze_axis", lambda: [tf.squeeze(c(f32(1, 2, 1, 3)), [2])], grad=True)
    case("arr/squeeze_bad", lambda: [tf.squeeze(c(f32(1, 2, 1, 3)), [1])])
    case("arr/reshape_bad", lambda: [tf.reshape(c(f32(2, 3)), [4, -1])])
    case("arr/gather_oob", lambda: [tf.gather(c(f32(3, 2)), tf.constant([3]))])
    case("arr/invert_perm", lambda: [tf.invert_permutation([2, 0, 1])])
    case("arr/edit_distance", lambda: [tf.edit_distance(tf.SparseTensor([[0, 0], [0, 1], [1, 0]], [b"a", b"b", b"c"], [2, 2]), tf.SparseTensor([[0, 0], [1, 0], [1, 1]], [b"a", b"c", b"d"], [2, 2]))])
    case("arr/edit_distance_raw", lambda: [tf.edit_distance(tf.SparseTensor([[0, 0], [0, 1]], [1, 2], [1, 2]), tf.SparseTensor([[0, 0]], [1], [1, 1]), normalize=False)])

    # ---- casts, integer math, dtypes -----------------------------------------------------
    F = np.float32([-2.7, -0.5, 0.5, 1.5, 2.5, 3e9, np.nan])
    case("cast/f2i", lambda: [tf.cast(tf.constant(F[:5]), tf.int32), tf.cast(tf.constant(F[:5]), tf.int64), tf.cast(tf.constant(F[:5]), tf.uint8)])
    case("cast/f2bool", lambda: [tf.cast(tf.constant(np.float32([0, -0.0, 2, np.nan])), tf.bool)])
    case("cast/saturate", lambda: [tf.saturate_cast(tf.constant(np.float32([-300, 5.7, 300])), tf.uint8), tf.saturate_cast(tf.constant([70000, -70000]), tf.int16)])
    case("cast/round", lambda: [tf.round(tf.constant(F[:5])), tf.rint(tf.constant(F[:5]))])
    case("cast/bitcast", lambda: [tf.bitcast(tf.constant(np.float32([1.0, -2.0])), tf.int32), tf.bitcast(tf.constant(np.int32([1, 2])), tf.uint8)])
    case("cast/to_helpers", lambda: [tf.to_int32(tf.constant([1.9])), tf.to_float(tf.constant([3])), tf.to_int64(tf.constant([2.5])), tf.to_double(tf.constant([1]))])
    I1, I2 = np.int32([7, -7, 7, -7, 0]), np.int32([2, 2, -2, -2, 3])
    case("int/div", lambda: [tf.truncatediv(I1, I2), tf.floordiv(I1, I2), tf.truncatemod(I1, I2), tf.floormod(I1, I2), tf.div(I1, I2), tf.mod(I1, I2), I1 // I2 + tf.constant(0)])
    case("int/realdiv", lambda: [tf.truediv(tf.constant(I1), tf.constant(I2)), tf.divide(tf.constant(I1), tf.constant(I2))])
    case("int/div_zero", lambda: [tf.floordiv(tf.constant([1]), tf.constant([0]))])
    case("int/bitwise", lambda: [tf.bitwise.bitwise_and(I1, I2), tf.bitwise.bitwise_or(I1, I2), tf.bitwise.bitwise_xor(I1, I2), tf.bitwise.invert(I1), tf.bitwise.left_shift(I1, tf.constant([1, 2, 3, 4, 5])), tf.bitwise.right_shift(I1, tf.constant([1, 1, 1, 1, 1]))])
    case("int/abs_min", lambda: [tf.abs(tf.constant(np.int32([-2147483648, -3])))])
    case("int/pow", lambda: [tf.pow(tf.constant([2, 3, -2]), tf.constant([10, 0, 3]))])
    case("f16/arith", lambda: [tf.constant(np.float16([1.5, 2.25])) * tf.constant(np.float16(3)), tf.reduce_sum(tf.constant(np.float16([60000, 60000]))), tf.cast(tf.constant(np.float16([0.1])), tf.float32)])
    case("f64/matmul", lambda: [tf.matmul(tf.constant(np.float64([[1, 2]])), tf.constant(np.float64([[3], [4]])))])
    case("u8/add_wrap", lambda: [tf.constant(np.uint8([250])) + tf.constant(np.uint8([10]))])
    case("i64/reduce", lambda: [tf.reduce_sum(tf.constant(np.int64([2**40, 2**40]))), tf.reduce_prod(tf.constant([2, 3, 4])), tf.reduce_mean(tf.constant([1, 2]))])
    case("bool/reduce", lambda: [tf.reduce_any(tf.constant([[True, False]]), 1), tf.logical_xor(tf.constant([True, False]), tf.constant([True, True])), tf.logical_or(tf.constant([True, False]), False)])
    case("cmp/ne_str", lambda: [tf.equal(tf.constant([b"a", b"b"]), tf.constant(b"a")), tf.not_equal(tf.constant([1, 2]), 2)])

    # ---- more nn ------------------------------------------------------------------------
    X4 = f32(2, 6, 6, 3)
    case("nn/conv1d", lambda: [tf.nn.conv1d(c(f32(2, 7, 3)), c(f32(3, 3, 4)), 2, "SAME")], grad=True)
    case("nn/conv3d", lambda: [tf.nn.conv3d(c(f32(1, 4, 4, 4, 2)), c(f32(2, 2, 2, 2, 3)), [1, 1, 2, 1, 1], "VALID")], grad=True)
    case("nn/max_pool3d", lambda: [tf.nn.max_pool3d(c(f32(1, 4, 4, 4, 2)), [1, 2, 2, 2, 1], [1, 2, 2, 2, 1], "VALID")], grad=True)
    case("nn/avg_pool3d", lambda: [tf.nn.avg_pool3d(c(f32(1, 4, 4, 4, 2)), [1, 2, 2, 2, 1], [1, 1, 2, 2, 1], "SAME")], grad=True)
    case("nn/avg_pool_same", lambda: [tf.nn.avg_pool(c(X4), [1, 3, 3, 1], [1, 2, 2, 1], "SAME")], grad=True)
    case("nn/max_pool_argmax", lambda: list(tf.nn.max_pool_with_argmax(c(X4), [1, 2, 2, 1], [1, 2, 2, 1], "SAME")))
    case("nn/dilation2d", lambda: [tf.nn.dilation2d(c(X4), c(f32(2, 2, 3)), [1, 1, 1, 1], [1, 1, 1, 1], "SAME")], grad=True)
    case("nn/atrous", lambda: [tf.nn.atrous_conv2d(c(X4), c(f32(2, 2, 3, 2)), 2, "SAME")], grad=True)
    case("nn/conv2d_dilated", lambda: [tf.nn.conv2d(c(X4), c(f32(2, 2, 3, 2)), [1, 1, 1, 1], "VALID", dilations=[1, 2, 2, 1])], grad=True)
    case("nn/conv2d_nchw_err", lambda: [tf.nn.conv2d(c(X4), c(f32(2, 2, 3, 2)), [1, 1, 1, 1], "VALID", data_format="NCHW")])
    case("nn/conv2d_explicit_pad", lambda: [tf.nn.conv2d(c(X4), c(f32(3, 3, 3, 2)), [1, 1, 1, 1], [[0, 0], [1, 0], [0, 2], [0, 0]])], grad=True)
    case("nn/separable", lambda: [tf.nn.separable_conv2d(c(X4), c(f32(3, 3, 3, 2)), c(f32(1, 1, 6, 4)), [1, 1, 1, 1], "SAME")], grad=True)
    case("nn/fused_bn_train", lambda: list(tf.nn.fused_batch_norm(c(X4), c(f32(3)), c(f32(3)), epsilon=1e-3)[:3]), grad=True)
    case("nn/fused_bn_infer", lambda: [tf.nn.fused_batch_norm(c(X4), c(f32(3)), c(f32(3)), c(f32(3)), tf.abs(c(f32(3))), is_training=False)[0]], grad=True)
    case("nn/weighted_xent", lambda: [tf.nn.weighted_cross_entropy_with_logits(c(np.abs(f32(3, 4)) / 2), c(f32(3, 4)), 2.5)], grad=True)
    case("nn/xent_v1", lambda: [tf.nn.softmax_cross_entropy_with_logits(labels=c(np.abs(f32(3, 4)) / 4), logits=c(f32(3, 4)))], grad=True)
    case("nn/log_poisson", lambda: [tf.nn.log_poisson_loss(c(np.abs(f32(3, 4))), c(f32(3, 4)), compute_full_loss=True)], grad=True)
    case("nn/normalize_moments", lambda: list(tf.nn.normalize_moments(c(np.float32(4)), c(f32(3)), c(np.abs(f32(3))) + 10, None)), grad=True)
    case("nn/weighted_moments", lambda: list(tf.nn.weighted_moments(c(f32(4, 3)), [0], c(np.abs(f32(4, 1))))), grad=True)
    case("nn/sufficient_stats", lambda: list(tf.nn.sufficient_statistics(c(f32(4, 3)), [0])[:3]), grad=True)
    case("nn/crelu", lambda: [tf.nn.crelu(c(f32(2, 3)))], grad=True)
    case("nn/l2_norm_multi", lambda: [tf.nn.l2_normalize(c(f32(2, 3, 4)), [1, 2])], grad=True)
    case("nn/zero_fraction", lambda: [tf.nn.zero_fraction(tf.nn.relu(c(f32(4, 5))))])
    case("nn/softmax_axis0", lambda: [tf.nn.softmax(c(f32(3, 4)), axis=0)], grad=True)
    case("nn/lrn_params", lambda: [tf.nn.local_response_normalization(c(f32(1, 2, 2, 7)), depth_radius=3, bias=2.0, alpha=0.5, beta=0.6)], grad=True)
    case("nn/top_k_ties", lambda: list(tf.nn.top_k(tf.constant([[1.0, 3.0, 3.0, 2.0]]), 3)))
    case("nn/in_top_k_ties", lambda: [tf.nn.in_top_k(tf.constant([[1.0, 3.0, 3.0, 2.0]]), [2], 1)])
    case("nn/ctc_loss", lambda: [tf.nn.ctc_loss(tf.SparseTensor([[0, 0], [0, 1], [1, 0]], tf.constant([1, 2, 1]), [2, 2]), c(f32(5, 2, 4)), [5, 4])], grad=True)
    case("nn/ctc_greedy", lambda: list(tf.nn.ctc_greedy_decoder(tf.constant(f32(5, 2, 4)), [5, 3])[0]))
    case("nn/dropout_keep1", lambda: [tf.nn.dropout(c(f32(3, 3)), keep_prob=1.0)], grad=True)
    case("nn/bias_add_nchw", lambda: [tf.nn.bias_add(c(f32(2, 3, 2, 2)), c(f32(3)), data_format="NCHW")], grad=True)
    case("nn/relu_grad_zero", lambda: [tf.nn.relu(c(np.float32([-1, 0, 1]))), tf.nn.relu6(c(np.float32([0, 6, 7])))], grad=True)
    case("nn/elu_grad_zero", lambda: [tf.nn.elu(c(np.float32([-1, 0, 1])))], grad=True)
    case("nn/abs_grad_zero", lambda: [tf.abs(c(np.float32([-1, 0, 1]))), tf.maximum(c(np.float32([1, 2])), c(np.float32([1, 1])))], grad=True)
    case("nn/sqrt_grad_zero", lambda: [tf.sqrt(c(np.float32([0, 4])))], grad=True)
    case("nn/pow_grad_zero", lambda: [tf.pow(c(np.float32([0, 2, -1])), c(np.float32([2, 0.5, 2])))], grad=True)
    case("nn/clip_grad_edge", lambda: [tf.clip_by_value(c(np.float32([-1, 0.5, 1])), -1.0, 1.0)], grad=True)

    # ---- images -------------------------------------------------------------------------
    IM = np.abs(f32(2, 4, 5, 3)) / 2
    case("img/brightness", lambda: [tf.image.adjust_brightness(c(IM), 0.2)], grad=True)
    case("img/contrast", lambda: [tf.image.adjust_contrast(c(IM), 1.5)], grad=True)
    case("img/saturation", lambda: [tf.image.adjust_saturation(c(IM), 0.5)])
    case("img/hue", lambda: [tf.image.adjust_hue(c(IM), 0.2)])
    case("img/gamma", lambda: [tf.image.adjust_gamma(c(IM), 2.0, 1.5)], grad=True)
    case("img/standardize", lambda: [tf.image.per_image_standardization(c(IM[0]))], grad=True)
    case("img/gray", lambda: [tf.image.rgb_to_grayscale(c(IM)), tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(c(IM)))], grad=True)
    case("img/hsv", lambda: [tf.image.rgb_to_hsv(c(IM)), tf.image.hsv_to_rgb(tf.image.rgb_to_hsv(c(IM)))])
    case("img/yuv", lambda: [tf.image.rgb_to_yuv(c(IM)), tf.image.yuv_to_rgb(c(IM))], grad=True)
    case("img/flips", lambda: [tf.image.flip_left_right(c(IM[0])), tf.image.flip_up_down(c(IM)), tf.image.transpose_image(c(IM))], grad=True)
    case("img/rot90", lambda: [tf.image.rot90(c(IM[0]), k) for k in (0, 1, 2, 3)] + [tf.image.rot90(c(IM), 1)], grad=True)
    case("img/central_crop", lambda: [tf.image.central_crop(c(IM[0]), 0.5)], grad=True)
    case("img/pad_to_box", lambda: [tf.image.pad_to_bounding_box(c(IM), 1, 2, 7, 8)], grad=True)
    case("img/crop_to_box", lambda: [tf.image.crop_to_bounding_box(c(IM), 1, 2, 2, 3)], grad=True)
    case("img/crop_or_pad", lambda: [tf.image.resize_image_with_crop_or_pad(c(IM), 3, 8)], grad=True)
    case("img/resize_images", lambda: [tf.image.resize_images(c(IM), [3, 7]), tf.image.resize_images(c(IM), [8, 10], method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)], grad=True)
    case("img/resize_pad", lambda: [tf.image.resize_image_with_pad(c(IM), 6, 6)])
    case("img/nms", lambda: [tf.image.non_max_suppression(tf.constant(np.float32([[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, -0.1, 1, 0.9], [0, 10, 1, 11], [0, 10.1, 1, 11.1], [0, 100, 1, 101]])), tf.constant(np.float32([0.9, 0.75, 0.6, 0.95, 0.5, 0.3])), 3, 0.5)])
    case("img/nms_score", lambda: [tf.image.non_max_suppression(tf.constant(np.float32([[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 10, 1, 11]])), tf.constant(np.float32([0.9, 0.75, 0.2])), 3, 0.5, score_threshold=0.5)])
    case("img/gradients", lambda: list(tf.image.image_gradients(c(IM))), grad=True)
    case("img/total_variation", lambda: [tf.image.total_variation(c(IM))], grad=True)
    case("img/sobel", lambda: [tf.image.sobel_edges(c(IM))], grad=True)
    case("img/convert_u8_f", lambda: [tf.image.convert_image_dtype(tf.constant(np.uint8([[0, 128, 255]])), tf.float32)])
    case("img/convert_f_u8", lambda: [tf.image.convert_image_dtype(tf.constant(np.float32([[0, 0.5, 1.2, -0.1]])), tf.uint8, saturate=True)])
    case("img/psnr", lambda: [tf.image.psnr(c(IM), c(IM * 0.9), 1.0)])
    case("img/ssim", lambda: [tf.image.ssim(tf.constant(np.abs(f32(1, 16, 16, 1)) / 2), tf.constant(np.abs(f32(1, 16, 16, 1)) / 2), 1.0)])
    case("img/draw_boxes", lambda: [tf.image.draw_bounding_boxes(tf.constant(IM[:1]), tf.constant(np.float32([[[0.1, 0.1, 0.6, 0.8]]])))])

    # ---- initializers (values are random: bounds, moments and structure) -----------------
    def init_case(key, init, shape, post):
        def build():
            v = tf.get_variable("v", shape, initializer=init())
            return [v]
        case(f"init/{key}", build, post=lambda o: post(np.asarray(o[0])))
    # as text (one output of mixed items would not make an array: both sides failed alike);
    # -0.0 as 0.0, the spread to 2 significant digits
    stats = lambda a: [str(a.shape), str(a.dtype), str(round(float(a.mean()), 1) + 0.0), f"{float(a.std()):.2g}"]
    init_case("zeros", lambda: tf.zeros_initializer(), [2, 3], lambda a: [a])
    init_case("constant_list", lambda: tf.constant_initializer([1, 2, 3, 4, 5, 6]), [2, 3], lambda a: [a])
    init_case("constant_scalar", lambda: tf.constant_initializer(0.5), [2, 2], lambda a: [a])
    init_case("glorot_uniform", lambda: tf.glorot_uniform_initializer(seed=1), [200, 300], lambda a: [stats(a)[:3], bool(np.abs(a).max() <= np.sqrt(6 / 500))])
    init_case("glorot_normal", lambda: tf.glorot_normal_initializer(seed=1), [200, 300], lambda a: [stats(a)])
    init_case("he_normal", lambda: tf.variance_scaling_initializer(2.0, seed=1), [300, 200], lambda a: [stats(a)])
    init_case("vs_uniform_avg", lambda: tf.variance_scaling_initializer(1.0, "fan_avg", "uniform", seed=1), [300, 200], lambda a: [stats(a)])
    init_case("vs_conv", lambda: tf.variance_scaling_initializer(2.0, seed=1), [3, 3, 16, 32], lambda a: [stats(a)])
    init_case("truncated", lambda: tf.truncated_normal_initializer(0.5, 2.0, seed=1), [100000], lambda a: [stats(a)[:3], bool(a.min() >= -3.5 and a.max() <= 4.5)])
    init_case("random_normal", lambda: tf.random_normal_initializer(1.0, 0.5, seed=1), [100000], lambda a: [stats(a)])
    init_case("random_uniform", lambda: tf.random_uniform_initializer(-3.0, 1.0, seed=1), [100000], lambda a: [stats(a), bool(a.min() >= -3 and a.max() < 1)])
    init_case("orthogonal", lambda: tf.orthogonal_initializer(2.0, seed=1), [4, 6], lambda a: [a.shape, np.round(a @ a.T, 4)])
    init_case("orthogonal_tall", lambda: tf.orthogonal_initializer(seed=1), [6, 4], lambda a: [np.round(a.T @ a, 4)])
    init_case("identity", lambda: tf.initializers.identity(3.0), [2, 3], lambda a: [a])
    init_case("uniform_unit", lambda: tf.uniform_unit_scaling_initializer(seed=1), [400, 300], lambda a: [stats(a)[:3], bool(np.abs(a).max() <= np.sqrt(3 / 400) * 1.0001)])
    init_case("ones_int", lambda: tf.ones_initializer(tf.int32), [3], lambda a: [a])

    # ---- random ops (shapes, bounds, moments; never the draws) ---------------------------
    def rnd(key, build, post):
        case(f"rand/{key}", lambda: [build()], post=lambda o: post(np.asarray(o[0])))
    rnd("uniform", lambda: tf.random_uniform([50000], -2, 3, seed=1), lambda a: [stats(a), bool(a.min() >= -2 and a.max() < 3)])
    rnd("uniform_int", lambda: tf.random_uniform([50000], 0, 5, tf.int32, seed=1), lambda a: [str(a.dtype), sorted(set(a.tolist())), round(float(a.mean()), 1)])
    rnd("normal", lambda: tf.random_normal([50000], 2.0, 3.0, seed=1), lambda a: [stats(a)[:3], round(float(a.std()), 1)])
    rnd("truncated", lambda: tf.truncated_normal([50000], seed=1), lambda a: [stats(a)[:3], bool(np.abs(a).max() <= 2)])
    rnd("gamma", lambda: tf.random_gamma([50000], 2.0, seed=1), lambda a: [a.shape, round(float(a.mean()), 1), bool(a.min() > 0)])
    rnd("gamma_shape", lambda: tf.random_gamma([10], [1.0, 2.0, 3.0], seed=1), lambda a: [a.shape])
    rnd("poisson", lambda: tf.random_poisson(3.0, [50000], seed=1), lambda a: [str(a.dtype), round(float(a.mean()), 1)])
    rnd("multinomial", lambda: tf.multinomial(tf.log([[0.1, 0.9], [0.5, 0.5]]), 20000, seed=1), lambda a: [a.shape, str(a.dtype), np.round(a.mean(1), 1)])
    rnd("categorical", lambda: tf.random.categorical(tf.log([[0.2, 0.8]]), 20000, seed=1), lambda a: [a.shape, str(a.dtype), np.round(a.mean(1), 1)])
    rnd("shuffle", lambda: tf.random_shuffle(tf.range(100), seed=1), lambda a: [np.sort(a), bool((a != np.arange(100)).any())])
    rnd("shuffle_rows", lambda: tf.random_shuffle(tf.reshape(tf.range(20), [10, 2]), seed=1), lambda a: [a[np.argsort(a[:, 0])], bool((a[:, 1] - a[:, 0] == 1).all())])
    rnd("crop", lambda: tf.random_crop(tf.reshape(tf.range(60), [6, 10]), [3, 4], seed=1), lambda a: [a.shape, bool(((a[:, 1:] - a[:, :-1]) == 1).all() and ((a[1:, 0] - a[:-1, 0]) == 10).all())])
    rnd("dropout", lambda: tf.nn.dropout(tf.ones([50000]), keep_prob=0.25, seed=1), lambda a: [sorted(set(np.round(a, 4).tolist())), bool(abs((a == 0).mean() - 0.75) < 0.02)])
    rnd("dropout_rate", lambda: tf.nn.dropout(tf.ones([50000]), rate=0.5, seed=1), lambda a: [sorted(set(np.round(a, 4).tolist())), bool(abs((a == 0).mean() - 0.5) < 0.02)])
    rnd("dropout_noise", lambda: tf.nn.dropout(tf.ones([1000, 4]), keep_prob=0.5, noise_shape=[1, 4], seed=1), lambda a: [bool((a == a[0]).all())])
    rnd("bernoulli_op_seed", lambda: tf.random_uniform([4], seed=7) - tf.random_uniform([4], seed=7), lambda a: [a.shape])
    rnd("sample_box", lambda: tf.image.sample_distorted_bounding_box([10, 12, 3], tf.constant(np.float32([[[0.1, 0.1, 0.9, 0.9]]])), min_object_covered=0.5, seed=1)[0], lambda a: [a.shape, str(a.dtype)])


    # ---- session 9 (s9api): more of the TF1 API added this session ------------------------
    LOG = f32(6, 3, 4) * 2
    case("nn9/ctc_beam", lambda: (lambda d: [d[1]] + [t for p in d[0] for t in (p.indices, p.values, p.dense_shape)])(tf.nn.ctc_beam_search_decoder(tf.constant(LOG), [6, 5, 3], beam_width=4, top_paths=2)))
    case("nn9/ctc_beam_nomerge", lambda: (lambda d: [d[1]] + [d[0][0].values])(tf.nn.ctc_beam_search_decoder(tf.constant(LOG), [6, 5, 3], merge_repeated=False)))
    case("nn9/ctc_loss_options", lambda: [tf.nn.ctc_loss(tf.SparseTensor([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]], tf.constant([1, 1, 2, 0, 0]), [2, 3]), c(LOG[:, :2]), [6, 4], preprocess_collapse_repeated=pc, ctc_merge_repeated=mr) for pc, mr in ((True, True), (False, False))], grad=True)
    case("nn9/ctc_loss_ignore", lambda: [tf.nn.ctc_loss(tf.SparseTensor([[0, 0], [0, 1], [0, 2], [1, 0]], tf.constant([1, 1, 1, 0]), [2, 3]), c(LOG[:4, :2]), [4, 2], ignore_longer_outputs_than_inputs=True)], grad=True)
    case("nn9/ctc_greedy_nomerge", lambda: list(tf.nn.ctc_greedy_decoder(tf.constant(LOG), [6, 4, 2], merge_repeated=False)[0]))
    case("nn9/argmax_batch", lambda: list(tf.nn.max_pool_with_argmax(c(X4), [1, 3, 2, 1], [1, 2, 1, 1], "VALID", include_batch_in_index=True)))
    case("nn9/dilation_strided", lambda: [tf.nn.dilation2d(c(X4), c(f32(2, 3, 3)), [1, 2, 2, 1], [1, 2, 1, 1], "VALID")], grad=True)
    case("nn9/erosion", lambda: [tf.nn.erosion2d(c(X4), c(f32(2, 2, 3)), [1, 1, 1, 1], [1, 1, 1, 1], "SAME")], grad=True)
    case("nn9/conv3d_same", lambda: [tf.nn.conv3d(c(f32(2, 5, 4, 3, 2)), c(f32(3, 2, 2, 2, 3)), [1, 2, 1, 2, 1], "SAME")], grad=True)
    case("nn9/pool3d_mix", lambda: [tf.nn.max_pool3d(c(f32(1, 5, 4, 5, 2)), [1, 3, 2, 2, 1], [1, 2, 2, 1, 1], "SAME"), tf.nn.avg_pool3d(c(f32(1, 5, 4, 5, 2)), [1, 2, 3, 2, 1], [1, 1, 1, 2, 1], "VALID")], grad=True)
    case("nn9/pool1d", lambda: [tf.nn.max_pool1d(c(f32(2, 7, 3)), 3, 2, "SAME"), tf.nn.avg_pool1d(c(f32(2, 7, 3)), 2, 1, "VALID")], grad=True)
    case("nn9/convolution", lambda: [tf.nn.convolution(c(f32(1, 5, 5, 2)), c(f32(2, 2, 2, 3)), "VALID", strides=[2, 1]), tf.nn.pool(c(f32(1, 5, 5, 2)), [2, 2], "AVG", "SAME", strides=[2, 2])], grad=True)
    case("nn9/silu_relu_layer", lambda: [tf.nn.silu(c(f32(3, 4))), tf.nn.relu_layer(c(f32(2, 3)), c(f32(3, 4)), c(f32(4)))], grad=True)
    case("nn9/bn_global", lambda: [tf.nn.batch_norm_with_global_normalization(c(f32(2, 3)), c(f32(3)), tf.abs(c(f32(3))) + 0.5, c(f32(3)), c(f32(3)), 1e-3, True)], grad=True)
    case("nn9/moments_keep", lambda: list(tf.nn.weighted_moments(c(f32(2, 3, 4)), [0, 2], c(np.abs(f32(2, 3, 1))), keep_dims=True)) + list(tf.nn.sufficient_statistics(c(f32(3, 4)), [1], shift=c(f32(3, 1)))[:3]), grad=True)
    m("nn9/mean_tensor", lambda: tf.metrics.mean_tensor(tf.constant(PRED[:4].reshape(2, 2)), weights=tf.constant(np.float32([[1, 0], [2, 1]]))))
    m("nn9/tn_at_thr", lambda: tf.metrics.true_negatives_at_thresholds(tf.constant(LAB), tf.constant(PRED), [0.15, 0.5, 0.65]))
    m("nn9/fp_at_thr_w", lambda: tf.metrics.false_positives_at_thresholds(tf.constant(LAB), tf.constant(PRED), [0.15, 0.5], weights=tf.constant(np.float32([[1], [0], [2], [1], [1], [3]]))))
    m("nn9/precision_at_top_k", lambda: tf.metrics.precision_at_top_k(tf.constant(np.int64([[1, 0], [2, 1]])), tf.constant(np.int64([[1, 2], [0, 2]]))))
    m("nn9/sparse_avg_prec_w", lambda: tf.metrics.sparse_average_precision_at_k(tf.constant(np.int64([[1, 2], [2, 0], [0, 3]])), tf.constant(np.float32([[0.1, 0.9, 0.3, 0.2], [0.8, 0.1, 0.5, 0.4], [0.2, 0.3, 0.4, 0.1]])), 3, weights=tf.constant(np.float32([1, 2, 0.5]))))
    m("nn9/auc_pr_careful", lambda: tf.metrics.auc(tf.constant(LAB), tf.constant(PRED), curve="PR", summation_method="careful_interpolation"))
    m("nn9/auc_minoring", lambda: tf.metrics.auc(tf.constant(LAB), tf.constant(PRED), num_thresholds=7, summation_method="minoring"))
    m("nn9/mean_iou_w", lambda: tf.metrics.mean_iou(tf.constant([0, 1, 2, 2, 1, 3]), tf.constant([0, 2, 2, 1, 1, 3]), 5, weights=tf.constant([1.0, 2.0, 0.5, 1.0, 1.0, 0.0])))
    case("img9/ms_ssim", lambda: [tf.image.ssim_multiscale(tf.constant(np.abs(f32(2, 33, 30, 2)) / 2), tf.constant(np.abs(f32(2, 33, 30, 2)) / 2), 1.0, filter_size=3, power_factors=(0.4, 0.3, 0.3)), tf.image.ssim(tf.constant(np.uint8(np.abs(f32(1, 12, 12, 1)) * 100)), tf.constant(np.uint8(np.abs(f32(1, 12, 12, 1)) * 100)), 255), tf.image.psnr(tf.constant(np.uint8(np.abs(f32(1, 4, 4, 1)) * 100)), tf.constant(np.uint8(np.abs(f32(1, 4, 4, 1)) * 100)), 255)])
    case("img9/ssim_rgb", lambda: [tf.image.ssim(tf.constant(np.abs(f32(2, 12, 14, 3)) / 2), tf.constant(np.abs(f32(2, 12, 14, 3)) / 2), 1.0, filter_size=7)])
    case("img9/yiq", lambda: [tf.image.rgb_to_yiq(c(IM)), tf.image.yiq_to_rgb(c(IM))], grad=True)
    case("img9/resize_pad_tall", lambda: [tf.image.resize_image_with_pad(c(IM), 9, 4), tf.image.resize(c(IM), [3, 3]), tf.image.resize_with_crop_or_pad(c(IM), 2, 7), tf.image.transpose(c(IM))])
    case("img9/central_crops", lambda: [tf.image.central_crop(c(f32(7, 9, 2)), fr) for fr in (0.3, 0.75, 1.0)], grad=True)
    case("img9/gamma_u8", lambda: [tf.image.adjust_gamma(tf.constant(np.uint8([[[0, 64, 128, 255]]])), 0.5, 1.2)])
    case("img9/convert_sat", lambda: [tf.image.convert_image_dtype(tf.constant(np.float32([[0, 0.5, 1.2, -0.1, 0.999]])), tf.int16, saturate=True), tf.image.convert_image_dtype(tf.constant(np.float64([0.25, 1.5])), tf.uint8, saturate=True)])
    case("str9/format_variants", lambda: [tf.strings.format("{}|{}|{}", (tf.constant(np.arange(12).reshape(3, 4)), tf.constant([b"a", b"b"]), tf.constant(2.5, tf.float64)), summarize=1), tf.strings.format("[{}]", tf.constant(np.float32([1e-5, 123456.7, -0.1])))])
    case("str9/hashes_more", lambda: [tf.string_to_hash_bucket_fast(tf.constant([b"x" * n for n in range(20)]), 97), tf.string_to_hash_bucket(tf.constant([b"y" * n for n in range(20)]), 97), tf.string_to_hash_bucket_strong(tf.constant([b"z" * n for n in range(20)]), 97, key=[2 ** 40 + 3, 11])])
    case("str9/base64_bad", lambda: [tf.decode_base64(tf.constant([b"ab+/"]))])
    case("cast9/bits", lambda: [tf.bitwise.left_shift(tf.constant(np.int8([1, -3, 64])), tf.constant(np.int8([2, 9, 1]))), tf.bitwise.right_shift(tf.constant(np.int64([-17, 1 << 40])), tf.constant(np.int64([2, 70]))), tf.bitcast(tf.constant(np.uint8([[0, 0, 128, 63]])), tf.float32), tf.saturate_cast(tf.constant([1e10, -1e10], tf.float64), tf.int32)])
    init_case("lecun_uniform", lambda: tf.initializers.lecun_uniform(seed=1), [300, 200], lambda a: [stats(a)])
    init_case("orthogonal_conv", lambda: tf.orthogonal_initializer(seed=3), [2, 3, 4, 5], lambda a: [a.shape, np.round(a.reshape(-1, 5).T @ a.reshape(-1, 5), 4)])
    rnd("gamma_beta", lambda: tf.random_gamma([40000], [2.0, 5.0], beta=[[1.0], [2.0]], seed=1), lambda a: [a.shape, np.round(a.mean(0), 1)])
    rnd("poisson_vec", lambda: tf.random_poisson([1.0, 10.0], [40000], dtype=tf.int32, seed=1), lambda a: [a.shape, str(a.dtype), np.round(a.mean(0), 1)])
