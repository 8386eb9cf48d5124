"""A variational autoencoder of the digit images (reparameterisation with tf.random_normal),
variables from tf.get_variable with xavier initialisers."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("epochs", 15, "passes")
FLAGS = tf.app.flags.FLAGS
image_dim, hidden_dim, latent_dim = 64, 48, 4


def dense(name, x, n_in, n_out, act=None):
    with tf.variable_scope(name):
        w = tf.get_variable("w", [n_in, n_out],
                            initializer=tf.contrib.layers.xavier_initializer())
        b = tf.get_variable("b", [n_out], initializer=tf.zeros_initializer())
        y = tf.matmul(x, w) + b
        return act(y) if act else y


def main(_):
    tf.set_random_seed(3)
    data = digits.load()
    x = tf.placeholder(tf.float32, [None, image_dim])
    h = dense("enc", x, image_dim, hidden_dim, tf.nn.tanh)
    z_mean = dense("mean", h, hidden_dim, latent_dim)
    z_std = dense("std", h, hidden_dim, latent_dim)
    eps = tf.random_normal(tf.shape(z_std), dtype=tf.float32, mean=0.0, stddev=1.0)
    z = z_mean + tf.exp(z_std / 2) * eps
    hd = dense("dec", z, latent_dim, hidden_dim, tf.nn.tanh)
    out = dense("out", hd, hidden_dim, image_dim, tf.nn.sigmoid)
    encode_decode_loss = x * tf.log(1e-10 + out) + (1 - x) * tf.log(1e-10 + 1 - out)
    encode_decode_loss = -tf.reduce_sum(encode_decode_loss, 1)
    kl_div_loss = 1 + z_std - tf.square(z_mean) - tf.exp(z_std)
    kl_div_loss = -0.5 * tf.reduce_sum(kl_div_loss, 1)
    loss = tf.reduce_mean(encode_decode_loss + kl_div_loss)
    train = tf.train.RMSPropOptimizer(0.005).minimize(loss)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        first = s.run(loss, {x: data.test_x})
        for _ in range(FLAGS.epochs):
            for xb, _ in digits.batches(data.train_x, data.train_y, 64):
                s.run(train, {x: xb})
        last = s.run(loss, {x: data.test_x})
    print("first_loss", np.round(first, 3))
    print("last_loss", np.round(last, 3))


if __name__ == "__main__":
    tf.app.run()
