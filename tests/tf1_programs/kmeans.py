"""K-means clustering with tf.contrib.factorization.KMeans (cosine distance, mini-batch), the
clusters then labelled by majority vote and used as a classifier (embedding_lookup)."""
import numpy as np

import actorflow as tf
from actorflow.contrib.factorization import KMeans
from models import digits

tf.app.flags.DEFINE_integer("num_steps", 30, "training steps")
FLAGS = tf.app.flags.FLAGS
k, num_classes, num_features = 25, 10, 64


def main(_):
    data = digits.load()
    full_data_x = data.train_x
    X = tf.placeholder(tf.float32, shape=[None, num_features])
    Y = tf.placeholder(tf.float32, shape=[None, num_classes])
    kmeans = KMeans(inputs=X, num_clusters=k, distance_metric='cosine',
                    use_mini_batch=True)
    training_graph = kmeans.training_graph()
    if len(training_graph) > 6:  # Tensorflow 1.4+
        (all_scores, cluster_idx, scores, cluster_centers_initialized,
         cluster_centers_var, init_op, train_op) = training_graph
    else:
        (all_scores, cluster_idx, scores, cluster_centers_initialized,
         init_op, train_op) = training_graph
    cluster_idx = cluster_idx[0]  # fix for cluster_idx being a tuple
    avg_distance = tf.reduce_mean(scores)
    init_vars = tf.global_variables_initializer()
    sess = tf.Session()
    sess.run(init_vars, feed_dict={X: full_data_x})
    sess.run(init_op, feed_dict={X: full_data_x})
    first = None
    for i in range(1, FLAGS.num_steps + 1):
        _, d, idx = sess.run([train_op, avg_distance, cluster_idx],
                             feed_dict={X: full_data_x})
        if i == 1:
            first = d
    counts = np.zeros(shape=(k, num_classes))
    train_labels = digits.one_hot(data.train_y)
    for i in range(len(idx)):
        counts[idx[i]] += train_labels[i]
    labels_map = [np.argmax(c) for c in counts]
    labels_map = tf.convert_to_tensor(labels_map)
    cluster_label = tf.nn.embedding_lookup(labels_map, cluster_idx)
    correct_prediction = tf.equal(cluster_label, tf.cast(tf.argmax(Y, 1), tf.int32))
    accuracy_op = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
    test_x, test_y = data.test_x, digits.one_hot(data.test_y)
    acc = sess.run(accuracy_op, feed_dict={X: test_x, Y: test_y})
    init_again = sess.run(cluster_centers_initialized)
    sess.run(init_op, feed_dict={X: full_data_x})   # a second init keeps the centres
    d_after = sess.run(avg_distance, feed_dict={X: full_data_x})
    sess.close()
    print("first_distance", np.round(first, 4))
    print("last_distance", np.round(d, 4), np.round(d_after, 4))
    print("initialized", bool(init_again))
    print("accuracy", np.round(acc, 4))


if __name__ == "__main__":
    tf.app.run()
