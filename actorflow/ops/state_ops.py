"""State ops: resource variables (handles, reads, assignments, scatters) and the fused
optimizer updates (`ResourceApply*`), as in the papers' mutable state (WP §4.4, OSDI §3.1).

A variable is three kinds of node around one *handle*:

    h = var_handle_op(float32, (3,), shared_name="v")   # VarHandleOp -> resource handle
    assign_variable_op(h, init)                         # AssignVariableOp: copy in
    x = read_variable_op(h, float32)                    # ReadVariableOp: a snapshot

The handle is the `devices.resources.ResourceVariable` living in the device's container. A
read is a zero-copy, read-only snapshot that no later update changes (updates copy first when a
snapshot is still held); updates (assign_add, scatter, apply) are in place otherwise. Every op
that takes a handle is placed with the handle's producer (the placer follows resource edges),
and is built under `colocate_with` so `op.device` says so at build time too.

Assignments return the variable's new value (a snapshot taken right after the update), so
``s.run(assign_add(v, 1))`` fetches the incremented value, as in TF1.

The gradient of a read flows to its handle, so `af.gradients(loss, [v.handle])` collects every
read of v (the optimizers use that); `af.gradients(loss, [v])` differentiates w.r.t. the
variable's creation-time snapshot, which is what ``v`` means in an expression.
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor, colocate_with
from actorflow.op_def import (
    apply_op,
    apply_op_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from devices import dtypes
from devices.dtypes import DType
from devices.errors import InvalidArgumentError


# ---- handles and reads --------------------------------------------------------------------
def _handle_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(dtypes.resource, ())]


def _read_infer(ins: list[Tensor], attrs: dict) -> list:
    h = _check_handle(ins[0], "ReadVariableOp")
    return [(dtypes.as_dtype(attrs["dtype"]), _var_shape(h))]


define_op("VarHandleOp", infer=_handle_infer, stateful=True)
define_op("ReadVariableOp", infer=_read_infer, stateful=True)
define_op("VarIsInitializedOp", infer=lambda ins, a: [(dtypes.bool_, ())], stateful=True)
no_gradient("VarHandleOp")
no_gradient("VarIsInitializedOp")


@register_gradient("ReadVariableOp")
def _read_grad(op: Operation, grad: Any) -> list[Any]:
    return [grad]


def var_handle_op(dtype: Any, shape: Any, shared_name: str = "", container: str = "",
                  name: str | None = None) -> Tensor:
    """A handle to the variable `shared_name` (default: the op's name) in `container` of the
    device the op is placed on; created (uninitialized) on first use."""
    dt = dtypes.as_dtype(dtype)
    if dt.is_resource:
        raise InvalidArgumentError("a variable cannot hold resource handles")
    return apply_op("VarHandleOp", [], {"container": container, "shared_name": shared_name,
                                        "dtype": dt, "shape": shapes.as_shape(shape)},
                    name=name or "VarHandleOp")[0]


def read_variable_op(handle: Tensor, dtype: Any = None, name: str | None = None) -> Tensor:
    """A snapshot of the variable's value (zero-copy, read-only)."""
    dt = dtypes.as_dtype(dtype) if dtype is not None else var_dtype(handle)
    with colocate_with(handle.op):
        return apply_op("ReadVariableOp", [handle], {"dtype": dt},
                        name=name or "ReadVariableOp")[0]


def var_is_initialized_op(handle: Tensor, name: str | None = None) -> Tensor:
    with colocate_with(handle.op):
        return apply_op("VarIsInitializedOp", [_check_handle(handle, "VarIsInitializedOp")],
                        name=name or "VarIsInitializedOp")[0]


def var_dtype(handle: Tensor) -> DType:
    """The dtype of the variable behind `handle` (known from its VarHandleOp)."""
    return dtypes.as_dtype(_handle_op(handle).attrs["dtype"])


def _var_shape(handle: Tensor) -> shapes.Shape:
    return _handle_op(handle).attrs.get("shape")


def _var_name(handle: Tensor) -> str:
    return _handle_op(handle).name


def _handle_op(handle: Tensor) -> Operation:
    op = handle.op
    while op.type == "Identity":
        op = op.inputs[0].op
    if op.type != "VarHandleOp":
        raise InvalidArgumentError(
            f"'{handle.name}' is a resource handle made by a {op.type} op; variable ops need "
            f"a handle from a VarHandleOp (an af.Variable)")
    return op


def _check_handle(t: Tensor, opname: str) -> Tensor:
    if not t.dtype.is_resource:
        raise InvalidArgumentError(
            f"{opname} needs a variable (a resource handle) as its first input, got tensor "
            f"'{t.name}' of dtype {t.dtype.name}; pass the af.Variable itself")
    return t


def _as_handle(ref: Any, opname: str) -> Tensor:
    h = getattr(ref, "handle", ref)
    if not isinstance(h, Tensor):
        raise InvalidArgumentError(
            f"{opname} needs an af.Variable (or its handle), got {type(ref).__name__}")
    return _check_handle(h, opname)


# ---- assignments ----------------------------------------------------------------------------
def _assign_infer(ins: list[Tensor], attrs: dict) -> list:
    h, value = ins
    _check_handle(h, "an assignment")
    dt, shp = var_dtype(h), _var_shape(h)
    if value.dtype is not dt:
        raise InvalidArgumentError(
            f"cannot assign a {value.dtype.name} value ('{value.name}') to variable "
            f"'{_var_name(h)}' of dtype {dt.name}; convert it with af.cast")
    if attrs.get("validate_shape", True) and not shapes.is_compatible(shp, value._shape):
        raise InvalidArgumentError(
            f"cannot assign a value of shape {shapes.fmt(value._shape)} to variable "
            f"'{_var_name(h)}' of shape {shapes.fmt(shp)}")
    if not attrs.get("validate_shape", True):
        return [(dt, value._shape)]
    return [(dt, shapes.merge(shp, value._shape))]


def _update_infer(ins: list[Tensor], attrs: dict) -> list:
    """AssignAdd/AssignSub: the delta has the variable's dtype and broadcasts to its shape."""
    h, delta = ins
    _check_handle(h, "an update")
    dt, shp = var_dtype(h), _var_shape(h)
    if delta.dtype is not dt:
        raise InvalidArgumentError(
            f"cannot update variable '{_var_name(h)}' of dtype {dt.name} with a "
            f"{delta.dtype.name} value ('{delta.name}'); convert it with af.cast")
    if shp is not None and delta._shape is not None:
        ok = len(delta._shape) <= len(shp) and all(
            d is None or d == 1 or w is None or d == w
            for d, w in zip(delta._shape[::-1], shp[::-1], strict=False))
        if not ok:
            raise InvalidArgumentError(
                f"cannot update variable '{_var_name(h)}' of shape {shapes.fmt(shp)} with a "
                f"value of shape {shapes.fmt(delta._shape)}: it must have the variable's "
                f"shape (or broadcast to it)")
    return [(dt, shp)]


define_op("AssignVariableOp", infer=_assign_infer, stateful=True)
no_gradient("AssignVariableOp")
for _t in ("AssignAddVariableOp", "AssignSubVariableOp"):
    define_op(_t, infer=_update_infer, stateful=True)
    no_gradient(_t)


def _assign(type_: str, ref: Any, value: Any, name: str | None, attrs: dict | None = None,
            ) -> Tensor:
    h = _as_handle(ref, type_)
    v = convert_to_tensor(value, dtype=var_dtype(h)) if not isinstance(value, Tensor) \
        else value
    with colocate_with(h.op):
        return apply_op(type_, [h, v], attrs or {}, name=name or type_)[0]


def assign(ref: Any, value: Any, validate_shape: bool = True, use_locking: bool | None = None,
           name: str | None = None) -> Tensor:
    """Set the variable to `value` (copied into a buffer the variable owns); returns the new
    value. ``validate_shape=False`` lets the variable change shape."""
    return _assign("AssignVariableOp", ref, value, name, {"validate_shape": bool(validate_shape)})


def assign_add(ref: Any, value: Any, use_locking: bool | None = None,
               name: str | None = None) -> Tensor:
    """Add `value` to the variable in place; returns the new value."""
    return _assign("AssignAddVariableOp", ref, value, name)


def assign_sub(ref: Any, value: Any, use_locking: bool | None = None,
               name: str | None = None) -> Tensor:
    """Subtract `value` from the variable in place; returns the new value."""
    return _assign("AssignSubVariableOp", ref, value, name)


# ---- scatters -------------------------------------------------------------------------------
def _scatter_infer(ins: list[Tensor], attrs: dict) -> list:
    h, indices, updates = ins
    _check_handle(h, "a scatter")
    dt, shp = var_dtype(h), _var_shape(h)
    vname = _var_name(h)
    if not indices.dtype.is_integer:
        raise InvalidArgumentError(
            f"scatter indices must be int32 or int64, got {indices.dtype.name} "
            f"('{indices.name}') for variable '{vname}'")
    if updates.dtype is not dt:
        raise InvalidArgumentError(
            f"scatter updates of dtype {updates.dtype.name} ('{updates.name}') do not match "
            f"variable '{vname}' of dtype {dt.name}; convert them with af.cast")
    if shp is not None and len(shp) == 0:
        raise InvalidArgumentError(f"cannot scatter into scalar variable '{vname}'")
    if shp is not None and indices._shape is not None and updates._shape is not None:
        want = tuple(indices._shape) + tuple(shp[1:])
        if not shapes.is_compatible(want, updates._shape):
            raise InvalidArgumentError(
                f"scatter into variable '{vname}' of shape {shapes.fmt(shp)} with indices of "
                f"shape {shapes.fmt(indices._shape)} needs updates of shape "
                f"{shapes.fmt(want)} (indices.shape + var.shape[1:]), got "
                f"{shapes.fmt(updates._shape)}")
    return [(dt, shp)]


for _t in ("ResourceScatterAdd", "ResourceScatterSub", "ResourceScatterUpdate"):
    define_op(_t, infer=_scatter_infer, stateful=True)
    no_gradient(_t)


def _scatter(type_: str, ref: Any, indices: Any, updates: Any, name: str | None) -> Tensor:
    h = _as_handle(ref, type_)
    idx = convert_to_tensor(indices, preferred_dtype=dtypes.int32) \
        if not isinstance(indices, Tensor) else indices
    upd = convert_to_tensor(updates, dtype=var_dtype(h)) if not isinstance(updates, Tensor) \
        else updates
    with colocate_with(h.op):
        return apply_op(type_, [h, idx, upd], name=name or type_)[0]


def scatter_add(ref: Any, indices: Any, updates: Any, use_locking: bool = False,
                name: str | None = None) -> Tensor:
    """``ref[indices[i]] += updates[i]`` row by row (repeated indices add up); returns the
    new value."""
    return _scatter("ResourceScatterAdd", ref, indices, updates, name)


def scatter_sub(ref: Any, indices: Any, updates: Any, use_locking: bool = False,
                name: str | None = None) -> Tensor:
    """``ref[indices[i]] -= updates[i]`` (repeated indices add up); returns the new value."""
    return _scatter("ResourceScatterSub", ref, indices, updates, name)


def scatter_update(ref: Any, indices: Any, updates: Any, use_locking: bool = True,
                   name: str | None = None) -> Tensor:
    """``ref[indices[i]] = updates[i]`` (with repeated indices, one of them wins); returns the
    new value."""
    return _scatter("ResourceScatterUpdate", ref, indices, updates, name)


def is_variable_initialized(ref: Any, name: str | None = None) -> Tensor:
    """A scalar bool: has the variable been assigned yet?"""
    return var_is_initialized_op(_as_handle(ref, "is_variable_initialized"), name=name)


# ---- fused optimizer updates ----------------------------------------------------------------
# name -> (number of leading handles, names of the dense inputs after them)
_APPLY_OPS: dict[str, tuple[int, tuple[str, ...]]] = {
    "ResourceApplyGradientDescent": (1, ("alpha", "delta")),
    "ResourceApplyMomentum": (2, ("lr", "grad", "momentum")),
    "ResourceApplyAdagrad": (2, ("lr", "grad")),
    "ResourceApplyRMSProp": (3, ("lr", "rho", "momentum", "epsilon", "grad")),
    "ResourceApplyCenteredRMSProp": (4, ("lr", "rho", "momentum", "epsilon", "grad")),
    "ResourceApplyAdam": (3, ("beta1_power", "beta2_power", "lr", "beta1", "beta2",
                              "epsilon", "grad")),
    "ResourceSparseApplyMomentum": (2, ("lr", "grad", "indices", "momentum")),
    "ResourceSparseApplyAdagrad": (2, ("lr", "grad", "indices")),
    "ResourceSparseApplyRMSProp": (3, ("lr", "rho", "momentum", "epsilon", "grad", "indices")),
    "ResourceSparseApplyCenteredRMSProp": (4, ("lr", "rho", "momentum", "epsilon", "grad",
                                               "indices")),
    "ResourceSparseApplyAdam": (3, ("beta1_power", "beta2_power", "lr", "beta1", "beta2",
                                    "epsilon", "grad", "indices")),
}


def _apply_infer_for(type_: str) -> Any:
    n_handles, names = _APPLY_OPS[type_]
    sparse = "indices" in names

    def infer(ins: list[Tensor], attrs: dict) -> list:
        handles, rest = ins[:n_handles], ins[n_handles:]
        for h in handles:
            _check_handle(h, type_)
        dt, shp = var_dtype(handles[0]), _var_shape(handles[0])
        vname = _var_name(handles[0])
        for h in handles[1:]:
            if var_dtype(h) is not dt or not shapes.is_compatible(_var_shape(h), shp):
                raise InvalidArgumentError(
                    f"{type_}: slot variable '{_var_name(h)}' ({var_dtype(h).name}, "
                    f"{shapes.fmt(_var_shape(h))}) does not match variable '{vname}' "
                    f"({dt.name}, {shapes.fmt(shp)})")
        for nm, t in zip(names, rest, strict=True):
            if nm == "indices":
                if not t.dtype.is_integer:
                    raise InvalidArgumentError(f"{type_}: indices must be integers, got "
                                               f"{t.dtype.name} ('{t.name}')")
                continue
            if t.dtype is not dt:
                raise InvalidArgumentError(
                    f"{type_}: input '{nm}' ('{t.name}') has dtype {t.dtype.name} but variable "
                    f"'{vname}' is {dt.name}; convert it with af.cast")
            if nm == "grad" or nm == "delta":
                want = shp if not sparse else None
                if want is not None and not shapes.is_compatible(want, t._shape):
                    raise InvalidArgumentError(
                        f"{type_}: gradient of shape {shapes.fmt(t._shape)} does not match "
                        f"variable '{vname}' of shape {shapes.fmt(shp)}")
            elif t._shape is not None and len(t._shape) != 0:
                raise InvalidArgumentError(
                    f"{type_}: '{nm}' must be a scalar, got shape {shapes.fmt(t._shape)}")
        return []

    return infer


for _t in _APPLY_OPS:
    define_op(_t, infer=_apply_infer_for(_t), stateful=True)
    no_gradient(_t)


def resource_apply(type_: str, handles: list[Tensor], inputs: list[Any],
                   attrs: dict | None = None, name: str | None = None) -> Operation:
    """Build one fused update op: `handles` (the variable, then its slots) and the dense
    inputs in the order `_APPLY_OPS[type_]` lists them."""
    n_handles, names = _APPLY_OPS[type_]
    if len(handles) != n_handles or len(inputs) != len(names):
        raise InvalidArgumentError(
            f"{type_} takes {n_handles} variables and inputs {list(names)}")
    dt = var_dtype(handles[0])
    ins = [x if isinstance(x, Tensor) else convert_to_tensor(
        x, dtype=None if nm == "indices" else dt) for nm, x in zip(names, inputs, strict=True)]
    with colocate_with(handles[0].op):
        return apply_op_op(type_, [*handles, *ins], attrs or {}, name=name or type_)


__all__ = ["assign", "assign_add", "assign_sub", "scatter_add", "scatter_sub",
           "scatter_update", "is_variable_initialized"]
