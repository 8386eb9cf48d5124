"""Staleness-scaled learning rate: SGD whose step for an update of staleness s is
``learning_rate / (1 + s)`` (Zhang, Gupta, Lian, Liu, "Staleness-aware Async-SGD for
Distributed Deep Learning", IJCAI 2016: the rate divided by the staleness).

    opt = af.train.StalenessScaledSGD(0.5)
    train_op = opt.minimize(loss)     # each update scaled by its own staleness
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.ops import compare_ops, math_ops, state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable


class StalenessScaledSGD(Optimizer):
    """SGD with ``lr / (1 + staleness)``, the staleness computed on the variable's device."""

    wants_staleness = True

    def __init__(self, learning_rate: Any, use_locking: bool = False,
                 name: str = "StalenessScaledSGD"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)

    def _scaled_lr(self, var: Variable, staleness: Tensor) -> Tensor:
        s = compare_ops.cast(staleness, var.dtype)
        return math_ops.truediv(self._hyper("learning_rate", var), math_ops.add(s, 1.0))

    def _apply_dense(self, grad: Tensor, var: Variable, staleness: Any = None) -> Operation:
        return state_ops.resource_apply("ResourceApplyGradientDescent", [var.handle],
                                        [self._scaled_lr(var, staleness), grad])
