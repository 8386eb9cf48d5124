"""The digits data set: 1,797 8x8 grey images of handwritten digits, bundled with
scikit-learn (no download). Pixels are scaled to [0, 1] and flattened to 64 features; a fixed,
seeded split gives 1,437 training and 360 test examples.

    data = load()                        # Digits(train_x, train_y, test_x, test_y)
    for xb, yb in batches(data.train_x, data.train_y, 32, seed=0): ...
    one_hot(data.train_y)                # (1437, 10) float32
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

N_FEATURES = 64
N_CLASSES = 10
N_TEST = 360


class Digits(NamedTuple):
    train_x: np.ndarray  # (1437, 64) float32 in [0, 1]
    train_y: np.ndarray  # (1437,) int32 in [0, 10)
    test_x: np.ndarray   # (360, 64)
    test_y: np.ndarray   # (360,)


@functools.lru_cache(maxsize=4)
def _load(seed: int, dtype: str) -> Digits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, np.float64) / 16.0).astype(dtype)
    y = np.asarray(bunch.target, np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:N_TEST], order[N_TEST:]
    out = Digits(x[train], y[train], x[test], y[test])
    for a in out:
        a.setflags(write=False)  # shared by every caller of load()
    return out


def load(seed: int = 0, dtype: str | np.dtype = "float32") -> Digits:
    """The digits split by `seed` (the same arrays on every call; they are read-only)."""
    return _load(seed, np.dtype(dtype).name)


def one_hot(labels: np.ndarray, n_classes: int = N_CLASSES,
            dtype: str | np.dtype = "float32") -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = 0,
            epochs: int = 1, drop_remainder: bool = False
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) mini-batches for `epochs` passes, reshuffled each pass (in order if seed is
    None); the last short batch of a pass is kept unless `drop_remainder`."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = None if seed is None else np.random.default_rng(seed)
    n = len(x)
    for _ in range(epochs):
        order = np.arange(n) if rng is None else rng.permutation(n)
        stop = n - n % batch_size if drop_remainder else n
        for i in range(0, stop, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
