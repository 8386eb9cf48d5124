"""Sessions: run fetches of a graph on the local runtime, from plain Python or from trio.

Design
------
`Session.run(fetches, feed_dict)` looks up a `_Plan` for the *signature* of the call — the
fetch structure and the fed tensors — and compiles one on a miss (export the graph, then
the runtime's `compile`: prune, rewrite, place, partition, compile). A plan knows how
to convert feeds (dtype and shape checked against each fed tensor; whether a SparseTensor key
stands for its three component tensors, decided once per plan), and how to rebuild the
nested fetch structure from the step's flat results. Plans are cached per session; the graph
may grow meanwhile (existing plans stay valid, as TF's Extend).

The runtime behind a session is a `scheduler.runtime_api.Runtime`: this process's devices
(`LocalRuntime`) or, for a target ``af://host:port``, a cluster's (`DistributedRuntime`).
One implementation of `run`: `_begin` (plan, feeds, `RunOptions` as the step's timeout, a
`StepTrace` of its trace level when run metadata is asked for), the runtime's step, `_end`
(run metadata, the fetch structure). The async API awaits the runtime's async step (`arun`)
in the caller's trio nursery, which hosts the devices; the sync API is the thin wrapper
around it that hosts them on a thread of their own and blocks on each step (`run`).
`RunOptions.timeout_in_ms` fails a step with DeadlineExceededError and cancels it on every
device and task; the session stays usable. An async step whose plan was just compiled first
imports, on a worker thread, the compiled loops its kernels load on their first call
(`devices.kernels.loop_loader.import_first_use`): they would stall the caller's loop inside
the step (~0.9 s; a daemon does the same when a graph is registered).

    with af.Session() as s:                       # sync
        s.run(train_op, {x: batch})
    async with af.Session() as s:                 # trio
        await s.run(train_op, {x: batch})
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import trio

from actorflow import shapes
from actorflow.config import ConfigProto, NodeExecStats, RunMetadata, RunOptions, StepStats
from actorflow.graph import Graph, Operation, Tensor, get_default_graph
from actorflow.indexed_slices import IndexedSlices, IndexedSlicesValue
from actorflow.sparse_tensor import SparseTensor, SparseTensorValue, expand_sparse_feeds
from devices import dtypes
from devices.errors import FailedPreconditionError, InvalidArgumentError
from devices.kernels.loop_loader import first_use_pending, import_first_use
from scheduler import tracing
from scheduler.cost_model import CostModel
from scheduler.graphdef import GraphDef, NodeDef
from scheduler.runtime import LocalRuntime
from scheduler.runtime_api import Runtime
from scheduler.step_trace import StepTrace

_default_session: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "af_default_session", default=None)


def get_default_session() -> Session:
    s = _default_session.get()
    if s is None:
        raise FailedPreconditionError(
            "no default session: use 'with af.Session() as s:' or pass session= explicitly")
    return s


class _Plan:
    """How to run one call signature: the compiled step, feed checks and result layout."""

    __slots__ = ("step", "feed_checks", "feed_columns", "build", "placement", "sparse")

    def __init__(self, step: Any,
                 feed_checks: list[tuple[Tensor, np.dtype, shapes.Shape]],
                 build: Callable[[list[Any]], Any]):
        self.step = step
        self.feed_checks = feed_checks
        # the checks as columns (tensors, dtypes, shapes, and the scalar type a Python number
        # fed to a 0-d float tensor becomes, else None), for one map over the fed values
        self.feed_columns = tuple(zip(*feed_checks, strict=True)) if feed_checks else ((),) * 3
        self.feed_columns += (tuple(
            dt.type if dt.kind == "f" and (shape is None or shape == ()) else None
            for _, dt, shape in feed_checks),)
        self.build = build
        self.sparse = False  # a SparseTensor among the fed keys (expanded per call)


class Session:
    """A connection to the runtime for one graph. Closing it stops its devices."""

    def __init__(self, target: str = "", graph: Graph | None = None,
                 config: ConfigProto | None = None):
        self.graph = graph or get_default_graph()
        self.config = config or ConfigProto()
        if target:  # a cluster: the master runs here, the steps on its tasks
            from actorflow.server import connect_runtime

            self._runtime: Runtime = connect_runtime(target, self.config)
        else:
            self._runtime = LocalRuntime(self.config.to_runtime())
        self._plans: dict[Any, _Plan] = {}
        # the last plan of an immutable fetch (a tensor, an op, a name) and its feed keys:
        # a repeated call finds it by identity, without hashing a structure key
        self._last_plan: tuple[Any, tuple, _Plan] | None = None
        self._cost_model = CostModel()  # refined by the timings of traced runs
        self._compile_lock = threading.Lock()
        self._exported: tuple[int, GraphDef, dict[str, NodeDef]] | None = None
        self._started = False
        self._mode: str | None = None
        self._token: contextvars.Token | None = None
        self._nursery_cm: Any = None
        self.closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Session:
        self._ensure_thread()
        self._token = _default_session.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            _default_session.reset(self._token)
            self._token = None
        self.close()

    def as_default(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def cm():  # type: ignore[no-untyped-def]
            token = _default_session.set(self)
            try:
                yield self
            finally:
                _default_session.reset(token)
        return cm()

    def _ensure_thread(self) -> None:
        if self._started:
            return
        with self._compile_lock:
            if not self._started:
                self._runtime.start_in_thread()
                self._mode = "sync"
                self._started = True

    async def __aenter__(self) -> AsyncSession:
        if self._started:
            raise FailedPreconditionError("this session is already running; a Session is used "
                                          "either with 'with' or with 'async with', once")
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        try:
            await nursery.start(self._runtime.serve)
        except BaseException as e:
            self._runtime.closed = True
            await self._nursery_cm.__aexit__(type(e), e, e.__traceback__)
            raise
        self._mode = "async"
        self._started = True
        return AsyncSession(self)

    async def __aexit__(self, *exc: Any) -> bool | None:
        self.closed = True
        self._runtime.stop()
        return await self._nursery_cm.__aexit__(*exc)

    @property
    def graph_def(self) -> Any:
        """The session's graph as TensorFlow's GraphDef message (`actorflow.graph_io`)."""
        from actorflow.graph_io import to_proto
        return to_proto(self.graph)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._runtime.close()

    def __del__(self) -> None:
        if getattr(self, "_mode", None) == "sync" and not getattr(self, "closed", True):
            self._runtime.close()

    @property
    def devices(self) -> list[Any]:
        return list(self._runtime.devices)

    def list_devices(self) -> list[str]:
        return [d.name for d in self._runtime.devices]

    def statistics(self) -> list[Any]:
        """Per-device statistics (mailbox depth, pool bytes, hits and misses); for a session
        on a cluster, every task's devices, asked of the tasks now."""
        if not self._started:
            self._ensure_thread()
        return self._runtime.statistics()

    # -- running -----------------------------------------------------------------------------
    def run(self, fetches: Any, feed_dict: dict | None = None, options: RunOptions | None = None,
            run_metadata: RunMetadata | None = None) -> Any:
        """Run the graph to compute `fetches` (a tensor, an op, a name, or nested lists,
        tuples and dicts of them), with `feed_dict` replacing tensor values."""
        if self.closed:
            raise FailedPreconditionError(
                "attempted to use a closed session; create a new af.Session()")
        if self._mode != "sync":
            if not self._started:
                self._ensure_thread()
            elif self._mode == "async":
                raise FailedPreconditionError(
                    "this session runs inside trio ('async with'): use 'await s.run(...)' on "
                    "the object 'async with' gave you")
        if options is None and run_metadata is None:  # the common call: its fixed cost
            plan, args = self._prepare(fetches, feed_dict)
            return plan.build(self._runtime.run(plan.step, args))
        plan, args, timeout, trace, stats = self._begin(fetches, feed_dict, options,
                                                        run_metadata)
        rets = self._runtime.run(plan.step, args, trace, stats, timeout=timeout)
        return self._end(plan, rets, trace, stats, run_metadata)

    def _begin(self, fetches: Any, feed_dict: dict | None, options: RunOptions | None,
               run_metadata: RunMetadata | None
               ) -> tuple[_Plan, list[Any], float | None, StepTrace | None, dict | None]:
        """The first half of `run` (sync and async): the plan, the feeds, the step's timeout
        (seconds) and, when run metadata is asked for, its trace and stats."""
        plan, args = self._prepare(fetches, feed_dict)
        if options is None:
            timeout, level = None, RunOptions.FULL_TRACE
        else:
            timeout = options.timeout_in_ms / 1e3 if options.timeout_in_ms > 0 else None
            level = options.trace_level or RunOptions.FULL_TRACE
        if run_metadata is None:
            return plan, args, timeout, None, None
        return plan, args, timeout, StepTrace(level), {}

    def _end(self, plan: _Plan, rets: list[Any], trace: StepTrace | None, stats: dict | None,
             run_metadata: RunMetadata | None) -> Any:
        """The second half of `run`: run metadata, then the fetch structure."""
        if run_metadata is not None:
            _fill_metadata(run_metadata, trace, stats, plan)
            self._record_costs(trace)
        return plan.build(rets)

    def _prepare(self, fetches: Any, feed_dict: dict | None) -> tuple[_Plan, list[Any]]:
        keys = tuple(feed_dict) if feed_dict else ()
        last = self._last_plan
        if last is not None and last[0] is fetches and last[1] == keys:
            plan = last[2]  # (== on the keys: identical tensors compare without __eq__)
        else:
            key = (_structure_key(fetches), keys)
            plan = self._plans.get(key)
            if plan is None:
                with self._compile_lock:
                    plan = self._plans.get(key) or self._compile(fetches, feed_dict or {}, key)
            if type(fetches) in _IMMUTABLE_FETCHES:
                self._last_plan = (fetches, keys, plan)
        if not keys:
            return plan, []
        # (the keys matched the plan's: the values line up with its feed checks); a
        # sparse_placeholder's key stands for its three component tensors (the plan knows
        # whether its keys hold one, so a call without them does not scan for them)
        values = feed_dict.values() if not plan.sparse else (  # type: ignore[union-attr]
            expand_sparse_feeds(feed_dict).values())  # type: ignore[arg-type]
        return plan, list(map(_convert_feed, values, *plan.feed_columns))

    def _compile(self, fetches: Any, feed_dict: dict, key: Any) -> _Plan:
        g = self.graph
        flat: list[Tensor] = []
        targets: list[Operation] = []
        build = _make_builder(fetches, g, flat, targets)
        checks: list[tuple[Tensor, np.dtype, shapes.Shape]] = []
        sparse = any(isinstance(k, SparseTensor) for k in feed_dict)
        for k in expand_sparse_feeds(feed_dict) if sparse else feed_dict:
            t = _feed_tensor(k, g)
            if t.dtype.is_resource:
                raise InvalidArgumentError(f"cannot feed resource tensor '{t.name}'")
            checks.append((t, t.dtype.np, t._shape))
        gd, by_name = self._export()
        log = _print if self.config.log_device_placement else None
        self._fold_costs()
        step = self._runtime.compile(
            gd, feeds=[t.name for t, _, _ in checks], fetches=[t.name for t in flat],
            targets=[op.name for op in targets], by_name=by_name, log=log,
            cost_model=self._cost_model)
        plan = _Plan(step, checks, build)
        plan.sparse = sparse
        self._plans[key] = plan
        return plan

    def _record_costs(self, trace: list | None) -> None:
        """Keep a traced step's timings for the cost model; they are folded in when the cost
        model is next read (a compile), so tracing a step does not pay for it. The last
        `_MAX_PENDING_TRACES` traces are kept (the moving average weighs the recent most)."""
        if trace:
            pending = self.__dict__.setdefault("_pending_costs", [])
            pending.append(trace)
            if len(pending) > _MAX_PENDING_TRACES:
                del pending[0]

    def _fold_costs(self) -> None:
        pending = self.__dict__.get("_pending_costs")
        while pending:
            for t in pending.pop(0):
                self._cost_model.record(t[0], t[1], t[3] - t[2])

    def _export(self) -> tuple[GraphDef, dict[str, NodeDef]]:
        ex = self._exported
        if ex is None or ex[0] != self.graph.version:
            gd = self.graph.as_graph_def()
            ex = (self.graph.version, gd, gd.by_name())
            self._exported = ex
        return ex[1], ex[2]

    def make_callable(self, fetches: Any, feed_list: list[Any] | None = None) -> Callable[..., Any]:
        """A function running `fetches` with positional feeds (`feed_list` order). It runs
        through `run`, whose plan cache makes the per-call lookup ~2 us."""
        feed_list = list(feed_list or [])

        def call(*values: Any) -> Any:
            return self.run(fetches, dict(zip(feed_list, values, strict=True)))
        return call


