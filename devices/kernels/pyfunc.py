"""The kernel of ``af.py_func``: call a Python function on the inputs' NumPy values.

The function cannot travel in a graph (nothing on the wire is pickled), so the op carries an
integer token and the function stays in this process's `_FUNCTIONS` table: a py_func node runs
only in the process that built it, on its CPU. The outputs are converted to the declared
dtypes; a wrong count of outputs or an exception in the function fails the step with
InvalidArgument naming the function.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError, NotFoundError
from devices.kernels.registry import KernelContext, register_kernel

_FUNCTIONS: dict[int, Callable[..., Any]] = {}
_TOKENS = itertools.count(1)


def register_function(fn: Callable[..., Any]) -> int:
    """Keep `fn` for py_func nodes; returns its token."""
    token = next(_TOKENS)
    _FUNCTIONS[token] = fn
    return token


@register_kernel("PyFunc", stateful=True, device_types=("CPU",))
def _py_func(k: KernelContext) -> Any:
    token = int(k.attrs["token"])
    fn = _FUNCTIONS.get(token)
    if fn is None:
        raise NotFoundError(f"py_func '{k.name}': its Python function lives in the process "
                            f"that built the graph; run it there (on a local device)")
    outs = [d.np for d in k.out_dtypes]
    fname = getattr(fn, "__name__", repr(fn))

    def compute(*xs: Any) -> tuple[Any, ...]:
        try:
            r = fn(*xs)
        except Exception as e:  # the user's function: its error becomes the step's
            raise InvalidArgumentError(f"py_func {fname} raised {type(e).__name__}: {e}") \
                from e
        rs = list(r) if isinstance(r, list | tuple) else ([] if r is None else [r])
        if len(rs) != len(outs):
            raise InvalidArgumentError(f"py_func {fname} returned {len(rs)} values, "
                                       f"Tout declares {len(outs)}")
        return tuple(np.asarray(v, dtype=dt) for v, dt in zip(rs, outs, strict=True))
    return compute
