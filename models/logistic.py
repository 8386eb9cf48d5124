"""Multinomial logistic regression: ``logits = x @ W + b``, softmax cross-entropy.

    m = models.logistic.build(optimizer="adam", learning_rate=0.05)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models import digits
from models.common import Model, classifier


def build(n_features: int = digits.N_FEATURES, n_classes: int = digits.N_CLASSES, *,
          optimizer: str | Any = "adam", learning_rate: Any = 0.05,
          weights: Sequence[tuple[Any, Any]] | None = None, seed: int = 0,
          dtype: Any = "float32", name: str = "logistic") -> Model:
    """Add a logistic-regression classifier to the current graph (see `models.common`)."""
    return classifier((n_features, n_classes), optimizer=optimizer,
                      learning_rate=learning_rate, weights=weights, seed=seed, dtype=dtype,
                      name=name)
