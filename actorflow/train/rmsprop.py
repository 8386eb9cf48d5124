"""RMSProp (TF1's form):

    ms  = decay * ms + (1 - decay) * grad**2           (slot "rms", starts at 1)
    mom = momentum * mom + lr * grad / sqrt(ms + eps)  (slot "momentum")
    var -= mom

Centered: also ``mg = decay * mg + (1 - decay) * grad`` (slot "mg") and the denominator
``sqrt(ms - mg**2 + eps)``.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable


class RMSPropOptimizer(Optimizer):
    def __init__(self, learning_rate: Any, decay: Any = 0.9, momentum: Any = 0.0,
                 epsilon: Any = 1e-10, use_locking: bool = False, centered: bool = False,
                 name: str = "RMSProp"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("decay", decay)
        self._set_hyper("momentum", momentum)
        self._set_hyper("epsilon", epsilon)
        self._centered = bool(centered)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "rms", 1.0)
            if self._centered:
                self._slot(v, "mg")
            self._slot(v, "momentum")

    def _handles(self, var: Variable) -> list[Any]:
        names = ["mg", "rms", "momentum"] if self._centered else ["rms", "momentum"]
        return [var.handle, *(self.get_slot(var, n).handle for n in names)]

    def _hypers_of(self, var: Variable) -> list[Tensor]:
        return [self._hyper(n, var) for n in ("learning_rate", "decay", "momentum", "epsilon")]

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        op = "ResourceApplyCenteredRMSProp" if self._centered else "ResourceApplyRMSProp"
        return state_ops.resource_apply(op, self._handles(var), [*self._hypers_of(var), grad])

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        op = ("ResourceSparseApplyCenteredRMSProp" if self._centered
              else "ResourceSparseApplyRMSProp")
        return state_ops.resource_apply(op, self._handles(var),
                                        [*self._hypers_of(var), grad.values, grad.indices])
