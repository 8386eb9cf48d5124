"""``af.contrib.tensorboard``: the embedding projector's config writer (plugins.projector)."""

from actorflow.contrib.tensorboard import plugins

__all__ = ["plugins"]
