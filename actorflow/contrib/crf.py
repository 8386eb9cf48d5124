"""``af.contrib.crf``: a linear-chain conditional random field (Lafferty et al. 2001), TF1's
contrib.crf: the log-likelihood of tag sequences under unary scores [batch, time, tags] and a
[tags, tags] transition matrix (trained with it), and Viterbi decoding, in the graph
(`crf_decode`) or in NumPy (`viterbi_decode`). Sequences are masked by their lengths; the
forward recursion (the log-partition) runs as an `af.scan` over time, so it differentiates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import (
    array_ops,
    compare_ops,
    index_ops,
    join_ops,
    math_ops,
    partition_ops,
    reduction_ops,
)
from actorflow.ops.functional_ops import scan
from devices import dtypes

__all__ = ["crf_log_likelihood", "crf_sequence_score", "crf_log_norm", "crf_decode",
           "viterbi_decode", "crf_unary_score", "crf_binary_score"]


def _mask(lengths: Tensor, t: Any, dtype: Any) -> Tensor:
    from actorflow.ops.composite_ops import sequence_mask
    return compare_ops.cast(sequence_mask(lengths, t), dtype)


def crf_unary_score(tag_indices: Any, sequence_lengths: Any, inputs: Any) -> Tensor:
    from actorflow.ops.index_ops import one_hot
    x = convert_to_tensor(inputs)
    n, t = x.shape[2], array_ops.shape(x)[1]
    if n is None:
        raise ValueError("the CRF needs the number of tags (inputs' last dimension) to be "
                         "known when the graph is built")
    picked = reduction_ops.reduce_sum(math_ops.multiply(one_hot(tag_indices, int(n),
                                                                dtype=x.dtype), x), 2)
    return reduction_ops.reduce_sum(math_ops.multiply(picked, _mask(sequence_lengths, t,
                                                                    x.dtype)), 1)


def crf_binary_score(tag_indices: Any, sequence_lengths: Any, transition_params: Any) -> Tensor:
    trans = convert_to_tensor(transition_params)
    tags = compare_ops.cast(convert_to_tensor(tag_indices), dtypes.int32)
    n = array_ops.shape(trans)[0]
    pair = math_ops.add(math_ops.multiply(tags[:, :-1], n), tags[:, 1:])
    scores = index_ops.gather(array_ops.reshape(trans, [-1]), pair)
    mask = _mask(sequence_lengths, array_ops.shape(tags)[1], trans.dtype)[:, 1:]
    return reduction_ops.reduce_sum(math_ops.multiply(scores, mask), 1)


def crf_sequence_score(inputs: Any, tag_indices: Any, sequence_lengths: Any,
                       transition_params: Any) -> Tensor:
    """The unnormalized score of each tag sequence: unary plus transition scores."""
    return math_ops.add(crf_unary_score(tag_indices, sequence_lengths, inputs),
                        crf_binary_score(tag_indices, sequence_lengths, transition_params))


def crf_log_norm(inputs: Any, sequence_lengths: Any, transition_params: Any) -> Tensor:
    """log Z: the log-sum-exp of the scores of every tag sequence (the forward algorithm)."""
    x = convert_to_tensor(inputs)
    trans = convert_to_tensor(transition_params)
    mask = _mask(sequence_lengths, array_ops.shape(x)[1], x.dtype)
    rest = array_ops.transpose(x[:, 1:], [1, 0, 2])  # [time - 1, batch, tags]
    live = array_ops.transpose(mask[:, 1:])            # [time - 1, batch]

    def step(alpha: Tensor, elem: Any) -> Tensor:
        scores, on = elem
        nxt = math_ops.add(reduction_ops.reduce_logsumexp(
            math_ops.add(array_ops.expand_dims(alpha, 2), trans), 1), scores)
        on = array_ops.expand_dims(on, 1)
        return math_ops.add(math_ops.multiply(nxt, on),
                            math_ops.multiply(alpha, math_ops.subtract(1.0, on)))
    alphas = scan(step, (rest, live), initializer=x[:, 0])  # empty for one time step
    every = join_ops.concat([array_ops.expand_dims(x[:, 0], 0), alphas], 0)
    return reduction_ops.reduce_logsumexp(every[-1], 1)


def crf_log_likelihood(inputs: Any, tag_indices: Any, sequence_lengths: Any,
                       transition_params: Any = None) -> tuple[Tensor, Any]:
    """(log p(tags | inputs) per sequence, the transition matrix: a new "transitions"
    variable [tags, tags] when none is given)."""
    x = convert_to_tensor(inputs)
    if transition_params is None:
        from actorflow.variable_scope import get_variable
        n = x.shape[2]
        if n is None:
            raise ValueError("crf_log_likelihood needs the number of tags (inputs' last "
                             "dimension) to be known, or transition_params")
        transition_params = get_variable("transitions", [int(n), int(n)])
    with name_scope(None, "crf_log_likelihood"):
        score = crf_sequence_score(x, tag_indices, sequence_lengths, transition_params)
        return math_ops.subtract(score, crf_log_norm(x, sequence_lengths,
                                                     transition_params)), transition_params


def viterbi_decode(score: Any, transition_params: Any) -> tuple[list[int], float]:
    """The best tag sequence of one sequence's scores [time, tags] (NumPy) and its score."""
    score, trans = np.asarray(score), np.asarray(transition_params)
    trellis = np.zeros_like(score)
    back = np.zeros_like(score, dtype=np.int32)
    trellis[0] = score[0]
    for t in range(1, score.shape[0]):
        v = trellis[t - 1][:, None] + trans
        trellis[t] = score[t] + v.max(0)
        back[t] = v.argmax(0)
    path = [int(trellis[-1].argmax())]
    for bp in reversed(back[1:]):
        path.append(int(bp[path[-1]]))
    path.reverse()
    return path, float(trellis[-1].max())