class AsyncSession:
    """The trio face of a Session: the same plans and executor, awaited in the caller's loop."""

    def __init__(self, session: Session):
        self._s = session

    @property
    def graph(self) -> Graph:
        return self._s.graph

    @property
    def session(self) -> Session:
        return self._s

    def statistics(self) -> list[Any]:
        """Per-device statistics of a local session (see `astatistics` for a cluster's)."""
        return self._s._runtime.statistics()

    async def astatistics(self) -> list[Any]:
        """Per-device statistics; for a session on a cluster, asked of every task now."""
        return await self._s._runtime.astatistics()

    async def run(self, fetches: Any, feed_dict: dict | None = None,
                  options: RunOptions | None = None,
                  run_metadata: RunMetadata | None = None) -> Any:
        s = self._s
        if s.closed:
            raise FailedPreconditionError("attempted to use a closed session")
        if options is None and run_metadata is None:  # the common call: its fixed cost
            plan, args = s._prepare(fetches, feed_dict)
            if first_use_pending():  # a new plan's kernels load compiled loops: off the loop
                await trio.to_thread.run_sync(import_first_use)
            return plan.build(await s._runtime.arun(plan.step, args))
        plan, args, timeout, trace, stats = s._begin(fetches, feed_dict, options, run_metadata)
        if first_use_pending():
            await trio.to_thread.run_sync(import_first_use)
        rets = await s._runtime.arun(plan.step, args, trace, stats, timeout=timeout)
        return s._end(plan, rets, trace, stats, run_metadata)


