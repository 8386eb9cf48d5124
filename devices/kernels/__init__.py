"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.
"""

from devices.kernels import registry  # noqa: F401
from devices.kernels import base  # noqa: F401,E402
from devices.kernels import array, math  # noqa: F401,E402
from devices.kernels import state  # noqa: F401,E402
from devices.kernels import sendrecv  # noqa: F401,E402
from devices.kernels import conv, nn  # noqa: F401,E402
from devices.kernels import reduction  # noqa: F401,E402
from devices.kernels import index  # noqa: F401,E402
from devices.kernels import random  # noqa: F401,E402
