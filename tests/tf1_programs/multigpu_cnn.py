"""Multi-GPU-style data parallelism written for GPUs and run on a CPU-only machine: a tower
per '/gpu:%d' (a device function that keeps variables on the CPU, looking at op.node_def.op),
variables shared by reuse, the towers' gradients averaged (expand_dims, concat, reduce_mean)
and applied once; allow_soft_placement lets the GPU requests fall back to the CPU."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("num_gpus", 2, "towers")
tf.app.flags.DEFINE_integer("steps", 60, "training steps")
FLAGS = tf.app.flags.FLAGS
batch_size, num_classes = 32, 10
PS_OPS = ['Variable', 'VariableV2', 'AutoReloadVariable', 'MutableHashTable',
          'MutableHashTableOfTensors', 'MutableDenseHashTable']


def conv_net(x, n_classes, dropout, reuse, is_training):
    with tf.variable_scope('ConvNet', reuse=reuse):
        x = tf.reshape(x, shape=[-1, 8, 8, 1])
        x = tf.layers.conv2d(x, 16, 3, activation=tf.nn.relu, padding='same')
        x = tf.layers.max_pooling2d(x, 2, 2)
        x = tf.contrib.layers.flatten(x)
        x = tf.layers.dense(x, 64)
        x = tf.layers.dropout(x, rate=dropout, training=is_training)
        out = tf.layers.dense(x, n_classes)
        out = tf.nn.softmax(out) if not is_training else out
    return out


def average_gradients(tower_grads):
    average_grads = []
    for grad_and_vars in zip(*tower_grads, strict=False):
        grads = []
        for g, _ in grad_and_vars:
            expanded_g = tf.expand_dims(g, 0)
            grads.append(expanded_g)
        grad = tf.concat(grads, 0)
        grad = tf.reduce_mean(grad, 0)
        v = grad_and_vars[0][1]
        grad_and_var = (grad, v)
        average_grads.append(grad_and_var)
    return average_grads


def assign_to_device(device, ps_device='/cpu:0'):
    def _assign(op):
        node_def = op if isinstance(op, tf.NodeDef) else op.node_def
        if node_def.op in PS_OPS:
            return "/" + ps_device
        else:
            return device
    return _assign


def main(_):
    tf.set_random_seed(4)
    data = digits.load()
    with tf.device('/cpu:0'):
        tower_grads = []
        reuse_vars = False
        X = tf.placeholder(tf.float32, [None, 64])
        Y = tf.placeholder(tf.float32, [None, num_classes])
        for i in range(FLAGS.num_gpus):
            with tf.device(assign_to_device(f'/gpu:{i}', ps_device='/cpu:0')):
                _x = X[i * batch_size: (i + 1) * batch_size]
                _y = Y[i * batch_size: (i + 1) * batch_size]
                logits_train = conv_net(_x, num_classes, 0.25, reuse=reuse_vars,
                                        is_training=True)
                logits_test = conv_net(_x, num_classes, 0.25, reuse=True, is_training=False)
                loss_op = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
                    logits=logits_train, labels=_y))
                optimizer = tf.train.AdamOptimizer(learning_rate=0.003)
                grads = optimizer.compute_gradients(loss_op)
                if i == 0:
                    correct_pred = tf.equal(tf.argmax(logits_test, 1), tf.argmax(_y, 1))
                    accuracy = tf.reduce_mean(tf.cast(correct_pred, tf.float32))
                reuse_vars = True
                tower_grads.append(grads)
        tower_grads = average_gradients(tower_grads)
        train_op = optimizer.apply_gradients(tower_grads)
        init = tf.global_variables_initializer()
        config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
        rng = np.random.RandomState(0)
        with tf.Session(config=config) as sess:
            sess.run(init)
            for _step in range(1, FLAGS.steps + 1):
                i = rng.randint(0, len(data.train_y), batch_size * FLAGS.num_gpus)
                sess.run(train_op, feed_dict={X: data.train_x[i],
                                              Y: digits.one_hot(data.train_y[i])})
            test_x = data.test_x[:batch_size * 10]
            test_y = digits.one_hot(data.test_y[:batch_size * 10])
            accs = [sess.run(accuracy, feed_dict={X: test_x[k:k + batch_size],
                                                  Y: test_y[k:k + batch_size]})
                    for k in range(0, len(test_x), batch_size)]
    print("variables", len(tf.trainable_variables()))
    print("grads_averaged", len(tower_grads))
    print("accuracy", np.round(np.mean(accs), 4))


if __name__ == "__main__":
    tf.app.run()
