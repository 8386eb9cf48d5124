"""The save/restore tutorial shape: train an MLP, tf.train.Saver().save to a path, start a new
session, restore, check the accuracy survives, and train further from the restored weights."""
import os
import tempfile

import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_string("model_path", "", "checkpoint prefix (a temporary one if empty)")
FLAGS = tf.app.flags.FLAGS
n_hidden_1, n_input, n_classes = 32, 64, 10


def main(_):
    tf.set_random_seed(11)
    model_path = FLAGS.model_path or os.path.join(tempfile.mkdtemp(), "model.ckpt")
    data = digits.load()
    x = tf.placeholder("float", [None, n_input])
    y = tf.placeholder("float", [None, n_classes])
    weights = {
        'h1': tf.Variable(tf.random_normal([n_input, n_hidden_1], stddev=0.1)),
        'out': tf.Variable(tf.random_normal([n_hidden_1, n_classes], stddev=0.1))
    }
    biases = {
        'b1': tf.Variable(tf.random_normal([n_hidden_1], stddev=0.1)),
        'out': tf.Variable(tf.random_normal([n_classes], stddev=0.1))
    }
    layer_1 = tf.nn.relu(tf.add(tf.matmul(x, weights['h1']), biases['b1']))
    pred = tf.matmul(layer_1, weights['out']) + biases['out']
    cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=pred, labels=y))
    optimizer = tf.train.AdamOptimizer(learning_rate=0.01).minimize(cost)
    correct = tf.equal(tf.argmax(pred, 1), tf.argmax(y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, "float"))
    init = tf.global_variables_initializer()
    saver = tf.train.Saver()
    test = {x: data.test_x, y: digits.one_hot(data.test_y)}
    print("Starting 1st session...")
    with tf.Session() as sess:
        sess.run(init)
        for epoch in range(3):
            for bx, by in digits.batches(data.train_x, data.train_y, 64, seed=epoch):
                sess.run(optimizer, feed_dict={x: bx, y: digits.one_hot(by)})
        acc1 = accuracy.eval(test)
        save_path = saver.save(sess, model_path)
        print("saved_to_path", save_path == model_path)
    print("Starting 2nd session...")
    with tf.Session() as sess:
        sess.run(init)
        fresh = accuracy.eval(test)
        load_path = saver.restore(sess, model_path)
        acc2 = accuracy.eval(test)
        for epoch in range(3, 6):
            for bx, by in digits.batches(data.train_x, data.train_y, 64, seed=epoch):
                sess.run(optimizer, feed_dict={x: bx, y: digits.one_hot(by)})
        acc3 = accuracy.eval(test)
    print("restore_returns", load_path)
    print("first_accuracy", np.round(acc1, 4))
    print("fresh_accuracy", np.round(fresh, 4))
    print("restored_accuracy", np.round(acc2, 4))
    print("final_accuracy", np.round(acc3, 4))
    print("files", sorted(f.replace(os.path.basename(model_path), "M")
                          for f in os.listdir(os.path.dirname(model_path))))


if __name__ == "__main__":
    tf.app.run()
