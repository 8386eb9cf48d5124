"""FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013),
TF1's `FtrlOptimizer`, as graph code over two slots per variable, "accum" (the sum of squared
gradients, from `initial_accumulator_value`) and "linear":

    accum_new = accum + g^2
    linear   += g - (accum_new^-p - accum^-p) / lr * var        (p = learning_rate_power)
    var       = (l1 * sign(linear) - linear) / (accum_new^-p / lr + 2 * l2)  if |linear| > l1
                0                                                            otherwise

A sparse gradient (IndexedSlices) updates only its rows (duplicates summed first; gather, the
same formula, scatter).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, control_dependencies
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import compare_ops, core_ops, index_ops, math_ops, state_ops
from actorflow.train.optimizer import Optimizer, deduplicate
from actorflow.variables import Variable
from devices.errors import InvalidArgumentError


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal with L1 and L2 regularization."""

    def __init__(self, learning_rate: Any, learning_rate_power: float = -0.5,
                 initial_accumulator_value: float = 0.1,
                 l1_regularization_strength: float = 0.0,
                 l2_regularization_strength: float = 0.0, use_locking: bool = False,
                 name: str = "Ftrl", accum_name: str | None = None,
                 linear_name: str | None = None,
                 l2_shrinkage_regularization_strength: float = 0.0):
        if initial_accumulator_value < 0.0:
            raise InvalidArgumentError(f"initial_accumulator_value {initial_accumulator_value} "
                                       f"must be non-negative")
        if learning_rate_power > 0.0:
            raise InvalidArgumentError(f"learning_rate_power {learning_rate_power} must be <= 0")
        if l2_shrinkage_regularization_strength:
            raise InvalidArgumentError("l2_shrinkage_regularization_strength is not supported")
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("l1", float(l1_regularization_strength))
        self._set_hyper("l2", float(l2_regularization_strength))
        self._power = float(learning_rate_power)
        self._initial = float(initial_accumulator_value)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "accum", self._initial)
            self._slot(v, "linear", 0.0)

    def _update(self, var: Variable, w: Tensor, g: Tensor, accum: Tensor, linear: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        lr, l1, l2 = (self._hyper(n, var) for n in ("learning_rate", "l1", "l2"))
        p = -self._power
        accum_new = math_ops.add(accum, math_ops.multiply(g, g))
        step = math_ops.divide(math_ops.subtract(math_ops.pow(accum_new, p),
                                                 math_ops.pow(accum, p)), lr)
        linear_new = math_ops.subtract(math_ops.add(linear, g), math_ops.multiply(step, w))
        x = math_ops.subtract(math_ops.multiply(l1, math_ops.sign(linear_new)), linear_new)
        y = math_ops.add(math_ops.divide(math_ops.pow(accum_new, p), lr),
                         math_ops.multiply(2.0, l2))
        w_new = compare_ops.where(compare_ops.greater(math_ops.abs(linear_new), l1),
                                  math_ops.divide(x, y), math_ops.multiply(w, 0.0))
        return w_new, accum_new, linear_new

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        accum, linear = self.get_slot(var, "accum"), self.get_slot(var, "linear")
        w_new, a_new, l_new = self._update(var, var.read_value(), grad, accum.read_value(),
                                           linear.read_value())
        with control_dependencies([w_new.op, a_new.op, l_new.op]):
            return core_ops.group(state_ops.assign(var, w_new).op,
                                  state_ops.assign(accum, a_new).op,
                                  state_ops.assign(linear, l_new).op)

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        accum, linear = self.get_slot(var, "accum"), self.get_slot(var, "linear")
        grad = deduplicate(grad)  # a row named twice: one update with the sum, as TF
        idx = grad.indices
        rows = [index_ops.gather(v.read_value(), idx) for v in (var, accum, linear)]
        w_new, a_new, l_new = self._update(var, rows[0], grad.values, rows[1], rows[2])
        with control_dependencies([w_new.op, a_new.op, l_new.op]):
            return core_ops.group(state_ops.scatter_update(var, idx, w_new).op,
                                  state_ops.scatter_update(accum, idx, a_new).op,
                                  state_ops.scatter_update(linear, idx, l_new).op)
