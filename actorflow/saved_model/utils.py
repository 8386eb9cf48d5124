"""TensorInfo: how a SignatureDef names a tensor (TF1's tf.saved_model.utils)."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Graph, Tensor, get_default_graph
from actorflow.meta_graph import protos
from actorflow.sparse_tensor import SparseTensor
from actorflow.variables import Variable
from devices.bundle_protos import DTYPE_TO_ENUM
from devices.errors import InvalidArgumentError


def build_tensor_info(tensor: Any) -> Any:
    """The TensorInfo of a Tensor (name, dtype, static shape) or of a SparseTensor (coo_sparse)."""
    p = protos()
    if isinstance(tensor, SparseTensor):
        info = p["TensorInfo"](dtype=DTYPE_TO_ENUM.get(tensor.values.dtype.name, 0))
        info.coo_sparse.CopyFrom(p["CooSparse"](
            values_tensor_name=tensor.values.name, indices_tensor_name=tensor.indices.name,
            dense_shape_tensor_name=tensor.dense_shape.name))
        return info
    if isinstance(tensor, Variable):
        tensor = tensor.value()
    if not isinstance(tensor, Tensor):
        raise InvalidArgumentError(f"build_tensor_info takes a Tensor or SparseTensor, got "
                                   f"{type(tensor).__name__}")
    info = p["TensorInfo"](name=tensor.name, dtype=DTYPE_TO_ENUM.get(tensor.dtype.name, 0))
    shape = tensor.shape.as_list() if tensor.shape.ndims is not None else None
    if shape is None:
        info.tensor_shape.unknown_rank = True
    else:
        info.tensor_shape.dim.extend(p["Dim"](size=-1 if d is None else d) for d in shape)
    return info


def get_tensor_from_tensor_info(tensor_info: Any, graph: Graph | None = None,
                                import_scope: str | None = None) -> Any:
    """The Tensor (or SparseTensor) of `graph` that a TensorInfo names."""
    g = graph or get_default_graph()
    prefix = import_scope.rstrip("/") + "/" if import_scope else ""
    if tensor_info.HasField("coo_sparse"):
        c = tensor_info.coo_sparse
        return SparseTensor(g.get_tensor_by_name(prefix + c.indices_tensor_name),
                            g.get_tensor_by_name(prefix + c.values_tensor_name),
                            g.get_tensor_by_name(prefix + c.dense_shape_tensor_name))
    return g.get_tensor_by_name(prefix + tensor_info.name)
