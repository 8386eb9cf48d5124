"""Kernels of the trigonometric and hyperbolic ufuncs beyond sin/cos/tanh: Tan, Asin, Acos,
Atan, Atan2, Sinh, Cosh, Asinh, Acosh, Atanh (one body for NumPy and CuPy)."""

from devices.kernels.registry import register_kernel
from devices.kernels.ufunc import ufunc_kernel

for _op, _ufunc in {"Tan": "tan", "Asin": "arcsin", "Acos": "arccos", "Atan": "arctan",
                    "Atan2": "arctan2", "Sinh": "sinh", "Cosh": "cosh", "Asinh": "arcsinh",
                    "Acosh": "arccosh", "Atanh": "arctanh"}.items():
    register_kernel(_op)(ufunc_kernel(_ufunc))
