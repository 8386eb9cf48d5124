"""af.distributions: densities, entropies and KL divergences equal to TensorFlow 2.21's
tf.compat.v1.distributions for the same parameters (recorded from its side environment);
samples with the right moments; reparameterized gradients."""

import numpy as np

import actorflow as tf


def test_values_match_tensorflow():
    D = tf.distributions
    with tf.Graph().as_default():
        n, m = D.Normal(loc=[0.5, -1.0], scale=[1.5, 0.3]), D.Normal(0., 1.)
        b, b2 = D.Bernoulli(probs=[0.2, 0.7]), D.Bernoulli(logits=[0.0, 1.0])
        c, c2 = D.Categorical(logits=[[1.0, 2.0, 0.5]]), D.Categorical(probs=[[0.2, 0.3, 0.5]])
        u = D.Uniform(1.0, 3.0)
        out = [n.log_prob([0.1, 0.2]), n.entropy(), D.kl_divergence(n, m), n.cdf([0.0, 0.0]),
               b.log_prob([1, 0]), b.entropy(), D.kl_divergence(b, b2), c.log_prob([1]),
               c.entropy(), D.kl_divergence(c, c2), u.log_prob([2.0, 5.0]), u.entropy()]
        with tf.Session() as s:
            got = s.run(out)
    want = [[-1.35996, -7.71497], [1.8244, 0.21497], [0.34453, 1.24897], [0.36944, 0.99957],
            [-1.60944, -1.20397], [0.5004, 0.61086], [0.19274, 0.0024], [-0.46437], [0.90596],
            [0.32013], [-0.69315, -np.inf], 0.69315]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_samples_and_reparameterized_gradients():
    with tf.Graph().as_default():
        loc = tf.Variable([0.5, -1.0])
        q = tf.distributions.Normal(loc=loc, scale=[1.5, 0.3])
        z = q.sample(20000, seed=3)
        g = tf.gradients(tf.reduce_mean(z), [loc])[0]
        cat = tf.distributions.Categorical(probs=[[0.1, 0.6, 0.3]]).sample(6000, seed=4)
        bern = tf.distributions.Bernoulli(probs=0.25).sample([4000], seed=5)
        with tf.Session() as s:
            s.run(loc.initializer)
            z_, g_, cat_, bern_ = s.run([z, g, cat, bern])
    assert z_.shape == (20000, 2) and cat_.shape == (6000, 1)
    np.testing.assert_allclose(z_.mean(0), [0.5, -1.0], atol=0.04)
    np.testing.assert_allclose(z_.std(0), [1.5, 0.3], rtol=0.03)
    np.testing.assert_allclose(g_, [0.5, 0.5], rtol=1e-3)  # d mean(loc + scale * eps) / d loc
    np.testing.assert_allclose(np.bincount(cat_.ravel(), minlength=3) / 6000, [.1, .6, .3],
                               atol=0.025)
    assert abs(bern_.mean() - 0.25) < 0.025
