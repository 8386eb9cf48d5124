"""`af.data.Dataset`: input pipelines as values (TF's tf.data, TF1 API), run on the device of
their iterator (`devices.datasets`), beside the training step.

A Dataset is a description (plain data: sources, transformations, traced graph functions)
plus the structure, dtypes and static shapes of its elements. Nothing runs until an
iterator's op does: the description travels as an attribute of the iterator ops, so a
pipeline built by a client runs on a worker's CPU device (except `from_generator`, whose
Python callable stays in its process). Functions given to `map`, `filter`, `flat_map` and
`interleave` are traced once into a graph of their own (placeholders for the element's
components), run per element by the device's kernels; they must be self-contained (build
constants inside; no tensors of the main graph, no control flow or queues).

    ds = (af.data.Dataset.from_tensor_slices((images, labels))
          .shuffle(1000, seed=1).map(lambda x, y: (x / 255.0, y)).batch(32)
          .repeat().prefetch(2))
    x, y = ds.make_one_shot_iterator().get_next()

A source may also be a computed tensor (a placeholder, TF1's way to feed a large array once):
the description then holds the Tensor itself, and `Iterator.make_initializer` turns each into
an input of its `MakeIterator` op (``{"feed": i}`` in the attribute), so the value is taken
when the initializer runs; a one-shot iterator cannot have such a source.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from actorflow import shapes as shp
from actorflow.graph import Graph, Tensor
from actorflow.op_def import constant_value, convert_to_tensor
from actorflow.ops import nest
from devices import dtypes
from devices.datasets import GENERATORS
from devices.errors import InvalidArgumentError

# While a flat_map/interleave function is traced: the tensors its inner dataset reads.
_captures: contextvars.ContextVar[list | None] = contextvars.ContextVar("_captures", default=None)
_keys = itertools.count()


def _normalize(x: Any) -> Any:
    """Tuples and dicts are structure; lists and scalars are values (TF's rule)."""
    if isinstance(x, tuple):
        return type(x)(*map(_normalize, x)) if hasattr(x, "_fields") else tuple(
            _normalize(v) for v in x)
    if isinstance(x, dict):
        return {k: _normalize(v) for k, v in x.items()}
    if isinstance(x, Tensor):
        return x
    return np.asarray(x)


def _value(x: Any) -> Any:
    """A concrete array for a source component, or a capture inside a traced function."""
    if isinstance(x, Tensor):
        v = constant_value(x)
        if v is not None:
            return np.asarray(v)
        caps = _captures.get()
        if caps is None:
            return x  # fed when the iterator is initialized (`make_initializer` takes it)
        caps.append(x)
        return {"arg": len(caps) - 1}
    return x


class Dataset:
    def __init__(self, desc: dict, types: list[dtypes.DType], shapes: list, structure: Any):
        self._desc = desc
        self._types = types
        self._shapes = shapes
        self._structure = structure  # nested template of the components (leaves: None)

    # -- element structure ----------------------------------------------------------------
    @property
    def output_types(self) -> Any:
        return nest.pack_sequence_as(self._structure, self._types)

    @property
    def output_shapes(self) -> Any:
        return nest.pack_sequence_as(self._structure, self._shapes)

    # -- sources ------------------------------------------------------------------------------
    @staticmethod
    def _source(op: str, value: Any, sliced: bool) -> Dataset:
        value = _normalize(value)
        flat = nest.flatten(value)
        structure = nest.pack_sequence_as(value, [None] * len(flat))
        types, shapes, arrays = [], [], []
        for v in flat:
            if isinstance(v, Tensor):
                types.append(v.dtype)
                s = v._shape
            else:
                a = np.asarray(v)
                if a.dtype == np.float64:
                    a = a.astype(np.float32)  # TF's default float
                v = a
                types.append(dtypes.as_dtype(a.dtype))
                s = a.shape
            if sliced:
                if s is not None and len(s) == 0:
                    raise InvalidArgumentError("from_tensor_slices needs tensors with a first "
                                               "dimension to slice, got a scalar")
                s = None if s is None else tuple(s[1:])
            shapes.append(None if s is None else tuple(s))
            arrays.append(_value(v))
        if sliced:
            known = {np.asarray(a).shape[0] for a in arrays
                     if not isinstance(a, dict | Tensor)}
            if len(known) > 1:
                raise InvalidArgumentError(
                    f"from_tensor_slices needs the same first dimension in every component, "
                    f"got {sorted(known)}")
        return Dataset({"op": op, "arrays": arrays}, types, shapes, structure)

    @staticmethod
    def from_tensor_slices(tensors: Any) -> Dataset:
        """One element per row (first dimension) of `tensors` (a tensor, tuple or dict)."""
        return Dataset._source("tensor_slices", tensors, True)

    @staticmethod
    def from_tensors(tensors: Any) -> Dataset:
        """A single element: `tensors`."""
        return Dataset._source("tensors", tensors, False)

    @staticmethod
    def range(*args: int) -> Dataset:
        """int64 scalars like Python's range(start, stop, step)."""
        r = range(*args)
        return Dataset({"op": "range", "start": r.start, "stop": r.stop, "step": r.step},
                       [dtypes.int64], [()], None)

    @staticmethod
    def zip(datasets: Any) -> Dataset:
        """Elements of the datasets side by side (a tuple or dict of their elements)."""
        flat = nest.flatten(datasets)
        if not flat or not all(isinstance(d, Dataset) for d in flat):
            raise InvalidArgumentError("Dataset.zip takes a tuple or dict of Datasets")
        structure = nest.pack_sequence_as(datasets, [d._structure for d in flat])
        return Dataset({"op": "zip", "inputs": [d._desc for d in flat]},
                       [t for d in flat for t in d._types],
                       [s for d in flat for s in d._shapes], structure)

    @staticmethod
    def from_generator(generator: Callable[[], Any], output_types: Any,
                       output_shapes: Any = None) -> Dataset:
        """Elements from a Python generator function (runs only in this process)."""
        flat_t = [dtypes.as_dtype(t) for t in nest.flatten(output_types)]
        structure = nest.pack_sequence_as(output_types, [None] * len(flat_t))
        flat_s = ([shp.as_shape(s) for s in nest.flatten_up_to(output_types, output_shapes)]
                  if output_shapes is not None else [None] * len(flat_t))
        key = f"gen{next(_keys)}"
        GENERATORS[key] = generator
        return Dataset({"op": "generator", "key": key, "types": [t.np for t in flat_t]},
                       flat_t, flat_s, structure)

    @staticmethod
    def list_files(file_pattern: Any, shuffle: bool | None = None, seed: int | None = None
                   ) -> Dataset:
        """The file names matching the glob `file_pattern` (a string or a list of them), as
        scalar strings; shuffled (seeded by `seed`) unless `shuffle` is False. The files are
        listed when the graph is built. (TFRecord / Example, session 7 io)"""
        import glob
        patterns = [file_pattern] if isinstance(file_pattern, str | bytes) else list(
            file_pattern)
        names = sorted({f for p in patterns
                        for f in glob.glob(p.decode() if isinstance(p, bytes) else p)})
        if not names:
            raise InvalidArgumentError(f"Dataset.list_files: no files matched pattern "
                                       f"{patterns}")
        ds = Dataset.from_tensor_slices(np.asarray([n.encode() for n in names], dtype=object))
        return ds if shuffle is False else ds.shuffle(len(names), seed=seed)

    # -- transformations ------------------------------------------------------------------------
    def _derive(self, op: str, **kw: Any) -> Dataset:
        return Dataset({"op": op, "input": self._desc, **kw}, self._types, self._shapes,
                       self._structure)

    def _trace(self, fn: Callable[..., Any], what: str, capture: bool = False
               ) -> tuple[dict, list, Any, list]:
        """Trace `fn` on this dataset's elements; returns (spec, flat outputs as tensors, the
        output structure, captures)."""
        g = Graph()
        token = _captures.set([] if capture else None)
        try:
            with g.as_default():
                from actorflow.ops.core_ops import placeholder

                args = [placeholder(t, s, name=f"arg{i}")
                        for i, (t, s) in enumerate(zip(self._types, self._shapes, strict=True))]
                elem = nest.pack_sequence_as(self._structure, args)
                out = fn(*elem) if isinstance(elem, tuple) and not hasattr(
                    elem, "_fields") else fn(elem)
                caps = _captures.get() or []
                if isinstance(out, Dataset):
                    flat, structure = [], out
                else:
                    out = _normalize_out(out)
                    _no_sparse(out, what)  # TFRecord / Example (session 7 io)
                    flat = [convert_to_tensor(t) for t in nest.flatten(out)]
                    structure = nest.pack_sequence_as(out, [None] * len(flat))
                flat_all = flat + [convert_to_tensor(c) for c in caps]
        finally:
            _captures.reset(token)
        for t in flat_all:
            if t.graph is not g:
                raise InvalidArgumentError(
                    f"the function given to {what} uses tensor '{t.name}' of another graph; "
                    f"build what it needs inside the function")
        nodes = [[n.name, n.op, list(n.inputs), dict(n.attrs), list(n.out_dtypes),
                  list(n.out_shapes)] for n in g.as_graph_def().nodes]
        spec = {"nodes": nodes, "args": [a.op.name for a in args],
                "outputs": [t.name for t in flat_all]}
        return spec, flat, structure, caps

    def map(self, map_func: Callable[..., Any], num_parallel_calls: int | None = None
            ) -> Dataset:
        """`map_func` (traced into a graph function) applied to every element;
        `num_parallel_calls` elements are mapped at once on worker threads."""
        spec, flat, structure, _ = self._trace(map_func, "map")
        return Dataset({"op": "map", "input": self._desc, "fn": spec,
                        "parallel": int(num_parallel_calls or 1)},
                       [t.dtype for t in flat], [t._shape for t in flat], structure)

    def filter(self, predicate: Callable[..., Any]) -> Dataset:
        spec, flat, _, _ = self._trace(predicate, "filter")
        if len(flat) != 1 or flat[0].dtype is not dtypes.bool_:
            raise InvalidArgumentError("filter's predicate must return one bool tensor")
        return self._derive("filter", fn=spec)

    def flat_map(self, map_func: Callable[..., Dataset]) -> Dataset:
        """The elements of the dataset `map_func` returns for each element, in order."""
        return self.interleave(map_func, cycle_length=1, block_length=1)

    def interleave(self, map_func: Callable[..., Dataset], cycle_length: int = 1,
                   block_length: int = 1, num_parallel_calls: int | None = None) -> Dataset:
        """Elements of `cycle_length` inner datasets at a time, `block_length` from each."""
        spec, _, inner, _ = self._trace(map_func, "interleave", capture=True)
        if not isinstance(inner, Dataset):
            raise InvalidArgumentError("the function given to flat_map/interleave must "
                                       "return a Dataset")
        return Dataset({"op": "interleave", "input": self._desc, "fn": spec,
                        "inner": inner._desc, "cycle_length": int(cycle_length),
                        "block_length": int(block_length)},
                       inner._types, inner._shapes, inner._structure)

    def shuffle(self, buffer_size: int, seed: int | None = None,
                reshuffle_each_iteration: bool = True) -> Dataset:
        return self._derive("shuffle", buffer=int(buffer_size), seed=seed,
                            reshuffle=bool(reshuffle_each_iteration))

    def batch(self, batch_size: int, drop_remainder: bool = False) -> Dataset:
        n = int(batch_size) if drop_remainder else None
        return Dataset({"op": "batch", "input": self._desc, "size": int(batch_size),
                        "drop": bool(drop_remainder)}, self._types,
                       [None if s is None else (n, *s) for s in self._shapes], self._structure)

    def padded_batch(self, batch_size: int, padded_shapes: Any = None,
                     padding_values: Any = None, drop_remainder: bool = False) -> Dataset:
        shapes = ([shp.as_shape(s) for s in nest.flatten_up_to(self._structure, padded_shapes)]
                  if padded_shapes is not None else None)
        values = ([np.asarray(v).item() for v in nest.flatten(padding_values)]
                  if padding_values is not None else None)
        n = int(batch_size) if drop_remainder else None
        out_shapes = [None if s is None else (n, *s) for s in (shapes or self._shapes)]
        return Dataset({"op": "padded_batch", "input": self._desc, "size": int(batch_size),
                        "drop": bool(drop_remainder), "shapes": shapes, "values": values},
                       self._types, out_shapes, self._structure)

    def repeat(self, count: int | None = None) -> Dataset:
        return self._derive("repeat", count=-1 if count is None else int(count))

    def take(self, count: int) -> Dataset:
        return self._derive("take", count=int(count))

    def skip(self, count: int) -> Dataset:
        return self._derive("skip", count=int(count))

    def cache(self, filename: str = "") -> Dataset:
        if filename:
            raise InvalidArgumentError("Dataset.cache keeps elements in memory only; call it "
                                       "without a filename")
        return self._derive("cache")

    def prefetch(self, buffer_size: int) -> Dataset:
        return self._derive("prefetch", buffer=max(1, int(buffer_size)))

    # -- iterators --------------------------------------------------------------------------------
    def make_one_shot_iterator(self, shared_name: str | None = None) -> Any:
        from actorflow.data.iterator import Iterator

        return Iterator._create(self, one_shot=True, shared_name=shared_name)

    def make_initializable_iterator(self, shared_name: str | None = None) -> Any:
        from actorflow.data.iterator import Iterator

        return Iterator._create(self, one_shot=False, shared_name=shared_name)


def _normalize_out(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(x)
    return x


def _no_sparse(out: Any, what: str) -> None:
    """A clear error for a SparseTensor element (e.g. a VarLenFeature's parse), which
    datasets cannot carry yet. (TFRecord / Example, session 7 io)"""
    from actorflow.sparse_tensor import SparseTensor
    for key, v in (out.items() if isinstance(out, dict) else enumerate(nest.flatten(out))):
        if isinstance(v, SparseTensor):
            raise InvalidArgumentError(
                f"the function given to {what} returns a SparseTensor (component {key!r}); "
                f"dataset elements hold dense tensors here: convert it inside the function "
                f"with af.sparse_tensor_to_dense (or parse with FixedLenSequenceFeature)")
