"""Sequence losses of TF1's ``contrib.seq2seq`` and ``contrib.legacy_seq2seq`` (the PTB and
NMT tutorials' losses): weighted softmax cross-entropy of [batch, time, classes] logits (or of
lists of per-step logits) against [batch, time] targets, averaged as TF1 averages them."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, join_ops, math_ops, reduction_ops
from actorflow.ops.nn_loss_ops import sparse_softmax_cross_entropy_with_logits
from devices import dtypes

__all__ = ["sequence_loss", "sequence_loss_by_example"]


def sequence_loss(logits: Any, targets: Any, weights: Any, average_across_timesteps: bool = True,
                  average_across_batch: bool = True, softmax_loss_function: Any = None,
                  name: str | None = None, sum_over_timesteps: bool = False,
                  sum_over_batch: bool = False) -> Tensor:
    """Weighted cross-entropy of logits [batch, time, classes] against targets [batch, time]:
    a scalar when reducing both axes, [batch] or [time] when one, [batch, time] when none.
    `average_across_*` divide the sum by the total label weight, `sum_over_*` by the number of
    non-zero weights (TF 1.15's semantics)."""
    if average_across_timesteps and sum_over_timesteps:
        raise ValueError("average_across_timesteps and sum_over_timesteps cannot be both True")
    if average_across_batch and sum_over_batch:
        raise ValueError("average_across_batch and sum_over_batch cannot be both True")
    with name_scope(name, "sequence_loss"):
        x = convert_to_tensor(logits)
        if x.shape.rank != 3:
            raise ValueError("Logits must be a [batch_size x sequence_length x logits_dim] "
                             "tensor")
        y = convert_to_tensor(targets)
        w = compare_ops.cast(convert_to_tensor(weights), x.dtype)
        w = math_ops.add(w, array_ops.zeros_like(compare_ops.cast(y, x.dtype)))
        n = array_ops.shape(x)[2]
        flat_x = array_ops.reshape(x, join_ops.stack([-1, n]))
        flat_y = array_ops.reshape(y, [-1])
        if softmax_loss_function is None:
            ce = sparse_softmax_cross_entropy_with_logits(labels=flat_y, logits=flat_x)
        else:
            ce = softmax_loss_function(labels=flat_y, logits=flat_x)
        ce = math_ops.multiply(ce, array_ops.reshape(w, [-1]))
        if average_across_timesteps and average_across_batch:  # / the total label weight
            return math_ops.truediv(reduction_ops.reduce_sum(ce),
                                    math_ops.add(reduction_ops.reduce_sum(w), 1e-12))
        if sum_over_timesteps and sum_over_batch:  # / the count of non-zero weights
            return _div_no_nan(reduction_ops.reduce_sum(ce), _count(w, None, x.dtype))
        ce = array_ops.reshape(ce, array_ops.shape(x)[:2])
        if average_across_timesteps or average_across_batch:
            axis = 0 if average_across_batch else 1
            return _div_no_nan(reduction_ops.reduce_sum(ce, axis),
                               reduction_ops.reduce_sum(w, axis))
        if sum_over_timesteps or sum_over_batch:
            axis = 0 if sum_over_batch else 1
            return _div_no_nan(reduction_ops.reduce_sum(ce, axis), _count(w, axis, x.dtype))
        return ce


def _count(w: Tensor, axis: Any, dtype: Any) -> Tensor:
    nz = compare_ops.cast(compare_ops.not_equal(w, 0.0), dtype)
    return reduction_ops.reduce_sum(nz) if axis is None else reduction_ops.reduce_sum(nz, axis)


def _div_no_nan(a: Tensor, b: Tensor) -> Tensor:
    safe = compare_ops.where(compare_ops.equal(b, 0.0), array_ops.ones_like(b), b)
    return compare_ops.where(compare_ops.equal(b, 0.0), array_ops.zeros_like(a),
                             math_ops.truediv(a, safe))


def sequence_loss_by_example(logits: list[Any], targets: list[Any], weights: list[Any],
                             average_across_timesteps: bool = True,
                             softmax_loss_function: Any = None,
                             name: str | None = None) -> Tensor:
    """legacy_seq2seq: per-example loss [batch] from lists (one entry per step) of logits
    [batch, classes], targets [batch] and weights [batch]."""
    if not len(logits) == len(targets) == len(weights):
        raise ValueError(f"Lengths of logits, weights, and targets must be the same "
                         f"{len(logits)}, {len(weights)}, {len(targets)}.")
    with name_scope(name, "sequence_loss_by_example"):
        terms = []
        for lg, t, w in zip(logits, targets, weights, strict=True):
            if softmax_loss_function is None:
                ce = sparse_softmax_cross_entropy_with_logits(
                    labels=array_ops.reshape(t, [-1]), logits=lg)
            else:
                ce = softmax_loss_function(labels=t, logits=lg)
            terms.append(math_ops.multiply(ce, compare_ops.cast(convert_to_tensor(w),
                                                                dtypes.float32)))
        total = math_ops.add_n(terms)
        if average_across_timesteps:
            wsum = math_ops.add(math_ops.add_n([compare_ops.cast(convert_to_tensor(w),
                                                                 dtypes.float32)
                                                for w in weights]), 1e-12)
            total = math_ops.truediv(total, wsum)
        return total


def legacy_sequence_loss(logits: list[Any], targets: list[Any], weights: list[Any],
                         average_across_timesteps: bool = True,
                         average_across_batch: bool = True, softmax_loss_function: Any = None,
                         name: str | None = None) -> Tensor:
    """legacy_seq2seq.sequence_loss: the per-example losses summed, / batch size if asked."""
    with name_scope(name, "sequence_loss"):
        cost = reduction_ops.reduce_sum(sequence_loss_by_example(
            logits, targets, weights, average_across_timesteps, softmax_loss_function))
        if average_across_batch:
            batch = compare_ops.cast(array_ops.shape(convert_to_tensor(targets[0]))[0],
                                     cost.dtype)
            return math_ops.truediv(cost, batch)
        return cost
