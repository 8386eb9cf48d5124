"""Kernels of dynamic control flow: the executor's primitives, the per-step stores that carry
values from a forward loop to its gradient loop, and TensorArrays.

* Switch, Merge, Enter, Exit, NextIteration and ControlTrigger are run by the executor itself
  (`scheduler.executor`, kinds SWITCH ... CTRIG): they are registered here only so that the
  placer and the rewrites know them, as stateful (never merged, folded or moved). LoopCond
  forwards its boolean: an ordinary kernel.
* `_AccStack` makes a fresh `AccumulatorStore` per run; `_AccPush(store, value, index)` keeps a
  forward loop's value of iteration `index`; `_AccPop(store, index)` hands it to the gradient
  loop. Keyed by iteration, so overlapping iterations may push in any order; a value is read,
  not removed, so two gradient loops built from one forward loop may both read it (the store
  goes with the last of them).
* TensorArrayV3 makes a fresh `TensorArrayStore` per run; writes, reads, stack and unstack go
  through its handle, ordered by the float `flow` scalar they pass along (TF's design). A
  gradient TensorArray (`TensorArrayGradV3`) belongs to its forward array: reading a slot
  nothing wrote gives zeros, and writing a slot twice adds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InternalError, InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _executor_primitive(k: KernelContext) -> Any:
    def compute(*args: Any) -> tuple:
        raise InternalError(f"{k.op} '{k.name}' is run by the executor, not as a kernel "
                            f"(please report)")
    return compute


for _op in ("Switch", "Merge", "Enter", "Exit", "NextIteration", "ControlTrigger"):
    register_kernel(_op, stateful=True)(_executor_primitive)


@register_kernel("LoopCond", stateful=True)
def _loop_cond(k: KernelContext) -> Any:
    return lambda pred: (pred,)


# ---- forward values for the gradient loop ----------------------------------------------------
class AccumulatorStore:
    """Values of one forward loop tensor, by iteration; one store per run of its `_AccStack`."""

    __slots__ = ("name", "values")

    def __init__(self, name: str):
        self.name = name
        self.values: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"<AccumulatorStore {self.name}: {len(self.values)} values>"


@register_kernel("_AccStack", stateful=True)
def _acc_stack(k: KernelContext) -> Any:
    name = k.name
    return lambda *_: (AccumulatorStore(name),)


@register_kernel("_AccPush", stateful=True)
def _acc_push(k: KernelContext) -> Any:
    def compute(store: AccumulatorStore, value: Any, index: Any) -> tuple:
        store.values[int(index)] = value
        return ()
    return compute


@register_kernel("_AccPop", stateful=True)
def _acc_pop(k: KernelContext) -> Any:
    def compute(store: AccumulatorStore, index: Any) -> tuple:
        try:
            return (store.values[int(index)],)
        except KeyError:
            raise InternalError(
                f"'{k.name}': no forward value saved for iteration {int(index)} in "
                f"{store.name} (please report)") from None
    return compute


# ---- TensorArrays ----------------------------------------------------------------------------
class TensorArrayStore:
    """The elements of one TensorArray for one run (owned by the device actor).

    `items[i]` is element i or None; `forward` is set on a gradient array (its elements'
    shapes and dtype come from the forward one, and unwritten ones read as zeros).
    """

    __slots__ = ("name", "dtype", "items", "dynamic", "element_shape", "grads", "forward",
                 "xp")

    def __init__(self, name: str, dtype: Any, size: int, dynamic: bool, element_shape: Any,
                 xp: Any, forward: TensorArrayStore | None = None):
        self.name = name
        self.dtype = np.dtype(dtype)
        self.items: list[Any] = [None] * size
        self.dynamic = dynamic
        self.element_shape = element_shape
        self.grads: dict[str, TensorArrayStore] = {}
        self.forward = forward
        self.xp = xp

    def _index(self, index: Any, writing: bool) -> int:
        i = int(index)
        n = len(self.items)
        if i < 0 or (i >= n and not (writing and self.dynamic)):
            raise InvalidArgumentError(
                f"TensorArray '{self.name}': index {i} is out of range for size {n}"
                + ("" if self.dynamic else "; make it bigger or pass dynamic_size=True"))
        if i >= n:
            self.items.extend([None] * (i + 1 - n))
        return i

    def shape_of_element(self, i: int) -> tuple[int, ...] | None:
        src = self.forward if self.forward is not None else self
        if i < len(src.items) and src.items[i] is not None:
            return tuple(src.items[i].shape)
        for v in src.items:
            if v is not None:
                return tuple(v.shape)
        es = src.element_shape
        if es is not None and all(d is not None for d in es):
            return tuple(es)
        return None

    def write(self, index: Any, value: Any) -> None:
        i = self._index(index, True)
        if value.dtype != self.dtype:
            raise InvalidArgumentError(
                f"TensorArray '{self.name}' holds {self.dtype}, not {value.dtype}")
        old = self.items[i]
        if old is None:
            self.items[i] = value
        elif self.forward is not None:  # a gradient array sums what is written twice
            self.items[i] = old + value
        else:
            raise InvalidArgumentError(
                f"TensorArray '{self.name}': element {i} was already written; each element of "
                f"a TensorArray is written once")
        es = self.element_shape
        if es is not None and len(es) == value.ndim and any(
                d is not None and d != s for d, s in zip(es, value.shape, strict=True)):
            raise InvalidArgumentError(
                f"TensorArray '{self.name}': element {i} has shape {tuple(value.shape)}, but "
                f"the array's elements have shape {tuple(es)}")

    def read(self, index: Any) -> Any:
        i = self._index(index, False)
        v = self.items[i]
        if v is None:
            v = self._zeros(i)
        return v

    def _zeros(self, i: int) -> Any:
        shape = self.shape_of_element(i)
        if self.forward is None or shape is None:
            raise InvalidArgumentError(
                f"TensorArray '{self.name}': element {i} is read before it was written")
        z = self.xp.zeros(shape, self.dtype)
        return z

    def stack(self) -> Any:
        n = len(self.items)
        if n == 0:
            es = self.shape_of_element(0)
            if es is None:
                raise InvalidArgumentError(
                    f"TensorArray '{self.name}' is empty and its element shape is unknown; "
                    f"pass element_shape")
            return self.xp.zeros((0, *es), self.dtype)
        return self.xp.stack([self.read(i) for i in range(n)])

    def unstack(self, value: Any) -> None:
        n = int(value.shape[0]) if value.ndim else 0
        if value.ndim == 0:
            raise InvalidArgumentError(
                f"TensorArray '{self.name}': unstack needs a value of rank >= 1, got a scalar")
        if n != len(self.items):
            if not self.dynamic and len(self.items):
                raise InvalidArgumentError(
                    f"TensorArray '{self.name}' of size {len(self.items)} cannot unstack a "
                    f"value with {n} rows")
            self.items = [None] * n
        for i in range(n):
            self.write(i, value[i])


@register_kernel("TensorArrayV3", stateful=True)
def _tensor_array(k: KernelContext) -> Any:
    dtype = k.attrs["dtype"].np
    dynamic = bool(k.attrs.get("dynamic_size", False))
    es = k.attrs.get("element_shape")
    name = k.attrs.get("tensor_array_name") or k.name
    xp = k.xp
    flow = np.zeros((), np.float32)
    flow.setflags(write=False)

    def compute(size: Any) -> tuple:
        return (TensorArrayStore(name, dtype, int(size), dynamic, es, xp), flow)
    return compute


@register_kernel("TensorArrayGradV3", stateful=True)
def _tensor_array_grad(k: KernelContext) -> Any:
    source = str(k.attrs.get("source", ""))

    def compute(ta: TensorArrayStore, flow: Any) -> tuple:
        g = ta.grads.get(source)
        if g is None:
            g = ta.grads[source] = TensorArrayStore(
                f"{ta.name}@grad", ta.dtype, len(ta.items), True, ta.element_shape, ta.xp, ta)
        return (g, flow)
    return compute


@register_kernel("TensorArrayWriteV3", stateful=True)
def _tensor_array_write(k: KernelContext) -> Any:
    def compute(ta: TensorArrayStore, index: Any, value: Any, flow: Any) -> tuple:
        ta.write(index, value)
        return (flow,)
    return compute


@register_kernel("TensorArrayReadV3", stateful=True)
def _tensor_array_read(k: KernelContext) -> Any:
    return lambda ta, index, flow: (ta.read(index),)


@register_kernel("TensorArrayStackV3", stateful=True)
def _tensor_array_stack(k: KernelContext) -> Any:
    return lambda ta, flow: (ta.stack(),)


@register_kernel("TensorArrayUnstackV3", stateful=True)
def _tensor_array_unstack(k: KernelContext) -> Any:
    def compute(ta: TensorArrayStore, value: Any, flow: Any) -> tuple:
        ta.unstack(value)
        return (flow,)
    return compute


@register_kernel("TensorArraySizeV3", stateful=True)
def _tensor_array_size(k: KernelContext) -> Any:
    return lambda ta, flow: (np.array(len(ta.items), np.int32),)
