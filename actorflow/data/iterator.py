"""`af.data.Iterator`: the handle of an iterator resource on a device (`devices.datasets`),
and its ops: `get_next()` (an asynchronous kernel: the next element, OutOfRangeError at the
end), `initializer` / `make_initializer(dataset)` (start or restart it; tensors among the
dataset's sources, such as placeholders, become inputs of that op and are read when it runs),
`string_handle()` (the resource's name as a string tensor) and `from_string_handle` (an
iterator chosen per step by feeding such a handle: TF1's "feedable" iterator).

    it = af.data.Iterator.from_structure(train_ds.output_types, train_ds.output_shapes)
    init_train, init_test = it.make_initializer(train_ds), it.make_initializer(test_ds)
    x, y = it.get_next()

    handle = af.placeholder(af.string, [])
    x, y = af.data.Iterator.from_string_handle(handle, types, shapes).get_next()
    sess.run(x, {handle: sess.run(train_it.string_handle())})
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes as shp
from actorflow.graph import Operation, Tensor, colocate_with
from actorflow.op_def import apply_op, apply_op_op, define_op, no_gradient
from actorflow.ops import nest
from devices import dtypes
from devices.errors import InvalidArgumentError

define_op("IteratorV2", infer=lambda i, a: [(dtypes.resource, ())], stateful=True)
define_op("MakeIterator", infer=lambda i, a: [], stateful=True)
define_op("IteratorGetNext", infer=lambda i, a: list(zip(a["output_types"],
                                                         a["output_shapes"], strict=True)),
          stateful=True)
define_op("IteratorToStringHandle", infer=lambda i, a: [(dtypes.string, ())])
define_op("IteratorFromStringHandleV2", infer=lambda i, a: [(dtypes.resource, ())],
          stateful=True)
for _op in ("IteratorV2", "MakeIterator", "IteratorGetNext", "IteratorToStringHandle",
            "IteratorFromStringHandleV2"):
    no_gradient(_op)


class Iterator:
    def __init__(self, handle: Tensor, types: list, shapes: list, structure: Any,
                 initializer: Operation | None):
        self._handle = handle
        self._types = types
        self._shapes = shapes
        self._structure = structure
        self._initializer = initializer

    @staticmethod
    def _create(ds: Any, one_shot: bool, shared_name: str | None) -> Iterator:
        attrs: dict[str, Any] = {"shared_name": shared_name or ""}
        if one_shot:
            if _feeds(ds._desc, []) is not ds._desc:
                raise InvalidArgumentError(
                    "a one-shot iterator cannot take a dataset built from a computed tensor "
                    "(a placeholder): use make_initializable_iterator() and run its "
                    "initializer with the feed")
            attrs["dataset"] = ds._desc
        h = apply_op("IteratorV2", [], attrs,
                     name="OneShotIterator" if one_shot else "Iterator")[0]
        it = Iterator(h, ds._types, ds._shapes, ds._structure, None)
        if not one_shot:
            it._initializer = it.make_initializer(ds)
        return it

    @staticmethod
    def from_structure(output_types: Any, output_shapes: Any = None,
                       shared_name: str | None = None) -> Iterator:
        """An iterator not bound to a dataset yet: `make_initializer(ds)` for each dataset of
        that structure."""
        types = [dtypes.as_dtype(t) for t in nest.flatten(output_types)]
        shapes = ([shp.as_shape(s) for s in nest.flatten_up_to(output_types, output_shapes)]
                  if output_shapes is not None else [None] * len(types))
        structure = nest.pack_sequence_as(output_types, [None] * len(types))
        h = apply_op("IteratorV2", [], {"shared_name": shared_name or ""}, name="Iterator")[0]
        return Iterator(h, types, shapes, structure, None)

    @property
    def initializer(self) -> Operation:
        if self._initializer is None:
            raise InvalidArgumentError(
                "this iterator has no initializer: a one-shot iterator initializes itself; "
                "one from Iterator.from_structure uses make_initializer(dataset)")
        return self._initializer

    @property
    def output_types(self) -> Any:
        return nest.pack_sequence_as(self._structure, self._types)

    @property
    def output_shapes(self) -> Any:
        return nest.pack_sequence_as(self._structure, self._shapes)

    def make_initializer(self, dataset: Any, name: str | None = None) -> Operation:
        if dataset._types != self._types:
            raise InvalidArgumentError(
                f"the dataset's element types {[t.name for t in dataset._types]} differ from "
                f"the iterator's {[t.name for t in self._types]}")
        fed: list[Tensor] = []
        desc = _feeds(dataset._desc, fed)
        with colocate_with(self._handle.op):
            return apply_op_op("MakeIterator", [self._handle, *fed], {"dataset": desc},
                               name=name or "make_initializer")

    def string_handle(self, name: str | None = None) -> Tensor:
        """A scalar string naming this iterator, to feed to `from_string_handle`'s."""
        with colocate_with(self._handle.op):
            return apply_op("IteratorToStringHandle", [self._handle],
                            name=name or "IteratorToStringHandle")[0]

    @staticmethod
    def from_string_handle(string_handle: Any, output_types: Any, output_shapes: Any = None,
                           output_classes: Any = None) -> Iterator:
        """The iterator whose `string_handle()` value `string_handle` holds when the step
        runs (all such iterators must have this element structure)."""
        from actorflow.op_def import convert_to_tensor
        h = convert_to_tensor(string_handle, dtype=dtypes.string)
        types = [dtypes.as_dtype(t) for t in nest.flatten(output_types)]
        shapes = ([shp.as_shape(s) for s in nest.flatten_up_to(output_types, output_shapes)]
                  if output_shapes is not None else [None] * len(types))
        structure = nest.pack_sequence_as(output_types, [None] * len(types))
        r = apply_op("IteratorFromStringHandleV2", [h],
                     {"output_types": types, "output_shapes": shapes},
                     name="IteratorFromStringHandle")[0]
        return Iterator(r, types, shapes, structure, None)

    def get_next(self, name: str | None = None) -> Any:
        """The next element (the dataset's structure); OutOfRangeError after the last."""
        with colocate_with(self._handle.op):
            outs = apply_op("IteratorGetNext", [self._handle],
                            {"output_types": self._types, "output_shapes": self._shapes},
                            name=name or "IteratorGetNext")
        return nest.pack_sequence_as(self._structure, list(outs))


def make_one_shot_iterator(dataset: Any) -> Iterator:
    return dataset.make_one_shot_iterator()


def make_initializable_iterator(dataset: Any, shared_name: str | None = None) -> Iterator:
    return dataset.make_initializable_iterator(shared_name)


def _feeds(desc: Any, fed: list[Tensor]) -> Any:
    """`desc` with each Tensor leaf replaced by ``{"feed": i}`` (i: its index in `fed`, which
    collects them); `desc` itself when it holds none."""
    if isinstance(desc, Tensor):
        fed.append(desc)
        return {"feed": len(fed) - 1}
    if isinstance(desc, dict):
        out = {k: _feeds(v, fed) for k, v in desc.items()}
        return desc if all(out[k] is desc[k] for k in desc) else out
    if isinstance(desc, list):
        items = [_feeds(v, fed) for v in desc]
        return desc if all(a is b for a, b in zip(items, desc, strict=True)) else items
    return desc
