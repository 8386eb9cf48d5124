"""``af.math`` and ``af.linalg``: the TF 1.13+ namespaces over the ops that also live at the
top level (``af.math.reduce_sum is af.reduce_sum``; ``af.linalg.inv is af.matrix_inverse``).
Built after the top-level namespace exists; any top-level op name resolves through them."""

from __future__ import annotations

import types
from typing import Any


def build(top: Any) -> tuple[types.ModuleType, types.ModuleType]:
    """The two namespaces as modules whose attributes fall back to `top` (actorflow)."""
    math_ns = types.ModuleType("actorflow.math", "TF's tf.math: the math ops.")
    for name in ("sigmoid", "tanh", "softplus", "softsign", "log_sigmoid", "erf", "lgamma",
                 "digamma", "top_k", "in_top_k"):
        obj = getattr(top, name, None) or getattr(top.nn, name, None)
        if obj is not None:
            setattr(math_ns, name, obj)
    math_ns.divide = top.div if hasattr(top, "div") else top.truediv
    from actorflow.ops import reduction_ops, trig_ops
    math_ns.xdivy, math_ns.xlogy = trig_ops.xdivy, trig_ops.xlogy
    math_ns.reduce_variance = reduction_ops.reduce_variance
    math_ns.reduce_std = reduction_ops.reduce_std
    math_ns.floormod = top.floormod
    math_ns.__getattr__ = lambda n: _fallback(top, n, "af.math")  # type: ignore[attr-defined]

    linalg = types.ModuleType("actorflow.linalg", "TF's tf.linalg: matrices.")
    linalg.inv = top.matrix_inverse
    linalg.cholesky = top.cholesky
    linalg.matmul = top.matmul
    linalg.norm = top.norm
    linalg.einsum = top.einsum
    linalg.transpose = top.matrix_transpose
    linalg.matrix_transpose = top.matrix_transpose
    linalg.diag = top.matrix_diag
    linalg.diag_part = top.matrix_diag_part
    linalg.trace = top.trace
    linalg.eye = top.eye
    linalg.tensordot = top.tensordot
    linalg.l2_normalize = top.nn.l2_normalize
    linalg.det = top.matrix_determinant
    linalg.slogdet = top.log_matrix_determinant
    linalg.solve = top.matrix_solve
    linalg.triangular_solve = top.matrix_triangular_solve
    linalg.band_part = top.matrix_band_part
    linalg.cross = top.cross

    def logdet(matrix: Any, name: str | None = None) -> Any:
        """log det of Hermitian positive definite matrices: 2 sum(log(diag(cholesky)))."""
        chol = top.cholesky(matrix)
        return 2.0 * top.reduce_sum(top.log(top.matrix_diag_part(chol)), -1, name=name)
    linalg.logdet = logdet
    linalg.__getattr__ = lambda n: _fallback(top, n, "af.linalg")  # type: ignore[attr-defined]
    return math_ns, linalg


def _fallback(top: Any, name: str, where: str) -> Any:
    obj = getattr(top, name, None)
    if obj is None:
        raise AttributeError(f"module '{where}' has no attribute '{name}'")
    return obj
