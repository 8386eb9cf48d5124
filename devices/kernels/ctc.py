"""Kernels of CTC (CPU, NumPy): ``CTCLoss`` (Graves' forward-backward in log space, TF's
options), ``CTCGreedyDecoder`` and ``CTCBeamSearchDecoder`` (prefix beam search over
log_softmax, `beam_width` prefixes kept per frame, as TF's decoder: equal decodings and
scores to TF's on the tests' inputs); and ``MaxPoolWithArgmax`` (TF's flattened index).

CTCLoss takes time-major logits [T, B, C] (the blank is class C - 1), a label SparseTensor's
indices [n, 2] and values [n], and sequence lengths [B]; it returns the loss per sequence
(-log p(labels | x)) and its gradient with respect to the logits (softmax(x) minus each
class's posterior occupancy), zero past each sequence's length. Options as TF's:
`preprocess_collapse_repeated` merges repeated labels first; with `ctc_merge_repeated` False a
non-blank label cannot span two frames (no self-loop); a label sequence longer than the input
is an error, or a loss and gradient of 0 with `ignore_longer_outputs_than_inputs`; one that
fits but has no path (repeats need a blank between them) has an infinite loss and the
gradient softmax(x), as TF's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel

_NEG = -np.inf


def _lse(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _labels(indices: np.ndarray, values: np.ndarray, batch: int) -> list[list[int]]:
    rows: list[list[tuple[int, int]]] = [[] for _ in range(batch)]
    for (b, j), v in zip(np.asarray(indices).reshape(-1, 2).tolist(),
                         np.asarray(values).reshape(-1).tolist(), strict=True):
        if not 0 <= b < batch:
            raise InvalidArgumentError(f"ctc_loss: a label's batch index {b} is not in "
                                       f"[0, {batch})")
        rows[b].append((j, int(v)))
    return [[v for _, v in sorted(r)] for r in rows]


def ctc_one(logp: np.ndarray, label: list[int], blank: int, merge: bool
            ) -> tuple[float, np.ndarray]:
    """(loss, posterior occupancy [T, C]) of one sequence; logp is log_softmax [T, C]."""
    t_len, n_cls = logp.shape
    ext = [blank]
    for c in label:
        ext += [c, blank]
    s = len(ext)
    ext_a = np.asarray(ext)
    emit = logp[:, ext_a]  # [T, S]
    stay = np.array([merge or c == blank for c in ext])
    # without merging, a repeated label needs no blank between its copies
    skip = np.array([u > 1 and ext[u] != blank and (not merge or ext[u] != ext[u - 2])
                     for u in range(s)])
    alpha = np.full((t_len, s), _NEG)
    alpha[0, 0] = emit[0, 0]
    if s > 1:
        alpha[0, 1] = emit[0, 1]
    for t in range(1, t_len):
        prev = alpha[t - 1]
        cand = np.stack([np.where(stay, prev, _NEG),
                         np.concatenate([[_NEG], prev[:-1]]),
                         np.where(skip, np.concatenate([[_NEG, _NEG], prev[:-2]]), _NEG)])
        alpha[t] = _lse(cand, 0) + emit[t]
    beta = np.full((t_len, s), _NEG)  # excludes the emission at t
    beta[-1, -1] = 0.0
    if s > 1:
        beta[-1, -2] = 0.0
    for t in range(t_len - 2, -1, -1):
        nxt = beta[t + 1] + emit[t + 1]
        cand = np.stack([np.where(stay, nxt, _NEG),
                         np.concatenate([nxt[1:], [_NEG]]),
                         np.where(np.concatenate([skip[2:], [False, False]]),
                                  np.concatenate([nxt[2:], [_NEG, _NEG]]), _NEG)])
        beta[t] = _lse(cand, 0)
    ends = [alpha[-1, -1]] + ([alpha[-1, -2]] if s > 1 else [])
    logz = float(_lse(np.asarray(ends), 0))
    post = np.zeros((t_len, n_cls))
    if not np.isfinite(logz):  # no path fits (repeats need blanks): TF's inf loss
        return np.inf, post
    ab = alpha + beta - logz
    for u, c in enumerate(ext):
        post[:, c] += np.exp(ab[:, u])
    return -logz, post




@register_kernel("CTCLoss", device_types=("CPU",))
def _ctc_loss(k: KernelContext) -> Any:
    collapse = bool(k.attrs.get("preprocess_collapse_repeated", False))
    merge = bool(k.attrs.get("ctc_merge_repeated", True))
    ignore_long = bool(k.attrs.get("ignore_longer_outputs_than_inputs", False))

    def compute(logits: Any, indices: Any, values: Any, seq_len: Any) -> tuple:
        x = np.asarray(logits)
        t_max, batch, n_cls = x.shape
        lens = np.asarray(seq_len).reshape(-1)
        if lens.size != batch:
            raise InvalidArgumentError(f"ctc_loss: sequence_length has {lens.size} entries "
                                       f"for a batch of {batch}")
        labels = _labels(indices, values, batch)
        loss = np.zeros(batch, dtype=x.dtype)
        grad = np.zeros_like(x)
        blank = n_cls - 1
        for b in range(batch):
            t_len = int(lens[b])
            if not 0 <= t_len <= t_max:
                raise InvalidArgumentError(f"ctc_loss: sequence_length({b}) = {t_len} is not "
                                           f"in [0, {t_max}]")
            lab = labels[b]
            if collapse:
                lab = [c for i, c in enumerate(lab) if i == 0 or c != lab[i - 1]]
            if any(not 0 <= c < blank for c in lab):
                raise InvalidArgumentError(f"ctc_loss: label values must be in [0, {blank}) "
                                           f"(class {blank} is the blank), got {lab}")
            need = len(lab)  # TF checks the label's length only (a repeat may still not fit)
            if need > t_len:
                if ignore_long:
                    continue
                raise InvalidArgumentError(
                    f"Not enough time for target transition sequence (required: {need}, "
                    f"available: {t_len}), batch {b}; you can turn this error into a warning "
                    f"with ignore_longer_outputs_than_inputs=True")
            if t_len == 0:
                continue
            z = x[:t_len, b].astype(np.float64)
            logp = z - _lse(z, 1)[:, None]
            nll, post = ctc_one(logp, lab, blank, merge)
            loss[b] = nll
            grad[:t_len, b] = (np.exp(logp) - post).astype(x.dtype)
        return loss, grad
    return compute


@register_kernel("CTCGreedyDecoder", device_types=("CPU",))
def _ctc_greedy(k: KernelContext) -> Any:
    merge = bool(k.attrs.get("merge_repeated", True))

    def compute(logits: Any, seq_len: Any) -> tuple:
        x = np.asarray(logits)
        t_max, batch, n_cls = x.shape
        blank = n_cls - 1
        best = np.argmax(x, axis=2)
        rows, scores = [], np.zeros((batch, 1), dtype=x.dtype)
        for b in range(batch):
            t_len = int(np.asarray(seq_len).reshape(-1)[b])
            out, prev = [], -1
            for t in range(t_len):
                c = int(best[t, b])
                scores[b, 0] -= x[t, b, c]
                if c != blank and not (merge and c == prev):
                    out.append(c)
                prev = c
            rows.append(out)
        idx = [(b, j) for b, r in enumerate(rows) for j in range(len(r))]
        vals = [v for r in rows for v in r]
        shape = [batch, max((len(r) for r in rows), default=0)]
        return (np.asarray(idx, np.int64).reshape(-1, 2), np.asarray(vals, np.int64),
                np.asarray(shape, np.int64), scores)
    return compute


@register_kernel("MaxPoolWithArgmax", device_types=("CPU",))
def _max_pool_argmax(k: KernelContext) -> Any:
    ks, st = k.attrs["ksize"], k.attrs["strides"]
    padding = k.attrs["padding"]
    with_batch = bool(k.attrs.get("include_batch_in_index", False))
    out_h, out_w = k.out_shapes[0][1], k.out_shapes[0][2]

    def compute(x: Any) -> tuple:
        a = np.asarray(x)
        n, h, w, c = a.shape
        ph = max((out_h - 1) * st[1] + ks[1] - h, 0) // 2 if padding == "SAME" else 0
        pw = max((out_w - 1) * st[2] + ks[2] - w, 0) // 2 if padding == "SAME" else 0
        best = np.full((n, out_h, out_w, c), -np.inf, dtype=np.float64)
        arg = np.full((n, out_h, out_w, c), -1, dtype=np.int64)
        ys = np.arange(out_h) * st[1] - ph
        xs = np.arange(out_w) * st[2] - pw
        ch = np.arange(c)
        for dy in range(ks[1]):
            for dx in range(ks[2]):
                yy, xx = ys + dy, xs + dx
                ok = (yy[:, None] >= 0) & (yy[:, None] < h) & (xx[None, :] >= 0) & \
                    (xx[None, :] < w)
                v = a[:, np.clip(yy, 0, h - 1)][:, :, np.clip(xx, 0, w - 1)].astype(np.float64)
                v = np.where(ok[None, :, :, None], v, -np.inf)
                flat = ((np.clip(yy, 0, h - 1)[:, None] * w + np.clip(xx, 0, w - 1)[None, :])
                        [None, :, :, None] * c + ch)
                take = (v > best) | ((arg < 0) & ok[None, :, :, None])
                best = np.where(take, v, best)
                arg = np.where(take, np.broadcast_to(flat, arg.shape), arg)
        if with_batch:
            arg = arg + (np.arange(n) * h * w * c)[:, None, None, None]
        return best.astype(a.dtype), arg.astype(np.dtype(k.attrs["Targmax"].np))
    return compute


class _Entry:
    """One prefix of the beam search: its parent, last label, children, and its (blank,
    label, total) log-probabilities at the previous frame (old) and this one (new)."""

    __slots__ = ("parent", "label", "children", "old", "new")

    def __init__(self, parent: _Entry | None, label: int):
        self.parent, self.label = parent, label
        self.children: dict[int, _Entry] = {}
        self.old = [_NEG, _NEG, _NEG]
        self.new = [_NEG, _NEG, _NEG]

    def active(self) -> bool:
        return self.new[2] != _NEG

    def labels(self, merge: bool) -> tuple[int, ...]:
        out: list[int] = []
        e: _Entry | None = self
        while e is not None and e.parent is not None:
            out.append(e.label)
            e = e.parent
        out.reverse()
        return tuple(c for i, c in enumerate(out) if not (merge and i and out[i - 1] == c))


def _lae(a: float, b: float) -> float:
    return float(np.logaddexp(a, b))


def _beam_one(logp: np.ndarray, width: int, top: int, merge: bool
              ) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search of one sequence (log_softmax [T, C]), with TF's bookkeeping:
    each frame first advances the prefixes in the beam (a prefix's parent adds to it only
    while the parent is still in the beam), then grows children of the beam's prefixes in
    decreasing order, a child entering only when it beats the beam's current lowest entry
    (which then leaves the beam). Returns the `top` best (labels, log-probability)."""
    blank = logp.shape[1] - 1
    root = _Entry(None, -1)
    root.new = [0.0, _NEG, 0.0]
    leaves: list[_Entry] = [root]

    def candidate(p: list[float]) -> bool:
        return p[2] > _NEG and (len(leaves) < width or p[2] > min(e.new[2] for e in leaves))
    for lp in logp:
        branches = sorted(leaves, key=lambda e: -e.new[2])
        leaves = []
        for b in branches:
            b.old = list(b.new)
        for b in branches:
            if b.parent is not None:
                if b.parent.active():
                    par = b.parent.old
                    prev = par[0] if b.label == b.parent.label else par[2]
                    b.new[1] = _lae(b.new[1], prev)
                b.new[1] += lp[b.label]
            b.new[0] = b.old[2] + lp[blank]
            b.new[2] = _lae(b.new[0], b.new[1])
            leaves.append(b)
        for b in branches:
            if not candidate(b.old):
                continue
            for label in range(blank):
                c = b.children.setdefault(label, _Entry(b, label))
                if c.active():
                    continue
                prev = b.old[0] if label == b.label else b.old[2]
                c.new = [_NEG, lp[label] + prev, lp[label] + prev]
                if candidate(c.new):
                    if len(leaves) == width:
                        bottom = min(leaves, key=lambda e: e.new[2])
                        bottom.new = [_NEG, _NEG, _NEG]
                        leaves.remove(bottom)
                    leaves.append(c)
                else:
                    c.old = [_NEG, _NEG, _NEG]
                    c.new = [_NEG, _NEG, _NEG]
    best = sorted(leaves, key=lambda e: -e.new[2])[:top]
    return [(e.labels(merge), e.new[2]) for e in best]


