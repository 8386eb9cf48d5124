"""A step's rendezvous on one task of a cluster, and the bounded per-step state around it.

What it owns
------------
- `TaskRendezvous`: the rendezvous of one step on one task. A key whose receiving device is on
  this task behaves exactly as in `scheduler.rendezvous.Rendezvous`; a key whose receiving
  device is on another task is *pushed* there (`scheduler.peer_outbox.PeerOutbox`): the tensor
  goes straight into that task's rendezvous through its worker service's ``deliver`` method.
  Keys are ``"src:port->RECV_DEVICE"`` (see `scheduler.partition`), so the receiving task is in
  the key. Every push names the incarnation the step's master believes the receiver is in
  (``peers``, from the step's ``run_graph``): a receiver that restarted since refuses it and
  keeps nothing. A push that fails, or that the receiver refuses, fails the step here
  (`StepState.fail`), which aborts its rendezvous and so wakes every pending Recv; the master
  hears of it from this task's ``run_graph`` reply.
- `StepTable`: every step this task knows of, bounded. A step's state is created by whichever
  comes first: its ``run_graph``, a delivery (a tensor may arrive before the step starts here),
  or an ``abort``.

State (all owned by the worker service's trio thread; nothing here takes locks)
-----
`StepState` (one per live step):
  rdv           its `TaskRendezvous`; pushes waiting for a connection (not yet handed to
                libzmq) are counted in ``rdv.in_flight`` (written by the outbox)
  ctx           the `StepContext` once ``run_graph`` started the step here, else None (an
                *orphan*: deliveries only)
  parts_done    set by the ctx's done-callback; with no push in flight the step is retired
  finished      True once the step is retired here; ``on_finished`` (set by ``run_graph``)
                is called then, once
`StepTable`:
  _live         step id -> StepState, for steps running here or holding early deliveries
  _orphans      the live states without a ctx, oldest first, with their bytes in
                ``_orphan_bytes``; evicted beyond ``max_orphan_steps`` / ``max_orphan_bytes``
                or after ``orphan_ttl`` seconds (`reap`), each leaving a ResourceExhausted
                tombstone so that a late ``run_graph`` fails at once instead of waiting for
                tensors that were dropped
  _over         retired step ids -> their error (None: finished cleanly; tracebacks scrubbed,
                so it holds nothing of the step), the newest ``remember_steps``: late
                deliveries for them are dropped, a late ``run_graph`` fails with the error
  failed        steps retired with an error since start; ``on_failed`` is called for each:
                the service returns the pool blocks such steps never released
                (`devices.pool.HostPool.collect`) once the step's last reference is gone
Nothing is ever pickled; tensors travel as raw frames (`transport.codec`).

    table = StepTable(outbox)
    st = table.start(step_id)                 # run_graph; raises if over or already running
    st = table.for_delivery(step_id)          # deliver; None: the step is over here, drop it
    table.abort(step_id, error)               # abort: wakes every pending Recv of the step
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from devices.errors import (
    InvalidArgumentError,
    OpError,
    ResourceExhaustedError,
    error_from_code,
)
from scheduler.rendezvous import Rendezvous

if TYPE_CHECKING:
    from scheduler.peer_outbox import PeerOutbox

TaskKey = tuple[str, int]  # (job, task index)
_NO_PEERS: dict[TaskKey, int] = {}  # a step whose run_graph named no other task (read only)


def task_name(task: TaskKey) -> str:
    return f"/job:{task[0]}/replica:0/task:{task[1]}"


def scrub(error: OpError) -> OpError:
    """`error`, with the tracebacks of it and of the errors it chains dropped (their types and
    messages stay). A failed step's error would otherwise keep the frames it passed through,
    and with them the step's tensors, alive in a reference cycle until the garbage collector's
    oldest generation runs: the memory of aborted steps piled up."""
    stack: list[BaseException] = [error]
    for _ in range(32):
        if not stack:
            break
        e = stack.pop()
        e.__traceback__ = None
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                stack.append(nxt)
    return error


def detached(error: OpError) -> OpError:
    """A copy of `error` to raise (same class, message, node and device; the cause kept without
    its traceback) that refers to nothing of the step it came from."""
    copy = error_from_code(int(error.code), error.message, node=error.node,
                           device=error.device)
    copy.__cause__ = scrub(error).__cause__
    return copy


def endpoint_of(address: str) -> str:
    """``"host:port"`` -> ``"tcp://host:port"``."""
    return address if "://" in address else f"tcp://{address}"


class TaskRendezvous(Rendezvous):
    """The rendezvous of one step on one task: local keys meet here, remote ones are pushed.

    ``in_flight`` counts pushes not yet handed to libzmq (written by `PeerOutbox`); ``state`` is
    the step's `StepState` (set by `StepTable`), told when a push fails or completes;
    ``peers`` (task -> incarnation, set by ``run_graph`` before the step runs here) is the
    life of each task the step may push to, which every push names.
    """

    def __init__(self, step_id: int, outbox: PeerOutbox):
        super().__init__(step_id)
        self._outbox = outbox
        self.in_flight = 0
        self.peers: dict[TaskKey, int] = _NO_PEERS
        self.state: StepState | None = None
        # While not None, host tensors for other tasks wait here (task -> [(key, value)]) to
        # ride on those tasks' run_graph requests instead of a push each (`take_held`).
        self.held: dict[TaskKey, list[tuple[str, Any]]] | None = None

    @property
    def error(self) -> OpError | None:
        return self._error

    def send(self, key: str, value: Any, *, resume: bool = False) -> None:
        peer = self._outbox.route(key)
        if peer is None:
            super().send(key, value, resume=resume)
        elif self._error is None:
            riders = self.held.get(peer) if self.held is not None else None
            if riders is not None and isinstance(value, np.ndarray | np.generic):
                riders.append((key, np.asarray(value)))  # only for tasks the caller sends to
                return
            self._outbox.push(self, peer, key, value)

    def take_held(self) -> dict[TaskKey, list[tuple[str, Any]]]:
        """Stop holding; the tensors held so far, by task (the caller sends them)."""
        held, self.held = self.held or {}, None
        return held

    def deliver(self, key: str, value: Any) -> None:
        """A tensor pushed here by another task (from the service's reader): the Recv waiting
        for it may go on with the step right away (`Rendezvous.send` with ``resume``)."""
        Rendezvous.send(self, key, value, resume=True)


class StepState:
    """One step on this task (see the module docstring for each field's invariant)."""

    __slots__ = ("step_id", "rdv", "ctx", "born", "orphan_bytes", "parts_done", "finished",
                 "on_finished", "_table")

    def __init__(self, step_id: int, rdv: TaskRendezvous, table: StepTable):
        self.step_id = step_id
        self.rdv = rdv
        self.ctx: Any = None
        self.born = trio.current_time()
        self.orphan_bytes = 0
        self.parts_done = False
        self.finished = False
        self.on_finished: Callable[[], None] | None = None
        self._table = table
        rdv.state = self

    @property
    def error(self) -> OpError | None:
        if self.ctx is not None and self.ctx.error is not None:
            return self.ctx.error
        return self.rdv.error

    def fail(self, error: OpError) -> None:
        """First error wins: abort the step here, waking every pending Recv."""
        if self.ctx is not None:
            self.ctx.abort(error)
        else:
            self.rdv.abort(error)
        self._table.maybe_retire(self)

    def push_done(self) -> None:
        """A queued push of this step left or failed."""
        self._table.maybe_retire(self)

    def on_parts_done(self, _error: OpError | None) -> None:
        """The StepContext's done-callback: every partition of the step here has finished."""
        self.parts_done = True
        self._table.maybe_retire(self)


@dataclass(frozen=True)
class StepTableStatistics:
    live: int  # steps running here or holding early deliveries
    orphans: int  # of which: no run_graph yet
    orphan_bytes: int
    remembered: int  # retired step ids kept to drop late messages
    evicted: int  # orphans dropped for age or size since start


class StepTable:
    """The steps this task knows of, bounded (see the module docstring)."""

    def __init__(self, outbox: PeerOutbox, *, orphan_ttl: float = 60.0,
                 max_orphan_steps: int = 4096, max_orphan_bytes: int = 1 << 30,
                 remember_steps: int = 65536, on_failed: Callable[[], None] | None = None):
        self.outbox = outbox
        self.on_failed = on_failed  # called when a step retires with an error
        self.orphan_ttl = orphan_ttl
        self.max_orphan_steps = max_orphan_steps
        self.max_orphan_bytes = max_orphan_bytes
        self.remember_steps = remember_steps
        self._live: dict[int, StepState] = {}
        self._orphans: OrderedDict[int, StepState] = OrderedDict()
        self._orphan_bytes = 0
        self._over: OrderedDict[int, OpError | None] = OrderedDict()
        self._evicted = 0
        self.failed = 0

    def statistics(self) -> StepTableStatistics:
        return StepTableStatistics(len(self._live), len(self._orphans), self._orphan_bytes,
                                   len(self._over), self._evicted)

    def _new(self, step_id: int) -> StepState:
        st = StepState(step_id, TaskRendezvous(step_id, self.outbox), self)
        self._live[step_id] = st
        return st

    def start(self, step_id: int) -> StepState:
        """The state for ``run_graph`` of `step_id`; raises if the step cannot start here."""
        if step_id in self._over:
            error = self._over[step_id]
            if error is not None:
                raise detached(error)
            raise InvalidArgumentError(
                f"step {step_id} already ran on this task; every step needs a fresh id")
        st = self._live.get(step_id)
        if st is None:
            return self._new(step_id)
        if st.ctx is not None:
            raise InvalidArgumentError(f"step {step_id} is already running on this task")
        self._orphans.pop(step_id, None)
        self._orphan_bytes -= st.orphan_bytes
        st.orphan_bytes = 0
        return st

    def for_delivery(self, step_id: int) -> StepState | None:
        """The state a delivery for `step_id` goes to, or None when the step is over here."""
        st = self._live.get(step_id)
        if st is not None:
            return st
        if step_id in self._over:
            return None
        st = self._new(step_id)
        self._orphans[step_id] = st
        if len(self._orphans) > self.max_orphan_steps:
            self._evict_oldest("more than max_orphan_steps steps hold early deliveries")
        return st

    def add_orphan_bytes(self, st: StepState, nbytes: int) -> None:
        """Count a delivery to a step that has not started here; evict the oldest over budget."""
        if st.ctx is not None:
            return
        st.orphan_bytes += nbytes
        self._orphan_bytes += nbytes
        while self._orphan_bytes > self.max_orphan_bytes and self._orphans:
            self._evict_oldest("early deliveries exceed max_orphan_bytes")

    def abort(self, step_id: int, error: OpError) -> None:
        st = self._live.get(step_id)
        if st is not None:
            st.fail(error)
            if st.ctx is None:
                self._retire(st, error)
        elif step_id not in self._over:
            self._remember(step_id, error)  # a run_graph arriving later fails at once

    def maybe_retire(self, st: StepState) -> None:
        ctx = st.ctx
        if ctx is None or not st.parts_done or st.finished:
            return
        if st.rdv.in_flight == 0 or ctx.error is not None:
            self._retire(st, ctx.error)

    def _retire(self, st: StepState, error: OpError | None) -> None:
        if self._live.get(st.step_id) is st:
            del self._live[st.step_id]
        if self._orphans.pop(st.step_id, None) is not None:
            self._orphan_bytes -= st.orphan_bytes
            st.orphan_bytes = 0
        if error is not None:
            scrub(error)
            self.failed += 1
        self._remember(st.step_id, error)
        st.finished = True
        on_finished, st.on_finished = st.on_finished, None
        # Break the step's reference cycles (state <-> rendezvous, state -> ctx -> its done
        # callback -> state) so that its tensors go as soon as the last reference does.
        st.rdv.state = None
        st.ctx = None
        if on_finished is not None:
            on_finished()
        if error is not None and self.on_failed is not None:
            self.on_failed()

    def _remember(self, step_id: int, error: OpError | None) -> None:
        self._over[step_id] = scrub(error) if error is not None else None
        while len(self._over) > self.remember_steps:
            self._over.popitem(last=False)

    def _evict_oldest(self, why: str) -> None:
        step_id, st = next(iter(self._orphans.items()))
        self._evicted += 1
        err = ResourceExhaustedError(
            f"step {step_id}: tensors delivered to this task before the step started here were "
            f"dropped ({why}); the step must be run again")
        st.rdv.abort(err)
        self._retire(st, err)

    def reap(self) -> int:
        """Evict orphans older than ``orphan_ttl``; returns how many."""
        limit = trio.current_time() - self.orphan_ttl
        n = 0
        while self._orphans:
            st = next(iter(self._orphans.values()))
            if st.born > limit:
                break
            self._evict_oldest(f"no run_graph within orphan_ttl={self.orphan_ttl}s")
            n += 1
        return n
