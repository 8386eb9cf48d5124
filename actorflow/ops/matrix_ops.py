"""Matrix ops beyond the inverse and Cholesky (which live in `linalg_ops`), with TF1's names
and gradients: matrix_band_part, matrix_determinant, log_matrix_determinant, matrix_solve,
matrix_triangular_solve, cross. Kernels: `devices/kernels/matrix.py`.

    af.matrix_band_part(a, 0, -1)           # the upper triangle
    af.matrix_solve(a, b)                   # x with a @ x = b, batched
    af.matrix_triangular_solve(l, b)        # only l's lower triangle is read

Gradients (as TF's): det: g * det * A^-T; log|det|: g * A^-T; solve X = A^-1 B:
dB = A^-T G, dA = -dB X^T (adjoint: dA = -X dB^T); a triangular solve's dA is kept to the
triangle it reads; band_part's gradient is the band of the gradient; cross: (b x g, g x a).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, register_gradient
from actorflow.ops import array_ops, compare_ops, math_ops
from actorflow.ops.compare_ops import convert_operands
from devices.errors import InvalidArgumentError

__all__ = ["matrix_band_part", "matrix_determinant", "log_matrix_determinant", "matrix_solve",
           "matrix_triangular_solve", "cross"]


def _floating(what: str, t: Tensor) -> None:
    if not t.dtype.is_floating:
        raise InvalidArgumentError(f"{what} needs a floating tensor, got {t.dtype.name}")


def _rank_at_least(what: str, t: Tensor, k: int) -> None:
    s = t._shape
    if s is not None and len(s) < k:
        raise InvalidArgumentError(f"{what} needs a tensor of rank >= {k}, got shape {list(s)}")


def _same(ins: list[Tensor], attrs: dict) -> list:
    return [(ins[0].dtype, ins[0]._shape)]


def _batch_scalar(what: str) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        a = ins[0]
        _floating(what, a)
        _rank_at_least(what, a, 2)
        s = None if a._shape is None else a._shape[:-2]
        return [(a.dtype, s)]
    return infer


def _slogdet_infer(ins: list[Tensor], attrs: dict) -> list:
    (t, s), = _batch_scalar("log_matrix_determinant")(ins, attrs)
    return [(t, s), (t, s)]


def _solve_infer(what: str) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        a, b = ins
        _floating(what, a)
        if a.dtype != b.dtype:
            raise InvalidArgumentError(f"{what}: the matrix is {a.dtype.name} but the "
                                       f"right-hand side is {b.dtype.name}")
        _rank_at_least(what, a, 2)
        _rank_at_least(what, b, 2)
        return [(b.dtype, b._shape)]
    return infer


define_op("MatrixBandPart", infer=_same)
define_op("MatrixDeterminant", infer=_batch_scalar("matrix_determinant"))
define_op("LogMatrixDeterminant", infer=_slogdet_infer)
define_op("MatrixSolve", infer=_solve_infer("matrix_solve"))
define_op("MatrixTriangularSolve", infer=_solve_infer("matrix_triangular_solve"))
define_op("Cross", infer=_same)


def _mT(x: Tensor) -> Tensor:  # noqa: N802
    from actorflow.ops.composite_ops import matrix_transpose
    return matrix_transpose(x)


def matrix_band_part(input: Any, num_lower: Any, num_upper: Any,  # noqa: A002
                     name: str | None = None) -> Tensor:
    """Zero everything outside a band of each innermost matrix: `num_lower` sub-diagonals and
    `num_upper` super-diagonals kept (negative: all of them)."""
    x = convert_to_tensor(input)
    _rank_at_least("matrix_band_part", x, 2)
    lo = compare_ops.cast(convert_to_tensor(num_lower), "int64")
    up = compare_ops.cast(convert_to_tensor(num_upper), "int64")
    return apply_op("MatrixBandPart", [x, lo, up], name=name or "MatrixBandPart")[0]


@register_gradient("MatrixBandPart")
def _band_part_grad(op: Operation, grad: Tensor) -> list[Any]:
    return [matrix_band_part(grad, op.inputs[1], op.inputs[2]), None, None]


def matrix_determinant(input: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """The determinant of each innermost square matrix."""
    return apply_op("MatrixDeterminant", [convert_to_tensor(input)],
                    name=name or "MatrixDeterminant")[0]


@register_gradient("MatrixDeterminant")
def _det_grad(op: Operation, grad: Tensor) -> list[Any]:
    from actorflow.ops.linalg_ops import matrix_inverse
    a, det = op.inputs[0], op.outputs[0]
    scale = array_ops.expand_dims(array_ops.expand_dims(math_ops.multiply(grad, det), -1), -1)
    return [math_ops.multiply(scale, _mT(matrix_inverse(a)))]


def log_matrix_determinant(input: Any, name: str | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
    """(sign, log |det|) of each innermost square matrix."""
    sign, logdet = apply_op("LogMatrixDeterminant", [convert_to_tensor(input)],
                            name=name or "LogMatrixDeterminant")
    return sign, logdet


@register_gradient("LogMatrixDeterminant")
def _slogdet_grad(op: Operation, _sign_grad: Any, grad: Any) -> list[Any]:
    from actorflow.ops.linalg_ops import matrix_inverse
    if grad is None:
        return [None]
    scale = array_ops.expand_dims(array_ops.expand_dims(grad, -1), -1)
    return [math_ops.multiply(scale, _mT(matrix_inverse(op.inputs[0])))]


def matrix_solve(matrix: Any, rhs: Any, adjoint: bool = False,
                 name: str | None = None) -> Tensor:
    """X with matrix @ X = rhs (matrix^H @ X = rhs with `adjoint`), for each batch entry."""
    return apply_op("MatrixSolve", [convert_to_tensor(matrix), convert_to_tensor(rhs)],
                    {"adjoint": bool(adjoint)}, name=name or "MatrixSolve")[0]


@register_gradient("MatrixSolve")
def _solve_grad(op: Operation, grad: Tensor) -> list[Any]:
    a, x = op.inputs[0], op.outputs[0]
    adjoint = bool(op.attrs.get("adjoint"))
    db = matrix_solve(a, grad, adjoint=not adjoint)
    da = math_ops.negative(math_ops.matmul(x, db, transpose_b=True) if adjoint
                           else math_ops.matmul(db, x, transpose_b=True))
    return [da, db]


def matrix_triangular_solve(matrix: Any, rhs: Any, lower: bool = True, adjoint: bool = False,
                            name: str | None = None) -> Tensor:
    """X with L @ X = rhs, L the lower (or, `lower=False`, upper) triangle of `matrix` (the
    other triangle is not read); L^H @ X = rhs with `adjoint`."""
    return apply_op("MatrixTriangularSolve", [convert_to_tensor(matrix), convert_to_tensor(rhs)],
                    {"lower": bool(lower), "adjoint": bool(adjoint)},
                    name=name or "MatrixTriangularSolve")[0]


@register_gradient("MatrixTriangularSolve")
def _triangular_solve_grad(op: Operation, grad: Tensor) -> list[Any]:
    a, x = op.inputs[0], op.outputs[0]
    lower, adjoint = bool(op.attrs.get("lower", True)), bool(op.attrs.get("adjoint"))
    db = matrix_triangular_solve(a, grad, lower=lower, adjoint=not adjoint)
    da = math_ops.negative(math_ops.matmul(x, db, transpose_b=True) if adjoint
                           else math_ops.matmul(db, x, transpose_b=True))
    da = matrix_band_part(da, -1, 0) if lower else matrix_band_part(da, 0, -1)
    return [da, db]


def cross(a: Any, b: Any, name: str | None = None) -> Tensor:
    """The cross product of 3-vectors along the last dimension."""
    a, b = convert_operands([a, b], "cross")
    return apply_op("Cross", [a, b], name=name or "Cross")[0]


@register_gradient("Cross")
def _cross_grad(op: Operation, grad: Tensor) -> list[Any]:
    a, b = op.inputs
    return [cross(b, grad), cross(grad, a)]
