"""The Dataset API the TF 1.x way: from_tensor_slices + map + shuffle + batch + repeat,
an initializable iterator re-initialised per epoch with a placeholder-fed dataset, and a
feedable iterator switching between training and validation by string handle
(tf.data.Iterator.from_string_handle)."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("epochs", 4, "passes over the training set")
FLAGS = tf.app.flags.FLAGS


def main(_):
    tf.set_random_seed(9)
    data = digits.load()
    features_placeholder = tf.placeholder(tf.float32, [None, 64])
    labels_placeholder = tf.placeholder(tf.int32, [None])
    train_ds = tf.data.Dataset.from_tensor_slices((features_placeholder, labels_placeholder))
    train_ds = train_ds.map(lambda x, y: (x * 2.0 - 1.0, tf.one_hot(y, 10)))
    train_ds = train_ds.shuffle(buffer_size=500, seed=3).batch(64)
    val_ds = tf.data.Dataset.from_tensor_slices((data.test_x, data.test_y))
    val_ds = val_ds.map(lambda x, y: (x * 2.0 - 1.0, tf.one_hot(y, 10))).batch(360).repeat()

    train_iterator = train_ds.make_initializable_iterator()
    val_iterator = val_ds.make_one_shot_iterator()
    handle = tf.placeholder(tf.string, shape=[])
    iterator = tf.data.Iterator.from_string_handle(
        handle, train_ds.output_types, train_ds.output_shapes)
    x, y = iterator.get_next()

    w = tf.Variable(tf.zeros([64, 10]))
    b = tf.Variable(tf.zeros([10]))
    logits = tf.matmul(x, w) + b
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
    train_op = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(y, 1)), tf.float32))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        training_handle = sess.run(train_iterator.string_handle())
        validation_handle = sess.run(val_iterator.string_handle())
        batches = 0
        for _epoch in range(FLAGS.epochs):
            sess.run(train_iterator.initializer, feed_dict={
                features_placeholder: data.train_x, labels_placeholder: data.train_y})
            while True:
                try:
                    sess.run(train_op, feed_dict={handle: training_handle})
                    batches += 1
                except tf.errors.OutOfRangeError:
                    break
        val_acc = sess.run(acc, feed_dict={handle: validation_handle})
        val_acc2 = sess.run(acc, feed_dict={handle: validation_handle})
    print("handle_type", type(training_handle).__name__)
    print("batches", batches)
    print("accuracy", np.round(val_acc, 4), np.round(val_acc2, 4))


if __name__ == "__main__":
    tf.app.run()
