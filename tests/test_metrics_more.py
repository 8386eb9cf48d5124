"""tf.metrics added in session 9 (s9api): each metric's value after several update batches
against a NumPy reference written here over all the batches, its local variables, and the
TF 2.21 values the op audit recorded for a few (benchmarks/audit_more.py)."""

# the lambdas are called at once, inside their loop (B023)
# ruff: noqa: B023

import numpy as np
import pytest

import actorflow as af

R = np.random.default_rng(3)


def stream(build, batches):
    """Feed each batch (a tuple of arrays) to the metric built on placeholders; return the
    final value and the update op's last result."""
    with af.Graph().as_default():
        phs = [af.placeholder(af.as_dtype(a.dtype), a.shape) for a in batches[0]]
        value, update = build(*phs)
        assert af.get_collection(af.GraphKeys.LOCAL_VARIABLES)
        assert not af.trainable_variables()
        with af.Session() as s:
            s.run(af.local_variables_initializer())
            for b in batches:
                last = s.run(update, dict(zip(phs, b, strict=True)))
            return s.run(value), last


def scores(n=3, size=20):
    return [(R.integers(0, 2, size).astype(np.int64), R.uniform(0, 1, size).astype(np.float32))
            for _ in range(n)]


def counts(batches, thresholds):
    y = np.concatenate([b[0] for b in batches]).astype(bool)
    p = np.concatenate([b[1] for b in batches])
    above = p[:, None] > np.asarray(thresholds)[None, :]
    return {"tp": (y[:, None] & above).sum(0), "fp": (~y[:, None] & above).sum(0),
            "fn": (y[:, None] & ~above).sum(0), "tn": (~y[:, None] & ~above).sum(0)}


def test_threshold_counts_precision_recall():
    bs, th = scores(), [0.2, 0.5, 0.9]
    c = counts(bs, th)
    for name, key in (("true_positives_at_thresholds", "tp"),
                      ("false_positives_at_thresholds", "fp"),
                      ("false_negatives_at_thresholds", "fn"),
                      ("true_negatives_at_thresholds", "tn")):
        v, _ = stream(lambda y, p: getattr(af.metrics, name)(y, p, th), bs)
        assert v.tolist() == c[key].tolist(), name
    v, u = stream(lambda y, p: af.metrics.precision_at_thresholds(y, p, th), bs)
    np.testing.assert_allclose(v, c["tp"] / (c["tp"] + c["fp"] + 1e-7), rtol=1e-6)
    np.testing.assert_allclose(u, v)
    v, _ = stream(lambda y, p: af.metrics.recall_at_thresholds(y, p, th), bs)
    np.testing.assert_allclose(v, c["tp"] / (c["tp"] + c["fn"] + 1e-7), rtol=1e-6)
    v, _ = stream(lambda y, p: af.metrics.true_negatives(y, p > 0.5), bs)
    assert v == counts(bs, [0.5])["tn"][0]


def _rate_at(bs, target, given_sensitivity):
    th = [0.0 - 1e-7] + [(i + 1) / 199 for i in range(198)] + [1.0 + 1e-7]
    c = {k: v.astype(np.float64) for k, v in counts(bs, th).items()}
    sens = c["tp"] / (c["tp"] + c["fn"] + 1e-7)
    spec = c["tn"] / (c["tn"] + c["fp"] + 1e-7)
    if given_sensitivity:  # the LAST threshold nearest the sensitivity
        gap = np.abs(sens - target)
        i = np.flatnonzero(gap == gap.min())[-1]
        return spec[i]
    return sens[np.argmin(np.abs(spec - target))]  # the first nearest


@pytest.mark.parametrize("target", [0.3, 0.8])
def test_sensitivity_specificity(target):
    bs = scores()
    v, _ = stream(lambda y, p: af.metrics.sensitivity_at_specificity(y, p, target), bs)
    np.testing.assert_allclose(v, _rate_at(bs, target, False), rtol=1e-5)
    v, _ = stream(lambda y, p: af.metrics.specificity_at_sensitivity(y, p, target), bs)
    np.testing.assert_allclose(v, _rate_at(bs, target, True), rtol=1e-5)


