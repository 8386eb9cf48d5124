"""MetaGraphs and GraphDefs as files: Saver's `.meta`, import_meta_graph, import_graph_def,
write_graph and freezing (TF1's names and semantics; `actorflow.meta_graph`, `graph_io`)."""

import logging
import os

import numpy as np
import pytest

import actorflow as tf

RNG = np.random.RandomState(0)
X = RNG.randn(32, 4).astype(np.float32)
Y = (X.sum(1) > 0).astype(np.int64)


def _softmax_model():
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    y = tf.placeholder(tf.int64, [None], name="y")
    w = tf.Variable(tf.zeros([4, 2]), name="w")
    b = tf.Variable(tf.zeros([2]), name="b")
    logits = tf.add(tf.matmul(x, w), b, name="logits")
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits),
                          name="loss")
    gs = tf.train.get_or_create_global_step()
    train = tf.train.AdamOptimizer(0.1).minimize(loss, global_step=gs)
    tf.add_to_collection("train_op", train)
    tf.add_to_collection("logits", logits)
    return x, y, logits, loss, train


def _trained_checkpoint(tmp_path):
    with tf.Graph().as_default():
        x, y, logits, loss, train = _softmax_model()
        saver = tf.train.Saver()
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            for _ in range(10):
                s.run(train, {x: X, y: Y})
            ref = s.run(logits, {x: X})
            path = saver.save(s, str(tmp_path / "model.ckpt"), global_step=10)
    return path, ref


def test_saver_writes_meta_and_import_meta_graph_restores_and_keeps_training(tmp_path):
    path, ref = _trained_checkpoint(tmp_path)
    assert path.endswith("model.ckpt-10") and os.path.exists(path + ".meta")
    with tf.Graph().as_default() as g:
        saver = tf.train.import_meta_graph(path + ".meta")
        assert isinstance(saver, tf.train.Saver)
        assert sorted(v.name for v in tf.trainable_variables()) == ["b:0", "w:0"]
        assert len(tf.global_variables()) == 9  # w, b, global_step, 2 Adam slots each, beta1/2
        with tf.Session() as s:
            saver.restore(s, tf.train.latest_checkpoint(str(tmp_path)))
            np.testing.assert_array_equal(s.run("logits:0", {"x:0": X}), ref)
            train = tf.get_collection("train_op")[0]
            loss = g.get_tensor_by_name("loss:0")
            before = s.run(loss, {"x:0": X, "y:0": Y})
            for _ in range(10):
                s.run(train, {"x:0": X, "y:0": Y})
            assert s.run(loss, {"x:0": X, "y:0": Y}) < before
            assert s.run(tf.train.get_global_step()) == 20
            # new ops on the imported graph, with gradients through imported ops
            w = next(v for v in tf.trainable_variables() if v.name == "w:0")
            grad = tf.gradients(tf.reduce_sum(tf.get_collection("logits")[0]), [w])[0]
            np.testing.assert_allclose(s.run(grad, {"x:0": X}),
                                       np.repeat(X.sum(0)[:, None], 2, axis=1), rtol=1e-5)
            again = saver.save(s, str(tmp_path / "again"))
    with tf.Graph().as_default():
        saver = tf.train.import_meta_graph(again + ".meta")
        with tf.Session() as s:
            saver.restore(s, again)
            assert s.run(tf.train.get_global_step()) == 20


def test_control_flow_data_queues_partitions_round_trip_under_an_import_scope(tmp_path):
    seq = RNG.randn(3, 5, 2).astype(np.float32)

    def build():
        x = tf.placeholder(tf.float32, [None, 5, 2], name="x")
        out, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicLSTMCell(3), x, dtype=tf.float32)
        _, acc = tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a + tf.reduce_sum(out)),
                               [tf.constant(0), tf.constant(0.0)])
        c = tf.cond(acc > 0, lambda: acc * 2.0, lambda: acc - 1.0)
        with tf.variable_scope("p", partitioner=tf.fixed_size_partitioner(2)):
            emb = tf.get_variable("emb", [10, 3])
        bn = tf.layers.batch_normalization(tf.layers.dense(tf.reshape(out, [-1, 3]), 2),
                                           training=True)
        ds = tf.data.Dataset.from_tensor_slices(np.arange(6, dtype=np.float32)).map(
            lambda v: v * 2).batch(4)
        it = ds.make_initializable_iterator()
        q = tf.FIFOQueue(4, [tf.float32])
        for item in (c, tf.reduce_sum(tf.nn.embedding_lookup(emb, [1, 7])), tf.reduce_sum(bn)):
            tf.add_to_collection("outs", item)
        tf.add_to_collection("it", it.initializer)
        tf.add_to_collection("next", it.get_next())
        tf.add_to_collection("enqueue", q.enqueue([tf.constant(1.5)]))
        tf.add_to_collection("dequeue", q.dequeue())
        tf.add_to_collection("numbers", 3)
        tf.add_to_collection("words", "hello")

    with tf.Graph().as_default():
        build()
        saver = tf.train.Saver()
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            ref = s.run(tf.get_collection("outs"), {"x:0": seq})
            path = saver.save(s, str(tmp_path / "m"))
    with tf.Graph().as_default():
        saver = tf.train.import_meta_graph(path + ".meta", import_scope="imp")
        assert tf.get_collection("numbers") == [3] and tf.get_collection("words") == ["hello"]
        emb = [v for v in tf.global_variables() if "emb" in v.name]
        assert len(emb) == 2 and emb[0]._save_slice_info.full_name == "imp/p/emb"
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            assert len(s.run(tf.get_collection("outs"), {"imp/x:0": seq})) == 3
            s.run(tf.get_collection("it")[0])
            np.testing.assert_array_equal(s.run(tf.get_collection("next")[0]), [0, 2, 4, 6])
            s.run(tf.get_collection("enqueue")[0])
            assert s.run(tf.get_collection("dequeue")[0]) == 1.5
    with tf.Graph().as_default():  # the checkpoint's values after a restore
        saver = tf.train.import_meta_graph(path + ".meta")
        with tf.Session() as s:
            saver.restore(s, path)
            for got, want in zip(s.run(tf.get_collection("outs"), {"x:0": seq}), ref,
                                 strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6)


