"""DC-ASGD: asynchronous SGD with delay compensation (Zheng, Meng, Wang, Chen, Yu, Ma, Liu,
"Asynchronous Stochastic Gradient Descent with Delay Compensation", ICML 2017). A gradient
computed at the value w_read the worker read is corrected towards the value w_now it lands on
with a cheap diagonal Hessian approximation:

    g' = g + lambda * g * g * (w_now - w_read);    w_now -= lr * g'

w_read is the very snapshot the worker's step read (the variable's read in the step, on the
variable's device: nothing extra crosses the wire); w_now is read on the PS just before the
update. The variant with a constant lambda (DC-ASGD-c).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.ops import math_ops, state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable


class DCASGDOptimizer(Optimizer):
    """SGD with DC-ASGD's delay compensation (`variance_control` is lambda)."""

    wants_staleness = True

    def __init__(self, learning_rate: Any, variance_control: float = 0.04,
                 use_locking: bool = False, name: str = "DCASGD"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("variance_control", variance_control)

    def _apply_dense(self, grad: Tensor, var: Variable, staleness: Any = None) -> Operation:
        drift = math_ops.subtract(var.read_value(), self._read_value(var))
        lam = self._hyper("variance_control", var)
        comp = math_ops.add(grad, math_ops.multiply(math_ops.multiply(lam, grad),
                                                    math_ops.multiply(grad, drift)))
        return state_ops.resource_apply("ResourceApplyGradientDescent", [var.handle],
                                        [self._hyper("learning_rate", var), comp])
