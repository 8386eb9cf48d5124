"""``af.metrics``: TF1's streaming metrics. Each returns ``(value, update_op)``: `update_op`
adds a batch to running totals held in LOCAL_VARIABLES (and METRIC_VARIABLES), `value` reads
the metric of everything added so far.

    acc, acc_update = af.metrics.accuracy(labels=y, predictions=af.argmax(logits, 1))
    sess.run(af.local_variables_initializer())
    for batch in eval_batches: sess.run(acc_update, feed(batch))
    print(sess.run(acc))
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import GraphKeys, Tensor, get_default_graph, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, math_ops, reduction_ops
from actorflow.variables import Variable
from devices import dtypes

__all__ = ["accuracy", "mean", "precision", "recall", "mean_squared_error",
           "mean_absolute_error", "root_mean_squared_error", "true_positives",
           "false_positives", "false_negatives", "auc"]

METRIC_VARIABLES = "metric_variables"


def _total(name: str) -> Variable:
    with name_scope(None):
        v = Variable(0.0, trainable=False, name=name,
                     collections=[GraphKeys.LOCAL_VARIABLES, METRIC_VARIABLES])
    return v


def _f(x: Any) -> Tensor:
    return compare_ops.cast(convert_to_tensor(x), dtypes.float32)


def _safe_div(a: Tensor, b: Tensor) -> Tensor:
    return compare_ops.where(compare_ops.greater(b, 0.0), math_ops.truediv(a, math_ops.maximum(
        b, 1e-30)), array_ops.zeros_like(a))


def _add_collections(value: Tensor, update: Tensor, metrics_collections: Any,
                     updates_collections: Any) -> None:
    g = get_default_graph()
    for c in metrics_collections or ():
        g.add_to_collection(c, value)
    for c in updates_collections or ():
        g.add_to_collection(c, update)


def mean(values: Any, weights: Any = None, metrics_collections: Any = None,
         updates_collections: Any = None, name: str | None = None) -> tuple[Tensor, Tensor]:
    """The (weighted) mean of every value added."""
    with name_scope(name, "mean") as scope:
        v = _f(values)
        w = array_ops.ones_like(v) if weights is None else math_ops.multiply(
            array_ops.ones_like(v), _f(weights))
        total = _total(f"{scope}total")
        count = _total(f"{scope}count")
        up_t = total.assign_add(reduction_ops.reduce_sum(math_ops.multiply(v, w)))
        up_c = count.assign_add(reduction_ops.reduce_sum(w))
        value = _safe_div(total.value(), count.value())
        update = _safe_div(up_t, up_c)
        _add_collections(value, update, metrics_collections, updates_collections)
        return value, update


def accuracy(labels: Any, predictions: Any, weights: Any = None,
             metrics_collections: Any = None, updates_collections: Any = None,
             name: str | None = None) -> tuple[Tensor, Tensor]:
    """The fraction of predictions equal to labels."""
    with name_scope(name, "accuracy"):
        p = convert_to_tensor(predictions)
        y = compare_ops.cast(convert_to_tensor(labels), p.dtype)
        hits = compare_ops.cast(compare_ops.equal(p, y), dtypes.float32)
        return mean(hits, weights, metrics_collections, updates_collections, name="mean")


def _count(cond: Tensor, weights: Any, name: str) -> tuple[Tensor, Tensor]:
    with name_scope(name) as scope:
        c = compare_ops.cast(cond, dtypes.float32)
        if weights is not None:
            c = math_ops.multiply(c, _f(weights))
        v = _total(f"{scope}count")
        return v.value(), v.assign_add(reduction_ops.reduce_sum(c))


def _bool(x: Any) -> Tensor:
    t = convert_to_tensor(x)
    return t if t.dtype.is_bool else compare_ops.not_equal(t, compare_ops.cast(0, t.dtype))


def true_positives(labels: Any, predictions: Any, weights: Any = None,
                   metrics_collections: Any = None, updates_collections: Any = None,
                   name: str | None = None) -> tuple[Tensor, Tensor]:
    return _count(compare_ops.logical_and(_bool(labels), _bool(predictions)), weights,
                  name or "true_positives")


def false_positives(labels: Any, predictions: Any, weights: Any = None,
                    metrics_collections: Any = None, updates_collections: Any = None,
                    name: str | None = None) -> tuple[Tensor, Tensor]:
    return _count(compare_ops.logical_and(compare_ops.logical_not(_bool(labels)),
                                          _bool(predictions)), weights,
                  name or "false_positives")


def false_negatives(labels: Any, predictions: Any, weights: Any = None,
                    metrics_collections: Any = None, updates_collections: Any = None,
                    name: str | None = None) -> tuple[Tensor, Tensor]:
    return _count(compare_ops.logical_and(_bool(labels),
                                          compare_ops.logical_not(_bool(predictions))),
                  weights, name or "false_negatives")


def precision(labels: Any, predictions: Any, weights: Any = None,
              metrics_collections: Any = None, updates_collections: Any = None,
              name: str | None = None) -> tuple[Tensor, Tensor]:
    """tp / (tp + fp) over everything added (0 when nothing was predicted positive)."""
    with name_scope(name, "precision"):
        tp, tp_up = true_positives(labels, predictions, weights)
        fp, fp_up = false_positives(labels, predictions, weights)
        value = _safe_div(tp, math_ops.add(tp, fp))
        update = _safe_div(tp_up, math_ops.add(tp_up, fp_up))
        _add_collections(value, update, metrics_collections, updates_collections)
        return value, update


def recall(labels: Any, predictions: Any, weights: Any = None,
           metrics_collections: Any = None, updates_collections: Any = None,
           name: str | None = None) -> tuple[Tensor, Tensor]:
    """tp / (tp + fn) over everything added."""
    with name_scope(name, "recall"):
        tp, tp_up = true_positives(labels, predictions, weights)
        fn, fn_up = false_negatives(labels, predictions, weights)
        value = _safe_div(tp, math_ops.add(tp, fn))
        update = _safe_div(tp_up, math_ops.add(tp_up, fn_up))
        _add_collections(value, update, metrics_collections, updates_collections)
        return value, update


def mean_squared_error(labels: Any, predictions: Any, weights: Any = None,
                       metrics_collections: Any = None, updates_collections: Any = None,
                       name: str | None = None) -> tuple[Tensor, Tensor]:
    with name_scope(name, "mean_squared_error"):
        return mean(math_ops.squared_difference(_f(predictions), _f(labels)), weights,
                    metrics_collections, updates_collections)


def mean_absolute_error(labels: Any, predictions: Any, weights: Any = None,
                        metrics_collections: Any = None, updates_collections: Any = None,
                        name: str | None = None) -> tuple[Tensor, Tensor]:
    with name_scope(name, "mean_absolute_error"):
        return mean(math_ops.abs(math_ops.subtract(_f(predictions), _f(labels))), weights,
                    metrics_collections, updates_collections)


def root_mean_squared_error(labels: Any, predictions: Any, weights: Any = None,
                            metrics_collections: Any = None, updates_collections: Any = None,
                            name: str | None = None) -> tuple[Tensor, Tensor]:
    with name_scope(name, "root_mean_squared_error"):
        v, u = mean_squared_error(labels, predictions, weights)
        return math_ops.sqrt(v), math_ops.sqrt(u)




def auc(labels: Any, predictions: Any, weights: Any = None, num_thresholds: int = 200,
        metrics_collections: Any = None, updates_collections: Any = None, curve: str = "ROC",
        name: str | None = None, summation_method: str = "trapezoidal",
        thresholds: Any = None) -> tuple[Tensor, Tensor]:
    """The area under the ROC (or PR) curve of `predictions` in [0, 1] against boolean
    `labels`, from true/false positive/negative counts at `num_thresholds` thresholds (TF1's
    trapezoidal Riemann sum; 'careful_interpolation' interpolates precision between
    thresholds for PR, as TF's interpolate_pr_auc, and is the trapezoidal sum for ROC)."""
    import numpy as np
    if curve not in ("ROC", "PR"):
        raise ValueError(f"curve must be 'ROC' or 'PR', got {curve!r}")
    if summation_method not in ("trapezoidal", "minoring", "majoring",
                                "careful_interpolation"):
        raise ValueError(f"summation_method {summation_method!r} is not supported")
    eps = 1e-7
    if thresholds is None:
        if num_thresholds < 2:
            raise ValueError("num_thresholds must be > 1")
        ts = [-eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [
            1.0 + eps]
    else:
        ts = [-eps, *thresholds, 1.0 + eps]
    with name_scope(name, "auc") as scope:
        p = array_ops.reshape(_f(predictions), [-1, 1])
        pos = array_ops.reshape(_bool(labels), [-1, 1])
        above = compare_ops.greater(p, convert_to_tensor(np.float32(ts)[None, :]))
        w = None if weights is None else array_ops.reshape(_f(weights), [-1, 1])
        cells = {"true_positives": compare_ops.logical_and(pos, above),
                 "false_negatives": compare_ops.logical_and(pos, compare_ops.logical_not(above)),
                 "true_negatives": compare_ops.logical_and(compare_ops.logical_not(pos),
                                                           compare_ops.logical_not(above)),
                 "false_positives": compare_ops.logical_and(compare_ops.logical_not(pos), above)}
        values, updates = {}, []
        for key, cond in cells.items():
            with name_scope(None):
                v = Variable(np.zeros(len(ts), np.float32), trainable=False, name=scope + key,
                             collections=[GraphKeys.LOCAL_VARIABLES, METRIC_VARIABLES])
            c = compare_ops.cast(cond, dtypes.float32)
            if w is not None:
                c = math_ops.multiply(c, w)
            updates.append(v.assign_add(reduction_ops.reduce_sum(c, 0)))
            values[key] = v.value()
        value = _area(values, curve, summation_method)
        update = _area(dict(zip(cells, updates, strict=True)), curve, summation_method)
        _add_collections(value, update, metrics_collections, updates_collections)
        return value, update


def _area(c: dict[str, Tensor], curve: str, method: str) -> Tensor:
    e = 1e-6
    tp, fn, tn, fp = (c[k] for k in ("true_positives", "false_negatives", "true_negatives",
                                     "false_positives"))
    rec = math_ops.truediv(math_ops.add(tp, e), math_ops.add(math_ops.add(tp, fn), e))
    if curve == "ROC":
        x, y = math_ops.truediv(fp, math_ops.add(math_ops.add(fp, tn), e)), rec
    else:
        x, y = rec, math_ops.truediv(math_ops.add(tp, e), math_ops.add(math_ops.add(tp, fp), e))
    if curve == "PR" and method == "careful_interpolation":
        return _interpolate_pr_auc(tp, fp, fn)
    dx = math_ops.subtract(x[:-1], x[1:])
    if method in ("trapezoidal", "careful_interpolation"):
        h = math_ops.multiply(math_ops.add(y[:-1], y[1:]), 0.5)
    elif method == "minoring":
        h = math_ops.minimum(y[:-1], y[1:])
    else:
        h = math_ops.maximum(y[:-1], y[1:])
    return reduction_ops.reduce_sum(math_ops.multiply(dx, h))


def _interpolate_pr_auc(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    """TF's careful interpolation of the PR curve (Davis & Goadrich, 2006)."""
    from actorflow.ops.trig_ops import div_no_nan
    dtp = math_ops.subtract(tp[:-1], tp[1:])
    p = math_ops.add(tp, fp)
    slope = div_no_nan(dtp, math_ops.maximum(math_ops.subtract(p[:-1], p[1:]), 0.0))
    intercept = math_ops.subtract(tp[1:], math_ops.multiply(slope, p[1:]))
    both = compare_ops.logical_and(compare_ops.greater(p[:-1], 0.0),
                                   compare_ops.greater(p[1:], 0.0))
    ratio = compare_ops.where(both, div_no_nan(p[:-1], math_ops.maximum(p[1:], 0.0)),
                              array_ops.ones_like(p[1:]))
    return reduction_ops.reduce_sum(div_no_nan(
        math_ops.multiply(slope, math_ops.add(dtp, math_ops.multiply(intercept,
                                                                     math_ops.log(ratio)))),
        math_ops.maximum(math_ops.add(tp[1:], fn[1:]), 0.0)))


# --- s9api: the rest of TF1's tf.metrics (thresholds, top-k, IoU, per-class accuracy) ---
from actorflow.metrics_more import *  # noqa: E402,F403
from actorflow.metrics_more import __all__ as _more_all  # noqa: E402

__all__ += _more_all
