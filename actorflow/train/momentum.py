"""Momentum: ``accum = momentum * accum + grad; var -= lr * accum`` (Nesterov:
``var -= lr * grad + lr * momentum * accum``)."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable


class MomentumOptimizer(Optimizer):
    """SGD with momentum; one slot, "momentum". A sparse gradient updates only its rows'
    accumulators and values (repeated rows are summed first)."""

    def __init__(self, learning_rate: Any, momentum: Any, use_locking: bool = False,
                 name: str = "Momentum", use_nesterov: bool = False):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("momentum", momentum)
        self._nesterov = bool(use_nesterov)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "momentum")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return state_ops.resource_apply(
            "ResourceApplyMomentum", [var.handle, self.get_slot(var, "momentum").handle],
            [self._hyper("learning_rate", var), grad, self._hyper("momentum", var)],
            {"use_nesterov": self._nesterov})

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        return state_ops.resource_apply(
            "ResourceSparseApplyMomentum",
            [var.handle, self.get_slot(var, "momentum").handle],
            [self._hyper("learning_rate", var), grad.values, grad.indices,
             self._hyper("momentum", var)], {"use_nesterov": self._nesterov})