def crf_decode(potentials: Any, transition_params: Any, sequence_length: Any
               ) -> tuple[Tensor, Tensor]:
    """Viterbi in the graph, as ordinary ops (so the graph exports to a .meta and a
    SavedModel): (best tags [batch, time] int32, zero past each length; best scores
    [batch], zero for an empty sequence).

    Forward, an `af.scan` over time: the trellis ``alpha`` (best score ending in each tag)
    and each step's back-pointers (the best previous tag for each tag); a step past a
    sequence's length leaves its ``alpha`` as it was. Backward, a reversed scan from the
    best last tag follows the back-pointers wherever the step is inside the sequence."""
    from actorflow.ops.composite_ops import sequence_mask
    from actorflow.ops.index_ops import one_hot
    x = convert_to_tensor(potentials)
    trans = convert_to_tensor(transition_params)
    lens = compare_ops.cast(convert_to_tensor(sequence_length), dtypes.int32)
    n = x.shape[2]
    if n is None:
        raise ValueError("crf_decode needs the number of tags (potentials' last dimension) "
                         "to be known when the graph is built")
    n = int(n)
    with name_scope(None, "crf_decode"):
        t = array_ops.shape(x)[1]
        on = sequence_mask(lens, t)                          # [batch, time] bool
        # every step scanned (never an empty scan), step 0 as if past the end: a no-op
        steps = array_ops.transpose(x, [1, 0, 2])          # [time, batch, tags]
        live = array_ops.transpose(compare_ops.logical_and(
            on, compare_ops.greater(partition_ops.range(t), 0)))  # [time, batch]

        def forward(carry: Any, elem: Any) -> tuple[Tensor, Tensor]:
            alpha, _ = carry
            scores, inside = elem
            v = math_ops.add(array_ops.expand_dims(alpha, 2), trans)  # [batch, from, to]
            nxt = math_ops.add(reduction_ops.reduce_max(v, 1), scores)
            back = compare_ops.cast(reduction_ops.argmax(v, 1), dtypes.int32)
            return compare_ops.where(array_ops.expand_dims(inside, 1), nxt, alpha), back
        alpha0 = x[:, 0]
        alphas, backs = scan(forward, (steps, live),
                             initializer=(alpha0, array_ops.zeros_like(
                                 compare_ops.cast(alpha0, dtypes.int32))))
        final = alphas[-1]
        last = compare_ops.cast(reduction_ops.argmax(final, 1), dtypes.int32)

        def backward(cur: Tensor, elem: Any) -> Tensor:
            back, inside = elem  # step t's back-pointers: the tag at t - 1, if t is inside
            prev = reduction_ops.reduce_sum(
                math_ops.multiply(one_hot(cur, n, dtype=dtypes.int32), back), 1)
            return compare_ops.where(inside, prev, cur)
        earlier = scan(backward, (backs, live), initializer=last, reverse=True)[1:]
        path = join_ops.concat([earlier, array_ops.expand_dims(last, 0)], 0)  # [time, batch]
        tags = math_ops.multiply(array_ops.transpose(path),
                                 compare_ops.cast(on, dtypes.int32))
        any_ = compare_ops.cast(compare_ops.greater(lens, 0), x.dtype)
        best = math_ops.multiply(reduction_ops.reduce_max(final, 1), any_)
        return tags, best
