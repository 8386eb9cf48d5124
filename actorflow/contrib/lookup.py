"""``af.contrib.lookup``: TF1's lookup tables (`actorflow.lookup_ops`)."""

from actorflow.lookup_ops import *  # noqa: F403
from actorflow.lookup_ops import __all__  # noqa: F401
