"""The runtime of `af.data` pipelines: a dataset description (plain data, an attribute of the
iterator ops) becomes a chain of Python generators over NumPy elements, run on the device that
holds the iterator, with graph functions (map, filter, flat_map) evaluated by a small
interpreter over the registered kernels. A stretch of the chain that only reorders the rows
of arrays in memory (tensor_slices or range -> shuffle / repeat / take / skip, and a batch
of it) runs on blocks of row indices instead (`devices.dataset_index`: the same elements in
the same order, a batch gathered at once); ``build(..., vector=False)`` keeps the element
path everywhere (the reference its tests compare with).

A description is a dict ``{"op": kind, ...}``; an element is a tuple of arrays (the flattened
components). The chain, source first:
  tensor_slices {arrays}        rows of each array     tensors {arrays}   one element
  range {start, stop, step}     int64 scalars          generator {key}    a local callable
  tfrecord {arrays: [file names], compression, parallel}   records (`devices.file_sources`;
  textline and fixed_length likewise: lines, fixed-length records)
  zip {inputs}                  map {input, fn, parallel}   filter {input, fn}
  flat_map / interleave {input, fn, inner, cycle_length, block_length}
  shuffle {input, buffer, seed, reshuffle}   batch {input, size, drop}
  padded_batch {input, size, drop, shapes, values}   repeat {input, count}
  take / skip {input, count}     cache {input}          prefetch {input, buffer}
A graph function ``fn`` is ``{"nodes": [[name, op, inputs, attrs, dtypes, shapes]...],
"args": [placeholder names], "outputs": ["node:port", ...]}``; `run_function` evaluates the
nodes the outputs need, in order, with each node's kernel (synchronous kernels only).

`Iterator` (the resource) owns one running chain. With a prefetch stage anywhere in the
chain (the usual last step), a producer thread fills a bounded buffer while the training step
runs (NumPy releases the GIL), so input work hides behind compute; `get_next` takes from the
buffer, and waits (asynchronously: a `devices.waits.Waiter`) only when it is empty. A chain
that only rearranges arrays in memory has no producer thread: `get_next` makes its element
inline (cheaper than the GIL handoffs a thread costs; see `_Prefetch`), and as its kernel is
poll-first (`devices.kernels.dataset`) the training step stays on the straight run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator as PyIterator
from typing import Any

import numpy as np

from devices import dtypes as dt
from devices.dataset_index import (
    INDEXABLE,
    RowSource,
    index_batches,
    index_blocks,
    index_source,
)
from devices.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    OpError,
    OutOfRangeError,
    UnimplementedError,
)
from devices.waits import Wait, Waiter

# Callables of `Dataset.from_generator`, by key: they run only in the process that built them.
GENERATORS: dict[str, Callable[[], Any]] = {}
_END = object()


# ---- graph functions ------------------------------------------------------------------------
class Function:
    """A traced graph function compiled for one device: kernels built once, run per call."""

    def __init__(self, spec: dict, device: Any):
        from devices.kernels.registry import KernelContext, lookup

        nodes = {n[0]: n for n in spec["nodes"]}
        self.args = list(spec["args"])
        self.outputs = [_parse(o) for o in spec["outputs"]]
        need: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:  # post-order: inputs before the node
            if name in seen:
                return
            seen.add(name)
            for i in nodes[name][2]:
                visit(i[1:] if i.startswith("^") else _parse(i)[0])
            need.append(name)

        for name, _ in self.outputs:
            visit(name)
        self.steps: list[tuple[str, Any, list[tuple[str, int]]]] = []
        for name in need:
            _, op, inputs, attrs, dts, shapes = nodes[name]
            if name in self.args:
                continue
            data = [_parse(i) for i in inputs if not i.startswith("^")]
            kdef = lookup(op, device.device_type)
            if kdef.is_async:
                raise UnimplementedError(
                    f"a dataset function cannot use op '{op}' (node '{name}'): it waits "
                    f"asynchronously; use it in the main graph instead")
            ctx = KernelContext(
                name, op, attrs, [dt.as_dtype(d) for d in dts], list(shapes),
                [dt.as_dtype(nodes[s][4][p]) for s, p in data],
                [nodes[s][5][p] for s, p in data], device)
            fn = kdef.factory(ctx)
            if getattr(fn, "needs_step", False):
                raise UnimplementedError(f"a dataset function cannot use op '{op}'")
            self.steps.append((name, fn, data))

    def __call__(self, *args: Any) -> tuple:
        values: dict[str, tuple] = {n: (a,) for n, a in zip(self.args, args, strict=True)}
        for name, fn, data in self.steps:
            values[name] = fn(*[values[s][p] for s, p in data])
        return tuple(np.asarray(values[s][p]) for s, p in self.outputs)


def _parse(spec: str) -> tuple[str, int]:
    name, sep, port = spec.rpartition(":")
    return (name, int(port)) if sep and port.isdigit() else (spec, 0)


# ---- the chain of generators ------------------------------------------------------------------
def build(desc: dict, device: Any, epoch: int = 0, vector: bool = True) -> PyIterator[Any]:
    """A fresh generator of the elements of `desc` (on `device`, for graph functions);
    `epoch` varies reshuffling across the passes of a repeat. A chain that only reorders the
    rows of arrays in memory runs on row indices (`devices.dataset_index`) unless `vector`
    is False (the element path everywhere: the reference its tests compare with)."""
    op = desc["op"]
    if vector and op in INDEXABLE and (rows := index_source(desc)) is not None:
        return _index_elements(desc, rows, epoch)
    if op == "tensor_slices":
        arrays = [np.asarray(a) for a in desc["arrays"]]
        return (tuple(a[i] for a in arrays) for i in range(len(arrays[0])))
    if op == "tensors":
        return iter([tuple(np.asarray(a) for a in desc["arrays"])])
    if op == "range":
        return ((np.int64(i),) for i in range(desc["start"], desc["stop"], desc["step"]))
    if op == "generator":
        return _generator(desc)
    if op in ("tfrecord", "textline", "fixed_length"):  # files (session 7 io): TFRecord...
        from devices.file_sources import records
        return records(desc, device, epoch)
    if op == "zip":
        parts = [build(d, device, epoch, vector) for d in desc["inputs"]]
        return (sum(els, ()) for els in zip(*parts, strict=False))
    src = desc.get("input")
    if op == "map":
        fn = Function(desc["fn"], device)
        if desc.get("parallel", 1) > 1:
            return _parallel_map(fn, build(src, device, epoch, vector), desc["parallel"])
        return (fn(*e) for e in build(src, device, epoch, vector))
    if op == "filter":
        fn = Function(desc["fn"], device)
        return (e for e in build(src, device, epoch, vector) if bool(fn(*e)[0]))
    if op in ("flat_map", "interleave"):
        return _interleave(desc, device, epoch)
    if op == "shuffle":
        return _shuffle(desc, device, epoch, vector)
    if op in ("batch", "padded_batch"):
        return _batch(desc, device, epoch, vector)
    if op == "repeat":
        return _repeat(desc, device, vector)
    if op == "take":
        n = desc["count"]
        it = build(src, device, epoch, vector)
        return it if n < 0 else (e for _, e in zip(range(n), it, strict=False))
    if op == "skip":
        it = build(src, device, epoch, vector)
        for _ in range(desc["count"]):
            if next(it, _END) is _END:
                break
        return it
    if op == "cache":
        return _cache(desc, device, epoch, vector)
    if op == "prefetch":
        return _Prefetch(build(src, device, epoch, vector), desc["buffer"],
                         thread=not _in_memory(src))
    raise InvalidArgumentError(f"unknown dataset transformation {op!r}")


# transformations of in-memory elements that run no graph function and never block
_IN_MEMORY = ("tensor_slices", "tensors", "range", "zip", "shuffle", "batch", "padded_batch",
              "repeat", "take", "skip", "cache", "prefetch")


def _in_memory(desc: dict) -> bool:
    """Whether the chain `desc` only rearranges arrays already in memory (no files, no
    generator, no map/filter/interleave): making an element is short, Python-bound work."""
    if desc["op"] not in _IN_MEMORY:
        return False
    inputs = desc.get("inputs") or ([desc["input"]] if "input" in desc else [])
    return all(_in_memory(d) for d in inputs)


def _parallel_map(fn: Function, src: PyIterator[tuple], n: int) -> PyIterator[tuple]:
    """`fn` over `src` on `n` worker threads, in order, at most `n` elements ahead."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="af.data map") as pool:
        pending: deque[Any] = deque()
        for e in src:
            pending.append(pool.submit(fn, *e))
            if len(pending) >= n:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _generator(desc: dict) -> PyIterator[tuple]:
    fn = GENERATORS.get(desc["key"])
    if fn is None:
        raise FailedPreconditionError(
            "a Dataset.from_generator pipeline runs only in the process that built it; "
            "place its iterator on a device of that process")
    types = [np.dtype(t) for t in desc["types"]]
    for item in fn():
        parts = item if isinstance(item, tuple) else (item,)
        yield tuple(np.asarray(p, dtype=t) for p, t in zip(parts, types, strict=True))


