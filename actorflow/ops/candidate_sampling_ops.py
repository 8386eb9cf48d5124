"""Candidate samplers and the sampled losses built on them: ``nce_loss`` (noise-contrastive
estimation, word2vec's loss) and ``sampled_softmax_loss``, with TF1's arguments.

    loss = af.reduce_mean(af.nn.nce_loss(weights=nce_w, biases=nce_b, labels=y,
                                         inputs=embed, num_sampled=64, num_classes=vocab))

Both gather only the rows of `weights` for the true and sampled classes, so the gradient of
the (large) weight matrix is an IndexedSlices of those rows, as in TF. The sampled logits are
corrected by subtracting log(expected count) (``subtract_log_q``); with
``remove_accidental_hits`` a sampled class equal to a true class of the row is masked out.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, get_seed, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from actorflow.ops import (
    array_ops,
    compare_ops,
    core_ops,
    join_ops,
    math_ops,
    nn_ops,
    reduction_ops,
)
from actorflow.ops.nn_ops import embedding_lookup
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["log_uniform_candidate_sampler", "uniform_candidate_sampler", "nce_loss",
           "sampled_softmax_loss"]


def _sampler_infer(ins: list[Tensor], attrs: dict) -> list:
    t = ins[0]
    n = int(attrs["num_sampled"])
    return [(dtypes.int64, (n,)), (dtypes.float32, t._shape), (dtypes.float32, (n,))]


for _op in ("LogUniformCandidateSampler", "UniformCandidateSampler"):
    define_op(_op, infer=_sampler_infer, stateful=True)
    no_gradient(_op)


def _sample(op: str, true_classes: Any, num_true: int, num_sampled: int, unique: bool,
            range_max: int, seed: int | None, name: str | None) -> tuple[Tensor, ...]:
    tc = compare_ops.cast(convert_to_tensor(true_classes), dtypes.int64)
    if tc.shape.rank is not None and tc.shape.rank != 2:
        raise InvalidArgumentError(f"true_classes must be [batch, num_true], got {tc.shape}")
    gs, os_ = get_seed(seed)
    attrs = {"num_true": int(num_true), "num_sampled": int(num_sampled),
             "unique": bool(unique), "range_max": int(range_max), "seed": int(gs),
             "seed2": int(os_)}
    return apply_op(op, [tc], attrs, name=name or op)


def log_uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int,
                                  unique: bool, range_max: int, seed: int | None = None,
                                  name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(sampled [num_sampled], true_expected_count, sampled_expected_count): classes drawn
    with P(c) = log((c + 2) / (c + 1)) / log(range_max + 1) (Zipf-like, for word ids)."""
    return _sample("LogUniformCandidateSampler", true_classes, num_true, num_sampled, unique,
                   range_max, seed, name)  # type: ignore[return-value]


def uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int,
                              unique: bool, range_max: int, seed: int | None = None,
                              name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    return _sample("UniformCandidateSampler", true_classes, num_true, num_sampled, unique,
                   range_max, seed, name)  # type: ignore[return-value]


def _sampled_logits(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int,
                    num_classes: int, num_true: int, sampled_values: Any,
                    subtract_log_q: bool, remove_accidental_hits: bool,
                    partition_strategy: str, seed: int | None) -> tuple[Tensor, Tensor]:
    """([batch, num_true + num_sampled] logits, labels of the same shape)."""
    x = convert_to_tensor(inputs)
    y = compare_ops.cast(convert_to_tensor(labels), dtypes.int64)
    if y.shape.rank == 1:
        y = array_ops.expand_dims(y, 1)
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(y, num_true, num_sampled, True,
                                                       num_classes, seed)
    sampled, true_exp, sampled_exp = (core_ops.stop_gradient(v) for v in sampled_values)
    flat_y = array_ops.reshape(y, [-1])
    ids = join_ops.concat([flat_y, sampled], 0)
    w_all = embedding_lookup(weights, ids, partition_strategy=partition_strategy)
    b_all = embedding_lookup(biases, ids, partition_strategy=partition_strategy)
    n_true = array_ops.size(flat_y)
    from actorflow.ops import index_ops
    w_true = index_ops.slice_(w_all, join_ops.stack([0, 0]),
                              join_ops.stack([n_true, -1]))
    w_s = index_ops.slice_(w_all, join_ops.stack([n_true, 0]), [-1, -1])
    b_true = index_ops.slice_(b_all, [0], array_ops.reshape(n_true, [1]))
    b_s = index_ops.slice_(b_all, array_ops.reshape(n_true, [1]), [-1])
    dim = index_ops.gather(array_ops.shape(w_true), 1)
    w_true = array_ops.reshape(w_true, join_ops.stack([-1, num_true, dim]))
    true_logits = reduction_ops.reduce_sum(
        math_ops.multiply(array_ops.expand_dims(x, 1), w_true), 2)        # [B, num_true]
    true_logits = math_ops.add(true_logits, array_ops.reshape(b_true, [-1, num_true]))
    s_logits = math_ops.add(math_ops.matmul(x, w_s, transpose_b=True), b_s)  # [B, S]
    if remove_accidental_hits:
        hit = reduction_ops.reduce_any(compare_ops.equal(
            array_ops.expand_dims(y, 2), array_ops.reshape(sampled, [1, 1, -1])), 1)
        # TF adds -FLOAT_MAX to the logit of an accidental hit: it drops out of the loss
        s_logits = math_ops.add(s_logits, math_ops.multiply(
            compare_ops.cast(hit, s_logits.dtype), -3.4e38))
    if subtract_log_q:
        true_logits = math_ops.subtract(true_logits, math_ops.log(
            compare_ops.cast(true_exp, true_logits.dtype)))
        s_logits = math_ops.subtract(s_logits, math_ops.log(
            compare_ops.cast(sampled_exp, s_logits.dtype)))
    logits = join_ops.concat([true_logits, s_logits], 1)
    out_labels = join_ops.concat([
        math_ops.truediv(array_ops.ones_like(true_logits), float(num_true)),
        array_ops.zeros_like(s_logits)], 1)
    return logits, out_labels


def nce_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int,
             num_classes: int, num_true: int = 1, sampled_values: Any = None,
             remove_accidental_hits: bool = False, partition_strategy: str = "mod",
             name: str = "nce_loss", seed: int | None = None) -> Tensor:
    """Per example [batch]: the sum of sigmoid cross entropies of the true classes (label 1)
    and the sampled classes (label 0)."""
    with name_scope(name):
        logits, y = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes,
                                    num_true, sampled_values, True, remove_accidental_hits,
                                    partition_strategy, seed)
        if num_true > 1:
            y = compare_ops.cast(compare_ops.greater(y, 0.0), y.dtype)
        xent = nn_ops.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
        return reduction_ops.reduce_sum(xent, 1)


def sampled_softmax_loss(weights: Any, biases: Any, labels: Any, inputs: Any,
                         num_sampled: int, num_classes: int, num_true: int = 1,
                         sampled_values: Any = None, remove_accidental_hits: bool = True,
                         partition_strategy: str = "mod", name: str = "sampled_softmax_loss",
                         seed: int | None = None) -> Tensor:
    """Per example [batch]: softmax cross entropy over the true and the sampled classes."""
    with name_scope(name):
        logits, y = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes,
                                    num_true, sampled_values, True, remove_accidental_hits,
                                    partition_strategy, seed)
        return nn_ops.softmax_cross_entropy_with_logits_v2(labels=core_ops.stop_gradient(y),
                                                           logits=logits)
