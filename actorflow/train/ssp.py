"""SSP: stale synchronous parallel (Ho, Cipar, Cui, Lee, Kim, Gibbons, Gibson, Ganger, Xing,
"More Effective Distributed ML via a Stale Synchronous Parallel Parameter Server", NIPS 2013).
Each worker has a clock (its steps done); a worker at clock c may start only once the slowest
worker has reached c - s, so no two workers are more than s steps apart.

Built on the coordination layer's blocking gates, without polling: one `af.SyncGate` per
worker holds its clock (on `device`, e.g. the PS); `wait_op` blocks in the gates' waits until
every other worker's clock is >= its own - s, and `step(train_op)` advances its clock after
the update.

    ssp = af.train.StaleSynchronous(num_workers=4, worker=i, staleness=2, device=ps)
    sess.run(ssp.wait_op); sess.run(ssp.step(train_op))   # each step
"""

from __future__ import annotations

from actorflow.graph import Operation, Tensor, control_dependencies, device, name_scope
from actorflow.ops import core_ops, math_ops
from actorflow.ops.accumulator_ops import SyncGate


class StaleSynchronous:
    """The clocks of `num_workers` workers and worker `worker`'s wait and advance."""

    def __init__(self, num_workers: int, worker: int, staleness: int, device_: str | None = None,
                 name: str = "ssp"):
        if not 0 <= worker < num_workers or staleness < 0:
            raise ValueError(f"worker {worker} must be in [0, {num_workers}) and staleness "
                             f"{staleness} >= 0")
        self.worker, self.s = int(worker), int(staleness)
        with name_scope(name), device(device_):
            self.clocks = [SyncGate(1, 1, shared_name=f"{name}/clock{j}", name=f"clock{j}")
                           for j in range(num_workers)]
        self.clock: Tensor = self.clocks[worker].counters()[0]
        target = math_ops.subtract(self.clock, self.s)
        waits = [g.wait_for(target) for j, g in enumerate(self.clocks) if j != worker]
        self.wait_op: Operation = core_ops.group(*waits, name="ssp_wait")

    def step(self, train_op: Operation) -> Operation:
        """`train_op`, then this worker's clock + 1 (waking whoever waits on it)."""
        with control_dependencies([train_op]):
            return self.clocks[self.worker].set_step(math_ops.add(self.clock, 1))
