"""Reading checkpoints outside a session: `load_checkpoint`, `list_variables`, and
`init_from_checkpoint` (TF1's checkpoint_utils), over `devices.tensor_bundle`.

    reader = af.train.load_checkpoint("/tmp/train")          # a directory or a prefix
    reader.get_variable_to_shape_map()                       # {"w": [3, 2], ...}
    reader.get_tensor("w/Adam")                              # np.ndarray, checksum verified
    af.train.init_from_checkpoint("/tmp/pre", {"encoder/": "enc/"})  # before the initializer
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from actorflow.graph import GraphKeys, colocate_with, get_default_graph
from actorflow.ops import core_ops, io_ops, state_ops
from actorflow.train import checkpoint_management as cm
from devices.dtypes import DType, as_dtype
from devices.errors import InvalidArgumentError, NotFoundError
from devices.tensor_bundle import BundleReader


def _resolve(ckpt_dir_or_file: str) -> str:
    if os.path.isdir(ckpt_dir_or_file):
        latest = cm.latest_checkpoint(ckpt_dir_or_file)
        if latest is None:
            raise ValueError(f"Couldn't find 'checkpoint' file or checkpoints in given "
                             f"directory {ckpt_dir_or_file}")
        return latest
    return ckpt_dir_or_file


class CheckpointReader:
    """TF's `CheckpointReader` (`py_checkpoint_reader`)."""

    def __init__(self, prefix: str):
        self._reader = BundleReader(prefix)
        self.prefix = prefix

    def has_tensor(self, name: str) -> bool:
        return name.encode() in self._reader.entries

    def get_tensor(self, name: str) -> np.ndarray:
        return self._reader.read(name)

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        return {n: self._reader.shape(n) for n in self._reader.names()}

    def get_variable_to_dtype_map(self) -> dict[str, DType]:
        return {n: as_dtype(self._reader.dtype(n)) for n in self._reader.names()}

    def debug_string(self) -> bytes:
        return "".join(f"{n} ({self._reader.dtype(n)}) {self._reader.shape(n)}\n"
                       for n in sorted(self._reader.names())).encode()


NewCheckpointReader = CheckpointReader


def load_checkpoint(ckpt_dir_or_file: str) -> CheckpointReader:
    """A reader of the checkpoint at a prefix, or of the latest one in a directory."""
    return CheckpointReader(_resolve(ckpt_dir_or_file))


def load_variable(ckpt_dir_or_file: str, name: str) -> np.ndarray:
    if name.endswith(":0"):
        name = name[:-2]
    return load_checkpoint(ckpt_dir_or_file).get_tensor(name)


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """[(name, shape)] of every tensor in the checkpoint, sorted by name."""
    shapes = load_checkpoint(ckpt_dir_or_file).get_variable_to_shape_map()
    return sorted(shapes.items())


def init_from_checkpoint(ckpt_dir_or_file: str, assignment_map: dict[str, Any]) -> None:
    """Make the variables' initializers load from a checkpoint (TF1 semantics).

    `assignment_map` maps a checkpoint name or scope ("scope/", "/" for the root) to a
    variable, a variable name, or a scope in the current graph. Call it before building
    `global_variables_initializer()`. A partitioned variable (a PartitionedVariable, or its
    full name) initializes each part from its slice of the checkpoint's tensor, whatever
    partitioning (or none) the checkpoint was saved with."""
    prefix = _resolve(ckpt_dir_or_file)
    reader = CheckpointReader(prefix)
    names = reader.get_variable_to_shape_map()
    # {name in the graph: [(variable, slice spec)]}: a partitioned variable's parts are found
    # by its full name, each restoring its slice ("" for a whole variable)
    graph_vars: dict[str, list[tuple[Any, str]]] = {}
    for v in get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES):
        info = getattr(v, "_save_slice_info", None)
        if info is None:
            graph_vars[v.op.name] = [(v, "")]
        else:
            graph_vars.setdefault(info.full_name, []).append((v, info.spec))

    def parts(target: Any) -> list[tuple[Any, str]]:
        if hasattr(target, "_get_variable_list"):  # a PartitionedVariable
            return [(p, p._save_slice_info.spec) for p in target._get_variable_list()]
        return [(target, "")]

    pairs: list[tuple[str, Any, str]] = []
    for ckpt_key, target in assignment_map.items():
        if not isinstance(target, str):
            pairs.extend((ckpt_key, v, spec) for v, spec in parts(target))
            continue
        if ckpt_key.endswith("/") or ckpt_key == "/":
            src_scope = "" if ckpt_key == "/" else ckpt_key
            dst_scope = "" if target == "/" else target
            for vname, vs in graph_vars.items():
                if vname.startswith(dst_scope):
                    cand = src_scope + vname[len(dst_scope):]
                    if cand in names:
                        pairs.extend((cand, v, spec) for v, spec in vs)
            continue
        if target not in graph_vars:
            raise InvalidArgumentError(f"init_from_checkpoint: no variable '{target}' in the "
                                       f"graph (assignment_map['{ckpt_key}'])")
        pairs.extend((ckpt_key, v, spec) for v, spec in graph_vars[target])
    feed = np.frombuffer(os.path.abspath(prefix).encode(), np.uint8)
    for ckpt_key, v, spec in pairs:
        if ckpt_key not in names:
            raise NotFoundError(f"tensor '{ckpt_key}' is not in checkpoint {prefix}")
        want = v._snapshot._shape
        full = list(v._save_slice_info.full_shape) if spec else want
        if full is not None and list(full) != names[ckpt_key]:
            raise InvalidArgumentError(
                f"variable '{v.op.name}' has shape {list(full)}, but '{ckpt_key}' in "
                f"{prefix} has shape {names[ckpt_key]}")
        with colocate_with(v.handle.op):
            path = core_ops.constant(feed, name=v.op.name + "/checkpoint_path")
            (value,) = io_ops.restore_v2(path, [ckpt_key], [spec], [v.dtype], [want],
                                         name=v.op.name + "/checkpoint_initializer")
            v._initializer_op = state_ops.assign(v.handle, value).op
