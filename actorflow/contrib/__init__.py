"""``af.contrib``: the parts of TF1's contrib that programs use: ``rnn``, ``layers`` and
``tensorboard.plugins.projector`` and ``factorization.KMeans``."""

from actorflow import distributions
from actorflow.contrib import (
    factorization,
    framework,
    layers,
    lookup,
    metrics,
    rnn,
    tensorboard,
)

__all__ = ["distributions", "factorization", "framework", "layers", "lookup", "metrics", "rnn",
           "tensorboard"]
