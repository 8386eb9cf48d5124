"""Queues (WP §4.6, OSDI §3.1) with TF1's API: `af.FIFOQueue`, `af.PaddingFIFOQueue`,
`af.RandomShuffleQueue`, `af.PriorityQueue`.

A queue is a resource on a device (`devices.queues`), made by a handle op and found by
`shared_name` (default: the handle op's name) in the device's container, so two sessions or
two clients of a cluster that build a queue with the same name and device share it. Every op
on a queue is colocated with its handle. Enqueue and dequeue block asynchronously (the
device goes on with other work); `close()` wakes blocked dequeues with
`af.errors.OutOfRangeError`, and a step's deadline or cancellation wakes it too.

    with af.device("/job:ps/task:0"):
        q = af.FIFOQueue(10, [af.float32, af.int32], shapes=[(2,), ()], shared_name="q")
    enq = q.enqueue([x, label])
    x_out, label_out = q.dequeue()
    batch_x, batch_l = q.dequeue_many(32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorflow import shapes as shp
from actorflow.graph import Operation, Tensor, colocate_with
from actorflow.op_def import apply_op, apply_op_op, convert_to_tensor, define_op, no_gradient
from actorflow.ops.barrier_ops import Barrier  # TF1 has it here: data_flow_ops.Barrier
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["QueueBase", "FIFOQueue", "PaddingFIFOQueue", "RandomShuffleQueue", "PriorityQueue",
           "count_up_to", "Barrier"]

_KINDS = ("FIFOQueue", "PaddingFIFOQueue", "RandomShuffleQueue", "PriorityQueue")


def _handle_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(dtypes.resource, ())]


def _none_infer(ins: list[Tensor], attrs: dict) -> list:
    return []


def _deq_infer(batched: bool | None) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        types = attrs["component_types"]
        shapes = attrs.get("shapes") or [None] * len(types)
        out = []
        for t, s in zip(types, shapes, strict=True):
            if batched is None:
                out.append((t, s))
            else:
                n = attrs.get("n_static") if batched else None
                out.append((t, None if s is None else (n, *s)))
        return out
    return infer


for _k in _KINDS:
    define_op(f"{_k}V2", infer=_handle_infer, stateful=True)
    no_gradient(f"{_k}V2")
for _op, _inf in (("QueueEnqueueV2", _none_infer), ("QueueEnqueueManyV2", _none_infer),
                  ("QueueCloseV2", _none_infer),
                  ("QueueDequeueV2", _deq_infer(None)),
                  ("QueueDequeueManyV2", _deq_infer(True)),
                  ("QueueDequeueUpToV2", _deq_infer(False)),
                  ("QueueSizeV2", lambda i, a: [(dtypes.int32, ())]),
                  ("QueueIsClosedV2", lambda i, a: [(dtypes.bool_, ())])):
    define_op(_op, infer=_inf, stateful=True)
    no_gradient(_op)


def _as_shapes(shapes: Any, n: int, kind: str) -> list | None:
    if shapes is None:
        return None
    if len(shapes) != n:
        raise InvalidArgumentError(
            f"{kind} got {n} dtypes but {len(shapes)} shapes; give one shape per component")
    out = [shp.as_shape(s) for s in shapes]
    return out


class QueueBase:
    """A queue: its handle (`queue_ref`), component dtypes, shapes and optional names."""

    def __init__(self, kind: str, component_types: Sequence[Any], shapes: Any, names: Any,
                 capacity: int | None, shared_name: str | None, name: str,
                 extra: dict | None = None):
        self._dtypes = [dtypes.as_dtype(t) for t in component_types]
        if not self._dtypes:
            raise InvalidArgumentError(f"a {kind} needs at least one component dtype")
        self._shapes = _as_shapes(shapes, len(self._dtypes), kind)
        if names is not None:
            names = [names] if isinstance(names, str) else list(names)
            if len(names) != len(self._dtypes):
                raise InvalidArgumentError(
                    f"{kind} got {len(self._dtypes)} dtypes but {len(names)} names")
        self._names = names
        attrs = {"component_types": self._dtypes, "shapes": self._shapes or [],
                 "capacity": -1 if capacity is None else int(capacity),
                 "container": "", "shared_name": shared_name or "", **(extra or {})}
        self._queue_ref = apply_op(f"{kind}V2", [], attrs, name=name)[0]
        self._kind = kind

    # -- properties --------------------------------------------------------------------------
    @property
    def queue_ref(self) -> Tensor:
        return self._queue_ref

    @property
    def name(self) -> str:
        return self._queue_ref.op.name

    @property
    def dtypes(self) -> list[dtypes.DType]:
        return list(self._dtypes)

    @property
    def shapes(self) -> list | None:
        return None if self._shapes is None else list(self._shapes)

    @property
    def names(self) -> list[str] | None:
        return None if self._names is None else list(self._names)

    # -- building ops ------------------------------------------------------------------------
    def _flatten(self, vals: Any) -> list[Tensor]:
        if self._names is not None:
            if not isinstance(vals, dict) or set(vals) != set(self._names):
                raise InvalidArgumentError(
                    f"queue '{self.name}' has names {self._names}: enqueue a dict with exactly "
                    f"those keys, got {sorted(vals) if isinstance(vals, dict) else type(vals)}")
            vals = [vals[k] for k in self._names]
        elif not isinstance(vals, (list, tuple)):
            vals = [vals]
        if len(vals) != len(self._dtypes):
            raise InvalidArgumentError(
                f"queue '{self.name}' has {len(self._dtypes)} components, got {len(vals)} "
                f"values")
        out = []
        for v, dt in zip(vals, self._dtypes, strict=True):
            t = convert_to_tensor(v, dtype=dt)
            if t.dtype != dt:
                raise InvalidArgumentError(
                    f"queue '{self.name}' holds {dt.name}, got tensor '{t.name}' of "
                    f"{t.dtype.name}")
            out.append(t)
        return out

    def _attrs(self, **extra: Any) -> dict:
        return {"component_types": self._dtypes, "shapes": self._shapes or [], **extra}

    def _pack(self, outs: Sequence[Tensor]) -> Any:
        if self._names is not None:
            return dict(zip(self._names, outs, strict=True))
        return outs[0] if len(outs) == 1 else list(outs)

    def enqueue(self, vals: Any, name: str | None = None) -> Operation:
        """Enqueue one element (a tensor, a list of one per component, or a dict by names);
        blocks while the queue is full."""
        with colocate_with(self._queue_ref.op):
            return apply_op_op("QueueEnqueueV2", [self._queue_ref, *self._flatten(vals)],
                               self._attrs(), name=name or "enqueue")

    def enqueue_many(self, vals: Any, name: str | None = None) -> Operation:
        """Enqueue the slices along dimension 0 of every component as elements."""
        with colocate_with(self._queue_ref.op):
            return apply_op_op("QueueEnqueueManyV2", [self._queue_ref, *self._flatten(vals)],
                               self._attrs(), name=name or "enqueue_many")

    def dequeue(self, name: str | None = None) -> Any:
        """Dequeue one element; blocks while the queue is empty; OutOfRangeError once it is
        closed and empty."""
        with colocate_with(self._queue_ref.op):
            outs = apply_op("QueueDequeueV2", [self._queue_ref], self._attrs(),
                            name=name or "dequeue")
        return self._pack(outs)

    def dequeue_many(self, n: Any, name: str | None = None) -> Any:
        """Dequeue exactly `n` elements, stacked on a new dimension 0."""
        static = n if isinstance(n, int) else None
        with colocate_with(self._queue_ref.op):
            outs = apply_op("QueueDequeueManyV2",
                            [self._queue_ref, convert_to_tensor(n, dtype=dtypes.int32)],
                            self._attrs(n_static=static), name=name or "dequeue_many")
        return self._pack(outs)

    def dequeue_up_to(self, n: Any, name: str | None = None) -> Any:
        """Dequeue `n` elements, or fewer (at least one) once the queue is closed."""
        with colocate_with(self._queue_ref.op):
            outs = apply_op("QueueDequeueUpToV2",
                            [self._queue_ref, convert_to_tensor(n, dtype=dtypes.int32)],
                            self._attrs(), name=name or "dequeue_up_to")
        return self._pack(outs)

    def close(self, cancel_pending_enqueues: bool = False, name: str | None = None) -> Operation:
        """Close the queue: later enqueues fail; blocked dequeues that can no longer be served
        fail with OutOfRangeError; pending enqueues are cancelled if asked."""
        with colocate_with(self._queue_ref.op):
            return apply_op_op("QueueCloseV2", [self._queue_ref],
                               {"cancel_pending_enqueues": bool(cancel_pending_enqueues)},
                               name=name or "close")

    def size(self, name: str | None = None) -> Tensor:
        with colocate_with(self._queue_ref.op):
            return apply_op("QueueSizeV2", [self._queue_ref], {}, name=name or "size")[0]

    def is_closed(self, name: str | None = None) -> Tensor:
        with colocate_with(self._queue_ref.op):
            return apply_op("QueueIsClosedV2", [self._queue_ref], {},
                            name=name or "is_closed")[0]


class FIFOQueue(QueueBase):
    """Elements come out in the order they went in."""

    def __init__(self, capacity: int, dtypes: Sequence[Any], shapes: Any = None,
                 names: Any = None, shared_name: str | None = None, name: str = "fifo_queue"):
        super().__init__("FIFOQueue", _types(dtypes), shapes, names, capacity, shared_name, name)


class PaddingFIFOQueue(QueueBase):
    """A FIFO queue whose `dequeue_many` pads every component to the largest element's shape
    (zeros); `shapes` is required and may hold unknown (None) dimensions."""

    def __init__(self, capacity: int, dtypes: Sequence[Any], shapes: Any,
                 names: Any = None, shared_name: str | None = None,
                 name: str = "padding_fifo_queue"):
        if shapes is None:
            raise InvalidArgumentError("PaddingFIFOQueue needs shapes (None for unknown dims)")
        super().__init__("PaddingFIFOQueue", _types(dtypes), shapes, names, capacity,
                         shared_name, name)


class RandomShuffleQueue(QueueBase):
    """Dequeues elements in a random order, keeping `min_after_dequeue` in reserve until
    closed. `seed` makes the order reproducible."""

    def __init__(self, capacity: int, min_after_dequeue: int, dtypes: Sequence[Any],
                 shapes: Any = None, names: Any = None, seed: int | None = None,
                 shared_name: str | None = None, name: str = "random_shuffle_queue"):
        if min_after_dequeue < 0 or (capacity is not None and 0 <= capacity <= min_after_dequeue):
            raise InvalidArgumentError(
                f"RandomShuffleQueue needs 0 <= min_after_dequeue < capacity, got "
                f"min_after_dequeue={min_after_dequeue}, capacity={capacity}")
        extra = {"min_after_dequeue": int(min_after_dequeue)}
        if seed is not None:
            extra["seed"] = int(seed)
        super().__init__("RandomShuffleQueue", _types(dtypes), shapes, names, capacity,
                         shared_name, name, extra)


class PriorityQueue(QueueBase):
    """Dequeues the smallest int64 priority first; every element is (priority, *components)
    and dequeues return the priority as component 0."""

    def __init__(self, capacity: int, types: Sequence[Any], shapes: Any = None,
                 names: Any = None, shared_name: str | None = None,
                 name: str = "priority_queue"):
        types = [dtypes.int64, *_types(types)]
        if shapes is not None:
            shapes = [(), *shapes]
        if names is not None:
            names = ["priority", *([names] if isinstance(names, str) else names)]
        super().__init__("PriorityQueue", types, shapes, names, capacity, shared_name, name)


def _types(ts: Any) -> list:
    return [ts] if not isinstance(ts, (list, tuple)) else list(ts)


define_op("ResourceCountUpTo", infer=lambda i, a: [(a["T"], ())], stateful=True)
no_gradient("ResourceCountUpTo")


def count_up_to(ref: Any, limit: int, name: str | None = None) -> Tensor:
    """Increment the integer variable `ref` until it reaches `limit`; returns the old value
    and raises OutOfRangeError once the limit is reached."""
    h = ref.handle
    with colocate_with(h.op):
        return apply_op("ResourceCountUpTo", [h], {"limit": int(limit), "T": ref.dtype},
                        name=name or "CountUpTo")[0]
