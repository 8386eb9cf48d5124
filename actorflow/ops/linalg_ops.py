"""N-d indexing and linear algebra: gather_nd, scatter_nd, matrix_inverse, cholesky, einsum,
eye, matrix_diag/diag_part and trace, with their gradients.

    af.gather_nd(params, [[0, 1], [2, 0]])            # params[0, 1], params[2, 0]
    af.scatter_nd(indices, updates, shape)            # zeros of `shape`, updates summed in
    af.einsum("bij,bjk->bik", a, b)

Gradients: gather_nd <-> scatter_nd (each is the other's), inverse: -A^-T g A^-T, cholesky:
Murray's formula (through the inverse of L), einsum: one einsum per operand, any number of
operands (an axis summed out of one operand alone is broadcast back; repeated axes within an
operand, diagonals, have no gradient built).
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, register_gradient
from actorflow.ops import array_ops, compare_ops, math_ops
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["gather_nd", "scatter_nd", "matrix_inverse", "cholesky", "einsum", "eye",
           "matrix_diag", "matrix_diag_part", "trace"]


def _gather_nd_infer(ins: list[Tensor], attrs: dict) -> list:
    p, i = ins
    if not i.dtype.is_integer:
        raise InvalidArgumentError(f"gather_nd needs integer indices, got {i.dtype.name}")
    ps, is_ = p._shape, i._shape
    if ps is None or is_ is None or is_[-1] is None:
        return [(p.dtype, None)]
    k = is_[-1]
    if k > len(ps):
        raise InvalidArgumentError(f"gather_nd: index depth {k} is larger than the rank "
                                   f"{len(ps)} of params")
    return [(p.dtype, (*is_[:-1], *ps[k:]))]


define_op("GatherNd", infer=_gather_nd_infer)


def gather_nd(params: Any, indices: Any, name: str | None = None, batch_dims: int = 0) -> Tensor:
    """out[i...] = params[indices[i..., :]] (the last axis of indices indexes params)."""
    if batch_dims:  # one gather_nd per batch position (TF's batch_dims)
        from actorflow.ops.batch_gather_ops import batch_gather_nd  # noqa: PLC0415
        return batch_gather_nd(params, indices, batch_dims, name)
    p = convert_to_tensor(params)
    i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
    return apply_op("GatherNd", [p, i], name=name or "GatherNd")[0]


def _scatter_nd_infer(ins: list[Tensor], attrs: dict) -> list:
    from actorflow.op_def import constant_value
    i, u, s = ins
    sv = constant_value(s)
    shape = tuple(int(d) for d in sv) if sv is not None else (
        None if s._shape is None or s._shape[0] is None else (None,) * s._shape[0])
    return [(u.dtype, shape)]


define_op("ScatterNd", infer=_scatter_nd_infer)


def scatter_nd(indices: Any, updates: Any, shape: Any, name: str | None = None) -> Tensor:
    """Zeros of `shape` with updates[i...] added at indices[i..., :] (duplicates sum)."""
    i = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
    u = convert_to_tensor(updates)
    s = convert_to_tensor(shape, dtype=i.dtype) if not isinstance(shape, Tensor) else shape
    return apply_op("ScatterNd", [i, u, s], name=name or "ScatterNd")[0]


@register_gradient("GatherNd")
def _gather_nd_grad(op: Operation, grad: Tensor) -> list[Any]:
    p, i = op.inputs
    shp = compare_ops.cast(array_ops.shape(p), i.dtype)
    return [scatter_nd(i, grad, shp), None]


@register_gradient("ScatterNd")
def _scatter_nd_grad(op: Operation, grad: Tensor) -> list[Any]:
    i = op.inputs[0]
    return [None, gather_nd(grad, i), None]


# ---- matrices ---------------------------------------------------------------------------
def _square_infer(what: str) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> list:
        a = ins[0]
        if not a.dtype.is_floating:
            raise InvalidArgumentError(f"{what} needs a floating matrix, got {a.dtype.name}")
        s = a._shape
        if s is not None:
            if len(s) < 2:
                raise InvalidArgumentError(f"{what} needs a tensor of rank >= 2, got {s}")
            if s[-1] is not None and s[-2] is not None and s[-1] != s[-2]:
                raise InvalidArgumentError(f"{what} needs square matrices, got shape "
                                           f"{list(s)}")
        return [(a.dtype, s)]
    return infer


define_op("MatrixInverse", infer=_square_infer("matrix_inverse"))
define_op("Cholesky", infer=_square_infer("cholesky"))


def matrix_inverse(input: Any, adjoint: bool = False, name: str | None = None) -> Tensor:  # noqa: A002
    return apply_op("MatrixInverse", [convert_to_tensor(input)], {"adjoint": bool(adjoint)},
                    name=name or "MatrixInverse")[0]


def cholesky(input: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """The lower-triangular L with L L^T = input."""
    return apply_op("Cholesky", [convert_to_tensor(input)], name=name or "Cholesky")[0]


def _mT(x: Tensor) -> Tensor:  # noqa: N802
    from actorflow.ops.composite_ops import matrix_transpose
    return matrix_transpose(x)


@register_gradient("MatrixInverse")
def _inverse_grad(op: Operation, grad: Tensor) -> list[Any]:
    # Y = A^-1: dA = -Y^T G Y^T; with adjoint, Z = Y^T: dA = -Z G^T Z.
    y = op.outputs[0]
    if op.attrs.get("adjoint"):
        return [math_ops.negative(math_ops.matmul(y, math_ops.matmul(_mT(grad), y)))]
    return [math_ops.negative(math_ops.matmul(_mT(y), math_ops.matmul(grad, _mT(y))))]


@register_gradient("Cholesky")
def _cholesky_grad(op: Operation, grad: Tensor) -> list[Any]:
    # S = L^-T Phi(L^T g) L^-1, grad_A = (S + S^T) / 2, Phi: lower triangle, diagonal halved.
    L = op.outputs[0]  # noqa: N806
    linv = matrix_inverse(L)
    p = _phi(math_ops.matmul(_mT(L), grad))
    s = math_ops.matmul(_mT(linv), math_ops.matmul(p, linv))
    return [math_ops.multiply(0.5, math_ops.add(s, _mT(s)))]


def _phi(x: Tensor) -> Tensor:
    """The lower triangle of x with its diagonal halved."""
    n = _dim(x, -1)
    from actorflow.ops.partition_ops import range as range_
    r = range_(0, n, 1)
    lower = compare_ops.cast(compare_ops.greater_equal(array_ops.expand_dims(r, 1),
                                                       array_ops.expand_dims(r, 0)), x.dtype)
    diag = compare_ops.cast(compare_ops.equal(array_ops.expand_dims(r, 1),
                                              array_ops.expand_dims(r, 0)), x.dtype)
    return math_ops.multiply(x, math_ops.subtract(lower, math_ops.multiply(0.5, diag)))


def _dim(x: Tensor, axis: int) -> Any:
    d = x.shape[axis] if x.shape.rank is not None else None
    if d is not None:
        return int(d)
    from actorflow.ops import index_ops
    return index_ops.gather(array_ops.shape(x), axis % x.shape.rank)


def eye(num_rows: int, num_columns: int | None = None, batch_shape: Any = None,
        dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    """The identity matrix [num_rows, num_columns] (batched when batch_shape is given)."""
    import numpy as np

    from actorflow.op_def import constant
    m = np.eye(int(num_rows), int(num_columns or num_rows), dtype=dtypes.as_dtype(dtype).np)
    if batch_shape is not None:
        m = np.broadcast_to(m, (*[int(b) for b in batch_shape], *m.shape)).copy()
    return constant(m, name=name or "eye")


def matrix_diag(diagonal: Any, name: str | None = None) -> Tensor:
    """[..., n] -> [..., n, n] with `diagonal` on the diagonal."""
    with name_scope(name, "MatrixDiag"):
        d = convert_to_tensor(diagonal)
        n = _dim(d, -1)
        e = eye(n, dtype=d.dtype) if isinstance(n, int) else None
        if e is None:
            raise InvalidArgumentError("matrix_diag needs the diagonal's length known")
        return math_ops.multiply(array_ops.expand_dims(d, -1), e)


def matrix_diag_part(input: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """[..., n, n] -> [..., n]: the diagonals."""
    with name_scope(name, "MatrixDiagPart"):
        x = convert_to_tensor(input)
        n = _dim(x, -1)
        if not isinstance(n, int):
            raise InvalidArgumentError("matrix_diag_part needs the matrix size known")
        from actorflow.ops import reduction_ops
        return reduction_ops.reduce_sum(math_ops.multiply(x, eye(n, dtype=x.dtype)), -1)


def trace(x: Any, name: str | None = None) -> Tensor:
    from actorflow.ops import reduction_ops
    with name_scope(name, "Trace"):
        return reduction_ops.reduce_sum(matrix_diag_part(x), -1)


# ---- einsum -----------------------------------------------------------------------------
def _parse(eq: str, n: int) -> tuple[list[str], str]:
    eq = eq.replace(" ", "")
    if "..." in eq:
        raise InvalidArgumentError("einsum: ellipsis ('...') is not supported; name the axes")
    if "->" in eq:
        lhs, out = eq.split("->")
    else:
        lhs = eq
        counts: dict[str, int] = {}
        for c in lhs.replace(",", ""):
            counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    ins = lhs.split(",")
    if len(ins) != n:
        raise InvalidArgumentError(f"einsum: the equation {eq!r} names {len(ins)} operands, "
                                   f"{n} were given")
    return ins, out


def _einsum_infer(ins: list[Tensor], attrs: dict) -> list:
    specs, out = _parse(attrs["equation"], len(ins))
    sizes: dict[str, int | None] = {}
    for t, sp in zip(ins, specs, strict=True):
        s = t._shape
        if s is not None:
            if len(s) != len(sp):
                raise InvalidArgumentError(f"einsum: operand '{t.name}' has rank {len(s)}, the "
                                           f"equation gives it {len(sp)} axes ({sp!r})")
            for c, d in zip(sp, s, strict=True):
                if d is not None:
                    if sizes.get(c) not in (None, d) and d != 1 and sizes[c] != 1:
                        raise InvalidArgumentError(f"einsum: axis '{c}' has sizes {sizes[c]} "
                                                   f"and {d}")
                    sizes[c] = d
    dts = {t.dtype for t in ins}
    if len(dts) != 1:
        raise InvalidArgumentError("einsum needs operands of one dtype; convert with af.cast")
    return [(ins[0].dtype, tuple(sizes.get(c) for c in out))]


define_op("Einsum", infer=_einsum_infer)


def einsum(equation: str, *inputs: Any, name: str | None = None, **unused: Any) -> Tensor:
    """Einstein summation over the operands, as numpy.einsum (no ellipsis)."""
    xs = [convert_to_tensor(x) for x in inputs]
    _parse(equation, len(xs))
    return apply_op("Einsum", xs, {"equation": equation.replace(" ", "")},
                    name=name or "Einsum")[0]


@register_gradient("Einsum")
def _einsum_grad(op: Operation, grad: Tensor) -> list[Any]:
    """d/dx_k = einsum(out, every other operand -> x_k's axes): one einsum per operand, for any
    number of operands. An axis only x_k has (summed out of it alone) comes from a ones_like
    of x_k as an extra operand, which broadcasts the gradient along it."""
    specs, out = _parse(op.attrs["equation"], len(op.inputs))
    grads = []
    for k, mine in enumerate(specs):
        if len(set(mine)) != len(mine):
            raise InvalidArgumentError(
                f"the gradient of einsum {op.attrs['equation']!r} is not built for an operand "
                f"with a repeated axis ({mine!r}, a diagonal)")
        others = [sp for j, sp in enumerate(specs) if j != k]
        tensors = [t for j, t in enumerate(op.inputs) if j != k]
        seen = set(out).union(*others)
        if any(c not in seen for c in mine):
            others.append(mine)
            tensors.append(array_ops.ones_like(op.inputs[k]))
        grads.append(einsum(f"{out},{','.join(others)}->{mine}", grad, *tensors))
    return grads
