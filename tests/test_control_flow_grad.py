"""Gradients through cond, while_loop (RNN, nested, conds inside), map_fn, foldl and scan,
against central finite differences in float64 on fresh random inputs."""

import numpy as np
import pytest

import actorflow as af
from tests.opcheck import check_gradient


def _rng() -> np.random.Generator:
    return np.random.default_rng()


@pytest.fixture(autouse=True, params=["fused", "frames"])
def loop_mode(request, monkeypatch):
    """Every test twice: simple loops fused (the default), and every loop run iteration by
    iteration through the executor's frames."""
    if request.param == "frames":
        monkeypatch.setattr("scheduler.executable.plan_fused", lambda *a, **k: None)
    return request.param


# ---- cond ----------------------------------------------------------------------------------
@pytest.mark.parametrize("take", [True, False])
def test_cond_gradient_on_each_branch(take: bool) -> None:
    rng = _rng()

    def build(x, y):
        return af.cond(af.constant(take), lambda: af.sin(x) * y, lambda: x * x - af.exp(y))

    check_gradient(build, [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))])


@pytest.mark.parametrize("take", [True, False])
def test_cond_gradient_with_a_fed_predicate_and_an_unused_input(take: bool) -> None:
    rng = _rng()
    x_v, y_v = rng.standard_normal(3), rng.standard_normal(3)
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float64, (3,))
        y = af.placeholder(af.float64, (3,))
        p = af.placeholder(af.bool, ())
        r = af.cond(p, lambda: x * y, lambda: af.tanh(x))   # y unused on the false side
        dx, dy = af.gradients(af.reduce_sum(r), [x, dy_ := y])
        assert dy_ is y
        with af.Session(graph=g) as s:
            gx, gy = s.run([dx, dy], {x: x_v, y: y_v, p: take})
    if take:
        np.testing.assert_allclose(gx, y_v)
        np.testing.assert_allclose(gy, x_v)
    else:
        np.testing.assert_allclose(gx, 1 - np.tanh(x_v) ** 2)
        np.testing.assert_array_equal(gy, np.zeros(3))


# ---- while_loop ----------------------------------------------------------------------------
def test_rnn_gradient_with_20_steps() -> None:
    rng = _rng()
    T, B, H = 20, 2, 3

    def build(xs, w, h0):
        def body(t, h):
            return t + 1, af.tanh(af.matmul(h, w) + af.gather(xs, t))
        return af.while_loop(lambda t, h: t < T, body, (0, h0))[1]

    check_gradient(build, [rng.standard_normal((T, B, H)) * 0.5,
                           rng.standard_normal((H, H)) / np.sqrt(H),
                           rng.standard_normal((B, H))], rtol=1e-4, atol=1e-6)


def test_rnn_gradient_against_numpy_backprop_through_time() -> None:
    from benchmarks import floors
    T, B, H = 20, 4, 8
    x_v, w_v, h0_v = floors.make_rnn_data(T, B, H, int(_rng().integers(1 << 30)))
    x_v, w_v, h0_v = (a.astype(np.float64) for a in (x_v, w_v, h0_v))
    with af.Graph().as_default() as g:
        xs = af.constant(x_v)
        w = af.Variable(w_v, name="W")
        body = lambda t, h: (t + 1, af.tanh(af.matmul(h, w) + af.gather(xs, t)))  # noqa: E731
        _, h_t = af.while_loop(lambda t, h: t < T, body, (0, af.constant(h0_v)))
        loss = af.reduce_sum(h_t)
        (dw,) = af.gradients(loss, [w])
        with af.Session(graph=g) as s:
            s.run(w.initializer)
            loss_v, dw_v = s.run([loss, dw])
    ref_loss, ref_dw = floors.rnn_forward_backward(x_v.astype(np.float32),
                                                   w_v.astype(np.float32),
                                                   h0_v.astype(np.float32))
    assert loss_v == pytest.approx(ref_loss, rel=1e-4)
    np.testing.assert_allclose(dw_v, ref_dw, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("parallel", [1, 10])
def test_gradient_of_overlapping_iterations(parallel: int) -> None:
    rng = _rng()

    def build(x, a):
        def body(i, p, s):
            return i + 1, p * a, s + af.sin(p * x)
        return af.while_loop(lambda i, p, s: i < 6, body, (0, x, af.zeros_like(x)),
                             parallel_iterations=parallel)[2]

    check_gradient(build, [rng.standard_normal(3), rng.uniform(0.5, 1.0, 3)])


def test_nested_loop_gradient() -> None:
    rng = _rng()

    def build(x, w):
        def outer(i, acc):
            def inner(j, z):
                return j + 1, af.tanh(z * w + x)
            _, z = af.while_loop(lambda j, z: j < i, inner, (0, acc))
            return i + 1, z + 0.5 * acc
        return af.while_loop(lambda i, a: i < 4, outer, (0, x))[1]

    check_gradient(build, [rng.standard_normal(3), rng.standard_normal(3)])


def test_cond_inside_a_loop_gradient() -> None:
    rng = _rng()

    def build(x, y):
        def body(i, z):
            z = af.cond(af.equal(af.floormod(i, 2), 0), lambda: z * y + x,
                        lambda: af.sin(z) * x)
            return i + 1, z
        return af.while_loop(lambda i, z: i < 5, body, (0, x))[1]

    check_gradient(build, [rng.standard_normal(3), rng.standard_normal(3)])


def test_loop_inside_a_cond_gradient() -> None:
    rng = _rng()
    for take in (True, False):
        def build(x, take=take):
            loop = lambda: af.while_loop(lambda i, z: i < 3,  # noqa: E731
                                         lambda i, z: (i + 1, af.sin(z) * x), (0, x))[1]
            return af.cond(af.constant(take), loop, lambda: x * x * x)

        check_gradient(build, [rng.standard_normal(3)])


def test_loop_gradient_with_unused_outputs_and_int_variables() -> None:
    rng = _rng()

    def build(x, y):
        _, a, b = af.while_loop(lambda i, a, b: i < 3, lambda i, a, b: (i + 1, a * b, b + a),
                                (0, x, y))
        return a  # b's output is unused, but b feeds a

    check_gradient(build, [rng.standard_normal(2), rng.standard_normal(2)])


def test_forward_only_runs_skip_the_saved_values() -> None:
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float64, (2,))
        _, y = af.while_loop(lambda i, z: i < 4, lambda i, z: (i + 1, af.sin(z)), (0, x))
        (dx,) = af.gradients(af.reduce_sum(y), [x])
        with af.Session(graph=g) as s:
            md = af.RunMetadata()
            s.run(y, {x: [0.1, 0.2]}, run_metadata=md)
            assert not any("acc_push" in n or "f_count" in n for n in
                           md.step_stats.node_names())
            md = af.RunMetadata()
            s.run(dx, {x: [0.1, 0.2]}, run_metadata=md)
            assert any("acc_push" in n for n in md.step_stats.node_names())


