"""Training: optimizers (as graph code) and the global step; ``af.train``.

    opt = af.train.AdamOptimizer(1e-3)
    train_op = opt.minimize(loss, global_step=af.train.get_or_create_global_step())
"""

from actorflow.train.adagrad import AdagradOptimizer
from actorflow.train.adam import AdamOptimizer
from actorflow.train.gradient_descent import GradientDescentOptimizer
from actorflow.train.momentum import MomentumOptimizer
from actorflow.train.optimizer import Optimizer
from actorflow.train.rmsprop import RMSPropOptimizer
from actorflow.train.training_util import (
    create_global_step,
    get_global_step,
    get_or_create_global_step,
    global_step,
)

__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdagradOptimizer",
           "RMSPropOptimizer", "AdamOptimizer", "get_global_step", "create_global_step",
           "get_or_create_global_step", "global_step"]
# ---- #13 (ops_api): learning-rate schedules and TF1 aliases -----------------------------
from actorflow.server import ClusterSpec, Server  # noqa: E402
from actorflow.train.adadelta import (  # noqa: E402
    AdadeltaOptimizer,
    ProximalGradientDescentOptimizer,
)
from actorflow.train.device_setter import *  # noqa: E402,F403  (replica_device_setter, strategies)
from actorflow.train.learning_rate_decay import *  # noqa: E402,F403
from actorflow.train.learning_rate_decay import __all__ as _lr_all  # noqa: E402
from actorflow.train.moving_averages import ExponentialMovingAverage  # noqa: E402

__all__ += ["ClusterSpec", "Server", "ExponentialMovingAverage", "AdadeltaOptimizer",
            "ProximalGradientDescentOptimizer", *_lr_all]
