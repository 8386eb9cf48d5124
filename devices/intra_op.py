"""Intra-op parallelism: one pool of threads per process over which large kernels split
their work (TensorFlow's ``ConfigProto.intra_op_parallelism_threads``; WP §3.2).

Design
------
A kernel whose work is large (an element-wise pass over a few hundred thousand elements, a
fused element-wise chain, a row-wise reduction) cuts it into *chunks* along its outer axis and
calls `IntraOpPool.parallel_for(n, body)`: ``body(lo, hi)`` computes rows ``lo:hi`` into a
preallocated output, so the chunks share nothing and need no locks. NumPy releases the GIL
inside its loops on arrays of more than a few hundred elements, so the chunks really run on
several cores at once.

The caller is one of the pool's threads: it posts the job to the idle workers and then takes
chunks itself, in order, until none are left; it then waits only for the chunks a worker has
already taken. Nothing ever waits for a worker to *start*, so a nested call (a kernel running
on a worker that splits again) or a worker descheduled by a loaded machine never deadlocks and
costs at most one chunk of delay. Chunks are a few times smaller than an even split, so a slow
thread is evened out by the others (dynamic scheduling); a long job (many times the minimum
chunk's work) is cut into up to 8 chunks per thread (`chunk_count`), so that delay stays a
few milliseconds however long the job.

A split must pay, and on a loaded machine it may not: a worker preempted by another process
(a CPU hog, the other tasks of a cluster on the same cores) holds its chunk for a whole time
slice while the caller waits. So every split job is judged when it ends: the caller timed the
chunks it ran itself, and their mean time the number of chunks is what running the job inline
would have cost. A job that took longer than `LOSS_RATIO` times that estimate was a loss; after
a loss the pool runs the next `backoff` jobs inline (declined, counted in ``jobs_declined``)
and then tries a split again; each loss in a row doubles `backoff` (from `BACKOFF_JOBS` up to
`MAX_BACKOFF_JOBS`), a split that pays resets it. On a quiet machine splits pay and nothing
changes; under a hog the pool stops paying thread hops that only add waiting.

A kernel does better than estimate: it names its *kind* of work (`parallel_for(..., kind=)`,
one object per compiled kernel) and the pool *measures* both ways for that kind at that size
(a power of two of items): the first such job splits, the next runs inline, and from then on
each runs the way whose recent time per item (a moving average) is lower, trying the other
way once every `EXPLORE_EVERY` jobs (`EXPLORE_RARELY` when it lost by more than `CLEAR_LOSS`)
so that a change of load is followed. Why: whether a split pays depends on the machine more
than any threshold says. On the AVX-512 Xeon of session 12 a one-pass add over 1M elements
ran no faster on two threads (memory bandwidth), NumPy's vectorised tanh lost up to 262k
elements, and a fused sqrt(abs(x)) over 1M elements was 1.38x slower split (the GIL taken
back per block); on the EPYC of sessions 5-11 the same splits paid. Those timings include
the contention the caller's own chunks cannot see, which is why an estimate from them (the
back-off above) stays the rule only for unkeyed calls (no kernel makes one now: the tests
and `benchmarks/bench_split_load.py` do). A kind's figures live in the pool
(`MAX_KINDS` of them at most: past that the table is cleared and measured again).

Small kernels never come here: `worth_splitting(n_elements)` says whether a split pays, from
`MIN_CHUNK_ELEMENTS` (a chunk must carry more work than a thread hop costs; an expensive
ufunc such as tanh gets there with fewer elements), and ``threads == 1`` runs the body
inline, with no thread at all. Matrix products never come here either: BLAS keeps its own threads.

State:
  threads     total threads doing work, the caller included (>= 1); fixed at construction
  _jobs       a SimpleQueue of jobs for the workers (one entry per worker asked to help)
  _workers    the worker threads, started on the first job that needs them (daemon threads:
              they hold no state and block only on `_jobs`)
  _declining  jobs still to run inline after a split that did not pay; _backoff: the next
              such run's length (see above). Read and written by callers without a lock: a
              race only shifts when the next split is tried
A `_Job` (one `parallel_for` call): ``next_chunk`` (an itertools counter: taking a chunk is one
atomic ``next``), ``done`` (chunks finished, under ``lock``), ``finished`` (an Event set when
``done`` reaches the chunk count) and the first exception a chunk raised (re-raised by the
caller).

    pool = shared_pool(0)                     # 0: one thread per core, as in TensorFlow
    out = np.empty_like(x)
    kind = object()                           # made once per kernel, at compile time
    pool.parallel_for(len(x), lambda lo, hi: np.tanh(x[lo:hi], out=out[lo:hi]), kind=kind)
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

import numpy as np

# Elements of a one-pass ufunc (an add) per chunk, at the least: a thread hop costs 60-120 us
# on these VMs (much more when the machine is loaded: every chunk also takes the GIL back),
# so a chunk must carry a few hundred microseconds of work. Costlier ufuncs (tanh: ~6 passes'
# worth) divide it by their `passes`. See RESULTS.md, "Issue 11", for the measurements.
MIN_CHUNK_ELEMENTS = 1 << 18
# Chunks per thread of a job: more than one evens out a thread the OS preempted.
CHUNKS_PER_THREAD = 2
# A job with much more work than that (a fused chain of 24 tanh layers over 2M elements: 70 ms)
# is cut finer, up to MAX_CHUNKS_PER_THREAD chunks per thread of at least FINE_CHUNK_FACTOR
# times the minimum each: a late or preempted thread then holds up the job by one short
# chunk at most (a few ms instead of a quarter of the job), and the split is judged on it.
MAX_CHUNKS_PER_THREAD = 8
FINE_CHUNK_FACTOR = 8
# A split job slower than this times its inline estimate was a loss (see the docstring).
LOSS_RATIO = 1.0
BACKOFF_JOBS = 8
MAX_BACKOFF_JOBS = 256
# Measured choice for keyed work (see the docstring): how often the losing way is tried again,
# the loss past which it is tried rarely, the moving average's weight of a new time, and the
# most kinds (kernel x size) the pool keeps figures for.
EXPLORE_EVERY = 16
EXPLORE_RARELY = 128
CLEAR_LOSS = 1.25
AVERAGE_WEIGHT = 0.3
MAX_KINDS = 4096


@dataclass(frozen=True)
class IntraOpStatistics:
    threads: int
    jobs_split: int      # parallel_for calls that used more than one thread
    jobs_inline: int     # parallel_for calls run by the caller alone
    jobs_declined: int = 0  # of those, the ones a split would have run but for a recent loss
    #                         or a measured one (keyed work that runs faster inline)


def _done(lo: int, hi: int) -> None:
    """The body of a finished job (every chunk is taken: never called)."""


class _Job:
    __slots__ = ("body", "bounds", "n_chunks", "next_chunk", "done", "lock", "finished",
                 "error")

    def __init__(self, body: Callable[[int, int], Any], bounds: list[int]):
        self.body = body
        self.bounds = bounds
        self.n_chunks = len(bounds) - 1
        self.next_chunk = itertools.count()
        self.done = 0
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> int:
        """Take chunks until none are left (any thread, the caller included); returns how
        many this thread ran."""
        bounds, body = self.bounds, self.body
        ran = 0
        while True:
            i = next(self.next_chunk)
            if i >= self.n_chunks:
                return ran
            ran += 1
            try:
                if self.error is None:
                    body(bounds[i], bounds[i + 1])
            except BaseException as e:  # noqa: BLE001 - handed to the caller, re-raised there
                if self.error is None:
                    self.error = e
            with self.lock:
                self.done += 1
                if self.done == self.n_chunks:
                    self.finished.set()


class _Timings:
    """One kind of work at one size: seconds per item inline and split (moving averages; None
    until measured), and how many jobs asked. Written by callers without a lock: a race only
    blurs an average."""

    __slots__ = ("inline", "split", "jobs", "samples")

    def __init__(self) -> None:
        self.inline: float | None = None
        self.split: float | None = None
        self.jobs = 0
        self.samples = [0, 0]  # inline, split

    def choose_split(self) -> bool:
        """Split this job? Each way once first, then the faster, the other now and then."""
        self.jobs += 1
        if self.split is None:
            return True
        if self.inline is None:
            return False
        split_faster = self.split <= self.inline
        loss = max(self.split, self.inline) / max(min(self.split, self.inline), 1e-12)
        every = EXPLORE_RARELY if loss > CLEAR_LOSS else EXPLORE_EVERY
        return split_faster != (self.jobs % every == 0)

    def record(self, split: bool, per_item: float) -> None:
        """A job's seconds per item. The first two of a way keep the lower (a first split also
        starts the workers); then a moving average, which follows the machine's load."""
        old = self.split if split else self.inline
        n = self.samples[split]
        self.samples[split] = n + 1
        if old is None:
            new = per_item
        elif n < 2:
            new = min(old, per_item)
        else:
            new = old + AVERAGE_WEIGHT * (per_item - old)
        if split:
            self.split = new
        else:
            self.inline = new


