"""The vectorized form of an in-memory `af.data` chain: row indices, a block at a time.

A chain of tensor_slices (or range) -> shuffle / repeat / take / skip (no graph function, no
file, no generator: `index_source`) only *reorders the rows* of its source. Instead of one
Python tuple per element through a generator per stage (~1.1 us an element), it runs here on
NumPy arrays of row indices (`index_blocks`), and a batch gathers its rows with one `take`
per component (`index_batches`, `RowSource`; a range's values are computed from the
indices); an unbatched element is one row of each array.
Measured on the small MLP's pipeline (1,437 rows, shuffle(256), batch(32)): a get_next's
element 50 -> 11 us (RESULTS.md, session 10).

The element SEQUENCE is exactly the element path's (`devices.datasets`, TF's shuffle-buffer
semantics), for the same seed:
  shuffle   a window of `buffer` places. The element path fills ``buffer - 1`` of them, then
            for each further input draws ``j = int(u * buffer)`` (u from a seeded
            ``default_rng``, 1,024 draws at a time, each batch of draws read from its end:
            `Draws`) and yields the input itself when j is the last place, else the window's
            member j, whose place the input takes; once the input is exhausted it draws the
            rest out of the shrinking window (``i = int(u * len)``, swap with the last, pop).
            Both phases are one compiled pass each (`devices.dataset_loops`, numba, loaded
            on a background thread by `compiled_loops`: ~3 us for a block of 1,200 inputs).
            Until it is loaded, the full-window phase is vectorized per block
            (`_window_block`): output t is the input written to place j_t most recently
            before t (a stable sort of the block by place finds it), or the window's member
            j_t when none was; the window keeps, per place, the block's last input written to
            it (~150 us a block of 1,200); the drain (at most ``buffer - 1`` draws an epoch)
            is a loop over a list of ints.
  repeat    pass e of the input is built with epoch e (a reshuffling shuffle seeds with
            ``seed + 7919 * epoch``); an empty pass ends it. take / skip: a prefix / the rest.
Tests compare both paths over epochs, with the compiled loops and with their NumPy form
(tests/test_data_index.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

INDEXABLE = ("shuffle", "repeat", "take", "skip")
_DRAWS = 1024      # draws the element path takes from its generator at a time
_BLOCK = 4096      # rows of a source handed on at once


_LOOPS: list[Any] = []
_LOOPS_LOCK = threading.Lock()


def compiled_loops() -> tuple[Any, Any]:
    """The `LoopLoader`s of the compiled window pass and drain (`devices.dataset_loops`),
    loading in the background from the first call on."""
    if not _LOOPS:
        # (imported here: devices.kernels imports the dataset kernels, which import this)
        from devices.kernels.loop_loader import LoopLoader
        with _LOOPS_LOCK:  # (two producer threads may start shuffles at once)
            if not _LOOPS:
                _LOOPS[:] = [LoopLoader("devices.dataset_loops", "window_pass"),
                             LoopLoader("devices.dataset_loops", "drain")]
                for loader in _LOOPS:
                    loader.start()
    return _LOOPS[0], _LOOPS[1]


class RowSource:
    """The rows of an index chain's source: the arrays of a tensor_slices, or the values of a
    range (``start + i * step``, computed, never stored)."""

    def __init__(self, desc: dict):
        if desc["op"] == "range":
            self.arrays: list[np.ndarray] = []
            self.start, self.step = desc["start"], desc["step"]
            self.n = len(range(desc["start"], desc["stop"], desc["step"]))
        else:
            self.arrays = [np.asarray(a) for a in desc["arrays"]]
            self.n = len(self.arrays[0])
        self.rows = self._gatherer()

    def row(self, i: int) -> tuple:
        """Element i (as the element path makes it)."""
        if not self.arrays:
            return (np.int64(self.start + i * self.step),)
        return tuple(a[i] for a in self.arrays)

    def _gatherer(self) -> Any:
        """A function of an index array giving the tuple of those rows of every component:
        one `take` per array of more than one dimension (2-3x faster than a fancy index on a
        small batch), a fancy index for a vector, ``start + idx * step`` for a range."""
        if not self.arrays:
            start, step = np.int64(self.start), np.int64(self.step)
            return lambda idx: (start + idx * step,)
        arrays = self.arrays
        if len(arrays) == 2:
            a, b = arrays
            if a.ndim > 1 and b.ndim == 1:  # (features, labels): the usual pair
                return lambda idx: (a.take(idx, axis=0), b[idx])
        return lambda idx: tuple(a.take(idx, axis=0) if a.ndim > 1 else a[idx] for a in arrays)


def index_source(desc: dict) -> RowSource | None:
    """The source of a chain of tensor_slices or range -> shuffle/repeat/take/skip (which can
    run on row indices), else None."""
    while desc["op"] in INDEXABLE:
        desc = desc["input"]
    if desc["op"] == "range" or (desc["op"] == "tensor_slices" and not any(
            isinstance(a, dict) for a in desc["arrays"])):
        return RowSource(desc)
    return None


class Draws:
    """A seeded generator's uniform draws in the order the element path takes them: blocks of
    1,024 (``rng.random(1024)``), each read from its end."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._left = np.empty(0)

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            if not len(self._left):
                self._left = self._rng.random(_DRAWS)[::-1]
            k = min(n, len(self._left))
            parts.append(self._left[:k])
            self._left = self._left[k:]
            n -= k
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0)


