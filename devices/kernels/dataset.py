"""Kernels of the `af.data` iterator ops (`devices.datasets`): the iterator handle (created
on first use by name in the device's container; a one-shot iterator initializes itself with
its dataset), `MakeIterator` (start or restart it on a dataset), and `IteratorGetNext`, an
asynchronous kernel: the next element when one is ready (the usual case with prefetch), else
a `Waiter` woken by the producer; OutOfRangeError at the end."""

from __future__ import annotations

from typing import Any

from devices.datasets import Iterator
from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel
from devices.waits import Wait, Waiter


@register_kernel("IteratorV2", stateful=True, device_types=("CPU",))
def _iterator(k: KernelContext) -> Any:
    name = k.attrs.get("shared_name") or k.name
    one_shot = k.attrs.get("dataset")
    mgr = k.device.resources
    dev = k.device
    cache: list[Any] = [-1, None]

    def create() -> Iterator:
        it = Iterator(name, dev)
        if one_shot is not None:
            it.initialize(one_shot)
        return it

    def compute() -> tuple:
        if cache[0] != mgr.generation:
            it = mgr.lookup_or_create("", name, create)
            if not isinstance(it, Iterator):
                raise InvalidArgumentError(f"resource '{name}' is a {type(it).__name__}, "
                                           f"not an iterator", node=k.name, device=dev.name)
            cache[:] = [mgr.generation, it]
        return (cache[1],)
    return compute


@register_kernel("MakeIterator", stateful=True, device_types=("CPU",))
def _make_iterator(k: KernelContext) -> Any:
    desc = k.attrs["dataset"]

    def compute(it: Iterator) -> tuple:
        it.initialize(desc)
        return ()
    return compute


@register_kernel("IteratorGetNext", is_async=True, stateful=True, device_types=("CPU",))
def _get_next(k: KernelContext) -> Any:
    def poll(ctx: Any, it: Iterator) -> tuple | None:
        return it.try_next()

    async def compute(ctx: Any, it: Iterator) -> tuple:
        w = Waiter(Wait("get_next", f"iterator '{it.name}'", k.name, k.device.name,
                        ctx.step_id if ctx else -1))
        it.register(w)
        return await w.wait(ctx, it.cancel)

    compute.poll = poll  # type: ignore[attr-defined]
    return compute
