"""``af.contrib``: the parts of TF1's contrib that programs use: ``rnn``, ``layers`` and
``tensorboard.plugins.projector`` and ``factorization.KMeans``."""

from actorflow import distributions
from actorflow.contrib import (
    crf,
    factorization,
    framework,
    layers,
    legacy_seq2seq,
    lookup,
    metrics,
    rnn,
    seq2seq,
    tensorboard,
)

__all__ = ["crf", "distributions", "factorization", "framework", "layers", "legacy_seq2seq",
           "lookup", "metrics", "rnn", "seq2seq", "tensorboard"]
