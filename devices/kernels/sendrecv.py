"""Send and Recv (OSDI §3.3): the ends of a cross-device edge, meeting in the step's
rendezvous under the edge's key.

`_Send` never blocks: it puts its input into the step's rendezvous (``ctx.rendezvous``, which
may forward it to another process). `_Recv` is asynchronous: it waits for its key, then copies
the value into its own device's memory (its pool; on a GPU a host-to-device copy), so each
device owns what it computes on and a late Recv (the ALAP option) really delays the memory.

With ``lossy`` (WP §5.5), float32 values travel as 16 bits (the bfloat16 layout) and the
receiver zero-fills the low mantissa bits: half the bytes. The sender rounds to nearest even
when it cuts, which bounds the relative error by 2**-8; cutting by plain truncation, as the
paper does, would allow up to 2**-7.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from devices.kernels.registry import KernelContext, register_kernel


def truncate_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> uint16: the upper half of each value (sign, exponent, 7 mantissa bits),
    rounded to nearest even on the dropped half."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u += 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def expand_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """uint16 upper halves -> float32 with the low 16 bits zero."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class Landed:
    """A host array that already belongs to the receiving task (decoded from the wire, in a
    buffer nothing else refers to): a CPU Recv takes it as it is, with no copy."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


class OnDevice:
    """A GPU value in a rendezvous, with the CUDA event after which it is complete."""

    __slots__ = ("array", "event")

    def __init__(self, array: Any, event: Any):
        self.array = array
        self.event = event


def _host(value: Any) -> Any:
    get = getattr(value, "get", None)  # CuPy -> NumPy
    return get() if get is not None and not isinstance(value, np.ndarray) else value


@register_kernel("_Send")
def _send(k: KernelContext) -> Any:
    key = k.attrs["key"]
    lossy = bool(k.attrs.get("lossy"))
    dev = k.device
    on_gpu = dev.device_type == "GPU"

    def compute(ctx: Any, x: Any) -> tuple:
        if lossy and getattr(x, "dtype", None) == np.float32:
            x = truncate_to_bfloat16_bits(_host(x))
        elif on_gpu:
            event = dev.xp.cuda.Event(disable_timing=True)
            event.record(dev.stream)
            x = OnDevice(x, event)
        ctx.rendezvous.send(key, x)
        ctx.bytes_moved += getattr(getattr(x, "array", x), "nbytes", 0)
        return ()

    compute.needs_step = True  # type: ignore[attr-defined]
    return compute


@register_kernel("_Recv", is_async=True)
def _recv(k: KernelContext) -> Any:
    key = k.attrs["key"]
    lossy = bool(k.attrs.get("lossy"))
    dev = k.device
    xp = dev.xp
    pool = dev.pool
    name = k.name

    def land(value: Any) -> tuple:
        """Decode and copy a received value into this device's memory."""
        if type(value) is Landed:
            value = value.array
            if xp is np and not lossy:
                return (value,)  # it is ours already: no copy
        if lossy and getattr(value, "dtype", None) == np.uint16:
            value = expand_bfloat16_bits(value)
        if isinstance(value, np.ndarray) and xp is np:
            if value.nbytes >= pool.min_bytes:
                out = pool.empty(value.shape, value.dtype, name)
                np.copyto(out, value)
                return (out,)
            return (value,)
        if xp is not np:
            return (dev.to_device(_host(value)),)
        return (xp.asarray(_host(value)),)

    def poll(ctx: Any) -> tuple | None:
        value = ctx.rendezvous.try_recv(key)
        if value is None or isinstance(value, OnDevice):
            if value is not None:
                ctx.rendezvous.send(key, value)  # put it back: a GPU value needs waiting
            return None
        return land(value)

    async def on_device(value: OnDevice) -> tuple:
        from devices.gpu import wait_event

        await wait_event(value.event)
        return land(value.array if xp is not np else value.array.get())

    async def compute(ctx: Any) -> tuple:
        value = await ctx.rendezvous.recv(key)
        if isinstance(value, OnDevice):
            return await on_device(value)
        return land(value)

    def subscribe(ctx: Any, done: Callable[[tuple | None, Exception | None, bool], None]
                  ) -> None:
        """Call ``done(outputs, error, resume)`` when the value is here (no task waits for
        it); `resume` is the rendezvous's (see `scheduler.rendezvous`)."""
        rdv = ctx.rendezvous

        def ready(resume: bool) -> None:
            try:
                value = rdv.try_recv(key)
                if isinstance(value, OnDevice):  # a GPU value: wait for its event in a task
                    dev.start_soon(_later, value)
                    return
                outs = land(value)
            except Exception as e:  # noqa: BLE001 - the executor turns it into the step's error
                done(None, e, False)
                return
            done(outs, None, resume)

        async def _later(value: OnDevice) -> None:
            try:
                outs = await on_device(value)
            except Exception as e:  # noqa: BLE001
                done(None, e, False)
                return
            done(outs, None, False)

        rdv.subscribe(key, ready)

    compute.poll = poll  # type: ignore[attr-defined]
    compute.subscribe = subscribe  # type: ignore[attr-defined]
    return compute
