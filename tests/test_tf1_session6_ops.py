"""Ops added for the TF1 example programs of session 6, each against a reference: einsum's
gradient over any number of operands and sparse_tensor_dense_matmul fed through a
sparse_placeholder (hypothesis properties, NumPy references, finite differences), the
peephole LSTMCell (NumPy reference of TF's equations), image files (decode/encode round
trips, resize of an image of unknown size), feedable Dataset iterators, op.node_def."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actorflow as af
from devices.errors import InvalidArgumentError, NotFoundError


@pytest.fixture(autouse=True)
def _fresh_default_graph() -> None:
    """Each test builds in a fresh default graph (variables and device functions of one test
    must not reach the next)."""
    af.reset_default_graph()


BUDGET = settings(max_examples=6, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _numeric_grad(f: Any, xs: list[np.ndarray], k: int, eps: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(xs[k])
    for idx in np.ndindex(xs[k].shape):
        d = np.zeros_like(xs[k])
        d[idx] = eps
        hi, lo = list(xs), list(xs)
        hi[k], lo[k] = xs[k] + d, xs[k] - d
        out[idx] = (f(hi) - f(lo)) / (2 * eps)
    return out


@st.composite
def einsum_cases(draw: Any) -> tuple[str, list[tuple[int, ...]]]:
    """An equation of 2-4 operands over axes a-e (sizes 1-3), each operand's axes distinct,
    the output any subset of the axes used (so some are summed, some summed in one operand)."""
    letters = string.ascii_lowercase[:5]
    sizes = {c: draw(st.integers(1, 3)) for c in letters}
    n = draw(st.integers(2, 4))
    specs = [draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3, unique=True))
             for _ in range(n)]
    used = sorted(set().union(*specs))
    out = draw(st.lists(st.sampled_from(used), unique=True, max_size=len(used))) if used else []
    eq = ",".join("".join(s) for s in specs) + "->" + "".join(out)
    return eq, [tuple(sizes[c] for c in s) for s in specs]


@BUDGET
@given(case=einsum_cases(), seed=st.integers(0, 2**16))
def test_einsum_value_and_gradient_any_operands(case: tuple, seed: int) -> None:
    eq, shapes = case
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    w = rng.standard_normal(np.einsum(eq, *xs).shape)
    g = af.Graph()
    with g.as_default():
        ts = [af.placeholder(af.float64, [None] * len(s)) for s in shapes]  # unknown dims
        y = af.einsum(eq, *ts)
        grads = af.gradients(af.reduce_sum(y * w), ts)
        with af.Session() as s:
            got, gv = s.run([y, grads], dict(zip(ts, xs, strict=True)))
    np.testing.assert_allclose(got, np.einsum(eq, *xs), rtol=1e-10, atol=1e-12)
    for k in range(len(xs)):
        num = _numeric_grad(lambda a: float((np.einsum(eq, *a) * w).sum()), xs, k)
        np.testing.assert_allclose(gv[k], num, rtol=1e-5, atol=1e-6, err_msg=f"{eq} operand {k}")


def test_einsum_diagonal_gradient_says_what_is_missing() -> None:
    x = af.constant(np.eye(2))
    with pytest.raises(InvalidArgumentError, match="repeated axis"):
        af.gradients(af.einsum("ii,i->i", x, af.constant([1.0, 2.0], af.float64)), [x])


@BUDGET
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), k=st.integers(1, 3),
       density=st.floats(0.0, 1.0), adjoint_a=st.booleans(), seed=st.integers(0, 2**16))
def test_sparse_placeholder_dense_matmul(rows: int, cols: int, k: int, density: float,
                                         adjoint_a: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)
    idx = np.argwhere(dense != 0).astype(np.int64)
    b = rng.standard_normal((rows if adjoint_a else cols, k))
    g = af.Graph()
    with g.as_default():
        sp = af.sparse_placeholder(af.float64, shape=[None, cols])
        bt = af.constant(b)
        y = af.sparse_tensor_dense_matmul(sp, bt, adjoint_a=adjoint_a)
        gb, gv = af.gradients(af.reduce_sum(y), [bt, sp.values])
        gb = af.convert_to_tensor(gb)  # gathered rows of b: IndexedSlices (TF's is dense)
        with af.Session() as s:
            val = af.SparseTensorValue(idx, dense[dense != 0], [rows, cols])
            got, gbv, gvv, back = s.run([y, gb, gv, sp], {sp: val})
    a = dense.T if adjoint_a else dense
    np.testing.assert_allclose(got, a @ b, atol=1e-12)
    np.testing.assert_allclose(gbv, a.T @ np.ones((a.shape[0], k)), atol=1e-12)
    cols_of = idx[:, 0 if adjoint_a else 1]
    np.testing.assert_allclose(gvv, b.sum(axis=1)[cols_of], atol=1e-12)
    assert isinstance(back, af.SparseTensorValue)
    np.testing.assert_array_equal(back.indices, idx)
    assert list(back.dense_shape) == [rows, cols]


def test_sparse_placeholder_shapes_and_bad_feed() -> None:
    sp = af.sparse_placeholder(af.float32, shape=[3, 5])
    assert sp.shape.as_list() == [3, 5] and sp.dtype is af.float32
    y = af.sparse_tensor_to_dense(sp)
    with af.Session() as s:  # a fully known shape need not be fed
        out = s.run(y, {sp.indices: [[1, 2]], sp.values: [7.0]})
        assert out[1, 2] == 7.0 and out.sum() == 7.0 and out.shape == (3, 5)
        with pytest.raises(InvalidArgumentError, match="SparseTensorValue"):
            s.run(y, {sp: np.zeros((3, 5))})


def _peephole_ref(x: np.ndarray, v: dict, forget_bias: float, cell_clip: float,
                  proj_clip: float) -> np.ndarray:
    """TF 1.x LSTMCell(use_peepholes=True, cell_clip, num_proj, proj_clip), step by step."""
    def sig(z: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-z))
    n = v["w_f_diag"].shape[0]
    c = np.zeros((x.shape[1], n))
    h = np.zeros((x.shape[1], v["projection/kernel"].shape[1]))
    outs = []
    for t in range(x.shape[0]):
        z = np.concatenate([x[t], h], 1) @ v["kernel"] + v["bias"]
        i, j, f, o = np.split(z, 4, axis=1)
        c = (sig(f + forget_bias + v["w_f_diag"] * c) * c
             + sig(i + v["w_i_diag"] * c) * np.tanh(j))
        c = np.clip(c, -cell_clip, cell_clip)
        m = sig(o + v["w_o_diag"] * c) * np.tanh(c)
        h = np.clip(m @ v["projection/kernel"], -proj_clip, proj_clip)
        outs.append(h)
    return np.stack(outs)


def test_lstm_cell_peepholes_projection_clips() -> None:
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    cell = af.nn.rnn_cell.LSTMCell(5, use_peepholes=True, cell_clip=0.8, num_proj=3,
                                   proj_clip=0.3,
                                   initializer=af.random_uniform_initializer(-0.6, 0.6, seed=1))
    outs, state = af.nn.static_rnn(cell, af.unstack(af.constant(x), axis=0), dtype=af.float32)
    names = sorted(v.name for v in af.global_variables())
    assert names == ["rnn/lstm_cell/bias:0", "rnn/lstm_cell/kernel:0",
                     "rnn/lstm_cell/projection/kernel:0", "rnn/lstm_cell/w_f_diag:0",
                     "rnn/lstm_cell/w_i_diag:0", "rnn/lstm_cell/w_o_diag:0"]  # TF 1.x's names
    loss = af.reduce_sum(af.stack(outs))
    grads = af.gradients(loss, af.trainable_variables())
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        v = {var.name[len("rnn/lstm_cell/"):-2]: s.run(var) for var in af.global_variables()}
        got, gv = s.run([af.stack(outs), grads])
    ref = _peephole_ref(x.astype(np.float64), v, 1.0, 0.8, 0.3)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert np.abs(got).max() <= 0.3 + 1e-7 and np.abs(got).max() > 0.05
    assert all(np.isfinite(g).all() and np.abs(g).sum() > 0 for g in gv)


def test_image_files_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    png, jpg = str(tmp_path / "a.png"), str(tmp_path / "a.jpg")
    with af.Session() as s:
        s.run([af.write_file(png, af.image.encode_png(img)),
               af.write_file(jpg, af.image.encode_jpeg(np.full((8, 8, 3), 90, np.uint8)))])
        data = af.read_file(png)
        dec = af.image.decode_png(data)
        assert dec.shape.as_list() == [None, None, None]
        out, gray, any_ = s.run([dec, af.image.decode_png(data, channels=1),
                                 af.image.decode_image(af.read_file(jpg), channels=3)])
        np.testing.assert_array_equal(out, img)  # PNG is lossless
        assert gray.shape == (5, 7, 1) and gray.dtype == np.uint8
        assert any_.shape == (8, 8, 3) and np.abs(any_.astype(int) - 90).max() <= 2
        with pytest.raises(InvalidArgumentError, match="expected a PNG image, got JPEG"):
            s.run(af.image.decode_png(af.read_file(jpg)))
        with pytest.raises(NotFoundError, match="no such file"):
            s.run(af.read_file(str(tmp_path / "missing.png")))
    with pytest.raises(InvalidArgumentError, match="scalar string"):
        af.read_file(["a", "b"])


def test_resize_images_of_unknown_size_matches_static() -> None:
    x = np.random.default_rng(2).random((2, 5, 7, 3)).astype(np.float32)
    p = af.placeholder(af.float32, [None, None, None, 3])
    pairs = [(af.image.resize_images(af.constant(x), [8, 4], method=m, align_corners=ac),
              af.image.resize_images(p, [8, 4], method=m, align_corners=ac))
             for m in (0, 1) for ac in (False, True)]
    with af.Session() as s:
        for a, b in pairs:
            va, vb = s.run([a, b], {p: x})
            assert b.shape.as_list() == [None, 8, 4, 3]
            np.testing.assert_allclose(vb, va, atol=1e-6)


def test_feedable_iterator_from_placeholder_dataset() -> None:
    xs = af.placeholder(af.int64, [None])
    ds = af.data.Dataset.from_tensor_slices(xs).map(lambda v: v * 10).batch(2)
    it_a = ds.make_initializable_iterator()
    it_b = af.data.Dataset.from_tensor_slices(np.array([7, 8], np.int64)).map(
        lambda v: v * 10).batch(2).make_one_shot_iterator()
    handle = af.placeholder(af.string, [])
    nxt = af.data.Iterator.from_string_handle(handle, ds.output_types,
                                              ds.output_shapes).get_next()
    with af.Session() as s:
        ha, hb = s.run([it_a.string_handle(), it_b.string_handle()])
        s.run(it_a.initializer, {xs: [1, 2, 3]})
        assert s.run(nxt, {handle: ha}).tolist() == [10, 20]
        assert s.run(nxt, {handle: hb}).tolist() == [70, 80]
        assert s.run(nxt, {handle: ha}).tolist() == [30]
        with pytest.raises(af.errors.OutOfRangeError):
            s.run(nxt, {handle: ha})
        s.run(it_a.initializer, {xs: [5]})  # re-initialised with another feed
        assert s.run(nxt, {handle: ha}).tolist() == [50]
        with pytest.raises(NotFoundError, match="no iterator 'nope'"):
            s.run(nxt, {handle: b"nope"})
    with pytest.raises(InvalidArgumentError, match="one-shot iterator cannot"):
        ds.make_one_shot_iterator()


def test_node_def_is_a_property_device_functions_see_it() -> None:
    seen = []

    def place(op: Any) -> str:
        nd = op if isinstance(op, af.NodeDef) else op.node_def
        seen.append(nd.op)
        return "/cpu:0" if nd.op in ("VariableV2", "VarHandleOp") else "/gpu:0"

    with af.device(place):
        v = af.Variable(1.0, name="v")
        y = af.add(v, 1.0, name="y")
    assert "Add" in seen and v.op.node_def.op == "VarHandleOp"  # resource variables
    assert y.op.node_def.name == "y" and "GPU:0" in y.op.node_def.device.upper()
    assert "CPU:0" in v.op.node_def.device.upper()  # not the device before the function ran


def test_as_string_formats_like_tf() -> None:
    with af.Session() as s:
        ints, floats, prec, bools, padded = s.run([
            af.as_string(af.constant([[0], [12]], af.int64)),
            af.as_string(af.constant([1.5, -2.0])),
            af.as_string(af.constant([3.14159]), precision=2),
            af.as_string(af.constant([True, False])),
            af.as_string(af.constant([7]), width=3, fill="0")])
    assert ints.tolist() == [[b"0"], [b"12"]]
    assert floats.tolist() == [b"1.500000", b"-2.000000"]
    assert prec.tolist() == [b"3.14"] and bools.tolist() == [b"true", b"false"]
    assert padded.tolist() == [b"007"]
    with pytest.raises(InvalidArgumentError, match="already a string"):
        af.as_string(af.constant(["a"]))


def test_feature_column_input_layer_sorts_by_name() -> None:
    cols = [af.feature_column.numeric_column("b"),
            af.feature_column.numeric_column("a", shape=[2], normalizer_fn=lambda v: v * 10),
            af.feature_column.numeric_column("c", dtype=af.int32)]
    feats = {"a": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": np.array([5.0, 6.0]),
             "c": np.array([7, 8], np.int32)}
    net = af.feature_column.input_layer(feats, cols)
    with af.Session() as s:
        out = s.run(net)
    assert out.dtype == np.float32
    assert out.tolist() == [[10.0, 20.0, 5.0, 7.0], [30.0, 40.0, 6.0, 8.0]]  # a, b, c
    with pytest.raises(InvalidArgumentError, match="no feature 'b'"):
        af.feature_column.input_layer({"a": feats["a"]}, cols[:2])


def test_estimator_misuse_errors(tmp_path) -> None:
    def model_fn(features, labels, mode):
        return af.estimator.EstimatorSpec(mode, predictions=features)

    est = af.estimator.Estimator(model_fn, model_dir=str(tmp_path))
    fn = af.estimator.inputs.numpy_input_fn({"x": np.zeros((4, 2))}, np.zeros(4),
                                            shuffle=False)
    with pytest.raises(InvalidArgumentError, match="needs loss and train_op"):
        est.train(fn, steps=1)
    with pytest.raises(InvalidArgumentError, match="train\\(\\) first"):
        est.evaluate(fn)
    with pytest.raises(InvalidArgumentError, match="shuffle=True or shuffle=False"):
        af.estimator.inputs.numpy_input_fn({"x": np.zeros((4, 2))})


def test_string_input_producer_whole_file_reader(tmp_path) -> None:
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_bytes(f"file {i}".encode())
    names = af.train.match_filenames_once(str(tmp_path / "*.txt"))
    queue = af.train.string_input_producer(names, num_epochs=2, shuffle=False)
    key, value = af.WholeFileReader().read(queue)
    got = []
    with af.Session() as s:
        s.run([af.global_variables_initializer(), af.local_variables_initializer()])
        coord = af.train.Coordinator()
        threads = af.train.start_queue_runners(sess=s, coord=coord)
        try:
            while True:
                got.append(s.run([key, value]))
        except af.errors.OutOfRangeError:
            pass
        coord.request_stop()
        coord.join(threads)
    assert [v for _, v in got] == [b"file 0", b"file 1", b"file 2"] * 2
    assert got[0][0].decode().endswith("f0.txt")
    with pytest.raises(InvalidArgumentError, match="no file matches"):
        af.train.match_filenames_once(str(tmp_path / "*.png"))


def test_io_namespace(tmp_path) -> None:
    assert af.io.read_file is af.read_file and af.io.decode_png is af.image.decode_png
    d = str(tmp_path / "a" / "b")
    af.io.gfile.makedirs(d)
    with af.io.gfile.GFile(d + "/f.txt", "w") as f:
        f.write("hi")
    assert af.io.gfile.exists(d) and af.io.gfile.listdir(d) == ["f.txt"]
    with af.Session() as s:
        assert s.run(af.io.read_file(d + "/f.txt")) == b"hi"


def test_resize_nearest_align_corners_rounds_half_up_as_tf() -> None:
    # 7 -> 5 rows with align_corners: sources 0, 1.5, 3, 4.5, 6; TF's roundf gives 0 2 3 5 6
    rows = np.arange(7, dtype=np.float32).reshape(1, 7, 1, 1)
    p = af.placeholder(af.float32, [1, None, 1, 1])
    with af.Session() as s:
        for x, feed in ((af.constant(rows), None), (p, {p: rows})):
            out = s.run(af.image.resize_images(x, [5, 1], method=1, align_corners=True), feed)
            assert out.reshape(-1).tolist() == [0, 2, 3, 5, 6]
