"""``af.contrib``: the parts of TF1's contrib that programs use: ``rnn``, ``layers`` and
``tensorboard.plugins.projector``."""

from actorflow.contrib import layers, rnn, tensorboard

__all__ = ["layers", "rnn", "tensorboard"]
