"""Sums of per-iteration terms a gradient loop hands off (`actorflow.ops.loop_invariant_grads`):
the gradient of a loop invariant, ``sum_t op(a_t) @ op(b_t)`` (an RNN's dW), computed beside
the loop instead of in it.

Design
------
`_ProductTerms` makes a fresh `ProductSum` per run. Each gradient iteration's
`_ProductTermPush` hands it one term (the two operands of a product, or a plain array). Every
`CHUNK` terms become a `_Job`, posted (when it is `MIN_JOB_WORK` or more) to one background
thread per process, which adds them up (one small product each, GIL released inside BLAS)
while the loop goes on with its critical path on the caller's thread: TensorFlow gets the
same overlap from its inter-op threads. After
the loop, `_ProductSum` returns ``init + job_1 + job_2 + ... + rest``: the jobs in push order,
each a left-to-right sum of its terms, so the bits do not depend on which thread ran a job.

Nothing waits for the worker to *start* a job: a job is claimed by whoever takes it first (an
atomic ``next`` on its ticket), so `_ProductSum` runs every job the worker has not begun
itself and waits only for the one it is running. A worker preempted by a loaded machine costs
at most one chunk of delay, and a process with one usable core runs everything inline (no
thread). A run whose sum still waited for the worker more than `LOSS_WAIT_S`, or found more
than one posted job not started (no free core: the worker only competes with the loop),
makes the next runs keep their jobs inline for a while (`_judge`, the same back-off as
`devices.intra_op`'s splits).

One large BLAS call over the stacked operands was measured and rejected: OpenBLAS splits a
64x3200x64 product over its threads with a synchronisation per block, and on a loaded
2-core machine that took 100-150 ms instead of 0.6 ms (RESULTS.md, "Session 9: rnn").

State: a ProductSum belongs to one run (its loop's pushes come from the device actor's thread,
in order); a `_Job` is shared with the worker until its ``done`` Event is set; `_declining`
and `_backoff` (the back-off) are per process, read and written without a lock (a race only
shifts when the worker is tried again).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from queue import SimpleQueue
from typing import Any

import numpy as np

from devices.errors import InternalError
from devices.kernels.registry import KernelContext, register_kernel

CHUNK = 8  # terms per job: 8 products of an RNN's 64x32x64 are ~130 us, above a thread hop
# A job goes to the worker only if its products have this many multiply-adds (a thread hop
# costs 60-120 us here; smaller jobs are run by `_ProductSum` itself, in the same chunks).
MIN_JOB_WORK = 1 << 18


def _work(term: tuple[Any, ...]) -> int:
    """Multiply-adds of one term (its size for a plain one)."""
    if len(term) == 1:
        return int(term[0].size)
    a, b = term
    return int(a.size) * int(b.shape[-1] if b.ndim else 1)


class _Job:
    __slots__ = ("terms", "ticket", "done", "result", "error", "ta", "tb", "xp", "posted")

    def __init__(self, terms: list[tuple[Any, ...]], ta: bool, tb: bool, xp: Any):
        self.terms = terms
        self.ta, self.tb = ta, tb
        self.xp = xp
        self.posted = False
        self.ticket = itertools.count()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def claim(self) -> bool:
        return next(self.ticket) == 0

    def run(self) -> None:
        try:
            self.result = _sum_terms(self.terms, self.ta, self.tb, self.xp)
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller of total()
            self.error = e
        self.terms = []
        self.done.set()


def _sum_terms(terms: list[tuple[Any, ...]], ta: bool, tb: bool, xp: Any) -> Any:
    acc = None
    tmp = None
    for term in terms:
        if len(term) == 1:
            v = term[0]
            if acc is None:
                acc = v.copy()
            else:
                acc += v
            continue
        a, b = term
        a = a.T if ta else a
        b = b.T if tb else b
        if acc is None:
            acc = xp.matmul(a, b)
            continue
        if tmp is None:
            tmp = xp.empty_like(acc)
        xp.matmul(a, b, out=tmp)
        acc += tmp
    return acc


class _Worker:
    """One daemon thread per process that runs posted jobs it can claim."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: SimpleQueue[_Job] = SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="actorflow-loop-sums",
                                       daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job.claim():
                job.run()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _background() -> _Worker | None:
    """The process's worker, or None when only one core is usable (everything inline)."""
    global _worker
    w = _worker
    if w is not None and w.pid == os.getpid():
        return w
    if len(os.sched_getaffinity(0)) < 2:
        return None
    with _worker_lock:
        if _worker is None or _worker.pid != os.getpid():
            _worker = _Worker()
        return _worker


