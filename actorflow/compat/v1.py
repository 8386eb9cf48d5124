"""``import actorflow.compat.v1 as tf``: the TF1 namespace, which is actorflow itself."""

import sys

import actorflow

sys.modules[__name__] = actorflow
