"""``af.contrib.rnn``: TF1's contrib names of the RNN cells and runners, plus the block cells
(`LSTMBlockCell`, `GRUBlockCell`: the same math as LSTMCell and GRUCell, which TF1 fused into
one kernel) and `stack_bidirectional_dynamic_rnn`."""

from __future__ import annotations

from typing import Any

from actorflow.rnn import bidirectional_dynamic_rnn, static_bidirectional_rnn, static_rnn
from actorflow.rnn_cell import (
    BasicLSTMCell,
    BasicRNNCell,
    DropoutWrapper,
    GRUCell,
    LSTMCell,
    LSTMStateTuple,
    MultiRNNCell,
    ResidualWrapper,
    RNNCell,
)

__all__ = ["BasicLSTMCell", "BasicRNNCell", "DropoutWrapper", "GRUCell", "LSTMCell",
           "LSTMStateTuple", "MultiRNNCell", "ResidualWrapper", "RNNCell", "static_rnn",
           "static_bidirectional_rnn", "LSTMBlockCell", "GRUBlockCell", "GRUBlockCellV2",
           "stack_bidirectional_dynamic_rnn"]


class LSTMBlockCell(LSTMCell):
    """TF1's LSTMBlockCell: an LSTM (forget bias, optional cell clip and peepholes)."""

    def __init__(self, num_units: int, forget_bias: float = 1.0, cell_clip: Any = None,
                 use_peephole: bool = False, dtype: Any = None, reuse: Any = None,
                 name: str = "lstm_cell"):
        super().__init__(num_units, use_peepholes=use_peephole,
                         cell_clip=None if cell_clip is None or cell_clip < 0 else cell_clip,
                         forget_bias=forget_bias, reuse=reuse, name=name, dtype=dtype)


class GRUBlockCell(GRUCell):
    """TF1's GRUBlockCell: a GRU of `num_units` (`cell_size` is its old name)."""

    def __init__(self, num_units: int | None = None, cell_size: int | None = None,
                 reuse: Any = None, name: str = "gru_cell"):
        n = num_units if num_units is not None else cell_size
        if n is None:
            raise ValueError("GRUBlockCell needs num_units")
        super().__init__(n, reuse=reuse, name=name)


GRUBlockCellV2 = GRUBlockCell


def stack_bidirectional_dynamic_rnn(cells_fw: list[Any], cells_bw: list[Any], inputs: Any,
                                    initial_states_fw: list[Any] | None = None,
                                    initial_states_bw: list[Any] | None = None,
                                    dtype: Any = None, sequence_length: Any = None,
                                    parallel_iterations: int | None = None,
                                    time_major: bool = False, scope: Any = None,
                                    swap_memory: bool = False
                                    ) -> tuple[Any, tuple[Any, ...], tuple[Any, ...]]:
    """Bidirectional layers stacked: each layer reads the previous layer's forward and
    backward outputs concatenated. Returns (outputs, forward states, backward states)."""
    from actorflow.ops import join_ops
    from actorflow.variable_scope import variable_scope
    if not cells_fw or len(cells_fw) != len(cells_bw):
        raise ValueError("cells_fw and cells_bw must be non-empty lists of the same length")
    states_fw, states_bw = [], []
    x = inputs
    with variable_scope(scope or "stack_bidirectional_rnn"):
        for i, (fw, bw) in enumerate(zip(cells_fw, cells_bw, strict=True)):
            with variable_scope(f"cell_{i}"):
                (out_fw, out_bw), (st_fw, st_bw) = bidirectional_dynamic_rnn(
                    fw, bw, x, sequence_length=sequence_length,
                    initial_state_fw=initial_states_fw[i] if initial_states_fw else None,
                    initial_state_bw=initial_states_bw[i] if initial_states_bw else None,
                    dtype=dtype, parallel_iterations=parallel_iterations,
                    time_major=time_major, swap_memory=swap_memory)
            x = join_ops.concat([out_fw, out_bw], 2)
            states_fw.append(st_fw)
            states_bw.append(st_bw)
    return x, tuple(states_fw), tuple(states_bw)
