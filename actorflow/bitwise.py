"""``af.bitwise``: TF1's tf.bitwise namespace (the builders are in `actorflow.ops.bit_ops`)."""

from actorflow.ops.bit_ops import (
    bitwise_and,
    bitwise_or,
    bitwise_xor,
    invert,
    left_shift,
    right_shift,
)

__all__ = ["bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift"]
