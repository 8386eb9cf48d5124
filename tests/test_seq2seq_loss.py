"""contrib.seq2seq.sequence_loss and legacy_seq2seq losses against a NumPy reference of TF
1.15's reductions (average_* divide by the label weight, sum_over_* by the non-zero count)."""

import numpy as np
import pytest

import actorflow as tf


def _ce(lg, t):
    z = lg - lg.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, t[..., None], -1)[..., 0]


def test_sequence_losses_match_the_reference():
    rng = np.random.RandomState(0)
    lg = rng.randn(3, 4, 5).astype(np.float32)
    t = rng.randint(0, 5, (3, 4)).astype(np.int32)
    w = np.float32([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]) * np.float32([[1], [2], [1]])
    ce = _ce(lg, t) * w
    sl = tf.contrib.seq2seq.sequence_loss
    with tf.Graph().as_default(), tf.Session() as s:
        got = s.run([sl(lg, t, w), sl(lg, t, w, average_across_timesteps=False),
                     sl(lg, t, w, average_across_batch=False), sl(lg, t, w, False, False),
                     sl(lg, t, w, False, False, sum_over_timesteps=True, sum_over_batch=True),
                     sl(lg, t, w, False, False, sum_over_timesteps=True),
                     tf.contrib.legacy_seq2seq.sequence_loss_by_example(
                         list(lg.transpose(1, 0, 2)), list(t.T), list(w.T)),
                     tf.contrib.legacy_seq2seq.sequence_loss(
                         list(lg.transpose(1, 0, 2)), list(t.T), list(w.T))])
    want = [ce.sum() / w.sum(), ce.sum(0) / w.sum(0), ce.sum(1) / w.sum(1), ce,
            ce.sum() / (w != 0).sum(), ce.sum(1) / (w != 0).sum(1), ce.sum(1) / w.sum(1),
            (ce.sum(1) / w.sum(1)).sum() / 3]
    for g, wnt in zip(got, want, strict=True):
        np.testing.assert_allclose(g, wnt, rtol=1e-5)
    with pytest.raises(ValueError, match="cannot be both True"):
        sl(lg, t, w, sum_over_timesteps=True)
