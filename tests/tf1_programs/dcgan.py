"""A DCGAN on the 8x8 digit images: tf.layers.conv2d_transpose and batch normalization in a
generator under variable_scope (reuse=tf.AUTO_REUSE), leaky ReLU, two Adam optimizers with
var_list taken from the TRAINABLE_VARIABLES collection by scope, UPDATE_OPS dependencies."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("steps", 100, "training steps")
FLAGS = tf.app.flags.FLAGS
noise_dim, batch_size = 16, 32


def leakyrelu(x, alpha=0.2):
    return 0.5 * (1 + alpha) * x + 0.5 * (1 - alpha) * abs(x)


def generator(x, is_training, reuse=False):
    with tf.variable_scope('Generator', reuse=reuse):
        x = tf.layers.dense(x, units=2 * 2 * 32)
        x = tf.layers.batch_normalization(x, training=is_training)
        x = tf.nn.relu(x)
        x = tf.reshape(x, shape=[-1, 2, 2, 32])
        x = tf.layers.conv2d_transpose(x, 16, 4, strides=2, padding='same')
        x = tf.layers.batch_normalization(x, training=is_training)
        x = tf.nn.relu(x)
        x = tf.layers.conv2d_transpose(x, 1, 4, strides=2, padding='same')
        x = tf.nn.tanh(x)
        return x


def discriminator(x, is_training, reuse=False):
    with tf.variable_scope('Discriminator', reuse=reuse):
        x = tf.layers.conv2d(x, 16, 3, strides=2, padding='same')
        x = tf.layers.batch_normalization(x, training=is_training)
        x = leakyrelu(x)
        x = tf.reshape(x, shape=[-1, 4 * 4 * 16])
        x = tf.layers.dense(x, 32)
        x = tf.layers.batch_normalization(x, training=is_training)
        x = leakyrelu(x)
        x = tf.layers.dense(x, 2)
    return x


def main(_):
    tf.set_random_seed(7)
    data = digits.load()
    noise_input = tf.placeholder(tf.float32, shape=[None, noise_dim])
    real_image_input = tf.placeholder(tf.float32, shape=[None, 8, 8, 1])
    is_training = tf.placeholder(tf.bool)
    gen_sample = generator(noise_input, is_training)
    disc_real = discriminator(real_image_input, is_training)
    disc_fake = discriminator(gen_sample, is_training, reuse=True)
    stacked_gan = discriminator(gen_sample, is_training, reuse=True)
    disc_loss_real = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=disc_real, labels=tf.ones([batch_size], dtype=tf.int32)))
    disc_loss_fake = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=disc_fake, labels=tf.zeros([batch_size], dtype=tf.int32)))
    disc_loss = disc_loss_real + disc_loss_fake
    gen_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=stacked_gan, labels=tf.ones([batch_size], dtype=tf.int32)))
    optimizer_gen = tf.train.AdamOptimizer(learning_rate=0.002, beta1=0.5, beta2=0.999)
    optimizer_disc = tf.train.AdamOptimizer(learning_rate=0.002, beta1=0.5, beta2=0.999)
    gen_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope='Generator')
    disc_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope='Discriminator')
    gen_update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope='Generator')
    with tf.control_dependencies(gen_update_ops):
        train_gen = optimizer_gen.minimize(gen_loss, var_list=gen_vars)
    disc_update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope='Discriminator')
    with tf.control_dependencies(disc_update_ops):
        train_disc = optimizer_disc.minimize(disc_loss, var_list=disc_vars)
    init = tf.global_variables_initializer()
    rng = np.random.RandomState(0)
    images = data.train_x.reshape(-1, 8, 8, 1) * 2. - 1.
    with tf.Session() as sess:
        sess.run(init)
        for _i in range(1, FLAGS.steps + 1):
            batch_x = images[rng.randint(0, len(images), batch_size)]
            z = rng.uniform(-1., 1., size=[batch_size, noise_dim])
            _, dl = sess.run([train_disc, disc_loss], feed_dict={
                real_image_input: batch_x, noise_input: z, is_training: True})
            z = rng.uniform(-1., 1., size=[batch_size, noise_dim])
            _, gl = sess.run([train_gen, gen_loss], feed_dict={
                noise_input: z, is_training: True})
        g = sess.run(gen_sample, feed_dict={
            noise_input: rng.uniform(-1., 1., size=[8, noise_dim]), is_training: False})
        moving = [v for v in tf.global_variables() if 'moving_mean' in v.name]
    print("gen_vars", len(gen_vars))
    print("disc_vars", len(disc_vars))
    print("update_ops", len(gen_update_ops), len(disc_update_ops))
    print("moving_means", len(moving))
    print("sample_shape", list(g.shape))
    print("sample_range", bool(g.min() >= -1 and g.max() <= 1))
    print("losses", np.round(gl, 4), np.round(dl, 4))


if __name__ == "__main__":
    tf.app.run()
