"""TF1's Barrier (`af.Barrier`, `data_flow_ops.Barrier`): a device resource mapping string
keys to elements of several components, inserted component by component; complete elements
are taken in batches, in insertion order (`devices.barriers`).

A `take_many` that cannot be served waits asynchronously on the device (it holds nothing)
until enough elements are complete, the barrier is closed (then OutOfRangeError), its step's
deadline or cancellation fires, or its own `timeout` (milliseconds, as TF1's argument; TF1
never implemented it) passes (DeadlineExceededError). Shared by `shared_name` across sessions
and clients, like a queue; every op is colocated with the handle.

    b = af.Barrier((af.float32, af.int64), shapes=((), ()), shared_name="b")
    ins0 = b.insert_many(0, keys, images)         # one step has the images
    ins1 = b.insert_many(1, keys, labels)         # another has the labels
    indices, keys_out, (img, lab) = b.take_many(32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorflow import shapes as shp
from actorflow.graph import Operation, Tensor, colocate_with
from actorflow.op_def import apply_op, apply_op_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["Barrier"]


def _take_infer(ins: list[Tensor], attrs: dict) -> list:
    n = attrs.get("n_static")
    shapes = attrs.get("shapes") or [None] * len(attrs["component_types"])
    return [(dtypes.int64, (n,)), (dtypes.string, (n,))] + [
        (t, None if s is None else (n, *s))
        for t, s in zip(attrs["component_types"], shapes, strict=True)]


define_op("Barrier", infer=lambda i, a: [(dtypes.resource, ())], stateful=True)
define_op("BarrierInsertMany", infer=lambda i, a: [], stateful=True)
define_op("BarrierTakeMany", infer=_take_infer, stateful=True)
define_op("BarrierClose", infer=lambda i, a: [], stateful=True)
define_op("BarrierReadySize", infer=lambda i, a: [(dtypes.int32, ())], stateful=True)
define_op("BarrierIncompleteSize", infer=lambda i, a: [(dtypes.int32, ())], stateful=True)
for _op in ("Barrier", "BarrierInsertMany", "BarrierTakeMany", "BarrierClose",
            "BarrierReadySize", "BarrierIncompleteSize"):
    no_gradient(_op)


class Barrier:
    """A barrier of `types` components (optionally of fixed `shapes`), keyed by strings."""

    def __init__(self, types: Sequence[Any] | Any, shapes: Any = None,
                 shared_name: str | None = None, name: str = "barrier"):
        types = list(types) if isinstance(types, (list, tuple)) else [types]
        self._types = [dtypes.as_dtype(t) for t in types]
        if not self._types:
            raise InvalidArgumentError("a Barrier needs at least one component dtype")
        if shapes is not None:
            if len(shapes) != len(self._types):
                raise InvalidArgumentError(
                    f"Barrier got {len(self._types)} types but {len(shapes)} shapes; give one "
                    f"shape per component (or shapes=None)")
            shapes = [shp.as_shape(s) for s in shapes]
        self._shapes = shapes
        self._ref = apply_op("Barrier", [], {"component_types": self._types,
                                             "shapes": self._shapes or [], "container": "",
                                             "shared_name": shared_name or ""}, name=name)[0]

    @property
    def barrier_ref(self) -> Tensor:
        return self._ref

    @property
    def name(self) -> str:
        return self._ref.op.name

    def insert_many(self, component_index: int, keys: Any, values: Any,
                    name: str | None = None) -> Operation:
        """Set component `component_index` of the elements `keys` (1-D strings) to the slices
        of `values` along dimension 0. A key's component may be set once; a closed barrier
        takes no new keys."""
        if not 0 <= int(component_index) < len(self._types):
            raise InvalidArgumentError(
                f"Barrier '{self.name}' has {len(self._types)} components; component_index "
                f"{component_index} is out of range")
        dt = self._types[component_index]
        with colocate_with(self._ref.op):
            k = convert_to_tensor(keys, dtype=dtypes.string)
            v = convert_to_tensor(values, dtype=dt)
            if v.dtype != dt:
                raise InvalidArgumentError(
                    f"component {component_index} of Barrier '{self.name}' holds {dt.name}, "
                    f"got tensor '{v.name}' of {v.dtype.name}")
            return apply_op_op("BarrierInsertMany", [self._ref, k, v],
                               {"component_index": int(component_index)},
                               name=name or "insert_many")

    def take_many(self, num_elements: Any, allow_small_batch: bool = False,
                  timeout: int | None = None, name: str | None = None
                  ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Take `num_elements` complete elements, oldest first: (indices, keys, values), the
        values one tensor per component stacked on dimension 0. Waits until that many are
        complete; once the barrier is closed and they can no longer be, OutOfRangeError
        (`allow_small_batch`: return the fewer that are ready instead). `timeout`:
        milliseconds before DeadlineExceededError."""
        static = num_elements if isinstance(num_elements, int) else None
        attrs = {"component_types": self._types, "shapes": self._shapes or [],
                 "allow_small_batch": bool(allow_small_batch), "n_static": static,
                 "timeout_ms": -1 if timeout is None else int(timeout)}
        if allow_small_batch:
            attrs["n_static"] = None
        with colocate_with(self._ref.op):
            outs = apply_op("BarrierTakeMany",
                            [self._ref, convert_to_tensor(num_elements, dtype=dtypes.int32)],
                            attrs, name=name or "take_many")
        return outs[0], outs[1], list(outs[2:])

    def close(self, cancel_pending_enqueues: bool = False, name: str | None = None
              ) -> Operation:
        """No new keys after this; with `cancel_pending_enqueues` the incomplete elements are
        dropped and their parts refused. Blocked takes that can no longer be served fail with
        OutOfRangeError."""
        with colocate_with(self._ref.op):
            return apply_op_op("BarrierClose", [self._ref],
                               {"cancel_pending_enqueues": bool(cancel_pending_enqueues)},
                               name=name or "close")

    def ready_size(self, name: str | None = None) -> Tensor:
        """The number of complete elements (int32)."""
        with colocate_with(self._ref.op):
            return apply_op("BarrierReadySize", [self._ref], {}, name=name or "ready_size")[0]

    def incomplete_size(self, name: str | None = None) -> Tensor:
        """The number of elements still missing a component (int32)."""
        with colocate_with(self._ref.op):
            return apply_op("BarrierIncompleteSize", [self._ref], {},
                            name=name or "incomplete_size")[0]
