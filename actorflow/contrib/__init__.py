"""``af.contrib``: the parts of TF1's contrib that programs use: ``rnn`` and ``layers``."""

from actorflow.contrib import layers, rnn

__all__ = ["layers", "rnn"]
