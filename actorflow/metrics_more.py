"""More of TF1's ``tf.metrics`` (re-exported by `actorflow.metrics`), with TF's local
variables, update ops and value rules:

- counts: `true_negatives` and the four ``*_at_thresholds`` counts (a vector, one per
  threshold, a prediction counting as positive when strictly above it);
  `precision_at_thresholds` and `recall_at_thresholds` (tp / (tp + fp + 1e-7), as TF);
- `sensitivity_at_specificity` / `specificity_at_sensitivity` over `num_thresholds` evenly
  spaced thresholds (TF's tie rules: the first threshold whose specificity is nearest, the
  last whose sensitivity is nearest);
- `mean_iou` (a confusion matrix; classes never seen are left out of the mean) and
  `mean_per_class_accuracy` (classes never seen count as 0, as TF);
- `percentage_below`, `mean_relative_error`, `mean_cosine_distance`;
- top-k metrics on sparse labels (`precision_at_k`, `recall_at_k`, `average_precision_at_k`
  and their ``sparse_`` / ``*_at_top_k`` spellings): float64 totals, label ids outside
  [0, num_classes) ignored, as TF.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import GraphKeys, Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, index_ops, math_ops, reduction_ops
from actorflow.variables import Variable
from devices import dtypes

__all__ = ["true_negatives", "true_positives_at_thresholds", "false_positives_at_thresholds",
           "false_negatives_at_thresholds", "true_negatives_at_thresholds",
           "precision_at_thresholds", "recall_at_thresholds", "sensitivity_at_specificity",
           "specificity_at_sensitivity", "mean_iou", "mean_per_class_accuracy",
           "percentage_below", "mean_relative_error", "mean_cosine_distance",
           "precision_at_k", "recall_at_k", "average_precision_at_k", "sparse_precision_at_k",
           "sparse_recall_at_k", "sparse_average_precision_at_k", "precision_at_top_k",
           "recall_at_top_k", "average_precision_at_top_k", "mean_tensor"]

_EPS = 1e-7
_CELLS = ("tp", "fn", "tn", "fp")


def _m() -> Any:
    from actorflow import metrics
    return metrics


def _var(scope: str, name: str, init: Any) -> Variable:
    from actorflow.metrics import METRIC_VARIABLES
    with name_scope(None):
        return Variable(init, trainable=False, name=scope + name,
                        collections=[GraphKeys.LOCAL_VARIABLES, METRIC_VARIABLES])


def _done(value: Tensor, update: Tensor, mc: Any, uc: Any) -> tuple[Tensor, Tensor]:
    _m()._add_collections(value, update, mc, uc)
    return value, update


def true_negatives(labels: Any, predictions: Any, weights: Any = None,
                   metrics_collections: Any = None, updates_collections: Any = None,
                   name: str | None = None) -> tuple[Tensor, Tensor]:
    m = _m()
    v, u = m._count(compare_ops.logical_and(compare_ops.logical_not(m._bool(labels)),
                                            compare_ops.logical_not(m._bool(predictions))),
                    weights, name or "true_negatives")
    return _done(v, u, metrics_collections, updates_collections)


def _at_thresholds(labels: Any, predictions: Any, thresholds: Any, weights: Any,
                   scope: str, cells: tuple[str, ...] = _CELLS) -> dict[str, tuple]:
    """{cell: (value, update)}: weighted counts per threshold (prediction > threshold)."""
    m = _m()
    ts = np.asarray(thresholds, np.float32).reshape(-1)
    p = array_ops.reshape(m._f(predictions), [-1, 1])
    pos = array_ops.reshape(m._bool(labels), [-1, 1])
    above = compare_ops.greater(p, convert_to_tensor(ts[None, :]))
    neg, below = compare_ops.logical_not(pos), compare_ops.logical_not(above)
    conds = {"tp": (pos, above), "fn": (pos, below), "tn": (neg, below), "fp": (neg, above)}
    w = None if weights is None else array_ops.reshape(m._f(weights), [-1, 1])
    names = {"tp": "true_positives", "fn": "false_negatives", "tn": "true_negatives",
             "fp": "false_positives"}
    out = {}
    for c in cells:
        v = _var(scope, names[c], np.zeros(len(ts), np.float32))
        x = compare_ops.cast(compare_ops.logical_and(*conds[c]), dtypes.float32)
        if w is not None:
            x = math_ops.multiply(x, w)
        out[c] = (v.value(), v.assign_add(reduction_ops.reduce_sum(x, 0)))
    return out


def _count_at(cell: str, default: str) -> Any:
    def fn(labels: Any, predictions: Any, thresholds: Any, weights: Any = None,
           metrics_collections: Any = None, updates_collections: Any = None,
           name: str | None = None) -> tuple[Tensor, Tensor]:
        with name_scope(name, default) as scope:
            v, u = _at_thresholds(labels, predictions, thresholds, weights, scope, (cell,))[cell]
            return _done(v, u, metrics_collections, updates_collections)
    fn.__name__ = default
    fn.__doc__ = f"TF's {default}: a count per threshold (prediction > threshold)."
    return fn


true_positives_at_thresholds = _count_at("tp", "true_positives_at_thresholds")
false_positives_at_thresholds = _count_at("fp", "false_positives_at_thresholds")
false_negatives_at_thresholds = _count_at("fn", "false_negatives_at_thresholds")
true_negatives_at_thresholds = _count_at("tn", "true_negatives_at_thresholds")


def _ratio_at(a: str, b: str, default: str) -> Any:
    def fn(labels: Any, predictions: Any, thresholds: Any, weights: Any = None,
           metrics_collections: Any = None, updates_collections: Any = None,
           name: str | None = None) -> tuple[Tensor, Tensor]:
        with name_scope(name, default) as scope:
            c = _at_thresholds(labels, predictions, thresholds, weights, scope, (a, b))

            def ratio(i: int) -> Tensor:
                return math_ops.truediv(c[a][i], math_ops.add(math_ops.add(c[a][i], c[b][i]),
                                                               _EPS))
            return _done(ratio(0), ratio(1), metrics_collections, updates_collections)
    fn.__name__ = default
    return fn


precision_at_thresholds = _ratio_at("tp", "fp", "precision_at_thresholds")
recall_at_thresholds = _ratio_at("tp", "fn", "recall_at_thresholds")


def _even_thresholds(num_thresholds: int) -> list[float]:
    if num_thresholds < 2:
        raise ValueError(f"num_thresholds must be > 1, got {num_thresholds}")
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0 - _EPS, *inner, 1.0 + _EPS]


def _at_operating_point(labels: Any, predictions: Any, target: float, weights: Any,
                        num_thresholds: int, mc: Any, uc: Any, name: str | None,
                        default: str, sensitivity_given: bool) -> tuple[Tensor, Tensor]:
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"{default}: the target rate must be in [0, 1], got {target}")
    with name_scope(name, default) as scope:
        c = _at_thresholds(labels, predictions, _even_thresholds(num_thresholds), weights, scope)

        def compute(i: int) -> Tensor:
            tp, fn, tn, fp = (c[k][i] for k in _CELLS)
            if sensitivity_given:  # specificity at the last threshold nearest the sensitivity
                rate = math_ops.truediv(tp, math_ops.add(math_ops.add(tp, fn), _EPS))
                gap = math_ops.abs(math_ops.subtract(rate, target))
                at_min = compare_ops.cast(compare_ops.equal(gap, reduction_ops.reduce_min(gap)),
                                          dtypes.int64)
                from actorflow.ops.scan_sort_ops import cumsum
                idx = reduction_ops.argmax(cumsum(at_min), 0)
                a, b = index_ops.gather(tn, idx), index_ops.gather(fp, idx)
            else:  # sensitivity at the first threshold nearest the specificity
                rate = math_ops.truediv(tn, math_ops.add(math_ops.add(tn, fp), _EPS))
                idx = reduction_ops.argmin(math_ops.abs(math_ops.subtract(rate, target)), 0)
                a, b = index_ops.gather(tp, idx), index_ops.gather(fn, idx)
            return math_ops.truediv(a, math_ops.add(math_ops.add(a, b), _EPS))
        return _done(compute(0), compute(1), mc, uc)


def sensitivity_at_specificity(labels: Any, predictions: Any, specificity: float,
                               weights: Any = None, num_thresholds: int = 200,
                               metrics_collections: Any = None,
                               updates_collections: Any = None,
                               name: str | None = None) -> tuple[Tensor, Tensor]:
    return _at_operating_point(labels, predictions, specificity, weights, num_thresholds,
                               metrics_collections, updates_collections, name,
                               "sensitivity_at_specificity", False)


def specificity_at_sensitivity(labels: Any, predictions: Any, sensitivity: float,
                               weights: Any = None, num_thresholds: int = 200,
                               metrics_collections: Any = None,
                               updates_collections: Any = None,
                               name: str | None = None) -> tuple[Tensor, Tensor]:
    return _at_operating_point(labels, predictions, sensitivity, weights, num_thresholds,
                               metrics_collections, updates_collections, name,
                               "specificity_at_sensitivity", True)


def _onehot(x: Any, num_classes: int) -> Tensor:
    from actorflow.ops.index_ops import one_hot
    ids = compare_ops.cast(array_ops.reshape(convert_to_tensor(x), [-1]), dtypes.int64)
    return one_hot(ids, num_classes, dtype=dtypes.float32)


def _confusion_update(labels: Any, predictions: Any, num_classes: int, weights: Any,
                      cm: Variable) -> Tensor:
    m = _m()
    lab = _onehot(labels, num_classes)
    if weights is not None:
        w = array_ops.reshape(math_ops.multiply(m._f(weights), array_ops.ones_like(
            m._f(labels))), [-1, 1])
        lab = math_ops.multiply(lab, w)
    return cm.assign_add(math_ops.matmul(lab, _onehot(predictions, num_classes),
                                         transpose_a=True))


def mean_iou(labels: Any, predictions: Any, num_classes: int, weights: Any = None,
             metrics_collections: Any = None, updates_collections: Any = None,
             name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean over classes of |label & prediction| / |label | prediction|, from a running
    confusion matrix (its update op is the matrix's update, as TF's)."""
    from actorflow.ops.grid_ops import diag_part
    with name_scope(name, "mean_iou") as scope:
        cm = _var(scope, "total_confusion_matrix", np.zeros((num_classes, num_classes),
                                                            np.float32))
        update = _confusion_update(labels, predictions, num_classes, weights, cm)
        total = cm.value()
        rows, cols = reduction_ops.reduce_sum(total, 0), reduction_ops.reduce_sum(total, 1)
        diag = diag_part(total)
        den = math_ops.subtract(math_ops.add(rows, cols), diag)
        valid = reduction_ops.reduce_sum(compare_ops.cast(compare_ops.not_equal(den, 0.0),
                                                          dtypes.float32))
        den = compare_ops.where(compare_ops.greater(den, 0.0), den, array_ops.ones_like(den))
        iou = math_ops.truediv(diag, den)
        value = compare_ops.where(compare_ops.greater(valid, 0.0), math_ops.truediv(
            reduction_ops.reduce_sum(iou), math_ops.maximum(valid, 1.0)), 0.0)
        return _done(value, update, metrics_collections, updates_collections)


