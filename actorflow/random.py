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

# --- s9api: gamma, poisson and the rest of tf.compat.v1.random's names ---
from actorflow.graph import get_seed  # noqa: E402
from actorflow.graph import set_random_seed as set_random_seed  # noqa: E402
from actorflow.ops.candidate_sampling_ops import (  # noqa: E402
    log_uniform_candidate_sampler,
    uniform_candidate_sampler,
)
from actorflow.ops.random_more_ops import random_gamma as gamma  # noqa: E402
from actorflow.ops.random_more_ops import random_poisson as poisson  # noqa: E402
from actorflow.ops.random_ops import multinomial  # noqa: E402

__all__ += ["gamma", "poisson", "multinomial", "set_random_seed", "get_seed",
            "log_uniform_candidate_sampler", "uniform_candidate_sampler"]
