"""``af.losses``: TF1's loss functions with weights and reductions, and the LOSSES and
REGULARIZATION_LOSSES collections.

    loss = af.losses.sparse_softmax_cross_entropy(labels=y, logits=logits)
    total = af.losses.get_total_loss()      # every added loss + the regularization losses

Each loss computes per-element losses, multiplies by `weights` (broadcast to them), reduces by
`reduction` (default ``Reduction.SUM_BY_NONZERO_WEIGHTS``: the weighted sum over the number of
non-zero weights, 0 when there are none) and adds the result to `loss_collection`.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import GraphKeys, Tensor, get_default_graph, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, math_ops, nn_ops, reduction_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["Reduction", "compute_weighted_loss", "add_loss", "get_losses",
           "get_regularization_losses", "get_regularization_loss", "get_total_loss",
           "sparse_softmax_cross_entropy", "softmax_cross_entropy", "sigmoid_cross_entropy",
           "mean_squared_error", "absolute_difference", "huber_loss", "log_loss",
           "hinge_loss", "cosine_distance", "mean_pairwise_squared_error"]


class Reduction:
    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE,
                cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key: str) -> None:
        if key not in cls.all():
            raise InvalidArgumentError(f"invalid reduction {key!r}; use one of af.losses."
                                       f"Reduction's values: {', '.join(cls.all())}")


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    ok = compare_ops.greater(den, 0.0)
    return compare_ops.where(ok, math_ops.truediv(num, math_ops.maximum(den, 1e-30)),
                             array_ops.zeros_like(num))


def compute_weighted_loss(losses: Any, weights: Any = 1.0, scope: str | None = None,
                          loss_collection: str | None = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weight `losses`, reduce them by `reduction`, add the result to `loss_collection`."""
    Reduction.validate(reduction)
    with name_scope(scope, "weighted_loss"):
        losses = convert_to_tensor(losses)
        dt = losses.dtype
        if not dt.is_floating:
            losses = compare_ops.cast(losses, dtypes.float32)
            dt = dtypes.float32
        w = compare_ops.cast(weights, dt) if isinstance(weights, Tensor) else \
            convert_to_tensor(weights, dtype=dt)
        weighted = math_ops.multiply(losses, w)
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            total = reduction_ops.reduce_sum(weighted)
            if reduction == Reduction.SUM:
                loss = total
            elif reduction == Reduction.MEAN:
                wb = math_ops.multiply(array_ops.ones_like(losses), w)
                loss = _safe_div(total, reduction_ops.reduce_sum(wb))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _safe_div(total, compare_ops.cast(array_ops.size(losses), dt))
            else:
                wb = math_ops.multiply(array_ops.ones_like(losses), w)
                present = reduction_ops.reduce_sum(compare_ops.cast(
                    compare_ops.not_equal(wb, 0.0), dt))
                loss = _safe_div(total, present)
        if loss_collection:
            get_default_graph().add_to_collection(loss_collection, loss)
        return loss


def add_loss(loss: Tensor, loss_collection: str = GraphKeys.LOSSES) -> None:
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def get_losses(scope: str | None = None, loss_collection: str = GraphKeys.LOSSES) -> list[Any]:
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope: str | None = None,
                            name: str = "total_regularization_loss") -> Tensor:
    losses = get_regularization_losses(scope)
    if not losses:
        return convert_to_tensor(0.0, dtype=dtypes.float32, name=name)
    return math_ops.add_n(losses, name=name)


def get_total_loss(add_regularization_losses: bool = True, name: str = "total_loss",
                   scope: str | None = None) -> Tensor:
    losses = list(get_losses(scope))
    if add_regularization_losses:
        losses += get_regularization_losses(scope)
    if not losses:
        raise InvalidArgumentError("get_total_loss: no losses were added (use af.losses.* or "
                                   "af.losses.add_loss)")
    return math_ops.add_n(losses, name=name)


def _prep(labels: Any, predictions: Any) -> tuple[Tensor, Tensor]:
    p = convert_to_tensor(predictions)
    y = compare_ops.cast(labels, p.dtype) if isinstance(labels, Tensor) else \
        convert_to_tensor(labels, dtype=p.dtype)
    return y, p


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0,
                                 scope: str | None = None,
                                 loss_collection: str = GraphKeys.LOSSES,
                                 reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    with name_scope(scope, "sparse_softmax_cross_entropy_loss"):
        xent = nn_ops.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return compute_weighted_loss(xent, weights, None, loss_collection, reduction)


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: str | None = None,
                          loss_collection: str = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    with name_scope(scope, "softmax_cross_entropy_loss"):
        y, lg = _prep(onehot_labels, logits)
        if label_smoothing:
            k = compare_ops.cast(_depth(y), lg.dtype)
            y = math_ops.add(math_ops.multiply(y, 1.0 - label_smoothing),
                             math_ops.truediv(label_smoothing, k))
        xent = nn_ops.softmax_cross_entropy_with_logits_v2(labels=y, logits=lg)
        return compute_weighted_loss(xent, weights, None, loss_collection, reduction)


