"""Adam (Kingma & Ba), in TF1's form:

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m = beta1 * m + (1 - beta1) * grad                  (slot "m")
    v = beta2 * v + (1 - beta2) * grad**2               (slot "v")
    var -= lr_t * m / (sqrt(v) + epsilon)

beta1^t and beta2^t are two non-slot variables ("beta1_power", "beta2_power") that the
optimizer multiplies by beta1 and beta2 after every update of a step. A sparse gradient
follows TF1: the moments of every row decay, the gradient rows add in, and every row moves.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, colocate_with, control_dependencies
from actorflow.indexed_slices import IndexedSlices
from actorflow.ops import core_ops, math_ops, state_ops
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable
from devices.errors import InvalidArgumentError


class AdamOptimizer(Optimizer):
    def __init__(self, learning_rate: Any = 0.001, beta1: Any = 0.9, beta2: Any = 0.999,
                 epsilon: Any = 1e-8, use_locking: bool = False, name: str = "Adam"):
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("beta1", beta1)
        self._set_hyper("beta2", beta2)
        self._set_hyper("epsilon", epsilon)
        self._beta_vars: dict[Any, tuple[Variable, Variable, Variable]] = {}

    def _create_slots(self, var_list: list[Variable]) -> None:
        first = min(var_list, key=lambda v: v.name)
        key = first.graph
        if key not in self._beta_vars:
            b1, b2 = self._hypers["beta1"], self._hypers["beta2"]
            if not isinstance(b1, int | float) or not isinstance(b2, int | float):
                raise InvalidArgumentError(
                    f"AdamOptimizer: beta1 and beta2 must be Python numbers (they start the "
                    f"beta power variables), got {b1!r} and {b2!r}")
            self._beta_vars[key] = (
                self._non_slot_variable("beta1_power", b1, first),
                self._non_slot_variable("beta2_power", b2, first), first)
        for v in var_list:
            self._slot(v, "m")
            self._slot(v, "v")

    def _betas(self, var: Variable) -> tuple[Variable, Variable, Variable]:
        return self._beta_vars[var.graph]

    def _inputs(self, var: Variable) -> list[Tensor]:
        b1p, b2p, _ = self._betas(var)
        return [_as_dtype(b1p.value(), var), _as_dtype(b2p.value(), var),
                *(self._hyper(n, var) for n in ("learning_rate", "beta1", "beta2", "epsilon"))]

    def _handles(self, var: Variable) -> list[Tensor]:
        return [var.handle, self.get_slot(var, "m").handle, self.get_slot(var, "v").handle]

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return state_ops.resource_apply("ResourceApplyAdam", self._handles(var),
                                        [*self._inputs(var), grad])

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        return state_ops.resource_apply("ResourceSparseApplyAdam", self._handles(var),
                                        [*self._inputs(var), grad.values, grad.indices])

    def _finish(self, update_ops: list[Operation], name_scope: str) -> Operation:
        # the beta powers move once per step, after every update of the step
        b1p, b2p, first = self._beta_vars[update_ops[0].graph]
        with control_dependencies(update_ops), colocate_with(first.op):
            u1 = b1p.assign(math_ops.multiply(b1p.value(), self._hyper("beta1", b1p)),
                            read_value=False)
            u2 = b2p.assign(math_ops.multiply(b2p.value(), self._hyper("beta2", b2p)),
                            read_value=False)
        return core_ops.group(*update_ops, u1, u2, name=name_scope)


def _as_dtype(t: Tensor, var: Variable) -> Tensor:
    if t.dtype is var.dtype:
        return t
    return math_ops.cast(t, var.dtype)  # type: ignore[attr-defined]
