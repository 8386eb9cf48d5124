"""Adagrad: ``accum += grad**2; var -= lr * grad / sqrt(accum)``."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable
from devices.errors import InvalidArgumentError


class AdagradOptimizer(Optimizer):
    """Adagrad; one slot, "accumulator", starting at `initial_accumulator_value` (> 0)."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1,
                 use_locking: bool = False, name: str = "Adagrad"):
        if initial_accumulator_value <= 0.0:
            raise InvalidArgumentError(f"initial_accumulator_value must be positive, got "
                                       f"{initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._initial = float(initial_accumulator_value)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "accumulator", self._initial)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return state_ops.resource_apply(
            "ResourceApplyAdagrad", [var.handle, self.get_slot(var, "accumulator").handle],
            [self._hyper("learning_rate", var), grad])

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        return state_ops.resource_apply(
            "ResourceSparseApplyAdagrad",
            [var.handle, self.get_slot(var, "accumulator").handle],
            [self._hyper("learning_rate", var), grad.values, grad.indices])