def _print(line: str) -> None:
    print(line, flush=True)


_MAX_PENDING_TRACES = 16


class _TracedStepStats(StepStats):
    """StepStats whose `nodes` are built from the trace records when first read (a traced
    step then costs only the records)."""

    def __init__(self, trace: list) -> None:  # noqa: D107 - not the dataclass __init__
        self._trace: list | None = trace
        self._nodes: list[NodeExecStats] | None = None

    @property  # type: ignore[override]
    def nodes(self) -> list[NodeExecStats]:
        if self._nodes is None:
            self._nodes = [_node_stats(t) for t in self._trace or ()]
            self._trace = None
        return self._nodes

    @nodes.setter
    def nodes(self, value: list[NodeExecStats]) -> None:
        self._nodes, self._trace = value, None


def _node_stats(t: Any) -> NodeExecStats:
    """A `scheduler.tracing` record (or an older 4-tuple) as NodeExecStats."""
    if len(t) < 8:
        return NodeExecStats(t[0], t[1], t[2], t[3])
    if type(t[5]) is list:  # from another task: [[dtype name, [shape], nbytes], ...]
        return NodeExecStats(t[0], t[1], t[2], t[3], t[4], tracing.outputs(t), t[6], t[7])
    return NodeExecStats(*t)  # this process's: dtypes stay NumPy dtypes (== their names)


