"""The Adagrad variants with L1/L2 regularization of TF1, as graph code over their slots:

ProximalAdagrad (Duchi, Hazan & Singer 2011, FOBOS with Adagrad's per-coordinate rate),
slot "accumulator" from `initial_accumulator_value`:

    accum += g^2
    lr_t   = lr / sqrt(accum)
    prox   = var - lr_t * g
    var    = sign(prox) * max(|prox| - lr_t * l1, 0) / (1 + lr_t * l2)

AdagradDA (Duchi et al. 2011, dual averaging; Xiao 2010), slots "gradient_accumulator" and
"gradient_squared_accumulator" (from `initial_gradient_squared_accumulator_value`), with t the
global step + 1:

    g_acc  += g;  gg_acc += g^2
    var     = -sign(g_acc) * max(|g_acc| - l1 * t, 0) * lr / (l2 * t * lr + sqrt(gg_acc))

A sparse gradient moves only its rows, each once with its duplicates summed (as TF).
"""

from __future__ import annotations

import abc
from typing import Any

from actorflow.graph import Operation, Tensor, control_dependencies
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import compare_ops, core_ops, index_ops, math_ops, state_ops
from actorflow.train.optimizer import Optimizer, deduplicate
from actorflow.variables import Variable
from devices.errors import InvalidArgumentError

__all__ = ["ProximalAdagradOptimizer", "AdagradDAOptimizer"]


def _shrink(x: Tensor, by: Tensor) -> Tensor:
    """sign(x) * max(|x| - by, 0)."""
    return math_ops.multiply(math_ops.sign(x),
                             math_ops.maximum(math_ops.subtract(math_ops.abs(x), by), 0.0))


class _RowwiseOptimizer(Optimizer, abc.ABC):
    """An update written once as `_rows(var, w, g, slots) -> (w_new, slots_new)`, applied to
    the whole variable (dense) or to a sparse gradient's rows (gather, update, scatter)."""

    _slot_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def _rows(self, var: Variable, w: Tensor, g: Tensor, slots: list[Tensor]
              ) -> tuple[Tensor, list[Tensor]]:
        """The new value of `w` (the variable, or its gathered rows) and of its slots."""

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        slots = [self.get_slot(var, n) for n in self._slot_names]
        w_new, new = self._rows(var, var.read_value(), grad, [s.read_value() for s in slots])
        with control_dependencies([w_new.op, *[t.op for t in new]]):
            return core_ops.group(state_ops.assign(var, w_new).op,
                                  *[state_ops.assign(s, t).op for s, t in zip(slots, new,
                                                                              strict=True)])

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        grad = deduplicate(grad)
        idx = grad.indices
        slots = [self.get_slot(var, n) for n in self._slot_names]
        w_new, new = self._rows(var, index_ops.gather(var.read_value(), idx), grad.values,
                                [index_ops.gather(s.read_value(), idx) for s in slots])
        with control_dependencies([w_new.op, *[t.op for t in new]]):
            return core_ops.group(
                state_ops.scatter_update(var, idx, w_new).op,
                *[state_ops.scatter_update(s, idx, t).op for s, t in zip(slots, new,
                                                                         strict=True)])


class ProximalAdagradOptimizer(_RowwiseOptimizer):
    """Adagrad's per-coordinate rate with a proximal L1/L2 step (FOBOS)."""

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1,
                 l1_regularization_strength: Any = 0.0, l2_regularization_strength: Any = 0.0,
                 use_locking: bool = False, name: str = "ProximalAdagrad"):
        if initial_accumulator_value <= 0.0:
            raise InvalidArgumentError(f"initial_accumulator_value must be positive, got "
                                       f"{initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("l1", l1_regularization_strength)
        self._set_hyper("l2", l2_regularization_strength)
        self._initial = float(initial_accumulator_value)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "accumulator", self._initial)

    def _rows(self, var: Variable, w: Tensor, g: Tensor, slots: list[Tensor]
              ) -> tuple[Tensor, list[Tensor]]:
        lr, l1, l2 = (self._hyper(n, var) for n in ("learning_rate", "l1", "l2"))
        accum = math_ops.add(slots[0], math_ops.square(g))
        lr_t = math_ops.truediv(lr, math_ops.sqrt(accum))
        prox = math_ops.subtract(w, math_ops.multiply(lr_t, g))
        new = math_ops.truediv(_shrink(prox, math_ops.multiply(lr_t, l1)),
                               math_ops.add(1.0, math_ops.multiply(lr_t, l2)))
        return new, [accum]


class AdagradDAOptimizer(_RowwiseOptimizer):
    """Adagrad dual averaging: the variable is recomputed from the sums of the gradients and
    of their squares (sparse-friendly L1: exact zeros)."""

    _slot_names = ("gradient_accumulator", "gradient_squared_accumulator")

    def __init__(self, learning_rate: Any, global_step: Any,
                 initial_gradient_squared_accumulator_value: float = 0.1,
                 l1_regularization_strength: Any = 0.0, l2_regularization_strength: Any = 0.0,
                 use_locking: bool = False, name: str = "AdagradDA"):
        if initial_gradient_squared_accumulator_value <= 0.0:
            raise InvalidArgumentError(
                f"initial_gradient_squared_accumulator_value must be positive, got "
                f"{initial_gradient_squared_accumulator_value}")
        if global_step is None:
            raise InvalidArgumentError("AdagradDAOptimizer needs the global_step variable "
                                       "(af.train.get_or_create_global_step())")
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("l1", l1_regularization_strength)
        self._set_hyper("l2", l2_regularization_strength)
        self._initial = float(initial_gradient_squared_accumulator_value)
        self._global_step = global_step

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot(v, "gradient_accumulator", 0.0)
            self._slot(v, "gradient_squared_accumulator", self._initial)

    def _rows(self, var: Variable, w: Tensor, g: Tensor, slots: list[Tensor]
              ) -> tuple[Tensor, list[Tensor]]:
        lr, l1, l2 = (self._hyper(n, var) for n in ("learning_rate", "l1", "l2"))
        t = math_ops.add(compare_ops.cast(self._global_step.read_value(), var.dtype), 1.0)
        g_acc = math_ops.add(slots[0], g)
        gg_acc = math_ops.add(slots[1], math_ops.square(g))
        den = math_ops.add(math_ops.multiply(math_ops.multiply(l2, t), lr), math_ops.sqrt(gg_acc))
        num = math_ops.negative(_shrink(g_acc, math_ops.multiply(l1, t)))
        return math_ops.truediv(math_ops.multiply(num, lr), den), [g_acc, gg_acc]