@register_kernel("CTCBeamSearchDecoder", device_types=("CPU",))
def _ctc_beam(k: KernelContext) -> Any:
    width, top = int(k.attrs["beam_width"]), int(k.attrs["top_paths"])
    merge = bool(k.attrs.get("merge_repeated", True))

    def compute(logits: Any, seq_len: Any) -> tuple:
        x = np.asarray(logits, dtype=np.float64)
        _, batch, _ = x.shape
        lens = np.asarray(seq_len).reshape(-1)
        paths = []
        for b in range(batch):
            z = x[:int(lens[b]), b]
            logp = z - _lse(z, 1)[:, None] if len(z) else z
            got = _beam_one(logp, width, top, merge)
            got += [((), _NEG)] * (top - len(got))
            paths.append(got)
        outs: list[Any] = []
        for p in range(top):
            rows = [paths[b][p][0] for b in range(batch)]
            idx = [(b, j) for b, r in enumerate(rows) for j in range(len(r))]
            outs += [np.asarray(idx, np.int64).reshape(-1, 2),
                     np.asarray([v for r in rows for v in r], np.int64),
                     np.asarray([batch, max((len(r) for r in rows), default=0)], np.int64)]
        scores = np.asarray([[paths[b][p][1] for p in range(top)] for b in range(batch)],
                            dtype=np.asarray(logits).dtype)
        # outputs: every path's indices, then values, then shapes, then the scores (TF's order)
        return (*outs[0::3], *outs[1::3], *outs[2::3], scores)
    return compute
