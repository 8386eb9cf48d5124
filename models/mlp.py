"""A multi-layer perceptron: fully connected ReLU layers, then a softmax classifier.

    m = models.mlp.build(hidden=(64,), optimizer="momentum", learning_rate=0.1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models import digits
from models.common import Model, classifier


def build(n_features: int = digits.N_FEATURES, n_classes: int = digits.N_CLASSES, *,
          hidden: Sequence[int] = (64,), optimizer: str | Any = "adam",
          learning_rate: Any = 0.01, weights: Sequence[tuple[Any, Any]] | None = None,
          seed: int = 0, dtype: Any = "float32", activation: Any = None,
          name: str = "mlp") -> Model:
    """Add an MLP classifier with `hidden` layer widths to the current graph."""
    return classifier((n_features, *hidden, n_classes), optimizer=optimizer,
                      learning_rate=learning_rate, weights=weights, seed=seed, dtype=dtype,
                      activation=activation, name=name)
