"""TF1's `variable_scope` and `get_variable` in full: reuse (True, AUTO_REUSE, or
``scope.reuse_variables()``), scope objects re-entered by value, default names, and scope-wide
initializer, regularizer, partitioner and dtype; `get_variable` with a regularizer (its loss
joins ``GraphKeys.REGULARIZATION_LOSSES`` when the variable is created) and a partitioner
(which gives a `PartitionedVariable`: one variable per shard along one axis, named
``<name>/part_<i>``, used as a tensor by concatenating them and by `embedding_lookup` shard by
shard; each part carries a `SaveSliceInfo`, so a Saver stores the parts as TensorFlow does: one
tensor ``<name>`` with a slice per part).

    with af.variable_scope("model", regularizer=af.contrib.layers.l2_regularizer(1e-4)):
        w = af.get_variable("w", [784, 10])
    with af.variable_scope("model", reuse=True):
        assert af.get_variable("w") is w
    emb = af.get_variable("emb", [10000, 64], partitioner=af.fixed_size_partitioner(4))

The scope state is the contextvar of `actorflow.variables` (the base `get_variable` reads its
name, reuse and initializer); this module's `VariableScope` extends that record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

from actorflow import variables
from actorflow.graph import GraphKeys, Tensor, get_default_graph, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import join_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["variable_scope", "get_variable", "VariableScope", "PartitionedVariable",
           "SaveSliceInfo",
           "unique_in_scope",
           "fixed_size_partitioner", "variable_axis_size_partitioner",
           "min_max_variable_partitioner", "get_variable_scope"]


@dataclasses.dataclass(frozen=True)
class VariableScope(variables._VarScope):
    """The current variable scope: its absolute `name`, `reuse`, and the defaults its
    get_variable calls use."""

    regularizer: Any = None
    partitioner: Any = None
    dtype: Any = None
    original_name_scope: str = ""

    def reuse_variables(self) -> None:
        """From here to the end of this scope's block, get_variable reuses."""
        cur = variables._var_scope.get()
        variables._var_scope.set(dataclasses.replace(_as_full(cur), reuse=True))

    def set_initializer(self, initializer: Any) -> None:
        cur = variables._var_scope.get()
        variables._var_scope.set(dataclasses.replace(_as_full(cur), initializer=initializer))

    def set_regularizer(self, regularizer: Any) -> None:
        cur = variables._var_scope.get()
        variables._var_scope.set(dataclasses.replace(_as_full(cur), regularizer=regularizer))

    def set_partitioner(self, partitioner: Any) -> None:
        cur = variables._var_scope.get()
        variables._var_scope.set(dataclasses.replace(_as_full(cur), partitioner=partitioner))


def _as_full(sc: Any) -> VariableScope:
    if isinstance(sc, VariableScope):
        return sc
    return VariableScope(sc.name, sc.reuse, sc.initializer)


def get_variable_scope() -> VariableScope:
    return _as_full(variables._var_scope.get())


@contextlib.contextmanager
def variable_scope(name_or_scope: Any = None, default_name: str | None = None,
                   values: Any = None, initializer: Any = None, regularizer: Any = None,
                   caching_device: Any = None, partitioner: Any = None,
                   custom_getter: Any = None, reuse: Any = None, dtype: Any = None,
                   use_resource: Any = None, constraint: Any = None,
                   auxiliary_name_scope: bool = True) -> Iterator[VariableScope]:
    """Enter a variable scope (see the module doc). A `VariableScope` object re-enters that
    scope by its absolute name; ``None`` with `default_name` makes a unique name."""
    outer = get_variable_scope()
    if isinstance(name_or_scope, variables._VarScope):
        base = _as_full(name_or_scope)
        full = base.name
        short = full.rsplit("/", 1)[-1]
        inherit = base
    elif name_or_scope is not None:
        short = str(name_or_scope)
        full = f"{outer.name}/{short}" if outer.name else short
        inherit = outer
    else:
        if default_name is None:
            raise InvalidArgumentError("variable_scope needs a name or a default_name")
        short = _unique_default(outer.name, default_name)
        full = f"{outer.name}/{short}" if outer.name else short
        inherit = outer
    if reuse is False:
        reuse = None
    sc = VariableScope(
        full,
        reuse if reuse is not None else (outer.reuse or inherit.reuse),
        initializer if initializer is not None else inherit.initializer,
        regularizer if regularizer is not None else inherit.regularizer,
        partitioner if partitioner is not None else inherit.partitioner,
        dtype if dtype is not None else inherit.dtype,
    )
    token = variables._var_scope.set(sc)
    _reset_below(full)
    try:
        if auxiliary_name_scope:
            with name_scope(short) as ns:
                sc = dataclasses.replace(sc, original_name_scope=ns or "")
                variables._var_scope.set(sc)
                yield sc
        else:
            yield sc
    finally:
        variables._var_scope.reset(token)


