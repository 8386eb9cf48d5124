"""``af.random``: the random ops under their TF2-style names.

    af.random.set_seed(0)
    x = af.random.normal((2, 3), stddev=0.5)
    ids = af.random.uniform((8,), maxval=10, dtype=af.int32)
"""

from __future__ import annotations

from actorflow.graph import set_random_seed as set_seed
from actorflow.ops.random_ops import categorical, truncated_normal
from actorflow.ops.random_ops import random_normal as normal
from actorflow.ops.random_ops import random_shuffle as shuffle
from actorflow.ops.random_ops import random_uniform as uniform

__all__ = ["set_seed", "normal", "uniform", "truncated_normal", "shuffle", "categorical"]
