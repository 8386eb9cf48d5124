"""`af.train.Saver`: TF1's Saver, writing TensorFlow's V2 checkpoint format.

Built once per graph, it adds save and restore ops (`actorflow.ops.io_ops`) next to the
variables; `save` and `restore` run them with the path fed in:

    saver = af.train.Saver(max_to_keep=3, sharded=True)
    path = saver.save(sess, "/tmp/train/model.ckpt", global_step=step)  # ".../model.ckpt-200"
    saver.restore(sess, af.train.latest_checkpoint("/tmp/train"))

Graph built (names as TF's, under the saver's name scope, "save" by default):
    save/filename           uint8 placeholder: the prefix's bytes (fed by save/restore)
    save/SaveV2[_k]         one per shard, placed with the shard's variables: writes
                            <prefix>_temp_<uuid>/part-k-of-n from that device's memory
    save/MergeV2Checkpoints after every shard: renames parts into place, writes <prefix>.index
    save/RestoreVariablesV2[_k]  one per device holding variables (sharded or not): reads
                            those variables' bytes into them (RestoreV2 fused with the
                            assignments, so a value is read once and never copied again)
    save/restore_all        groups them

What is saved (`save_items`): every variable under its op name, except the parts of a
PartitionedVariable (and their slots, "emb/part_0/Adam"), which save as slices of ONE tensor
under the full name ("emb", "emb/Adam"), as TensorFlow does; restoring reads each part's slice
of whatever the checkpoint holds, so any partitioning (or none) restores into any other.

With `sharded=True` variables are grouped by their device, so each parameter-server task saves
its own variables, in parallel; without it one SaveV2 writes everything (one data file).
Restores always run per device, and do not depend on how a checkpoint was sharded: each reads
the tensors it needs by name, so a checkpoint saved over 2 PS tasks restores onto 1 or 3.

State: `_last` (the checkpoints this saver manages, oldest first, with their times) and
`_last_preserved` (for keep_checkpoint_every_n_hours); both only change in `save` (and
`set_last_checkpoints*`/`recover_last_checkpoints`). Atomicity: the index is written last by
the merge, and the `checkpoint` state file is replaced only after the merge succeeded.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from actorflow.graph import (
    GraphKeys,
    Operation,
    colocate_with,
    control_dependencies,
    get_default_graph,
    name_scope,
)
from actorflow.ops import core_ops, io_ops, state_ops
from actorflow.train import checkpoint_management as cm
from actorflow.variables import Variable
from devices.errors import InvalidArgumentError, NotFoundError
from devices.tensor_bundle import index_path


def op_name(var: Any) -> str:
    """A variable's checkpoint key: its op name ('w', not 'w:0')."""
    return var.op.name


# One thing the Saver writes: (checkpoint name, TF shape_and_slices spec, variable). The spec
# is "" for a whole tensor, or "full_shape off,len:off,len" for one part of a partitioned
# variable; the parts of one name become ONE checkpoint entry with a slice each (as TF).
Item = tuple[str, str, Variable]


def _slice_info(v: Any, parts: dict[str, Any]) -> Any:
    """The SaveSliceInfo of `v`: its own (a part of a PartitionedVariable), or, for a slot of a
    part (named ``<part>/<slot>``, same shape), the part's moved to ``<full name>/<slot>``, as
    TF's slot_creator names them ("emb/part_0/Adam" saves as a slice of "emb/Adam")."""
    info = getattr(v, "_save_slice_info", None)
    if info is not None or not parts:
        return info
    name = op_name(v)
    head = name
    while "/" in head:
        head = head.rsplit("/", 1)[0]
        p = parts.get(head)
        if p is not None:
            if list(p.var_shape) != list(v.shape):
                return None  # not a slot of that part (e.g. a sub-variable of its own)
            return type(p)(p.full_name + name[len(head):], list(p.full_shape),
                           list(p.var_offset), list(p.var_shape))
    return None


def _expand(v: Any) -> list[Any]:
    """A PartitionedVariable (or list of parts) as its parts; a Variable as itself."""
    if isinstance(v, Variable):
        return [v]
    if hasattr(v, "_get_variable_list"):
        return list(v._get_variable_list())
    if isinstance(v, list | tuple) and v and all(isinstance(x, Variable) for x in v):
        return list(v)
    raise InvalidArgumentError(f"Saver's var_list holds {v!r}, not a Variable; pass "
                               f"af.Variable objects (or PartitionedVariables) or a dict "
                               f"name->Variable")