def _unique_default(outer: str, base: str) -> str:
    full = unique_in_scope(outer, base)
    return full.rsplit("/", 1)[-1]


def _counts() -> dict[str, int]:
    ref = get_default_graph().get_collection_ref("__scope_name_counts")
    if not ref:
        ref.append({})
    return ref[0]


def unique_in_scope(outer: str, base: str) -> str:
    """``outer/base``, ``outer/base_1`` ... : the n-th unnamed layer, cell or default-named
    scope opened in `outer` since `outer` was last entered. Entering a variable scope resets
    the counts below it (as TF1 does), so building the same model again under
    ``variable_scope(name, reuse=True)`` gives the same names, and shares the variables."""
    counts = _counts()
    full = f"{outer}/{base}" if outer else base
    n = counts.get(full, 0)
    counts[full] = n + 1
    return full if n == 0 else f"{full}_{n}"


def _reset_below(full: str) -> None:
    counts = _counts()
    prefix = full + "/"
    for k in [k for k in counts if k.startswith(prefix)]:
        del counts[k]


# ---- partitioned variables ----------------------------------------------------------------
class PartitionedVariable:
    """A variable stored as shards along `axis` (each a Variable): used as a tensor it is
    their concatenation; iterating gives the shards (what embedding_lookup wants)."""

    def __init__(self, name: str, shape: list[int], dtype: Any, parts: list[Any], axis: int):
        self.name = name
        self._shape = shape
        self.dtype = dtype
        self._parts = parts
        self._axis = axis

    def __iter__(self) -> Iterator[Any]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def _get_variable_list(self) -> list[Any]:
        return list(self._parts)

    @property
    def shape(self) -> Any:
        from actorflow.graph import TensorShape
        return TensorShape(self._shape)

    def get_shape(self) -> Any:
        return self.shape

    def _as_tensor(self) -> Tensor:
        return self.as_tensor()

    def as_tensor(self) -> Tensor:
        if len(self._parts) == 1:
            return convert_to_tensor(self._parts[0])
        return join_ops.concat([convert_to_tensor(p) for p in self._parts],
                               self._axis)

    def __repr__(self) -> str:
        return f"<PartitionedVariable '{self.name}' shape={self._shape} parts={len(self)}>"


@dataclasses.dataclass(frozen=True)
class SaveSliceInfo:
    """Where one part of a partitioned variable sits in the whole (TF's
    `Variable.SaveSliceInfo`): the Saver stores every part under `full_name`, one checkpoint
    entry with a slice per part, as TensorFlow does."""

    full_name: str
    full_shape: list[int]
    var_offset: list[int]
    var_shape: list[int]

    @property
    def spec(self) -> str:
        """TF's shape_and_slices string, e.g. "10 4 0,5:0,4"."""
        dims = " ".join(str(d) for d in self.full_shape)
        sl = ":".join(f"{o},{n}" for o, n in zip(self.var_offset, self.var_shape, strict=True))
        return f"{dims} {sl}"


def fixed_size_partitioner(num_shards: int, axis: int = 0) -> Callable[..., list[int]]:
    """Split `axis` into `num_shards` shards (fewer when the axis is shorter)."""
    def partitioner(shape: Any, dtype: Any = None) -> list[int]:
        out = [1] * len(shape)
        out[axis] = max(1, min(int(num_shards), int(shape[axis])))
        return out
    return partitioner


