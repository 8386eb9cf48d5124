"""Conditional accumulators (the gradient aggregators of synchronous replication, OSDI §4.4):
device resources that average the gradients of one global step and drop stale ones; and the
`SyncGate`, the step barrier that synchronous replication is built on (at the end).

An accumulator has a `global_step`. ``apply(grad, local_step)`` adds `grad` to the sum if
``local_step >= global_step``; otherwise the gradient is *stale*: dropped and counted
(`dropped`). ``take(n)`` blocks (asynchronously: a `devices.waits.Waiter`) until at least `n`
gradients are in, returns their mean (or sum), resets the sum and advances `global_step` by
one, so every gradient computed for an older step is dropped from then on. `close()` fails
pending and later takes with OutOfRange (a clean end for a shut-down job).

The sparse accumulator takes (indices, values, dense_shape) gradients and returns an
IndexedSlices-shaped triple: the unique indices, and per index the sum, or with MEAN the sum
divided by the number of gradients in the step (TF's SparseConditionalAccumulator divides by
the gradient count too).

State (guarded by `_lock`; applied from the device's baton holder, takes completed from any
thread): `global_step`, `count`, `_sum` (dense) or `_parts` (sparse), `_waiters` (blocked
takes, oldest first), counters `applied`, `dropped`, `taken`. The lock, the waiters,
`register`, `cancel` and `waits` are `devices.waits.WaitList`'s (the SyncGate's too).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from devices.errors import AbortedError, InvalidArgumentError, OpError, OutOfRangeError
from devices.waits import WaitList


class Accumulator(WaitList):
    kind = "ConditionalAccumulator"

    def __init__(self, name: str, dtype: np.dtype, shape: tuple | None, reduction: str,
                 device: str):
        if reduction not in ("MEAN", "SUM"):
            raise InvalidArgumentError(
                f"reduction_type must be 'MEAN' or 'SUM', got {reduction!r}", device=device)
        self.name = name
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.reduction = reduction
        self.device = device
        self.global_step = 0
        self.count = 0
        self.closed = False
        self._sum: Any = None
        super().__init__()
        self.applied = 0
        self.dropped = 0
        self.taken = 0

    def describe(self) -> str:
        return (f"{self.kind} '{self.name}' (step {self.global_step}, {self.count} "
                f"gradients in)")

    def check(self, kind: str, dtype: np.dtype) -> None:
        if kind != self.kind or np.dtype(dtype) != self.dtype:
            raise InvalidArgumentError(
                f"shared accumulator '{self.name}' exists as a {self.kind} of {self.dtype}; "
                f"this handle asks for a {kind} of {np.dtype(dtype)}: use another shared_name",
                device=self.device)

    # ---- operations ------------------------------------------------------------------------
    def apply(self, grad: Any, local_step: int, converted: bool = False) -> bool:
        """Add a gradient computed at `local_step`; False (and counted) if it is stale.
        `converted`: `grad` is already `convert`'s result (no second check)."""
        with self._lock:
            if int(local_step) < self.global_step:
                self.dropped += 1
                return False
            self._add(grad, converted)
            self.count += 1
            self.applied += 1
            self._pump()
            return True

    def convert(self, grad: Any) -> np.ndarray:
        """`grad` as an array of this accumulator's dtype, checked against its shape (a
        dense accumulator's; no lock needed)."""
        if type(grad) is np.ndarray and grad.dtype == self.dtype and (
                grad.shape == self.shape):  # (the common case: a gradient of the full shape)
            return grad
        g = np.asarray(grad, dtype=self.dtype)
        if self.shape is not None and (len(self.shape) != g.ndim or any(
                w is not None and w != d for w, d in zip(self.shape, g.shape, strict=True))):
            raise InvalidArgumentError(
                f"gradient of shape {g.shape} does not match {self.describe()} of shape "
                f"{self.shape}", device=self.device)
        return g

    def _add(self, grad: Any, converted: bool = False) -> None:
        g = grad if converted else self.convert(grad)
        if self._sum is None:
            self._sum = g.copy()
        elif self._sum.shape != g.shape:
            raise InvalidArgumentError(
                f"gradient of shape {g.shape} does not match the shape {self._sum.shape} of "
                f"the gradients already in {self.describe()}", device=self.device)
        else:
            self._sum += g

    def try_take(self, n: int) -> Any:
        with self._lock:
            if self._waiters:
                return None
            return self._serve(n)

    def take_now(self, n: int) -> Any:
        """Take `n` gradients that are in (`try_take` that fails instead of returning None:
        for a caller that knows they are in, `AccumulatorTakeGradients`)."""
        out = self.try_take(n)
        if out is None:
            raise InvalidArgumentError(
                f"{self.describe()} cannot give {n} gradients now (fewer are in, or a "
                f"take_grad waits before this one)", device=self.device)
        return out

    def take_sum_now(self, n: int) -> tuple[Any, int]:
        """`take_now` before the mean: (the sum of the gradients taken, their count), for a
        caller that folds the division into its own update (`SyncReplicaStepGD`; with MEAN,
        `mean` gives `take_now`'s value from them). Dense only."""
        with self._lock:
            out = None if self._waiters else self._serve(n, True)
        if out is None:
            raise InvalidArgumentError(
                f"{self.describe()} cannot give {n} gradients now (fewer are in, or a "
                f"take_grad waits before this one)", device=self.device)
        return out

    def set_global_step(self, step: int) -> None:
        """Move the accumulator to `step`; gradients already in for older steps are dropped."""
        with self._lock:
            step = int(step)
            if step > self.global_step and self.count:
                self.dropped += self.count
                self._reset()
            self.global_step = step

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._pump()

    # ---- state machine (under _lock) ---------------------------------------------------------
    def _serve(self, n: int, raw: bool = False) -> Any:
        if self.closed:
            raise OutOfRangeError(f"{self.describe()} is closed", device=self.device)
        if n < 1:
            raise InvalidArgumentError(
                f"take_grad needs num_required >= 1, got {n}", device=self.device)
        if self.count < n:
            return None
        out = (self._sum, self.count) if raw else self._result()
        self.taken += self.count
        self._reset()
        self.global_step += 1
        return out

    def _result(self) -> Any:
        return self._sum if self.reduction != "MEAN" else self.mean(self._sum, self.count)

    @staticmethod
    def mean(total: Any, count: int) -> Any:
        """The mean of `count` gradients summing to `total` (an accumulator's own sum: a
        float one is divided in place)."""
        if total.dtype.kind in "fc":  # in place, by a scalar of its dtype: the same quotient
            return np.divide(total, total.dtype.type(count), out=total)  # as by the int,
            # without NumPy's weak-scalar resolution per call
        return total / count

    def _reset(self) -> None:
        self._sum = None
        self.count = 0

    def _pump(self) -> None:
        while self._waiters:
            w = self._waiters[0]
            try:
                out = self._serve(w.payload)
            except OpError as e:
                self._waiters.popleft()
                w.fail(e)
                continue
            if out is None:
                return
            self._waiters.popleft()
            w.finish(out)


