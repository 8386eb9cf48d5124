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
from actorflow.train.device_setter import *  # noqa: E402,F403  (replica_device_setter, strategies)

# coordination (issue 15): queue runners, the coordinator, input pipelines, sync replicas
__all__ += ["Coordinator", "LooperThread", "QueueRunner", "add_queue_runner",
            "start_queue_runners", "SyncReplicasOptimizer"]
from actorflow.train.coordinator import Coordinator, LooperThread  # noqa: E402
from actorflow.train.input import *  # noqa: E402,F403
from actorflow.train.queue_runner import (  # noqa: E402
    QueueRunner,
    add_queue_runner,
    start_queue_runners,
)
from actorflow.train.sync_replicas_optimizer import SyncReplicasOptimizer  # noqa: E402

# research (issue 17): staleness as a value, update rules, record/replay
__all__ += ["StalenessScaledSGD", "DCASGDOptimizer", "ElasticAverage", "StaleSynchronous",
            "QuantizedGradients", "TopKGradients", "read_with_version", "staleness",
            "staleness_statistics", "staleness_stats", "variable_version", "replay",
            "version_of_read"]
from actorflow.train import replay  # noqa: E402
from actorflow.train.compression import QuantizedGradients, TopKGradients  # noqa: E402
from actorflow.train.dc_asgd import DCASGDOptimizer  # noqa: E402
from actorflow.train.easgd import ElasticAverage  # noqa: E402
from actorflow.train.ssp import StaleSynchronous  # noqa: E402
from actorflow.train.stale_lr import StalenessScaledSGD  # noqa: E402
from actorflow.train.staleness import (  # noqa: E402
    read_with_version,
    staleness,
    staleness_statistics,
    staleness_stats,
    variable_version,
    version_of_read,
)
