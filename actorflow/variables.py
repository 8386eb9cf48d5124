"""Variables: mutable state that outlives a step, as TF1's resource variables.

Design
------
``af.Variable(init, name="w")`` builds, in the current graph:

    w                          VarHandleOp      the handle (shared_name "w"); the variable lives
                                                in its device's resource container
    w/Initializer/...          the initial value, when given as a value or a callable
    w/Assign                   AssignVariableOp the initializer (`w.initializer`)
    w/Read/ReadVariableOp      ReadVariableOp   THE snapshot (`w.value()`): what ``w`` means
                                                whenever it is used as a tensor

Using ``w`` in an expression (``w + 1``, ``af.matmul(x, w)``) uses that one snapshot, so a
step reads the variable once, and ``af.gradients(loss, [w])`` differentiates w.r.t. it.
`read_value()` makes a fresh read (place it after an update with control dependencies).
Updates (`assign`, `assign_add`, `scatter_add` ...) return the new value; they run in place on
the device unless a snapshot is still held, which they leave unchanged (see `devices.resources`).

Collections: every variable joins GLOBAL_VARIABLES (unless `collections` says otherwise) and,
when trainable, TRAINABLE_VARIABLES; `global_variables_initializer()` groups the initializers.

    w = af.Variable(af.zeros((3, 1)), name="w")
    inc = w.assign_add(af.ones((3, 1)))
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        s.run(inc)          # -> [[1], [1], [1]]
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from actorflow import initializers, shapes
from actorflow.graph import (
    GraphKeys,
    Operation,
    Tensor,
    TensorShape,
    colocate_with,
    control_dependencies,
    get_default_graph,
    name_scope,
)
from actorflow.indexed_slices import IndexedSlices
from actorflow.op_def import convert_to_tensor
from actorflow.ops import core_ops, state_ops
from devices import dtypes
from devices.errors import InternalError, InvalidArgumentError


class Variable:
    """A mutable tensor kept on a device across steps (TF1's ``tf.Variable``, resource kind).

    Fields are set once at construction: `handle` (resource tensor), `initializer` (op),
    `initial_value` (tensor), `_snapshot` (the read used when the variable is a tensor).
    """

    __array_priority__ = 100

    def __init__(self, initial_value: Any = None, trainable: bool = True,
                 collections: list[str] | None = None, validate_shape: bool = True,
                 caching_device: Any = None, name: str | None = None, dtype: Any = None,
                 shape: Any = None, constraint: Any = None, **unused: Any):
        if initial_value is None:
            raise InvalidArgumentError("af.Variable needs an initial_value (a value, a tensor "
                                       "or a function returning one)")
        g = get_default_graph()
        base = name or "Variable"
        if ":" in base:
            base = base.split(":")[0]
        # Built outside the caller's control dependencies (TF's init_scope): initializing a
        # variable must not run the ops of some training step.
        with control_dependencies(None):
            self._build(g, base, initial_value, dtype, shape, validate_shape)
        self.trainable = bool(trainable)
        self.constraint = constraint
        self._load: tuple[Tensor, Tensor] | None = None
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        collections = list(collections)
        if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections.append(GraphKeys.TRAINABLE_VARIABLES)
        for c in dict.fromkeys(collections):
            g.add_to_collection(c, self)

    def _build(self, g: Any, base: str, initial_value: Any, dtype: Any, shape: Any,
               validate_shape: bool) -> None:
        full = g.unique_name(base, mark_as_used=False)
        dt = dtypes.as_dtype(dtype) if dtype is not None else None
        if callable(initial_value) or not isinstance(initial_value, Tensor):
            with name_scope(full + "/Initializer/"):
                value = initial_value() if callable(initial_value) else initial_value
                init = convert_to_tensor(value, dtype=dt)
        else:
            init = convert_to_tensor(initial_value, dtype=dt)
        if init.dtype.is_resource:
            raise InvalidArgumentError(f"variable '{full}': the initial value is a resource "
                                       f"handle; pass a value")
        var_shape = init._shape if validate_shape else None
        if shape is not None:
            want = shapes.as_shape(shape)
            if validate_shape and not shapes.is_compatible(want, init._shape):
                raise InvalidArgumentError(
                    f"variable '{full}': initial value of shape {shapes.fmt(init._shape)} does "
                    f"not match shape {shapes.fmt(want)}")
            var_shape = want if not validate_shape else shapes.merge(want, init._shape)
        self.handle = state_ops.var_handle_op(init.dtype, var_shape, shared_name=full,
                                              name=base)
        if self.handle.op.name != full:  # pragma: no cover - unique_name guarantees it
            raise InternalError(f"variable name {full} became {self.handle.op.name}; "
                                f"please report")
        self._scope = full + "/"
        self.initial_value = init
        with name_scope(self._scope):
            self._initializer_op = state_ops.assign(
                self.handle, init, validate_shape=validate_shape, name="Assign").op
            with name_scope("Read"):
                self._snapshot = state_ops.read_variable_op(self.handle, init.dtype)

    @classmethod
    def _from_graph(cls, handle: Tensor, initializer: Operation, snapshot: Tensor,
                    initial_value: Tensor | None, trainable: bool) -> Variable:
        """The Variable whose ops are already in the graph (an imported MetaGraph's
        VariableDef); it joins no collection (the importer refills them)."""
        v = cls.__new__(cls)
        v.handle = handle
        v._scope = handle.op.name + "/"
        v.initial_value = initial_value if initial_value is not None else snapshot
        v._initializer_op = initializer
        v._snapshot = snapshot
        v.trainable = bool(trainable)
        v.constraint = None
        v._load = None
        return v

    # -- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.handle.name

    @property
    def op(self) -> Operation:
        return self.handle.op

    @property
    def graph(self) -> Any:
        return self.handle.graph

    @property
    def device(self) -> str:
        return self.handle.op.device

    @property
    def dtype(self) -> dtypes.DType:
        return self._snapshot.dtype

    @property
    def shape(self) -> TensorShape:
        return self._snapshot.shape

    def get_shape(self) -> TensorShape:
        return self._snapshot.shape

    @property
    def initializer(self) -> Operation:
        return self._initializer_op

    def __repr__(self) -> str:
        return (f"<af.Variable '{self.name}' shape={shapes.fmt(self._snapshot._shape)} "
                f"dtype={self.dtype.name}>")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __bool__(self) -> bool:
        raise TypeError(f"the truth value of variable '{self.name}' is not known when the graph "
                        f"is built; use af.cond or af.where instead of a Python 'if'")

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self._snapshot)

    # -- as a tensor -------------------------------------------------------------------------
    def value(self) -> Tensor:
        """The variable's snapshot tensor (the same one every time)."""
        return self._snapshot

    def _as_tensor(self) -> Tensor:
        return self._snapshot

    def _as_graph_element(self) -> Tensor:
        return self._snapshot

    def read_value(self) -> Tensor:
        """A fresh read of the variable (order it with control dependencies)."""
        with name_scope(self._scope):
            return state_ops.read_variable_op(self.handle, self.dtype, name="read_value")

    def sparse_read(self, indices: Any, name: str | None = None) -> Tensor:
        """Rows `indices` of the variable (its gradient is sparse: IndexedSlices)."""
        from actorflow.ops import array_ops

        return array_ops.gather(self._snapshot, indices, name=name)  # type: ignore[attr-defined]

    # -- updates -----------------------------------------------------------------------------
    def assign(self, value: Any, use_locking: bool | None = None, name: str | None = None,
               read_value: bool = True) -> Any:
        t = state_ops.assign(self, value, name=name)
        return t if read_value else t.op

    def assign_add(self, delta: Any, use_locking: bool | None = None, name: str | None = None,
                   read_value: bool = True) -> Any:
        t = state_ops.assign_add(self, delta, name=name)
        return t if read_value else t.op

    def assign_sub(self, delta: Any, use_locking: bool | None = None, name: str | None = None,
                   read_value: bool = True) -> Any:
        t = state_ops.assign_sub(self, delta, name=name)
        return t if read_value else t.op

    def scatter_add(self, sparse_delta: IndexedSlices, use_locking: bool = False,
                    name: str | None = None) -> Tensor:
        s = _check_slices(sparse_delta, "scatter_add")
        return state_ops.scatter_add(self, s.indices, s.values, name=name)

    def scatter_sub(self, sparse_delta: IndexedSlices, use_locking: bool = False,
                    name: str | None = None) -> Tensor:
        s = _check_slices(sparse_delta, "scatter_sub")
        return state_ops.scatter_sub(self, s.indices, s.values, name=name)

    def scatter_update(self, sparse_delta: IndexedSlices, use_locking: bool = False,
                       name: str | None = None) -> Tensor:
        s = _check_slices(sparse_delta, "scatter_update")
        return state_ops.scatter_update(self, s.indices, s.values, name=name)

    def is_initialized(self, name: str | None = None) -> Tensor:
        return state_ops.is_variable_initialized(self, name=name)

    # -- running -----------------------------------------------------------------------------
    def eval(self, session: Any = None) -> Any:
        """The variable's current value, read in `session` (default: the default session)."""
        return self._snapshot.eval(session=session)

    def load(self, value: Any, session: Any = None) -> None:
        """Assign `value` (a NumPy value) to the variable in `session`, without adding ops
        per call (one placeholder and assign op are built on first use)."""
        from actorflow.session import get_default_session

        if self._load is None:
            with name_scope(self._scope), colocate_with(self.handle.op):
                ph = core_ops.placeholder(self.dtype, self._snapshot._shape, name="load_value")
                self._load = (ph, state_ops.assign(self.handle, ph, name="load"))
        ph, op = self._load
        (session or get_default_session()).run(op.op, {ph: value})


def _check_slices(s: Any, what: str) -> IndexedSlices:
    if not isinstance(s, IndexedSlices):
        raise InvalidArgumentError(
            f"Variable.{what} takes an af.IndexedSlices(values, indices), got "
            f"{type(s).__name__}; or use af.{what}(var, indices, updates)")
    return s


def _delegate(name: str, binary: bool = True) -> Any:
    def method(self: Variable, *args: Any) -> Any:
        fn = getattr(self._snapshot, name, None)
        if fn is None:
            if binary:
                return NotImplemented
            raise TypeError(f"af.Tensor does not support {name}; neither does variable "
                            f"'{self.name}'")
        return fn(*args)
    method.__name__ = name
    return method


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
            "xor"):
    setattr(Variable, f"__{_op}__", _delegate(f"__{_op}__"))
    setattr(Variable, f"__r{_op}__", _delegate(f"__r{_op}__"))
