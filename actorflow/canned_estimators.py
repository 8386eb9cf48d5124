"""The premade estimators of TF 1.x (`af.estimator.DNNClassifier`, `DNNRegressor`): an
`Estimator` whose model_fn is a stack of dense layers over `feature_column.input_layer`, with
TF's names, defaults and outputs:

    clf = af.estimator.DNNClassifier(feature_columns=cols, hidden_units=[10, 10], n_classes=3)
    clf.train(input_fn=train_input_fn, steps=1000)
    clf.evaluate(input_fn=eval_input_fn)    # {'accuracy', 'average_loss', 'loss', 'global_step'}

Layers are 'dnn/hiddenlayer_<i>' (ReLU by default, optional dropout while training) and
'dnn/logits'. The training loss is the *sum* of the examples' losses (TF 1.x's
Reduction.SUM); `evaluate` reports its mean per batch as 'loss' and the mean per example as
'average_loss'. The classifier's loss is softmax cross-entropy (a single logit and sigmoid
cross-entropy when n_classes is 2); its predictions are 'logits', 'probabilities',
'class_ids' ([batch, 1] int64) and 'classes' (the ids as strings). The default optimizer is
Adagrad at 0.05; a name ('Adagrad', 'Adam', 'RMSProp', 'SGD') or an optimizer instance works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actorflow import feature_column, metrics
from actorflow.estimator import Estimator, EstimatorSpec, ModeKeys
from actorflow.graph import Tensor
from actorflow.ops import array_ops, compare_ops, join_ops, math_ops, reduction_ops
from actorflow.ops.string_ops import as_string
from actorflow.variable_scope import variable_scope
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["DNNClassifier", "DNNRegressor"]


def _optimizer(opt: Any, lr: float = 0.05) -> Any:
    from actorflow import train
    if not isinstance(opt, str):
        return opt() if callable(opt) and not hasattr(opt, "minimize") else opt
    named = {"Adagrad": train.AdagradOptimizer, "Adam": train.AdamOptimizer,
             "RMSProp": train.RMSPropOptimizer, "SGD": train.GradientDescentOptimizer}
    if opt not in named:
        raise InvalidArgumentError(f"unknown optimizer {opt!r}; use one of {sorted(named)} "
                                   f"or an optimizer instance")
    return named[opt](lr)


def _dnn_logits(features: Any, feature_columns: Sequence[Any], hidden_units: Sequence[int],
                units: int, activation_fn: Callable[..., Any], dropout: float | None,
                training: bool) -> Tensor:
    from actorflow import layers
    with variable_scope("dnn"):
        net = feature_column.input_layer(features, feature_columns)
        for i, n in enumerate(hidden_units):
            net = layers.dense(net, int(n), activation=activation_fn,
                               kernel_initializer=_glorot(), name=f"hiddenlayer_{i}")
            if dropout is not None and training:
                net = layers.dropout(net, rate=dropout, training=True)
        return layers.dense(net, units, kernel_initializer=_glorot(), name="logits")


def _glorot() -> Any:
    from actorflow import initializers
    return initializers.glorot_uniform_initializer()


class DNNClassifier(Estimator):
    def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any],
                 model_dir: str | None = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Any = None, optimizer: Any = "Adagrad",
                 activation_fn: Callable[..., Any] | None = None, dropout: float | None = None,
                 input_layer_partitioner: Any = None, config: Any = None,
                 warm_start_from: Any = None, loss_reduction: Any = None,
                 batch_norm: bool = False):
        from actorflow.ops.nn_ops import relu
        if n_classes < 2:
            raise InvalidArgumentError(f"DNNClassifier needs n_classes >= 2, got {n_classes}")
        if label_vocabulary is not None or weight_column is not None:
            raise InvalidArgumentError("DNNClassifier: label_vocabulary and weight_column are "
                                       "not supported; give integer class ids as labels")
        act = activation_fn or relu
        cols = list(feature_columns)
        binary = n_classes == 2

        def model_fn(features: Any, labels: Any, mode: str) -> EstimatorSpec:
            from actorflow.ops.nn_ops import (
                sigmoid_cross_entropy_with_logits,
                softmax,
                sparse_softmax_cross_entropy_with_logits,
            )
            logits = _dnn_logits(features, cols, hidden_units, 1 if binary else n_classes,
                                 act, dropout, mode == ModeKeys.TRAIN)
            if binary:
                p1 = math_ops.sigmoid(logits)
                probs = join_ops.concat([math_ops.subtract(1.0, p1), p1], 1)
                class_ids = compare_ops.cast(math_ops.greater(logits, 0.0), dtypes.int64)
            else:
                probs = softmax(logits)
                class_ids = array_ops.expand_dims(math_ops.argmax(logits, 1), 1)
            preds = {"logits": logits, "probabilities": probs, "class_ids": class_ids,
                     "classes": as_string(class_ids)}
            if mode == ModeKeys.PREDICT:
                return EstimatorSpec(mode, predictions=preds)
            y = compare_ops.cast(array_ops.reshape(labels, [-1]), dtypes.int64)
            if binary:
                per = sigmoid_cross_entropy_with_logits(
                    labels=compare_ops.cast(array_ops.reshape(y, [-1, 1]), logits.dtype),
                    logits=logits)
            else:
                per = sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            loss = reduction_ops.reduce_sum(per)
            return _spec(mode, preds, loss, per, optimizer, {
                "accuracy": metrics.accuracy(labels=y,
                                             predictions=array_ops.reshape(class_ids, [-1]))})

        super().__init__(model_fn, model_dir=model_dir, config=config)


class DNNRegressor(Estimator):
    def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any],
                 model_dir: str | None = None, label_dimension: int = 1,
                 weight_column: Any = None, optimizer: Any = "Adagrad",
                 activation_fn: Callable[..., Any] | None = None, dropout: float | None = None,
                 input_layer_partitioner: Any = None, config: Any = None,
                 warm_start_from: Any = None, loss_reduction: Any = None,
                 batch_norm: bool = False):
        from actorflow.ops.nn_ops import relu
        act = activation_fn or relu
        cols = list(feature_columns)

        def model_fn(features: Any, labels: Any, mode: str) -> EstimatorSpec:
            out = _dnn_logits(features, cols, hidden_units, label_dimension, act, dropout,
                              mode == ModeKeys.TRAIN)
            preds = {"predictions": out}
            if mode == ModeKeys.PREDICT:
                return EstimatorSpec(mode, predictions=preds)
            y = compare_ops.cast(array_ops.reshape(labels, [-1, label_dimension]), out.dtype)
            per = reduction_ops.reduce_sum(math_ops.square(math_ops.subtract(out, y)), 1)
            loss = reduction_ops.reduce_sum(per)
            return _spec(mode, preds, loss, per, optimizer, {})

        super().__init__(model_fn, model_dir=model_dir, config=config)


def _spec(mode: str, preds: dict, loss: Tensor, per_example: Tensor, optimizer: Any,
          eval_ops: dict) -> EstimatorSpec:
    if mode == ModeKeys.TRAIN:
        from actorflow.train import get_global_step
        train_op = _optimizer(optimizer).minimize(loss, global_step=get_global_step())
        return EstimatorSpec(mode, predictions=preds, loss=loss, train_op=train_op)
    eval_ops = dict(eval_ops)
    eval_ops["average_loss"] = metrics.mean(per_example)
    return EstimatorSpec(mode, predictions=preds, loss=loss, eval_metric_ops=eval_ops)
