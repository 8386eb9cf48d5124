"""The fused ops of `SyncReplicasOptimizer`'s folded replica step (every variable, its
accumulator, the gate and the global step on one device; see
`actorflow.train.sync_replicas_optimizer`).

A folded replica step used to spend one node per protocol action: the arrival at the gate
(its role), one apply per accumulator, an ``Equal`` for the cond's predicate, and in the
leader's aggregation one take per accumulator with an ``Identity`` per take to hold every
update back until every average was in. Two kernels do the same work here:

- ``SyncReplicaArriveApply(gate, local_step, acc_1..acc_n, grad_1..grad_n)`` -> (role int32,
  is_leader bool): checks every gradient against its accumulator first (a wrong shape fails
  before the arrival counts), arrives at the gate, and applies every gradient with the
  local step (with -1 when STALE: dropped and counted), all in one kernel call. One device
  runs one inline kernel at a time, so a step's k arrivals have applied their gradients
  before its leader's aggregation starts.
- ``AccumulatorTakeGradients(acc_1..acc_n, num_required)`` -> the n averages: the leader's
  take from every accumulator at once, so the averages are all in when the first update
  runs. It does not block: inside the folded aggregation every accumulator already holds
  the step's k gradients (above); if one does not, it fails naming the accumulator rather
  than waiting.
- ``SyncReplicaStepGD(gate, local_step, accs, grads, variables, global_step)``: where the
  wrapped optimizer is a GradientDescentOptimizer with a constant learning rate, the
  arrival and applies above and, for the LEADER, the whole aggregation in the same kernel:
  every average taken, ``var -= learning_rate * average`` (ResourceApplyGradientDescent's
  own kernel), ``global_step += 1``. The replica step then has no cond at all (no Switch,
  Merge or dead branch; a frame-less partition); other optimizers keep the cond.
- ``SyncReplicaWait(gate, local_step, role)``: the gate's wait (``SyncGateWait``), where the
  LEADER, whose aggregation is a control input, releases the step itself: no release node
  inside the aggregation's cond (and no switch for the gate's handle into it).

Dense gradients only (`SparseConditionalAccumulator`s keep the per-accumulator ops).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorflow.graph import Tensor, colocate_with
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes

define_op("SyncReplicaArriveApply", stateful=True,
          infer=lambda i, a: [(dtypes.int32, ()), (dtypes.bool_, ())])
define_op("AccumulatorTakeGradients", stateful=True,
          infer=lambda i, a: list(zip(a["dtypes"], a["shapes"], strict=True)))
define_op("SyncReplicaStepGD", stateful=True,
          infer=lambda i, a: [(dtypes.int32, ()), (dtypes.bool_, ())])
no_gradient("SyncReplicaStepGD")
define_op("SyncReplicaWait", stateful=True, infer=lambda i, a: [(dtypes.int64, ())])
no_gradient("SyncReplicaArriveApply")
no_gradient("SyncReplicaWait")
no_gradient("AccumulatorTakeGradients")


def arrive_apply(gate: Tensor, local_step: Tensor, accumulators: Sequence[Any],
                 grads: Sequence[Tensor], name: str = "arrive_apply") -> tuple[Tensor, Tensor]:
    """(role, is_leader) of this replica's arrival at `gate` with `local_step`, its
    gradients applied to `accumulators` (ConditionalAccumulators) in the same kernel."""
    grads = [convert_to_tensor(g, dtype=acc.dtype) for g, acc in zip(
        grads, accumulators, strict=True)]
    with colocate_with(gate.op):
        role, leader = apply_op("SyncReplicaArriveApply", [
            gate, convert_to_tensor(local_step, dtype=dtypes.int64),
            *[acc.accumulator_ref for acc in accumulators], *grads],
            {"n": len(grads)}, name=name)
    return role, leader


def replica_step_gd(gate: Tensor, local_step: Tensor, accumulators: Sequence[Any],
                    grads: Sequence[Tensor], variables: Sequence[Any], global_step: Any,
                    learning_rate: float, num_required: int,
                    name: str = "replica_step") -> tuple[Tensor, Tensor]:
    """`arrive_apply`, and for the LEADER a GradientDescent(`learning_rate`) aggregation of
    the step in the same kernel (see the module doc): (role, is_leader)."""
    grads = [convert_to_tensor(g, dtype=acc.dtype) for g, acc in zip(
        grads, accumulators, strict=True)]
    with colocate_with(gate.op):
        role, leader = apply_op("SyncReplicaStepGD", [
            gate, convert_to_tensor(local_step, dtype=dtypes.int64),
            *[acc.accumulator_ref for acc in accumulators], *grads,
            *[v.handle for v in variables], global_step.handle],
            {"n": len(grads), "num_required": int(num_required),
             "learning_rate": float(learning_rate)}, name=name)
    return role, leader


def take_gradients(accumulators: Sequence[Any], num_required: int,
                   name: str = "take_gradients") -> list[Tensor]:
    """The averages of every accumulator (ConditionalAccumulators on one device), taken
    together; see the module doc for when this may run."""
    with colocate_with(accumulators[0].accumulator_ref.op):
        return list(apply_op("AccumulatorTakeGradients", [
            *[acc.accumulator_ref for acc in accumulators],
            convert_to_tensor(num_required, dtype=dtypes.int32)],
            {"dtypes": [acc.dtype for acc in accumulators],
             "shapes": [acc._attrs()["shape"] for acc in accumulators]}, name=name))


def wait(gate: Tensor, local_step: Tensor, role: Tensor, name: str = "wait") -> Tensor:
    """`SyncGate.wait`, except that the LEADER releases the step here (after its folded
    aggregation, a control input of this op) instead of in a node of its own."""
    with colocate_with(gate.op):
        return apply_op("SyncReplicaWait", [
            gate, convert_to_tensor(local_step, dtype=dtypes.int64), role], {}, name=name)[0]


__all__ = ["arrive_apply", "replica_step_gd", "take_gradients", "wait"]
