"""What the reference models share: the `Model` record a builder returns, optimizer choice
by name, seeded weight initialisation, and a small fit/evaluate loop.

A builder (`models.logistic.build`, `models.mlp.build`) adds a classifier to the current graph
and returns a `Model`: its input placeholders, logits, mean cross-entropy loss, accuracy, the
train op of the chosen optimizer and its variables. Weights start from NumPy values (seeded
Glorot-uniform by default, or the `weights` you pass), so other implementations (a NumPy
floor, TensorFlow) can start from the very same numbers.

    g = af.Graph()
    with g.as_default():
        m = models.mlp.build(hidden=(64,), optimizer="adam", learning_rate=1e-2)
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            fit(s, m, data.train_x, data.train_y, epochs=10, batch_size=32)
            print(evaluate(s, m, data.test_x, data.test_y))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import actorflow as af
from models import digits

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


@dataclass
class Model:
    """A classifier built in a graph. Tensors belong to the graph the builder ran in."""

    x: af.Tensor              # (None, features) placeholder
    y: af.Tensor              # (None,) int32 label placeholder
    logits: af.Tensor         # (None, classes)
    loss: af.Tensor           # scalar mean softmax cross-entropy
    accuracy: af.Tensor       # scalar fraction of argmax(logits) == y
    train_op: af.Operation    # one optimizer step (increments global_step)
    global_step: Any          # af.Variable (int64)
    variables: list[Any] = field(default_factory=list)   # weights and biases, in layer order
    optimizer: Any = None


def make_optimizer(name: str, learning_rate: Any, **kwargs: Any) -> Any:
    """An af.train optimizer by name: sgd, momentum, nesterov, adagrad, rmsprop or adam."""
    key = name.lower()
    if key == "sgd":
        return af.train.GradientDescentOptimizer(learning_rate, **kwargs)
    if key in ("momentum", "nesterov"):
        kwargs.setdefault("momentum", 0.9)
        return af.train.MomentumOptimizer(learning_rate, use_nesterov=key == "nesterov",
                                          **kwargs)
    if key == "adagrad":
        return af.train.AdagradOptimizer(learning_rate, **kwargs)
    if key == "rmsprop":
        return af.train.RMSPropOptimizer(learning_rate, **kwargs)
    if key == "adam":
        return af.train.AdamOptimizer(learning_rate, **kwargs)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def glorot_weights(sizes: Sequence[int], seed: int = 0, dtype: Any = np.float32
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, b) per layer for widths `sizes` (inputs ... outputs): Glorot-uniform W, zero b."""
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)
        out.append((w, np.zeros(fan_out, dtype)))
    return out


def classifier(sizes: Sequence[int], *, optimizer: str | Any = "adam",
               learning_rate: Any = 0.01, weights: Sequence[tuple[Any, Any]] | None = None,
               seed: int = 0, dtype: Any = af.float32, activation: Any = None,
               name: str = "model") -> Model:
    """A fully connected classifier with layer widths `sizes` (features, hidden..., classes),
    `activation` (default relu) between layers, built in the current graph."""
    dt = af.as_dtype(dtype)
    act = activation or af.nn.relu
    if weights is None:
        weights = glorot_weights(sizes, seed, dt.np)
    if len(weights) != len(sizes) - 1:
        raise ValueError(f"{len(sizes) - 1} layers need {len(sizes) - 1} (W, b) pairs, got "
                         f"{len(weights)}")
    with af.name_scope(name):
        x = af.placeholder(dt, (None, sizes[0]), name="x")
        y = af.placeholder(af.int32, (None,), name="y")
        h = x
        variables = []
        for i, (w0, b0) in enumerate(weights):
            with af.name_scope(f"layer{i}"):
                w = af.Variable(np.asarray(w0, dt.np), name="W")
                b = af.Variable(np.asarray(b0, dt.np), name="b")
                variables += [w, b]
                h = af.matmul(h, w) + b
                if i < len(weights) - 1:
                    h = act(h)
        logits = h
        loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits), name="loss")
        correct = af.equal(af.cast(af.argmax(logits, 1), af.int32), y)
        accuracy = af.reduce_mean(af.cast(correct, dt), name="accuracy")
        opt = make_optimizer(optimizer, learning_rate) if isinstance(optimizer, str) \
            else optimizer
        step = af.train.get_or_create_global_step()
        train_op = opt.minimize(loss, global_step=step, var_list=variables)
    return Model(x, y, logits, loss, accuracy, train_op, step, variables, opt)


def fit(session: Any, model: Model, x: np.ndarray, y: np.ndarray, *, epochs: int = 1,
        batch_size: int = 32, seed: int | None = 0) -> list[float]:
    """Train for `epochs` over (x, y) in shuffled mini-batches; returns each step's loss."""
    losses = []
    run = session.make_callable([model.loss, model.train_op], [model.x, model.y])
    for xb, yb in digits.batches(x, y, batch_size, seed=seed, epochs=epochs):
        loss, _ = run(xb, yb)
        losses.append(float(loss))
    return losses


def evaluate(session: Any, model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    loss, acc = session.run([model.loss, model.accuracy], {model.x: x, model.y: y})
    return {"loss": float(loss), "accuracy": float(acc)}
