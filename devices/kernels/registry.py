"""The kernel registry: for each op type, which device kinds can run it and how.

A kernel is registered with a *factory*: called once per node when a partition is compiled,
with a `KernelContext` (the node's attributes, output dtypes and shapes, and the device), it
returns the *compute* function the executor calls on every step:

    @register_kernel("Add")
    def _add(k: KernelContext):
        add = k.xp.add                       # NumPy on a CPU, CuPy on a GPU
        return lambda a, b: (add(a, b),)     # compute(*inputs) -> tuple of outputs

Flags on the registration tell the layers above what they may do with the op:
- ``stateful``: touches state or randomness; never merged by CSE nor constant-folded.
- ``is_async``: compute is an ``async def``; the executor runs it as a continuation. Its
  ``compute.poll(ctx, *inputs)`` returns the outputs if they are ready now, else None.
- ``cost``: estimated microseconds for a node (a function of the KernelContext); kernels well
  over the executor's threshold run on a worker thread so independent branches overlap.
- ``device_types``: where it can run; kernels written against ``k.xp`` serve CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.dtypes import DType
from devices.errors import AlreadyExistsError, NotFoundError

Compute = Callable[..., Any]
Factory = Callable[["KernelContext"], Compute]


@dataclass(frozen=True)
class KernelDef:
    op: str
    factory: Factory
    device_types: frozenset[str]
    stateful: bool = False
    is_async: bool = False
    cost: Callable[[KernelContext], float] | None = None


@dataclass
class KernelContext:
    """What a kernel factory sees of its node. Built at compile time, read-only after."""

    name: str
    op: str
    attrs: dict[str, Any]
    out_dtypes: list[DType]
    out_shapes: list[tuple[int | None, ...] | None]
    in_dtypes: list[DType] = field(default_factory=list)
    in_shapes: list[tuple[int | None, ...] | None] = field(default_factory=list)
    device: Any = None  # the owning device (devices.device.Device): xp, pool, resources, rng

    @property
    def xp(self) -> Any:
        return self.device.xp

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


_KERNELS: dict[str, dict[str, KernelDef]] = {}


def register_kernel(op: str, *, device_types: tuple[str, ...] = ("CPU", "GPU"),
                    stateful: bool = False, is_async: bool = False,
                    cost: Callable[[KernelContext], float] | None = None,
                    ) -> Callable[[Factory], Factory]:
    """Decorator: register `factory` as the kernel of `op` on each of `device_types`."""

    def deco(factory: Factory) -> Factory:
        per_device = _KERNELS.setdefault(op, {})
        kdef = KernelDef(op, factory, frozenset(device_types), stateful, is_async,
                         cost or getattr(factory, "default_cost", None))
        for dt in device_types:
            if dt in per_device:
                raise AlreadyExistsError(f"a {dt} kernel for op '{op}' is already registered")
            per_device[dt] = kdef
        return factory

    return deco


def lookup(op: str, device_type: str) -> KernelDef:
    """The kernel of `op` for `device_type`, or NotFound listing where the op can run."""
    per_device = _KERNELS.get(op)
    if per_device is None:
        raise NotFoundError(f"no kernel is registered for op '{op}' on any device")
    kdef = per_device.get(device_type)
    if kdef is None:
        kinds = ", ".join(sorted(per_device)) or "none"
        raise NotFoundError(
            f"op '{op}' has no {device_type} kernel (kernels exist for: {kinds}); "
            f"place it on one of those devices or allow soft placement")
    return kdef


def device_types_for(op: str) -> frozenset[str]:
    """The device kinds that have a kernel for `op` (empty if none)."""
    return frozenset(_KERNELS.get(op, {}))


def is_stateful(op: str) -> bool:
    return any(k.stateful for k in _KERNELS.get(op, {}).values())


def registered_ops() -> list[str]:
    return sorted(_KERNELS)
