"""The graph users build: `Graph`, `Operation`, `Tensor`, scopes and collections.

Design
------
A `Graph` is an append-only list of `Operation`s. Each Operation has a type (a key into the op
definitions of `actorflow.op_def`), data inputs (`Tensor`s of the same graph), control inputs
(Operations), attributes, a requested device and its output `Tensor`s, whose dtype and static
shape were inferred when the op was built. The graph exports itself to the runtime's IR
(`scheduler.graphdef.GraphDef`) one NodeDef per op, cached on the op.

State: the *default graph* and the *scopes* (name scope, device stack, control dependencies,
colocation) live in contextvars, so threads and trio tasks each see their own; there is no
hidden global mutable graph to reset. Entering ``g.as_default()`` starts with empty scopes.

    g = Graph()
    with g.as_default():
        with name_scope("layer"), device("/cpu:0"):
            x = af.placeholder(af.float32, (None, 3))   # "layer/Placeholder"
    g.as_graph_def()

Invariants: names are unique in a graph; an op's inputs belong to its graph; `Graph._ops[i]._id
== i` (creation order, which the executor also uses to break ties).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from actorflow import shapes
from actorflow.tensor import Tensor, TensorShape  # noqa: F401  (re-exported: the graph API)
from devices.dtypes import DType
from devices.errors import InvalidArgumentError, NotFoundError
from scheduler.graphdef import GraphDef, NodeDef


class GraphKeys:
    """Standard collection names."""

    GLOBAL_VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    LOCAL_VARIABLES = "local_variables"
    GLOBAL_STEP = "global_step"
    TRAIN_OP = "train_op"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    SUMMARIES = "summaries"
    # the rest of TF1's standard keys (#13)
    LOCAL_RESOURCES = "local_resources"
    MODEL_VARIABLES = "model_variables"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    ACTIVATIONS = "activations"
    QUEUE_RUNNERS = "queue_runners"
    TABLE_INITIALIZERS = "table_initializer"
    ASSET_FILEPATHS = "asset_filepaths"
    CONCATENATED_VARIABLES = "concatenated_variables"
    SAVERS = "savers"
    WEIGHTS = "weights"
    BIASES = "biases"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    READY_OP = "ready_op"
    READY_FOR_LOCAL_INIT_OP = "ready_for_local_init_op"
    SUMMARY_OP = "summary_op"
    EVAL_STEP = "eval_step"
    COND_CONTEXT = "cond_context"
    WHILE_CONTEXT = "while_context"


@dataclass
class Operation:
    """A node of the graph. Fields are set once when the op is built, except `control_inputs`,
    which `_add_control_inputs` may extend before the graph first runs."""

    graph: Graph
    name: str
    type: str
    inputs: tuple[Tensor, ...]
    control_inputs: list[Operation]
    attrs: dict[str, Any]
    device: str
    _id: int
    outputs: tuple[Tensor, ...] = ()
    _node_def: NodeDef | None = field(default=None, repr=False)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def op(self) -> Operation:  # lets code treat a fetched Operation and a Tensor alike
        return self

    def get_attr(self, key: str) -> Any:
        try:
            return self.attrs[key]
        except KeyError:
            raise NotFoundError(f"operation '{self.name}' ({self.type}) has no attribute "
                                f"'{key}'; it has: {sorted(self.attrs)}") from None

    def _add_control_inputs(self, ops: Sequence[Operation]) -> None:
        for op in ops:
            if op not in self.control_inputs:
                self.control_inputs.append(op)
        self._node_def = None
        self.graph._version += 1

    def run(self, feed_dict: dict | None = None, session: Any = None) -> None:
        from actorflow.session import get_default_session
        (session or get_default_session()).run(self, feed_dict)

    @property
    def node_def(self) -> NodeDef:
        """The op as an IR node (TF's `op.node_def`: `.name`, `.op`, `.device`, `.attrs`)."""
        nd = self._node_def
        if nd is None:
            ins = [t.name for t in self.inputs] + ["^" + c.name for c in self.control_inputs]
            nd = NodeDef(self.name, self.type, ins, self.device, self.attrs,
                         [t.dtype.name for t in self.outputs],
                         [t._shape for t in self.outputs])
            self._node_def = nd
        return nd

    def __repr__(self) -> str:
        return f"<af.Operation '{self.name}' type={self.type}>"


@dataclass(frozen=True)
class _Scopes:
    """The scope state of one context (immutable; replaced on every `with`)."""

    graph: Graph | None = None
    name: str = ""
    devices: tuple[str | Callable[[Operation], str], ...] = ()
    control: tuple[Operation, ...] | None = ()   # None: cleared by control_dependencies(None)
    colocate: Operation | None = None
    ignore_existing_device: bool = False


_EMPTY_SCOPES = _Scopes()  # immutable (frozen), so sharing it as the default is safe
_scopes: contextvars.ContextVar[_Scopes] = contextvars.ContextVar(
    "af_scopes", default=_EMPTY_SCOPES)  # noqa: B039
_VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


class Graph:
    """A dataflow graph: append-only operations, collections, a seed and name bookkeeping."""

    def __init__(self) -> None:
        self._ops: list[Operation] = []
        self._by_name: dict[str, Operation] = {}
        self._names_in_use: dict[str, int] = {}
        self._collections: dict[str, list[Any]] = {}
        self._version = 0  # bumps on every change; executables cache on it
        self.seed: int | None = None
        self._gradient_overrides: dict[str, str] = {}
        self._finalized = False

    # -- context ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        token = _scopes.set(_Scopes(graph=self))
        try:
            yield self
        finally:
            _scopes.reset(token)

    def finalize(self) -> None:
        """Make the graph read-only: adding an op afterwards raises."""
        self._finalized = True

    @property
    def finalized(self) -> bool:
        return self._finalized

    @property
    def version(self) -> int:
        return self._version

    # -- names ------------------------------------------------------------------------------
    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        scope = _scopes.get().name
        full = f"{scope}/{name}" if scope else name
        key = full.lower()
        i = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = i + 1
        if i > 0:
            base = full
            while True:
                full = f"{base}_{i}"
                if full.lower() not in self._names_in_use:
                    break
                i += 1
            if mark_as_used:
                self._names_in_use[full.lower()] = 1
        return full

    # -- ops --------------------------------------------------------------------------------
    def create_op(self, type: str, inputs: Sequence[Tensor], attrs: dict[str, Any],
                  outputs: Sequence[tuple[DType, shapes.Shape]], name: str | None = None,
                  ) -> Operation:
        """Add an op. `outputs` are the (dtype, shape) pairs shape inference produced."""
        if self._finalized:
            raise InvalidArgumentError(
                f"graph is finalized and cannot be modified (adding a '{type}' op)")
        for t in inputs:
            if t.op.graph is not self:
                raise InvalidArgumentError(
                    f"input '{t.name}' of new op '{name or type}' belongs to another graph; "
                    f"build every op of a computation in the same graph")
        base = name or type
        if not _VALID_NAME.match(base):
            raise InvalidArgumentError(f"'{base}' is not a valid op name (letters, digits, "
                                       f"'_', '.', '-', '/'; not starting with '_' or '-')")
        full = self.unique_name(base)
        sc = _scopes.get()
        control = list(sc.control or ())
        # An op that consumes a tensor made inside the same control_dependencies block already
        # waits on it: drop control inputs its data inputs imply (TF does the same).
        if control and inputs:
            input_ops = {id(t.op) for t in inputs}
            control = [c for c in control if id(c) not in input_ops]
        attrs = dict(attrs)
        override = self._gradient_overrides.get(type)
        if override is not None:
            attrs["_gradient_op_type"] = override
        op = Operation(self, full, type, tuple(inputs), control, attrs, "", len(self._ops))
        op.outputs = tuple(Tensor(op, i, dt, sh) for i, (dt, sh) in enumerate(outputs))
        if sc.colocate is not None:
            op.attrs["_class"] = [f"loc:@{sc.colocate.name}"]
            op.device = sc.colocate.device
        else:
            op.device = _resolve_device(sc.devices, op)
        op._node_def = None  # a device function may have read op.node_def before the device
        self._ops.append(op)
        self._by_name[full] = op
        self._version += 1
        return op

    def get_operations(self) -> list[Operation]:
        return list(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        op = self._by_name.get(name)
        if op is None:
            raise NotFoundError(f"the graph has no operation named '{name}'"
                                + _did_you_mean(name, self._by_name))
        return op

    def get_tensor_by_name(self, name: str) -> Tensor:
        opname, sep, port = name.rpartition(":")
        if not sep or not port.isdigit():
            raise InvalidArgumentError(
                f"'{name}' is not a tensor name; tensor names look like 'op_name:0'")
        op = self._by_name.get(opname)
        if op is None:
            raise NotFoundError(f"the graph has no tensor named '{name}' (no operation "
                                f"'{opname}')" + _did_you_mean(opname, self._by_name))
        if int(port) >= len(op.outputs):
            raise NotFoundError(f"operation '{opname}' has {len(op.outputs)} output(s); "
                                f"there is no '{name}'")
        return op.outputs[int(port)]

    def as_graph_element(self, obj: Any) -> Tensor | Operation:
        """Resolve a Tensor, Operation, Variable or name to an element of this graph."""
        if hasattr(obj, "_as_graph_element"):
            obj = obj._as_graph_element()
        if isinstance(obj, Tensor | Operation):
            if obj.graph is not self:
                raise InvalidArgumentError(
                    f"{obj!r} belongs to another graph than this session's; run it in a "
                    f"session of its own graph (af.Session(graph=...))")
            return obj
        if isinstance(obj, str):
            if ":" in obj:
                return self.get_tensor_by_name(obj)
            return self.get_operation_by_name(obj)
        raise InvalidArgumentError(
            f"cannot fetch {obj!r} of type {type(obj).__name__}: fetch a Tensor, an Operation, "
            f"a Variable or their name")

    def as_graph_def(self) -> GraphDef:
        return GraphDef([op.node_def for op in self._ops])

    # -- collections ------------------------------------------------------------------------
    def add_to_collection(self, name: str, value: Any) -> None:
        self._collections.setdefault(name, []).append(value)

    def get_collection(self, name: str, scope: str | None = None) -> list[Any]:
        items = list(self._collections.get(name, ()))
        if scope is not None:
            items = [v for v in items if getattr(v, "name", "").startswith(scope)]
        return items

    def get_collection_ref(self, name: str) -> list[Any]:
        return self._collections.setdefault(name, [])

    def set_op_inputs(self, op: Operation, inputs: Sequence[Tensor],
                control_inputs: Sequence[Operation]) -> None:
        """Set an op's inputs after it was created (an importer wiring back edges)."""
        op.inputs = tuple(inputs)
        op.control_inputs = list(control_inputs)
        op._node_def = None
        self._version += 1

    def get_all_collection_keys(self) -> list[str]:
        return [k for k, v in self._collections.items() if v]

    @contextlib.contextmanager
    def gradient_override_map(self, mapping: dict[str, str]) -> Iterator[None]:
        """Within the block, ops of type K record that their gradient is registered as V."""
        saved = dict(self._gradient_overrides)
        self._gradient_overrides.update(mapping)
        try:
            yield
        finally:
            self._gradient_overrides = saved

    # context-manager sugar, TF style
    def name_scope(self, name: str | None) -> contextlib.AbstractContextManager[str]:
        return name_scope(name)

    def device(self, spec: Any) -> contextlib.AbstractContextManager[None]:
        return device(spec)

    def control_dependencies(self, ops: Any) -> contextlib.AbstractContextManager[None]:
        return control_dependencies(ops)


def _did_you_mean(name: str, names: dict[str, Any]) -> str:
    import difflib
    close = difflib.get_close_matches(name, list(names), n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _resolve_device(stack: tuple[Any, ...], op: Operation) -> str:
    """Apply the device scopes innermost-last; functions of the op (device setters) allowed."""
    spec = ""
    for d in stack:
        d = d(op) if callable(d) else d
        spec = _merge_device(spec, d or "")
    return spec


def _merge_device(outer: str, inner: str) -> str:
    if not inner:
        return outer
    if not outer:
        return _canonical_device(inner)
    try:
        from devices.device_spec import DeviceSpec
    except ImportError:  # pragma: no cover - present once the device-spec module lands
        return inner
    return DeviceSpec.parse(outer).merge(DeviceSpec.parse(inner)).to_string()


def _canonical_device(spec: Any) -> str:
    if not isinstance(spec, str):
        spec = spec.to_string()
    try:
        from devices.device_spec import DeviceSpec
    except ImportError:  # pragma: no cover
        return spec
    return DeviceSpec.parse(spec).to_string()


# ------------------------------------------------------------------------------------------
# The default graph and scopes
# ------------------------------------------------------------------------------------------
_global_default_graph: Graph | None = None


def get_default_graph() -> Graph:
    """The graph of the innermost ``with g.as_default()``, else the process-wide one."""
    g = _scopes.get().graph
    if g is not None:
        return g
    global _global_default_graph
    if _global_default_graph is None:
        _global_default_graph = Graph()
    return _global_default_graph


def reset_default_graph() -> None:
    """Replace the process-wide default graph (TF1 compatibility; prefer ``as_default``)."""
    global _global_default_graph
    if _scopes.get().graph is not None:
        raise InvalidArgumentError("reset_default_graph() called inside a 'with g.as_default()' "
                                   "block; leave the block first")
    _global_default_graph = Graph()


def _graph_of(values: Sequence[Any]) -> Graph:
    for v in values:
        if isinstance(v, Tensor | Operation):
            return v.graph
        g = getattr(v, "graph", None)
        if isinstance(g, Graph):
            return g
    return get_default_graph()


def _update(**changes: Any) -> contextvars.Token[_Scopes]:
    sc = _scopes.get()
    if sc.graph is None:
        changes.setdefault("graph", get_default_graph())
    return _scopes.set(replace(sc, **changes))


@contextlib.contextmanager
def name_scope(name: str | None, default_name: str | None = None,
               values: Sequence[Any] | None = None) -> Iterator[str]:
    """Prefix op names built in the block with ``name/``; yields the scope string with '/'.

    A name ending in '/' re-enters that exact scope; None or "" resets to the top level.
    """
    sc = _scopes.get()
    name = name if name is not None else default_name
    if not name:
        token = _update(name="")
        try:
            yield ""
        finally:
            _scopes.reset(token)
        return
    if name.endswith("/"):
        new = name[:-1]
    else:
        g = sc.graph or get_default_graph()
        new = g.unique_name(name)
    token = _update(name=new)
    try:
        yield new + "/"
    finally:
        _scopes.reset(token)


def get_name_scope() -> str:
    return _scopes.get().name


@contextlib.contextmanager
def device(spec: Any) -> Iterator[None]:
    """Request a device for ops built in the block: a string, a DeviceSpec, a function of the
    op (a device setter), or None to clear the outer requests."""
    sc = _scopes.get()
    if spec is None:
        token = _update(devices=())
    else:
        if not callable(spec):
            spec = _canonical_device(spec)
        token = _update(devices=(*sc.devices, spec))
    try:
        yield
    finally:
        _scopes.reset(token)


@contextlib.contextmanager
def control_dependencies(control_inputs: Sequence[Any] | None) -> Iterator[None]:
    """Ops built in the block run only after every op in `control_inputs`.

    None clears the outer control dependencies (as TF).
    """
    sc = _scopes.get()
    if control_inputs is None:
        token = _update(control=())
    else:
        ops = []
        for c in control_inputs:
            if hasattr(c, "_as_graph_element"):
                c = c._as_graph_element()
            if isinstance(c, Tensor):
                c = c.op
            if not isinstance(c, Operation):
                raise InvalidArgumentError(
                    f"control_dependencies takes Operations or Tensors, got {type(c).__name__}")
            ops.append(c)
        token = _update(control=(*(sc.control or ()), *ops))
    try:
        yield
    finally:
        _scopes.reset(token)


@contextlib.contextmanager
def colocate_with(op: Any, ignore_existing: bool = False) -> Iterator[None]:
    """Ops built in the block are placed on the same device as `op`."""
    if hasattr(op, "_as_graph_element"):
        op = op._as_graph_element()
    if isinstance(op, Tensor):
        op = op.op
    if op is not None and not isinstance(op, Operation):
        raise InvalidArgumentError(f"colocate_with takes an Operation or Tensor, not {op!r}")
    token = _update(colocate=op, **({"devices": ()} if ignore_existing else {}))
    try:
        yield
    finally:
        _scopes.reset(token)


def set_random_seed(seed: int | None) -> None:
    """Set the graph-level seed of the default graph."""
    get_default_graph().seed = seed


_fresh_seeds = itertools.count(87654321)


def get_seed(op_seed: int | None) -> tuple[int, int]:
    """TF's seed rules: (graph seed, op seed) for a new random op.

    Both unset: fresh seeds every op (non-deterministic across graphs). Graph seed set: the op
    seed defaults to the op's position, so a rebuilt graph draws the same numbers.
    """
    g = get_default_graph()
    if g.seed is not None:
        return g.seed, op_seed if op_seed is not None else len(g._ops)
    if op_seed is not None:
        return 87654321, op_seed
    import random
    return random.getrandbits(31), random.getrandbits(31)