class IntraOpPool:
    """A fixed set of threads that large kernels split their work over."""

    def __init__(self, threads: int):
        if threads < 1:
            raise ValueError(f"an intra-op pool needs at least 1 thread, got {threads}; "
                             f"pass 0 to shared_pool for one per core")
        self.threads = threads
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._split = 0
        self._inline = 0
        self._declined = 0
        self._declining = 0
        self._backoff = BACKOFF_JOBS
        self._kinds: dict[tuple[object, int], _Timings] = {}

    def worth_splitting(self, n_elements: int, passes: float = 1.0) -> bool:
        """True if `passes` passes (an add is 1, a tanh about 6) over `n_elements` are big
        enough to split over the threads."""
        return self.threads > 1 and n_elements * passes >= 2 * MIN_CHUNK_ELEMENTS

    def parallel_for(self, n: int, body: Callable[[int, int], Any],
                     min_chunk: int = MIN_CHUNK_ELEMENTS, kind: object = None) -> None:
        """Call ``body(lo, hi)`` over consecutive ranges covering ``0..n``, on up to
        `threads` threads at once; returns when every range is done, raising the first
        exception a range raised. Ranges hold at least `min_chunk` items (one range when
        `n` is smaller), so small work runs inline on the caller. With a `kind` (any
        hashable naming the work: one per kernel), whether to split is measured, not
        estimated (module docstring)."""
        n_chunks = chunk_count(self.threads, n, min_chunk)
        if kind is not None and self.threads > 1 and n_chunks >= 2:
            self._measured(n, body, n_chunks, kind)
            return
        if self.threads == 1 or n_chunks < 2 or self._declining > 0:
            self._inline += 1
            if self.threads > 1 and n_chunks >= 2:
                self._declining -= 1
                self._declined += 1
            if n > 0:
                body(0, n)
            return
        t_job, t_own, ran = self._split_job(n, body, n_chunks)
        if ran:  # else the workers took every chunk: nothing to judge by
            self._judge(t_job, t_own / ran * n_chunks)

    def _measured(self, n: int, body: Callable[[int, int], Any], n_chunks: int,
                  kind: object) -> None:
        """A keyed job: split or inline as measured for its kind at its size."""
        key = (kind, n.bit_length())
        timings = self._kinds.get(key)
        if timings is None:
            if len(self._kinds) >= MAX_KINDS:
                self._kinds.clear()
            timings = self._kinds.setdefault(key, _Timings())
        if timings.choose_split():
            t_job = self._split_job(n, body, n_chunks)[0]
            timings.record(True, t_job / n)
            return
        self._inline += 1
        self._declined += 1
        t0 = time.perf_counter()
        body(0, n)
        timings.record(False, (time.perf_counter() - t0) / n)

    def _split_job(self, n: int, body: Callable[[int, int], Any],
                   n_chunks: int) -> tuple[float, float, int]:
        """Run a job over the threads: (its seconds, the caller's seconds on its own chunks,
        how many chunks the caller ran); raises what a chunk raised."""
        self._split += 1
        bounds = [n * i // n_chunks for i in range(n_chunks + 1)]
        job = _Job(body, bounds)
        if len(self._workers) < self.threads - 1:
            self._start_workers()
        t0 = time.perf_counter()
        for _ in range(min(self.threads - 1, n_chunks - 1)):
            self._jobs.put(job)
        ran = job.work()
        t_own = time.perf_counter() - t0
        job.finished.wait()
        t_job = time.perf_counter() - t0
        job.body = _done  # drop the kernel's buffers now: a worker may still hold the job
        if job.error is not None:
            raise job.error
        return t_job, t_own, ran

    def _judge(self, t_job: float, inline_estimate: float) -> None:
        """After a split job: decline the next `_backoff` splits if it did not pay."""
        if t_job > LOSS_RATIO * inline_estimate:
            self._declining = self._backoff
            self._backoff = min(2 * self._backoff, MAX_BACKOFF_JOBS)
        else:
            self._backoff = BACKOFF_JOBS

    def _start_workers(self) -> None:
        with self._start_lock:
            while len(self._workers) < self.threads - 1:
                t = threading.Thread(target=self._worker, name=f"intra-op-{len(self._workers)}",
                                     daemon=True)
                t.start()
                self._workers.append(t)

    def _worker(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            job.work()
            del job  # holds the kernel's buffers until the next job otherwise

    def close(self) -> None:
        """Stop the workers (tests and private pools; the shared pools live with the process)."""
        for _ in self._workers:
            self._jobs.put(None)
        for t in self._workers:
            t.join()
        self._workers = []

    def statistics(self) -> IntraOpStatistics:
        return IntraOpStatistics(self.threads, self._split, self._inline, self._declined)


def chunk_count(threads: int, n: int, min_chunk: int) -> int:
    """How many chunks `parallel_for` cuts ``0..n`` into on `threads` threads: each holds at
    least `min_chunk` items; `CHUNKS_PER_THREAD` per thread, or up to `MAX_CHUNKS_PER_THREAD`
    when each still holds `FINE_CHUNK_FACTOR` times the minimum (module constants)."""
    n_min = n // max(min_chunk, 1)
    fine = min(threads * MAX_CHUNKS_PER_THREAD, n_min // FINE_CHUNK_FACTOR)
    return max(min(threads * CHUNKS_PER_THREAD, n_min), fine)


def resolve_threads(requested: int) -> int:
    """ConfigProto's convention: 0 means one thread per core this process may use."""
    if requested < 0:
        raise ValueError(f"intra_op_parallelism_threads must be >= 0 (0: one per core), "
                         f"got {requested}")
    if requested:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


_SHARED: dict[int, IntraOpPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(threads: int = 0) -> IntraOpPool:
    """The process's pool of `threads` threads (0: one per core), made on first use and shared
    by every device and session that asks for that size (TensorFlow shares its global pools
    the same way)."""
    n = resolve_threads(threads)
    pool = _SHARED.get(n)
    if pool is None:
        with _SHARED_LOCK:
            pool = _SHARED.setdefault(n, IntraOpPool(n))
    return pool


def _is_full(a: Any, shape: tuple[int, ...]) -> bool:
    return type(a) is np.ndarray and a.shape == shape


def _as_scalar(a: Any) -> Any:
    """A size-1 operand as a 0-d one (it broadcasts against any chunk), else None."""
    if type(a) is np.ndarray:
        return a.reshape(()) if a.size == 1 else None
    return a  # a NumPy or Python scalar


def split_operands(args: tuple[Any, ...] | list[Any], out: np.ndarray
                   ) -> tuple[np.ndarray, list[Any], list[bool]] | None:
    """How to cut an element-wise pass of `args` into `out` into row ranges: the output as
    cut (`out` itself, or its flat view when everything is contiguous), each operand (cut
    along axis 0 when its flag is True, else whole: a scalar or a broadcast operand).
    None when `out` has fewer than two rows to cut."""
    shape = out.shape
    if out.ndim == 0 or out.size < 2:
        return None
    if out.flags.c_contiguous and out.ndim != 1:
        flat: list[Any] = []
        for a in args:
            if _is_full(a, shape) and a.flags.c_contiguous:
                flat.append(a.reshape(-1))
            else:
                s = _as_scalar(a)
                if s is None:
                    break
                flat.append(s)
        else:
            return out.reshape(-1), flat, [type(a) is np.ndarray and a.ndim == 1 for a in flat]
    if shape[0] < 2:
        return None
    ops, cut = [], []
    for a in args:
        if type(a) is np.ndarray and a.ndim == out.ndim and a.shape[0] == shape[0] != 1:
            ops.append(a)
            cut.append(True)
        else:
            ops.append(a)
            cut.append(False)
    return out, ops, cut


def apply_split(pool: IntraOpPool, f: Callable[..., Any], args: tuple[Any, ...] | list[Any],
                out: np.ndarray, passes: float = 1.0, kind: object = None) -> np.ndarray:
    """``f(*args, out=out)`` (a ufunc, or any function of that form that works element by
    element along axis 0) cut into row ranges over `pool`; the same values as one call.
    `passes` is f's cost per element against an add (`worth_splitting`); `kind` as in
    `IntraOpPool.parallel_for`."""
    plan = split_operands(args, out) if pool.worth_splitting(out.size, passes) else None
    if plan is None:
        f(*args, out=out)
        return out
    o, ops, cut = plan
    row = o.size // o.shape[0] if o.shape[0] else 1

    def body(lo: int, hi: int) -> None:
        f(*[a[lo:hi] if c else a for a, c in zip(ops, cut, strict=True)], out=o[lo:hi])

    min_rows = max(1, int(MIN_CHUNK_ELEMENTS / passes) // max(row, 1))
    pool.parallel_for(o.shape[0], body, min_rows, kind)
    return out
