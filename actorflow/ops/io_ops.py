"""Checkpoint ops: SaveV2, MergeV2Checkpoints, RestoreV2 (kernels in `devices.kernels.io`).

The `af.train.Saver` builds them; each runs on the device of the variables it saves, so a
parameter-server task writes its own shard. The prefix is a uint8 tensor of the path's bytes.

    prefix = af.placeholder(af.uint8, [None])
    save = save_v2(prefix, ["w"], [""], [w.read_value()], tmp_suffix="_temp_x")
    merge = merge_v2_checkpoints(prefix, 1, "_temp_x", deps=[save])
    w_value, = restore_v2(prefix, ["w"], [""], [af.float32], [(3, 2)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorflow.graph import Operation, Tensor, control_dependencies
from actorflow.op_def import apply_op, apply_op_op, define_op, no_gradient
from devices import dtypes

define_op("SaveV2", infer=lambda ins, a: [], stateful=True)
define_op("MergeV2Checkpoints", infer=lambda ins, a: [], stateful=True)
define_op("RestoreVariablesV2", infer=lambda ins, a: [], stateful=True)
define_op("RestoreV2", stateful=True,
          infer=lambda ins, a: [(dtypes.as_dtype(d), tuple(s) if s is not None else None)
                                for d, s in zip(a["dtypes"], a["shapes"], strict=True)])
for _op in ("SaveV2", "MergeV2Checkpoints", "RestoreV2", "RestoreVariablesV2"):
    no_gradient(_op)


def save_v2(prefix: Tensor, tensor_names: Sequence[str], shape_and_slices: Sequence[str],
            tensors: Sequence[Tensor], *, shard: int = 0, num_shards: int = 1,
            tmp_suffix: str = "_temp", name: str | None = None) -> Operation:
    """Write `tensors` as part `shard` of a checkpoint under `prefix + tmp_suffix`."""
    attrs = {"tensor_names": list(tensor_names), "shape_and_slices": list(shape_and_slices),
             "shard": shard, "num_shards": num_shards, "tmp_suffix": tmp_suffix}
    return apply_op_op("SaveV2", [prefix, *tensors], attrs, name=name or "SaveV2")


def merge_v2_checkpoints(prefix: Tensor, num_shards: int, tmp_suffix: str,
                         deps: Sequence[Any] = (), name: str | None = None) -> Operation:
    """Rename the parts' data files into place and write the merged index (after `deps`)."""
    with control_dependencies(list(deps)):
        return apply_op_op("MergeV2Checkpoints", [prefix],
                           {"num_shards": num_shards, "tmp_suffix": tmp_suffix},
                           name=name or "MergeV2Checkpoints")


def restore_v2(prefix: Tensor, tensor_names: Sequence[str], shape_and_slices: Sequence[str],
               dtypes_: Sequence[Any], shapes: Sequence[Any],
               name: str | None = None) -> tuple[Tensor, ...]:
    """Read the named tensors (or slices) of the checkpoint at `prefix`."""
    attrs = {"tensor_names": list(tensor_names), "shape_and_slices": list(shape_and_slices),
             "dtypes": [dtypes.as_dtype(d) for d in dtypes_],
             "shapes": [None if s is None else list(s) for s in shapes]}
    return apply_op("RestoreV2", [prefix], attrs, name=name or "RestoreV2")


def restore_variables_v2(prefix: Tensor, tensor_names: Sequence[str],
                         shape_and_slices: Sequence[str], handles: Sequence[Tensor],
                         name: str | None = None) -> Operation:
    """Read the named tensors into the variables behind `handles` (all on one device)."""
    attrs = {"tensor_names": list(tensor_names), "shape_and_slices": list(shape_and_slices)}
    return apply_op_op("RestoreVariablesV2", [prefix, *handles], attrs,
                       name=name or "RestoreVariablesV2")