class ProductSum:
    """The terms of one run's sum (see the module doc)."""

    __slots__ = ("name", "ta", "tb", "pending", "jobs", "worker", "xp")

    def __init__(self, name: str, worker: _Worker | None, xp: Any = np):
        self.name = name
        self.xp = xp
        self.ta = self.tb = False
        self.pending: list[tuple[Any, ...]] = []
        self.jobs: list[_Job] = []
        self.worker = worker

    def __repr__(self) -> str:
        return f"<ProductSum {self.name}: {len(self.jobs)} jobs, {len(self.pending)} pending>"

    def push(self, term: tuple[Any, ...], ta: bool, tb: bool) -> None:
        self.ta, self.tb = ta, tb
        self.pending.append(term)
        if len(self.pending) >= CHUNK:  # the same chunks with or without the worker
            job = _Job(self.pending, ta, tb, self.xp)
            self.pending = []
            self.jobs.append(job)
            if self.worker is not None and _work(term) * CHUNK >= MIN_JOB_WORK:
                job.posted = True
                self.worker.jobs.put(job)

    def total(self, init: Any) -> Any:
        out = init.copy()
        waited = 0.0
        late = 0  # posted jobs the worker had not started when the loop was over
        for job in self.jobs:
            if job.claim():
                late += job.posted
                job.run()
            elif not job.done.is_set():
                t0 = time.perf_counter()
                job.done.wait()
                waited += time.perf_counter() - t0
            if job.error is not None:
                raise job.error
            out += job.result
        if self.pending:
            out += _sum_terms(self.pending, self.ta, self.tb, self.xp)
        if self.worker is not None:
            _judge(waited, late)
        self.jobs, self.pending = [], []
        return out


# A run whose sum waited this long for the worker lost more than the worker saved it (the
# machine has no free core): the next runs keep their jobs inline, `_backoff` of them,
# doubling after each loss in a row (as `devices.intra_op` judges its splits).
LOSS_WAIT_S = 0.5e-3
BACKOFF_RUNS = 8
MAX_BACKOFF_RUNS = 256
_declining = 0
_backoff = BACKOFF_RUNS


def _judge(waited: float, late: int = 0) -> None:
    global _declining, _backoff
    if waited > LOSS_WAIT_S or late > 1:
        _declining = _backoff
        _backoff = min(2 * _backoff, MAX_BACKOFF_RUNS)
    else:
        _backoff = BACKOFF_RUNS


def _worker_for_this_run() -> _Worker | None:
    """The worker, unless runs are declining it after a loss (a race only shifts when)."""
    global _declining
    if _declining > 0:
        _declining -= 1
        return None
    return _background()


@register_kernel("_ProductTerms", stateful=True)
def _product_terms(k: KernelContext) -> Any:
    name, xp = k.name, k.xp
    inline = xp is not np  # another array library (a GPU's): no background thread

    def compute(*_: Any) -> tuple:
        return (ProductSum(name, None if inline else _worker_for_this_run(), xp),)
    return compute


@register_kernel("_ProductTermPush", stateful=True)
def _product_term_push(k: KernelContext) -> Any:
    ta, tb = bool(k.attrs.get("transpose_a")), bool(k.attrs.get("transpose_b"))

    def compute(terms: ProductSum, *values: Any) -> tuple:
        terms.push(values, ta, tb)
        return ()
    return compute


@register_kernel("_ProductSum", stateful=True)
def _product_sum(k: KernelContext) -> Any:
    dt = k.out_dtypes[0].np

    def compute(init: Any, terms: ProductSum, _after_loop: Any) -> tuple:
        if not isinstance(terms, ProductSum):
            raise InternalError(f"'{k.name}': expected a ProductSum, got {type(terms)} "
                                f"(please report)")
        out = terms.total(init)
        return (out if out.dtype == dt else out.astype(dt),)
    return compute