def _depth(y: Tensor) -> Tensor:
    from actorflow.ops import index_ops
    return index_ops.gather(array_ops.shape(y), (y.shape.rank or 2) - 1)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: str | None = None,
                          loss_collection: str = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    with name_scope(scope, "sigmoid_cross_entropy_loss"):
        y, lg = _prep(multi_class_labels, logits)
        if label_smoothing:
            y = math_ops.add(math_ops.multiply(y, 1.0 - label_smoothing), 0.5 * label_smoothing)
        xent = nn_ops.sigmoid_cross_entropy_with_logits(labels=y, logits=lg)
        return compute_weighted_loss(xent, weights, None, loss_collection, reduction)


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0,
                       scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
                       reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    with name_scope(scope, "mean_squared_error"):
        y, p = _prep(labels, predictions)
        return compute_weighted_loss(math_ops.squared_difference(p, y), weights, None,
                                     loss_collection, reduction)


def absolute_difference(labels: Any, predictions: Any, weights: Any = 1.0,
                        scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
                        reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    with name_scope(scope, "absolute_difference"):
        y, p = _prep(labels, predictions)
        return compute_weighted_loss(math_ops.abs(math_ops.subtract(p, y)), weights, None,
                                     loss_collection, reduction)


def huber_loss(labels: Any, predictions: Any, weights: Any = 1.0, delta: float = 1.0,
               scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """0.5 * e**2 where |e| <= delta, else delta * (|e| - 0.5 * delta)."""
    with name_scope(scope, "huber_loss"):
        y, p = _prep(labels, predictions)
        e = math_ops.abs(math_ops.subtract(p, y))
        quad = math_ops.minimum(e, delta)
        lin = math_ops.subtract(e, quad)
        per = math_ops.add(math_ops.multiply(0.5, math_ops.square(quad)),
                           math_ops.multiply(delta, lin))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def log_loss(labels: Any, predictions: Any, weights: Any = 1.0, epsilon: float = 1e-7,
             scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
             reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """-y log(p + eps) - (1 - y) log(1 - p + eps)."""
    with name_scope(scope, "log_loss"):
        y, p = _prep(labels, predictions)
        per = math_ops.negative(math_ops.add(
            math_ops.multiply(y, math_ops.log(math_ops.add(p, epsilon))),
            math_ops.multiply(math_ops.subtract(1.0, y),
                              math_ops.log(math_ops.add(math_ops.subtract(1.0, p), epsilon)))))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def hinge_loss(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
               loss_collection: str = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """max(0, 1 - (2y - 1) * logits) for labels y in {0, 1}."""
    with name_scope(scope, "hinge_loss"):
        y, lg = _prep(labels, logits)
        s = math_ops.subtract(math_ops.multiply(2.0, y), 1.0)
        per = nn_ops.relu(math_ops.subtract(1.0, math_ops.multiply(s, lg)))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def cosine_distance(labels: Any, predictions: Any, axis: int | None = None,
                    weights: Any = 1.0, scope: str | None = None,
                    loss_collection: str = GraphKeys.LOSSES,
                    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS,
                    dim: int | None = None) -> Tensor:
    """1 - sum(labels * predictions, axis) (inputs already unit-normalised, as in TF)."""
    ax = axis if axis is not None else dim
    if ax is None:
        raise InvalidArgumentError("cosine_distance needs axis=")
    with name_scope(scope, "cosine_distance_loss"):
        y, p = _prep(labels, predictions)
        per = math_ops.subtract(1.0, reduction_ops.reduce_sum(math_ops.multiply(y, p), ax,
                                                               keepdims=True))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def mean_pairwise_squared_error(labels: Any, predictions: Any, weights: Any = 1.0,
                                scope: str | None = None,
                                loss_collection: str = GraphKeys.LOSSES) -> Tensor:
    """Per example: mean over pairs (i, j) of ((p_i - p_j) - (y_i - y_j))**2."""
    with name_scope(scope, "mean_pairwise_squared_error"):
        y, p = _prep(labels, predictions)
        d = math_ops.subtract(p, y)
        r = d.shape.rank or 2
        axes = list(range(1, r))
        n = compare_ops.cast(array_ops.size(d), d.dtype)
        b = compare_ops.cast(_batch(d), d.dtype)
        n = math_ops.truediv(n, b)
        s2 = reduction_ops.reduce_sum(math_ops.square(d), axes)
        s1 = reduction_ops.reduce_sum(d, axes)
        per = math_ops.subtract(
            math_ops.multiply(2.0, _safe_div(s2, math_ops.subtract(n, 1.0))),
            math_ops.multiply(2.0, _safe_div(math_ops.square(s1),
                                             math_ops.multiply(n, math_ops.subtract(n, 1.0)))))
        return compute_weighted_loss(per, weights, None, loss_collection, Reduction.MEAN)


def _batch(d: Tensor) -> Tensor:
    from actorflow.ops import index_ops
    return index_ops.gather(array_ops.shape(d), 0)
