"""actorflow: the TensorFlow papers' dataflow system on trio actors, ZeroMQ and msgpack.

    import actorflow as af
    x = af.placeholder(af.float32, (None, 3))
    w = af.Variable(af.zeros((3, 1)))
    loss = af.reduce_mean(af.square(af.matmul(x, w) - 1.0))
    train = af.train.GradientDescentOptimizer(0.1).minimize(loss)
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        s.run(train, {x: data})
"""

from __future__ import annotations

import importlib

import devices.kernels  # noqa: F401  (registers every built-in kernel)
from actorflow.config import (
    ConfigProto,
    GPUOptions,
    GraphOptions,
    OptimizerOptions,
    RunMetadata,
    RunOptions,
)
from actorflow.gradients import gradients
from actorflow.graph import (
    Graph,
    GraphKeys,
    Operation,
    Tensor,
    TensorShape,
    colocate_with,
    control_dependencies,
    device,
    get_default_graph,
    get_name_scope,
    name_scope,
    reset_default_graph,
    set_random_seed,
)
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import RegisterGradient, constant, convert_to_tensor, no_gradient
from actorflow.ops.array_ops import *  # noqa: F403
from actorflow.ops.core_ops import *  # noqa: F403
from actorflow.ops.core_ops import tuple_ as tuple  # noqa: A001
from actorflow.ops.math_ops import *  # noqa: F403
from actorflow.ops.partition_ops import dynamic_partition, dynamic_stitch
from actorflow.ops.partition_ops import range as range  # noqa: A004, PLC0414
from actorflow.session import AsyncSession, Session, get_default_session
from devices.dtypes import (
    DType,
    as_dtype,
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    resource,
    uint8,
    uint16,
    uint32,
    uint64,
)
from devices.errors import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OpError,
    OutOfRangeError,
    ResourceExhaustedError,
    UnavailableError,
    UnimplementedError,
)

bool = bool_  # noqa: A001  (af.bool, as TF users write it)
errors = importlib.import_module("devices.errors")

# Optional modules that land op families; each extends this namespace when present.
for _mod in ("actorflow.ops.random_ops", "actorflow.ops.nn_ops", "actorflow.ops.state_ops",
             "actorflow.variables", "actorflow.ops.control_flow_ops",
             # coordination (issue 15): queues, accumulators
             "actorflow.ops.data_flow_ops", "actorflow.ops.accumulator_ops"):
    try:
        _m = importlib.import_module(_mod)
    except ModuleNotFoundError as _e:
        if _e.name != _mod:
            raise
        continue
    for _name in getattr(_m, "__all__", ()):
        globals()[_name] = getattr(_m, _name)
for _sub in ("nn", "train", "random", "data"):
    try:
        globals()[_sub] = importlib.import_module(f"actorflow.{_sub}")
    except ModuleNotFoundError as _e:
        if _e.name != f"actorflow.{_sub}":
            raise

__version__ = "0.1.0"

from actorflow.cluster import LocalCluster  # noqa: E402
from actorflow.server import ClusterSpec, RPCOptions, Server  # noqa: E402

# research (issue 17): af.sim, virtual workers on virtual time
sim = importlib.import_module("actorflow.sim")