def mean_per_class_accuracy(labels: Any, predictions: Any, num_classes: int,
                            weights: Any = None, metrics_collections: Any = None,
                            updates_collections: Any = None,
                            name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean over all `num_classes` of each class's accuracy (update: the per-class
    accuracies)."""
    from actorflow.ops.trig_ops import div_no_nan
    m = _m()
    with name_scope(name, "mean_accuracy") as scope:
        total = _var(scope, "total", np.zeros(num_classes, np.float32))
        count = _var(scope, "count", np.zeros(num_classes, np.float32))
        lab = _onehot(labels, num_classes)
        hit = compare_ops.cast(compare_ops.equal(
            array_ops.reshape(compare_ops.cast(convert_to_tensor(predictions), dtypes.int64),
                              [-1]),
            array_ops.reshape(compare_ops.cast(convert_to_tensor(labels), dtypes.int64), [-1])),
            dtypes.float32)
        w = array_ops.ones_like(hit) if weights is None else array_ops.reshape(
            math_ops.multiply(m._f(weights), array_ops.ones_like(m._f(labels))), [-1])
        up_t = total.assign_add(reduction_ops.reduce_sum(math_ops.multiply(
            lab, array_ops.expand_dims(w, 1)), 0))
        up_c = count.assign_add(reduction_ops.reduce_sum(math_ops.multiply(
            lab, array_ops.expand_dims(math_ops.multiply(w, hit), 1)), 0))
        value = reduction_ops.reduce_mean(div_no_nan(count.value(), total.value()))
        return _done(value, div_no_nan(up_c, up_t), metrics_collections, updates_collections)


def mean_tensor(values: Any, weights: Any = None, metrics_collections: Any = None,
                updates_collections: Any = None, name: str | None = None
                ) -> tuple[Tensor, Tensor]:
    """The element-wise (weighted) mean of every `values` tensor added (0 where nothing was
    counted)."""
    m = _m()
    with name_scope(name, "mean") as scope:
        v = m._f(values)
        if v._shape is None or any(d is None for d in v._shape):
            raise ValueError(f"mean_tensor needs values of a fully known shape, got {v._shape}")
        w = array_ops.ones_like(v) if weights is None else math_ops.multiply(
            array_ops.ones_like(v), m._f(weights))
        total = _var(scope, "total_tensor", np.zeros(v._shape, np.float32))
        count = _var(scope, "count_tensor", np.zeros(v._shape, np.float32))
        up_t = total.assign_add(math_ops.multiply(v, w))
        up_c = count.assign_add(w)
        return _done(m._safe_div(total.value(), count.value()), m._safe_div(up_t, up_c),
                     metrics_collections, updates_collections)


def percentage_below(values: Any, threshold: float, weights: Any = None,
                     metrics_collections: Any = None, updates_collections: Any = None,
                     name: str | None = None) -> tuple[Tensor, Tensor]:
    """The (weighted) fraction of values strictly below `threshold`."""
    m = _m()
    with name_scope(name, "percentage_below_threshold"):
        below = compare_ops.cast(compare_ops.less(m._f(values), float(threshold)),
                                 dtypes.float32)
        return m.mean(below, weights, metrics_collections, updates_collections)


def mean_relative_error(labels: Any, predictions: Any, normalizer: Any, weights: Any = None,
                        metrics_collections: Any = None, updates_collections: Any = None,
                        name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean of |labels - predictions| / normalizer (0 where the normalizer is 0)."""
    m = _m()
    with name_scope(name, "mean_relative_error"):
        y, p, n = m._f(labels), m._f(predictions), m._f(normalizer)
        err = compare_ops.where(compare_ops.equal(n, 0.0), array_ops.zeros_like(y),
                                math_ops.truediv(math_ops.abs(math_ops.subtract(y, p)), n))
        return m.mean(err, weights, metrics_collections, updates_collections)


