"""The premade-estimator tutorial shape (iris): a dict of feature columns, numeric_column per
key, tf.estimator.DNNClassifier(hidden_units=[10, 10], n_classes=3), input functions built
from tf.data (shuffle, repeat, batch) over a features dict, evaluate, then predict with
class_ids and probabilities. The data: three digit classes, 8 pixel-row sums as features."""
import numpy as np

import actorflow as tf
from models import digits

tf.app.flags.DEFINE_integer("train_steps", 300, "training steps")
tf.app.flags.DEFINE_integer("batch_size", 32, "batch size")
FLAGS = tf.app.flags.FLAGS
CSV_COLUMN_NAMES = [f"Row{i}" for i in range(8)]
SPECIES = ["zero", "one", "two"]


def load_data():
    data = digits.load()

    def frame(x, y):
        keep = y < 3
        rows = x[keep].reshape(-1, 8, 8).sum(axis=2)
        return {name: rows[:, i] for i, name in enumerate(CSV_COLUMN_NAMES)}, y[keep]
    return frame(data.train_x, data.train_y), frame(data.test_x, data.test_y)


def train_input_fn(features, labels, batch_size):
    dataset = tf.data.Dataset.from_tensor_slices((dict(features), labels))
    dataset = dataset.shuffle(1000).repeat().batch(batch_size)
    return dataset


def eval_input_fn(features, labels, batch_size):
    features = dict(features)
    inputs = features if labels is None else (features, labels)
    dataset = tf.data.Dataset.from_tensor_slices(inputs)
    return dataset.batch(batch_size)


def main(argv):
    (train_x, train_y), (test_x, test_y) = load_data()
    my_feature_columns = []
    for key in train_x.keys():
        my_feature_columns.append(tf.feature_column.numeric_column(key=key))
    classifier = tf.estimator.DNNClassifier(
        feature_columns=my_feature_columns, hidden_units=[10, 10], n_classes=3,
        config=tf.estimator.RunConfig(tf_random_seed=3))
    classifier.train(input_fn=lambda: train_input_fn(train_x, train_y, FLAGS.batch_size),
                     steps=FLAGS.train_steps)
    eval_result = classifier.evaluate(
        input_fn=lambda: eval_input_fn(test_x, test_y, FLAGS.batch_size))
    print('\nTest set accuracy: {accuracy:0.3f}\n'.format(**eval_result))
    predict_x = {k: v[:6] for k, v in test_x.items()}
    predictions = classifier.predict(
        input_fn=lambda: eval_input_fn(predict_x, labels=None, batch_size=FLAGS.batch_size))
    got = []
    for pred_dict, expec in zip(predictions, test_y[:6], strict=True):
        class_id = pred_dict['class_ids'][0]
        probability = pred_dict['probabilities'][class_id]
        got.append((SPECIES[class_id], SPECIES[expec], round(float(probability), 3)))
    print("accuracy", np.round(eval_result["accuracy"], 4))
    print("metrics", sorted(eval_result))
    print("loss_ratio", np.round(eval_result["loss"] / eval_result["average_loss"], 1))
    print("correct", sum(a == b for a, b, _ in got), len(got))
    print("classes", pred_dict["classes"].tolist(), pred_dict["class_ids"].dtype)


if __name__ == "__main__":
    tf.app.run(main)
