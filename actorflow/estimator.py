"""``af.estimator``: TF1's Estimator for a user's `model_fn`, on the monitored sessions of
`af.train` (the tutorials' "custom estimator" programs run unchanged):

    def model_fn(features, labels, mode):
        logits = af.layers.dense(features["images"], 10)
        if mode == af.estimator.ModeKeys.PREDICT:
            return af.estimator.EstimatorSpec(mode, predictions=af.argmax(logits, 1))
        loss = af.losses.sparse_softmax_cross_entropy(labels, logits)
        train_op = af.train.AdamOptimizer().minimize(
            loss, global_step=af.train.get_global_step())
        acc = af.metrics.accuracy(labels=labels, predictions=af.argmax(logits, 1))
        return af.estimator.EstimatorSpec(mode, predictions=..., loss=loss, train_op=train_op,
                                          eval_metric_ops={"accuracy": acc})

    model = af.estimator.Estimator(model_fn)
    input_fn = af.estimator.inputs.numpy_input_fn({"images": x}, y, batch_size=128,
                                                  num_epochs=None, shuffle=True)
    model.train(input_fn, steps=1000)
    model.evaluate(af.estimator.inputs.numpy_input_fn({"images": xt}, yt, shuffle=False))

Each call builds a fresh graph: `input_fn()` gives (features, labels) tensors (or a Dataset of
them), `model_fn` the
EstimatorSpec for the call's mode. The model's state lives in checkpoints under `model_dir`
(a temporary directory if none is given, as in TF): `train` restores the latest one, runs
`train_op` until `steps` more (or `max_steps` in all) or the input ends, and saves;
`evaluate` restores it, runs every metric's update op over the input (or `steps` batches)
and returns the metric values with `loss` (its mean) and `global_step`; `predict` yields the
predictions example by example.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from actorflow import metrics, tf_logging
from actorflow.graph import Graph
from devices.errors import InvalidArgumentError, OutOfRangeError

__all__ = ["Estimator", "EstimatorSpec", "ModeKeys", "RunConfig", "inputs", "DNNClassifier",
           "DNNRegressor"]


class ModeKeys:
    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


class EstimatorSpec(NamedTuple):
    """What a model_fn returns: the ops of one mode (TF's field names and order)."""
    mode: str
    predictions: Any = None
    loss: Any = None
    train_op: Any = None
    eval_metric_ops: Any = None
    export_outputs: Any = None
    training_chief_hooks: Any = ()
    training_hooks: Any = ()
    scaffold: Any = None
    evaluation_hooks: Any = ()
    prediction_hooks: Any = ()


class RunConfig(NamedTuple):
    model_dir: str | None = None
    tf_random_seed: int | None = None
    save_summary_steps: int = 100
    save_checkpoints_steps: int | None = None
    save_checkpoints_secs: int | None = 600
    session_config: Any = None
    keep_checkpoint_max: int = 5
    log_step_count_steps: int = 100

    def replace(self, **kwargs: Any) -> RunConfig:
        return self._replace(**kwargs)


class Estimator:
    def __init__(self, model_fn: Callable[..., EstimatorSpec], model_dir: str | None = None,
                 config: RunConfig | None = None, params: dict | None = None,
                 warm_start_from: Any = None):
        if not callable(model_fn):
            raise InvalidArgumentError(f"Estimator's model_fn must be callable, got "
                                       f"{type(model_fn).__name__}")
        self._config = config or RunConfig()
        self._model_dir = model_dir or self._config.model_dir or tempfile.mkdtemp()
        if model_dir is None and self._config.model_dir is None:
            tf_logging.info("Using temporary folder as model directory: %s", self._model_dir)
        self._config = self._config.replace(model_dir=self._model_dir)
        self._model_fn = model_fn
        self._params = dict(params or {})
        self._fn_args = set(inspect.signature(model_fn).parameters)

    @property
    def model_dir(self) -> str:
        return self._model_dir

    @property
    def config(self) -> RunConfig:
        return self._config

    @property
    def params(self) -> dict:
        return dict(self._params)

    # -- building ---------------------------------------------------------------------------
    def _call_model_fn(self, features: Any, labels: Any, mode: str) -> EstimatorSpec:
        kwargs: dict[str, Any] = {}
        if "labels" in self._fn_args:
            kwargs["labels"] = labels
        elif labels is not None:
            raise InvalidArgumentError("model_fn takes no labels argument but input_fn "
                                       "returns labels; add a `labels` parameter")
        if "mode" in self._fn_args:
            kwargs["mode"] = mode
        if "params" in self._fn_args:
            kwargs["params"] = self._params
        if "config" in self._fn_args:
            kwargs["config"] = self._config
        spec = self._model_fn(features=features, **kwargs)
        if not isinstance(spec, EstimatorSpec):
            raise InvalidArgumentError(f"model_fn must return an EstimatorSpec, got "
                                       f"{type(spec).__name__}")
        need = {ModeKeys.TRAIN: ("loss", "train_op"), ModeKeys.EVAL: ("loss",),
                ModeKeys.PREDICT: ("predictions",)}[mode]
        missing = [f for f in need if getattr(spec, f) is None]
        if missing:
            raise InvalidArgumentError(f"model_fn's EstimatorSpec for mode '{mode}' needs "
                                       f"{' and '.join(missing)}")
        return spec

    def _graph(self, input_fn: Callable[[], Any], mode: str) -> tuple[Graph, Any, EstimatorSpec]:
        from actorflow.train.training_util import get_or_create_global_step
        g = Graph()
        with g.as_default():
            if self._config.tf_random_seed is not None:
                from actorflow.graph import set_random_seed
                set_random_seed(self._config.tf_random_seed)
            gs = get_or_create_global_step()
            out = input_fn()
            from actorflow.data import Dataset
            if isinstance(out, Dataset):  # an input_fn may return a Dataset of the pairs
                out = out.make_one_shot_iterator().get_next()
            features, labels = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
            spec = self._call_model_fn(features, labels, mode)
        return g, gs, spec

    def latest_checkpoint(self) -> str | None:
        from actorflow.train import latest_checkpoint
        return latest_checkpoint(self._model_dir)

    # -- modes ----------------------------------------------------------------------------------
    def train(self, input_fn: Callable[[], Any], hooks: Sequence[Any] | None = None,
              steps: int | None = None, max_steps: int | None = None,
              saving_listeners: Any = None) -> Estimator:
        """Run train_op until `steps` more steps, `max_steps` in all, or the end of input."""
        from actorflow import train as af_train
        if steps is not None and max_steps is not None:
            raise InvalidArgumentError("give train() steps or max_steps, not both")
        for n, what in ((steps, "steps"), (max_steps, "max_steps")):
            if n is not None and n <= 0:
                raise InvalidArgumentError(f"train()'s {what} must be > 0, got {n}")
        g, gs, spec = self._graph(input_fn, ModeKeys.TRAIN)
        with g.as_default():
            all_hooks = list(hooks or []) + list(spec.training_hooks or [])
            if steps is not None or max_steps is not None:
                all_hooks.append(af_train.StopAtStepHook(num_steps=steps, last_step=max_steps))
            loss = None
            with af_train.MonitoredTrainingSession(
                    checkpoint_dir=self._model_dir, hooks=all_hooks,
                    chief_only_hooks=list(spec.training_chief_hooks or []),
                    scaffold=spec.scaffold, config=self._config.session_config,
                    save_checkpoint_steps=self._config.save_checkpoints_steps,
                    save_checkpoint_secs=(None if self._config.save_checkpoints_steps
                                          else self._config.save_checkpoints_secs),
                    save_summaries_steps=self._config.save_summary_steps,
                    log_step_count_steps=self._config.log_step_count_steps) as sess:
                try:
                    while not sess.should_stop():
                        _, loss = sess.run([spec.train_op, spec.loss])
                except OutOfRangeError:
                    pass  # the input ended: a clean stop (TF's MonitoredSession swallows it)
        tf_logging.info("Loss for final step: %s.", loss)
        return self

    def _restore(self, checkpoint_path: str | None) -> str:
        path = checkpoint_path or self.latest_checkpoint()
        if path is None:
            raise InvalidArgumentError(f"could not find a trained model in model_dir "
                                       f"'{self._model_dir}': train() first")
        return path

    def evaluate(self, input_fn: Callable[[], Any], steps: int | None = None,
                 hooks: Sequence[Any] | None = None, checkpoint_path: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
        """The eval_metric_ops' values over the input (or `steps` batches), with the mean
        `loss` and the checkpoint's `global_step`."""
        from actorflow import train as af_train
        path = self._restore(checkpoint_path)
        g, gs, spec = self._graph(input_fn, ModeKeys.EVAL)
        with g.as_default():
            ops = dict(spec.eval_metric_ops or {})
            ops.setdefault("loss", metrics.mean(spec.loss))
            updates = [u for _, u in ops.values()]
            creator = af_train.ChiefSessionCreator(scaffold=spec.scaffold,
                                                   checkpoint_filename_with_path=path,
                                                   config=self._config.session_config)
            with af_train.MonitoredSession(
                    session_creator=creator,
                    hooks=list(hooks or []) + list(spec.evaluation_hooks or [])) as sess:
                n = 0
                try:
                    while (steps is None or n < steps) and not sess.should_stop():
                        sess.run(updates)
                        n += 1
                except OutOfRangeError:
                    pass  # every batch of the input was evaluated
                values = sess.run({k: v for k, (v, _) in ops.items()})
                values["global_step"] = sess.run(gs)
        tf_logging.info("Saving dict for global step %s: %s", values["global_step"], values)
        return values

    def predict(self, input_fn: Callable[[], Any], predict_keys: Any = None,
                hooks: Sequence[Any] | None = None, checkpoint_path: str | None = None,
                yield_single_examples: bool = True) -> Iterator[Any]:
        """The predictions, one example at a time (a dict per example when `predictions` is
        a dict), until the input ends."""
        from actorflow import train as af_train
        path = self._restore(checkpoint_path)
        g, _, spec = self._graph(input_fn, ModeKeys.PREDICT)
        preds = spec.predictions
        if isinstance(preds, dict) and predict_keys is not None:
            keys = [predict_keys] if isinstance(predict_keys, str) else list(predict_keys)
            preds = {k: preds[k] for k in keys}
        with g.as_default():
            creator = af_train.ChiefSessionCreator(scaffold=spec.scaffold,
                                                   checkpoint_filename_with_path=path,
                                                   config=self._config.session_config)
            with af_train.MonitoredSession(
                    session_creator=creator,
                    hooks=list(hooks or []) + list(spec.prediction_hooks or [])) as sess:
                while not sess.should_stop():
                    try:
                        batch = sess.run(preds)
                    except OutOfRangeError:
                        return
                    if not yield_single_examples:
                        yield batch
                    elif isinstance(batch, dict):
                        n = len(next(iter(batch.values())))
                        for i in range(n):
                            yield {k: v[i] for k, v in batch.items()}
                    else:
                        yield from batch

    def get_variable_names(self) -> list[str]:
        from actorflow.train import list_variables
        return [n for n, _ in list_variables(self._restore(None))]

    def get_variable_value(self, name: str) -> np.ndarray:
        from actorflow.train import load_variable
        return load_variable(self._restore(None), name)


class _Inputs:
    """``af.estimator.inputs``: input functions over in-memory arrays."""

    @staticmethod
    def numpy_input_fn(x: Any, y: Any = None, batch_size: int = 128, num_epochs: int | None = 1,
                       shuffle: bool | None = None, queue_capacity: int = 1000,
                       num_threads: int = 1) -> Callable[[], Any]:
        """An input_fn giving (features, labels) batches of `x` (an array or a dict of them)
        and `y`, `num_epochs` times (None: forever), shuffled if `shuffle`."""
        if shuffle is None:
            raise InvalidArgumentError("numpy_input_fn needs shuffle=True or shuffle=False")
        xs = dict(x) if isinstance(x, dict) else x
        n = len(next(iter(xs.values()))) if isinstance(xs, dict) else len(xs)
        for k, v in (xs.items() if isinstance(xs, dict) else [("x", xs)]):
            if len(v) != n:
                raise InvalidArgumentError(f"numpy_input_fn: feature '{k}' has {len(v)} rows, "
                                           f"the first has {n}")
        if y is not None and len(y) != n:
            raise InvalidArgumentError(f"numpy_input_fn: y has {len(y)} rows, x has {n}")

        def input_fn() -> Any:
            from actorflow.data import Dataset
            data = (xs, np.asarray(y)) if y is not None else xs
            ds = Dataset.from_tensor_slices(data)
            if shuffle:
                ds = ds.shuffle(buffer_size=min(max(queue_capacity, 1), n) or 1)
            ds = ds.repeat(num_epochs).batch(batch_size)
            return ds.make_one_shot_iterator().get_next()
        return input_fn


inputs = _Inputs()


from actorflow.canned_estimators import DNNClassifier, DNNRegressor  # noqa: E402  (premade)