def _interleave(desc: dict, device: Any, epoch: int) -> PyIterator[tuple]:
    fn = Function(desc["fn"], device)
    inner = desc["inner"]
    cycle = max(1, desc.get("cycle_length", 1))
    block = max(1, desc.get("block_length", 1))
    outer = build(desc["input"], device, epoch)

    def open_inner(e: tuple) -> PyIterator[tuple]:
        return build(_bind(inner, list(fn(*e))), device, epoch)

    active: list[PyIterator[tuple]] = []
    exhausted = False
    while True:
        while not exhausted and len(active) < cycle:
            e = next(outer, _END)
            if e is _END:
                exhausted = True
            else:
                active.append(open_inner(e))  # type: ignore[arg-type]
        if not active:
            return
        for it in list(active):
            for _ in range(block):
                x = next(it, _END)
                if x is _END:
                    active.remove(it)
                    break
                yield x  # type: ignore[misc]


def _bind(desc: Any, values: list) -> Any:
    """The inner dataset of flat_map/interleave with its sources' ``{"arg": i}`` arrays
    replaced by output i of the function."""
    if isinstance(desc, dict):
        if set(desc) == {"arg"}:
            return values[desc["arg"]]
        return {k: _bind(v, values) for k, v in desc.items()}
    if isinstance(desc, list):
        return [_bind(v, values) for v in desc]
    return desc


