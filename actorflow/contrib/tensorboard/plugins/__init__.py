"""TensorBoard plugins programs configure from TF1: the embedding projector."""

from actorflow.contrib.tensorboard.plugins import projector

__all__ = ["projector"]
