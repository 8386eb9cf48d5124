"""``af.contrib``: the parts of TF1's contrib that programs use: ``rnn``, ``layers`` and
``tensorboard.plugins.projector`` and ``factorization.KMeans``."""

from actorflow import distributions
from actorflow.contrib import (
    crf,
    factorization,
    framework,
    layers,
    lookup,
    metrics,
    rnn,
    tensorboard,
)

__all__ = ["crf", "distributions", "factorization", "framework", "layers", "lookup", "metrics",
           "rnn", "tensorboard"]
