"""The fused cross-entropy losses of ``af.nn`` (re-exported by `nn_ops`), as TensorFlow has
them: ``SoftmaxCrossEntropyWithLogits`` and its sparse form return the per-row loss *and* its
backprop (softmax - labels) in one pass, and the gradient function scales that saved output
(``ExpandDimsMul``: grad[:, None] * backprop) instead of recomputing the softmax;
``SigmoidCrossEntropyWithLogits`` is the stable max(x, 0) - x z + log(1 + exp(-|x|)) with a
gradient kernel of its own.

    loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z))
"""

from __future__ import annotations

from typing import Any

from actorflow import shapes
from actorflow.graph import Operation, Tensor
from actorflow.op_def import (
    apply_op,
    convert_to_tensor,
    define_op,
    no_gradient,
    register_gradient,
)
from actorflow.ops import core_ops, math_ops
from actorflow.ops.nn_checks import (
    Infer,
    _check_axis,
    _float,
    _rank_at_least,
    _same_dtype,
)
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__: list[str] = []


# ---- fused losses -----------------------------------------------------------------------
def _xent_infer(ins: list[Tensor], attrs: dict) -> Infer:
    logits, labels = ins
    dt = _float(logits, "softmax_cross_entropy_with_logits")
    if labels.dtype is not dt:
        raise InvalidArgumentError(
            f"softmax_cross_entropy_with_logits: labels are {labels.dtype.name} but logits are "
            f"{dt.name}; the labels must be probabilities of the logits' dtype (for class "
            f"indices use sparse_softmax_cross_entropy_with_logits)")
    _rank_at_least(logits, 1, "softmax_cross_entropy_with_logits")
    if not shapes.is_compatible(logits._shape, labels._shape):
        raise InvalidArgumentError(
            f"softmax_cross_entropy_with_logits: logits of shape {shapes.fmt(logits._shape)} and "
            f"labels of shape {shapes.fmt(labels._shape)} must have the same shape")
    full = shapes.merge(logits._shape, labels._shape)
    axis = _check_axis(logits, attrs["axis"], "softmax_cross_entropy_with_logits")
    loss = None if full is None else tuple(d for i, d in enumerate(full)
                                           if i != axis % len(full))
    return [(dt, loss), (dt, full)]


def _sparse_xent_infer(ins: list[Tensor], attrs: dict) -> Infer:
    logits, labels = ins
    what = "sparse_softmax_cross_entropy_with_logits"
    dt = _float(logits, what)
    if labels.dtype not in (dtypes.int32, dtypes.int64):
        raise InvalidArgumentError(
            f"{what}: labels must be int32 or int64 class indices, got {labels.dtype.name} "
            f"('{labels.name}'); for one-hot or probability labels use "
            f"softmax_cross_entropy_with_logits")
    _rank_at_least(logits, 1, what)
    lead = None if logits._shape is None else logits._shape[:-1]
    if not shapes.is_compatible(lead, labels._shape):
        raise InvalidArgumentError(
            f"{what}: labels of shape {shapes.fmt(labels._shape)} must have the shape of the "
            f"logits {shapes.fmt(logits._shape)} without its last (class) dimension, "
            f"{shapes.fmt(lead)}")
    loss = shapes.merge(lead, labels._shape)
    full = logits._shape if loss is None else tuple(loss) + (
        None if logits._shape is None else logits._shape[-1],)
    return [(dt, loss), (dt, full)]


def _expand_mul_infer(ins: list[Tensor], attrs: dict) -> Infer:
    vec, mat = ins
    dt = _same_dtype(vec, mat, "ExpandDimsMul")
    return [(dt, mat._shape)]


def _same_shape_infer(what: str, n_out: int) -> Any:
    def infer(ins: list[Tensor], attrs: dict) -> Infer:
        x, z = ins[0], ins[1]
        dt = _float(x, what)
        if z.dtype is not dt:
            raise InvalidArgumentError(
                f"{what}: labels are {z.dtype.name} but logits are {dt.name}; convert the labels "
                f"with af.cast(labels, af.{dt.name})")
        if not shapes.is_compatible(x._shape, z._shape):
            raise InvalidArgumentError(
                f"{what}: logits of shape {shapes.fmt(x._shape)} and labels of shape "
                f"{shapes.fmt(z._shape)} must have the same shape")
        shp = shapes.merge(x._shape, z._shape)
        return [(dt, shp)] * n_out
    return infer


define_op("SoftmaxCrossEntropyWithLogits", infer=_xent_infer)
define_op("SparseSoftmaxCrossEntropyWithLogits", infer=_sparse_xent_infer)
define_op("ExpandDimsMul", infer=_expand_mul_infer)
define_op("SigmoidCrossEntropyWithLogits",
          infer=_same_shape_infer("sigmoid_cross_entropy_with_logits", 1))
define_op("SigmoidCrossEntropyWithLogitsGrad",
          infer=_same_shape_infer("sigmoid_cross_entropy_with_logits", 2))