def save_items(var_list: Any) -> list[Item]:
    """What a Saver of `var_list` writes: None (all saveable), a list or a dict (TF1 rules).

    A dict value that is a PartitionedVariable (or a list of its parts) saves its parts as
    slices of the dict's key; in a list (or None), parts save under their full name."""
    if var_list is None:
        g = get_default_graph()
        var_list = g.get_collection(GraphKeys.GLOBAL_VARIABLES) + g.get_collection(
            "saveable_objects")
    items: list[Item] = []
    if isinstance(var_list, dict):
        for name, v in var_list.items():
            for part in _expand(v):
                info = getattr(part, "_save_slice_info", None)
                items.append((name, "" if info is None else info.spec, part))
    else:
        flat = [p for v in var_list for p in _expand(v)]
        parts = {op_name(p): p._save_slice_info for p in flat
                 if getattr(p, "_save_slice_info", None) is not None}
        for v in flat:
            info = _slice_info(v, parts)
            items.append((op_name(v), "", v) if info is None else (info.full_name, info.spec, v))
    seen: dict[str, set[str]] = {}
    for name, spec, _ in items:
        specs = seen.setdefault(name, set())
        if (spec == "" and specs) or "" in specs or spec in specs:
            raise InvalidArgumentError(f"at least two variables have the same name: {name}")
        specs.add(spec)
    return items


def var_map(var_list: Any) -> dict[str, Variable]:
    """{checkpoint name: variable} for the whole (unpartitioned) variables of `var_list`."""
    return {name: v for name, spec, v in save_items(var_list) if not spec}


def _prefix_feed(path: str) -> np.ndarray:
    return np.frombuffer(os.path.abspath(path).encode(), np.uint8)


