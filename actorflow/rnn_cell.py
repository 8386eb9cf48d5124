"""RNN cells of TF1 (``af.nn.rnn_cell``, ``af.contrib.rnn``): BasicRNNCell, BasicLSTMCell,
LSTMCell, GRUCell, MultiRNNCell, DropoutWrapper and LSTMStateTuple.

A cell maps ``(inputs [batch, in], state) -> (output [batch, units], new_state)``. As in TF1 a
cell is a layer: it creates its variables (``<scope>/kernel``, ``<scope>/bias``, with
`get_variable` in the variable scope it is first called in) on its first call and reuses them
on every later call, so one cell unrolled over time (`static_rnn`) or run inside a loop
(`dynamic_rnn`) shares one set of weights.

    cell = af.nn.rnn_cell.BasicLSTMCell(64)
    outputs, state = af.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=af.float32)

Kernels follow TF's layout ([input + units, k * units], gates i, j/c, f, o for LSTMs; r, u
then candidate for GRUs), and BasicLSTMCell's forget_bias (1.0) is added to the forget gate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from actorflow import initializers
from actorflow.graph import Tensor, get_default_graph, name_scope
from actorflow.ops import (
    array_ops,
    control_flow_context,
    index_ops,
    join_ops,
    math_ops,
    nest,
    nn_ops,
)
from actorflow.variables import get_variable, get_variable_scope
from devices.errors import InvalidArgumentError

__all__ = ["RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell",
           "DropoutWrapper", "LSTMStateTuple", "ResidualWrapper"]


class LSTMStateTuple(NamedTuple):
    """(c, h): an LSTM's cell state and output."""

    c: Any
    h: Any

    @property
    def dtype(self) -> Any:
        return self.c.dtype


class RNNCell:
    """The base: `state_size`, `output_size`, `zero_state`, and ``__call__`` building the
    variables once (in the scope of the first call) then `call`."""

    def __init__(self, num_units: int = 0, activation: Callable[[Any], Tensor] | None = None,
                 reuse: Any = None, name: str | None = None, dtype: Any = None):
        self._num_units = int(num_units)
        self._activation = activation or math_ops.tanh
        self._name = name
        self._built = False
        self._scope_name: str | None = None
        self._vars: dict[str, Any] = {}

    @property
    def state_size(self) -> Any:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        """Zeros of [batch_size, n] for every part of `state_size`."""
        with name_scope(f"{type(self).__name__}ZeroState"):
            def z(n: Any) -> Tensor:
                return array_ops.zeros(join_ops.stack([batch_size, n]) if isinstance(
                    batch_size, Tensor) else [batch_size, n], dtype=dtype)
            return nest.pack_sequence_as(self.state_size,
                                         [z(n) for n in nest.flatten(self.state_size)])

    def _default_name(self) -> str:
        name = type(self).__name__
        out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
        return out.replace("l_s_t_m", "lstm").replace("r_n_n", "rnn").replace("g_r_u", "gru")

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        if self._scope_name is None:
            base = self._name or (scope if isinstance(scope, str) else None) or \
                self._default_name()
            self._scope_name = _unique_scope(base)
        with name_scope(self._scope_name.split("/")[-1]):
            return self.call(inputs, state)

    def _variable(self, name: str, shape: list[int], dtype: Any,
                  initializer: Any = None) -> Any:
        v = self._vars.get(name)
        if v is None:
            g = get_default_graph()
            # Made at the top level (TF's init_scope), even when the first call is inside a
            # while_loop (dynamic_rnn): a variable and its snapshot outlive the loop.
            with _absolute_scope(self._scope_name or self._default_name()), \
                    control_flow_context.owned(g, None):
                v = get_variable(name, shape, dtype=dtype, initializer=initializer)
            self._vars[name] = v
        return v

    def _linear(self, args: list[Tensor], out: int, bias_init: float = 0.0,
                kname: str = "kernel", bname: str = "bias",
                kernel_initializer: Any = None) -> Tensor:
        x = args[0] if len(args) == 1 else join_ops.concat(args, 1)
        n_in = x.shape[-1]
        if n_in is None:
            raise InvalidArgumentError(
                f"{type(self).__name__}: the input depth (last dimension) must be known "
                f"when the cell is built, got shape {x.shape}")
        k = self._variable(kname, [int(n_in), out], x.dtype, kernel_initializer)
        b = self._variable(bname, [out], x.dtype, initializers.constant_initializer(bias_init))
        return nn_ops.bias_add(math_ops.matmul(x, k), b)

    def call(self, inputs: Any, state: Any) -> tuple[Any, Any]:
        """(output, new state) for one time step: what a cell class defines."""
        raise NotImplementedError(f"{type(self).__name__} must define call(inputs, state), "
                                  "returning (output, new_state), as TF's RNNCell subclasses do")


