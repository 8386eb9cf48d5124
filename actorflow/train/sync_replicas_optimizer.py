"""`af.train.SyncReplicasOptimizer`: synchronous replication with backup workers (OSDI §4.4,
Fig. 4(c)), re-designed so that it cannot hang the way TF1's does.

Design
------
Shared state lives on the parameter servers, namespaced by the optimizer's unique name (two
optimizers in one graph share nothing): one `ConditionalAccumulator` per variable (a
`SparseConditionalAccumulator` for IndexedSlices gradients), on the variable's device, and one
`SyncGate` on the global step's device. There is no token queue and no chief thread.

A replica's `train_op` (one `Session.run`):
  1. computes its gradients at `local_step` (a local variable: the step it last saw);
  2. *arrives* at the gate, which gives it a role: the first k = `replicas_to_aggregate`
     arrivals of the current step are CONTRIBUTORs and the k-th is the LEADER; anything else
     (a backup worker's late gradient, a straggler's stale one) is STALE;
  3. applies its gradients to the accumulators with `local_step`, or with -1 when STALE, so
     the accumulators drop them (counted: `counters()`, the gate's `late`);
  4. waits at the gate (asynchronously, bounded by the step's deadline) until the step has
     moved past `local_step`; the leader does not wait, a stale replica catches up at once;
  5. sets `local_step` to the step it computes next.
The leader's aggregation: take_grad(k) on every accumulator, and only when every shard's
average is in, the wrapped optimizer's update on every shard and the global step's increment,
and only then `release`, which advances the gate's step and wakes the waiting replicas. The
update of a step is thus applied on every PS shard before the step moves on, and a failed
update leaves the step where it was (every replica then fails within its deadline, none moves
on). Where it runs (`fold_sync`):
- *folded* (the default, `fold_sync=None`, wherever every variable and the global step are
  on one device and there are no `variable_averages`; `fold_sync=True` insists, False
  refuses): inside the leader's own train step, between its applies and its wait, under an
  `af.cond` on its role placed whole on the gate's device (built outside the caller's device
  scope: a replica_device_setter would otherwise ask for the worker for ops that their
  resource inputs pin to the PS). A global step then costs no second `Session.run` (for a
  between-graph replica, a round trip from its client to the PS); the hook only counts the
  steps it led;
- otherwise as `sync_op`, which the hook runs right after the leader's train step, in the
  same process (a cond cannot span PS shards: its resource switches are colocated).
Folded with dense gradients, steps 2-3 are one kernel (`sync_replicas_ops.arrive_apply`),
the leader's takes one (`take_gradients`) and the leader releases in its wait
(`sync_replicas_ops.wait`); with a plain GradientDescentOptimizer of constant rate the
leader's whole aggregation is in the arrival's kernel too (`replica_step_gd`: no cond at
all). A folded replica step of softmax regression has 36 nodes instead of 64.

Guarantees (each tested in tests/test_sync_replicas*.py):
- a replica that dies holds nothing (release is a broadcast, not a consumed token): the others
  go on while k replicas live, or fail within their step deadline when fewer remain;
- no thread to start: the leader of each step is whichever replica completed it;
- end of data and shutdown: a replica that finishes runs `leave` (the hook's `end`); once
  fewer than k replicas remain, the gate closes and every waiting replica's step ends with
  OutOfRangeError, the signal to leave its loop;
- dropped gradients are counted and visible (`counters()`).
- `variable_averages` (an ExponentialMovingAverage) with `variables_to_average` (default:
  the variables this optimizer updates): the leader's `sync_op` applies the averages after
  each aggregated update and before the release, as TF1's chief does after each step.
Known limit: a leader that dies between its train step and its `sync_op` (unfolded: a window
of one `Session.run` call; folded: a step aborted inside the aggregation) stalls that step:
the waiting replicas fail within their step deadline, and once `leader_timeout_secs` have
passed every arrival fails with AbortedError naming the cause (restart from a checkpoint);
the step is never half-applied.

    opt = af.train.SyncReplicasOptimizer(af.train.GradientDescentOptimizer(0.1),
                                         replicas_to_aggregate=2, total_num_replicas=3)
    train_op = opt.minimize(loss, global_step=step)
    hook = opt.make_session_run_hook(is_chief=(task == 0))
    with af.Session(target) as sess:
        hook.after_create_session(sess, None)     # chief: init the shared state; all: local
        while ...:
            hook.run(sess, train_op)              # the train step, and the sync if leader
        hook.end(sess)

On an async session (``async with af.Session() as s``, replicas as trio tasks) the hook's
`aafter_create_session`, `arun` and `aend` do the same.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from actorflow.graph import (
    GraphKeys,
    Operation,
    Tensor,
    colocate_with,
    control_dependencies,
    device,
    get_default_graph,
    name_scope,
)
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import convert_to_tensor
from actorflow.ops import core_ops, state_ops
from actorflow.ops.accumulator_ops import (
    LEADER,
    ConditionalAccumulator,
    SparseConditionalAccumulator,
    SyncGate,
)
from actorflow.train import sync_replicas_ops
from actorflow.train.gradient_descent import GradientDescentOptimizer
from actorflow.train.optimizer import Optimizer
from actorflow.variables import Variable
from devices import dtypes
from devices.errors import InvalidArgumentError, OutOfRangeError

try:  # the monitored sessions' own (issue 14), when present
    from actorflow.train.session_run_hook import SessionRunArgs
except ModuleNotFoundError as _e:  # pragma: no cover - without checkpoints' hooks
    if _e.name != "actorflow.train.session_run_hook":
        raise
    # The shape of TF's SessionRunArgs (fetches, feed_dict, options), for before_run.
    SessionRunArgs = namedtuple(  # type: ignore[misc,no-redef]
        "SessionRunArgs", ["fetches", "feed_dict", "options"], defaults=(None, None))


class SyncReplicasOptimizer(Optimizer):
    def __init__(self, opt: Optimizer, replicas_to_aggregate: int,
                 total_num_replicas: int | None = None, variable_averages: Any = None,
                 variables_to_average: Any = None, use_locking: bool = False,
                 name: str = "sync_replicas", leader_timeout_secs: float = 60.0,
                 fold_sync: bool | None = None):
        super().__init__(use_locking, name)
        if total_num_replicas is None:
            total_num_replicas = replicas_to_aggregate
        if replicas_to_aggregate < 1 or total_num_replicas < 1:
            raise InvalidArgumentError(
                f"SyncReplicasOptimizer needs replicas_to_aggregate >= 1 and "
                f"total_num_replicas >= 1, got {replicas_to_aggregate} and "
                f"{total_num_replicas} (replicas beyond replicas_to_aggregate are backup "
                f"workers; with fewer, each replica contributes several gradients per step)")
        if variables_to_average is not None and variable_averages is None:
            raise InvalidArgumentError(
                "SyncReplicasOptimizer got variables_to_average without variable_averages: "
                "pass an af.train.ExponentialMovingAverage as variable_averages too")
        self._variable_averages = variable_averages
        self._variables_to_average = None if variables_to_average is None else \
            list(variables_to_average)
        self._opt = opt
        self._k = int(replicas_to_aggregate)
        self._n = int(total_num_replicas)
        self._leader_timeout = float(leader_timeout_secs)
        self._fold_request = fold_sync
        self._fold = False  # decided when the shared part is built (`_can_fold`)
        self._fused = False
        self._gd_rate: float | None = None
        self._uname: str | None = None
        self._gate: SyncGate | None = None
        self._accumulators: list[Any] = []
        self.sync_op: Operation | None = None
        self.chief_init_op: Operation | None = None
        self.local_step_init_op: Operation | None = None
        self.stop_op: Operation | None = None
        self.leave_op: Operation | None = None
        self._roles: dict[Operation, Tensor] = {}
        self._last_train_op: Operation | None = None
        self._global_step: Any = None

    def compute_gradients(self, *args: Any, **kwargs: Any) -> list[tuple[Any, Variable]]:
        return self._opt.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars: Any, global_step: Any = None,
                        name: str | None = None) -> Operation:
        """The replica's train op (see the module docstring). The first call also builds the
        shared part (accumulators, gate, `sync_op`); later calls (in-graph towers) each get
        their own local step."""
        if global_step is None:
            raise InvalidArgumentError("SyncReplicasOptimizer.apply_gradients needs global_step")
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise InvalidArgumentError("apply_gradients got no gradients")
        g = get_default_graph()
        if self._uname is None:
            self._uname = g.unique_name(self._name)
            self._build_shared(pairs, global_step)
        elif [v for _, v in pairs] != [v for _, v in self._vars]:
            raise InvalidArgumentError(
                "every apply_gradients call of one SyncReplicasOptimizer must update the same "
                "variables in the same order")
        gate = self._gate
        assert gate is not None
        with name_scope(f"{self._uname}/replica"):
            first = pairs[0][0]
            first = first.values if isinstance(first, IndexedSlices) else first
            with colocate_with(first.op):
                local_step = Variable(0, trainable=False, dtype=dtypes.int64,
                                      name="local_step",
                                      collections=[GraphKeys.LOCAL_VARIABLES])
            local_init = state_ops.assign(local_step, global_step).op
            self.local_step_init_op = local_init if self.local_step_init_op is None else \
                core_ops.group(self.local_step_init_op, local_init)
            # (an identity only for a fed placeholder: a control edge straight from it would
            # keep the placeholder node in the pruned step; every other node is one more
            # node of every replica step)
            grads = [core_ops.identity(t) if t.op.type == "Placeholder" else t
                     for gr, _ in pairs
                     for t in ((gr.values, gr.indices) if isinstance(gr, IndexedSlices)
                               else (gr,))]
            with control_dependencies(grads):
                step_now = local_step.read_value()  # a fresh read, after the gradients
            if self._fused and self._gd_rate is not None:  # the whole step: one kernel
                role, _ = sync_replicas_ops.replica_step_gd(
                    gate.handle, step_now, self._accumulators, [gr for gr, _ in pairs],
                    [v for _, v in pairs], self._global_step, self._gd_rate, self._k)
                applies = [role.op]
            elif self._fused:  # the arrival and every apply: one kernel (sync_replicas_ops)
                role, is_leader = sync_replicas_ops.arrive_apply(
                    gate.handle, step_now, self._accumulators, [gr for gr, _ in pairs])
                applies = [self._folded_sync(is_leader)]
            else:
                role, apply_step = gate.arrive(step_now)
                applies = self._applies(pairs, apply_step)
                if self._fold:  # the leader aggregates inside its own train step
                    from actorflow.ops import math_ops

                    with control_dependencies(applies):
                        applies = [self._folded_sync(math_ops.equal(role, LEADER))]
            with control_dependencies(applies):
                nxt = sync_replicas_ops.wait(gate.handle, step_now, role) if self._fused \
                    else gate.wait(step_now, role)
            with colocate_with(local_step.op):
                train_op = state_ops.assign(local_step, nxt, name=name or "train_op").op
        self._roles[train_op] = role
        self._last_train_op = train_op
        ops = g.get_collection_ref(GraphKeys.TRAIN_OP)
        if train_op not in ops:
            ops.append(train_op)
        return train_op

    def _applies(self, pairs: list, apply_step: Tensor) -> list[Operation]:
        """One apply_grad per accumulator, with the step the arrival gave (-1: dropped)."""
        applies = []
        for (gr, v), acc in zip(pairs, self._accumulators, strict=True):
            with colocate_with(v.op):
                if isinstance(gr, IndexedSlices):
                    shape = gr.dense_shape if gr.dense_shape is not None else \
                        convert_to_tensor(list(v.shape.as_list()), dtype=dtypes.int64)
                    applies.append(acc.apply_grad(gr.indices, gr.values, shape,
                                                  local_step=apply_step))
                else:
                    applies.append(acc.apply_grad(gr, local_step=apply_step))
        return applies

    def _can_fold(self, pairs: list, global_step: Any) -> bool:
        """Fold the leader's aggregation into its train step (by default where it can;
        `fold_sync=True` insists, False refuses): it needs every variable and the global step
        on one device (the cond that gates the aggregation is then placed there whole) and
        no `variable_averages`."""
        devices = {v.device for _, v in pairs} | {global_step.device}
        can = len(devices) == 1 and self._variable_averages is None
        if self._fold_request and not can:
            raise InvalidArgumentError(
                f"SyncReplicasOptimizer(fold_sync=True) needs every variable and the global "
                f"step on one device and no variable_averages; got devices {sorted(devices)}"
                f"{' and variable_averages' if self._variable_averages is not None else ''}: "
                f"pass fold_sync=False")
        return can if self._fold_request is None else bool(self._fold_request)

    def _aggregate(self, fused: bool = False) -> Operation:
        """The leader's aggregation (`sync_op`'s body): take_grad(k) on every accumulator,
        every update only once every average is in, then the release. `fused`: inside the
        folded step after a fused arrival, one `AccumulatorTakeGradients` for every
        accumulator (its outputs are all in at once: no identities to hold the updates)."""
        pairs, k = self._vars, self._k
        if fused:
            return self._update_and_release(sync_replicas_ops.take_gradients(
                self._accumulators, k), release=False)
        takes: list[Any] = []
        for (gr, v), acc in zip(pairs, self._accumulators, strict=True):
            with colocate_with(v.op):
                takes.append(acc.take_indexed_slices_grad(k) if isinstance(gr, IndexedSlices)
                             else acc.take_grad(k))
        flat = [t for x in takes for t in ((x.values, x.indices) if isinstance(
            x, IndexedSlices) else (x,))]
        with control_dependencies(flat):
            gated = []
            for x in takes:
                if isinstance(x, IndexedSlices):
                    gated.append(IndexedSlices(core_ops.identity(x.values),
                                               core_ops.identity(x.indices), x.dense_shape))
                else:
                    gated.append(core_ops.identity(x))
        return self._update_and_release(gated)

    def _update_and_release(self, gated: list[Any], release: bool = True) -> Operation:
        """The wrapped optimizer's update with the averages `gated`, the averages of
        `variable_averages` if any, then the gate's release (unless `release` is False: the
        fused wait releases, `sync_replicas_ops.wait`)."""
        pairs = self._vars
        update = self._opt.apply_gradients(
            [(t, v) for t, (_, v) in zip(gated, pairs, strict=True)],
            global_step=self._global_step)
        if self._variable_averages is not None:
            # TF1's order: the moving averages follow each aggregated update (here before
            # the release, so no replica starts the next step before they are in)
            avg = self._variables_to_average
            with control_dependencies([update]), name_scope(None):
                update = self._variable_averages.apply(
                    avg if avg is not None else [v for _, v in pairs])
        if not release:
            return update
        with control_dependencies([update]):
            return self._gate.release().op  # type: ignore[union-attr]

    def _folded_sync(self, is_leader: Tensor) -> Operation:
        """`_aggregate` under a cond on this replica's role: run by the leader's own train
        step on the PS, so a global step costs no second Session.run (a round trip to the PS
        from the leader's client) between the k-th gradient and the release."""
        from actorflow.ops import control_flow_ops

        with name_scope(None), control_dependencies(None):
            self._opt._create_slots([v for _, v in self._vars])  # outside the cond
        # on the gate's device, as every op of the cond: the caller's device scope (a
        # replica_device_setter's worker) cleared, or the cond's ops would ask for the worker
        # while their resource inputs pin them to the PS
        with device(None), colocate_with(is_leader.op):
            out = control_flow_ops.cond(is_leader, lambda: self._aggregate(self._fused),
                                        core_ops.no_op, name="leader_sync")
        return out if isinstance(out, Operation) else out.op

    def _build_shared(self, pairs: list, global_step: Any) -> None:
        self._vars = pairs
        self._global_step = global_step
        self._fold = self._can_fold(pairs, global_step)
        # folded with dense gradients only: the fused arrival and take (sync_replicas_ops)
        self._fused = self._fold and not any(isinstance(gr, IndexedSlices) for gr, _ in pairs)
        # ... and the leader's GradientDescent update in that kernel too: a plain
        # GradientDescentOptimizer with a constant rate, a global step variable
        lr = getattr(self._opt, "_hypers", {}).get("learning_rate")
        self._gd_rate = float(lr) if (
            self._fused and type(self._opt) is GradientDescentOptimizer
            and isinstance(lr, int | float) and isinstance(global_step, Variable)) else None
        with name_scope(self._uname):
            for gr, v in pairs:
                shared = f"{self._uname}/{v.op.name}/grad_accum"
                with colocate_with(v.op):
                    shape = tuple(v.shape.as_list())
                    if isinstance(gr, IndexedSlices):
                        acc: Any = SparseConditionalAccumulator(v.dtype, shape, shared_name=shared)
                    else:
                        acc = ConditionalAccumulator(v.dtype, shape, shared_name=shared)
                self._accumulators.append(acc)
            with colocate_with(global_step.op):
                self._gate = SyncGate(self._k, self._n, shared_name=f"{self._uname}/sync_gate",
                                      leader_timeout=self._leader_timeout)
                gstep = global_step.read_value()
            # the leader's aggregation as its own op (run by the hook unless folded)
            self.sync_op = self._aggregate()
            self.chief_init_op = core_ops.group(
                *[acc.set_global_step(gstep) for acc in self._accumulators],
                self._gate.set_step(gstep), name="chief_init")
            self.stop_op = core_ops.group(self._gate.close(),
                                          *[acc.close() for acc in self._accumulators],
                                          name="stop")
            self.leave_op = self._gate.leave()
            self._gate_counters = self._gate.counters()
            self._acc_counters = [acc.counters() for acc in self._accumulators]

    # -- TF1's API around the protocol ---------------------------------------------------------
    def role_of(self, train_op: Operation) -> Tensor:
        """The int32 role (0 stale, 1 contributor, 2 leader) the train op's arrival got."""
        return self._roles[train_op]

    def counters(self) -> dict[str, Tensor]:
        """Tensors: `gate` [step, late gradients, steps released, live replicas]; `accumulators`
        one [applied, dropped, taken, global_step] per variable."""
        self._check_built()
        return {"gate": self._gate_counters, "accumulators": self._acc_counters}

    def get_init_tokens_op(self, num_tokens: int = -1) -> Operation:
        """No tokens exist in this design (release is a broadcast); kept for TF1 code: the
        chief's shared-state initialisation."""
        self._check_built()
        assert self.chief_init_op is not None
        return self.chief_init_op

    def get_chief_queue_runner(self) -> Any:
        """None: no chief thread exists (the leader of each step aggregates it). TF1 code that
        starts the returned runner should skip a None."""
        self._check_built()
        return None

    def make_session_run_hook(self, is_chief: bool, num_tokens: int = -1,
                              train_op: Operation | None = None) -> SyncReplicasHook:
        self._check_built()
        return SyncReplicasHook(self, is_chief, train_op or self._last_train_op)

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        return self._opt.get_slot(var, name)

    def get_slot_names(self) -> list[str]:
        return self._opt.get_slot_names()

    def _check_built(self) -> None:
        if self._gate is None:
            raise InvalidArgumentError("call minimize/apply_gradients of the "
                                       "SyncReplicasOptimizer first")


class SyncReplicasHook:
    """The replica's side of the protocol, in the SessionRunHook shape (begin,
    after_create_session, before_run, after_run, end). `run(sess, fetches, feed_dict)` does
    before_run + run + after_run for a plain Session."""

    def __init__(self, opt: SyncReplicasOptimizer, is_chief: bool, train_op: Operation | None):
        if train_op is None:
            raise InvalidArgumentError("make_session_run_hook needs a train op built first")
        self._opt = opt
        self._is_chief = is_chief
        self._role = opt.role_of(train_op)
        self.leaders = 0   # steps this replica aggregated

    def begin(self) -> None:
        pass

    def after_create_session(self, session: Any, coord: Any = None) -> None:
        if self._is_chief:
            session.run(self._opt.chief_init_op)
        session.run(self._opt.local_step_init_op)

    def before_run(self, run_context: Any) -> SessionRunArgs:
        return SessionRunArgs(self._role)

    def after_run(self, run_context: Any, run_values: Any) -> None:
        if int(run_values.results) == LEADER:
            self.leaders += 1
            if not self._opt._fold:
                run_context.session.run(self._opt.sync_op)

    def end(self, session: Any) -> None:
        try:
            session.run(self._opt.leave_op)
        except OutOfRangeError:
            pass

    def run(self, session: Any, fetches: Any, feed_dict: dict | None = None) -> Any:
        """One train step on a plain Session: `fetches` and this replica's role; then the
        step's aggregation if this replica led it. Returns the fetched values."""
        out, role = session.run([fetches, self._role], feed_dict)
        if int(role) == LEADER:
            self.leaders += 1
            if not self._opt._fold:
                session.run(self._opt.sync_op)
        return out

    # -- the same on an async session (``async with af.Session() as s``): replicas as trio
    # tasks of one thread, so a release wakes the waiting replicas with no thread hop
    async def aafter_create_session(self, session: Any) -> None:
        if self._is_chief:
            await session.run(self._opt.chief_init_op)
        await session.run(self._opt.local_step_init_op)

    async def arun(self, session: Any, fetches: Any, feed_dict: dict | None = None) -> Any:
        out, role = await session.run([fetches, self._role], feed_dict)
        if int(role) == LEADER:
            self.leaders += 1
            if not self._opt._fold:
                await session.run(self._opt.sync_op)
        return out

    async def aend(self, session: Any) -> None:
        try:
            await session.run(self._opt.leave_op)
        except OutOfRangeError:
            pass
