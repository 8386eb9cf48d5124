"""Symbolic values: `Tensor` (one output of an Operation) and `TensorShape` (its static shape
as users see it). Operators on tensors are installed by `actorflow.ops.math_ops` and
`actorflow.ops.index_ops` (``Tensor._override_operator``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from actorflow import shapes
from devices.dtypes import DType
from devices.errors import InvalidArgumentError

if TYPE_CHECKING:
    from actorflow.graph import Graph, Operation


class TensorShape:
    """A static shape as users see it: ``x.shape.as_list()``, ``x.shape[0]``, ``x.shape.rank``."""

    __slots__ = ("dims",)

    def __init__(self, dims: shapes.Shape):
        self.dims = shapes.as_shape(dims)

    @property
    def rank(self) -> int | None:
        return None if self.dims is None else len(self.dims)

    ndims = rank

    def as_list(self) -> list[int | None]:
        if self.dims is None:
            raise ValueError("as_list() is not defined on a shape of unknown rank")
        return list(self.dims)

    def is_fully_defined(self) -> bool:
        return shapes.is_fully_defined(self.dims)

    def num_elements(self) -> int | None:
        return shapes.num_elements(self.dims)

    def __len__(self) -> int:
        if self.dims is None:
            raise ValueError("len() of a shape of unknown rank")
        return len(self.dims)

    def __iter__(self) -> Iterator[int | None]:
        if self.dims is None:
            raise ValueError("cannot iterate over a shape of unknown rank")
        return iter(self.dims)

    def __getitem__(self, i: Any) -> Any:
        if self.dims is None:
            return None
        return self.dims[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TensorShape):
            return self.dims == other.dims
        try:
            return self.dims == shapes.as_shape(other)
        except InvalidArgumentError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self.dims)

    def __repr__(self) -> str:
        return f"TensorShape({'None' if self.dims is None else list(self.dims)})"


class Tensor:
    """One output of an Operation: a symbolic value with a dtype and a static shape.

    ``==`` is identity (tensors are dict keys in ``feed_dict``); arithmetic and ordering
    comparisons build ops (installed by `actorflow.ops.math_ops`).
    """

    __slots__ = ("op", "value_index", "dtype", "_shape", "__weakref__")
    __array_priority__ = 100

    def __init__(self, op: Operation, value_index: int, dtype: DType, shape: shapes.Shape):
        self.op = op
        self.value_index = value_index
        self.dtype = dtype
        self._shape = shape

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"

    @property
    def graph(self) -> Graph:
        return self.op.graph

    @property
    def device(self) -> str:
        return self.op.device

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self._shape)

    def get_shape(self) -> TensorShape:
        return TensorShape(self._shape)

    def set_shape(self, shape: Any) -> None:
        """Refine the static shape (raises if incompatible)."""
        self._shape = shapes.merge(self._shape, shapes.as_shape(shape))

    def consumers(self) -> list[Operation]:
        return [op for op in self.op.graph._ops if any(t is self for t in op.inputs)]

    def eval(self, feed_dict: dict | None = None, session: Any = None) -> Any:
        from actorflow.session import get_default_session
        return (session or get_default_session()).run(self, feed_dict)

    def __repr__(self) -> str:
        return f"<af.Tensor '{self.name}' shape={shapes.fmt(self._shape)} dtype={self.dtype.name}>"

    def __bool__(self) -> bool:
        raise TypeError(
            f"the truth value of a symbolic tensor '{self.name}' is not known when the graph is "
            f"built; use af.cond or af.where instead of a Python 'if'")

    def __iter__(self) -> Iterator[Tensor]:
        if self._shape is None or not self._shape or self._shape[0] is None:
            raise TypeError(f"cannot iterate over tensor '{self.name}' of shape "
                            f"{shapes.fmt(self._shape)}: its first dimension is not known")
        from actorflow.ops import array_ops
        return iter(array_ops.unstack(self))

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    @classmethod
    def _override_operator(cls, name: str, fn: Callable[..., Any]) -> None:
        setattr(cls, name, fn)
