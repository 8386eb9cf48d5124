"""The runtime's configuration: one typed object passed in, never read from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RuntimeConfig:
    """What the scheduler and the devices need to know of a session's configuration."""

    device_count: dict[str, int] = field(default_factory=lambda: {"CPU": 1})
    memory_limit_bytes: dict[str, int] = field(default_factory=dict)  # device name or kind
    allow_soft_placement: bool = True
    log_device_placement: bool = False
    lossy_transfers: bool = False
    schedule_recvs_alap: bool = False
    common_subexpression_elimination: bool = True
    constant_folding: bool = True
    thread_threshold_us: float = 1000.0  # kernels estimated above this go to a worker thread
    worker_threads: int = 2
    intra_op_threads: int = 0  # threads large kernels split over (0: one per core)
    job: str = "localhost"
    task: int = 0

    def memory_limit_for(self, name: str, kind: str) -> int | None:
        return self.memory_limit_bytes.get(name, self.memory_limit_bytes.get(kind))
