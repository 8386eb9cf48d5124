"""Plain stochastic gradient descent: ``var -= learning_rate * grad``."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import math_ops, state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable


class GradientDescentOptimizer(Optimizer):
    """SGD. A sparse gradient updates only its rows (repeated rows add up)."""

    def __init__(self, learning_rate: Any, use_locking: bool = False,
                 name: str = "GradientDescent"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return state_ops.resource_apply(
            "ResourceApplyGradientDescent", [var.handle],
            [self._hyper("learning_rate", var), grad])

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        delta = math_ops.multiply(grad.values, self._hyper("learning_rate", var))
        return state_ops.scatter_sub(var, grad.indices, delta).op
