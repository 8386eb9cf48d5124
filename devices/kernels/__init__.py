"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.
"""

from devices.kernels import registry  # noqa: F401
