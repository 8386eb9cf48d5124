"""A GAN on the digit images in the tutorial style: weights in dicts of tf.Variable, two
optimizers each given its own var_list, glorot-style init, tf.log losses."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("steps", 300, "training steps")
FLAGS = tf.app.flags.FLAGS

image_dim, gen_hidden_dim, disc_hidden_dim, noise_dim = 64, 32, 32, 8
batch_size = 64


def glorot_init(shape):
    return tf.random_normal(shape=shape, stddev=1. / tf.sqrt(shape[0] / 2.))


def main(_):
    tf.set_random_seed(1)
    data = digits.load()
    weights = {
        'gen_hidden1': tf.Variable(glorot_init([noise_dim, gen_hidden_dim])),
        'gen_out': tf.Variable(glorot_init([gen_hidden_dim, image_dim])),
        'disc_hidden1': tf.Variable(glorot_init([image_dim, disc_hidden_dim])),
        'disc_out': tf.Variable(glorot_init([disc_hidden_dim, 1])),
    }
    biases = {
        'gen_hidden1': tf.Variable(tf.zeros([gen_hidden_dim])),
        'gen_out': tf.Variable(tf.zeros([image_dim])),
        'disc_hidden1': tf.Variable(tf.zeros([disc_hidden_dim])),
        'disc_out': tf.Variable(tf.zeros([1])),
    }

    def generator(x):
        hidden_layer = tf.nn.relu(tf.add(tf.matmul(x, weights['gen_hidden1']),
                                         biases['gen_hidden1']))
        out_layer = tf.matmul(hidden_layer, weights['gen_out']) + biases['gen_out']
        return tf.nn.sigmoid(out_layer)

    def discriminator(x):
        hidden_layer = tf.nn.relu(tf.add(tf.matmul(x, weights['disc_hidden1']),
                                         biases['disc_hidden1']))
        out_layer = tf.add(tf.matmul(hidden_layer, weights['disc_out']), biases['disc_out'])
        return tf.nn.sigmoid(out_layer)

    gen_input = tf.placeholder(tf.float32, shape=[None, noise_dim], name='input_noise')
    disc_input = tf.placeholder(tf.float32, shape=[None, image_dim], name='disc_input')
    gen_sample = generator(gen_input)
    disc_real = discriminator(disc_input)
    disc_fake = discriminator(gen_sample)
    gen_loss = -tf.reduce_mean(tf.log(disc_fake))
    disc_loss = -tf.reduce_mean(tf.log(disc_real) + tf.log(1. - disc_fake))
    optimizer_gen = tf.train.AdamOptimizer(learning_rate=0.002)
    optimizer_disc = tf.train.AdamOptimizer(learning_rate=0.002)
    gen_vars = [weights['gen_hidden1'], weights['gen_out'],
                biases['gen_hidden1'], biases['gen_out']]
    disc_vars = [weights['disc_hidden1'], weights['disc_out'],
                 biases['disc_hidden1'], biases['disc_out']]
    train_gen = optimizer_gen.minimize(gen_loss, var_list=gen_vars)
    train_disc = optimizer_disc.minimize(disc_loss, var_list=disc_vars)
    rng = np.random.RandomState(0)
    init = tf.global_variables_initializer()
    with tf.Session() as sess:
        sess.run(init)
        start = sess.run(tf.reduce_mean(gen_sample),
                         {gen_input: rng.uniform(-1., 1., size=[256, noise_dim])})
        for _i in range(1, FLAGS.steps + 1):
            idx = rng.randint(0, len(data.train_x), batch_size)
            batch_x = data.train_x[idx]
            z = rng.uniform(-1., 1., size=[batch_size, noise_dim])
            _, _, gl, dl = sess.run([train_gen, train_disc, gen_loss, disc_loss],
                                    feed_dict={disc_input: batch_x, gen_input: z})
        z = rng.uniform(-1., 1., size=[256, noise_dim])
        g = sess.run(gen_sample, feed_dict={gen_input: z})
    print("start_mean", np.round(start, 4))
    print("sample_mean", np.round(g.mean(), 4))
    print("data_mean", np.round(data.train_x.mean(), 4))
    print("gen_loss", np.round(gl, 4))
    print("disc_loss", np.round(dl, 4))
    print("finite", bool(np.isfinite(gl) and np.isfinite(dl)))


if __name__ == "__main__":
    tf.app.run()