for _op in ("lt", "le", "gt", "ge"):
    setattr(Variable, f"__{_op}__", _delegate(f"__{_op}__"))
for _op in ("neg", "abs", "invert", "getitem"):
    setattr(Variable, f"__{_op}__", _delegate(f"__{_op}__", binary=False))


# ------------------------------------------------------------------------------------------
# Collections and initializers
# ------------------------------------------------------------------------------------------
def global_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def all_variables() -> list[Variable]:
    return global_variables()


def trainable_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def local_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def variables_initializer(var_list: list[Variable], name: str = "init") -> Operation:
    """One op that runs the initializers of `var_list` (a no-op for an empty list)."""
    return core_ops.group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer() -> Operation:
    return variables_initializer(global_variables())


def initialize_all_variables() -> Operation:
    return global_variables_initializer()


def local_variables_initializer() -> Operation:
    return variables_initializer(local_variables(), name="init_local")


def assert_variables_initialized(var_list: list[Variable] | None = None) -> list[Tensor]:
    """Scalar bool tensors, one per variable: is it initialized?"""
    return [v.is_initialized() for v in (var_list or global_variables())]


# ------------------------------------------------------------------------------------------
# get_variable and variable_scope
# ------------------------------------------------------------------------------------------
AUTO_REUSE = "auto_reuse"


