"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.
"""

from devices.kernels import (  # noqa: F401,E402  # noqa: F401,E402
    array,
    base,  # noqa: F401,E402
    control_flow,  # noqa: F401,E402
    conv,
    index,  # noqa: F401,E402
    math,
    nn,
    random,  # noqa: F401,E402
    reduction,  # noqa: F401,E402
    registry,  # noqa: F401
    sendrecv,  # noqa: F401,E402
    state,  # noqa: F401,E402
)
