"""Running RNN cells over sequences, as TF1's ``tf.nn``: `static_rnn` (unrolled in the
graph), `dynamic_rnn` (a `while_loop` over time reading and writing TensorArrays),
`bidirectional_dynamic_rnn`, `static_bidirectional_rnn`, and `reverse_sequence`.

    cell = af.nn.rnn_cell.BasicLSTMCell(32)
    outputs, state = af.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=af.float32)
    # outputs [batch, time, 32]; past a row's length its outputs are 0 and its state is
    # carried through unchanged, so `state` is the state at each row's last valid step.

Variables live in the variable scope ``rnn`` (or `scope`), as in TF1.
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor, control_dependencies, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import (
    array_ops,
    compare_ops,
    control_flow_ops,
    core_ops,
    index_ops,
    join_ops,
    math_ops,
    nest,
    tensor_array_ops,
)
from actorflow.ops.partition_ops import range as range_
from actorflow.variable_scope import variable_scope
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["static_rnn", "dynamic_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn",
           "reverse_sequence"]


def _initial(cell: Any, initial_state: Any, batch: Any, dtype: Any) -> Any:
    if initial_state is not None:
        return initial_state
    if dtype is None:
        raise InvalidArgumentError("an RNN needs initial_state or dtype (e.g. "
                                   "dtype=af.float32) to build its zero state")
    return cell.zero_state(batch, dtypes.as_dtype(dtype))


def _select_rows(done: Tensor, old: Any, new: Any) -> Any:
    """Per batch row: `old` where done[b], else `new` (for every leaf of the state)."""
    def pick(o: Tensor, n: Tensor) -> Tensor:
        r = n.shape.rank
        c = done if r == 1 else array_ops.reshape(done, [-1] + [1] * (r - 1))
        return compare_ops.where(c, o, n)
    return nest.pack_sequence_as(new, [pick(o, n) for o, n in
                                       zip(nest.flatten(old), nest.flatten(new), strict=True)])


def _zeros_rows(done: Tensor, out: Tensor) -> Tensor:
    return _select_rows(done, array_ops.zeros_like(out), out)


def static_rnn(cell: Any, inputs: list[Any], initial_state: Any = None, dtype: Any = None,
               sequence_length: Any = None, scope: Any = None) -> tuple[list[Tensor], Any]:
    """Unroll `cell` over the list `inputs` (each [batch, depth]); (outputs list, state)."""
    if not inputs:
        raise InvalidArgumentError("static_rnn needs a non-empty list of inputs")
    with variable_scope(scope if scope is not None else "rnn"):
        xs = [convert_to_tensor(x) for x in inputs]
        batch = xs[0].shape[0] if xs[0].shape[0] is not None else array_ops.shape(xs[0])[0]
        state = _initial(cell, initial_state, batch, dtype)
        seq = convert_to_tensor(sequence_length) if sequence_length is not None else None
        outs = []
        for t, x in enumerate(xs):
            out, new = cell(x, state)
            if seq is not None:
                done = compare_ops.greater_equal(t, seq)
                out = _zeros_rows(done, out)
                new = _select_rows(done, state, new)
            outs.append(out)
            state = new
        return outs, state


def static_bidirectional_rnn(cell_fw: Any, cell_bw: Any, inputs: list[Any],
                             initial_state_fw: Any = None, initial_state_bw: Any = None,
                             dtype: Any = None, sequence_length: Any = None,
                             scope: Any = None) -> tuple[list[Tensor], Any, Any]:
    """Forward and backward `static_rnn`s; outputs concatenated on the depth axis."""
    with variable_scope(scope if scope is not None else "bidirectional_rnn"):
        # the cells' variables directly under fw/ and bw/ (TF's names: the scope objects are
        # handed down, no "rnn" level in between)
        with variable_scope("fw") as fw_scope:
            fw, sfw = static_rnn(cell_fw, inputs, initial_state_fw, dtype, sequence_length,
                                 scope=fw_scope)
        with variable_scope("bw") as bw_scope:
            x = join_ops.stack(inputs)
            rev = _reverse_time(x, sequence_length, time_axis=0, batch_axis=1)
            bw, sbw = static_rnn(cell_bw, join_ops.unstack(rev), initial_state_bw, dtype,
                                 sequence_length, scope=bw_scope)
            bw = join_ops.unstack(_reverse_time(join_ops.stack(bw), sequence_length, 0, 1))
        return [join_ops.concat([f, b], 1) for f, b in zip(fw, bw, strict=True)], sfw, sbw


def dynamic_rnn(cell: Any, inputs: Any, sequence_length: Any = None, initial_state: Any = None,
                dtype: Any = None, parallel_iterations: int | None = None,
                swap_memory: bool = False, time_major: bool = False,
                scope: Any = None) -> tuple[Tensor, Any]:
    """Run `cell` over the time axis of `inputs` ([batch, time, depth], or [time, batch,
    depth] when time_major) with a while_loop; returns (outputs, final state)."""
    with variable_scope(scope if scope is not None else "rnn"):
        x = convert_to_tensor(inputs)
        if x.shape.rank is not None and x.shape.rank < 3:
            raise InvalidArgumentError(f"dynamic_rnn needs inputs of rank >= 3 ([batch, time, "
                                       f"depth]), got shape {x.shape}")
        if not time_major:
            x = array_ops.transpose(x, [1, 0, *range(2, x.shape.rank)])
        shp = array_ops.shape(x)
        steps = index_ops.gather(shp, 0)
        batch = x.shape[1] if x.shape[1] is not None else index_ops.gather(shp, 1)
        state = _initial(cell, initial_state, batch, dtype)
        seq = None
        if sequence_length is not None:
            seq = compare_ops.cast(convert_to_tensor(sequence_length), dtypes.int32)
        in_ta = tensor_array_ops.TensorArray(x.dtype, size=steps,
                                             element_shape=x.shape[1:]).unstack(x)
        out_ta = tensor_array_ops.TensorArray(x.dtype, size=steps)
        time0 = array_ops.zeros([], dtype=dtypes.int32)

        def body(t: Tensor, st: Any, ta: Any) -> tuple[Any, ...]:
            out, new = cell(in_ta.read(t), st)
            if seq is not None:
                done = compare_ops.greater_equal(t, seq)
                out = _zeros_rows(done, out)
                new = _select_rows(done, st, new)
            return math_ops.add(t, 1), new, ta.write(t, out)

        _, final, out_ta = control_flow_ops.while_loop(
            lambda t, st, ta: compare_ops.less(t, steps), body, (time0, state, out_ta),
            parallel_iterations=parallel_iterations or 32, swap_memory=swap_memory)
        outs = out_ta.stack()
        # The final state depends on the outputs' writes (as in TF, where a loop runs whole):
        # a gradient of the state alone then still finds the shapes of the outputs it reads
        # as zeros, instead of the writes being pruned away.
        with control_dependencies([out_ta.flow]):
            final = nest.pack_sequence_as(final, [core_ops.identity(s)
                                                  for s in nest.flatten(final)])
        if not time_major:
            outs = array_ops.transpose(outs, [1, 0, 2])
        return outs, final


def reverse_sequence(input: Any, seq_lengths: Any, seq_axis: int = 1,  # noqa: A002
                     batch_axis: int = 0, name: str | None = None,
                     seq_dim: int | None = None, batch_dim: int | None = None) -> Tensor:
    """Reverse the first seq_lengths[b] steps of every batch row b (the rest unchanged)."""
    with name_scope(name, "ReverseSequence"):
        return _reverse_time(convert_to_tensor(input), seq_lengths,
                             seq_dim if seq_dim is not None else seq_axis,
                             batch_dim if batch_dim is not None else batch_axis)


def _reverse_time(x: Tensor, lengths: Any, time_axis: int, batch_axis: int) -> Tensor:
    """Reverse along time (whole rows when lengths is None) via one gather of rows."""
    r = x.shape.rank
    if r is None:
        raise InvalidArgumentError("reversing a sequence needs inputs of known rank")
    # Bring to [batch, time, ...].
    perm = [batch_axis, time_axis] + [i for i in range(r) if i not in (batch_axis, time_axis)]
    inv = [perm.index(i) for i in range(r)]
    y = array_ops.transpose(x, perm)
    shp = array_ops.shape(y)
    b, t = index_ops.gather(shp, 0), index_ops.gather(shp, 1)
    steps = range_(0, t, 1)                                       # [T]
    if lengths is None:
        lens = array_ops.fill(array_ops.reshape(b, [1]), t)
    else:
        lens = compare_ops.cast(convert_to_tensor(lengths), dtypes.int32)
    lens2 = array_ops.expand_dims(lens, 1)                        # [B, 1]
    src = compare_ops.where(compare_ops.less(steps, lens2),
                            math_ops.subtract(math_ops.subtract(lens2, 1), steps),
                            math_ops.add(array_ops.zeros_like(lens2), steps))   # [B, T]
    flat_idx = math_ops.add(src, array_ops.expand_dims(math_ops.multiply(range_(0, b, 1), t), 1))
    rows = array_ops.reshape(y, join_ops.concat([array_ops.reshape(b * t, [1]),
                                                 index_ops.strided_slice(shp, [2], [r], [1])],
                                                0))
    out = array_ops.reshape(index_ops.gather(rows, array_ops.reshape(flat_idx, [-1])), shp)
    return array_ops.transpose(out, inv)


def bidirectional_dynamic_rnn(cell_fw: Any, cell_bw: Any, inputs: Any,
                              sequence_length: Any = None, initial_state_fw: Any = None,
                              initial_state_bw: Any = None, dtype: Any = None,
                              parallel_iterations: int | None = None,
                              swap_memory: bool = False, time_major: bool = False,
                              scope: Any = None) -> tuple[tuple[Tensor, Tensor], tuple[Any, Any]]:
    """((output_fw, output_bw), (state_fw, state_bw)): the backward cell reads each row's
    valid steps in reverse, and its outputs are reversed back into time order."""
    with variable_scope(scope if scope is not None else "bidirectional_rnn"):
        with variable_scope("fw") as fw_scope:
            out_fw, st_fw = dynamic_rnn(cell_fw, inputs, sequence_length, initial_state_fw,
                                        dtype, parallel_iterations, swap_memory, time_major,
                                        scope=fw_scope)
        t_ax, b_ax = (0, 1) if time_major else (1, 0)
        with variable_scope("bw") as bw_scope:
            rev = _reverse_time(convert_to_tensor(inputs), sequence_length, t_ax, b_ax)
            out, st_bw = dynamic_rnn(cell_bw, rev, sequence_length, initial_state_bw, dtype,
                                     parallel_iterations, swap_memory, time_major,
                                     scope=bw_scope)
        out_bw = _reverse_time(out, sequence_length, t_ax, b_ax)
        return (out_fw, out_bw), (st_fw, st_bw)