def variable_axis_size_partitioner(max_shard_bytes: int, axis: int = 0,
                                   bytes_per_string_element: int = 16,
                                   max_shards: int | None = None) -> Callable[..., list[int]]:
    """Shards along `axis` of at most `max_shard_bytes` each."""
    def partitioner(shape: Any, dtype: Any = None) -> list[int]:
        size = dtypes.as_dtype(dtype or dtypes.float32).np.itemsize
        rest = math.prod(int(d) for i, d in enumerate(shape) if i != axis) * size
        per = max(1, int(max_shard_bytes) // max(rest, 1))
        n = max(1, math.ceil(int(shape[axis]) / per))
        if max_shards:
            n = min(n, int(max_shards))
        out = [1] * len(shape)
        out[axis] = min(n, int(shape[axis]))
        return out
    return partitioner


def min_max_variable_partitioner(max_partitions: int = 1, axis: int = 0,
                                 min_slice_size: int = 256 << 10,
                                 bytes_per_string_element: int = 16) -> Callable[..., list[int]]:
    """As many shards as keep each at least `min_slice_size` bytes, at most max_partitions."""
    def partitioner(shape: Any, dtype: Any = None) -> list[int]:
        size = dtypes.as_dtype(dtype or dtypes.float32).np.itemsize
        total = math.prod(int(d) for d in shape) * size
        n = max(1, min(int(max_partitions), int(shape[axis]), total // max(min_slice_size, 1)))
        out = [1] * len(shape)
        out[axis] = n
        return out
    return partitioner


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                 regularizer: Any = None, trainable: bool | None = None,
                 collections: list[str] | None = None, caching_device: Any = None,
                 partitioner: Any = None, validate_shape: bool = True, use_resource: Any = None,
                 custom_getter: Any = None, constraint: Any = None, reuse: Any = None,
                 **unused: Any) -> Any:
    """The variable `name` of the current scope, created or (under reuse) shared; see the
    module doc for regularizers and partitioners."""
    sc = get_variable_scope()
    dt = dtype if dtype is not None else (sc.dtype or dtypes.float32)
    reg = regularizer if regularizer is not None else sc.regularizer
    part = partitioner if partitioner is not None else sc.partitioner
    full = f"{sc.name}/{name}" if sc.name else name
    g = get_default_graph()
    store = variables._store(g)
    tr = True if trainable is None else bool(trainable)
    if part is not None and shape is not None:
        return _partitioned(name, full, shape, dt, initializer, reg, tr, collections, part,
                            reuse, store)
    existed = full in store
    v = variables.get_variable(name, shape, dt, initializer, tr, collections, reuse)
    if reg is not None and not existed:
        _regularize(full, v, reg)
    return v


def _regularize(full: str, v: Any, reg: Any) -> None:
    with name_scope(None), name_scope(f"{full}/Regularizer"):
        loss = reg(v)
    if loss is not None:
        get_default_graph().add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)


def _partitioned(name: str, full: str, shape: Any, dt: Any, initializer: Any, reg: Any,
                 trainable: bool, collections: Any, part: Any, reuse: Any,
                 store: dict) -> PartitionedVariable:
    shp = [int(d) for d in shape]
    slices = list(part(shp, dtypes.as_dtype(dt)))
    if len(slices) != len(shp) or sum(1 for s in slices if s > 1) > 1:
        raise InvalidArgumentError(f"partitioner for '{full}' must split one axis, got "
                                   f"{slices}")
    axis = next((i for i, s in enumerate(slices) if s > 1), 0)
    n = slices[axis]
    rows = shp[axis]
    sizes = [rows // n + (1 if i < rows % n else 0) for i in range(n)]
    parts = []
    for i, k in enumerate(sizes):
        ps = list(shp)
        ps[axis] = k
        pname = f"{name}/part_{i}"
        existed = (f"{full}/part_{i}") in store
        v = variables.get_variable(pname, ps, dt, initializer, trainable, collections, reuse)
        offset = [0] * len(shp)
        offset[axis] = sum(sizes[:i])
        v._save_slice_info = SaveSliceInfo(full, shp, offset, ps)  # the Saver's slice
        if reg is not None and not existed:
            _regularize(f"{full}/part_{i}", v, reg)
        parts.append(v)
    return PartitionedVariable(full, shp, dtypes.as_dtype(dt), parts, axis)
