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

# --- observability (#16): the string dtype, af.summary ---
string = importlib.import_module("devices.dtypes").string
summary = importlib.import_module("actorflow.summary")
# ---- #13 (ops_api): the TF1 API surface programs use -----------------------------------
errors = importlib.import_module("actorflow.errors")  # the full tf.errors namespace
from actorflow import (  # noqa: E402
    app,
    compat,
    contrib,
    flags,
    gfile,
    image,  # noqa: E402
    layers,
    losses,
    metrics,
)
from actorflow import tf_logging as logging  # noqa: E402
from actorflow.image import random_crop  # noqa: E402
from actorflow.interactive_session import InteractiveSession  # noqa: E402
from actorflow.ops.composite_ops import (  # noqa: E402
    arg_max,
    arg_min,
    boolean_mask,
    clip_by_average_norm,
    clip_by_global_norm,
    clip_by_norm,
    count_nonzero,
    global_norm,
    log_sigmoid,
    matrix_transpose,
    mod,
    norm,
    segment_mean,
    segment_sum,
    sequence_mask,
    to_bfloat16,
    to_double,
    to_float,
    to_int32,
    to_int64,
    truncatediv,
    truncatemod,
)
from actorflow.ops.debug_ops import (  # noqa: E402
    Assert,
    Print,
    add_check_numerics_ops,
    assert_equal,
    assert_greater,
    assert_greater_equal,
    assert_less,
    assert_less_equal,
    assert_negative,
    assert_non_negative,
    assert_non_positive,
    assert_none_equal,
    assert_positive,
    check_numerics,
)
from actorflow.ops.grid_ops import (  # noqa: E402
    diag,
    diag_part,
    lin_space,
    linspace,
    meshgrid,
    tensordot,
)
from actorflow.ops.linalg_ops import (  # noqa: E402
    cholesky,
    einsum,
    eye,
    gather_nd,
    matrix_diag,
    matrix_diag_part,
    matrix_inverse,
    scatter_nd,
    trace,
)
from actorflow.ops.scan_sort_ops import (  # noqa: E402
    argsort,
    cumprod,
    cumsum,
    digamma,
    erf,
    erfc,
    lgamma,
    polygamma,
    reverse,
    reverse_v2,
    sort,
    unique,
)
from actorflow.ops.script_ops import numpy_function, py_func  # noqa: E402
from actorflow.ops.segment_ops import (  # noqa: E402
    segment_max,
    segment_min,
    segment_prod,
    unsorted_segment_max,
    unsorted_segment_mean,
    unsorted_segment_min,
    unsorted_segment_prod,
)
from actorflow.ops.trig_ops import (  # noqa: E402
    accumulate_n,
    acos,
    acosh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    cosh,
    div_no_nan,
    divide_no_nan,
    invert_permutation,
    roll,
    sinh,
    tan,
)
from actorflow.rnn import reverse_sequence  # noqa: E402
from actorflow.sparse_tensor import (  # noqa: E402
    SparseTensor,
    SparseTensorValue,
    sparse_tensor_to_dense,
)
from actorflow.variable_scope import (  # noqa: E402
    PartitionedVariable,
    VariableScope,
    fixed_size_partitioner,
    get_variable,
    get_variable_scope,
    min_max_variable_partitioner,
    variable_axis_size_partitioner,
    variable_scope,
)

VERSION = __version__
GIT_VERSION = __version__

get_collection = lambda key, scope=None: get_default_graph().get_collection(key, scope)  # noqa: E731
add_to_collection = lambda name, value: get_default_graph().add_to_collection(name, value)  # noqa: E731
get_collection_ref = lambda key: get_default_graph().get_collection_ref(key)  # noqa: E731


def add_to_collections(names: object, value: object) -> None:
    for n in ([names] if isinstance(names, str) else names):
        get_default_graph().add_to_collection(n, value)


def disable_eager_execution() -> None:
    """A no-op: actorflow always builds graphs (TF1 semantics)."""


disable_v2_behavior = disable_eager_execution
enable_resource_variables = disable_eager_execution


def executing_eagerly() -> bool:
    return False


# GraphDefs, MetaGraphs, SavedModels (session 7): import_graph_def, graph_util, af.GraphDef
from actorflow import distributions, graph_util, saved_model, sparse, strings  # noqa: E402
from actorflow import lookup_ops as lookup  # noqa: E402
from actorflow.graph_io import import_graph_def  # noqa: E402
from actorflow.lookup_ops import (  # noqa: E402
    initialize_all_tables,
    string_to_hash_bucket_fast,
    tables_initializer,
)
from actorflow.ops.confusion_ops import confusion_matrix, sparse_to_dense  # noqa: E402
from actorflow.ops.string_ops import (  # noqa: E402
    reduce_join,
    regex_replace,
    string_join,
    string_split,
    string_to_number,
    substr,
)
from actorflow.sparse import sparse_reduce_sum  # noqa: E402


