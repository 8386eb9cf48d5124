"""``af.py_func``: a Python function as a graph op (TF1's ``tf.py_func``), run on the NumPy
values of its inputs in the process that built the graph (see `devices.kernels.pyfunc`).

    def augment(x):
        return np.flip(x, 1).astype(np.float32)
    y = af.py_func(augment, [images], af.float32)

Outputs have unknown static shapes (set them with ``y.set_shape`` if known); the op is
stateful (never merged or folded) and has no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes
from devices.kernels.pyfunc import register_function

__all__ = ["py_func", "numpy_function"]


def _infer(ins: list[Tensor], attrs: dict) -> list:
    return [(dt, None) for dt in attrs["Tout"]]


define_op("PyFunc", infer=_infer, stateful=True)
no_gradient("PyFunc")


def py_func(func: Callable[..., Any], inp: list[Any], Tout: Any, stateful: bool = True,  # noqa: N803
            name: str | None = None) -> Any:
    """Outputs of ``func(*numpy values of inp)``: one tensor, or a list when Tout is a list."""
    single = not isinstance(Tout, list | tuple)
    touts = [dtypes.as_dtype(t) for t in ([Tout] if single else Tout)]
    ins = [convert_to_tensor(x) for x in inp]
    outs = apply_op("PyFunc", ins, {"token": register_function(func), "Tout": tuple(touts)},
                    name=name or "PyFunc")
    return outs[0] if single else list(outs)


numpy_function = py_func
