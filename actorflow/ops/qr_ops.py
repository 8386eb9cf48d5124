"""TF's Qr op (`qr`: the reduced or full QR decomposition of the last two axes; kernel in
`devices.kernels.random_more`, NumPy's), used by the orthogonal initializer. Not
differentiable here (TF's QR gradient is not implemented)."""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices.errors import InvalidArgumentError

__all__ = ["qr"]


def _qr_infer(ins: list[Tensor], a: dict) -> list:
    s = ins[0]._shape
    if s is None:
        return [(ins[0].dtype, None), (ins[0].dtype, None)]
    if len(s) != 2:
        raise InvalidArgumentError(f"qr takes a matrix here, got shape {list(s)}")
    m, n = s
    k = None if m is None or n is None else min(m, n)
    if a.get("full_matrices"):
        return [(ins[0].dtype, (m, m)), (ins[0].dtype, (m, n))]
    return [(ins[0].dtype, (m, k)), (ins[0].dtype, (k, n))]


define_op("Qr", infer=_qr_infer)
no_gradient("Qr")


def qr(input: Any, full_matrices: bool = False, name: str | None = None  # noqa: A002
       ) -> tuple[Tensor, Tensor]:
    x = convert_to_tensor(input)
    if not x.dtype.is_floating:
        raise TypeError(f"qr takes a float matrix, got {x.dtype.name}")
    q, r = apply_op("Qr", [x], {"full_matrices": bool(full_matrices)}, name=name or "Qr")
    return q, r