def __getattr__(name: str) -> object:
    if name == "GraphDef":  # TensorFlow's message class (tensorboardX's; imported on first use)
        from actorflow.graph_io import graph_def_class
        return graph_def_class()
    raise AttributeError(f"module 'actorflow' has no attribute '{name}'")


# matrix solves and determinants, counting and set ops, tf.nest (session 8 audit against TF)
from actorflow import math_namespace as _math_namespace  # noqa: E402
from actorflow.ops import nest  # noqa: E402
from actorflow.ops.counting_ops import bincount, setdiff1d  # noqa: E402
from actorflow.ops.matrix_ops import (  # noqa: E402
    cross,
    log_matrix_determinant,
    matrix_band_part,
    matrix_determinant,
    matrix_solve,
    matrix_triangular_solve,
)

math, linalg = _math_namespace.build(__import__("sys").modules[__name__])  # noqa: A001
# research (issue 17): af.sim, virtual workers on virtual time
sim = importlib.import_module("actorflow.sim")
# ops (issue 13, session 6): TF1 names the example programs use
from actorflow import (
    estimator,  # noqa: E402
    feature_column,  # noqa: E402
)
from actorflow import tf_io as io  # noqa: E402  (af.io.read_file, af.io.gfile, ...)
from actorflow.io_readers import WholeFileReader  # noqa: E402
from actorflow.ops.image_io_ops import read_file, write_file  # noqa: E402
from actorflow.ops.string_ops import as_string  # noqa: E402
from actorflow.sparse_tensor import sparse_placeholder, sparse_tensor_dense_matmul  # noqa: E402
from scheduler.graphdef import NodeDef  # noqa: E402  (isinstance checks in device functions)

# TFRecord / Example (session 7 io): tf.python_io, TFRecordReader, parsing ops
python_io = importlib.import_module("actorflow.tfrecord").python_io
from actorflow.parsing_ops import (  # noqa: E402
    FixedLenFeature,
    FixedLenSequenceFeature,
    VarLenFeature,
    decode_csv,
    decode_raw,
    parse_example,
    parse_single_example,
    parse_single_sequence_example,
    parse_tensor,
    serialize_tensor,
)
from actorflow.record_readers import (  # noqa: E402
    FixedLengthRecordReader,
    ReaderBase,
    TextLineReader,
    TFRecordReader,
)

# --- s9sparse: sparse and array ops ---
# isort: split
from actorflow.ops.array_extra_ops import (  # noqa: E402
    batch_scatter_update,
    edit_distance,
    histogram_fixed_width,
    identity_n,
    searchsorted,
    tensor_scatter_add,
    tensor_scatter_nd_add,
    tensor_scatter_nd_sub,
    tensor_scatter_nd_update,
    tensor_scatter_sub,
    tensor_scatter_update,
    unique_with_counts,
    unravel_index,
)
from actorflow.ops.segment_ops import (  # noqa: E402
    sparse_segment_mean,
    sparse_segment_mean_with_num_segments,
    sparse_segment_sqrt_n,
    sparse_segment_sqrt_n_with_num_segments,
    sparse_segment_sum,
    sparse_segment_sum_with_num_segments,
)
from actorflow.ops.space_ops import (  # noqa: E402
    batch_to_space,
    batch_to_space_nd,
    depth_to_space,
    extract_image_patches,
    matrix_set_diag,
    space_to_batch,
    space_to_batch_nd,
    space_to_depth,
)
from actorflow.ops.sparse_ops import (  # noqa: E402
    sparse_add,
    sparse_concat,
    sparse_fill_empty_rows,
    sparse_maximum,
    sparse_minimum,
    sparse_reduce_max,
    sparse_reduce_max_sparse,
    sparse_reduce_sum_sparse,
    sparse_reorder,
    sparse_reshape,
    sparse_retain,
    sparse_slice,
    sparse_softmax,
    sparse_split,
    sparse_to_indicator,
    sparse_transpose,
)

# isort: split
# --- s9api: metrics, nn, image, strings, random ---
bitwise = importlib.import_module("actorflow.bitwise")
from actorflow.initializers import (  # noqa: E402
    orthogonal_initializer,
    uniform_unit_scaling_initializer,
)
from actorflow.ops.bit_ops import bitcast, rint, saturate_cast  # noqa: E402
from actorflow.ops.random_more_ops import random_gamma, random_poisson  # noqa: E402
from actorflow.ops.string_hash_ops import (  # noqa: E402
    decode_base64,
    encode_base64,
    string_to_hash_bucket,
    string_to_hash_bucket_strong,
)
