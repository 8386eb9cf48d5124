"""Kernels of the state ops: variable handles, reads, assignments, scatters and the fused
optimizer updates. Every one is stateful (never merged, folded or moved to a worker thread:
updates to one variable must run one at a time on the device actor).

Invariants they keep (see `devices.resources`):
- a variable's value owns its memory (`AssignVariableOp` copies in; updates go through
  `writable()` or `update()`, which write another buffer when anyone else still holds the
  value);
- a read returns a read-only *view* of the value: zero-copy, and the view keeps the value's
  refcount up while a consumer or a fetched result holds it, so the next update copies
  instead of changing the snapshot under its holder. On a GPU the value itself is returned.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.loop_loader import LoopLoader
from devices.kernels.registry import KernelContext, register_kernel
from devices.resources import ResourceVariable


def _state_kernel(op: str) -> Any:
    return register_kernel(op, stateful=True)


# ---- handles and reads ----------------------------------------------------------------------
@_state_kernel("VarHandleOp")
def _var_handle(k: KernelContext) -> Any:
    container = k.attrs.get("container", "") or ""
    name = k.attrs.get("shared_name") or k.name
    dtype = k.attrs["dtype"]
    np_dtype = np.dtype(dtype.np)
    shape = k.attrs.get("shape")
    shape = None if shape is None else tuple(shape)
    mgr = k.device.resources
    dev_name = k.device.name

    def create() -> ResourceVariable:
        return ResourceVariable(name, np_dtype, shape, dev_name)

    def fetch() -> ResourceVariable:
        var = mgr.lookup_or_create(container, name, create)
        if not isinstance(var, ResourceVariable) or var.dtype != np_dtype:
            what = (f"a variable of dtype {var.dtype}" if isinstance(var, ResourceVariable)
                    else f"a {type(var).__name__}")
            raise InvalidArgumentError(
                f"resource '{name}' in container '{container or '<default>'}' is {what}, "
                f"but this handle expects a {dtype.name} variable; give the variable another "
                f"name or reset the container", node=k.name, device=dev_name)
        return var

    cache: list[Any] = [-1, None]  # [generation of the container manager, the variable]

    def compute() -> tuple[ResourceVariable]:
        if cache[0] != mgr.generation:
            cache[1] = fetch()
            cache[0] = mgr.generation
        return (cache[1],)
    return compute


@_state_kernel("ReadVariableOp")
def _read_variable(k: KernelContext) -> Any:
    return lambda h: (h.snapshot(),)


@_state_kernel("ResourceGather")
def _resource_gather(k: KernelContext) -> Any:
    """Rows of a variable read when the indices are there (the rewrite of ReadVariableOp ->
    GatherV2): a step waiting for its indices holds no snapshot of the table, so updates by
    other steps meanwhile stay in place instead of copying the whole table."""
    from devices.kernels.index import gather_factory

    take = gather_factory(k)

    def compute(h: ResourceVariable, indices: Any) -> tuple[Any]:
        (rows,) = take(h.snapshot(), indices)
        if rows.base is not None:  # a view of the table (one row): keep nothing of it
            rows = rows.copy()
        return (rows,)
    return compute


@_state_kernel("VarIsInitializedOp")
def _var_is_initialized(k: KernelContext) -> Any:
    yes, no = np.array(True), np.array(False)
    yes.setflags(write=False)
    no.setflags(write=False)
    return lambda h: (yes if h.value is not None else no,)


# ---- assignments ----------------------------------------------------------------------------
@_state_kernel("AssignVariableOp")
def _assign_variable(k: KernelContext) -> Any:
    xp = k.xp
    validate = bool(k.attrs.get("validate_shape", True))

    def compute(h: ResourceVariable, value: Any) -> tuple[Any]:
        if not validate and h.value is not None and h.value.shape != value.shape:
            h.value = None  # the variable changes shape: drop the old buffer
        if not validate and h.shape is not None and tuple(h.shape) != tuple(value.shape):
            h.shape = None  # and its declared shape (TF's validate_shape=False)
        h.assign_copy(value, xp)
        return (h.snapshot(),)
    return compute


def _in_place(ufunc_name: str) -> Any:
    def factory(k: KernelContext) -> Any:
        f = getattr(k.xp, ufunc_name)

        def compute(h: ResourceVariable, delta: Any) -> tuple[Any]:
            h.update(f, delta)
            return (h.snapshot(),)
        return compute
    return factory


_state_kernel("AssignAddVariableOp")(_in_place("add"))
_state_kernel("AssignSubVariableOp")(_in_place("subtract"))


# ---- scatters -------------------------------------------------------------------------------
def _check_indices(xp: Any, h: ResourceVariable, buf: Any, indices: Any, updates: Any) -> None:
    rows = buf.shape[0]
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= rows:
            bad = lo if lo < 0 else hi
            pos = int(xp.argmax(indices == bad))
            raise InvalidArgumentError(
                f"indices[{pos}] = {bad} is not in [0, {rows}) for variable '{h.name}' of "
                f"shape {tuple(buf.shape)}")
    want = tuple(indices.shape) + tuple(buf.shape[1:])
    if tuple(updates.shape) != want:
        raise InvalidArgumentError(
            f"scatter into variable '{h.name}' of shape {tuple(buf.shape)} with indices of "
            f"shape {tuple(indices.shape)} needs updates of shape {want}, got "
            f"{tuple(updates.shape)}")


def _scatter_add_fn(xp: Any) -> Any:
    """(buf, indices, updates) -> None: buf[indices] += updates, repeated indices summed."""
    if xp is np:
        return np.add.at
    import cupyx  # noqa: PLC0415 - only on GPU devices

    return cupyx.scatter_add


@_state_kernel("ResourceScatterAdd")
def _scatter_add(k: KernelContext) -> Any:
    xp, add_at = k.xp, _scatter_add_fn(k.xp)

    def compute(h: ResourceVariable, indices: Any, updates: Any) -> tuple[Any]:
        buf = h.writable()
        _check_indices(xp, h, buf, indices, updates)
        add_at(buf, indices, updates)
        return (h.snapshot(),)
    return compute


@_state_kernel("ResourceScatterSub")
def _scatter_sub(k: KernelContext) -> Any:
    xp, add_at = k.xp, _scatter_add_fn(k.xp)

    def compute(h: ResourceVariable, indices: Any, updates: Any) -> tuple[Any]:
        buf = h.writable()
        _check_indices(xp, h, buf, indices, updates)
        add_at(buf, indices, -updates)
        return (h.snapshot(),)
    return compute


@_state_kernel("ResourceScatterUpdate")
def _scatter_update(k: KernelContext) -> Any:
    xp = k.xp

    def compute(h: ResourceVariable, indices: Any, updates: Any) -> tuple[Any]:
        buf = h.writable()
        _check_indices(xp, h, buf, indices, updates)
        buf[indices] = updates
        return (h.snapshot(),)
    return compute


_COMPILED_UPDATE = (np.dtype(np.float32), np.dtype(np.float64))
UPDATE_LOOP = LoopLoader("devices.kernels.update_loops", "subtract_scaled")


# ---- fused optimizer updates (dense) --------------------------------------------------------
# Each follows TF's kernel of the same name, updating the variable and its slots in place.
@_state_kernel("ResourceApplyGradientDescent")
def _apply_gd(k: KernelContext) -> Any:
    """w -= alpha * delta. On a CPU a large float32/float64 update is one compiled pass
    (`devices.kernels.update_loops`, loaded in the background: 12 bytes an element, as a
    hand-written ``w -= dw``); other updates are two ufuncs, in blocks that fit in cache
    when large and both C-contiguous. (NumPy only: SciPy's saxpy would be one pass, but its
    own OpenBLAS threads then spin against NumPy's during the matmuls, tripling a step's CPU
    time.)"""
    xp = k.xp
    block = 32768

    def compute(var: ResourceVariable, alpha: Any, delta: Any) -> tuple[()]:
        w = var.writable()
        if xp is not np or w.size <= block:
            xp.subtract(w, xp.multiply(delta, alpha), out=w)
            return ()
        loop = UPDATE_LOOP.fn
        if loop is None:
            UPDATE_LOOP.start()  # NumPy's blocks below until it is loaded
        elif (w.dtype in _COMPILED_UPDATE and delta.dtype == w.dtype
              and w.flags.c_contiguous and delta.flags.c_contiguous and w.shape == delta.shape):
            loop(w.reshape(-1), delta.reshape(-1), w.dtype.type(alpha))
            return ()
        if not (w.flags.c_contiguous and delta.flags.c_contiguous):
            xp.subtract(w, xp.multiply(delta, alpha), out=w)
            return ()
        wf, df = w.reshape(-1), delta.reshape(-1)
        tmp = np.empty(block, np.result_type(delta, alpha))
        for lo in range(0, wf.size, block):
            hi = min(lo + block, wf.size)
            t = np.multiply(df[lo:hi], alpha, out=tmp[:hi - lo])
            np.subtract(wf[lo:hi], t, out=wf[lo:hi])
        return ()
    return compute


@_state_kernel("ResourceApplyMomentum")
def _apply_momentum(k: KernelContext) -> Any:
    xp = k.xp
    nesterov = bool(k.attrs.get("use_nesterov", False))

    def compute(var: ResourceVariable, accum: ResourceVariable, lr: Any, grad: Any,
                momentum: Any) -> tuple[()]:
        w, a = var.writable(), accum.writable()
        xp.multiply(a, momentum, out=a)
        xp.add(a, grad, out=a)
        if nesterov:
            xp.subtract(w, grad * lr + a * (momentum * lr), out=w)
        else:
            xp.subtract(w, a * lr, out=w)
        return ()
    return compute


@_state_kernel("ResourceApplyAdagrad")
def _apply_adagrad(k: KernelContext) -> Any:
    xp = k.xp

    def compute(var: ResourceVariable, accum: ResourceVariable, lr: Any,
                grad: Any) -> tuple[()]:
        w, a = var.writable(), accum.writable()
        xp.add(a, grad * grad, out=a)
        xp.subtract(w, grad * lr / xp.sqrt(a), out=w)
        return ()
    return compute


@_state_kernel("ResourceApplyRMSProp")
def _apply_rmsprop(k: KernelContext) -> Any:
    xp = k.xp

    def compute(var: ResourceVariable, ms: ResourceVariable, mom: ResourceVariable, lr: Any,
                rho: Any, momentum: Any, epsilon: Any, grad: Any) -> tuple[()]:
        w, s, m = var.writable(), ms.writable(), mom.writable()
        xp.add(s, (grad * grad - s) * (1 - rho), out=s)
        xp.multiply(m, momentum, out=m)
        xp.add(m, grad * lr / xp.sqrt(s + epsilon), out=m)
        xp.subtract(w, m, out=w)
        return ()
    return compute


@_state_kernel("ResourceApplyCenteredRMSProp")
def _apply_centered_rmsprop(k: KernelContext) -> Any:
    xp = k.xp

    def compute(var: ResourceVariable, mg: ResourceVariable, ms: ResourceVariable,
                mom: ResourceVariable, lr: Any, rho: Any, momentum: Any, epsilon: Any,
                grad: Any) -> tuple[()]:
        w, g, s, m = var.writable(), mg.writable(), ms.writable(), mom.writable()
        xp.add(s, (grad * grad - s) * (1 - rho), out=s)
        xp.add(g, (grad - g) * (1 - rho), out=g)
        xp.multiply(m, momentum, out=m)
        xp.add(m, grad * lr / xp.sqrt(s - g * g + epsilon), out=m)
        xp.subtract(w, m, out=w)
        return ()
    return compute


@_state_kernel("ResourceApplyAdam")
def _apply_adam(k: KernelContext) -> Any:
    xp = k.xp

    def compute(var: ResourceVariable, m: ResourceVariable, v: ResourceVariable,
                beta1_power: Any, beta2_power: Any, lr: Any, beta1: Any, beta2: Any,
                epsilon: Any, grad: Any) -> tuple[()]:
        w, mm, vv = var.writable(), m.writable(), v.writable()
        lr_t = lr * xp.sqrt(1 - beta2_power) / (1 - beta1_power)
        xp.add(mm, (grad - mm) * (1 - beta1), out=mm)
        xp.add(vv, (grad * grad - vv) * (1 - beta2), out=vv)
        xp.subtract(w, mm * lr_t / (xp.sqrt(vv) + epsilon), out=w)
        return ()
    return compute


# ---- fused optimizer updates (sparse: rows of an IndexedSlices gradient) --------------------
# Repeated indices are summed first (TF1's optimizers deduplicate before the sparse kernel),
# then each touched row is updated once; rows not in `indices` keep their slots unchanged.
def _dedup(xp: Any, add_at: Any, grad: Any, indices: Any) -> tuple[Any, Any]:
    indices = indices.reshape(-1)
    grad = grad.reshape((indices.shape[0],) + tuple(grad.shape[indices.ndim:]))
    uniq, inverse = xp.unique(indices, return_inverse=True)
    if uniq.shape[0] == indices.shape[0]:
        return grad, indices
    summed = xp.zeros((uniq.shape[0],) + tuple(grad.shape[1:]), dtype=grad.dtype)
    add_at(summed, inverse.reshape(-1), grad)
    return summed, uniq


def _sparse_prologue(xp: Any, add_at: Any, var: ResourceVariable, grad: Any,
                     indices: Any) -> tuple[Any, Any, Any]:
    w = var.writable()
    want = tuple(indices.shape) + tuple(w.shape[1:])
    if tuple(grad.shape) != want:
        raise InvalidArgumentError(
            f"sparse gradient of shape {tuple(grad.shape)} with indices of shape "
            f"{tuple(indices.shape)} does not match variable '{var.name}' of shape "
            f"{tuple(w.shape)} (want {want})")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= w.shape[0]):
        raise InvalidArgumentError(
            f"gradient indices out of range [0, {w.shape[0]}) for variable '{var.name}'")
    g, idx = _dedup(xp, add_at, grad, indices)
    return w, g, idx


@_state_kernel("ResourceSparseApplyMomentum")
def _sparse_momentum(k: KernelContext) -> Any:
    xp, add_at = k.xp, _scatter_add_fn(k.xp)
    nesterov = bool(k.attrs.get("use_nesterov", False))

    def compute(var: ResourceVariable, accum: ResourceVariable, lr: Any, grad: Any,
                indices: Any, momentum: Any) -> tuple[()]:
        w, g, idx = _sparse_prologue(xp, add_at, var, grad, indices)
        a = accum.writable()
        a_rows = a[idx] * momentum + g
        a[idx] = a_rows
        if nesterov:
            w[idx] -= g * lr + a_rows * (momentum * lr)
        else:
            w[idx] -= a_rows * lr
        return ()
    return compute


@_state_kernel("ResourceSparseApplyAdagrad")
def _sparse_adagrad(k: KernelContext) -> Any:
    xp, add_at = k.xp, _scatter_add_fn(k.xp)

    def compute(var: ResourceVariable, accum: ResourceVariable, lr: Any, grad: Any,
                indices: Any) -> tuple[()]:
        w, g, idx = _sparse_prologue(xp, add_at, var, grad, indices)
        a = accum.writable()
        a_rows = a[idx] + g * g
        a[idx] = a_rows
        w[idx] -= g * lr / xp.sqrt(a_rows)
        return ()
    return compute


@_state_kernel("ResourceSparseApplyRMSProp")
def _sparse_rmsprop(k: KernelContext) -> Any:
    xp, add_at = k.xp, _scatter_add_fn(k.xp)

    def compute(var: ResourceVariable, ms: ResourceVariable, mom: ResourceVariable, lr: Any,
                rho: Any, momentum: Any, epsilon: Any, grad: Any, indices: Any) -> tuple[()]:
        w, g, idx = _sparse_prologue(xp, add_at, var, grad, indices)
        s, m = ms.writable(), mom.writable()
        s_rows = s[idx] + (g * g - s[idx]) * (1 - rho)
        m_rows = m[idx] * momentum + g * lr / xp.sqrt(s_rows + epsilon)
        s[idx] = s_rows
        m[idx] = m_rows
        w[idx] -= m_rows
        return ()
    return compute


@_state_kernel("ResourceSparseApplyCenteredRMSProp")
def _sparse_centered_rmsprop(k: KernelContext) -> Any:
    xp, add_at = k.xp, _scatter_add_fn(k.xp)

    def compute(var: ResourceVariable, mg: ResourceVariable, ms: ResourceVariable,
                mom: ResourceVariable, lr: Any, rho: Any, momentum: Any, epsilon: Any,
                grad: Any, indices: Any) -> tuple[()]:
        w, g, idx = _sparse_prologue(xp, add_at, var, grad, indices)
        gm, s, m = mg.writable(), ms.writable(), mom.writable()
        s_rows = s[idx] + (g * g - s[idx]) * (1 - rho)
        g_rows = gm[idx] + (g - gm[idx]) * (1 - rho)
        m_rows = m[idx] * momentum + g * lr / xp.sqrt(s_rows - g_rows * g_rows + epsilon)
        s[idx], gm[idx], m[idx] = s_rows, g_rows, m_rows
        w[idx] -= m_rows
        return ()
    return compute


@_state_kernel("ResourceSparseApplyAdam")
def _sparse_adam(k: KernelContext) -> Any:
    """TF1's sparse Adam: the moments decay on every row, the gradient lands on its rows, and
    every row of the variable moves (the same result as dense Adam on the densified gradient)."""
    xp, add_at = k.xp, _scatter_add_fn(k.xp)

    def compute(var: ResourceVariable, m: ResourceVariable, v: ResourceVariable,
                beta1_power: Any, beta2_power: Any, lr: Any, beta1: Any, beta2: Any,
                epsilon: Any, grad: Any, indices: Any) -> tuple[()]:
        w, g, idx = _sparse_prologue(xp, add_at, var, grad, indices)
        mm, vv = m.writable(), v.writable()
        lr_t = lr * xp.sqrt(1 - beta2_power) / (1 - beta1_power)
        xp.multiply(mm, beta1, out=mm)
        mm[idx] += g * (1 - beta1)
        xp.multiply(vv, beta2, out=vv)
        vv[idx] += g * g * (1 - beta2)
        xp.subtract(w, mm * lr_t / (xp.sqrt(vv) + epsilon), out=w)
        return ()
    return compute


# ---- versions and staleness (issue 17; see devices.resources) -------------------------------
def _i64(x: int) -> np.ndarray:
    return np.array(x, dtype=np.int64)


@_state_kernel("VariableVersion")
def _variable_version(k: KernelContext) -> Any:
    return lambda h: (_i64(h.version),)


@_state_kernel("SnapshotVersion")
def _snapshot_version(k: KernelContext) -> Any:
    """The version a read of the variable (its snapshot, input 1) was taken at."""
    return lambda h, snap: (_i64(h.version_of(snap)),)


@_state_kernel("ReadVariableWithVersion")
def _read_with_version(k: KernelContext) -> Any:
    """The value and the version it is at, taken together (one kernel: no update between)."""
    return lambda h: (h.snapshot(), _i64(h.version))


@_state_kernel("VariableStaleness")
def _variable_staleness(k: KernelContext) -> Any:
    """staleness = the variable's version now - `read_version`, for the update about to be
    applied (it lands at version now + 1); counted, and logged when the variable records."""
    def compute(h: ResourceVariable, read_version: Any, step: Any, task: Any,
                incarnation: Any = -1) -> tuple[Any]:
        read = int(read_version)
        if read > h.version or read < 0:
            raise InvalidArgumentError(
                f"read version {read} of variable '{h.name}' is not in [0, {h.version}]: "
                f"pass the version read from this variable (af.train.read_with_version)")
        s = h.version - read
        h.staleness.add(s)
        if h.update_log is not None:
            h.update_log.append((int(task), int(step), read, h.version + 1, int(incarnation)))
        return (_i64(s),)
    return compute


# this process's incarnation when its devices were not given the task's (in-process sessions)
_PROCESS_INCARNATION = secrets.randbits(63) or 1


@_state_kernel("TaskIncarnation")
def _task_incarnation(k: KernelContext) -> Any:
    """The incarnation of the task this device lives in (the worker service's, as int64 bits:
    `actorflow status` shows the same id), or this process's: who sent an update (issue 17)."""
    inc = getattr(k.device, "incarnation", None) or _PROCESS_INCARNATION
    value = _i64(inc - (1 << 64) if inc >= 1 << 63 else inc)
    return lambda: (value,)


@_state_kernel("StalenessStats")
def _staleness_stats(k: KernelContext) -> Any:
    """int64 [count, sum, max, version, hist...] of a variable's staleness counters."""
    def compute(h: ResourceVariable) -> tuple[Any]:
        st = h.staleness
        return (np.array([st.count, st.total, st.max, h.version, *st.hist], dtype=np.int64),)
    return compute


@_state_kernel("VariableUpdateLog")
def _variable_update_log(k: KernelContext) -> Any:
    """The variable's recorded updates as int64 [n, 5] rows (task, step, read version, applied
    version, the sender's incarnation), oldest first; attr `enable` turns recording on (True)
    or off (False) afterwards, or leaves it (absent)."""
    enable = k.attrs.get("enable")

    def compute(h: ResourceVariable) -> tuple[Any]:
        rows = np.array(h.update_log or [], dtype=np.int64).reshape(-1, 5)
        if enable is True:
            h.update_log = h.update_log if h.update_log is not None else []
        elif enable is False:
            h.update_log = None
        return (rows,)
    return compute
