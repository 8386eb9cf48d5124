"""Variable names of the bidirectional RNNs are TensorFlow's (a TF1 checkpoint restores into
them): the cells' variables sit directly under fw/ and bw/, as TensorFlow 2.21 names them
(checked side by side by benchmarks/audit_ops.py); and `af.nest` walks RNN state tuples."""

from __future__ import annotations

import numpy as np

import actorflow as af


def test_bidirectional_rnn_variable_names_are_tensorflows() -> None:
    with af.Graph().as_default():
        x = af.constant(np.zeros((2, 3, 4), np.float32))
        af.nn.bidirectional_dynamic_rnn(af.nn.rnn_cell.GRUCell(3), af.nn.rnn_cell.GRUCell(3),
                                        x, dtype=af.float32)
        with af.variable_scope("static"):
            af.nn.static_bidirectional_rnn(af.nn.rnn_cell.BasicLSTMCell(2),
                                           af.nn.rnn_cell.BasicLSTMCell(2),
                                           af.unstack(x, axis=1), dtype=af.float32)
        names = sorted(v.name for v in af.trainable_variables())
    assert names == sorted(
        [f"bidirectional_rnn/{d}/gru_cell/{p}/{k}:0" for d in ("fw", "bw")
         for p in ("gates", "candidate") for k in ("kernel", "bias")]
        + [f"static/bidirectional_rnn/{d}/basic_lstm_cell/{k}:0" for d in ("fw", "bw")
           for k in ("kernel", "bias")])


def test_nest_walks_state_tuples() -> None:
    st = af.nn.rnn_cell.LSTMStateTuple(c=1, h=(2, [3]))
    assert af.nest.flatten(st) == [1, 2, 3]
    doubled = af.nest.map_structure(lambda a, b: a + b, st, st)
    assert isinstance(doubled, af.nn.rnn_cell.LSTMStateTuple) and doubled.h == (4, [6])
