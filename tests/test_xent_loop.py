"""SparseSoftmaxCrossEntropyWithLogits' compiled pass (`devices.kernels.xent_loop`) against
the kernel's NumPy path (the same logits laid out strided, which the compiled pass declines)
on generated shapes: batch 0/1/N, classes 1/2/many, extreme and infinite logits, and every
label check with TF's message."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import InvalidArgumentError
from devices.kernels.nn import XENT_LOOP
from tests.test_small_kernels import kernel

FLOATS = st.sampled_from([np.float32, np.float64])
LABELS = st.sampled_from([np.int32, np.int64])


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    assert XENT_LOOP.ready(120), "the compiled xent loop did not load"


def both(dt: Any, ldt: Any, logits: np.ndarray, labels: np.ndarray) -> tuple:
    """(compiled (loss, backprop), NumPy path's) of the same values."""
    f = kernel("SparseSoftmaxCrossEntropyWithLogits", [dt, dt], in_dtypes=[dt, ldt])
    wide = np.zeros((logits.shape[0], logits.shape[1] * 2), dt)
    wide[:, ::2] = logits
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous or strided.size <= 1
    fast = f(np.ascontiguousarray(logits), labels)
    slow = f(strided, labels)
    return fast, slow


def close(dt: Any, a: np.ndarray, b: np.ndarray) -> None:
    """The same bits (a replay in another process, where the loop loaded at another step,
    must end at the same values)."""
    assert a.dtype == b.dtype == dt and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(FLOATS, LABELS, st.sampled_from([0, 1, 2, 7, 32, 65]),
       st.sampled_from([1, 2, 8, 10, 37, 128, 300]),
       st.sampled_from([1.0, 30.0, 1e30]), st.integers(0, 2**31 - 1))
def test_compiled_matches_numpy_path(dt: Any, ldt: Any, n: int, c: int, scale: float,
                                     seed: int) -> None:
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        logits = (rng.standard_normal((n, c)) * scale).astype(dt)
    labels = rng.integers(0, c, n).astype(ldt)
    (loss, bp), (want_loss, want_bp) = both(dt, ldt, logits, labels)
    assert loss.shape == (n,) and bp.shape == (n, c)
    close(dt, loss, want_loss)
    close(dt, bp, want_bp)
    if n and scale == 1.0:  # and the values are right, not just equal to the NumPy path's
        sh = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(sh).sum(axis=1))
        np.testing.assert_allclose(loss, lse - sh[np.arange(n), labels], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_infinite_and_extreme_logits(dt: Any) -> None:
    inf = np.inf
    logits = np.zeros((6, 9), dt)  # (9 classes: the compiled loops')
    logits[:, :3] = [[1e30, -1e30, 0.0], [-inf, 0.0, 1.0], [-inf, -inf, -inf],
                     [inf, 0.0, 1.0], [np.nan, 0.0, 1.0], [-1e30, -1e30, -1e30]]
    logits[1:, 3:] = -inf
    logits[5, 3:] = -1e30
    labels = np.array([0, 0, 1, 0, 2, 2])
    with np.errstate(invalid="ignore"):
        (loss, bp), (want_loss, want_bp) = both(dt, np.int64, logits, labels)
    close(dt, loss, want_loss)
    close(dt, bp, want_bp)
    assert loss[0] == 0 and bp[0, 0] == 0 and bp[0, 1] == 0  # exp(-2e30) is 0
    assert loss[1] == inf and np.isnan(loss[2]) and np.isnan(loss[4])
    np.testing.assert_allclose(loss[5], np.log(9), rtol=1e-6)  # 9 equal logits


@pytest.mark.parametrize("ldt", [np.int32, np.int64])
@pytest.mark.parametrize("bad", [3, -1, 2**31 - 1, -(2**31)])
def test_label_checks_keep_tfs_message(ldt: Any, bad: int) -> None:
    f = kernel("SparseSoftmaxCrossEntropyWithLogits", [np.float32] * 2,
               in_dtypes=[np.float32, ldt])
    bad = {3: 10}.get(bad, bad)
    logits = np.zeros((4, 10), np.float32)
    labels = np.array([0, 2, bad, bad], ldt)
    with pytest.raises(InvalidArgumentError,
                       match=re.escape(f"label {bad} at position (2,) is outside the valid "
                                       "range [0, 10) of the 10 classes of the logits "
                                       "(shape (4, 10))")):
        f(logits, labels)