def mean_cosine_distance(labels: Any, predictions: Any, dim: int, weights: Any = None,
                         metrics_collections: Any = None, updates_collections: Any = None,
                         name: str | None = None) -> tuple[Tensor, Tensor]:
    """1 - the mean dot product along `dim` (inputs are expected unit-normalized, as TF)."""
    m = _m()
    with name_scope(name, "mean_cosine_distance"):
        dots = reduction_ops.reduce_sum(math_ops.multiply(m._f(predictions), m._f(labels)),
                                        [dim], keepdims=True)
        v, u = m.mean(dots, weights)
        return _done(math_ops.subtract(1.0, v), math_ops.subtract(1.0, u),
                     metrics_collections, updates_collections)


# ---- top-k metrics on sparse labels ---------------------------------------------------------
def _topk_rows(labels: Any, top: Tensor, num_classes: Any) -> tuple[Tensor, Tensor]:
    """(relevant [batch, k] float64: is the i-th prediction among the row's labels,
    the row's number of labels in [0, num_classes) as float64)."""
    y = compare_ops.cast(convert_to_tensor(labels), dtypes.int64)
    if y._shape is not None and len(y._shape) == 1:
        y = array_ops.expand_dims(y, 1)
    ok = compare_ops.greater_equal(y, 0)
    if num_classes is not None:
        ok = compare_ops.logical_and(ok, compare_ops.less(y, compare_ops.cast(num_classes,
                                                                              dtypes.int64)))
    y = compare_ops.where(ok, y, array_ops.fill(array_ops.shape(y), np.int64(-1)))
    t = compare_ops.cast(top, dtypes.int64)
    hit = compare_ops.equal(array_ops.expand_dims(t, 2), array_ops.expand_dims(y, 1))
    relevant = compare_ops.cast(reduction_ops.reduce_any(hit, 2), dtypes.float64)
    n = reduction_ops.reduce_sum(compare_ops.cast(ok, dtypes.float64), 1)
    return relevant, n