class Saver:
    """Saves and restores variables (TF1's `tf.compat.v1.train.Saver`, V2 format only)."""

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False,
                 max_to_keep: int | None = 5, keep_checkpoint_every_n_hours: float = 10000.0,
                 name: str | None = None, restore_sequentially: bool = False,
                 saver_def: Any = None, builder: Any = None, defer_build: bool = False,
                 allow_empty: bool = False, write_version: int = 2,
                 pad_step_number: bool = False, save_relative_paths: bool = False,
                 filename: str | None = None):
        if write_version != 2:
            raise InvalidArgumentError("actorflow writes only V2 checkpoints (write_version=2)")
        self._items = save_items(var_list)
        if not self._items and not allow_empty:
            raise ValueError("No variables to save")
        self._max_to_keep = max_to_keep
        self._keep_every = keep_checkpoint_every_n_hours * 3600.0
        self._pad = pad_step_number
        self._sharded = sharded
        self._filename = filename
        self._last: list[tuple[str, float]] = []
        self._last_preserved = time.time()
        self._built = False
        self._meta_cache: tuple[int, bytes | None] | None = None  # (graph version, .meta bytes)
        self._name = name or "save"
        if not defer_build:
            self.build()

    # -- graph ---------------------------------------------------------------------------------
    def _groups(self) -> list[list[Item]]:
        if not self._sharded:
            items = sorted(self._items, key=lambda it: it[:2])
            return [items] if items else []
        return self._by_device()

    def _by_device(self) -> list[list[Item]]:
        by_dev: dict[str, list[Item]] = {}
        for item in sorted(self._items, key=lambda it: it[:2]):
            by_dev.setdefault(item[2].device or "", []).append(item)
        return [by_dev[d] for d in sorted(by_dev)]

    def build(self) -> None:
        if self._built:
            return
        self._built = True
        tmp = f"_temp_{uuid.uuid4().hex}"
        with name_scope(self._name + "/") as scope:
            self._scope = scope
            self.filename_tensor = core_ops.placeholder("uint8", [None], name="filename")
            groups = self._groups()
            saves: list[Operation] = []
            restores: list[Any] = []
            for k, group in enumerate(groups):
                first = group[0][2]
                with colocate_with(first.handle.op), control_dependencies(None):
                    reads = [state_ops.read_variable_op(v.handle, v.dtype) for _, _, v in group]
                    saves.append(io_ops.save_v2(
                        self.filename_tensor, [n for n, _, _ in group],
                        [sp for _, sp, _ in group], reads,
                        shard=k, num_shards=len(groups), tmp_suffix=tmp))
            for group in self._by_device():
                with colocate_with(group[0][2].handle.op), control_dependencies(None):
                    restores.append(io_ops.restore_variables_v2(
                        self.filename_tensor, [n for n, _, _ in group],
                        [sp for _, sp, _ in group], [v.handle for _, _, v in group]))
            if groups:
                with colocate_with(groups[-1][0][2].handle.op):
                    self.save_op = io_ops.merge_v2_checkpoints(
                        self.filename_tensor, len(groups), tmp, deps=saves)
            else:
                self.save_op = core_ops.no_op(name="save_empty")
            self.restore_op = core_ops.group(*restores, name="restore_all")

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def last_checkpoints(self) -> list[str]:
        """The checkpoints this saver keeps, oldest first."""
        return [p for p, _ in self._last]

    def set_last_checkpoints(self, last_checkpoints: Sequence[str]) -> None:
        self._last = [(p, time.time()) for p in last_checkpoints]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time: Sequence[
            tuple[str, float]]) -> None:
        self._last = list(last_checkpoints_with_time)

    def recover_last_checkpoints(self, checkpoint_paths: Sequence[str]) -> None:
        """Adopt the existing checkpoints (e.g. from get_checkpoint_state) after a restart."""
        mtimes = {p: os.stat(index_path(p)).st_mtime for p in checkpoint_paths
                  if cm.checkpoint_exists(p)}
        self._last = [(p, mtimes[p]) for p in checkpoint_paths if p in mtimes]

    def _remember(self, path: str) -> None:
        self._last = [(p, t) for p, t in self._last if p != path] + [(path, time.time())]
        if not self._max_to_keep:
            return
        while len(self._last) > self._max_to_keep:
            p, t = self._last.pop(0)
            if t - self._last_preserved > self._keep_every:
                self._last_preserved = t  # kept for good (keep_checkpoint_every_n_hours)
                continue
            cm.remove_checkpoint(p)

    # -- save / restore ------------------------------------------------------------------------
    def save(self, sess: Any, save_path: str, global_step: Any = None,
             latest_filename: str | None = None, meta_graph_suffix: str = "meta",
             write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str:
        """Write a checkpoint at `save_path[-global_step]`; return its prefix."""
        if global_step is not None:
            step = global_step if isinstance(global_step, int | np.integer) else sess.run(
                global_step)
            path = f"{save_path}-{int(step):08d}" if self._pad else f"{save_path}-{int(step)}"
        else:
            path = save_path
        save_dir = os.path.dirname(path) or "."
        if latest_filename and os.path.basename(latest_filename) != latest_filename:
            raise ValueError(f"'latest_filename' must be a file name, got '{latest_filename}'")
        if not os.path.isdir(save_dir):
            raise ValueError(f"Parent directory of {path} doesn't exist, can't save.")
        sess.run(self.save_op, {self.filename_tensor: _prefix_feed(path)})
        if write_meta_graph:
            self._write_meta_graph(f"{path}.{meta_graph_suffix}")
        if write_state:
            self._remember(path)
            cm.update_checkpoint_state(
                save_dir, path, self.last_checkpoints, latest_filename,
                [t for _, t in self._last], self._last_preserved)
        return path

    def restore(self, sess: Any, save_path: str | None) -> None:
        """Assign every variable its value in the checkpoint at `save_path`."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        if not cm.checkpoint_exists(save_path):
            raise NotFoundError(f"The passed save_path is not a valid checkpoint: {save_path} "
                                f"(no {index_path(save_path)}); pass a prefix such as "
                                f"af.train.latest_checkpoint(dir) returns")
        sess.run(self.restore_op, {self.filename_tensor: _prefix_feed(save_path)})

    def _write_meta_graph(self, filename: str) -> None:
        """``<prefix>.meta`` beside the checkpoint (TF1 writes one per save), encoded again
        only when the graph changed since the last one; a graph holding Python objects (a
        from_generator dataset) or over protobuf's 2 GB is not written, which costs a warning,
        never the checkpoint."""
        from actorflow import meta_graph, tf_logging
        g = self.save_op.graph
        cached = self._meta_cache
        if cached is None or cached[0] != g.version:
            from google.protobuf.message import EncodeError
            try:
                data = meta_graph.export_meta_graph(graph=g, saver=self).SerializeToString()
            except (InvalidArgumentError, EncodeError, ValueError) as e:
                # Python objects in the graph, or a message over protobuf's 2 GB limit (large
                # constants in the graph: TensorFlow refuses those too)
                if cached is None or cached[1] is not None:
                    tf_logging.warning("not writing %s: %s", filename,
                                       getattr(e, "message", None) or str(e))
                self._meta_cache = (g.version, None)
                return
            self._meta_cache = (g.version, data)
        if self._meta_cache[1] is not None:
            tmp = filename + ".tmp"
            with open(tmp, "wb") as f:
                f.write(self._meta_cache[1])
            os.replace(tmp, filename)

    @classmethod
    def from_saver_def(cls, saver_def: Any, import_scope: str = "") -> Saver:
        """A Saver bound to the save and restore ops an imported MetaGraph's SaverDef names
        (`import_meta_graph`), saving the graph's variables as the original saver did."""
        g = get_default_graph()
        self = cls(max_to_keep=saver_def.max_to_keep or None, sharded=saver_def.sharded,
                   keep_checkpoint_every_n_hours=saver_def.keep_checkpoint_every_n_hours
                   or 10000.0, defer_build=True, allow_empty=True)
        self._built = True
        self.filename_tensor = g.get_tensor_by_name(import_scope
                                                    + saver_def.filename_tensor_name)
        self.save_op = g.get_operation_by_name(import_scope + saver_def.save_tensor_name)
        self.restore_op = g.get_operation_by_name(import_scope + saver_def.restore_op_name)
        return self

    def as_saver_def(self) -> dict[str, Any]:
        return {"filename_tensor_name": self.filename_tensor.name,
                "save_tensor_name": self.save_op.name,
                "restore_op_name": self.restore_op.name,
                "max_to_keep": self._max_to_keep, "sharded": self._sharded, "version": 2,
                "keep_checkpoint_every_n_hours": self._keep_every / 3600.0}
