"""Hand-written NumPy (and pure-Python) floors for actorflow's benchmarks.

A *floor* is the fastest straightforward implementation of a benchmark's work
without any dataflow runtime: what a good engineer writes by hand.  Every runtime
(actorflow, TensorFlow) is compared against it.  The same module also provides
the benchmark *data*, generated from a seed, so that every implementation starts
from identical inputs and weights and results can be cross-checked.

Contents
--------
* ``make_mlp_data(batch, sizes, seed)`` and ``NumpyMLP``: one SGD step of a ReLU MLP
  with mean softmax cross-entropy loss.
* ``make_rnn_data(T, batch, H, seed)``, ``rnn_forward`` and ``rnn_forward_backward``:
  the while-loop RNN ``h_t = tanh(h_{t-1} @ W + x_t)``, loss ``sum(h_T)``.
* ``python_while_scalar(n)``: the scalar loop ``while i < n: i, acc = i + 1, acc + i``.
* ``tanh_chain`` and ``two_branch_tanh_threads``: the two-branch tanh work, one branch
  per thread (NumPy ufuncs release the GIL), versus sequentially.
* ``tanh_layers``: ``h = tanh(h) * 1.5 + c`` repeated, in place on one core (issue 11).
* ``softmax_regression_step``: one SGD step of softmax regression (issue 11's small step).

Only NumPy and the standard library are used.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "MLPData",
    "NumpyMLP",
    "make_mlp_data",
    "make_mlp_weights",
    "make_rnn_data",
    "rnn_forward",
    "rnn_forward_backward",
    "python_while_scalar",
    "tanh_chain",
    "two_branch_tanh_threads",
    "tanh_layers",
    "softmax_regression_step",
]

# --------------------------------------------------------------------------- MLP


class MLPData(NamedTuple):
    """One batch of MLP data: inputs, integer labels and the same labels one-hot."""

    x: np.ndarray  # (batch, sizes[0]) float32
    labels: np.ndarray  # (batch,) int64
    onehot: np.ndarray  # (batch, sizes[-1]) float32


def make_mlp_data(batch: int, sizes: Sequence[int], seed: int = 0) -> MLPData:
    """Deterministic random batch for an MLP with layer widths ``sizes`` (input ... classes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], size=batch, dtype=np.int64)
    onehot = np.zeros((batch, sizes[-1]), dtype=np.float32)
    onehot[np.arange(batch), labels] = 1.0
    return MLPData(x, labels, onehot)


