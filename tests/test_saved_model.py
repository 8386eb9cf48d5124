"""SavedModels (TF1's tf.saved_model builder, loader, simple_save, signatures): written, loaded
into a fresh graph by signature, and TensorFlow's messages on the wire."""

import os

import numpy as np
import pytest

import actorflow as tf

X = np.random.RandomState(1).randn(6, 3).astype(np.float32)


def _model():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
    y = tf.nn.softmax(tf.matmul(x, w), name="y")
    return x, w, y


def _reference():
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    z = X @ w
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_simple_save_then_load_by_signature(tmp_path):
    export = str(tmp_path / "model")
    with tf.Graph().as_default():
        x, w, y = _model()
        with tf.Session() as s:
            s.run(w.initializer)
            s.run(w.assign(w * 2.0))  # a trained value, not the initial one
            want = s.run(y, {x: X})
            tf.saved_model.simple_save(s, export, inputs={"x": x}, outputs={"y": y})
    assert sorted(os.listdir(export)) == ["saved_model.pb", "variables"]
    assert sorted(os.listdir(os.path.join(export, "variables"))) == [
        "variables.data-00000-of-00001", "variables.index"]
    assert tf.saved_model.contains_saved_model(export)
    with tf.Graph().as_default() as g, tf.Session() as s:
        meta = tf.saved_model.loader.load(s, [tf.saved_model.tag_constants.SERVING], export)
        sig = meta.signature_def[tf.saved_model.signature_constants
                                 .DEFAULT_SERVING_SIGNATURE_DEF_KEY]
        assert sig.method_name == "tensorflow/serving/predict"
        assert (sig.inputs["x"].name, sig.outputs["y"].name) == ("x:0", "y:0")
        assert [d.size for d in sig.inputs["x"].tensor_shape.dim] == [-1, 3]
        got = s.run(sig.outputs["y"].name, {g.get_tensor_by_name(sig.inputs["x"].name): X})
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert not np.allclose(got, _reference())  # the saved value (2w), not the initial w
        x2 = tf.saved_model.utils.get_tensor_from_tensor_info(sig.inputs["x"])
        assert x2 is g.get_tensor_by_name("x:0")


def test_builder_tags_main_op_text_and_errors(tmp_path):
    export = str(tmp_path / "b")
    with tf.Graph().as_default():
        x, w, y = _model()
        tf.Variable(0, name="loaded", collections=[tf.GraphKeys.LOCAL_VARIABLES])
        main_op = tf.group(tf.local_variables_initializer(), name="main_op")
        with tf.Session() as s:
            s.run(w.initializer)
            b = tf.saved_model.builder.SavedModelBuilder(export)
            sig = tf.saved_model.signature_def_utils.build_signature_def(
                inputs={"in": tf.saved_model.utils.build_tensor_info(x)},
                outputs={"out": tf.saved_model.utils.build_tensor_info(y)},
                method_name=tf.saved_model.signature_constants.PREDICT_METHOD_NAME)
            assert tf.saved_model.signature_def_utils.is_valid_signature(sig)
            b.add_meta_graph_and_variables(s, ["train"], signature_def_map={"predict": sig},
                                           main_op=main_op)
            with pytest.raises(AssertionError, match="add_meta_graph"):
                b.add_meta_graph_and_variables(s, ["again"])
            b.add_meta_graph(["serve", "gpu"], signature_def_map={"predict": sig})
            path = b.save(as_text=True)
    assert path.endswith(b"saved_model.pbtxt")
    with pytest.raises(AssertionError, match="isn't empty"):
        tf.saved_model.builder.SavedModelBuilder(export)
    with tf.Graph().as_default(), tf.Session() as s:
        with pytest.raises(RuntimeError, match=r"tags \['serve'\].*\[\['train'\], \['serve', "
                                               r"'gpu'\]\]"):
            tf.saved_model.loader.load(s, ["serve"], export)
    with tf.Graph().as_default() as g, tf.Session() as s:
        meta = tf.saved_model.loader.load(s, ["gpu", "serve"], export)
        assert list(meta.meta_info_def.tags) == ["serve", "gpu"]
        np.testing.assert_allclose(s.run("y:0", {"x:0": X}), _reference(), rtol=1e-6)
    with tf.Graph().as_default() as g, tf.Session() as s:
        tf.saved_model.loader.load(s, ["train"], export)  # its main op ran: "loaded" is set
        assert s.run(g.get_tensor_by_name("loaded/Read/ReadVariableOp:0")) == 0
    with pytest.raises(OSError, match="SavedModel file does not exist"):
        tf.saved_model.loader.load(tf.Session(graph=tf.Graph()), ["serve"], str(tmp_path))


def test_signature_is_tensorflows_message_on_the_wire(tmp_path):
    meta_graph_pb2 = pytest.importorskip("tensorboard.compat.proto.meta_graph_pb2")
    from actorflow.meta_graph import protos
    export = str(tmp_path / "m")
    with tf.Graph().as_default():
        x, w, y = _model()
        with tf.Session() as s:
            s.run(w.initializer)
            tf.saved_model.simple_save(s, export, inputs={"x": x}, outputs={"y": y})
    with open(os.path.join(export, "saved_model.pb"), "rb") as f:
        saved = protos()["SavedModel"].FromString(f.read())
    assert saved.saved_model_schema_version == 1 and len(saved.meta_graphs) == 1
    mg = meta_graph_pb2.MetaGraphDef.FromString(saved.meta_graphs[0].SerializeToString())
    assert list(mg.meta_info_def.tags) == ["serve"]
    sig = mg.signature_def["serving_default"]
    assert sig.inputs["x"].name == "x:0" and sig.inputs["x"].dtype == 1  # DT_FLOAT
    assert sig.outputs["y"].name == "y:0"
    assert {n.name for n in mg.graph_def.node} >= {"x", "w", "y", "MatMul"}
