"""Kernels of the accumulator ops (`devices.accumulators`). The handle ops find or create an
accumulator by `shared_name` in the device's container; `take` is asynchronous (a poll that
succeeds when enough gradients are in, else a `Waiter` woken by the apply that completes the
count, by `close`, or by the step's abort).

The waits here (take, and the sync gate's) are *watched* (`devices.waits`): besides the
awaitable kernel, each has a ``subscribe(ctx, done, *inputs)`` that the executor calls
instead of starting a task; ``done(outputs, error, resume)`` is called by the thread that
completes the wait (`_watch`).

At the end, the fused kernels of a folded synchronous replica step
(`actorflow.train.sync_replicas_ops`): the arrival with every apply
(`SyncReplicaArriveApply`), the leader's takes (`AccumulatorTakeGradients`), both plus the
leader's GradientDescent update and global step (`SyncReplicaStepGD`), and the wait in which
the leader releases its step (`SyncReplicaWait`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from devices.accumulators import Accumulator, SparseAccumulator
from devices.errors import InternalError, InvalidArgumentError
from devices.kernels.loop_loader import LoopLoader
from devices.kernels.registry import KernelContext, register_kernel
from devices.waits import Wait, Waiter

_CPU = ("CPU",)

Done = Callable[[Any, Exception | None, bool], None]


def _watch(ctx: Any, done: Done, res: Any, wait: Wait, payload: Any,
           outs: Callable[[Any], tuple]) -> None:
    """Register a watched waiter with `res` (a WaitList) whose completion calls
    ``done(outs(result), None, False)`` or ``done(None, error, False)`` (never run inline in
    the completer: the executor posts it, or hands it to the device's holder)."""
    def on_done(w: Waiter) -> None:
        if w.error is not None:
            done(None, w.error, False)
        else:
            done(outs(w.result), None, False)

    w = Waiter(wait, payload, on_done)
    res.register(w)
    w.watch(ctx, res.cancel)


def _handle_factory(cls: type[Accumulator]) -> Any:
    def factory(k: KernelContext) -> Any:
        container = k.attrs.get("container", "") or ""
        name = k.attrs.get("shared_name") or k.name
        dtype = np.dtype(k.attrs["dtype"].np)
        shape = k.attrs.get("shape")
        shape = None if shape is None else tuple(shape)
        reduction = k.attrs.get("reduction_type", "MEAN")
        mgr = k.device.resources
        dev = k.device.name
        cache: list[Any] = [-1, None]

        def compute() -> tuple:
            if cache[0] != mgr.generation:
                acc = mgr.lookup_or_create(
                    container, name, lambda: cls(name, dtype, shape, reduction, dev))
                if not isinstance(acc, Accumulator):
                    raise InvalidArgumentError(
                        f"resource '{name}' is a {type(acc).__name__}, not an accumulator; "
                        f"use another shared_name", node=k.name, device=dev)
                acc.check(cls.kind, dtype)
                cache[:] = [mgr.generation, acc]
            return (cache[1],)
        return compute
    return factory


register_kernel("ConditionalAccumulatorV2", stateful=True, device_types=_CPU)(
    _handle_factory(Accumulator))
register_kernel("SparseConditionalAccumulatorV2", stateful=True, device_types=_CPU)(
    _handle_factory(SparseAccumulator))


@register_kernel("AccumulatorApplyGradientV2", stateful=True, device_types=_CPU)
def _apply(k: KernelContext) -> Any:
    def compute(acc: Accumulator, local_step: Any, grad: Any) -> tuple:
        return (np.bool_(acc.apply(grad, int(local_step))),)
    return compute


@register_kernel("SparseAccumulatorApplyGradientV2", stateful=True, device_types=_CPU)
def _sparse_apply(k: KernelContext) -> Any:
    def compute(acc: Accumulator, local_step: Any, indices: Any, values: Any,
                shape: Any) -> tuple:
        return (np.bool_(acc.apply((indices, values, shape), int(local_step))),)
    return compute


def _take_factory(sparse: bool) -> Any:
    def factory(k: KernelContext) -> Any:
        def outs(r: Any) -> tuple:
            return tuple(r) if sparse else (r,)

        def poll(ctx: Any, acc: Accumulator, n: Any) -> tuple | None:
            r = acc.try_take(int(n))
            return None if r is None else outs(r)

        def wait(ctx: Any, acc: Accumulator) -> Wait:
            return Wait("take_grad", acc.describe(), k.name, k.device.name,
                        ctx.step_id if ctx else -1)

        async def compute(ctx: Any, acc: Accumulator, n: Any) -> tuple:
            w = Waiter(wait(ctx, acc), int(n))
            acc.register(w)
            return outs(await w.wait(ctx, acc.cancel))

        def subscribe(ctx: Any, done: Done, acc: Accumulator, n: Any) -> None:
            _watch(ctx, done, acc, wait(ctx, acc), int(n), outs)

        compute.poll = poll  # type: ignore[attr-defined]
        compute.subscribe = subscribe  # type: ignore[attr-defined]
        return compute
    return factory


register_kernel("AccumulatorTakeGradientV2", is_async=True, stateful=True, device_types=_CPU)(
    _take_factory(False))
register_kernel("SparseAccumulatorTakeGradientV2", is_async=True, stateful=True,
                device_types=_CPU)(_take_factory(True))


@register_kernel("AccumulatorSetGlobalStepV2", stateful=True, device_types=_CPU)
def _set_step(k: KernelContext) -> Any:
    def compute(acc: Accumulator, step: Any) -> tuple:
        acc.set_global_step(int(step))
        return ()
    return compute


@register_kernel("AccumulatorNumAccumulatedV2", stateful=True, device_types=_CPU)
def _num(k: KernelContext) -> Any:
    return lambda acc: (np.int32(acc.count),)


@register_kernel("AccumulatorCountersV2", stateful=True, device_types=_CPU)
def _counters(k: KernelContext) -> Any:
    """[applied, dropped (stale), taken, global_step] as int64."""
    return lambda acc: (np.array([acc.applied, acc.dropped, acc.taken, acc.global_step],
                                 dtype=np.int64),)


@register_kernel("AccumulatorCloseV2", stateful=True, device_types=_CPU)
def _close(k: KernelContext) -> Any:
    def compute(acc: Accumulator) -> tuple:
        acc.close()
        return ()
    return compute


# ---- the sync gate (synchronous replication's step barrier) -------------------------------
@register_kernel("SyncGateV2", stateful=True, device_types=_CPU)
def _gate_handle(k: KernelContext) -> Any:
    from devices.accumulators import SyncGate

    name = k.attrs.get("shared_name") or k.name
    agg, total = int(k.attrs["replicas_to_aggregate"]), int(k.attrs["total_num_replicas"])
    leader_timeout = float(k.attrs.get("leader_timeout", 60.0))
    mgr = k.device.resources
    dev = k.device.name
    cache: list[Any] = [-1, None]

    def compute() -> tuple:
        if cache[0] != mgr.generation:
            gate = mgr.lookup_or_create("", name, lambda: SyncGate(name, agg, total, dev,
                                                               leader_timeout))
            if not isinstance(gate, SyncGate):
                raise InvalidArgumentError(f"resource '{name}' is a {type(gate).__name__}, "
                                           f"not a SyncGate", node=k.name, device=dev)
            gate.check(agg, total)
            cache[:] = [mgr.generation, gate]
        return (cache[1],)
    return compute


@register_kernel("SyncGateArrive", stateful=True, device_types=_CPU)
def _gate_arrive(k: KernelContext) -> Any:
    """-> (role int32, the local step to apply gradients with: -1 when stale)."""
    def compute(gate: Any, local_step: Any) -> tuple:
        role = gate.arrive(int(local_step))
        return (np.int32(role), np.int64(int(local_step) if role else -1))
    return compute


@register_kernel("SyncGateRelease", stateful=True, device_types=_CPU)
def _gate_release(k: KernelContext) -> Any:
    return lambda gate: (np.int64(gate.release()),)


@register_kernel("SyncGateSetStep", stateful=True, device_types=_CPU)
def _gate_set(k: KernelContext) -> Any:
    def compute(gate: Any, step: Any) -> tuple:
        gate.set_step(int(step))
        return ()
    return compute


@register_kernel("SyncGateLeave", stateful=True, device_types=_CPU)
def _gate_leave(k: KernelContext) -> Any:
    def compute(gate: Any) -> tuple:
        gate.leave()
        return ()
    return compute


@register_kernel("SyncGateClose", stateful=True, device_types=_CPU)
def _gate_close(k: KernelContext) -> Any:
    def compute(gate: Any) -> tuple:
        gate.close()
        return ()
    return compute


@register_kernel("SyncGateCounters", stateful=True, device_types=_CPU)
def _gate_counters(k: KernelContext) -> Any:
    """int64 [step, late (dropped) gradients, steps released, live replicas]."""
    return lambda g: (np.array([g.step, g.late, g.steps_released, g.live], dtype=np.int64),)


@register_kernel("SyncGateWait", is_async=True, stateful=True, device_types=_CPU)
def _gate_wait(k: KernelContext) -> Any:
    return _gate_wait_factory(k, False)


@register_kernel("SyncReplicaWait", is_async=True, stateful=True, device_types=_CPU)
def _replica_wait(k: KernelContext) -> Any:
    """SyncGateWait whose LEADER releases the step (actorflow.train.sync_replicas_ops)."""
    return _gate_wait_factory(k, True)


def _gate_wait_factory(k: KernelContext, leader_releases: bool) -> Any:
    """After an arrival at `local_step` with `role`: a CONTRIBUTOR waits until the gate's step
    passes `local_step`; the LEADER (which releases the step itself) goes on at once with
    local_step + 1; a STALE replica catches up at once with the gate's step. Returns the step
    the replica computes next."""
    from devices.accumulators import LEADER, STALE

    def target(local: Any, role: Any) -> tuple[int, int]:
        return int(local) + 1, int(role)

    def poll(ctx: Any, gate: Any, local: Any, role: Any) -> tuple | None:
        want, r = target(local, role)
        if r == LEADER:
            if leader_releases:
                gate.release()
            return (np.int64(want),)
        if r != STALE and gate.several:  # another gradient for the same step
            return (np.int64(int(local)),)
        got = gate.try_wait(0 if r == STALE else want)
        return None if got is None else (np.int64(got),)

    async def compute(ctx: Any, gate: Any, local: Any, role: Any) -> tuple:
        w = Waiter(_step_wait(k, ctx, gate), target(local, role)[0])
        gate.register(w)
        return (np.int64(await w.wait(ctx, gate.cancel)),)

    def subscribe(ctx: Any, done: Done, gate: Any, local: Any, role: Any) -> None:
        _watch(ctx, done, gate, _step_wait(k, ctx, gate), target(local, role)[0], _step)

    compute.poll = poll  # type: ignore[attr-defined]
    compute.subscribe = subscribe  # type: ignore[attr-defined]
    return compute


@register_kernel("SyncGateWaitFor", is_async=True, stateful=True, device_types=_CPU)
def _gate_wait_for(k: KernelContext) -> Any:
    """Block until the gate's step >= `target` (a barrier / bounded staleness in graph code);
    returns the step."""
    def poll(ctx: Any, gate: Any, want: Any) -> tuple | None:
        got = gate.try_wait(int(want))
        return None if got is None else (np.int64(got),)

    async def compute(ctx: Any, gate: Any, want: Any) -> tuple:
        w = Waiter(_step_wait(k, ctx, gate), int(want))
        gate.register(w)
        return (np.int64(await w.wait(ctx, gate.cancel)),)

    def subscribe(ctx: Any, done: Done, gate: Any, want: Any) -> None:
        _watch(ctx, done, gate, _step_wait(k, ctx, gate), int(want), _step)

    compute.poll = poll  # type: ignore[attr-defined]
    compute.subscribe = subscribe  # type: ignore[attr-defined]
    return compute


def _step_wait(k: KernelContext, ctx: Any, gate: Any) -> Wait:
    return Wait("wait_for_step", gate.describe(), k.name, k.device.name,
                ctx.step_id if ctx else -1)


def _step(result: Any) -> tuple:
    return (np.int64(result),)


# ---- the fused ops of a folded synchronous replica step (actorflow.train.sync_replicas_ops) --
@register_kernel("SyncReplicaArriveApply", stateful=True, device_types=_CPU)
def _arrive_apply(k: KernelContext) -> Any:
    """(gate, local_step, n accumulators, n gradients) -> (role, is_leader): every gradient
    checked against its accumulator, then the arrival and every apply in one call (a step's
    k arrivals have applied their gradients before its leader aggregates)."""
    from devices.accumulators import LEADER

    n = int(k.attrs["n"])
    leader, other = np.bool_(True), np.bool_(False)

    def compute(gate: Any, local_step: Any, *rest: Any) -> tuple:
        accs, grads = rest[:n], [acc.convert(g) for acc, g in zip(rest[:n], rest[n:],
                                                                     strict=True)]
        step = int(local_step)
        role = gate.arrive(step)
        if not role:
            step = -1  # STALE: each accumulator drops it (and counts it)
        for acc, g in zip(accs, grads, strict=True):
            acc.apply(g, step, True)
        return (np.int32(role), leader if role == LEADER else other)
    return compute


def _take_all(accs: Any, need: int) -> tuple:
    """Every accumulator's average of `need` gradients, or (checked first, so none is taken)
    an error naming one that is short."""
    _check_all(accs, need)
    return tuple(acc.take_now(need) for acc in accs)


def _check_all(accs: Any, need: int) -> None:
    """An error naming an accumulator that holds fewer than `need` gradients, if one does."""
    for acc in accs:
        if acc.count < need and not acc.closed:
            raise InternalError(
                f"{acc.describe()} holds fewer than the {need} gradients its step's "
                f"leader takes: a gradient was applied to it outside the fused "
                f"arrival (SyncReplicaArriveApply) of its SyncReplicasOptimizer")


@register_kernel("AccumulatorTakeGradients", stateful=True, device_types=_CPU)
def _take_gradients(k: KernelContext) -> Any:
    """(n accumulators, num_required) -> their n averages, taken together; never blocks (see
    `actorflow.train.sync_replicas_ops`): fails naming an accumulator that is short."""
    return lambda *args: _take_all(args[:-1], int(args[-1]))


MEAN_UPDATE_LOOP = LoopLoader("devices.kernels.mean_update_loop", "scaled_mean_difference")
_COMPILED = (np.dtype(np.float32), np.dtype(np.float64))


@register_kernel("SyncReplicaStepGD", stateful=True, device_types=_CPU)
def _replica_step_gd(k: KernelContext) -> Any:
    """(gate, local_step, n accumulators, n gradients, n variables, global_step) -> (role,
    is_leader): `SyncReplicaArriveApply`, then for the LEADER the whole aggregation of a
    GradientDescent step: every average taken (all of them, or, when one is short, none),
    ``var -= learning_rate * average``, and ``global_step += 1`` (the release is the wait's,
    after it). The update of a dense float32/float64 accumulator's variable of its shape is
    one compiled pass over its sum (`devices.kernels.mean_update_loop`: the mean, the
    product and the difference rounded as the three ops round them, so the same bits), once
    that is loaded off this thread (`LoopLoader`); until then, and for any other, the mean
    and ResourceApplyGradientDescent's own kernel."""
    from devices.kernels.state import _apply_gd

    n, need, lr = int(k.attrs["n"]), int(k.attrs["num_required"]), k.attrs["learning_rate"]
    arrive = _arrive_apply(k)
    gd = _apply_gd(k)
    one = np.int64(1)
    alphas: dict[Any, Any] = {}
    loader = MEAN_UPDATE_LOOP
    loader.start()
    ndarray = np.ndarray

    def alpha_of(dtype: Any) -> Any:
        alpha = alphas.get(dtype)
        if alpha is None:
            alpha = alphas[dtype] = np.asarray(lr, dtype=dtype)
            alphas[(dtype, float)] = float(alpha)  # its value exactly (the loop's argument)
        return alpha

    def update(loop: Any, v: Any, acc: Any, total: Any, count: int) -> None:
        mean = acc.reduction == "MEAN"
        value = v.value
        if (loop is not None and type(value) is ndarray and value.dtype in _COMPILED
                and total.dtype == value.dtype and total.shape == value.shape
                and value.flags.c_contiguous and total.flags.c_contiguous):
            flat = total.reshape(-1)
            by = float(count) if mean else 1.0
            alpha_of(value.dtype)
            alpha = alphas[(value.dtype, float)]

            def step(old: Any, _: Any, out: Any) -> Any:
                # in place (out is old), or into the variable's other buffer (empty_like of
                # a C-contiguous value: C-contiguous too)
                loop(old.reshape(-1), flat, by, alpha, out.reshape(-1))
                return out
            v.update(step, None)
            return
        gd(v, alpha_of(v.dtype), acc.mean(total, count) if mean else total)

    def compute(gate: Any, local_step: Any, *rest: Any) -> tuple:
        accs, variables, gstep = rest[:n], rest[2 * n:3 * n], rest[3 * n]
        out = arrive(gate, local_step, *rest[:2 * n])
        if out[1]:
            if all(type(acc) is Accumulator for acc in accs):
                _check_all(accs, need)  # all taken, or (one short) none
                loop = loader.fn
                for v, acc, (total, count) in zip(
                        variables, accs, [acc.take_sum_now(need) for acc in accs],
                        strict=True):
                    update(loop, v, acc, total, count)
            else:
                for v, avg in zip(variables, _take_all(accs, need), strict=True):
                    gd(v, alpha_of(v.dtype), avg)
            gstep.update(np.add, one)
        return out
    return compute