@dataclass(frozen=True)
class _VarScope:
    name: str = ""
    reuse: Any = None
    initializer: Any = None


_var_scope: contextvars.ContextVar[_VarScope] = contextvars.ContextVar(
    "af_var_scope", default=_VarScope())  # noqa: B039 - frozen, replaced on every `with`
_STORE_KEY = "__variable_store"


@contextlib.contextmanager
def variable_scope(name: str, reuse: Any = None, initializer: Any = None,
                   default_name: str | None = None) -> Iterator[_VarScope]:
    """Prefix the names `get_variable` uses with ``name/``; ``reuse=True`` (or AUTO_REUSE)
    returns existing variables instead of raising. Also opens a name scope of that name."""
    outer = _var_scope.get()
    name = name or default_name or "scope"
    full = f"{outer.name}/{name}" if outer.name else name
    sc = _VarScope(full, reuse if reuse is not None else outer.reuse,
                   initializer if initializer is not None else outer.initializer)
    token = _var_scope.set(sc)
    try:
        with name_scope(name):
            yield sc
    finally:
        _var_scope.reset(token)


def get_variable_scope() -> _VarScope:
    return _var_scope.get()


def get_variable(name: str, shape: Any = None, dtype: Any = dtypes.float32,
                 initializer: Any = None, trainable: bool = True,
                 collections: list[str] | None = None, reuse: Any = None) -> Variable:
    """The variable `name` in the current variable scope: created (with `initializer`, default
    glorot_uniform for floats, zeros otherwise) or, under reuse, the existing one."""
    sc = _var_scope.get()
    full = f"{sc.name}/{name}" if sc.name else name
    reuse = reuse if reuse is not None else sc.reuse
    g = get_default_graph()
    store: dict[str, Variable] = _store(g)
    existing = store.get(full)
    if existing is not None:
        if not reuse:
            raise InvalidArgumentError(
                f"variable '{full}' already exists; pass reuse=True (or af.AUTO_REUSE) to "
                f"variable_scope or get_variable to share it")
        if shape is not None and not shapes.is_compatible(shapes.as_shape(shape),
                                                          existing._snapshot._shape):
            raise InvalidArgumentError(
                f"variable '{full}' has shape {shapes.fmt(existing._snapshot._shape)}, not "
                f"{shapes.fmt(shapes.as_shape(shape))}")
        return existing
    if reuse is True:
        raise InvalidArgumentError(f"variable '{full}' does not exist, and reuse=True asks for "
                                   f"an existing one; use reuse=af.AUTO_REUSE to create it")
    dt = dtypes.as_dtype(dtype)
    init = initializer if initializer is not None else sc.initializer
    if init is None:
        init = initializers.glorot_uniform_initializer() if dt.is_floating else \
            initializers.zeros_initializer()
    if isinstance(init, Tensor) or not callable(init):
        value: Any = init
    else:
        if shape is None:
            raise InvalidArgumentError(f"get_variable('{full}') needs a shape to run its "
                                       f"initializer")
        shp = shapes.as_shape(shape)

        def value() -> Any:
            return init(shp, dtype=dt)
    with name_scope(None):
        v = Variable(value, trainable=trainable, collections=collections, name=full, dtype=dt)
    store[full] = v
    return v


def _store(g: Any) -> dict[str, Variable]:
    ref = g.get_collection_ref(_STORE_KEY)
    if not ref:
        ref.append({})
    return ref[0]


__all__ = ["Variable", "global_variables", "all_variables", "trainable_variables",
           "local_variables", "variables_initializer", "global_variables_initializer",
           "initialize_all_variables", "local_variables_initializer",
           "assert_variables_initialized", "get_variable", "variable_scope",
           "get_variable_scope", "AUTO_REUSE", *initializers.__all__]
globals().update({n: getattr(initializers, n) for n in initializers.__all__})
