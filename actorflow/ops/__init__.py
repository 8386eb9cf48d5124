"""Op definitions and the builder functions users call; kernels live in `devices.kernels`."""