def _unique_scope(base: str) -> str:
    """The variable scope of a new cell: ``<current scope>/<base>``, numbered _1, _2 ... per
    enclosing scope as TF1 does (so a model rebuilt under reuse finds the same names)."""
    from actorflow.variable_scope import unique_in_scope
    return unique_in_scope(get_variable_scope().name, base)


class _absolute_scope:  # noqa: N801 - a context manager used like variable_scope
    """Enter the variable scope `full` (an absolute path) whatever the current scope is."""

    def __init__(self, full: str):
        self.full = full

    def __enter__(self) -> None:
        from actorflow import variables
        sc = variables._var_scope.get()
        self._token = variables._var_scope.set(
            variables._VarScope(self.full, variables.AUTO_REUSE, sc.initializer))

    def __exit__(self, *exc: Any) -> None:
        from actorflow import variables
        variables._var_scope.reset(self._token)


class BasicRNNCell(RNNCell):
    """output = new_state = activation(W [x, h] + b)."""

    def call(self, inputs: Any, state: Any) -> tuple[Any, Any]:
        out = self._activation(self._linear([inputs, state], self._num_units))
        return out, out


class BasicLSTMCell(RNNCell):
    """The LSTM of Zaremba et al. without peepholes: i, j, f, o = split(W [x, h] + b);
    c' = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j); h' = tanh(c') * sigmoid(o)."""

    def __init__(self, num_units: int, forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Any = None, reuse: Any = None, name: str | None = None,
                 dtype: Any = None):
        super().__init__(num_units, activation, reuse, name, dtype)
        self._forget_bias = float(forget_bias)
        self._state_is_tuple = state_is_tuple

    @property
    def state_size(self) -> Any:
        n = self._num_units
        return LSTMStateTuple(n, n) if self._state_is_tuple else 2 * n

    def _cell_step(self, inputs: Any, c: Any, h: Any) -> tuple[Tensor, Tensor]:
        z = self._linear([inputs, h], 4 * self._num_units)
        i, j, f, o = join_ops.split(z, 4, axis=1)
        sig = math_ops.sigmoid
        new_c = math_ops.add(math_ops.multiply(c, sig(math_ops.add(f, self._forget_bias))),
                             math_ops.multiply(sig(i), self._activation(j)))
        new_h = math_ops.multiply(self._activation(new_c), sig(o))
        return new_c, new_h

    def call(self, inputs: Any, state: Any) -> tuple[Any, Any]:
        if self._state_is_tuple:
            c, h = state
        else:
            c, h = join_ops.split(state, 2, axis=1)
        new_c, new_h = self._cell_step(inputs, c, h)
        new = LSTMStateTuple(new_c, new_h) if self._state_is_tuple else \
            join_ops.concat([new_c, new_h], 1)
        return new_h, new


class LSTMCell(BasicLSTMCell):
    """An LSTM with optional peephole connections (diagonal weights `w_f_diag`, `w_i_diag`,
    `w_o_diag` from the cell state into the gates, Gers & Schmidhuber), an optional
    projection of h to `num_proj` units (clipped to `proj_clip`) and optional cell clipping."""

    def __init__(self, num_units: int, use_peepholes: bool = False, cell_clip: Any = None,
                 initializer: Any = None, num_proj: int | None = None, proj_clip: Any = None,
                 forget_bias: float = 1.0, state_is_tuple: bool = True, activation: Any = None,
                 reuse: Any = None, name: str | None = None, dtype: Any = None, **unused: Any):
        super().__init__(num_units, forget_bias, state_is_tuple, activation, reuse, name)
        self._use_peepholes = bool(use_peepholes)
        self._proj_clip = proj_clip
        self._cell_clip = cell_clip
        self._num_proj = num_proj
        self._initializer = initializer

    @property
    def state_size(self) -> Any:
        h = self._num_proj or self._num_units
        return LSTMStateTuple(self._num_units, h) if self._state_is_tuple else \
            self._num_units + h

    @property
    def output_size(self) -> int:
        return self._num_proj or self._num_units

    def call(self, inputs: Any, state: Any) -> tuple[Any, Any]:
        if self._state_is_tuple:
            c, h = state
        else:
            c = index_ops.slice_(state, [0, 0], [-1, self._num_units])
            h = index_ops.slice_(state, [0, self._num_units], [-1, -1])
        z = self._linear([inputs, h], 4 * self._num_units,
                         kernel_initializer=self._initializer)
        i, j, f, o = join_ops.split(z, 4, axis=1)
        sig, mul, add = math_ops.sigmoid, math_ops.multiply, math_ops.add
        from actorflow.ops.compare_ops import clip_by_value
        if self._use_peepholes:  # TF's names; made after the kernel and bias, as TF does
            n = [self._num_units]
            w_f = self._variable("w_f_diag", n, z.dtype, self._initializer)
            w_i = self._variable("w_i_diag", n, z.dtype, self._initializer)
            w_o = self._variable("w_o_diag", n, z.dtype, self._initializer)
            f = add(f, mul(w_f, c))
            i = add(i, mul(w_i, c))
        new_c = add(mul(c, sig(add(f, self._forget_bias))), mul(sig(i), self._activation(j)))
        if self._cell_clip is not None:
            new_c = clip_by_value(new_c, -self._cell_clip, self._cell_clip)
        if self._use_peepholes:
            o = add(o, mul(w_o, new_c))
        new_h = mul(self._activation(new_c), sig(o))
        if self._num_proj:
            p = self._variable("projection/kernel", [self._num_units, self._num_proj],
                               new_h.dtype)
            new_h = math_ops.matmul(new_h, p)
            if self._proj_clip is not None:
                new_h = clip_by_value(new_h, -self._proj_clip, self._proj_clip)
        new = LSTMStateTuple(new_c, new_h) if self._state_is_tuple else \
            join_ops.concat([new_c, new_h], 1)
        return new_h, new


