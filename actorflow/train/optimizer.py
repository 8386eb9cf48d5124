"""The optimizer base class: gradients in, update ops out, all as graph code.

Design
------
`minimize(loss)` is `compute_gradients` then `apply_gradients`:

- `compute_gradients(loss, var_list)` differentiates `loss` w.r.t. each variable's *handle*:
  the gradient of every read of the variable flows to its handle, so a loss that reads a
  variable several times (its snapshot, `read_value()`, a gather of it) gets the sum.
- `apply_gradients(grads_and_vars, global_step)` makes the slots (per-variable state such as
  momentum accumulators: Variables colocated with their variable, created once per optimizer),
  then one update per variable: `_apply_dense(grad, var)` for a dense gradient,
  `_apply_sparse(grad, var)` for an `IndexedSlices` one (rows only), then `_finish`, then
  increments `global_step` after every update.

Subclasses (one per file) supply `_create_slots`, `_prepare`, `_apply_dense` and
`_apply_sparse`; the built-in ones use fused `ResourceApply*` kernels that update in place on
the variable's device. Hyperparameters may be Python numbers, tensors, variables, or
callables returning one; `_hyper(name, var)` gives one in the variable's dtype.

    opt = af.train.MomentumOptimizer(0.1, momentum=0.9)
    train_op = opt.minimize(loss, global_step=af.train.get_or_create_global_step())
    opt.get_slot(w, "momentum")        # the accumulator Variable of w

Staleness (issue 17): a subclass that sets ``wants_staleness = True`` gets, in
``_apply_dense(grad, var, staleness=...)`` and ``_apply_sparse``, the int64 staleness of the
update (`actorflow.train.staleness`), computed on the variable's device just before its
update; `minimize` takes the version each variable's read in the step was at (for a
variable read by gathers, its version when the op runs: no snapshot of a table is pinned) and
`apply_gradients(..., read_versions={var: int64 tensor})` takes them from user graph code.
`self._read_version(var)` and `self._read_value(var)` give the version and the value the
worker read (DC-ASGD compensates with the latter). `task` (a number or an int64 tensor)
names the sender in update logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actorflow.gradients import gradients
from actorflow.graph import (
    GraphKeys,
    Operation,
    Tensor,
    colocate_with,
    control_dependencies,
    name_scope,
)
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import constant, convert_to_tensor
from actorflow.ops import array_ops, core_ops, state_ops
from actorflow.variables import Variable, trainable_variables
from devices import dtypes
from devices.errors import InvalidArgumentError


class Optimizer:
    """Base class of the optimizers. Not used directly: pick a subclass."""

    GATE_NONE = 0
    GATE_OP = 1
    GATE_GRAPH = 2

    # issue 17: True makes minimize() read versions and _apply_* receive `staleness=`
    wants_staleness = False
    task: Any = -1
    incarnation: Any = None  # issue 17: the sender's; None: its task's (task_incarnation())

    def __init__(self, use_locking: bool, name: str):
        if not name:
            raise InvalidArgumentError("an optimizer needs a non-empty name")
        self._use_locking = use_locking
        self._name = name
        # slot name -> {variable: slot Variable}; written only by `_slot`
        self._slots: dict[str, dict[Variable, Variable]] = {}
        # name -> Variable not tied to one variable (Adam's beta powers); one set per graph
        self._non_slot: dict[tuple[Any, str], Variable] = {}
        # hyperparameter name -> raw value (number, tensor, variable or callable)
        self._hypers: dict[str, Any] = {}
        self._hyper_cache: dict[tuple[str, Any], Tensor] = {}
        self._versions: dict[Variable, Any] = {}  # issue 17: read versions of this apply
        self._read_values: dict[Variable, Any] = {}

    def get_name(self) -> str:
        return self._name

    # -- the public API ------------------------------------------------------------------
    def minimize(self, loss: Any, global_step: Any = None, var_list: list[Variable] | None = None,
                 gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                 colocate_gradients_with_ops: bool = False, name: str | None = None,
                 grad_loss: Any = None) -> Operation:
        """Add ops that minimize `loss` by updating `var_list` (default: trainable ones)."""
        grads_and_vars = self.compute_gradients(
            loss, var_list=var_list, gate_gradients=gate_gradients, grad_loss=grad_loss)
        read_versions = None
        if self.wants_staleness:
            from actorflow.train.staleness import variable_version, version_of_read

            # a dense read's exact version; a sparse (gathered) variable's version now: pinning
            # a snapshot of a whole table would make its row updates copy the table
            read_versions = {v: variable_version(v, name="read_version")
                             if isinstance(g, IndexedSlices)
                             else version_of_read(v, v.value(), name="read_version")
                             for g, v in grads_and_vars}
        missing = [v for g, v in grads_and_vars if g is None]
        if len(missing) == len(grads_and_vars):
            loss_t = convert_to_tensor(loss)
            raise InvalidArgumentError(
                f"no gradients for any variable: the loss '{loss_t.name}' does not depend on "
                f"{[v.name for v in missing]} through differentiable ops; check the graph "
                f"between them (af.stop_gradient, integer casts)")
        if read_versions is not None:
            return self.apply_gradients(grads_and_vars, global_step=global_step, name=name,
                                        read_versions=read_versions)
        return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss: Any, var_list: list[Variable] | None = None,
                          gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                          colocate_gradients_with_ops: bool = False,
                          grad_loss: Any = None) -> list[tuple[Any, Variable]]:
        """[(gradient or None, variable)] for each variable; sparse gradients (of a gather)
        come as `IndexedSlices`."""
        if callable(loss) and not isinstance(loss, Tensor):
            loss = loss()
        loss = convert_to_tensor(loss)
        if var_list is None:
            var_list = trainable_variables()
        var_list = list(var_list)
        if not var_list:
            raise InvalidArgumentError("no variables to optimize: make some trainable "
                                       "af.Variable, or pass var_list")
        for v in var_list:
            if not isinstance(v, Variable):
                raise InvalidArgumentError(
                    f"var_list must hold af.Variable objects, got {type(v).__name__} "
                    f"({v!r})")
            if not v.dtype.is_floating:
                raise InvalidArgumentError(
                    f"cannot optimize variable '{v.name}' of dtype {v.dtype.name}: only "
                    f"float variables have gradients")
        if not loss.dtype.is_floating:
            raise InvalidArgumentError(f"the loss '{loss.name}' has dtype {loss.dtype.name}; "
                                       f"it must be a float tensor")
        grad_ys = None if grad_loss is None else [grad_loss]
        grads = gradients([loss], [v.handle for v in var_list], grad_ys=grad_ys)
        if gate_gradients == Optimizer.GATE_GRAPH:
            dense = [g for g in grads if isinstance(g, Tensor)]
            if dense:
                gated = iter(core_ops.tuple_(dense))
                grads = [next(gated) if isinstance(g, Tensor) else g for g in grads]
        return list(zip(grads, var_list, strict=True))

    def apply_gradients(self, grads_and_vars: Any, global_step: Any = None,
                        name: str | None = None, read_versions: dict | None = None,
                        read_step: Any = -1, read_values: dict | None = None) -> Operation:
        """One op applying every (gradient, variable) pair, then incrementing global_step.
        `read_versions` ({variable: int64 version tensor}) and `read_step` feed the staleness
        of an optimizer that `wants_staleness` (default: the version read in this step);
        `read_values` ({variable: tensor}) the values the worker read (default: its read)."""
        pairs = [(g, v) for g, v in grads_and_vars]
        if not pairs:
            raise InvalidArgumentError("apply_gradients got no (gradient, variable) pairs")
        for g, v in pairs:
            if not isinstance(v, Variable):
                raise InvalidArgumentError(f"apply_gradients: {v!r} is not an af.Variable")
            if g is not None and not isinstance(g, Tensor | IndexedSlices):
                raise InvalidArgumentError(
                    f"apply_gradients: the gradient of '{v.name}' is a {type(g).__name__}; "
                    f"pass a tensor or af.IndexedSlices")
        live = [(g, v) for g, v in pairs if g is not None]
        if not live:
            raise InvalidArgumentError(
                f"no gradients provided for any variable: {[v.name for _, v in pairs]}")
        with name_scope(name or self._name) as scope:
            self._hyper_cache = {}
            self._read_values = dict(read_values or {})  # this apply's only
            self._versions = {}
            self._create_slots([v for _, v in live])
            self._prepare()
            updates = []
            for g, v in live:
                with name_scope("update_" + v.op.name.replace("/", "_")), \
                        colocate_with(v.op):
                    if self.wants_staleness:
                        updates.append(self._apply_stale(g, v, read_versions, read_step))
                    elif isinstance(g, IndexedSlices):
                        updates.append(self._apply_sparse(g, v))
                    else:
                        g = convert_to_tensor(g)
                        if g.dtype is not v.dtype:
                            raise InvalidArgumentError(
                                f"the gradient '{g.name}' ({g.dtype.name}) of variable "
                                f"'{v.name}' ({v.dtype.name}) has another dtype")
                        updates.append(self._apply_dense(g, v))
            if global_step is None:
                apply_op = self._finish(updates, scope.rstrip("/") or self._name)
            else:
                with control_dependencies([self._finish(updates, "update")]):
                    with colocate_with(_handle_op(global_step)):
                        apply_op = state_ops.assign_add(global_step, 1, name=name or "step").op
        g_ = apply_op.graph
        train_ops = g_.get_collection_ref(GraphKeys.TRAIN_OP)
        if apply_op not in train_ops:
            train_ops.append(apply_op)
        return apply_op

    def _apply_stale(self, g: Any, v: Variable, read_versions: dict | None,
                     read_step: Any) -> Operation:
        """The update of an optimizer that wants staleness: its staleness op, then the
        update (depending on it)."""
        from actorflow.train.staleness import staleness, variable_version

        rv = (read_versions or {}).get(v)
        if rv is None:
            rv = variable_version(v, name="read_version")
        self._versions[v] = rv
        self._read_values.setdefault(v, v.value())
        s = staleness(v, rv, step=read_step, task=self.task, incarnation=self.incarnation,
                      after=g)  # counted when the gradient is there, next to the apply
        with control_dependencies([s.op]):
            if isinstance(g, IndexedSlices):
                return self._apply_sparse(g, v, staleness=s)
            return self._apply_dense(convert_to_tensor(g), v, staleness=s)

    def _read_version(self, var: Variable) -> Any:
        return self._versions[var]

    def _read_value(self, var: Variable) -> Any:
        return self._read_values.get(var, var.value())

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        return self._slots.get(name, {}).get(var)

    def get_slot_names(self) -> list[str]:
        return sorted(self._slots)

    def variables(self) -> list[Variable]:
        """Every Variable this optimizer made (slots and non-slot state)."""
        out = [v for slots in self._slots.values() for v in slots.values()]
        return out + list(self._non_slot.values())

    # -- for subclasses ------------------------------------------------------------------
    def _create_slots(self, var_list: list[Variable]) -> None:
        pass

    def _prepare(self) -> None:
        pass

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        raise NotImplementedError(f"{type(self).__name__} has no dense update")

    def _apply_sparse(self, grad: IndexedSlices, var: Variable, **kw: Any) -> Operation:
        """Default: densify the gradient and apply it densely (`kw`: `staleness=`)."""
        return self._apply_dense(convert_to_tensor(grad), var, **kw)

    def _finish(self, update_ops: list[Operation], name_scope: str) -> Operation:
        return core_ops.group(*update_ops, name=name_scope)

    def _set_hyper(self, name: str, value: Any) -> None:
        if isinstance(value, int | float) and value < 0 and name != "momentum":
            raise InvalidArgumentError(f"{type(self).__name__}: {name} must not be negative, "
                                       f"got {value}")
        self._hypers[name] = value

    def _hyper(self, name: str, var: Variable) -> Tensor:
        """Hyperparameter `name` as a scalar tensor of `var`'s dtype (built once per apply)."""
        dt = var.dtype
        key = (name, dt)
        t = self._hyper_cache.get(key)
        if t is not None:
            return t
        value = self._hypers[name]
        if callable(value) and not isinstance(value, Tensor | Variable):
            value = value()
        if isinstance(value, Tensor | Variable):
            t = convert_to_tensor(value)
            if t.dtype is not dt:
                t = _cast(t, dt)
        else:
            t = constant(value, dtype=dt, name=name)
        self._hyper_cache[key] = t
        return t

    def _slot(self, var: Variable, slot_name: str, init: float = 0.0) -> Variable:
        """The slot `slot_name` of `var`, made on first use: a non-trainable Variable filled
        with `init`, colocated with `var`, named ``<var>/<optimizer name>`` (then ``_1``...
        for its next slots, as TF)."""
        slots = self._slots.setdefault(slot_name, {})
        s = slots.get(var)
        if s is None:
            # outside any name scope or control dependencies of the caller (TF's init_scope)
            with name_scope(None), control_dependencies(None), colocate_with(var.op):
                s = Variable(lambda: _filled(var, init), trainable=False,
                             name=f"{var.op.name}/{self._name}", dtype=var.dtype)
            slots[var] = s
        return s

    def _non_slot_variable(self, name: str, value: float, colocate: Variable) -> Variable:
        key = (colocate.graph, name)
        v = self._non_slot.get(key)
        if v is None:
            with name_scope(None), control_dependencies(None), colocate_with(colocate.op):
                v = Variable(lambda: constant(value, dtype=colocate.dtype), trainable=False,
                             name=name, dtype=colocate.dtype)
            self._non_slot[key] = v
        return v


