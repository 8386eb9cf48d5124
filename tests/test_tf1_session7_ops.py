"""TF1 names added in session 7: FtrlOptimizer and metrics.auc (against TensorFlow 2.21's
values for the same programs, recorded from its side environment), 1-D and separable layers,
atrous_conv2d, fused_batch_norm, confusion_matrix, sparse_to_dense, af.sparse, the contrib
block cells, stack_bidirectional_dynamic_rnn, embed_sequence, optimize_loss, framework."""

import numpy as np
import pytest

import actorflow as tf


def test_ftrl_matches_tensorflow_dense_and_sparse():
    rng = np.random.RandomState(0)
    X = rng.randn(16, 3).astype(np.float32)
    Y = X @ np.float32([1, -2, 0.5])
    with tf.Graph().as_default():
        x, y = tf.placeholder(tf.float32, [None, 3]), tf.placeholder(tf.float32, [None])
        w = tf.Variable(np.zeros(3, np.float32))
        emb = tf.Variable(np.ones((5, 3), np.float32))
        pred = tf.reduce_sum(x * w, 1) + tf.reduce_sum(tf.gather(emb, [1, 3]))
        loss = tf.reduce_mean(tf.square(pred - y))
        train = tf.train.FtrlOptimizer(0.3, l1_regularization_strength=0.01,
                                       l2_regularization_strength=0.1).minimize(loss)
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            for _ in range(5):
                s.run(train, {x: X, y: Y})
            # TensorFlow 2.21 (tf.compat.v1.train.FtrlOptimizer), the same program:
            np.testing.assert_allclose(s.run(w), [0.096035, -0.815232, 0.558252], atol=2e-6)
            np.testing.assert_allclose(s.run(emb)[:, 0], [1, 0.249714, 1, 0.249714, 1],
                                       atol=2e-6)
        assert sorted(v.name for v in tf.global_variables()) == [
            "Variable/Ftrl:0", "Variable/Ftrl_1:0", "Variable:0", "Variable_1/Ftrl:0",
            "Variable_1/Ftrl_1:0", "Variable_1:0"]


def test_metrics_auc_matches_tensorflow():
    rng = np.random.RandomState(0)
    y = rng.rand(200) > 0.5
    p = np.clip(y * 0.3 + rng.rand(200) * 0.7, 0, 1).astype(np.float32)
    with tf.Graph().as_default():
        lab, pr = tf.placeholder(tf.bool, [None]), tf.placeholder(tf.float32, [None])
        roc, up = tf.metrics.auc(lab, pr)
        prc, up_pr = tf.contrib.metrics.streaming_auc(lab, pr, curve="PR", num_thresholds=50)
        with tf.Session() as s:
            s.run(tf.local_variables_initializer())
            for i in range(0, 200, 50):
                s.run([up, up_pr], {lab: y[i:i + 50], pr: p[i:i + 50]})
            got = s.run([roc, prc])
    np.testing.assert_allclose(got, [0.7931554, 0.8317897], rtol=1e-6)  # TF 2.21's values