# ---- map_fn, foldl, scan -------------------------------------------------------------------
def test_foldl_gradient() -> None:
    rng = _rng()
    check_gradient(lambda e, w: af.foldl(lambda a, x: a * x + w, e),
                   [rng.standard_normal((5, 3)), rng.standard_normal(3)])
    check_gradient(lambda e: af.foldl(lambda a, x: a + af.sin(x), e,
                                      initializer=af.zeros((3,), af.float64)),
                   [rng.standard_normal((4, 3))])


def test_scan_gradient() -> None:
    rng = _rng()
    check_gradient(lambda e, w: af.scan(lambda a, x: af.tanh(a * w + x), e),
                   [rng.standard_normal((5, 3)), rng.standard_normal(3)])
    check_gradient(lambda e, h: af.scan(lambda a, x: a * 0.5 + x * a, e, initializer=h,
                                        reverse=True),
                   [rng.standard_normal((4, 2)), rng.standard_normal(2)])


def test_map_fn_gradient() -> None:
    rng = _rng()
    check_gradient(lambda e, w: af.map_fn(lambda x: af.sin(x) * w, e),
                   [rng.standard_normal((4, 3)), rng.standard_normal(3)])


def test_gradient_of_a_tensor_array_written_in_a_loop() -> None:
    rng = _rng()

    def build(x):
        ta = af.TensorArray(af.float64, size=4)
        _, ta, _ = af.while_loop(lambda i, ta, z: i < 4,
                                 lambda i, ta, z: (i + 1, ta.write(i, z * z), z + x),
                                 (0, ta, x))
        return ta.stack()

    check_gradient(build, [rng.standard_normal(3)])


def test_two_gradients_of_one_loop_in_one_step() -> None:
    rng = _rng()
    x_v = rng.standard_normal(3)
    with af.Graph().as_default() as g:
        x = af.placeholder(af.float64, (3,))
        _, y = af.while_loop(lambda i, z: i < 3, lambda i, z: (i + 1, af.sin(z) * x), (0, x))
        (g1,) = af.gradients(af.reduce_sum(y), [x])
        (g2,) = af.gradients(af.reduce_sum(y * y), [x])
        with af.Session(graph=g) as s:
            a1, a2 = s.run([g1, g2], {x: x_v})
            b1, b2 = s.run(g1, {x: x_v}), s.run(g2, {x: x_v})
    np.testing.assert_allclose(a1, b1)
    np.testing.assert_allclose(a2, b2)
    assert not np.allclose(a1, a2)


def test_gradient_with_respect_to_a_constant_used_in_a_loop_and_in_conds():
    """A constant floats into loops and branches (no Enter, no Switch); differentiating with
    respect to it must still count its uses in every iteration and give zeros, not a dead
    value, from a branch that was not taken."""
    x0 = np.float32([[0.3, -0.2]])
    with af.Graph().as_default():
        x = af.constant(x0)
        _, y = af.while_loop(lambda i, h: i < 2, lambda i, h: (i + 1, h * 1.5 + x),
                             [af.constant(0), x])
        c1 = af.cond(af.constant(True), lambda: af.square(x) * 2.0, lambda: x + 1.0)
        c2 = af.cond(af.reduce_sum(x) > 100.0, lambda: af.sin(x), lambda: af.cos(x) * x)
        g_loop, g_cond = af.gradients(af.reduce_sum(y), [x])[0], af.gradients(
            af.reduce_sum(c1) + af.reduce_sum(c2), [x])[0]
        with af.Session() as s:
            y_, gl, gc = s.run([y, g_loop, g_cond])
    np.testing.assert_allclose(y_, x0 * 1.5 ** 2 + x0 * 1.5 + x0, rtol=1e-6)
    np.testing.assert_allclose(gl, np.full_like(x0, 2.25 + 1.5 + 1.0), rtol=1e-6)
    np.testing.assert_allclose(gc, 4 * x0 + np.cos(x0) - x0 * np.sin(x0), rtol=1e-5)
