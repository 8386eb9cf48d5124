"""Kernels of the queue ops (`devices.queues`): the handle ops create or find a queue in the
device's container by `shared_name`; enqueue and dequeue are *asynchronous* kernels.

An asynchronous kernel here has two halves, the executor's interface (see `registry`):
``compute.poll(ctx, queue, *inputs)`` tries the operation without waiting (no task, no
thread hop; the common case) and returns its outputs or None; ``await compute(ctx, queue,
*inputs)`` runs in a task of the device's nursery and waits through a `devices.waits.Waiter`
registered with the queue. The device keeps running other nodes and steps meanwhile; closing
the queue, the step's abort (deadline, cancellation, an error elsewhere) and the device's
shutdown each wake the waiter, which is then removed from the queue.

TF1's Barrier (`devices.barriers`) has its kernels here too: `BarrierTakeMany` is
asynchronous the same way, and its `timeout_ms` attr (TF's `timeout`) bounds its wait with a
DeadlineExceededError of its own, besides the step's deadline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trio

from devices.barriers import Barrier
from devices.errors import DeadlineExceededError, InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel
from devices.queues import MANY, ONE, QUEUE_KINDS, UP_TO, QueueBase
from devices.waits import Wait, Waiter


def _handle_factory(kind: str) -> Any:
    cls = QUEUE_KINDS[kind]

    def factory(k: KernelContext) -> Any:
        container = k.attrs.get("container", "") or ""
        name = k.attrs.get("shared_name") or k.name
        dts = [np.dtype(d.np) for d in k.attrs["component_types"]]
        shapes = k.attrs.get("shapes") or None
        capacity = k.attrs.get("capacity", -1)
        mgr = k.device.resources
        dev_name = k.device.name
        extra: dict[str, Any] = {}
        if kind == "RandomShuffleQueue":
            seed = k.attrs.get("seed")
            extra = {"min_after_dequeue": k.attrs.get("min_after_dequeue", 0),
                     "seed": None if seed is None else int(seed)}

        def create() -> QueueBase:
            return cls(name, capacity, dts, shapes, dev_name, **extra)

        cache: list[Any] = [-1, None]

        def compute() -> tuple:
            if cache[0] != mgr.generation:
                q = mgr.lookup_or_create(container, name, create)
                if not isinstance(q, QueueBase):
                    raise InvalidArgumentError(
                        f"resource '{name}' in container '{container or '<default>'}' is a "
                        f"{type(q).__name__}, not a queue; use another shared_name",
                        node=k.name, device=dev_name)
                q.check(kind, dts, capacity)
                cache[:] = [mgr.generation, q]
            return (cache[1],)
        return compute
    return factory


for _kind in QUEUE_KINDS:
    register_kernel(f"{_kind}V2", stateful=True, device_types=("CPU",))(_handle_factory(_kind))


def _wait(k: KernelContext, ctx: Any, q: QueueBase | Barrier, op: str) -> Wait:
    return Wait(op, q.describe(), k.name, k.device.name, ctx.step_id if ctx else -1)


def _enqueue_factory(many: bool) -> Any:
    def factory(k: KernelContext) -> Any:
        def poll(ctx: Any, q: QueueBase, *comps: Any) -> tuple | None:
            return () if q.try_enqueue(q.check_element(comps, many)) else None

        async def compute(ctx: Any, q: QueueBase, *comps: Any) -> tuple:
            w = Waiter(_wait(k, ctx, q, "enqueue_many" if many else "enqueue"),
                       ("enq", q.check_element(comps, many)))
            q.register(w)
            return await w.wait(ctx, q.cancel)

        compute.poll = poll  # type: ignore[attr-defined]
        return compute
    return factory


register_kernel("QueueEnqueueV2", is_async=True, stateful=True, device_types=("CPU",))(
    _enqueue_factory(False))
register_kernel("QueueEnqueueManyV2", is_async=True, stateful=True, device_types=("CPU",))(
    _enqueue_factory(True))


def _dequeue_factory(mode: int) -> Any:
    opname = {ONE: "dequeue", MANY: "dequeue_many", UP_TO: "dequeue_up_to"}[mode]

    def factory(k: KernelContext) -> Any:
        def count(n: Any) -> int:
            if mode == ONE:
                return 1
            n = int(n)
            if n < 0:
                raise InvalidArgumentError(f"{opname} needs n >= 0, got {n}", node=k.name)
            return n

        def poll(ctx: Any, q: QueueBase, *n: Any) -> tuple | None:
            want = count(n[0]) if n else 1
            if mode != ONE and want == 0:
                return _empty(q)
            return q.try_dequeue(want, mode)

        async def compute(ctx: Any, q: QueueBase, *n: Any) -> tuple:
            want = count(n[0]) if n else 1
            w = Waiter(_wait(k, ctx, q, opname), ("deq", want, mode))
            q.register(w)
            return await w.wait(ctx, q.cancel)

        compute.poll = poll  # type: ignore[attr-defined]
        return compute
    return factory


def _empty(q: QueueBase) -> tuple:
    """A batch of zero elements (shape (0, *component shape) where the shape is known)."""
    shapes = q.shapes or [None] * len(q.dtypes)
    return tuple(np.zeros((0, *(d or 0 for d in (s or ()))), dtype=dt)
                 for s, dt in zip(shapes, q.dtypes, strict=True))


register_kernel("QueueDequeueV2", is_async=True, stateful=True, device_types=("CPU",))(
    _dequeue_factory(ONE))
register_kernel("QueueDequeueManyV2", is_async=True, stateful=True, device_types=("CPU",))(
    _dequeue_factory(MANY))
register_kernel("QueueDequeueUpToV2", is_async=True, stateful=True, device_types=("CPU",))(
    _dequeue_factory(UP_TO))


@register_kernel("QueueCloseV2", stateful=True, device_types=("CPU",))
def _close(k: KernelContext) -> Any:
    cancel = bool(k.attrs.get("cancel_pending_enqueues", False))

    def compute(q: QueueBase) -> tuple:
        q.close(cancel)
        return ()
    return compute


@register_kernel("QueueSizeV2", stateful=True, device_types=("CPU",))
def _size(k: KernelContext) -> Any:
    return lambda q: (np.int32(q.size()),)


@register_kernel("QueueIsClosedV2", stateful=True, device_types=("CPU",))
def _is_closed(k: KernelContext) -> Any:
    return lambda q: (np.bool_(q.closed),)


@register_kernel("ResourceCountUpTo", stateful=True)
def _count_up_to(k: KernelContext) -> Any:
    """Increment an integer variable and return its old value; OutOfRange at `limit` (the
    epoch counter of the input producers: `limit_epochs`)."""
    from devices.errors import OutOfRangeError

    limit = int(k.attrs["limit"])

    def compute(h: Any) -> tuple:
        value = h.writable()
        old = value.item()
        if old >= limit:
            raise OutOfRangeError(f"reached limit of {limit} (variable '{h.name}')",
                                  device=k.device.name)
        value[...] = old + 1
        return (np.asarray(old, dtype=value.dtype),)
    return compute


# ---- TF1's Barrier (devices.barriers): BarrierTakeMany is asynchronous like a dequeue -------
@register_kernel("Barrier", stateful=True, device_types=("CPU",))
def _barrier(k: KernelContext) -> Any:
    container = k.attrs.get("container", "") or ""
    name = k.attrs.get("shared_name") or k.name
    dts = [np.dtype(d.np) for d in k.attrs["component_types"]]
    shapes = k.attrs.get("shapes") or None
    mgr = k.device.resources
    dev_name = k.device.name
    cache: list[Any] = [-1, None]

    def compute() -> tuple:
        if cache[0] != mgr.generation:
            b = mgr.lookup_or_create(container, name,
                                     lambda: Barrier(name, dts, shapes, dev_name))
            if not isinstance(b, Barrier):
                raise InvalidArgumentError(
                    f"resource '{name}' in container '{container or '<default>'}' is a "
                    f"{type(b).__name__}, not a Barrier; use another shared_name",
                    node=k.name, device=dev_name)
            b.check(dts)
            cache[:] = [mgr.generation, b]
        return (cache[1],)
    return compute


@register_kernel("BarrierInsertMany", stateful=True, device_types=("CPU",))
def _barrier_insert(k: KernelContext) -> Any:
    component = int(k.attrs["component_index"])

    def compute(b: Barrier, keys: Any, values: Any) -> tuple:
        b.insert_many(component, keys, values)
        return ()
    return compute


@register_kernel("BarrierTakeMany", is_async=True, stateful=True, device_types=("CPU",))
def _barrier_take(k: KernelContext) -> Any:
    small = bool(k.attrs.get("allow_small_batch", False))
    timeout_ms = k.attrs.get("timeout_ms", -1)
    timeout = None if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000

    def count(n: Any) -> int:
        n = int(n)
        if n < 0:
            raise InvalidArgumentError(f"take_many needs num_elements >= 0, got {n}",
                                       node=k.name)
        return n

    def poll(ctx: Any, b: Barrier, n: Any) -> tuple | None:
        return b.try_take(count(n), small)

    async def compute(ctx: Any, b: Barrier, n: Any) -> tuple:
        w = Waiter(_wait(k, ctx, b, "take_many"), (count(n), small))
        b.register(w)
        if timeout is None:
            return await w.wait(ctx, b.cancel)
        with trio.move_on_after(timeout):
            return await w.wait(ctx, b.cancel)
        if w.done and w.error is None:  # served as the timeout fired: keep what it took
            return w.result
        raise DeadlineExceededError(
            f"take_many({int(n)}) on {b.describe()} timed out after {timeout_ms} ms",
            node=k.name, device=k.device.name)

    compute.poll = poll  # type: ignore[attr-defined]
    return compute


@register_kernel("BarrierClose", stateful=True, device_types=("CPU",))
def _barrier_close(k: KernelContext) -> Any:
    cancel = bool(k.attrs.get("cancel_pending_enqueues", False))

    def compute(b: Barrier) -> tuple:
        b.close(cancel)
        return ()
    return compute


@register_kernel("BarrierReadySize", stateful=True, device_types=("CPU",))
def _barrier_ready(k: KernelContext) -> Any:
    return lambda b: (np.int32(b.ready_size()),)


@register_kernel("BarrierIncompleteSize", stateful=True, device_types=("CPU",))
def _barrier_incomplete(k: KernelContext) -> Any:
    return lambda b: (np.int32(b.incomplete_size()),)