def _index_elements(desc: dict, rows: RowSource, epoch: int) -> PyIterator[tuple]:
    """The elements of an index chain: one row of its source per index."""
    row = rows.row
    for b in index_blocks(desc, epoch):
        for i in b.tolist():
            yield row(i)


def _shuffle(desc: dict, device: Any, epoch: int, vector: bool) -> PyIterator[Any]:
    """A `buffer`-sized random window: each output is a uniformly drawn member of it (the
    draws come from a seeded generator, 1,024 at a time). Once the window is full, drawing
    member j and refilling its place with the next input is ``out = buf[j]; buf[j] = new``
    (the new input itself when j is the last place): the same sequence as appending the new
    input and swapping the drawn member to the end, without the list's churn."""
    seed = desc.get("seed")
    if seed is not None and desc.get("reshuffle", True):
        seed = seed + 7919 * epoch
    rng = np.random.default_rng(seed)
    size = max(1, desc["buffer"])
    src = build(desc["input"], device, epoch, vector)
    buf = list(itertools.islice(src, size - 1))
    draws: list[float] = []
    last = size - 1
    if len(buf) == last:
        for e in src:  # the window is full: one draw per input
            if not draws:
                draws = rng.random(1024).tolist()  # taken from the end, as ever
            j = int(draws.pop() * size)
            if j == last:
                yield e
            else:
                out = buf[j]
                buf[j] = e
                yield out
    while buf:  # the input is exhausted: draw the rest out of the shrinking window
        if not draws:
            draws = rng.random(1024).tolist()
        i = int(draws.pop() * len(buf))
        buf[i], buf[-1] = buf[-1], buf[i]
        yield buf.pop()