def _fill_metadata(md: RunMetadata, trace: list | None, stats: dict | None,
                   plan: _Plan) -> None:
    md.step_stats = _TracedStepStats(trace or [])
    md.placement = dict(plan.step.placement)
    md.bytes_moved = (stats or {}).get("bytes_moved", 0)


# ------------------------------------------------------------------------------------------
# Fetch structures and feeds
# ------------------------------------------------------------------------------------------
_IMMUTABLE_FETCHES = (Tensor, Operation, str)


def _structure_key(fetches: Any) -> Any:
    t = type(fetches)
    if t is Tensor or t is Operation:
        return fetches
    if t is list or t is tuple:
        return (t, *(_structure_key(f) for f in fetches))
    if isinstance(fetches, dict):
        return (dict, *((k, _structure_key(v)) for k, v in fetches.items()))
    if isinstance(fetches, str):
        return ("name", fetches)
    return fetches  # variables and other graph elements hash by identity


def _make_builder(fetches: Any, g: Graph, flat: list[Tensor],
                  targets: list[Operation]) -> Callable[[list[Any]], Any]:
    """Flatten `fetches` into `flat`/`targets`; return the function rebuilding the structure."""
    if isinstance(fetches, list | tuple):
        parts = [_make_builder(f, g, flat, targets) for f in fetches]
        kind = type(fetches)
        if kind is list or kind is tuple:
            return lambda rets: kind(p(rets) for p in parts)
        return lambda rets: kind(*(p(rets) for p in parts))  # namedtuple
    if isinstance(fetches, dict):
        items = [(k, _make_builder(v, g, flat, targets)) for k, v in fetches.items()]
        kind = type(fetches)
        return lambda rets: kind((k, p(rets)) for k, p in items)
    if fetches is None:
        raise InvalidArgumentError("fetch argument None is not a tensor or operation")
    if isinstance(fetches, IndexedSlices):  # fetched as an IndexedSlicesValue, as in TF
        sl = [_make_builder(t, g, flat, targets) if t is not None else (lambda rets: None)
              for t in (fetches.values, fetches.indices, fetches.dense_shape)]
        return lambda rets: IndexedSlicesValue(*(p(rets) for p in sl))
    if isinstance(fetches, SparseTensor):  # and a SparseTensor as a SparseTensorValue
        sp = [_make_builder(t, g, flat, targets)
              for t in (fetches.indices, fetches.values, fetches.dense_shape)]
        return lambda rets: SparseTensorValue(*(p(rets) for p in sp))
    el = g.as_graph_element(fetches)
    if isinstance(el, Operation):
        if el not in targets:
            targets.append(el)
        return lambda rets: None
    if el.dtype.is_resource:
        raise InvalidArgumentError(f"cannot fetch resource handle '{el.name}'; fetch the "
                                   f"variable's value instead")
    host = _string_to_host if el.dtype.is_string else _to_host
    for i, t in enumerate(flat):
        if t is el:
            return lambda rets, i=i: host(rets[i])
    flat.append(el)
    i = len(flat) - 1
    return lambda rets: host(rets[i])