def _row_weights(weights: Any, like: Tensor) -> Tensor:
    if weights is None:
        return array_ops.ones_like(like)
    w = compare_ops.cast(convert_to_tensor(weights), dtypes.float64)
    return math_ops.multiply(array_ops.reshape(w, [-1]), array_ops.ones_like(like))


def _top(predictions: Any, k: int) -> tuple[Tensor, Any]:
    from actorflow.ops.scan_sort_ops import top_k
    p = convert_to_tensor(predictions)
    return top_k(p, k)[1], (p._shape[-1] if p._shape is not None else None)


def _ratio_k(labels: Any, top: Tensor, num_classes: Any, k: int, weights: Any, scope: str,
             recall: bool) -> tuple[Tensor, Tensor]:
    relevant, n = _topk_rows(labels, top, num_classes)
    tp = reduction_ops.reduce_sum(relevant, 1)
    other = math_ops.subtract(n, tp) if recall else math_ops.subtract(
        compare_ops.cast(array_ops.shape(top)[1], dtypes.float64), tp)
    w = _row_weights(weights, tp)
    tp_v = _var(scope, f"true_positive_at_{k}", np.float64(0.0))
    ot_v = _var(scope, ("false_negative_at_%d" if recall else "false_positive_at_%d") % k,
                np.float64(0.0))
    up_tp = tp_v.assign_add(reduction_ops.reduce_sum(math_ops.multiply(tp, w)))
    up_ot = ot_v.assign_add(reduction_ops.reduce_sum(math_ops.multiply(other, w)))

    def ratio(a: Tensor, b: Tensor) -> Tensor:
        den = math_ops.add(a, b)
        return compare_ops.where(compare_ops.greater(den, 0.0), math_ops.truediv(
            a, math_ops.maximum(den, 1e-300)), array_ops.zeros_like(a))
    return ratio(tp_v.value(), ot_v.value()), ratio(up_tp, up_ot)


