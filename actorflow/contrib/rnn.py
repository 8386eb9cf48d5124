"""``af.contrib.rnn``: TF1's contrib names of the RNN cells and runners."""

from actorflow.rnn import static_bidirectional_rnn, static_rnn
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
           "static_bidirectional_rnn"]