def _batch(desc: dict, device: Any, epoch: int, vector: bool) -> PyIterator[tuple]:
    size, drop = desc["size"], desc["drop"]
    padded = desc["op"] == "padded_batch"
    rows = index_source(desc["input"]) if vector and not padded else None
    if rows is not None:  # gather each batch's rows at once
        gather = rows.rows
        for idx in index_batches(index_blocks(desc["input"], epoch), size, drop):
            yield gather(idx)
        return
    chunk: list[tuple] = []
    for e in build(desc["input"], device, epoch, vector):
        chunk.append(e)
        if len(chunk) == size:
            yield _stack(chunk, padded, desc)
            chunk = []
    if chunk and not drop:
        yield _stack(chunk, padded, desc)


def _stack(chunk: list[tuple], padded: bool, desc: dict) -> tuple:
    out = []
    for c in range(len(chunk[0])):
        parts = [np.asarray(e[c]) for e in chunk]
        if not padded:
            shapes = {p.shape for p in parts}
            if len(shapes) > 1:
                raise InvalidArgumentError(
                    f"cannot batch component {c}: its elements have shapes {sorted(shapes)}; "
                    f"use padded_batch for elements of different shapes")
            out.append(np.stack(parts))
            continue
        want = desc["shapes"][c] if desc.get("shapes") else None
        shape = [max(p.shape[d] for p in parts) for d in range(parts[0].ndim)]
        if want is not None:
            shape = [s if w is None else w for s, w in zip(shape, want, strict=True)]
        value = desc["values"][c] if desc.get("values") else 0
        arr = np.full((len(parts), *shape), value, dtype=parts[0].dtype)
        for i, p in enumerate(parts):
            arr[(i, *(slice(0, s) for s in p.shape))] = p
        out.append(arr)
    return tuple(out)


def _repeat(desc: dict, device: Any, vector: bool) -> PyIterator[Any]:
    count = desc["count"]
    epoch = 0
    while count < 0 or epoch < count:
        empty = True
        for e in build(desc["input"], device, epoch, vector):
            empty = False
            yield e
        epoch += 1
        if empty:
            return


def _cache(desc: dict, device: Any, epoch: int, vector: bool) -> PyIterator[tuple]:
    memo = desc.setdefault("_memo", [])
    if desc.get("_complete"):
        yield from memo
        return
    memo.clear()
    for e in build(desc["input"], device, epoch, vector):
        memo.append(e)
        yield e
    desc["_complete"] = True


class _Prefetch:
    """Runs its input on a producer thread, `buffer` elements ahead of the consumer. Without
    `thread` (a chain of in-memory rearrangements, `_in_memory`) there is no producer: the
    consumer makes each element when it asks for it.

    Why not always a thread: under the GIL a producer thread runs its Python only when the
    consumer lets go of the interpreter (a NumPy call on a large array, a wait). For a cheap
    pipeline feeding a step that runs Python throughout, handing the interpreter to the
    producer and back costs more (a thread hop, 50-150 us here) than making the element
    inline. Measured on the small MLP's pipeline (tensor_slices, shuffle, batch of 32; 50 us
    an element): a get_next costs 74-90 us made inline, 150-170 us through a producer thread
    (RESULTS.md, session 9). A chain that reads files, calls a generator or runs a graph
    function keeps the thread: its element may take long or block, which must never happen
    on the device's loop."""

    def __init__(self, source: PyIterator[tuple], buffer: int, thread: bool = True):
        self._src = source
        self._cap = max(1, buffer)
        self._buf: deque[Any] = deque()
        self._cv = threading.Condition()
        self._stop = False
        self.threaded = thread
        self.on_ready: Callable[[], None] | None = None  # the iterator's wake-up
        if thread:
            threading.Thread(target=self._run, daemon=True, name="af.data prefetch").start()

    def _next(self) -> Any:
        """The source's next element, _END, or its exception (only one caller: the producer
        thread, or without it the consumer)."""
        try:
            return next(self._src, _END)
        except Exception as e:  # noqa: BLE001 - delivered to the consumer in order
            return e

    def _run(self) -> None:
        while True:
            with self._cv:
                while len(self._buf) >= self._cap and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
            item = self._next()
            with self._cv:
                self._buf.append(item)
                self._cv.notify_all()  # a consumer blocked in __next__ (a nested prefetch)
                cb = self.on_ready
            if cb is not None:
                cb()
            if item is _END or isinstance(item, Exception):
                return

    def poll(self) -> Any:
        """The next element, _END, an exception to raise, or None when nothing is ready (only
        with a producer thread: its buffer is empty)."""
        buf = self._buf
        if not self.threaded:  # one consumer, no producer: nothing to lock against
            if buf:  # the end (kept), or an exception (once)
                item = buf[0]
                if item is not _END:
                    buf.popleft()
                return item
            item = self._next()
            if item is _END or isinstance(item, Exception):
                buf.append(item)  # kept at the head: every later poll sees it too
            return item
        with self._cv:
            if buf:
                item = buf[0]
                if item is not _END:
                    buf.popleft()
                    self._cv.notify()
                return item
            return None

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self) -> tuple:  # a prefetch inside the chain: block on the producer
        with self._cv:
            while self.threaded and not self._buf:
                self._cv.wait()
        item = self.poll()
        if item is _END:
            raise StopIteration
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()