def _no_class_id(class_id: Any, what: str) -> None:
    if class_id is not None:
        raise ValueError(f"{what}: class_id is not supported; compute the metric on "
                         f"af.equal(labels, class_id) with precision/recall instead")


def precision_at_top_k(labels: Any, predictions_idx: Any, k: int | None = None,
                       class_id: Any = None, weights: Any = None,
                       metrics_collections: Any = None, updates_collections: Any = None,
                       name: str | None = None) -> tuple[Tensor, Tensor]:
    """Of the top-k predicted ids (given), the fraction that are among the labels."""
    _no_class_id(class_id, "precision_at_top_k")
    top = convert_to_tensor(predictions_idx)
    kk = k or top._shape[-1]
    with name_scope(name, f"precision_at_top_{kk}") as scope:
        v, u = _ratio_k(labels, top, None, kk, weights, scope, False)
        return _done(v, u, metrics_collections, updates_collections)


def precision_at_k(labels: Any, predictions: Any, k: int, class_id: Any = None,
                   weights: Any = None, metrics_collections: Any = None,
                   updates_collections: Any = None,
                   name: str | None = None) -> tuple[Tensor, Tensor]:
    """Of the k highest-scored classes per row, the fraction that are among the labels."""
    _no_class_id(class_id, "precision_at_k")
    with name_scope(name, f"precision_at_{k}") as scope:
        top, nc = _top(predictions, k)
        v, u = _ratio_k(labels, top, nc, k, weights, scope, False)
        return _done(v, u, metrics_collections, updates_collections)


