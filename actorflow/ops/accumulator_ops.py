"""Gradient accumulators with TF1's API: `af.ConditionalAccumulator` and
`af.SparseConditionalAccumulator` (the aggregators of synchronous replication, OSDI §4.4).

    acc = af.ConditionalAccumulator(af.float32, shape=(3,), shared_name="w/grad_accum")
    apply = acc.apply_grad(grad, local_step=step)    # dropped (and counted) if stale
    avg = acc.take_grad(num_required=2)              # blocks until 2 are in; step += 1

An accumulator is a resource on its device (`devices.accumulators`), found by `shared_name`.
A gradient whose `local_step` is older than the accumulator's global step is dropped and
counted: `counters()` fetches [applied, dropped, taken, global_step], so a user can see how
many gradients (a backup worker's, a late worker's) were not used. `take_grad` blocks
asynchronously (the device goes on with other work) and is woken by the apply that completes
the count, by `close()`, or by its step's deadline or cancellation.
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes as shp
from actorflow.graph import Operation, Tensor, colocate_with
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import apply_op, apply_op_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes

__all__ = ["ConditionalAccumulatorBase", "ConditionalAccumulator", "SyncGate",
           "SparseConditionalAccumulator"]

_h = lambda i, a: [(dtypes.resource, ())]  # noqa: E731
for _op, _inf in (
        ("ConditionalAccumulatorV2", _h), ("SparseConditionalAccumulatorV2", _h),
        ("AccumulatorApplyGradientV2", lambda i, a: [(dtypes.bool_, ())]),
        ("SparseAccumulatorApplyGradientV2", lambda i, a: [(dtypes.bool_, ())]),
        ("AccumulatorTakeGradientV2", lambda i, a: [(a["dtype"], a.get("shape"))]),
        ("SparseAccumulatorTakeGradientV2", lambda i, a: [
            (dtypes.int64, (None,)), (a["dtype"], None if a.get("shape") is None else
                                      (None, *a["shape"][1:])), (dtypes.int64, (None,))]),
        ("AccumulatorSetGlobalStepV2", lambda i, a: []),
        ("AccumulatorNumAccumulatedV2", lambda i, a: [(dtypes.int32, ())]),
        ("AccumulatorCountersV2", lambda i, a: [(dtypes.int64, (4,))]),
        ("AccumulatorCloseV2", lambda i, a: [])):
    define_op(_op, infer=_inf, stateful=True)
    no_gradient(_op)


def _int64(t: Any) -> Tensor:
    """An index tensor as int64 (int32 ones are cast)."""
    from actorflow.ops.compare_ops import cast

    if isinstance(t, Tensor) and t.dtype is not dtypes.int64:
        return cast(t, dtypes.int64)
    return convert_to_tensor(t, dtype=dtypes.int64)


class ConditionalAccumulatorBase:
    _kind = "ConditionalAccumulatorV2"

    def __init__(self, dtype: Any, shape: Any = None, shared_name: str | None = None,
                 name: str = "conditional_accumulator", reduction_type: str = "MEAN"):
        self._dtype = dtypes.as_dtype(dtype)
        self._shape = shp.as_shape(shape)
        if reduction_type not in ("MEAN", "SUM"):
            raise ValueError(f"reduction_type must be 'MEAN' or 'SUM', got {reduction_type!r}")
        self._handle = apply_op(self._kind, [], {
            "dtype": self._dtype, "shape": self._shape, "container": "",
            "shared_name": shared_name or "", "reduction_type": reduction_type}, name=name)[0]

    @property
    def accumulator_ref(self) -> Tensor:
        return self._handle

    @property
    def name(self) -> str:
        return self._handle.op.name

    @property
    def dtype(self) -> dtypes.DType:
        return self._dtype

    def _attrs(self) -> dict:
        return {"dtype": self._dtype, "shape": self._shape}

    def num_accumulated(self, name: str | None = None) -> Tensor:
        with colocate_with(self._handle.op):
            return apply_op("AccumulatorNumAccumulatedV2", [self._handle], {},
                            name=name or "num_accumulated")[0]

    def set_global_step(self, new_global_step: Any, name: str | None = None) -> Operation:
        with colocate_with(self._handle.op):
            return apply_op_op("AccumulatorSetGlobalStepV2", [
                self._handle, convert_to_tensor(new_global_step, dtype=dtypes.int64)], {},
                name=name or "set_global_step")

    def counters(self, name: str | None = None) -> Tensor:
        """int64 [applied, dropped (stale), taken, global_step] of this accumulator."""
        with colocate_with(self._handle.op):
            return apply_op("AccumulatorCountersV2", [self._handle], {},
                            name=name or "counters")[0]

    def close(self, name: str | None = None) -> Operation:
        """Fail pending and later take_grad calls with OutOfRangeError (a clean shutdown)."""
        with colocate_with(self._handle.op):
            return apply_op_op("AccumulatorCloseV2", [self._handle], {}, name=name or "close")


class ConditionalAccumulator(ConditionalAccumulatorBase):
    """Averages dense gradients of one global step; stale ones are dropped and counted."""

    def apply_grad(self, grad: Any, local_step: Any = 0, name: str | None = None) -> Operation:
        """Add `grad` if `local_step` >= the accumulator's global step. The op's output (a bool
        tensor) says whether the gradient was used."""
        g = convert_to_tensor(grad, dtype=self._dtype)
        with colocate_with(self._handle.op):
            return apply_op_op("AccumulatorApplyGradientV2", [
                self._handle, convert_to_tensor(local_step, dtype=dtypes.int64), g], {},
                name=name or "apply_grad")

    def take_grad(self, num_required: Any, name: str | None = None) -> Tensor:
        """Block until `num_required` gradients are in; return their mean (or sum), reset, and
        advance the global step by one."""
        with colocate_with(self._handle.op):
            return apply_op("AccumulatorTakeGradientV2", [
                self._handle, convert_to_tensor(num_required, dtype=dtypes.int32)],
                self._attrs(), name=name or "take_grad")[0]


class SparseConditionalAccumulator(ConditionalAccumulatorBase):
    """Aggregates IndexedSlices gradients: per row, the sum over the step's gradients divided
    by their number (MEAN) or not (SUM)."""

    _kind = "SparseConditionalAccumulatorV2"

    def __init__(self, dtype: Any, shape: Any = None, shared_name: str | None = None,
                 name: str = "sparse_conditional_accumulator", reduction_type: str = "MEAN"):
        super().__init__(dtype, shape, shared_name, name, reduction_type)

    def apply_indexed_slices_grad(self, grad: IndexedSlices, local_step: Any = 0,
                                  name: str | None = None) -> Operation:
        return self.apply_grad(grad.indices, grad.values, grad.dense_shape, local_step, name)

    def apply_grad(self, grad_indices: Any, grad_values: Any, grad_shape: Any = None,
                   local_step: Any = 0, name: str | None = None) -> Operation:
        from actorflow.ops.array_ops import shape as shape_of

        values = convert_to_tensor(grad_values, dtype=self._dtype)
        if grad_shape is None:
            grad_shape = (shape_of(values) if self._shape is None
                          else convert_to_tensor(list(self._shape), dtype=dtypes.int64))
        with colocate_with(self._handle.op):
            return apply_op_op("SparseAccumulatorApplyGradientV2", [
                self._handle, convert_to_tensor(local_step, dtype=dtypes.int64),
                _int64(grad_indices), values, _int64(grad_shape)], {},
                name=name or "apply_grad")

    def take_grad(self, num_required: Any, name: str | None = None) -> tuple:
        """(indices, values, dense_shape) of the aggregated gradient (see take_grad)."""
        with colocate_with(self._handle.op):
            return apply_op("SparseAccumulatorTakeGradientV2", [
                self._handle, convert_to_tensor(num_required, dtype=dtypes.int32)],
                self._attrs(), name=name or "take_grad")

    def take_indexed_slices_grad(self, num_required: Any, name: str | None = None
                                 ) -> IndexedSlices:
        indices, values, dense_shape = self.take_grad(num_required, name)
        return IndexedSlices(values, indices, dense_shape)


# ---- the sync gate (see devices.accumulators.SyncGate) ----------------------------------------
for _op, _inf in (
        ("SyncGateV2", _h),
        ("SyncGateArrive", lambda i, a: [(dtypes.int32, ()), (dtypes.int64, ())]),
        ("SyncGateWait", lambda i, a: [(dtypes.int64, ())]),
        ("SyncGateWaitFor", lambda i, a: [(dtypes.int64, ())]),
        ("SyncGateRelease", lambda i, a: [(dtypes.int64, ())]),
        ("SyncGateSetStep", lambda i, a: []),
        ("SyncGateLeave", lambda i, a: []),
        ("SyncGateClose", lambda i, a: []),
        ("SyncGateCounters", lambda i, a: [(dtypes.int64, (4,))])):
    define_op(_op, infer=_inf, stateful=True)
    no_gradient(_op)

STALE, CONTRIBUTOR, LEADER = 0, 1, 2


class SyncGate:
    """The step barrier of synchronous replication, a resource found by `shared_name` on its
    device: replicas `arrive` with the step their gradient is for and get a role (STALE,
    CONTRIBUTOR, or LEADER for the k-th of the step); `release` (the leader, after the update)
    advances the step and wakes the replicas waiting in `wait`. `wait_for(target)` blocks graph
    code until the step reaches `target`: a barrier, or bounded staleness, without polling.
    `leave` (a replica is done) and `close` end the job for everyone once fewer than k
    replicas remain: waits fail with OutOfRangeError."""

    def __init__(self, replicas_to_aggregate: int, total_num_replicas: int,
                 shared_name: str | None = None, name: str = "sync_gate",
                 leader_timeout: float = 60.0):
        self._handle = apply_op("SyncGateV2", [], {
            "replicas_to_aggregate": int(replicas_to_aggregate),
            "total_num_replicas": int(total_num_replicas), "shared_name": shared_name or "",
            "leader_timeout": float(leader_timeout)}, name=name)[0]

    @property
    def handle(self) -> Tensor:
        return self._handle

    def _op(self, op: str, inputs: list, name: str, n_out: int = 1) -> Any:
        with colocate_with(self._handle.op):
            if n_out == 0:
                return apply_op_op(op, [self._handle, *inputs], {}, name=name)
            outs = apply_op(op, [self._handle, *inputs], {}, name=name)
            return outs[0] if n_out == 1 else outs

    def arrive(self, local_step: Any, name: str = "arrive") -> tuple[Tensor, Tensor]:
        """(role, the local step to apply this replica's gradients with: -1 if stale)."""
        return self._op("SyncGateArrive", [convert_to_tensor(local_step, dtype=dtypes.int64)],
                        name, 2)

    def wait(self, local_step: Any, role: Any, name: str = "wait") -> Tensor:
        return self._op("SyncGateWait", [convert_to_tensor(local_step, dtype=dtypes.int64),
                                         role], name)

    def wait_for(self, target: Any, name: str = "wait_for") -> Tensor:
        return self._op("SyncGateWaitFor", [convert_to_tensor(target, dtype=dtypes.int64)],
                        name)

    def release(self, name: str = "release") -> Tensor:
        return self._op("SyncGateRelease", [], name)

    def set_step(self, step: Any, name: str = "set_step") -> Operation:
        return self._op("SyncGateSetStep", [convert_to_tensor(step, dtype=dtypes.int64)],
                        name, 0)

    def leave(self, name: str = "leave") -> Operation:
        return self._op("SyncGateLeave", [], name, 0)

    def close(self, name: str = "close") -> Operation:
        return self._op("SyncGateClose", [], name, 0)

    def counters(self, name: str = "counters") -> Tensor:
        """int64 [step, late (dropped) gradients, steps released, live replicas]."""
        return self._op("SyncGateCounters", [], name)
