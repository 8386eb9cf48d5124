"""`TensorArray`: a list of tensors written and read by index, for loops (TF1's design).

An array is a per-step resource (`handle`) plus a float scalar `flow` that every write
passes on: carrying the flow through a loop's variables orders reads after the writes they
need and makes the array's gradient flow through the loop. Each element is written once.

    ta = af.TensorArray(af.float32, size=n)
    def body(i, ta):
        return i + 1, ta.write(i, af.cast(i, af.float32) * 2.0)
    _, ta = af.while_loop(lambda i, ta: i < n, body, (0, ta))
    ta.stack()                                        # [0, 2, 4, ...]

Gradients (in `control_flow_grad`): a read's gradient is a write into the array's gradient
array (`TensorArrayGradV3`) and the other way round; stack and unstack are each other's.
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Tensor, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op
from devices import dtypes
from devices.errors import InvalidArgumentError


def _ta_infer(ins: list[Tensor], attrs: dict) -> list:
    return [(dtypes.resource, ()), (dtypes.float32, ())]


def _element_shape(attrs: dict) -> shapes.Shape:
    return attrs.get("element_shape")


define_op("TensorArrayV3", infer=_ta_infer, stateful=True)
define_op("TensorArrayGradV3", infer=_ta_infer, stateful=True)
define_op("TensorArrayWriteV3", infer=lambda ins, a: [(dtypes.float32, ())], stateful=True)
define_op("TensorArrayReadV3", infer=lambda ins, a: [(dtypes.as_dtype(a["dtype"]),
                                                      _element_shape(a))], stateful=True)
define_op("TensorArrayStackV3", infer=lambda ins, a: [
    (dtypes.as_dtype(a["dtype"]),
     None if _element_shape(a) is None else (a.get("num_elements"), *_element_shape(a)))],
    stateful=True)
define_op("TensorArrayUnstackV3", infer=lambda ins, a: [(dtypes.float32, ())], stateful=True)
define_op("TensorArraySizeV3", infer=lambda ins, a: [(dtypes.int32, ())], stateful=True)


class _Shared:
    """What every TensorArray object of one handle knows: dtype, size and element shape."""

    def __init__(self, dtype: dtypes.DType, size: int | None, element_shape: shapes.Shape):
        self.dtype = dtype
        self.size = size
        self.element_shape = element_shape


class TensorArray:
    """A list of `size` tensors of `dtype` (see the module doc). Methods that change it
    (`write`, `unstack`) return a new TensorArray object with the new flow."""

    def __init__(self, dtype: Any, size: Any = None, dynamic_size: bool = False,
                 clear_after_read: Any = None, tensor_array_name: str | None = None,
                 handle: Tensor | None = None, flow: Tensor | None = None,
                 infer_shape: bool = True, element_shape: Any = None,
                 colocate_with_first_write_call: bool = True, name: str | None = None,
                 _shared: _Shared | None = None):
        dt = dtypes.as_dtype(dtype)
        es = None if element_shape is None else shapes.as_shape(
            getattr(element_shape, "dims", element_shape))
        if handle is not None:
            if flow is None:
                raise InvalidArgumentError("TensorArray(handle=...) needs its flow as well")
            self.handle, self._flow = handle, flow
            self._shared = _shared or _Shared(dt, None, es)
            return
        if size is None:
            raise InvalidArgumentError("TensorArray needs a size (a scalar int)")
        with name_scope(name, "TensorArray"):
            size_t = convert_to_tensor(size, dtype=dtypes.int32, name="size")
            from actorflow.op_def import constant_value
            known = constant_value(size_t)
            self.handle, self._flow = apply_op(
                "TensorArrayV3", [size_t],
                {"dtype": dt, "dynamic_size": bool(dynamic_size), "element_shape": es,
                 "tensor_array_name": tensor_array_name or ""}, name="TensorArrayV3")
        self._shared = _Shared(dt, None if known is None or dynamic_size else int(known), es)

    # -- properties ---------------------------------------------------------------------------
    @property
    def flow(self) -> Tensor:
        return self._flow

    @property
    def dtype(self) -> dtypes.DType:
        return self._shared.dtype

    @property
    def element_shape(self) -> shapes.Shape:
        return self._shared.element_shape

    def _with_flow(self, flow: Tensor) -> TensorArray:
        return TensorArray(self.dtype, handle=self.handle, flow=flow, _shared=self._shared)

    def _merge_shape(self, s: shapes.Shape) -> None:
        cur = self._shared.element_shape
        if cur is None:
            self._shared.element_shape = s
        elif s is not None:
            if not shapes.is_compatible(cur, s):
                raise InvalidArgumentError(
                    f"TensorArray of elements of shape {shapes.fmt(cur)} cannot take an "
                    f"element of shape {shapes.fmt(s)}")
            self._shared.element_shape = shapes.merge(cur, s)

    # -- operations ---------------------------------------------------------------------------
    def read(self, index: Any, name: str | None = None) -> Tensor:
        idx = convert_to_tensor(index, dtype=dtypes.int32)
        return apply_op("TensorArrayReadV3", [self.handle, idx, self._flow],
                        {"dtype": self.dtype, "element_shape": self.element_shape},
                        name=name or "TensorArrayReadV3")[0]

    def write(self, index: Any, value: Any, name: str | None = None) -> TensorArray:
        idx = convert_to_tensor(index, dtype=dtypes.int32)
        v = convert_to_tensor(value, dtype=self.dtype)
        self._merge_shape(v._shape)
        flow = apply_op("TensorArrayWriteV3", [self.handle, idx, v, self._flow],
                        name=name or "TensorArrayWriteV3")[0]
        return self._with_flow(flow)

    def stack(self, name: str | None = None) -> Tensor:
        return apply_op("TensorArrayStackV3", [self.handle, self._flow],
                        {"dtype": self.dtype, "element_shape": self.element_shape,
                         "num_elements": self._shared.size},
                        name=name or "TensorArrayStack")[0]

    def gather(self, indices: Any, name: str | None = None) -> Tensor:
        from actorflow.ops import array_ops
        return array_ops.gather(self.stack(), indices, name=name)

    def unstack(self, value: Any, name: str | None = None) -> TensorArray:
        v = convert_to_tensor(value, dtype=self.dtype)
        if v._shape is not None:
            if not v._shape:
                raise InvalidArgumentError(
                    f"TensorArray.unstack needs a value of rank >= 1, got '{v.name}' (a scalar)")
            self._merge_shape(v._shape[1:])
            if v._shape[0] is not None and self._shared.size is None:
                self._shared.size = v._shape[0]
        flow = apply_op("TensorArrayUnstackV3", [self.handle, v, self._flow],
                        name=name or "TensorArrayUnstack")[0]
        return self._with_flow(flow)

    def size(self, name: str | None = None) -> Tensor:
        return apply_op("TensorArraySizeV3", [self.handle, self._flow],
                        name=name or "TensorArraySize")[0]

    def grad(self, source: str, flow: Tensor | None = None, name: str | None = None
             ) -> TensorArray:
        """The gradient array of this one (the same for every call with one `source`)."""
        f = self._flow if flow is None else flow
        handle, out_flow = apply_op("TensorArrayGradV3", [self.handle, f],
                                    {"source": source}, name=name or "TensorArrayGrad")
        return TensorArray(self.dtype, handle=handle, flow=out_flow,
                           _shared=_Shared(self.dtype, self._shared.size,
                                           self._shared.element_shape))

    def __repr__(self) -> str:
        return f"<af.TensorArray dtype={self.dtype.name} handle='{self.handle.name}'>"


__all__ = ["TensorArray"]
