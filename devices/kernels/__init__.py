"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.
"""

from devices.kernels import (  # noqa: F401  (imported to register their kernels)
    array,
    base,
    control_flow,
    conv,
    debug,
    index,
    linalg,
    math,
    nn,
    partition,
    pyfunc,
    random,
    reduction,
    registry,
    sampling,
    scan_sort,
    segment,
    sendrecv,
    state,
    trig,
)