def make_mlp_weights(sizes: Sequence[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal weights and zero biases, float32, deterministic in ``seed``.

    The weight seed is derived from ``seed`` differently from the data seed, so the
    same ``seed`` can be passed to ``make_mlp_data`` and here.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        w *= np.float32(np.sqrt(2.0 / fan_in))
        weights.append((w, np.zeros(fan_out, dtype=np.float32)))
    return weights


class NumpyMLP:
    """ReLU MLP trained by plain SGD on mean softmax cross-entropy; the floor to beat.

    ``step(x, y)`` does forward, backward and the in-place update and returns the loss
    (computed before the update).  ``y`` is either integer labels ``(batch,)`` or a
    one-hot / probability matrix ``(batch, classes)``.

    Implementation notes: all activations, gradients and scratch space are allocated
    once per batch size; matmuls write with ``out=``; the learning rate and ``1/batch``
    are folded into the logits' gradient, so every parameter gradient already carries
    ``lr`` and the update is a single in-place subtraction per parameter.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        lr: float = 0.01,
        seed: int = 0,
        *,
        weights: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.sizes = [int(s) for s in sizes]
        if len(self.sizes) < 2:
            raise ValueError("sizes needs at least an input and an output width")
        self.lr = float(lr)
        if weights is None:
            weights = make_mlp_weights(self.sizes, seed)
        if len(weights) != len(self.sizes) - 1:
            raise ValueError("need one (W, b) pair per layer")
        self.weights: list[tuple[np.ndarray, np.ndarray]] = []
        for (w, b), fan_in, fan_out in zip(weights, self.sizes[:-1], self.sizes[1:], strict=True):
            w = np.array(w, dtype=np.float32, order="C", copy=True)
            b = np.array(b, dtype=np.float32, copy=True)
            if w.shape != (fan_in, fan_out) or b.shape != (fan_out,):
                raise ValueError(f"bad layer shapes {w.shape}, {b.shape}")
            self.weights.append((w, b))
        self._batch = -1

    @classmethod
    def from_weights(
        cls, weights: Sequence[tuple[np.ndarray, np.ndarray]], lr: float = 0.01
    ) -> NumpyMLP:
        """Build from given ``[(W, b), ...]`` (copied, cast to float32)."""
        sizes = [np.shape(weights[0][0])[0]] + [np.shape(w)[1] for w, _ in weights]
        return cls(sizes, lr, weights=weights)

    def copy_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Independent copy of the current weights."""
        return [(w.copy(), b.copy()) for w, b in self.weights]

    def _alloc(self, batch: int) -> None:
        f32 = np.float32
        self._batch = batch
        # acts[i] = output of layer i (post-ReLU for hidden layers, logits for the last)
        self._acts = [np.empty((batch, n), f32) for n in self.sizes[1:]]
        # grads of the pre-activation of each hidden layer's input (index like acts)
        self._gacts = [np.empty((batch, n), f32) for n in self.sizes[1:-1]]
        self._masks = [np.empty((batch, n), np.bool_) for n in self.sizes[1:-1]]
        self._dws = [np.empty_like(w) for w, _ in self.weights]
        self._dbs = [np.empty_like(b) for _, b in self.weights]
        self._expbuf = np.empty((batch, self.sizes[-1]), f32)
        self._shift = np.empty((), f32)
        self._rowmax = np.empty((batch, 1), f32)
        self._rowsum = np.empty((batch, 1), f32)
        self._ones_b = np.ones(batch, f32)
        self._ones_c = np.ones((self.sizes[-1], 1), f32)
        self._rows = np.arange(batch)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits for ``x`` (a view of an internal buffer; copy it to keep it)."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[0] != self._batch:
            self._alloc(x.shape[0])
        a = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(self.weights):
            out = self._acts[i]
            np.matmul(a, w, out=out)
            out += b
            if i != last:
                np.maximum(out, 0.0, out=out)
            a = out
        return a

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on the batch ``(x, y)``; returns the mean loss before the update."""
        x = np.asarray(x, dtype=np.float32)
        logits = self.forward(x)
        batch = x.shape[0]

        # Softmax cross-entropy, in place on the logits buffer.  Shifting by the global
        # maximum (one fast contiguous reduction) instead of per-row maxima is just as
        # safe against overflow; if some row underflows we redo it with row maxima.
        np.maximum.reduce(logits, axis=None, out=self._shift)
        logits -= self._shift
        np.exp(logits, out=self._expbuf)
        np.matmul(self._expbuf, self._ones_c, out=self._rowsum)
        if self._rowsum.min() < 1e-30:
            logits += self._shift
            np.max(logits, axis=1, keepdims=True, out=self._rowmax)
            logits -= self._rowmax
            np.exp(logits, out=self._expbuf)
            np.matmul(self._expbuf, self._ones_c, out=self._rowsum)
        if y.ndim == 1:
            picked = float(logits[self._rows, y].sum(dtype=np.float64))
        else:
            picked = float(np.vdot(logits, y))
        loss = (float(np.log(self._rowsum).sum(dtype=np.float64)) - picked) / batch
        # d loss / d logits = (softmax - y) / batch, scaled by lr for the update
        self._rowsum *= np.float32(batch / self.lr)
        g = self._expbuf
        g /= self._rowsum  # lr * softmax / batch
        scale = np.float32(self.lr / batch)
        if y.ndim == 1:
            g[self._rows, y] -= scale
        else:
            g -= scale * y

        # backward + update, last layer first
        for i in range(len(self.weights) - 1, -1, -1):
            w, b = self.weights[i]
            a_in = x if i == 0 else self._acts[i - 1]
            dw, db = self._dws[i], self._dbs[i]
            np.matmul(a_in.T, g, out=dw)
            np.matmul(self._ones_b, g, out=db)  # column sums; faster than np.sum
            if i > 0:
                g_in = self._gacts[i - 1]
                np.matmul(g, w.T, out=g_in)  # before w is updated
                mask = self._masks[i - 1]
                np.greater(a_in, 0.0, out=mask)
                np.multiply(g_in, mask, out=g_in)
                g = g_in
            w -= dw
            b -= db
        return loss

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean softmax cross-entropy of the current weights on ``(x, y)`` (no update)."""
        logits = self.forward(x).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logz = np.log(np.exp(logits).sum(axis=1))
        if y.ndim == 1:
            picked = logits[np.arange(len(y)), y]
        else:
            picked = (logits * y).sum(axis=1)
        return float((logz - picked).mean())


# --------------------------------------------------------------------------- RNN


def make_rnn_data(
    T: int, batch: int, H: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs ``x`` (T, batch, H), recurrent weights ``W`` (H, H), ``h0`` zeros (batch, H).

    ``W`` is scaled by ``1/sqrt(H)`` and ``x`` by 0.5 so tanh does not saturate.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, batch, H), dtype=np.float32)
    x *= np.float32(0.5)
    w = rng.standard_normal((H, H), dtype=np.float32)
    w *= np.float32(1.0 / np.sqrt(H))
    h0 = np.zeros((batch, H), dtype=np.float32)
    return x, w, h0


def rnn_forward(x: np.ndarray, W: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """``h_T`` of ``h_t = tanh(h_{t-1} @ W + x_t)``, ``t = 1..T``; returns a new array."""
    T, batch, H = x.shape
    h = np.zeros((batch, H), np.float32) if h0 is None else np.array(h0, np.float32)
    tmp = np.empty_like(h)
    for t in range(T):
        np.matmul(h, W, out=tmp)
        tmp += x[t]
        np.tanh(tmp, out=h)
    return h


def rnn_forward_backward(
    x: np.ndarray, W: np.ndarray, h0: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Loss ``sum(h_T)`` and its gradient ``dL/dW`` (backpropagation through time)."""
    T, batch, H = x.shape
    hs = np.empty((T + 1, batch, H), np.float32)
    if h0 is None:
        hs[0] = 0.0
    else:
        hs[0] = h0
    for t in range(T):
        h = hs[t + 1]
        np.matmul(hs[t], W, out=h)
        h += x[t]
        np.tanh(h, out=h)
    loss = float(hs[T].sum(dtype=np.float64))

    dw = np.zeros((H, H), np.float32)
    dw_t = np.empty_like(dw)
    dh = np.ones((batch, H), np.float32)  # dL/dh_T
    dz = np.empty_like(dh)
    wt = W.T
    for t in range(T, 0, -1):
        h = hs[t]
        np.multiply(h, h, out=dz)
        np.subtract(1.0, dz, out=dz)
        dz *= dh  # dL/dz_t, z_t = h_{t-1} @ W + x_t
        np.matmul(hs[t - 1].T, dz, out=dw_t)
        dw += dw_t
        if t > 1:
            np.matmul(dz, wt, out=dh)
    return loss, dw


# --------------------------------------------------------------------- scalar loop


def python_while_scalar(n: int) -> tuple[int, int]:
    """Pure-Python ``while i < n: i, acc = i + 1, acc + i``; returns ``(i, acc)``."""
    i = 0
    acc = 0
    while i < n:
        i, acc = i + 1, acc + i
    return i, acc


# ---------------------------------------------------------------- two-branch tanh


def tanh_chain(x: np.ndarray, layers: int, out: np.ndarray | None = None) -> np.ndarray:
    """Apply ``tanh`` ``layers`` times to ``x`` (one ufunc call per layer, in place on ``out``)."""
    if out is None:
        out = np.empty_like(x)
    np.tanh(x, out=out)
    for _ in range(layers - 1):
        np.tanh(out, out=out)
    return out


def two_branch_tanh_threads(
    a: np.ndarray,
    b: np.ndarray,
    layers: int,
    out_a: np.ndarray,
    out_b: np.ndarray,
    *,
    parallel: bool = True,
) -> None:
    """Run ``tanh_chain`` on ``a`` and ``b``: one thread per branch, or sequentially.

    NumPy's ufuncs release the GIL, so with ``parallel`` two cores can work at once.
    """
    if not parallel:
        tanh_chain(a, layers, out_a)
        tanh_chain(b, layers, out_b)
        return
    t = threading.Thread(target=tanh_chain, args=(b, layers, out_b))
    t.start()
    tanh_chain(a, layers, out_a)
    t.join()


# --------------------------------------------------------------- tanh layers (issue 11)


def tanh_layers(x: np.ndarray, layers: int, c: float = 0.25, out: np.ndarray | None = None
                ) -> np.ndarray:
    """``layers`` x ``h = tanh(h) * 1.5 + c`` in one buffer, one core (three ufunc passes per
    layer, in place): the floor of the issue-11 tanh-layer benchmark."""
    if out is None:
        out = np.empty_like(x)
    scale, shift = x.dtype.type(1.5), x.dtype.type(c)
    h = x
    for _ in range(layers):
        np.tanh(h, out=out)
        out *= scale
        out += shift
        h = out
    return out


# ------------------------------------------------------------------------- CLI


def _main() -> None:
    """Print the floors' timings for the standard benchmark sizes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.common import measure, measure_interleaved, print_table

    rows: list[dict[str, object]] = []
    for sizes, batch in (([64, 128, 10], 64), ([784, 1024, 1024, 10], 256)):
        data = make_mlp_data(batch, sizes, 0)
        mlp = NumpyMLP(sizes, 0.01, 0)
        st = measure(lambda m=mlp, d=data: m.step(d.x, d.labels), warmup=5, repeat=30, number=0)
        rows.append(
            {
                "floor": f"mlp_step {sizes} b{batch}",
                "median": st.median * 1e3,
                "p10": st.p10 * 1e3,
                "p90": st.p90 * 1e3,
                "unit": "ms/step",
            }
        )
    x, w, h0 = make_rnn_data(100, 32, 64, 0)
    for label, fn in (("rnn forward", rnn_forward), ("rnn fwd+bwd", rnn_forward_backward)):
        st = measure(lambda f=fn: f(x, w, h0), repeat=30, number=0)
        rows.append(
            {
                "floor": f"{label} T100 H64 b32",
                "median": st.median * 1e3,
                "p10": st.p10 * 1e3,
                "p90": st.p90 * 1e3,
                "unit": "ms",
            }
        )
    n = 100_000
    st = measure(lambda: python_while_scalar(n), warmup=1, repeat=9)
    rows.append(
        {
            "floor": f"python while_scalar n={n}",
            "median": n / st.median / 1e6,
            "p10": n / st.p90 / 1e6,
            "p90": n / st.p10 / 1e6,
            "unit": "M iter/s",
        }
    )
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2_000_000, dtype=np.float32)
    b = rng.standard_normal(2_000_000, dtype=np.float32)
    oa, ob = np.empty_like(a), np.empty_like(b)
    sts = measure_interleaved(
        {
            "threads": lambda: two_branch_tanh_threads(a, b, 10, oa, ob),
            "sequential": lambda: two_branch_tanh_threads(a, b, 10, oa, ob, parallel=False),
        },
        warmup=1,
        repeat=9,
    )
    for label, st in sts.items():
        rows.append(
            {
                "floor": f"two_branch_tanh 2M x10 {label}",
                "median": st.median * 1e3,
                "p10": st.p10 * 1e3,
                "p90": st.p90 * 1e3,
                "unit": "ms",
            }
        )
    print_table(rows)
    print(
        f"two_branch_tanh thread speedup: {sts['sequential'].median / sts['threads'].median:.2f}x"
    )


if __name__ == "__main__":
    _main()


# --------------------------------------------------------------------------- softmax step
def softmax_regression_step(x: np.ndarray, labels: np.ndarray, w: np.ndarray, b: np.ndarray,
                            lr: float) -> float:
    """One SGD step of softmax regression (logits = x @ w + b, mean sparse softmax
    cross-entropy), ``w`` and ``b`` updated in place; returns the loss before the update.
    The floor of `benchmarks/bench_small_step.py` (issue 11): the NumPy calls the math needs,
    written by hand, with no label check."""
    n = x.shape[0]
    logits = x @ w
    logits += b
    logits -= np.maximum.reduce(logits, axis=1, keepdims=True)
    e = np.exp(logits)
    s = np.add.reduce(e, axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.add.reduce(np.log(s[:, 0]) - logits[rows, labels])) / n
    e /= s
    e[rows, labels] -= 1.0
    e *= np.float32(lr / n)
    w -= x.T @ e
    b -= np.add.reduce(e, axis=0)
    return loss
