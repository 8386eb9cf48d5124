"""The tensorboard "advanced" tutorial shape: an MLP built under tf.name_scope blocks,
summaries of every trainable variable and every gradient (tf.summary.histogram), scalars,
merge_all, and a FileWriter given the graph; the event file is read back."""
import glob
import os
import tempfile

import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("epochs", 3, "passes")
tf.app.flags.DEFINE_string("logs_path", "", "event file directory (a temporary one if empty)")
FLAGS = tf.app.flags.FLAGS
n_hidden_1, n_hidden_2, num_input, num_classes = 32, 32, 64, 10


def multilayer_perceptron(x, weights, biases):
    layer_1 = tf.add(tf.matmul(x, weights['w1']), biases['b1'])
    layer_1 = tf.nn.relu(layer_1)
    tf.summary.histogram("relu1", layer_1)
    layer_2 = tf.add(tf.matmul(layer_1, weights['w2']), biases['b2'])
    layer_2 = tf.nn.relu(layer_2)
    tf.summary.histogram("relu2", layer_2)
    out_layer = tf.add(tf.matmul(layer_2, weights['w3']), biases['b3'])
    return out_layer


def main(_):
    tf.set_random_seed(5)
    logs_path = FLAGS.logs_path or tempfile.mkdtemp()
    data = digits.load()
    x = tf.placeholder(tf.float32, [None, num_input], name='InputData')
    y = tf.placeholder(tf.float32, [None, num_classes], name='LabelData')
    weights = {
        'w1': tf.Variable(tf.random_normal([num_input, n_hidden_1]), name='W1'),
        'w2': tf.Variable(tf.random_normal([n_hidden_1, n_hidden_2]), name='W2'),
        'w3': tf.Variable(tf.random_normal([n_hidden_2, num_classes]), name='W3')
    }
    biases = {
        'b1': tf.Variable(tf.random_normal([n_hidden_1]), name='b1'),
        'b2': tf.Variable(tf.random_normal([n_hidden_2]), name='b2'),
        'b3': tf.Variable(tf.random_normal([num_classes]), name='b3')
    }
    with tf.name_scope('Model'):
        pred = multilayer_perceptron(x, weights, biases)
    with tf.name_scope('Loss'):
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(logits=pred, labels=y))
    with tf.name_scope('SGD'):
        optimizer = tf.train.GradientDescentOptimizer(0.01)
        grads = tf.gradients(loss, tf.trainable_variables())
        grads = list(zip(grads, tf.trainable_variables(), strict=False))
        apply_grads = optimizer.apply_gradients(grads_and_vars=grads)
    with tf.name_scope('Accuracy'):
        acc = tf.equal(tf.argmax(pred, 1), tf.argmax(y, 1))
        acc = tf.reduce_mean(tf.cast(acc, tf.float32))
    init = tf.global_variables_initializer()
    tf.summary.scalar("loss", loss)
    tf.summary.scalar("accuracy", acc)
    for var in tf.trainable_variables():
        tf.summary.histogram(var.name, var)
    for grad, var in grads:
        tf.summary.histogram(var.name + '/gradient', grad)
    merged_summary_op = tf.summary.merge_all()
    with tf.Session() as sess:
        sess.run(init)
        summary_writer = tf.summary.FileWriter(logs_path, graph=tf.get_default_graph())
        step = 0
        for _epoch in range(FLAGS.epochs):
            for batch_xs, batch_ys in digits.batches(data.train_x, data.train_y, 100):
                _, c, summary = sess.run([apply_grads, loss, merged_summary_op],
                                         feed_dict={x: batch_xs, y: digits.one_hot(batch_ys)})
                summary_writer.add_summary(summary, step)
                step += 1
        summary_writer.close()
        test_acc = acc.eval({x: data.test_x, y: digits.one_hot(data.test_y)})
    files = glob.glob(os.path.join(logs_path, "events.out.tfevents.*"))
    print("steps", step)
    print("summaries", len(merged_summary_op.op.inputs))
    print("event_files", len(files))
    print("logs_path", logs_path)
    print("accuracy", np.round(test_acc, 4))


if __name__ == "__main__":
    tf.app.run()
