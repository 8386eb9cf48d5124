"""The one interface of the runtime behind a Session, local or distributed.

`scheduler.runtime.LocalRuntime` (this process's devices) and
`scheduler.distributed.DistributedRuntime` (a cluster's tasks, with the master in the client)
both implement `Runtime`; `actorflow.session` uses nothing else of them. The async step
(`arun`, awaited in the runtime's own trio loop) is the core; `run` is the same step for a
thread other than the runtime's, blocking until it is done. A step's options
(`RunOptions`) reach every device and task it runs on: `timeout` (seconds; the step then fails
with DeadlineExceededError and is aborted everywhere) and, for a traced step, its
`StepTrace` (whose `level` is `RunOptions.trace_level`).

    rt: Runtime = LocalRuntime(RuntimeConfig())
    rt.start_in_thread()                              # or: await nursery.start(rt.serve)
    step = rt.compile(graph_def, feeds=["x:0"], fetches=["y:0"], targets=[])
    rets = rt.run(step, [x], timeout=1.0)
    rt.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from devices.device import DeviceStatistics
from scheduler.config import RuntimeConfig
from scheduler.step_trace import StepTrace


class Runtime(Protocol):
    """What a Session runs steps on (see the module doc)."""

    config: RuntimeConfig
    closed: bool

    @property
    def devices(self) -> Sequence[Any]:
        """Every device steps may be placed on (`devices.device.Device` or remote ones)."""
        ...

    async def serve(self, *, task_status: Any = ...) -> None:
        """Host the runtime in the caller's trio loop until cancelled (`stop`)."""
        ...

    def start_in_thread(self) -> None:
        """Host the runtime on a thread of its own, for sync callers."""
        ...

    def stop(self) -> None:
        """Stop `serve` (from its own trio loop); the runtime is closed afterwards."""
        ...

    def close(self) -> None:
        """Stop the runtime and its thread, if any; idempotent."""
        ...

    def compile(self, graph: Any, *, feeds: Sequence[str], fetches: Sequence[str],
                targets: Sequence[str], by_name: dict | None = None, log: Any = None,
                cost_model: Any = None) -> Any:
        """Compile one step signature for this runtime's devices."""
        ...

    def run(self, step: Any, args: list[Any], trace: StepTrace | None = None,
            stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a thread other than the runtime's; block until it is done."""
        ...

    async def arun(self, step: Any, args: list[Any], trace: StepTrace | None = None,
                   stats: dict | None = None, *, timeout: float | None = None) -> list[Any]:
        """Run one step from a task of the runtime's own trio loop."""
        ...

    def statistics(self) -> list[DeviceStatistics]:
        """Every device's statistics (from a thread other than the runtime's)."""
        ...

    async def astatistics(self) -> list[DeviceStatistics]:
        """Every device's statistics (from a task of the runtime's trio loop)."""
        ...