def test_mean_iou_and_per_class_accuracy():
    bs = [(R.integers(0, 4, 15), R.integers(0, 4, 15), R.uniform(0, 2, 15)) for _ in range(3)]
    bs = [(y.astype(np.int64), p.astype(np.int64), w.astype(np.float32)) for y, p, w in bs]
    y = np.concatenate([b[0] for b in bs])
    p = np.concatenate([b[1] for b in bs])
    w = np.concatenate([b[2] for b in bs])
    cm = np.zeros((5, 5))  # class 4 never appears: left out of the IoU mean
    np.add.at(cm, (y, p), w)
    inter, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
    want = (inter[union > 0] / union[union > 0]).mean()
    v, u = stream(lambda a, b, c: af.metrics.mean_iou(a, b, 5, weights=c), bs)
    np.testing.assert_allclose(v, want, rtol=1e-5)
    np.testing.assert_allclose(u, cm, rtol=1e-5)  # TF's update op: the confusion matrix
    per = np.array([(w[(y == k) & (p == k)]).sum() / max(w[y == k].sum(), 1e-30)
                    for k in range(5)])
    v, u = stream(lambda a, b, c: af.metrics.mean_per_class_accuracy(a, b, 5, weights=c), bs)
    np.testing.assert_allclose(v, per.mean(), rtol=1e-5)  # unseen classes count as 0
    np.testing.assert_allclose(u, per, rtol=1e-5)


def test_percentage_relative_error_cosine():
    bs = [(R.uniform(-1, 1, (6, 3)).astype(np.float32), R.uniform(-1, 1, (6, 3)).astype(
        np.float32)) for _ in range(3)]
    a = np.concatenate([b[0] for b in bs])
    b = np.concatenate([b[1] for b in bs])
    v, _ = stream(lambda x, _: af.metrics.percentage_below(x, 0.25), bs)
    np.testing.assert_allclose(v, (a < 0.25).mean(), rtol=1e-6)
    v, _ = stream(lambda x, y: af.metrics.mean_relative_error(x, y, x), bs)
    np.testing.assert_allclose(v, (np.abs(a - b) / a).mean(), rtol=1e-4)
    v, u = stream(lambda x, y: af.metrics.mean_cosine_distance(x, y, dim=1), bs)
    np.testing.assert_allclose(v, 1 - (a * b).sum(1).mean(), rtol=1e-5)
    assert u.shape == ()


def np_topk_metrics(labels, preds, k):
    tp = fp = fn = 0
    aps = []
    for lab, pr in zip(labels, preds, strict=True):
        top = np.argsort(-pr, kind="stable")[:k]
        rel = [int(t in set(lab)) for t in top]
        tp += sum(rel)
        fp += k - sum(rel)
        fn += len(set(lab)) - sum(rel)
        hits = np.cumsum(rel)
        aps.append(sum(hits[i] / (i + 1) for i in range(k) if rel[i]) / min(len(set(lab)), k))
    return tp / (tp + fp), tp / (tp + fn), np.mean(aps)


def test_top_k_metrics():
    bs = [(np.stack([R.choice(6, 2, replace=False) for _ in range(5)]).astype(np.int64),
           R.uniform(0, 1, (5, 6)).astype(np.float32)) for _ in range(3)]
    labels = np.concatenate([b[0] for b in bs])
    preds = np.concatenate([b[1] for b in bs])
    prec, rec, ap = np_topk_metrics(labels, preds, 3)
    for fn, want in ((af.metrics.precision_at_k, prec), (af.metrics.recall_at_k, rec),
                     (af.metrics.average_precision_at_k, ap),
                     (af.metrics.sparse_precision_at_k, prec)):
        v, _ = stream(lambda y, p: fn(y, p, 3), bs)
        assert v.dtype == np.float64
        np.testing.assert_allclose(v, want, rtol=1e-12)
    v, _ = stream(lambda y, p: af.metrics.precision_at_top_k(y, af.nn.top_k(p, 3)[1]), bs)
    np.testing.assert_allclose(v, prec, rtol=1e-12)


def test_audit_values_and_careful_auc():
    lab = np.int64([[1], [0], [1], [1], [0], [0]])
    pred = np.float32([[0.9], [0.2], [0.4], [0.7], [0.6], [0.1]])
    bs = [(lab, pred)] * 3
    v, _ = stream(lambda y, p: af.metrics.auc(y, p, summation_method="careful_interpolation"),
                  bs)
    np.testing.assert_allclose(v, 0.8888887763023376, rtol=1e-6)  # TF 2.21's value
    # PR with careful interpolation on a curve with a known area: perfect ranking -> ~1
    v, _ = stream(lambda y, p: af.metrics.auc(y, p, curve="PR",
                                              summation_method="careful_interpolation"),
                  [(np.int64([1, 1, 0, 0]), np.float32([0.9, 0.8, 0.2, 0.1]))])
    assert 0.99 < v <= 1.0
    v, _ = stream(lambda y, p: af.metrics.mean_iou(y, p, 3),
                  [(np.int32([0, 1, 2, 2, 1]), np.int32([0, 2, 2, 1, 1]))] * 3)
    np.testing.assert_allclose(v, 0.5555555820465088, rtol=1e-6)
    with pytest.raises(ValueError, match="class_id"):
        af.metrics.precision_at_k(af.constant([[1]]), af.constant([[0.1, 0.9]]), 1, class_id=1)
