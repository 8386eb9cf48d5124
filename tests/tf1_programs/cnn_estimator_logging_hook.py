"""The TF 1.x layers tutorial shape: a CNN model_fn with tf.layers (conv2d, max_pooling2d,
dense, dropout with training=mode == TRAIN), a softmax named for a LoggingTensorHook that
logs it by name, tf.losses.sparse_softmax_cross_entropy, tf.metrics.accuracy, and an
input_fn returning a tf.data.Dataset for evaluation."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("steps", 120, "training steps")
FLAGS = tf.app.flags.FLAGS


def cnn_model_fn(features, labels, mode):
    input_layer = tf.reshape(features["x"], [-1, 8, 8, 1])
    conv1 = tf.layers.conv2d(inputs=input_layer, filters=16, kernel_size=[3, 3],
                             padding="same", activation=tf.nn.relu)
    pool1 = tf.layers.max_pooling2d(inputs=conv1, pool_size=[2, 2], strides=2)
    pool1_flat = tf.reshape(pool1, [-1, 4 * 4 * 16])
    dense = tf.layers.dense(inputs=pool1_flat, units=64, activation=tf.nn.relu)
    dropout = tf.layers.dropout(inputs=dense, rate=0.4,
                                training=mode == tf.estimator.ModeKeys.TRAIN)
    logits = tf.layers.dense(inputs=dropout, units=10)
    predictions = {
        "classes": tf.argmax(input=logits, axis=1),
        "probabilities": tf.nn.softmax(logits, name="softmax_tensor")
    }
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode=mode, predictions=predictions)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    if mode == tf.estimator.ModeKeys.TRAIN:
        optimizer = tf.train.GradientDescentOptimizer(learning_rate=0.1)
        train_op = optimizer.minimize(loss=loss, global_step=tf.train.get_global_step())
        return tf.estimator.EstimatorSpec(mode=mode, loss=loss, train_op=train_op)
    eval_metric_ops = {
        "accuracy": tf.metrics.accuracy(labels=labels, predictions=predictions["classes"])}
    return tf.estimator.EstimatorSpec(mode=mode, loss=loss, eval_metric_ops=eval_metric_ops)


def main(unused_argv):
    data = digits.load()
    train_data, train_labels = data.train_x, data.train_y
    eval_data, eval_labels = data.test_x, data.test_y
    mnist_classifier = tf.estimator.Estimator(model_fn=cnn_model_fn)
    tensors_to_log = {"probabilities": "softmax_tensor"}
    logging_hook = tf.train.LoggingTensorHook(tensors=tensors_to_log, every_n_iter=50)
    train_input_fn = tf.estimator.inputs.numpy_input_fn(
        x={"x": train_data}, y=train_labels, batch_size=50, num_epochs=None, shuffle=True)
    mnist_classifier.train(input_fn=train_input_fn, steps=FLAGS.steps, hooks=[logging_hook])

    def eval_input_fn():
        ds = tf.data.Dataset.from_tensor_slices(({"x": eval_data}, eval_labels))
        return ds.batch(100)
    eval_results = mnist_classifier.evaluate(input_fn=eval_input_fn)
    pred_fn = tf.estimator.inputs.numpy_input_fn(x={"x": eval_data[:5]}, shuffle=False)
    preds = list(mnist_classifier.predict(pred_fn))
    print("accuracy", np.round(eval_results["accuracy"], 4))
    print("global_step", eval_results["global_step"])
    print("keys", sorted(preds[0]))
    print("prob_sums", [round(float(p["probabilities"].sum()), 4) for p in preds])


if __name__ == "__main__":
    tf.app.run()