def index_blocks(desc: dict, epoch: int = 0) -> Iterator[np.ndarray]:
    """The row indices of `desc`'s elements (a chain `index_source` accepts), as a sequence
    of non-empty int64 arrays; `epoch` as in `devices.datasets.build`."""
    op = desc["op"]
    if op in ("tensor_slices", "range"):
        n = RowSource(desc).n
        for s in range(0, n, _BLOCK):
            yield np.arange(s, min(n, s + _BLOCK), dtype=np.int64)
        return
    src = desc["input"]
    if op == "shuffle":
        seed = desc.get("seed")
        if seed is not None and desc.get("reshuffle", True):
            seed = seed + 7919 * epoch
        yield from _shuffle(index_blocks(src, epoch), max(1, desc["buffer"]),
                            # (default_rng(seed)'s generator, made 20 us faster)
                            Draws(np.random.Generator(np.random.PCG64(seed))))
    elif op == "repeat":
        count, e = desc["count"], 0
        while count < 0 or e < count:
            empty = True
            for b in index_blocks(src, e):
                empty = False
                yield b
            e += 1
            if empty:
                return
    elif op == "take":
        left = desc["count"]
        if left < 0:
            yield from index_blocks(src, epoch)
            return
        if left == 0:
            return
        for b in index_blocks(src, epoch):
            if len(b) >= left:
                yield b[:left]
                return
            left -= len(b)
            yield b
    elif op == "skip":
        left = max(0, desc["count"])
        for b in index_blocks(src, epoch):
            if left >= len(b):
                left -= len(b)
                continue
            yield b[left:]
            left = 0
    else:
        raise ValueError(f"not an index chain: {op!r}")


def _shuffle(blocks: Iterator[np.ndarray], size: int, draws: Draws) -> Iterator[np.ndarray]:
    window_loop, drain_loop = compiled_loops()
    last = size - 1
    window = np.empty(last, dtype=np.int64)
    have = 0
    rest: np.ndarray | None = None
    for b in blocks:  # fill `buffer - 1` places
        k = min(len(b), last - have)
        window[have:have + k] = b[:k]
        have += k
        if have == last:
            rest = b[k:]
            break
    if have == last:  # full: one draw per further input
        if rest is not None and len(rest):
            yield _window_block(window, rest, draws, size, window_loop.fn)
        for b in blocks:
            yield _window_block(window, b, draws, size, window_loop.fn)
    if have and drain_loop.fn is not None:  # the input is exhausted: draw the rest out
        out = np.empty(have, dtype=np.int64)
        drain_loop.fn(window[:have].copy(), draws.take(have), out)
        yield out
    elif have:
        left = window[:have].tolist()
        out: list[int] = []
        put, pop = out.append, left.pop
        # the place drawn from a window of n (n = have, have - 1, ... 1): int(u * n)
        places = draws.take(have) * np.arange(have, 0, -1)
        for i in places.astype(np.int64).tolist():
            put(left[i])  # out = left[i]; the last member takes its place
            left[i] = left[-1]
            pop()
        yield np.array(out, dtype=np.int64)


def _window_block(window: np.ndarray, e: np.ndarray, draws: Draws, size: int,
                  loop: Any = None) -> np.ndarray:
    """The outputs of the full window for the inputs `e`, updating `window` in place: one
    compiled pass (`loop`), or (until it is loaded) a vectorized NumPy form of it."""
    if loop is not None:
        out = np.empty(len(e), dtype=np.int64)
        loop(window, e, draws.take(len(e)), size, out)
        return out
    last = size - 1
    # (places fit in 16 bits below 32,768: a stable sort of those is a radix sort, 3x faster)
    j = (draws.take(len(e)) * size).astype(np.int16 if size < 32768 else np.int64)
    order = np.argsort(j, kind="stable")
    js, es = j[order], e[order]
    same = js[1:] == js[:-1]
    got = np.empty_like(es)  # in sorted order: what place js[p] held when es[p] came
    got[1:] = es[:-1]
    first = np.ones(len(js), dtype=bool)
    first[1:] = ~same
    at_last = js == last
    new = first & ~at_last
    got[new] = window[js[new]]
    got[at_last] = es[at_last]  # the last place: the input itself
    final = np.ones(len(js), dtype=bool)  # each place keeps the block's last input to it
    final[:-1] = ~same
    final &= ~at_last
    window[js[final]] = es[final]  # (js: int16 or int64, both index)
    out = np.empty_like(e)
    out[order] = got
    return out


def index_batches(blocks: Iterator[np.ndarray], size: int, drop: bool
                  ) -> Iterator[np.ndarray]:
    """`blocks` of row indices cut into batches of `size` (the last one short unless
    `drop`)."""
    carry: Any = None
    for b in blocks:
        if carry is not None:
            b = np.concatenate((carry, b))
            carry = None
        n = len(b) - len(b) % size
        for s in range(0, n, size):
            yield b[s:s + size]
        if n < len(b):
            carry = b[n:]
    if carry is not None and not drop:
        yield carry

