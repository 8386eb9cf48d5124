"""``af.nn``: the neural-network namespace, as TF1's ``tf.nn``.

The builders live in `actorflow.ops.nn_ops` (activations, softmax, losses, bias_add, dropout,
l2_loss, embedding_lookup, moments) and `actorflow.ops.nn_conv_ops` (conv2d, pooling); the
rest of TF1's tf.nn comes from `composite_ops` (softplus, elu, selu, relu6, leaky_relu,
in_top_k, xw_plus_b, batch_normalization, weighted and Poisson losses), `candidate_sampling_ops`
(nce_loss, sampled_softmax_loss), `scan_sort_ops` (top_k), `segment_ops`
(embedding_lookup_sparse), `grid_ops` (conv1d, lrn), `trig_ops` (swish, gelu, crelu), and
the RNNs from `actorflow.rnn_cell` (``af.nn.rnn_cell``) and `actorflow.rnn`; 3-D
convolution/pooling and the moment helpers from `nn_3d_ops`, CTC, argmax pooling and
dilation2d from `ctc_ops`, and TF1's other spellings (pool1d, convolution, erosion2d, ...)
from `nn_aliases_ops`;
``af.nn.sigmoid`` and ``af.nn.tanh`` are the math ops ``af.sigmoid`` and ``af.tanh`` (other
element-wise activations the math ops define, e.g. softplus, are looked up there too).

    logits = af.nn.bias_add(af.matmul(af.nn.dropout(h, keep_prob), w), b)
    loss = af.reduce_mean(af.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
"""

from __future__ import annotations

from typing import Any

from actorflow import rnn_cell  # noqa: E402  (af.nn.rnn_cell)
from actorflow.ops.candidate_sampling_ops import (  # noqa: E402
    log_uniform_candidate_sampler,
    nce_loss,
    sampled_softmax_loss,
    uniform_candidate_sampler,
)

# ---- #13 (ops_api): the rest of tf.nn -----------------------------------------------------
from actorflow.ops.composite_ops import (  # noqa: E402
    batch_normalization,
    elu,
    in_top_k,
    l2_normalize,
    leaky_relu,
    log_poisson_loss,
    log_sigmoid,
    relu6,
    selu,
    softplus,
    softsign,
    weighted_cross_entropy_with_logits,
    xw_plus_b,
)
from actorflow.ops.grid_ops import (  # noqa: E402
    atrous_conv2d,
    conv1d,
    depthwise_conv2d,
    fused_batch_norm,
    local_response_normalization,
    lrn,
    separable_conv2d,
    zero_fraction,
)
from actorflow.ops.math_ops import sigmoid, tanh
from actorflow.ops.nn_conv_ops import (
    avg_pool,
    conv2d,
    conv2d_backprop_filter,
    conv2d_backprop_input,
    conv2d_transpose,
    max_pool,
)
from actorflow.ops.nn_ops import (
    bias_add,
    dropout,
    embedding_lookup,
    l2_loss,
    log_softmax,
    moments,
    relu,
    sigmoid_cross_entropy_with_logits,
    softmax,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    sparse_softmax_cross_entropy_with_logits,
)
from actorflow.ops.scan_sort_ops import top_k  # noqa: E402
from actorflow.ops.segment_ops import embedding_lookup_sparse  # noqa: E402
from actorflow.ops.trig_ops import crelu, gelu, swish  # noqa: E402
from actorflow.rnn import (  # noqa: E402
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    static_bidirectional_rnn,
    static_rnn,
)

# Element-wise activations defined with the math ops, re-exported when they are looked up.
_FROM_MATH = ("softplus", "softsign", "elu", "selu", "relu6", "leaky_relu")

__all__ = [
    "avg_pool", "bias_add", "conv2d", "conv2d_backprop_filter", "conv2d_backprop_input",
    "conv2d_transpose", "dropout", "embedding_lookup", "l2_loss", "log_softmax", "max_pool",
    "moments", "relu", "sigmoid_cross_entropy_with_logits", "softmax",
    "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
    "sparse_softmax_cross_entropy_with_logits", "sigmoid", "tanh",
]

__all__ += ["batch_normalization", "elu", "in_top_k", "l2_normalize", "leaky_relu",
            "log_poisson_loss", "log_sigmoid", "relu6", "selu", "softplus", "softsign",
            "weighted_cross_entropy_with_logits", "xw_plus_b", "rnn_cell", "dynamic_rnn",
            "static_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn", "nce_loss",
            "sampled_softmax_loss", "log_uniform_candidate_sampler",
            "uniform_candidate_sampler", "top_k", "embedding_lookup_sparse",
            "conv1d", "local_response_normalization", "lrn", "zero_fraction",
            "crelu", "gelu", "swish", "depthwise_conv2d", "separable_conv2d", "atrous_conv2d",
            "fused_batch_norm"]


def __getattr__(name: str) -> Any:
    if name in _FROM_MATH:
        from actorflow.ops import math_ops
        fn = getattr(math_ops, name, None)
        if fn is not None:
            return fn
    raise AttributeError(f"module 'af.nn' has no attribute '{name}'")


# --- s9api: 3-D conv/pooling, argmax pooling, dilation2d, CTC, moment helpers ---
from actorflow.ops.ctc_ops import (  # noqa: E402
    ctc_beam_search_decoder,
    ctc_greedy_decoder,
    ctc_loss,
    dilation2d,
    max_pool_with_argmax,
)
from actorflow.ops.nn_3d_ops import (  # noqa: E402
    avg_pool3d,
    conv3d,
    max_pool3d,
    normalize_moments,
    sufficient_statistics,
    weighted_moments,
)
from actorflow.ops.nn_aliases_ops import *  # noqa: E402,F403
from actorflow.ops.nn_aliases_ops import __all__ as _aliases_all  # noqa: E402

__all__ += _aliases_all
__all__ += ["ctc_beam_search_decoder", "ctc_loss", "ctc_greedy_decoder", "dilation2d",
            "max_pool_with_argmax"]
__all__ += ["conv3d", "max_pool3d", "avg_pool3d", "normalize_moments", "weighted_moments",
            "sufficient_statistics"]