class SparseAccumulator(Accumulator):
    kind = "SparseConditionalAccumulator"

    def _add(self, grad: Any, converted: bool = False) -> None:
        indices, values, dense_shape = grad
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=self.dtype)
        if values.shape[:1] != indices.shape:
            raise InvalidArgumentError(
                f"a sparse gradient for {self.describe()} has {indices.shape[0]} indices but "
                f"values of shape {values.shape}", device=self.device)
        if self._sum is None:
            self._sum = ([], [], np.asarray(dense_shape, dtype=np.int64))
        self._sum[0].append(indices)
        self._sum[1].append(values.copy())

    def _result(self) -> Any:
        idx_parts, val_parts, dense_shape = self._sum
        indices = np.concatenate(idx_parts)
        values = np.concatenate(val_parts)
        uniq, inv = np.unique(indices, return_inverse=True)
        out = np.zeros((len(uniq), *values.shape[1:]), dtype=self.dtype)
        np.add.at(out, inv, values)
        if self.reduction == "MEAN":
            out /= self.count
        return (uniq, out, dense_shape)


# Roles `SyncGate.arrive` hands out.
STALE, CONTRIBUTOR, LEADER = 0, 1, 2


class SyncGate(WaitList):
    """The step barrier of synchronous replication (no tokens, no chief thread).

    `step` is the step the replicas are computing. A replica that finishes a gradient for
    `local_step` *arrives*: if ``local_step < step`` or the step already has its `k`
    contributions, it is STALE (its gradient must be dropped: the caller applies it with local
    step -1, and `late` counts it); else it is a CONTRIBUTOR, and the k-th one the LEADER,
    which aggregates the step (take_grad on every accumulator, the optimizer's update, then
    `release`). `release` advances `step` and wakes every replica waiting for it (`wait_for`,
    asynchronous: a `Waiter`). Nothing is consumed, so a replica that dies holds nothing
    back: the others go on while `k` of them live. Membership: `live` replicas; `leave` (a
    replica finished its data) and `close` end the job for everyone once fewer than `k` can
    still contribute: waiters and later arrivals fail with OutOfRange, a clean end.

    With fewer replicas than `k`, a contributor does not wait: it computes another gradient
    for the same step (each replica contributes several, as in TF).

    A leader that dies between its train step and its aggregation would stall its step: once
    `leader_timeout` seconds have passed since it was elected, arrivals fail with AbortedError
    naming the cause instead of going round as stale forever (waiters are bounded by their
    step deadlines).

    `wait_for(target)` (wake once ``step >= target``) is also the general "block until a
    condition on shared state holds" of graph code: barriers and bounded staleness.
    """

    kind = "SyncGate"

    def __init__(self, name: str, k: int, n: int, device: str,
                 leader_timeout: float = 60.0):
        self.name, self.k, self.live, self.device = name, int(k), int(n), device
        # fewer replicas than gradients per step: each contributes several (TF's semantics)
        self.several = int(n) < int(k)
        self.step = 0
        self.arrived = 0      # contributions to `step` so far
        self.closed = False
        self.late = 0         # gradients refused as stale or beyond the k of their step
        self.steps_released = 0
        self.leader_timeout = float(leader_timeout)
        self._elected_at = 0.0  # when the current step got its leader (monotonic clock)
        super().__init__()

    def describe(self) -> str:
        return (f"SyncGate '{self.name}' (step {self.step}, {self.arrived} of {self.k} "
                f"gradients, {self.live} replicas live)")

    def check(self, k: int, n: int) -> None:
        if int(k) != self.k:
            raise InvalidArgumentError(
                f"shared {self.describe()} aggregates {self.k} gradients per step; this "
                f"replica asks for {k}: every replica must use the same replicas_to_aggregate",
                device=self.device)

    def _end(self, why: str) -> OutOfRangeError:
        return OutOfRangeError(f"{self.describe()} has ended: {why}", device=self.device)

    def arrive(self, local_step: int) -> int:
        with self._lock:
            if self.closed:
                raise self._end("the job was stopped or too few replicas remain")
            if local_step < self.step or local_step > self.step or self.arrived >= self.k:
                if (self.arrived >= self.k
                        and time.monotonic() - self._elected_at > self.leader_timeout):
                    raise AbortedError(
                        f"{self.describe()}: the leader of step {self.step} has not released "
                        f"it for {time.monotonic() - self._elected_at:.0f}s (leader_timeout="
                        f"{self.leader_timeout:g}s); it most likely died between its train "
                        f"step and its sync_op. Restart the job (from a checkpoint)",
                        device=self.device)
                self.late += 1
                return STALE
            self.arrived += 1
            if self.arrived == self.k:
                self._elected_at = time.monotonic()
                return LEADER
            return CONTRIBUTOR

    def release(self) -> int:
        """The leader applied `step`: move on and wake the waiters. Returns the new step."""
        with self._lock:
            self.step += 1
            self.arrived = 0
            self.steps_released += 1
            self._pump()
            return self.step

    def set_step(self, step: int) -> None:
        with self._lock:
            self.step = int(step)
            self.arrived = 0
            self._pump()

    def try_wait(self, target: int) -> int | None:
        with self._lock:
            if self.step >= target:
                return self.step
            if self.closed:
                raise self._end("the job was stopped or too few replicas remain")
            return None

    def leave(self) -> None:
        with self._lock:
            self.live -= 1
            if self.live < (1 if self.several else self.k):
                self.closed = True
            self._pump()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._pump()

    def _pump(self) -> None:
        if not self._waiters:
            return
        keep: deque = deque()
        for w in self._waiters:
            if self.step >= w.payload:
                w.finish(self.step)
            elif self.closed:
                w.fail(self._end("the job was stopped or too few replicas remain"))
            else:
                keep.append(w)
        self._waiters = keep