class Iterator:
    """The iterator resource: one running chain (None until initialized)."""

    def __init__(self, name: str, device: Any):
        self.name = name
        self.device = device
        self._it: Any = None
        self._lock = threading.Lock()
        self._waiters: list[Waiter] = []

    def initialize(self, desc: dict) -> None:
        with self._lock:
            if isinstance(self._it, _Prefetch):
                self._it.close()
            it = build(_fresh(desc), self.device)
            if isinstance(it, _Prefetch):
                it.on_ready = self._wake
            self._it = it

    def try_next(self) -> tuple | None:
        with self._lock:
            it = self._it
            if it is None:
                raise FailedPreconditionError(
                    f"iterator '{self.name}' is not initialized: run its initializer first "
                    f"(sess.run(iterator.initializer))", device=self.device.name)
            if type(it) is _Prefetch:
                item = it.poll()
                if item is None:
                    return None
                threaded = it.threaded
            else:
                item = next(it, _END)
                threaded = False
        if threaded:
            # Let the producer refill the slot now: a consumer running Python steps inline
            # would otherwise hold the GIL until the interpreter's switch interval, and the
            # next get_next would find the buffer empty and take the slower waiting path.
            time.sleep(0)
        if type(item) is tuple:  # an element (the usual case)
            return item
        if item is _END:
            raise OutOfRangeError(f"end of sequence (iterator '{self.name}')",
                                  device=self.device.name)
        if isinstance(item, OpError):
            raise item
        if isinstance(item, Exception):
            raise InvalidArgumentError(f"the input pipeline of iterator '{self.name}' "
                                       f"failed: {item!r}", device=self.device.name)
        return item

    def register(self, w: Waiter) -> None:
        with self._lock:
            self._waiters.append(w)
        self._wake()

    def cancel(self, w: Waiter, error: OpError) -> None:
        with self._lock:
            if w in self._waiters:
                self._waiters.remove(w)
        w.fail(error)

    def _wake(self) -> None:
        while True:
            with self._lock:
                if not self._waiters:
                    return
                w = self._waiters[0]
            try:
                item = self.try_next()
            except OpError as e:
                with self._lock:
                    if self._waiters and self._waiters[0] is w:
                        self._waiters.pop(0)
                w.fail(e)
                continue
            if item is None:
                return
            with self._lock:
                if self._waiters and self._waiters[0] is w:
                    self._waiters.pop(0)
                    w.finish(item)
                    continue
            # the waiter went away meanwhile: the element goes to the next one (rare)
            with self._lock:
                if self._waiters:
                    self._waiters.pop(0).finish(item)

    def waits(self) -> list[Wait]:
        with self._lock:
            return [w.record for w in self._waiters]


def _fresh(desc: Any) -> Any:
    """A copy of the description without caches (a re-initialized iterator starts over)."""
    if isinstance(desc, dict):
        return {k: _fresh(v) for k, v in desc.items() if not k.startswith("_")}
    if isinstance(desc, list):
        return [_fresh(v) for v in desc]
    return desc
