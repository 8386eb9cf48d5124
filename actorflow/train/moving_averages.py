"""``af.train.ExponentialMovingAverage``: shadow copies of variables (or tensors) that
`apply` moves toward their current values:

    shadow -= (1 - decay) * (shadow - value)
    decay = min(decay, (1 + num_updates) / (10 + num_updates))   when num_updates is given

    ema = af.train.ExponentialMovingAverage(0.999, num_updates=global_step)
    with af.control_dependencies([train_op]):
        train_op = ema.apply(af.trainable_variables())
    w_avg = ema.average(w)

A shadow variable is named ``<var>/ExponentialMovingAverage``, starts at the variable's
initial value (zeros for a tensor), is not trainable and joins MOVING_AVERAGE_VARIABLES.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import GraphKeys, Operation, control_dependencies, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, core_ops, math_ops
from actorflow.variables import Variable, trainable_variables
from devices.errors import InvalidArgumentError

__all__ = ["ExponentialMovingAverage"]


def _base_name(v: Any) -> str:
    return v.name.split(":")[0]


class ExponentialMovingAverage:
    def __init__(self, decay: float, num_updates: Any = None, zero_debias: bool = False,
                 name: str = "ExponentialMovingAverage"):
        self._decay = decay
        self._num_updates = num_updates
        self._name = name
        self._averages: dict[Any, Variable] = {}

    @property
    def name(self) -> str:
        return self._name

    def apply(self, var_list: list[Any] | None = None) -> Operation:
        """Create shadows (first time) and return the op updating every one of them."""
        items = list(var_list) if var_list is not None else trainable_variables()
        for v in items:
            if not (v.dtype.is_floating):
                raise InvalidArgumentError(f"ExponentialMovingAverage needs floating variables, "
                                           f"'{v.name}' is {v.dtype.name}")
            if v in self._averages:
                continue
            init: Any
            if isinstance(v, Variable):
                init = v.initial_value
            else:
                t = convert_to_tensor(v)
                init = array_ops.zeros_like(t)
            with name_scope(None), control_dependencies(None):
                shadow = Variable(init, trainable=False, name=self.average_name(v),
                                  collections=[GraphKeys.GLOBAL_VARIABLES,
                                               GraphKeys.MOVING_AVERAGE_VARIABLES])
            self._averages[v] = shadow
        with name_scope(self._name):
            decay = convert_to_tensor(float(self._decay))
            if self._num_updates is not None:
                n = compare_ops.cast(self._num_updates, decay.dtype)
                decay = math_ops.minimum(decay, math_ops.truediv(math_ops.add(1.0, n),
                                                                 math_ops.add(10.0, n)))
            ups = []
            for v in items:
                shadow = self._averages[v]
                # a fresh read, so `apply` under control_dependencies([train_op]) averages
                # the updated value (as TF's resource variables do)
                val = v.read_value() if isinstance(v, Variable) else convert_to_tensor(v)
                rate = compare_ops.cast(math_ops.subtract(1.0, decay), shadow.dtype)
                ups.append(shadow.assign_sub(math_ops.multiply(
                    math_ops.subtract(shadow.value(), val), rate)))
            return core_ops.group(*ups)

    def average(self, var: Any) -> Variable | None:
        return self._averages.get(var)

    def average_name(self, var: Any) -> str:
        return f"{_base_name(var)}/{self._name}"

    def variables_to_restore(self, moving_avg_variables: list[Any] | None = None
                             ) -> dict[str, Any]:
        """{checkpoint name: variable}: each averaged variable restored from its shadow's
        name, every other global variable from its own."""
        from actorflow.variables import global_variables
        avg = list(moving_avg_variables) if moving_avg_variables is not None else \
            list(self._averages)
        out: dict[str, Any] = {}
        shadows = set(self._averages.values())
        for v in global_variables():
            if v in shadows:
                continue
            out[self.average_name(v) if v in avg else _base_name(v)] = v
        return out


