"""``af.contrib.legacy_seq2seq``: the per-step-list losses of TF1's legacy seq2seq."""

from actorflow.contrib.seq2seq import legacy_sequence_loss as sequence_loss
from actorflow.contrib.seq2seq import sequence_loss_by_example

__all__ = ["sequence_loss", "sequence_loss_by_example"]
