"""Linear regression the way the first TF1 tutorials write it: scalar weight and bias as
tf.Variable(rng.randn()), one Python float fed per step for X and Y, tf.pow for the cost,
and the cost printed every few epochs; then a test set evaluated with the same graph."""
import numpy

import actorflow as tf

rng = numpy.random
rng.seed(1)
tf.app.flags.DEFINE_integer("training_epochs", 100, "epochs")
FLAGS = tf.app.flags.FLAGS
learning_rate, display_step = 0.01, 50


def main(_):
    train_X = numpy.asarray([3.3, 4.4, 5.5, 6.71, 6.93, 4.168, 9.779, 6.182, 7.59, 2.167,
                             7.042, 10.791, 5.313, 7.997, 5.654, 9.27, 3.1])
    train_Y = numpy.asarray([1.7, 2.76, 2.09, 3.19, 1.694, 1.573, 3.366, 2.596, 2.53, 1.221,
                             2.827, 3.465, 1.65, 2.904, 2.42, 2.94, 1.3])
    n_samples = train_X.shape[0]
    X = tf.placeholder("float")
    Y = tf.placeholder("float")
    W = tf.Variable(rng.randn(), name="weight")
    b = tf.Variable(rng.randn(), name="bias")
    pred = tf.add(tf.multiply(X, W), b)
    cost = tf.reduce_sum(tf.pow(pred - Y, 2)) / (2 * n_samples)
    optimizer = tf.train.GradientDescentOptimizer(learning_rate).minimize(cost)
    init = tf.global_variables_initializer()
    with tf.Session() as sess:
        sess.run(init)
        for epoch in range(FLAGS.training_epochs):
            for (x, y) in zip(train_X, train_Y, strict=True):
                sess.run(optimizer, feed_dict={X: x, Y: y})
            if (epoch + 1) % display_step == 0:
                c = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
                print("Epoch:", '%04d' % (epoch + 1), "cost=", f"{c:.9f}",  # noqa: UP031
                      "W=", sess.run(W), "b=", sess.run(b))
        training_cost = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
        test_X = numpy.asarray([6.83, 4.668, 8.9, 7.91, 5.7, 8.7, 3.1, 2.1])
        test_Y = numpy.asarray([1.84, 2.273, 3.2, 2.831, 2.92, 3.24, 1.35, 1.03])
        testing_cost = sess.run(
            tf.reduce_sum(tf.pow(pred - Y, 2)) / (2 * test_X.shape[0]),
            feed_dict={X: test_X, Y: test_Y})
        w_final, b_final = sess.run([W, b])
    print("training_cost", f"{training_cost:.6f}")
    print("testing_cost", f"{testing_cost:.6f}")
    print("weights", f"{w_final:.6f}", f"{b_final:.6f}")


if __name__ == "__main__":
    tf.app.run()
