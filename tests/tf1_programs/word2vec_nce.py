"""Skip-gram word2vec with nce_loss on a synthetic corpus of 10 topics: words t and t + 10
are synonyms (both appear next to the context words t + 20 and t + 30), so their embeddings
end up nearest neighbours."""
import numpy as np

import actorflow as tf

tf.app.flags.DEFINE_integer("vocab", 40, "vocabulary size")
tf.app.flags.DEFINE_integer("steps", 600, "training steps")
FLAGS = tf.app.flags.FLAGS


def pairs(rng, n):
    """(center, context) pairs: a synonym of topic t next to a context word of topic t."""
    topic = rng.randint(0, 10, n)
    center = topic + 10 * rng.randint(0, 2, n)
    context = topic + 20 + 10 * rng.randint(0, 2, n)
    return center.astype(np.int32), context.astype(np.int64)


def main(_):
    rng = np.random.RandomState(0)
    centers = tf.placeholder(tf.int32, [None])
    contexts = tf.placeholder(tf.int64, [None, 1])
    emb = tf.Variable(tf.random_uniform([FLAGS.vocab, 16], -1.0, 1.0))
    nce_w = tf.Variable(tf.truncated_normal([FLAGS.vocab, 16], stddev=0.25))
    nce_b = tf.Variable(tf.zeros([FLAGS.vocab]))
    embed = tf.nn.embedding_lookup(emb, centers)
    loss = tf.reduce_mean(tf.nn.nce_loss(weights=nce_w, biases=nce_b, labels=contexts,
                                         inputs=embed, num_sampled=8,
                                         num_classes=FLAGS.vocab))
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    norm = tf.sqrt(tf.reduce_sum(tf.square(emb), 1, keep_dims=True))
    normed = emb / norm
    sim = tf.matmul(normed, normed, transpose_b=True)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        losses = []
        for _ in range(FLAGS.steps):
            c, o = pairs(rng, 64)
            _, l = s.run([train, loss], {centers: c, contexts: o[:, None]})
            losses.append(l)
        simv = s.run(sim)
    np.fill_diagonal(simv, -2)
    nearest = simv[:10, :20].argmax(1)   # among the center words
    found = np.mean(nearest == np.arange(10) + 10)
    print("first_loss", np.round(np.mean(losses[:20]), 4))
    print("last_loss", np.round(np.mean(losses[-20:]), 4))
    print("pairs_found", found)


if __name__ == "__main__":
    tf.app.run()
