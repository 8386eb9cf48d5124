"""The "restore a model without its code" shape: train, save (the .meta comes with it); a second
run rebuilds the graph with tf.train.import_meta_graph, finds tensors by name and through a
collection, restores the latest checkpoint and evaluates; then freezes the graph into a .pb
(graph_util.convert_variables_to_constants) and serves it with tf.import_graph_def."""
import os

import numpy as np

import actorflow as tf
from models import digits

flags = tf.app.flags
flags.DEFINE_string("model_dir", "/tmp/meta_graph_inference", "checkpoints and the frozen .pb")
flags.DEFINE_enum("phase", "train", ["train", "restore", "serve"], "what this run does")
flags.DEFINE_integer("steps", 150, "training steps")
FLAGS = flags.FLAGS


def train(data):
    x = tf.placeholder(tf.float32, [None, 64], name="images")
    y_ = tf.placeholder(tf.int64, [None], name="labels")
    hidden = tf.layers.dense(x, 32, activation=tf.nn.relu, name="hidden")
    logits = tf.layers.dense(hidden, 10, name="logits")
    probs = tf.nn.softmax(logits, name="probabilities")
    loss = tf.losses.sparse_softmax_cross_entropy(labels=y_, logits=logits)
    global_step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss, global_step=global_step)
    tf.add_to_collection("train_op", train_op)
    tf.add_to_collection("probs", probs)
    saver = tf.train.Saver(max_to_keep=2)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(FLAGS.steps):
            idx = np.random.RandomState(step).choice(len(data.train_x), 64)
            sess.run(train_op, {x: data.train_x[idx], y_: data.train_y[idx]})
            if (step + 1) % 50 == 0:
                saver.save(sess, os.path.join(FLAGS.model_dir, "model.ckpt"),
                           global_step=global_step)
        acc = np.mean(np.argmax(sess.run(probs, {x: data.test_x}), 1) == data.test_y)
    print("trained_accuracy", round(float(acc), 4))


def restore(data):
    ckpt = tf.train.latest_checkpoint(FLAGS.model_dir)
    saver = tf.train.import_meta_graph(ckpt + ".meta")
    graph = tf.get_default_graph()
    images = graph.get_tensor_by_name("images:0")
    probs = tf.get_collection("probs")[0]
    with tf.Session() as sess:
        saver.restore(sess, ckpt)
        acc = np.mean(np.argmax(sess.run(probs, {images: data.test_x}), 1) == data.test_y)
        print("restored_step", sess.run(tf.train.get_global_step()))
        frozen = tf.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), ["probabilities"])
    with tf.gfile.GFile(os.path.join(FLAGS.model_dir, "frozen.pb"), "wb") as f:
        f.write(frozen.SerializeToString())
    print("restored_accuracy", round(float(acc), 4))
    print("frozen_ops", len(frozen.node))


def serve(data):
    with tf.gfile.GFile(os.path.join(FLAGS.model_dir, "frozen.pb"), "rb") as f:
        graph_def = tf.GraphDef()
        graph_def.ParseFromString(f.read())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="prefix")
    images = graph.get_tensor_by_name("prefix/images:0")
    probs = graph.get_tensor_by_name("prefix/probabilities:0")
    with tf.Session(graph=graph) as sess:
        acc = np.mean(np.argmax(sess.run(probs, {images: data.test_x}), 1) == data.test_y)
    print("served_accuracy", round(float(acc), 4))


def main(_):
    data = digits.load()
    {"train": train, "restore": restore, "serve": serve}[FLAGS.phase](data)


if __name__ == "__main__":
    tf.app.run()