class GRUCell(RNNCell):
    """r, u = sigmoid(W [x, h] + b) (bias 1); c = act(Wc [x, r * h] + bc);
    h' = u * h + (1 - u) * c."""

    def call(self, inputs: Any, state: Any) -> tuple[Any, Any]:
        n = self._num_units
        ru = math_ops.sigmoid(self._linear([inputs, state], 2 * n, 1.0, "gates/kernel",
                                           "gates/bias"))
        r, u = join_ops.split(ru, 2, axis=1)
        c = self._activation(self._linear([inputs, math_ops.multiply(r, state)], n, 0.0,
                                          "candidate/kernel", "candidate/bias"))
        new_h = math_ops.add(math_ops.multiply(u, state),
                             math_ops.multiply(math_ops.subtract(1.0, u), c))
        return new_h, new_h


class MultiRNNCell(RNNCell):
    """Cells stacked: the output of cell i is the input of cell i + 1; the state is a tuple
    of their states (cell_<i> scopes)."""

    def __init__(self, cells: list[RNNCell], state_is_tuple: bool = True):
        super().__init__(0)
        if not cells:
            raise InvalidArgumentError("MultiRNNCell needs at least one cell")
        self._cells = list(cells)
        self._state_is_tuple = state_is_tuple

    @property
    def state_size(self) -> Any:
        return tuple(c.state_size for c in self._cells)

    @property
    def output_size(self) -> int:
        return self._cells[-1].output_size

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        return tuple(c.zero_state(batch_size, dtype) for c in self._cells)

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        if self._scope_name is None:
            self._scope_name = _unique_scope(scope if isinstance(scope, str) else
                                             "multi_rnn_cell")
        x = inputs
        new = []
        for i, cell in enumerate(self._cells):
            with _absolute_scope(f"{self._scope_name}/cell_{i}"):
                x, s = cell(x, state[i])
            new.append(s)
        return x, tuple(new)


class _CellWrapper(RNNCell):
    """A cell around another: its state, output size and zero state are the wrapped cell's."""

    _cell: RNNCell

    @property
    def state_size(self) -> Any:
        return self._cell.state_size

    @property
    def output_size(self) -> int:
        return self._cell.output_size

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        return self._cell.zero_state(batch_size, dtype)


class DropoutWrapper(_CellWrapper):
    """Dropout on a cell's inputs and outputs (and state): keep probabilities may be
    tensors (feed 1.0 at evaluation)."""

    def __init__(self, cell: RNNCell, input_keep_prob: Any = 1.0,
                 output_keep_prob: Any = 1.0, state_keep_prob: Any = 1.0,
                 variational_recurrent: bool = False, input_size: Any = None,
                 dtype: Any = None, seed: int | None = None, **unused: Any):
        super().__init__(0)
        self._cell = cell
        self._in, self._out, self._state = input_keep_prob, output_keep_prob, state_keep_prob
        self._seed = seed

    @staticmethod
    def _drop(x: Any, keep: Any, seed: int | None) -> Any:
        if isinstance(keep, int | float) and float(keep) == 1.0:
            return x
        return nn_ops.dropout(x, keep_prob=keep, seed=seed)

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        x = self._drop(inputs, self._in, self._seed)
        out, new = self._cell(x, state, scope)
        out = self._drop(out, self._out, self._seed)
        if not (isinstance(self._state, int | float) and float(self._state) == 1.0):
            new = nest.pack_sequence_as(new, [self._drop(s, self._state, self._seed)
                                              for s in nest.flatten(new)])
        return out, new


class ResidualWrapper(_CellWrapper):
    """output = cell output + input."""

    def __init__(self, cell: RNNCell):
        super().__init__(0)
        self._cell = cell

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        out, new = self._cell(inputs, state, scope)
        return math_ops.add(out, inputs), new

