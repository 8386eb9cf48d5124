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

# ---- checkpoints and monitored sessions (issue 14) ----
__all__ += ["Saver", "CheckpointState", "checkpoint_exists", "get_checkpoint_mtimes",
            "get_checkpoint_state", "latest_checkpoint", "remove_checkpoint",
            "update_checkpoint_state", "CheckpointReader", "NewCheckpointReader",
            "init_from_checkpoint", "list_variables", "load_checkpoint", "load_variable"]
from actorflow.train.basic_session_run_hooks import (  # noqa: E402
    CheckpointSaverHook,
    CheckpointSaverListener,
    FeedFnHook,
    FinalOpsHook,
    GlobalStepWaiterHook,
    LoggingTensorHook,
    NanLossDuringTrainingError,
    NanTensorHook,
    SecondOrStepTimer,
    StepCounterHook,
    StopAtStepHook,
    SummarySaverHook,
)
from actorflow.train.checkpoint_management import (  # noqa: E402
    CheckpointState,
    checkpoint_exists,
    get_checkpoint_mtimes,
    get_checkpoint_state,
    latest_checkpoint,
    remove_checkpoint,
    update_checkpoint_state,
)
from actorflow.train.checkpoint_utils import (  # noqa: E402
    CheckpointReader,
    NewCheckpointReader,
    init_from_checkpoint,
    list_variables,
    load_checkpoint,
    load_variable,
)
from actorflow.train.monitored_session import (  # noqa: E402
    ChiefSessionCreator,
    MonitoredSession,
    MonitoredTrainingSession,
    Scaffold,
    SingularMonitoredSession,
    WorkerSessionCreator,
    report_uninitialized_variables,
)
from actorflow.train.saver import Saver  # noqa: E402
from actorflow.train.session_run_hook import (  # noqa: E402
    SessionRunArgs,
    SessionRunContext,
    SessionRunHook,
    SessionRunValues,
)

__all__ += ["CheckpointSaverHook", "CheckpointSaverListener", "FeedFnHook", "FinalOpsHook",
            "GlobalStepWaiterHook", "LoggingTensorHook", "NanLossDuringTrainingError",
            "NanTensorHook", "SecondOrStepTimer", "StepCounterHook", "StopAtStepHook",
            "SummarySaverHook", "ChiefSessionCreator", "MonitoredSession",
            "MonitoredTrainingSession", "Scaffold", "SingularMonitoredSession",
            "WorkerSessionCreator", "report_uninitialized_variables", "SessionRunArgs",
            "SessionRunContext", "SessionRunHook", "SessionRunValues"]
from actorflow.train.supervisor import Supervisor  # noqa: E402

__all__ += ["Supervisor"]
from actorflow.train.learning_rate_decay import *  # noqa: E402,F403
from actorflow.train.learning_rate_decay import __all__ as _lr_all  # noqa: E402
from actorflow.train.moving_averages import ExponentialMovingAverage  # noqa: E402

__all__ += ["ClusterSpec", "Server", "ExponentialMovingAverage", "AdadeltaOptimizer",
            "ProximalGradientDescentOptimizer", *_lr_all]
# research (issue 17): staleness as a value, update rules, record/replay
__all__ += ["StalenessScaledSGD", "DCASGDOptimizer", "ElasticAverage", "StaleSynchronous",
            "QuantizedGradients", "TopKGradients", "read_with_version", "staleness",
            "staleness_statistics", "staleness_stats", "variable_version", "replay",
            "version_of_read", "task_incarnation"]
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
    task_incarnation,
    variable_version,
    version_of_read,
)

# ops (issue 13, session 6): queues of file names (string_input_producer + WholeFileReader)
__all__ += ["match_filenames_once", "string_input_producer"]
from actorflow.io_readers import match_filenames_once, string_input_producer  # noqa: E402

# MetaGraphs (session 7): .meta files, as TF1's export_meta_graph / import_meta_graph
__all__ += ["export_meta_graph", "import_meta_graph", "write_graph"]
from actorflow.graph_io import write_graph  # noqa: E402
from actorflow.meta_graph import export_meta_graph, import_meta_graph  # noqa: E402

# TF1 surface (session 7): FTRL-Proximal
__all__ += ["FtrlOptimizer"]
from actorflow.train.ftrl import FtrlOptimizer  # noqa: E402

# TFRecord / Example (session 7 io): the Example protos, summary_iterator
__all__ += ["BytesList", "Example", "Feature", "FeatureList", "FeatureLists", "Features",
            "FloatList", "Int64List", "SequenceExample", "summary_iterator"]
from actorflow.tfrecord import summary_iterator  # noqa: E402
from devices.example_protos import (  # noqa: E402
    BytesList,
    Example,
    Feature,
    FeatureList,
    FeatureLists,
    Features,
    FloatList,
    Int64List,
    SequenceExample,
)

# session 8 (the op audit against TF 2.21): the remaining TF1 optimizers
__all__ += ["AdagradDAOptimizer", "ProximalAdagradOptimizer"]
from actorflow.train.proximal_adagrad import (  # noqa: E402
    AdagradDAOptimizer,
    ProximalAdagradOptimizer,
)
