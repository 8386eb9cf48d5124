"""Session configuration with the field names TensorFlow users know: `ConfigProto`,
`GPUOptions`, `GraphOptions`, `RunOptions`, `RunMetadata`.

    config = af.ConfigProto(device_count={"CPU": 2}, log_device_placement=True)
    with af.Session(config=config) as s: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.intra_op import resolve_threads  # issue 11: 0 threads means one per core
from scheduler.config import RuntimeConfig
from transport.keys import load_key_dir
from transport.rpc import RpcConfig


@dataclass
class GPUOptions:
    per_process_gpu_memory_fraction: float = 0.0
    allow_growth: bool = True
    memory_limit_bytes: int | None = None


@dataclass
class OptimizerOptions:
    do_common_subexpression_elimination: bool = True
    do_constant_folding: bool = True


@dataclass
class GraphOptions:
    optimizer_options: OptimizerOptions = field(default_factory=OptimizerOptions)
    enable_recv_scheduling: bool = False
    enable_bfloat16_sendrecv: bool = False


@dataclass(frozen=True)
class RPCOptions:
    """How tasks and masters talk: heartbeats (dead-task detection) and connection waits.

    A task silent for `heartbeat_timeout` seconds is declared unavailable: steps that need it
    fail with UnavailableError within about that time. `connect_timeout` bounds how long a new
    session waits for every task of the cluster to answer.

    Trust (transport, issue 12; SECURITY.md): `key_dir` is the cluster's key directory
    (``actorflow keys DIR``): a `Server` then takes only authorized clients on its TCP port
    and encrypts (CURVE), and a session proves itself with it. `insecure` lets a `Server`
    bind a non-loopback address without keys. Same-host traffic needs neither.
    """

    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 5.0
    connect_timeout: float = 30.0
    key_dir: str | None = None
    insecure: bool = False

    def to_rpc_config(self) -> RpcConfig:
        keys = load_key_dir(self.key_dir) if self.key_dir else None
        return RpcConfig(heartbeat_interval=self.heartbeat_interval,
                         heartbeat_timeout=self.heartbeat_timeout,
                         keys=keys, insecure=self.insecure)



@dataclass
class ConfigProto:
    """A session's configuration (one typed object; nothing comes from the environment)."""

    device_count: dict[str, int] = field(default_factory=dict)
    allow_soft_placement: bool = False
    log_device_placement: bool = False
    inter_op_parallelism_threads: int = 0
    intra_op_parallelism_threads: int = 0
    gpu_options: GPUOptions = field(default_factory=GPUOptions)
    graph_options: GraphOptions = field(default_factory=GraphOptions)
    memory_limit_bytes: dict[str, int] = field(default_factory=dict)  # by device name or kind
    # A remote session's step deadline (ms); 0: the default, 300 s (scheduler.distributed.
    # DEFAULT_STEP_TIMEOUT). A run's RunOptions.timeout_in_ms overrides it. No step waits past
    # its deadline for a peer (DeadlineExceededError names who had not answered).
    operation_timeout_in_ms: int = 0
    rpc_options: RPCOptions = field(default_factory=RPCOptions)
    device_filters: list[str] = field(default_factory=list)  # tasks a remote session uses

    def to_runtime(self) -> RuntimeConfig:
        counts = {"CPU": 1, **{k.upper(): v for k, v in self.device_count.items()}}
        limits = dict(self.memory_limit_bytes)
        if self.gpu_options.memory_limit_bytes is not None:
            limits.setdefault("GPU", self.gpu_options.memory_limit_bytes)
        opt = self.graph_options.optimizer_options
        return RuntimeConfig(
            device_count=counts,
            memory_limit_bytes=limits,
            allow_soft_placement=self.allow_soft_placement,
            log_device_placement=self.log_device_placement,
            lossy_transfers=self.graph_options.enable_bfloat16_sendrecv,
            schedule_recvs_alap=self.graph_options.enable_recv_scheduling,
            common_subexpression_elimination=opt.do_common_subexpression_elimination,
            constant_folding=opt.do_constant_folding,
            worker_threads=resolve_threads(self.inter_op_parallelism_threads),  # 0: cores
            intra_op_threads=self.intra_op_parallelism_threads,  # issue 11: intra-op pool
        )


class RunOptions:
    """Options of one `Session.run` (TF1's RunOptions).

    timeout_in_ms: > 0 fails the step with DeadlineExceededError after that long and cancels
        it on every device and task it runs on; the session stays usable. 0: no deadline.
    trace_level: with a `RunMetadata` to fill, what the step's trace records
        (`scheduler.step_trace.StepTrace.level`; every level records each node's device, start
        and end).
    """

    NO_TRACE = 0
    SOFTWARE_TRACE = 1
    HARDWARE_TRACE = 2
    FULL_TRACE = 3

    def __init__(self, trace_level: int = 0, timeout_in_ms: int = 0):
        self.trace_level = trace_level
        self.timeout_in_ms = timeout_in_ms


@dataclass(frozen=True)
class NodeExecStats:
    node_name: str
    device: str
    start_s: float
    end_s: float
    # FULL_TRACE detail (#16; see scheduler/tracing.py): the op type, one (dtype, shape,
    # nbytes) per output (dtype: a NumPy dtype, equal to its name; a name from other tasks),
    # the device pool's bytes in use at the node's end, the OS thread
    op: str = ""
    outputs: tuple = ()
    pool_bytes: int = 0
    thread_id: int = 0

    @property
    def output_bytes(self) -> int:
        return sum(int(o[2]) for o in self.outputs)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class StepStats:
    nodes: list[NodeExecStats] = field(default_factory=list)

    def by_device(self) -> dict[str, list[NodeExecStats]]:
        out: dict[str, list[NodeExecStats]] = {}
        for n in self.nodes:
            out.setdefault(n.device, []).append(n)
        return out

    def node_names(self) -> set[str]:
        return {n.node_name for n in self.nodes}


@dataclass
class RunMetadata:
    """Filled by `Session.run(..., run_metadata=md)`: per node its device, start and end."""

    step_stats: StepStats = field(default_factory=StepStats)
    partition_graphs: list[Any] = field(default_factory=list)
    placement: dict[str, str] = field(default_factory=dict)
    bytes_moved: int = 0  # bytes this step's Sends put into the rendezvous