def _string_to_host(v: Any) -> Any:
    """A fetched string tensor as TF gives it: an object array of bytes; a scalar is bytes."""
    if isinstance(v, bytes):  # a kernel that indexed out one element (bytes or np.bytes_)
        return bytes(v)
    v = dtypes.to_string_array(_to_host(v))
    return v[()] if v.ndim == 0 else v


def _to_host(v: Any) -> Any:
    if type(v) is np.ndarray or isinstance(v, np.generic):
        return v
    get = getattr(v, "get", None)  # a CuPy array: copy to the host
    if get is not None and not isinstance(v, dict):
        return get()
    return np.asarray(v)


def _feed_tensor(key: Any, g: Graph) -> Tensor:
    if isinstance(key, str):
        el = g.as_graph_element(key)
    else:
        if hasattr(key, "_as_graph_element"):
            key = key._as_graph_element()
        el = key
    if not isinstance(el, Tensor):
        raise InvalidArgumentError(f"cannot feed {key!r}: feed_dict keys must be tensors "
                                   f"(or tensor names like 'x:0')")
    if el.graph is not g:
        raise InvalidArgumentError(f"cannot feed tensor '{el.name}': it belongs to another "
                                   f"graph than this session's")
    return el


def _convert_feed(value: Any, t: Tensor, dt: np.dtype, shape: shapes.Shape,
                  scalar: Any = None) -> Any:
    """A fed value as the step gets it: an array of the tensor's dtype, checked against its
    shape; a 0-d value becomes a NumPy scalar (as scalar kernels return them, so they stay on
    NumPy's fast scalar math; TF also fetches scalars as NumPy scalars). `scalar`: the NumPy
    scalar type of a 0-d float tensor (or one of unknown shape), else None."""
    tv = type(value)
    if scalar is not None and (tv is float or tv is int):
        return scalar(value)  # the common scalar feed, without a 0-d array in between
    if dt.hasobject:  # a string tensor: bytes/str (nested lists, S/U/object arrays) only
        try:
            value = dtypes.to_string_array(value)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"cannot feed {value!r} to string tensor '{t.name}': "
                                       f"{e}", node=t.op.name) from None
    elif type(value) is np.ndarray:
        if value.dtype != dt:
            if not np.can_cast(value.dtype, dt, casting="same_kind") and not (
                    value.dtype.kind in "iu" and dt.kind in "iuf"):
                raise InvalidArgumentError(
                    f"cannot feed a {value.dtype} array to tensor '{t.name}' of dtype "
                    f"{t.dtype.name}; convert it first (e.g. value.astype(np.{dt}))",
                    node=t.op.name)
            value = value.astype(dt)
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(
                f"cannot feed {value!r} to tensor '{t.name}': {e}", node=t.op.name) from None
        if arr.dtype.hasobject or (arr.dtype.kind == "f" and dt.kind in "iub") or (
                arr.dtype.kind in "iuf" and dt.kind == "b"):
            raise InvalidArgumentError(
                f"cannot feed {value!r} ({arr.dtype}) to tensor '{t.name}' of dtype "
                f"{t.dtype.name}", node=t.op.name)
        value = arr.astype(dt, copy=False)
    if shape is not None and (vs := value.shape) != shape:  # (equal: a fully known shape)
        bad = len(vs) != len(shape)
        if not bad:
            for d, v in zip(shape, vs, strict=True):  # (a loop, not any() of a generator)
                if d is not None and d != v:
                    bad = True
                    break
        if bad:
            raise InvalidArgumentError(
                f"cannot feed value of shape {tuple(vs)} for tensor '{t.name}', which has "
                f"shape {shapes.fmt(shape)}", node=t.op.name)
    if value.ndim == 0 and not dt.hasobject:
        return value[()]
    return value
