"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.
"""

from devices.kernels import (  # noqa: F401  (imported to register their kernels)
    array,
    base,
    control_flow,
    conv,
    fused,
    index,
    math,
    nn,
    partition,
    random,
    reduction,
    registry,
    sendrecv,
    state,
)