def test_meta_file_is_tensorflows_metagraphdef_on_the_wire(tmp_path):
    meta_graph_pb2 = pytest.importorskip("tensorboard.compat.proto.meta_graph_pb2")
    variable_pb2 = pytest.importorskip("tensorboard.compat.proto.variable_pb2")
    path, _ = _trained_checkpoint(tmp_path)
    with open(path + ".meta", "rb") as f:
        mg = meta_graph_pb2.MetaGraphDef.FromString(f.read())
    assert mg.saver_def.restore_op_name == "save/restore_all" and mg.saver_def.version == 2
    names = {n.name: n for n in mg.graph_def.node}
    assert names["logits"].op == "Add"
    assert names["logits"].input == ["MatMul", "b/Read/ReadVariableOp"]
    assert list(mg.collection_def["logits"].node_list.value) == ["logits:0"]
    vdef = variable_pb2.VariableDef.FromString(
        mg.collection_def["trainable_variables"].bytes_list.value[0])
    assert (vdef.variable_name, vdef.initializer_name, vdef.is_resource) == ("w:0", "w/Assign",
                                                                            True)


def test_freeze_serialize_and_import_graph_def(tmp_path):
    path, ref = _trained_checkpoint(tmp_path)
    with tf.Graph().as_default():
        saver = tf.train.import_meta_graph(path + ".meta")
        with tf.Session() as s:
            saver.restore(s, path)
            frozen = tf.graph_util.convert_variables_to_constants(s, s.graph_def, ["logits"])
    assert sorted(n.op for n in frozen.node) == ["Add", "Const", "Const", "MatMul",
                                                 "Placeholder"]
    pb = tmp_path / "frozen.pb"
    pb.write_bytes(frozen.SerializeToString())
    gd = tf.GraphDef()
    gd.ParseFromString(pb.read_bytes())
    with tf.Graph().as_default():
        logits, = tf.import_graph_def(gd, return_elements=["logits:0"], name="frozen")
        assert logits.name == "frozen/logits:0"
        with tf.Session() as s:
            np.testing.assert_array_equal(s.run(logits, {"frozen/x:0": X}), ref)
    with tf.Graph().as_default():  # input_map: feed the frozen model from a new tensor
        z = tf.constant(X[:2])
        logits, = tf.import_graph_def(gd, input_map={"x:0": z}, return_elements=["logits:0"])
        with tf.Session() as s:
            np.testing.assert_array_equal(s.run(logits), ref[:2])


def test_write_graph_text_and_binary(tmp_path):
    with tf.Graph().as_default() as g:
        _softmax_model()
        text = tf.train.write_graph(g, str(tmp_path), "graph.pbtxt")
        binary = tf.train.write_graph(g.as_graph_def(), str(tmp_path), "graph.pb", as_text=False)
    assert b'name: "logits"' in open(text, "rb").read()
    for p in (text, binary):
        with tf.Graph().as_default():
            from actorflow.graph_io import parse_graph_def
            tf.import_graph_def(parse_graph_def(open(p, "rb").read()), name="")
            assert tf.get_default_graph().get_tensor_by_name("logits:0").shape.as_list() == [
                None, 2]


def test_bad_inputs_name_what_is_wrong(tmp_path):
    gd = tf.GraphDef()
    gd.node.add(name="conv1", op="Conv2D")  # what TensorFlow writes: no actorflow attributes
    with tf.Graph().as_default(), pytest.raises(tf.errors.InvalidArgumentError,
                                                match="'conv1'.*not written by actorflow"):
        tf.import_graph_def(gd)
    with pytest.raises(OSError, match="does not exist"):
        tf.train.import_meta_graph(str(tmp_path / "missing.meta"))
    with tf.Graph().as_default() as g:
        _softmax_model()
        gd = g.as_graph_def()
        with pytest.raises(tf.errors.InvalidArgumentError, match="duplicate op names"):
            tf.import_graph_def(gd, name="")


def test_a_graph_holding_python_objects_still_saves_its_checkpoint(tmp_path, caplog):
    with tf.Graph().as_default():
        v = tf.Variable(2.0, name="v")
        ds = tf.data.Dataset.from_generator(lambda: iter([1.0, 2.0]), tf.float32)
        y = v * ds.make_one_shot_iterator().get_next()
        saver = tf.train.Saver()
        with tf.Session() as s, caplog.at_level(logging.WARNING):
            s.run(v.initializer)
            assert s.run(y) == 2.0
            path = saver.save(s, str(tmp_path / "gen"))
    assert os.path.exists(path + ".index") and not os.path.exists(path + ".meta")
    assert "not writing" in caplog.text and "IteratorV2" in caplog.text


def test_large_zeros_are_a_fill_so_graphs_and_meta_files_stay_small(tmp_path):
    with tf.Graph().as_default():
        v = tf.Variable(tf.zeros([1000, 1000]), name="big")  # 4 MB of zeros: a Fill, as in TF
        assert v.initial_value.op.type == "Fill" and v.shape.as_list() == [1000, 1000]
        assert tf.ones([3]).op.type == "Const"  # small ones stay constants
        saver = tf.train.Saver()
        with tf.Session() as s:
            s.run(v.initializer)
            path = saver.save(s, str(tmp_path / "big"))
    assert os.path.getsize(path + ".meta") < 20_000