def deduplicate(grad: IndexedSlices) -> IndexedSlices:
    """The same sparse gradient with each row index once, its values summed (what TF's
    optimizers apply: a row named twice gets one update with the sum, not two updates)."""
    from actorflow.ops import reduction_ops, scan_sort_ops

    unique, pos = scan_sort_ops.unique(grad.indices)
    summed = reduction_ops.unsorted_segment_sum(grad.values, pos,
                                                array_ops.size(unique, out_type=pos.dtype))
    return IndexedSlices(summed, unique, grad.dense_shape)


def _filled(var: Variable, value: float) -> Tensor:
    shape = var.value()._shape
    if shape is not None and None not in shape:
        return array_ops.fill(list(shape), constant(value, dtype=var.dtype))
    return array_ops.fill(array_ops.shape(var.initial_value), constant(value, dtype=var.dtype))


def _cast(t: Tensor, dt: dtypes.DType) -> Tensor:
    from actorflow.ops import math_ops

    cast: Callable[..., Tensor] | None = getattr(math_ops, "cast", None)
    if cast is None:
        raise InvalidArgumentError(f"hyperparameter '{t.name}' is {t.dtype.name} but the "
                                   f"variable is {dt.name}; give it the variable's dtype")
    return cast(t, dt)


def _handle_op(v: Any) -> Operation:
    if isinstance(v, Variable):
        return v.op
    raise InvalidArgumentError(f"global_step must be an af.Variable (see "
                               f"af.train.get_or_create_global_step()), got {v!r}")
