"""A neural network with the Estimator API, the way the TF 1.x examples write it: a model_fn
building tf.layers, returning an EstimatorSpec per mode (predictions; loss, train_op and an
accuracy metric), numpy_input_fn for training and evaluation, then predict."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("num_steps", 300, "training steps")
tf.app.flags.DEFINE_string("model_dir", "", "checkpoints (a temporary folder if empty)")
FLAGS = tf.app.flags.FLAGS
learning_rate, batch_size = 0.05, 64
n_hidden_1, n_hidden_2, num_classes = 48, 32, 10


def neural_net(x_dict):
    x = x_dict['images']
    layer_1 = tf.layers.dense(x, n_hidden_1, activation=tf.nn.relu)
    layer_2 = tf.layers.dense(layer_1, n_hidden_2, activation=tf.nn.relu)
    out_layer = tf.layers.dense(layer_2, num_classes)
    return out_layer


def model_fn(features, labels, mode):
    logits = neural_net(features)
    pred_classes = tf.argmax(logits, axis=1)
    pred_probas = tf.nn.softmax(logits)
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions=pred_classes)
    loss_op = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=logits, labels=tf.cast(labels, dtype=tf.int32)))
    optimizer = tf.train.GradientDescentOptimizer(learning_rate=learning_rate)
    train_op = optimizer.minimize(loss_op, global_step=tf.train.get_global_step())
    acc_op = tf.metrics.accuracy(labels=labels, predictions=pred_classes)
    estim_specs = tf.estimator.EstimatorSpec(
        mode=mode,
        predictions=pred_classes,
        loss=loss_op,
        train_op=train_op,
        eval_metric_ops={'accuracy': acc_op})
    del pred_probas
    return estim_specs


def main(_):
    data = digits.load()
    model = tf.estimator.Estimator(model_fn, model_dir=FLAGS.model_dir or None,
                                   config=tf.estimator.RunConfig(tf_random_seed=5))
    input_fn = tf.estimator.inputs.numpy_input_fn(
        x={'images': data.train_x}, y=data.train_y.astype(np.int64),
        batch_size=batch_size, num_epochs=None, shuffle=True)
    model.train(input_fn, steps=FLAGS.num_steps)
    input_fn = tf.estimator.inputs.numpy_input_fn(
        x={'images': data.test_x}, y=data.test_y.astype(np.int64),
        batch_size=batch_size, shuffle=False)
    e = model.evaluate(input_fn)
    print("Testing Accuracy:", e['accuracy'])
    model.train(tf.estimator.inputs.numpy_input_fn(
        x={'images': data.train_x}, y=data.train_y.astype(np.int64),
        batch_size=batch_size, num_epochs=1, shuffle=False))   # one more epoch: 23 steps
    e2 = model.evaluate(input_fn)
    n_images = 8
    test_images = data.test_x[:n_images]
    input_fn = tf.estimator.inputs.numpy_input_fn(
        x={'images': test_images}, shuffle=False)
    preds = list(model.predict(input_fn))
    print("accuracy", np.round(e['accuracy'], 4))
    print("global_step", e['global_step'], e2['global_step'])
    print("loss", np.round(e['loss'], 4))
    print("predictions", [int(p) for p in preds])
    print("labels", [int(v) for v in data.test_y[:n_images]])


if __name__ == "__main__":
    tf.app.run()
