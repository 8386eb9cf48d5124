"""Adadelta (Zeiler 2012, TF1's form), written as graph code over two slots:

    accum        = rho * accum + (1 - rho) * grad**2                     (slot "accum")
    update       = sqrt(accum_update + eps) / sqrt(accum + eps) * grad
    accum_update = rho * accum_update + (1 - rho) * update**2             (slot "accum_update")
    var         -= lr * update

Also ProximalGradientDescent with l1/l2 regularization:

    prox = var - lr * grad
    var  = sign(prox) * max(|prox| - lr * l1, 0) / (1 + lr * l2)

(a sparse gradient: only its rows, duplicates summed first, as TF).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, control_dependencies
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import core_ops, index_ops, math_ops, state_ops
from actorflow.train.optimizer import Optimizer, deduplicate
from actorflow.variables import Variable

__all__ = ["AdadeltaOptimizer", "ProximalGradientDescentOptimizer"]


class AdadeltaOptimizer(Optimizer):
    def __init__(self, learning_rate: Any = 0.001, rho: Any = 0.95, epsilon: Any = 1e-8,
                 use_locking: bool = False, name: str = "Adadelta"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("rho", rho)
        self._set_hyper("epsilon", epsilon)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "accum")
            self._slot(v, "accum_update")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        lr, rho, eps = (self._hyper(n, var) for n in ("learning_rate", "rho", "epsilon"))
        accum = self.get_slot(var, "accum")
        accum_up = self.get_slot(var, "accum_update")
        assert accum is not None and accum_up is not None
        one_minus = math_ops.subtract(1.0, rho)
        new_accum = accum.assign(math_ops.add(math_ops.multiply(rho, accum.read_value()),
                                              math_ops.multiply(one_minus, math_ops.square(grad))))
        with control_dependencies([new_accum]):
            old_up = accum_up.read_value()
        update = math_ops.multiply(math_ops.truediv(math_ops.sqrt(math_ops.add(old_up, eps)),
                                                    math_ops.sqrt(math_ops.add(new_accum, eps))),
                                   grad)
        new_up = accum_up.assign(math_ops.add(math_ops.multiply(rho, old_up),
                                              math_ops.multiply(one_minus,
                                                                math_ops.square(update))))
        step = var.assign_sub(math_ops.multiply(lr, update))
        return core_ops.group(new_up, step)


class ProximalGradientDescentOptimizer(Optimizer):
    def __init__(self, learning_rate: Any, l1_regularization_strength: Any = 0.0,
                 l2_regularization_strength: Any = 0.0, use_locking: bool = False,
                 name: str = "ProximalGradientDescent"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("l1", l1_regularization_strength)
        self._set_hyper("l2", l2_regularization_strength)

    def _new_value(self, var: Variable, w: Tensor, grad: Tensor) -> Tensor:
        lr, l1, l2 = (self._hyper(n, var) for n in ("learning_rate", "l1", "l2"))
        prox = math_ops.subtract(w, math_ops.multiply(lr, grad))
        shrunk = math_ops.multiply(math_ops.sign(prox), math_ops.maximum(
            math_ops.subtract(math_ops.abs(prox), math_ops.multiply(lr, l1)), 0.0))
        return math_ops.truediv(shrunk, math_ops.add(1.0, math_ops.multiply(lr, l2)))

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return core_ops.group(var.assign(self._new_value(var, var.read_value(), grad)))

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        """Only the gradient's rows move (and shrink), each once with its summed gradient."""
        grad = deduplicate(grad)
        rows = index_ops.gather(var.read_value(), grad.indices)
        return core_ops.group(state_ops.scatter_update(
            var, grad.indices, self._new_value(var, rows, grad.values)).op)
