"""A dense autoencoder of the digit images with RMSProp (TF1 example style)."""
import numpy as np

import actorflow as tf
from models import digits

flags = tf.app.flags
flags.DEFINE_integer("hidden", 16, "code size")
flags.DEFINE_integer("epochs", 40, "passes")
FLAGS = flags.FLAGS

weights = {}


def encoder(x):
    with tf.variable_scope("encoder"):
        h = tf.nn.sigmoid(tf.layers.dense(x, 32, name="h1"))
        return tf.nn.sigmoid(tf.layers.dense(h, FLAGS.hidden, name="code"))


def decoder(z):
    with tf.variable_scope("decoder"):
        h = tf.nn.sigmoid(tf.layers.dense(z, 32, name="h1"))
        return tf.nn.sigmoid(tf.layers.dense(h, 64, name="out"))


def main(_):
    tf.set_random_seed(0)
    data = digits.load()
    X = tf.placeholder(tf.float32, [None, 64])
    y_pred = decoder(encoder(X))
    loss = tf.losses.mean_squared_error(labels=X, predictions=y_pred)
    train = tf.train.RMSPropOptimizer(0.01).minimize(loss)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        first = s.run(loss, {X: data.test_x})
        for _ in range(FLAGS.epochs):
            for xb, _ in digits.batches(data.train_x, data.train_y, 64):
                s.run(train, {X: xb})
        last = s.run(loss, {X: data.test_x})
    print("variables", len(tf.trainable_variables()))
    print("first_mse", np.round(first, 4))
    print("last_mse", np.round(last, 4))


if __name__ == "__main__":
    tf.app.run()