no_gradient("SigmoidCrossEntropyWithLogitsGrad")


def _expand_mul(vec: Tensor, mat: Tensor, axis: int) -> Tensor:
    return apply_op("ExpandDimsMul", [vec, mat], {"axis": axis}, name="ExpandDimsMul")[0]


def _need(labels: Any, logits: Any, what: str) -> None:
    if labels is None or logits is None:
        raise InvalidArgumentError(f"{what} needs both labels= and logits= (pass them by name)")


def softmax_cross_entropy_with_logits_v2(_sentinel: Any = None, labels: Any = None,
                                         logits: Any = None, axis: int = -1,
                                         name: str | None = None, dim: int | None = None
                                         ) -> Tensor:
    """Cross-entropy of softmax(logits) against label distributions, per row (the class axis
    removed). Gradients flow into both logits and labels."""
    what = "softmax_cross_entropy_with_logits"
    if _sentinel is not None:
        raise InvalidArgumentError(f"{what}: pass labels= and logits= by name")
    _need(labels, logits, what)
    x = convert_to_tensor(logits)
    z = convert_to_tensor(labels, dtype=x.dtype if not isinstance(labels, Tensor) else None)
    axis = int(dim if dim is not None else axis)
    return apply_op("SoftmaxCrossEntropyWithLogits", [x, z], {"axis": axis},
                    name=name or "SoftmaxCrossEntropyWithLogits")[0]


def softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, dim: int = -1,
                                      name: str | None = None, axis: int | None = None
                                      ) -> Tensor:
    """TF1's version: like the _v2 one, but no gradient flows into the labels."""
    if _sentinel is not None:
        raise InvalidArgumentError("softmax_cross_entropy_with_logits: pass labels= and "
                                   "logits= by name")
    _need(labels, logits, "softmax_cross_entropy_with_logits")
    if isinstance(labels, Tensor):
        labels = core_ops.stop_gradient(labels)
    return softmax_cross_entropy_with_logits_v2(
        labels=labels, logits=logits, axis=dim if axis is None else axis, name=name)


@register_gradient("SoftmaxCrossEntropyWithLogits")
def _xent_grad(op: Operation, grad_loss: Tensor, grad_backprop: Tensor) -> list[Any]:
    axis = op.attrs["axis"]
    d_logits = _expand_mul(grad_loss, op.outputs[1], axis)
    from actorflow.ops.nn_ops import log_softmax  # nn_ops imports this module
    neg_log_sm = math_ops.negative(log_softmax(op.inputs[0], axis=axis))
    return [d_logits, _expand_mul(grad_loss, neg_log_sm, axis)]


def sparse_softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                             logits: Any = None, name: str | None = None
                                             ) -> Tensor:
    """Cross-entropy of softmax(logits) (classes on the last axis) against integer class
    indices `labels` (shape: the logits' without the class axis). A label outside
    [0, classes) fails the step with InvalidArgument naming it."""
    what = "sparse_softmax_cross_entropy_with_logits"
    if _sentinel is not None:
        raise InvalidArgumentError(f"{what}: pass labels= and logits= by name")
    _need(labels, logits, what)
    x = convert_to_tensor(logits)
    z = convert_to_tensor(labels)
    return apply_op("SparseSoftmaxCrossEntropyWithLogits", [x, z],
                    name=name or "SparseSoftmaxCrossEntropyWithLogits")[0]


@register_gradient("SparseSoftmaxCrossEntropyWithLogits")
def _sparse_xent_grad(op: Operation, grad_loss: Tensor, grad_backprop: Tensor) -> list[Any]:
    return [_expand_mul(grad_loss, op.outputs[1], -1), None]


@register_gradient("ExpandDimsMul")
def _expand_mul_grad(op: Operation, grad: Tensor) -> list[Any]:
    vec, mat = op.inputs
    axis = op.attrs["axis"]
    return [math_ops.reduce_sum(grad * mat, axis), _expand_mul(vec, grad, axis)]


def sigmoid_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, name: str | None = None) -> Tensor:
    """Element-wise logistic loss max(x, 0) - x * z + log(1 + exp(-|x|)), stable for any x."""
    what = "sigmoid_cross_entropy_with_logits"
    if _sentinel is not None:
        raise InvalidArgumentError(f"{what}: pass labels= and logits= by name")
    _need(labels, logits, what)
    x = convert_to_tensor(logits)
    z = convert_to_tensor(labels, dtype=x.dtype if not isinstance(labels, Tensor) else None)
    return apply_op("SigmoidCrossEntropyWithLogits", [x, z],
                    name=name or "SigmoidCrossEntropyWithLogits")[0]


@register_gradient("SigmoidCrossEntropyWithLogits")
def _sigmoid_xent_grad(op: Operation, grad: Tensor) -> list[Any]:
    x, z = op.inputs
    dx, dz = apply_op("SigmoidCrossEntropyWithLogitsGrad", [x, z, grad],
                      name="SigmoidCrossEntropyWithLogitsGrad")
    return [dx, dz]
