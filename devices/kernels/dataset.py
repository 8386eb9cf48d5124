"""Kernels of the `af.data` iterator ops (`devices.datasets`): the iterator handle (created
on first use by name in the device's container; a one-shot iterator initializes itself with
its dataset), `MakeIterator` (start or restart it on a dataset), and `IteratorGetNext`, an
asynchronous kernel: the next element when one is ready (the usual case with prefetch), else
a `Waiter` woken by the producer; OutOfRangeError at the end. It is *poll-first*: a step
without other asynchronous kernels runs it on the straight run (`scheduler.straight_run`).
`MakeIterator` takes the values of the dataset's fed sources as extra inputs (``{"feed": i}``
in its description); `IteratorToStringHandle` gives the resource's name,
`IteratorFromStringHandleV2` looks a name up in the device's resources (the feedable
iterator)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.datasets import Iterator
from devices.errors import InvalidArgumentError, NotFoundError
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

    def compute(it: Iterator, *fed: Any) -> tuple:
        it.initialize(_bind_feeds(desc, fed) if fed else desc)
        return ()
    return compute


def _bind_feeds(desc: Any, fed: tuple) -> Any:
    """The dataset description with each ``{"feed": i}`` replaced by input i's value."""
    if isinstance(desc, dict):
        if set(desc) == {"feed"}:
            return fed[desc["feed"]]
        return {k: _bind_feeds(v, fed) for k, v in desc.items()}
    if isinstance(desc, list):
        return [_bind_feeds(v, fed) for v in desc]
    return desc


@register_kernel("IteratorToStringHandle", device_types=("CPU",))
def _to_string_handle(k: KernelContext) -> Any:
    def compute(it: Iterator) -> tuple:
        out = np.empty((), dtype=object)
        out[()] = it.name.encode()
        return (out,)
    return compute


@register_kernel("IteratorFromStringHandleV2", stateful=True, device_types=("CPU",))
def _from_string_handle(k: KernelContext) -> Any:
    mgr = k.device.resources

    def compute(handle: Any) -> tuple:
        arr = np.asarray(handle)
        name = arr.item().decode() if arr.shape == () and isinstance(arr.item(), bytes) else ""
        if not name:
            raise InvalidArgumentError(f"from_string_handle needs a scalar string (the value "
                                       f"of an iterator's string_handle()), got {arr!r}",
                                       node=k.name, device=k.device.name)
        try:
            it = mgr.lookup("", name)
        except NotFoundError:
            raise NotFoundError(f"no iterator '{name}' on this device: feed the value of "
                                f"sess.run(iterator.string_handle()) of an iterator placed "
                                f"with this one", node=k.name, device=k.device.name) from None
        if not isinstance(it, Iterator):
            raise InvalidArgumentError(f"resource '{name}' is a {type(it).__name__}, not an "
                                       f"iterator", node=k.name, device=k.device.name)
        return (it,)
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
    # its poll answers at once in the usual case (an element in memory or prefetched): a step
    # may run it on the straight run, which falls back to the ready loop's wait when the poll
    # finds nothing (`scheduler.straight_run`)
    compute.poll_first = True  # type: ignore[attr-defined]
    return compute
