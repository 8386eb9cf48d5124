"""af.contrib.crf: the log-likelihood equals a brute-force sum over every tag sequence, its
gradient trains the transitions, and Viterbi decoding finds the best-scoring sequence."""

import itertools

import numpy as np

import actorflow as tf


def _brute(x, trans, n):
    def score(t):
        return sum(x[i, t[i]] for i in range(n)) + sum(trans[t[i - 1], t[i]]
                                                      for i in range(1, n))
    seqs = list(itertools.product(range(x.shape[1]), repeat=n))
    scores = np.array([score(t) for t in seqs])
    return score, seqs, scores


def test_log_likelihood_and_decode_against_brute_force():
    rng = np.random.RandomState(0)
    x = rng.randn(3, 5, 4).astype(np.float32)
    tags = rng.randint(0, 4, (3, 5)).astype(np.int32)
    lens = np.int32([5, 3, 1])
    trans = rng.randn(4, 4).astype(np.float32)
    with tf.Graph().as_default():
        tp = tf.Variable(trans)
        ll, _ = tf.contrib.crf.crf_log_likelihood(tf.constant(x), tags, lens, tp)
        decoded, best = tf.contrib.crf.crf_decode(tf.constant(x), tp, lens)
        train = tf.train.GradientDescentOptimizer(0.1).minimize(-tf.reduce_sum(ll))
        with tf.Session() as s:
            s.run(tp.initializer)
            ll_, dec_, best_ = s.run([ll, decoded, best])
            for _ in range(20):
                s.run(train)
            assert s.run(tf.reduce_sum(ll)) > ll_.sum() + 1.0  # training raises the likelihood
    for b in range(3):
        score, seqs, scores = _brute(x[b], trans, lens[b])
        want = score(tags[b]) - np.log(np.exp(scores).sum())
        assert abs(ll_[b] - want) < 1e-4
        assert tuple(dec_[b, :lens[b]]) == seqs[int(scores.argmax())]
        assert abs(best_[b] - scores.max()) < 1e-4 and not dec_[b, lens[b]:].any()
    path, s = tf.contrib.crf.viterbi_decode(x[1, :3], trans)
    assert path == list(dec_[1, :3]) and abs(s - best_[1]) < 1e-5


def test_decode_on_edge_shapes_matches_viterbi_and_exports(tmp_path):
    """One time step, one tag, empty sequences and full ones, against NumPy's Viterbi;
    the decoder is ordinary ops, so its graph round-trips through a .meta file."""
    rng = np.random.RandomState(1)
    for batch, t, n in [(4, 1, 3), (3, 6, 1), (5, 7, 4)]:
        x = rng.randn(batch, t, n).astype(np.float32)
        trans = rng.randn(n, n).astype(np.float32)
        lens = rng.randint(0, t + 1, batch).astype(np.int32)
        lens[0], lens[-1] = 0, t
        with tf.Graph().as_default() as g:
            xs = tf.placeholder(tf.float32, [None, None, n], name="x")
            tags, best = tf.contrib.crf.crf_decode(xs, tf.constant(trans), tf.constant(lens))
            tf.add_to_collection("out", tags)
            tf.add_to_collection("out", best)
            with tf.Session() as s:
                tags_, best_ = s.run([tags, best], {xs: x})
            meta = str(tmp_path / f"crf{batch}{t}{n}.meta")
            tf.train.export_meta_graph(meta, graph=g)
        for b in range(batch):
            if lens[b] == 0:
                assert not tags_[b].any() and best_[b] == 0
                continue
            path, score = tf.contrib.crf.viterbi_decode(x[b, :lens[b]], trans)
            assert list(tags_[b, :lens[b]]) == path and not tags_[b, lens[b]:].any()
            assert abs(best_[b] - score) < 1e-4
        with tf.Graph().as_default():
            tf.train.import_meta_graph(meta)
            again = tf.get_collection("out")
            with tf.Session() as s:
                t2, b2 = s.run(again, {"x:0": x})
        np.testing.assert_array_equal(t2, tags_)
        np.testing.assert_array_equal(b2, best_)