def recall_at_top_k(labels: Any, predictions_idx: Any, k: int | None = None,
                    class_id: Any = None, weights: Any = None,
                    metrics_collections: Any = None, updates_collections: Any = None,
                    name: str | None = None) -> tuple[Tensor, Tensor]:
    _no_class_id(class_id, "recall_at_top_k")
    top = convert_to_tensor(predictions_idx)
    kk = k or top._shape[-1]
    with name_scope(name, f"recall_at_top_{kk}") as scope:
        v, u = _ratio_k(labels, top, None, kk, weights, scope, True)
        return _done(v, u, metrics_collections, updates_collections)


def recall_at_k(labels: Any, predictions: Any, k: int, class_id: Any = None,
                weights: Any = None, metrics_collections: Any = None,
                updates_collections: Any = None,
                name: str | None = None) -> tuple[Tensor, Tensor]:
    """Of each row's labels, the fraction found among its k highest-scored classes."""
    _no_class_id(class_id, "recall_at_k")
    with name_scope(name, f"recall_at_{k}") as scope:
        top, nc = _top(predictions, k)
        v, u = _ratio_k(labels, top, nc, k, weights, scope, True)
        return _done(v, u, metrics_collections, updates_collections)


def _avg_precision(labels: Any, top: Tensor, num_classes: Any, k: int, weights: Any,
                   scope: str) -> tuple[Tensor, Tensor]:
    from actorflow.ops.scan_sort_ops import cumsum
    relevant, n = _topk_rows(labels, top, num_classes)
    ranks = convert_to_tensor(np.arange(1, k + 1, dtype=np.float64))
    prec = math_ops.truediv(cumsum(relevant, 1), ranks)
    num = reduction_ops.reduce_sum(math_ops.multiply(prec, relevant), 1)
    den = math_ops.minimum(n, float(k))
    ap = compare_ops.where(compare_ops.greater(den, 0.0), math_ops.truediv(
        num, math_ops.maximum(den, 1.0)), array_ops.zeros_like(num))
    w = _row_weights(weights, ap)
    total = _var(scope, "total", np.float64(0.0))
    maxv = _var(scope, "max", np.float64(0.0))
    up_t = total.assign_add(reduction_ops.reduce_sum(math_ops.multiply(ap, w)))
    up_m = maxv.assign_add(reduction_ops.reduce_sum(w))

    def ratio(a: Tensor, b: Tensor) -> Tensor:
        return compare_ops.where(compare_ops.greater(b, 0.0), math_ops.truediv(
            a, math_ops.maximum(b, 1e-300)), array_ops.zeros_like(a))
    return ratio(total.value(), maxv.value()), ratio(up_t, up_m)


def average_precision_at_k(labels: Any, predictions: Any, k: int, weights: Any = None,
                           metrics_collections: Any = None, updates_collections: Any = None,
                           name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean over rows of the average precision of the k highest-scored classes."""
    if k < 1:
        raise ValueError(f"average_precision_at_k: k must be >= 1, got {k}")
    with name_scope(name, f"average_precision_at_{k}") as scope:
        top, nc = _top(predictions, k)
        v, u = _avg_precision(labels, top, nc, k, weights, scope)
        return _done(v, u, metrics_collections, updates_collections)


def average_precision_at_top_k(labels: Any, predictions_idx: Any, k: int | None = None,
                               weights: Any = None, metrics_collections: Any = None,
                               updates_collections: Any = None,
                               name: str | None = None) -> tuple[Tensor, Tensor]:
    top = convert_to_tensor(predictions_idx)
    kk = int(k or top._shape[-1])
    with name_scope(name, f"average_precision_at_top_{kk}") as scope:
        v, u = _avg_precision(labels, top, None, kk, weights, scope)
        return _done(v, u, metrics_collections, updates_collections)


sparse_precision_at_k = precision_at_k
sparse_recall_at_k = recall_at_k
sparse_average_precision_at_k = average_precision_at_k