def test_layers_1d_separable_atrous_fused_bn():
    rng = np.random.RandomState(0)
    seq = rng.randn(2, 9, 3).astype(np.float32)
    img = rng.randn(2, 6, 6, 3).astype(np.float32)
    with tf.Graph().as_default():
        c = tf.layers.conv1d(tf.constant(seq), 4, 3, padding="same")
        mp = tf.layers.max_pooling1d(c, 2, 2)
        ap = tf.layers.average_pooling1d(c, 3, 1)
        sep = tf.layers.separable_conv2d(tf.constant(img), 5, 3, depth_multiplier=2)
        w = rng.randn(3, 3, 3, 2).astype(np.float32)
        at = tf.nn.atrous_conv2d(img, w, 2, "VALID")
        y, m, v = tf.nn.fused_batch_norm(img, np.ones(3, np.float32), np.zeros(3, np.float32))
        names = [v.name for v in tf.trainable_variables()]
        grads = tf.gradients(tf.reduce_sum(sep) + tf.reduce_sum(mp), tf.trainable_variables())
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            c_, mp_, ap_, sep_, at_, y_, v_, k = s.run([c, mp, ap, sep, at, y, v,
                                                        tf.trainable_variables()[0]])
            assert all(g.shape for g in s.run(grads))
    assert names == ["conv1d/kernel:0", "conv1d/bias:0", "separable_conv2d/depthwise_kernel:0",
                     "separable_conv2d/pointwise_kernel:0", "separable_conv2d/bias:0"]
    padded = np.pad(seq, ((0, 0), (1, 1), (0, 0)))
    want = np.stack([np.einsum("bkc,kcf->bf", padded[:, i:i + 3], k) for i in range(9)], 1)
    np.testing.assert_allclose(c_, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mp_, np.maximum(c_[:, 0:8:2], c_[:, 1:8:2]), rtol=1e-6)
    np.testing.assert_allclose(ap_, (c_[:, :-2] + c_[:, 1:-1] + c_[:, 2:]) / 3, rtol=1e-5)
    assert sep_.shape == (2, 4, 4, 5)
    ref = sum(np.einsum("bhwc,cf->bhwf", img[:, 2 * i:2 + 2 * i, 2 * j:2 + 2 * j], w[i, j])
              for i in range(3) for j in range(3))
    np.testing.assert_allclose(at_, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_.mean((0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(v_, img.var((0, 1, 2)) * 72 / 71, rtol=1e-5)


def test_confusion_sparse_and_contrib():
    with tf.Graph().as_default():
        cm = tf.confusion_matrix([1, 2, 4], [2, 2, 4])
        cm_w = tf.math.confusion_matrix([0, 1], [1, 1], num_classes=3, weights=[0.5, 2.0],
                                        dtype=tf.float32)
        dense = tf.sparse_to_dense([1, 3], [5], 7)
        dense2 = tf.sparse_to_dense([[0, 1], [1, 0]], [2, 2], [3.0, 4.0], default_value=-1.0)
        sp = tf.SparseTensor([[0, 0], [1, 2]], [1.0, 5.0], [2, 3])
        total = tf.sparse.reduce_sum(sp, axis=1)
        ids = tf.constant([[1, 2, 3], [0, 4, 4]])
        emb = tf.contrib.layers.embed_sequence(ids, vocab_size=5, embed_dim=3)
        gs = tf.contrib.framework.get_or_create_global_step()
        train = tf.contrib.layers.optimize_loss(tf.reduce_sum(tf.square(emb)), gs, 0.1, "SGD",
                                                clip_gradients=1.0)
        out, fw, bw = tf.contrib.rnn.stack_bidirectional_dynamic_rnn(
            [tf.contrib.rnn.LSTMBlockCell(5), tf.contrib.rnn.GRUBlockCell(4)],
            [tf.contrib.rnn.LSTMBlockCell(5), tf.contrib.rnn.GRUBlockCell(4)],
            tf.constant(np.ones((2, 4, 3), np.float32)), dtype=tf.float32,
            sequence_length=[4, 2])
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            r = s.run([cm, cm_w, dense, dense2, total, out])
            l0, l1 = s.run(train), s.run(train)
            assert s.run(gs) == 2 and l1 < l0
        assert [v.name for v in tf.contrib.framework.get_variables("EmbedSequence")][0] == \
            "EmbedSequence/embeddings:0"
    assert r[0][1, 2] == 1 and r[0][2, 2] == 1 and r[0][4, 4] == 1 and r[0].sum() == 3
    np.testing.assert_array_equal(r[1], [[0, .5, 0], [0, 2, 0], [0, 0, 0]])
    assert r[2].tolist() == [0, 7, 0, 7, 0] and r[3].tolist() == [[-1, 3], [4, -1]]
    assert r[4].tolist() == [1.0, 5.0]
    assert r[5].shape == (2, 4, 8) and not r[5][1, 2:].any()  # zero past sequence_length
    assert len(fw) == 2 and len(bw) == 2
    with pytest.raises(ValueError, match="Optimizer name should be one of"):
        with tf.Graph().as_default():
            v = tf.Variable(1.0)
            tf.contrib.layers.optimize_loss(v * 2.0, None, 0.1, "Nope")
