"""Math ops: forward against NumPy and gradients against finite differences, on fresh random
inputs (the seed is printed on failure), plus broadcasting, dtypes, operators and errors."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from devices.kernels.registry import KernelContext, lookup
from tests.opcheck import check_forward, check_gradient, run_op

SEED = int(np.random.SeedSequence().entropy % 2**32)
rng = np.random.default_rng(SEED)


@pytest.fixture(autouse=True)
def _print_seed():
    print(f"random inputs from np.random.default_rng({SEED})")  # shown when a test fails


def rand(*shape: int, lo: float = -2.0, hi: float = 2.0, dtype=np.float64) -> np.ndarray:
    return rng.uniform(lo, hi, shape).astype(dtype)


def away_from_zero(*shape: int) -> np.ndarray:
    x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    return x


BCAST = [((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()), ((4,), (2, 3, 4)), ((2, 1, 4), (3, 1)),
         ((2, 3), (2, 3))]


# ---- binary element-wise ----------------------------------------------------------------
BINARY = {
    "add": (af.add, np.add),
    "subtract": (af.subtract, np.subtract),
    "multiply": (af.multiply, np.multiply),
    "divide": (af.divide, np.true_divide),
    "truediv": (af.truediv, np.true_divide),
    "maximum": (af.maximum, np.maximum),
    "minimum": (af.minimum, np.minimum),
    "pow": (af.pow, np.power),
    "floordiv": (af.floordiv, np.floor_divide),
    "mod": (af.mod, np.mod),
    "squared_difference": (af.squared_difference, lambda a, b: (a - b) ** 2),
}


def _binary_inputs(op: str, sa: tuple, sb: tuple) -> list[np.ndarray]:
    if op == "pow":
        return [rand(*sa, lo=0.5, hi=2.0), rand(*sb)]
    if op in ("divide", "truediv", "floordiv", "mod"):
        return [rand(*sa), away_from_zero(*sb)]
    return [rand(*sa), rand(*sb)]


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("sa,sb", BCAST)
def test_binary_forward(op: str, sa: tuple, sb: tuple) -> None:
    fn, ref = BINARY[op]
    check_forward(fn, ref, _binary_inputs(op, sa, sb))


@pytest.mark.parametrize("op", sorted(set(BINARY) - {"floordiv"}))
@pytest.mark.parametrize("sa,sb", [((3, 1), (1, 4)), ((), (2, 3)), ((2, 1, 3), (3,))])
def test_binary_gradient(op: str, sa: tuple, sb: tuple) -> None:
    check_gradient(BINARY[op][0], _binary_inputs(op, sa, sb))


def test_maximum_minimum_ties_go_to_x() -> None:
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 0.0, 5.0])
    with af.Graph().as_default():
        a, b = af.constant(x), af.placeholder(af.float64, (3,))
        ga = af.gradients(af.maximum(b, a), [b])[0]
        gi = af.gradients(af.minimum(b, a), [b])[0]
        with af.Session() as s:
            np.testing.assert_array_equal(s.run(ga, {b: y}), [1.0, 0.0, 1.0])
            np.testing.assert_array_equal(s.run(gi, {b: y}), [1.0, 1.0, 0.0])


@pytest.mark.parametrize("dt", [np.int32, np.int64, np.int8, np.uint8])
def test_integer_arithmetic(dt) -> None:
    a = rng.integers(-20, 20, (3, 4)).astype(dt) if dt != np.uint8 else \
        rng.integers(0, 20, (3, 4)).astype(dt)
    b = rng.integers(1, 6, (1, 4)).astype(dt)
    for fn, ref in (BINARY["add"], BINARY["subtract"], BINARY["multiply"], BINARY["maximum"],
                    BINARY["minimum"], BINARY["floordiv"], BINARY["mod"]):
        got = run_op(fn, [a, b])
        assert got.dtype == dt
        np.testing.assert_array_equal(got, ref(a, b))
    got = run_op(lambda x, y: af.pow(x, y), [a, b])
    np.testing.assert_array_equal(got, np.power(a, b))


def test_integer_floordiv_mod_match_python() -> None:
    a = np.array([7, -7, 7, -7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    np.testing.assert_array_equal(run_op(lambda x, y: x // y, [a, b]), [3, -4, -4, 3])
    np.testing.assert_array_equal(run_op(lambda x, y: x % y, [a, b]), [1, 1, -1, -1])


def test_integer_division_by_zero_is_an_error() -> None:
    a = np.array([1, 2], np.int32)
    b = np.array([1, 0], np.int32)
    with pytest.raises(af.InvalidArgumentError, match="integer division by zero"):
        run_op(af.floordiv, [a, b])
    with pytest.raises(af.InvalidArgumentError, match="integer division by zero"):
        run_op(af.mod, [a, b])


def test_truediv_of_integers_gives_floats() -> None:
    a = np.array([1, -7, 9], np.int32)
    b = np.array([2, 2, 4], np.int32)
    got = run_op(lambda x, y: x / y, [a, b])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, a / b)
    got8 = run_op(af.truediv, [a.astype(np.int8), b.astype(np.int8)])
    assert got8.dtype == np.float32
    np.testing.assert_allclose(run_op(af.div, [a, b]), a // b)


# ---- unary ------------------------------------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY = {  # name: (builder, reference, (lo, hi) of the inputs, differentiable)
    "negative": (af.negative, np.negative, (-2, 2), True),
    "square": (af.square, np.square, (-2, 2), True),
    "sqrt": (af.sqrt, np.sqrt, (0.2, 3), True),
    "rsqrt": (af.rsqrt, lambda x: 1 / np.sqrt(x), (0.2, 3), True),
    "reciprocal": (af.reciprocal, np.reciprocal, (0.5, 3), True),
    "exp": (af.exp, np.exp, (-2, 2), True),
    "expm1": (af.expm1, np.expm1, (-2, 2), True),
    "log": (af.log, np.log, (0.2, 3), True),
    "log1p": (af.log1p, np.log1p, (-0.5, 3), True),
    "tanh": (af.tanh, np.tanh, (-3, 3), True),
    "sigmoid": (af.sigmoid, _sigmoid, (-4, 4), True),
    "sin": (af.sin, np.sin, (-3, 3), True),
    "cos": (af.cos, np.cos, (-3, 3), True),
    "abs": (af.abs, np.abs, (-2, 2), True),
    "sign": (af.sign, np.sign, (-2, 2), True),
    "floor": (af.floor, np.floor, (-3, 3), False),
    "ceil": (af.ceil, np.ceil, (-3, 3), False),
    "round": (af.round, np.round, (-3, 3), False),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_unary_forward(op: str, dt) -> None:
    fn, ref, (lo, hi), _ = UNARY[op]
    x = rand(2, 3, lo=lo, hi=hi, dtype=dt)
    got = run_op(fn, [x])
    assert got.dtype == dt
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=1e-5 if dt == np.float32
                               else 1e-12, atol=1e-6)


@pytest.mark.parametrize("op", sorted(k for k, v in UNARY.items() if v[3]))
def test_unary_gradient(op: str) -> None:
    fn, _, (lo, hi), _ = UNARY[op]
    x = rand(2, 3, lo=lo, hi=hi)
    if op in ("abs", "sign"):
        x = away_from_zero(2, 3)
    check_gradient(fn, [x])


def test_not_differentiable_unary_ops_have_no_gradient() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.float64, (3,))
        assert af.gradients(af.reduce_sum(af.floor(x)), [x]) == [None]


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "sqrt", "rsqrt", "reciprocal"])
def test_second_order_gradients(op: str) -> None:
    fn, _, (lo, hi), _ = UNARY[op]

    def grad_of(x):  # grad_ys depends on x, so both inputs of the fused grad op matter
        return af.gradients(fn(x), [x], grad_ys=[x * x])[0]
    check_gradient(grad_of, [rand(2, 3, lo=lo, hi=hi)])


def test_sigmoid_is_stable_for_large_inputs() -> None:
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    for dt in (np.float64, np.float32, np.float16):
        got = run_op(af.sigmoid, [x.astype(dt)])
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, _sigmoid(x.clip(-700, 700)), atol=1e-3)
    assert run_op(af.sigmoid, [np.array([-50.0])])[0] > 0  # not flushed to 0 in float64


def test_integer_unary_ops() -> None:
    x = rng.integers(-9, 9, (5,)).astype(np.int32)
    for fn, ref in ((af.negative, np.negative), (af.abs, np.abs), (af.sign, np.sign),
                    (af.square, np.square)):
        got = run_op(fn, [x])
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, ref(x))


def test_is_finite_nan_inf() -> None:
    x = np.array([1.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(run_op(af.is_finite, [x]), np.isfinite(x))
    np.testing.assert_array_equal(run_op(af.is_nan, [x]), np.isnan(x))
    np.testing.assert_array_equal(run_op(af.is_inf, [x]), np.isinf(x))


# ---- operators and dtype rules ----------------------------------------------------------
OPERATORS = [
    (lambda x: x + 2, lambda x: x + 2), (lambda x: 2 + x, lambda x: 2 + x),
    (lambda x: x - 1, lambda x: x - 1), (lambda x: 1 - x, lambda x: 1 - x),
    (lambda x: x * 3, lambda x: x * 3), (lambda x: 3 * x, lambda x: 3 * x),
    (lambda x: x / 2, lambda x: x / 2), (lambda x: 2 / x, lambda x: 2 / x),
    (lambda x: x // 0.5, lambda x: x // 0.5), (lambda x: 3 // x, lambda x: 3 // x),
    (lambda x: x % 0.7, lambda x: x % 0.7), (lambda x: 3 % x, lambda x: 3 % x),
    (lambda x: x ** 2, lambda x: x ** 2), (lambda x: 2 ** x, lambda x: 2 ** x),
    (lambda x: -x, lambda x: -x), (lambda x: abs(x), lambda x: abs(x)),
    (lambda x: x < 0.5, lambda x: x < 0.5), (lambda x: x <= 0.5, lambda x: x <= 0.5),
    (lambda x: x > 0.5, lambda x: x > 0.5), (lambda x: x >= 0.5, lambda x: x >= 0.5),
    (lambda x: 0.5 < x, lambda x: 0.5 < x),
    (lambda x: np.float64(2.0) * x, lambda x: 2.0 * x),
    (lambda x: np.full((3, 1), 2.0) - x, lambda x: np.full((3, 1), 2.0) - x),
]


@pytest.mark.parametrize("k", range(len(OPERATORS)))
def test_operators(k: int) -> None:
    build, ref = OPERATORS[k]
    x = away_from_zero(3, 4)
    got = run_op(build, [x])
    want = ref(x)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_matmul_operator_and_reversed() -> None:
    a, b = rand(2, 3), rand(3, 4)
    check_forward(lambda x, y: x @ y, np.matmul, [a, b])
    check_forward(lambda y: a @ y, lambda y: a @ y, [b])


def test_python_scalars_take_the_tensor_dtype() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.float64, (2,))
        i = af.placeholder(af.int32, (2,))
        assert (x * 2).dtype is af.float64
        assert (2.5 - x).dtype is af.float64
        assert (i + 1).dtype is af.int32
        assert (i / 2).dtype is af.float64
        assert (x < 1).dtype is af.bool
        with pytest.raises(af.InvalidArgumentError, match="int32 without loss"):
            i * 2.5


def test_bool_operators() -> None:
    a = rng.random((3, 4)) > 0.5
    b = rng.random((1, 4)) > 0.5
    check_forward(lambda x, y: x & y, np.logical_and, [a, b])
    check_forward(lambda x, y: x | y, np.logical_or, [a, b])
    check_forward(lambda x, y: x ^ y, np.logical_xor, [a, b])
    check_forward(lambda x: ~x, np.logical_not, [a])
    check_forward(af.logical_xor, np.logical_xor, [a, b])
    check_forward(lambda x, y: af.logical_and(x, True), lambda x, y: x, [a, b])
    with af.Graph().as_default():
        f = af.placeholder(af.float32, (2,))
        with pytest.raises(af.InvalidArgumentError, match="'&' on tensors is logical_and"):
            _ = f & f
        with pytest.raises(af.InvalidArgumentError, match="'~' on tensors is logical_not"):
            _ = ~f


def test_equality_operator_stays_identity() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.float32, (2,))
        y = af.placeholder(af.float32, (2,))
        assert (x == x) is True and (x == y) is False and (x != y) is True
        assert {x: 1}[x] == 1


def test_comparisons() -> None:
    a = rng.integers(0, 3, (3, 1)).astype(np.float64)
    b = rng.integers(0, 3, (1, 4)).astype(np.float64)
    for fn, ref in ((af.equal, np.equal), (af.not_equal, np.not_equal), (af.less, np.less),
                    (af.less_equal, np.less_equal), (af.greater, np.greater),
                    (af.greater_equal, np.greater_equal)):
        got = run_op(fn, [a, b])
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, ref(a, b))
    ia = a.astype(np.int64)
    np.testing.assert_array_equal(run_op(lambda x: af.equal(x, 1), [ia]), ia == 1)


def test_build_time_errors_name_op_shapes_and_dtypes() -> None:
    with af.Graph().as_default():
        f32 = af.placeholder(af.float32, (3,), name="f")
        f64 = af.placeholder(af.float64, (3,), name="d")
        f4 = af.placeholder(af.float32, (4,), name="g")
        i = af.placeholder(af.int32, (3,), name="i")
        with pytest.raises(af.InvalidArgumentError,
                           match=r"op 'Add'.*'f:0' is float32 and 'd:0' is float64.*af.cast"):
            f32 + f64
        with pytest.raises(af.InvalidArgumentError,
                           match=r"op 'Mul'.*\(3,\) and \(4,\) cannot be broadcast"):
            f32 * f4
        with pytest.raises(af.InvalidArgumentError, match=r"op 'Sqrt'.*floating-point.*int32"):
            af.sqrt(i)
        with pytest.raises(af.InvalidArgumentError, match=r"op 'RealDiv'.*floating-point"):
            af.realdiv(i, i)
        with pytest.raises(af.InvalidArgumentError, match=r"op 'LogicalAnd'.*bool"):
            af.logical_and(f32, f32)
        with pytest.raises(af.InvalidArgumentError,
                           match=r"x and y of one dtype, got float32 .*float64"):
            af.where(f32 > 0, f32, f64)


# ---- add_n, scalar_mul, cast -------------------------------------------------------------
def test_add_n() -> None:
    xs = [rand(2, 3) for _ in range(4)]
    check_forward(lambda *a: af.add_n(list(a)), lambda *a: sum(a), xs)
    check_gradient(lambda a, b, c: af.add_n([a, b, a * c]), xs[:3])
    big = [rand(100, 100) for _ in range(3)]  # pooled output buffer
    check_forward(lambda *a: af.add_n(list(a)), lambda *a: sum(a), big)


def test_scalar_mul() -> None:
    x = rand(2, 3)
    check_forward(lambda t: af.scalar_mul(3, t), lambda t: 3 * t, [x])
    check_gradient(lambda t: af.scalar_mul(-2.5, t), [x])


def test_cast() -> None:
    x = rand(3, 4, lo=-5, hi=5)
    got = run_op(lambda t: af.cast(t, af.int32), [x])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.trunc(x).astype(np.int32))
    got = run_op(lambda t: af.cast(t, af.bool), [np.array([0.0, 0.5, -1.0])])
    np.testing.assert_array_equal(got, [False, True, True])
    got = run_op(lambda t: af.cast(t, "float32"), [rand(200, 200)])  # pooled path
    assert got.dtype == np.float32
    with af.Graph().as_default():
        x32 = af.placeholder(af.float32, (3, 4))
        w = rand(3, 4)
        g = af.gradients(af.reduce_sum(af.cast(x32, af.float64) * w), [x32])[0]
        assert g.dtype is af.float32
        with af.Session() as s:
            np.testing.assert_array_equal(s.run(g, {x32: x.astype(np.float32)}),
                                          w.astype(np.float32))
        t = af.placeholder(af.float64, (2,))
        assert af.cast(t, af.float64) is t
        i = af.placeholder(af.int32, (2,))
        assert af.gradients(af.reduce_sum(af.cast(i, af.float64)), [i]) == [None]
        assert run_op(lambda: af.cast(1.7, af.int32), []) == 1


# ---- where, clip ------------------------------------------------------------------------
def test_where_select_broadcasts() -> None:
    c = rng.random((3, 1)) > 0.5
    x, y = rand(1, 4), rand(3, 4)
    check_forward(af.where, np.where, [c, x, y])
    check_gradient(af.where, [c, x, y])
    check_forward(lambda cc, xx: af.where(cc, xx, 0.0), lambda cc, xx: np.where(cc, xx, 0.0),
                  [c, x])
    big_c = rng.random((200, 200)) > 0.5
    check_forward(af.where, np.where, [big_c, rand(200, 200), rand(200, 200)])  # pooled


def test_where_gradient_routes_to_chosen_side() -> None:
    with af.Graph().as_default():
        c = af.constant([True, False, True])
        x = af.placeholder(af.float64, (3,))
        y = af.placeholder(af.float64, (3,))
        gx, gy = af.gradients(af.reduce_sum(af.where(c, x, y)), [x, y])
        with af.Session() as s:
            vx, vy = s.run([gx, gy], {x: np.zeros(3), y: np.zeros(3)})
    np.testing.assert_array_equal(vx, [1, 0, 1])
    np.testing.assert_array_equal(vy, [0, 1, 0])


def test_where_with_one_argument_gives_indices() -> None:
    c = rng.random((3, 4)) > 0.5
    got = run_op(af.where, [c])
    assert got.dtype == np.int64 and got.shape == (int(c.sum()), 2)
    np.testing.assert_array_equal(got, np.argwhere(c))
    with af.Graph().as_default():
        with pytest.raises(af.InvalidArgumentError, match="both x and y"):
            af.where(af.constant([True]), 1.0)


def test_clip_by_value() -> None:
    t = rand(3, 4, lo=-3, hi=3)
    lo, hi = rand(3, 1, lo=-1.5, hi=-0.5), rand(1, 4, lo=0.5, hi=1.5)
    check_forward(af.clip_by_value, np.clip, [t, lo, hi])
    check_gradient(af.clip_by_value, [t, lo, hi])
    check_forward(lambda x: af.clip_by_value(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), [t])
    check_gradient(lambda x: af.clip_by_value(x, -1.0, 1.0), [t])
    ti = rng.integers(-9, 9, (5,)).astype(np.int32)
    np.testing.assert_array_equal(run_op(lambda x: af.clip_by_value(x, -2, 3), [ti]),
                                  np.clip(ti, -2, 3))


# ---- matmul -----------------------------------------------------------------------------
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_2d(ta: bool, tb: bool) -> None:
    a = rand(4, 3) if ta else rand(3, 4)
    b = rand(5, 4) if tb else rand(4, 5)

    def ref(x, y):
        return (x.T if ta else x) @ (y.T if tb else y)

    def build(x, y):
        return af.matmul(x, y, transpose_a=ta, transpose_b=tb)
    check_forward(build, ref, [a, b])
    check_gradient(build, [a, b])


@pytest.mark.parametrize("sa,sb,ta,tb", [
    ((2, 3, 4), (2, 4, 5), False, False),
    ((2, 4, 3), (2, 5, 4), True, True),
    ((2, 1, 3, 4), (3, 4, 2), False, False),
    ((3, 4), (2, 4, 2), False, False),
    ((2, 3, 4), (5, 3), True, True),
])
def test_matmul_batched(sa, sb, ta, tb) -> None:
    a, b = rand(*sa), rand(*sb)

    def ref(x, y):
        return np.matmul(np.swapaxes(x, -1, -2) if ta else x, np.swapaxes(y, -1, -2) if tb else y)

    def build(x, y):
        return af.matmul(x, y, transpose_a=ta, transpose_b=tb)
    check_forward(build, ref, [a, b], rtol=1e-10)
    check_gradient(build, [a, b])


def test_matmul_dtypes_and_large_outputs() -> None:
    a = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    b = rng.integers(-5, 5, (4, 2)).astype(np.int32)
    got = run_op(af.matmul, [a, b])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, a @ b)
    a32, b32 = rand(150, 60, dtype=np.float32), rand(60, 170, dtype=np.float32)  # pooled
    check_forward(af.matmul, np.matmul, [a32, b32], rtol=1e-4, atol=1e-4)
    check_forward(lambda x, y: af.matmul(x, y, transpose_a=True), lambda x, y: x.T @ y,
                  [a32.T.copy(), b32], rtol=1e-4, atol=1e-4)
    check_forward(af.matmul, np.matmul, [rand(3, 100, 60), rand(60, 90)])  # batched pooled
    ab = rand(3, 4).astype(af.bfloat16.np)
    got = run_op(af.matmul, [ab, ab.T.copy()])
    assert got.dtype == af.bfloat16.np


def test_matmul_build_errors() -> None:
    with af.Graph().as_default():
        a = af.placeholder(af.float32, (2, 3))
        with pytest.raises(af.InvalidArgumentError,
                           match=r"inner dimensions differ \(3 against 2\)"):
            af.matmul(a, a)
        with pytest.raises(af.InvalidArgumentError, match="rank 2 or more"):
            af.matmul(a, af.placeholder(af.float32, (3,)))
        with pytest.raises(af.InvalidArgumentError, match="float32.*float64"):
            af.matmul(a, af.placeholder(af.float64, (3, 2)))
        assert af.matmul(a, a, transpose_b=True).shape.as_list() == [2, 2]
        u = af.placeholder(af.float32, (None, 3))
        assert af.matmul(u, af.placeholder(af.float32, (3, 7))).shape.as_list() == [None, 7]


def test_big_matmuls_stay_inline_and_big_elementwise_kernels_go_to_threads() -> None:
    """BLAS spreads a product over every core itself: no worker-thread hop for MatMul. A
    large single-threaded NumPy kernel (tanh of 2M floats) is worth one."""
    assert lookup("MatMul", "CPU").cost is None

    def ctx(op, shape):
        return KernelContext("t", op, {}, [af.float32], [shape], [af.float32], [shape])
    tanh = lookup("Tanh", "CPU")
    assert tanh.cost(ctx("Tanh", (2_000_000,))) > 1000
    assert tanh.cost(ctx("Tanh", (10, 10))) < 10
    assert tanh.cost(ctx("Tanh", (None, 10))) == 0


# ---- reductions -------------------------------------------------------------------------
REDUCE = {
    "sum": (af.reduce_sum, np.sum), "mean": (af.reduce_mean, np.mean),
    "max": (af.reduce_max, np.max), "min": (af.reduce_min, np.min),
    "prod": (af.reduce_prod, np.prod),
    "logsumexp": (af.reduce_logsumexp,
                  lambda x, axis=None, keepdims=False: np.log(np.sum(np.exp(x), axis=axis,
                                                                    keepdims=keepdims))),
}
AXES = [None, 0, -1, 1, [0, 2], (-1, 0)]


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_forward(op: str, axis, keepdims: bool) -> None:
    fn, ref = REDUCE[op]
    x = rand(2, 3, 4)
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    check_forward(lambda t: fn(t, axis, keepdims=keepdims),
                  lambda t: ref(t, axis=np_axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("axis,keepdims", [(None, False), (1, False), ([0, 2], True), (-1, True)])
def test_reduce_gradient(op: str, axis, keepdims: bool) -> None:
    x = rand(2, 3, 4)
    check_gradient(lambda t: REDUCE[op][0](t, axis, keepdims=keepdims), [x])


def test_reduce_max_min_split_ties_equally() -> None:
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    with af.Graph().as_default():
        t = af.placeholder(af.float64, (2, 3))
        gmax = af.gradients(af.reduce_max(t, 1), [t])[0]
        gmin = af.gradients(af.reduce_min(t), [t])[0]
        with af.Session() as s:
            vmax, vmin = s.run([gmax, gmin], {t: x})
    np.testing.assert_allclose(vmax, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(vmin, [[1, 0, 0], [0, 0, 0]])


def test_reduce_prod_gradient_with_zeros() -> None:
    x = rand(3, 4)
    x[0, 1] = 0.0              # one zero in a row
    x[1, 0] = x[1, 2] = 0.0    # two zeros in a row
    check_gradient(lambda t: af.reduce_prod(t, 1), [x])
    check_gradient(lambda t: af.reduce_prod(t, [0, 1], keepdims=True), [x])
    with af.Graph().as_default():
        t = af.placeholder(af.float64, (3,))
        g = af.gradients(af.reduce_prod(t), [t])[0]
        with af.Session() as s:
            np.testing.assert_allclose(s.run(g, {t: [2.0, 0.0, 5.0]}), [0.0, 10.0, 0.0])


def test_reduce_with_axis_tensor() -> None:
    x = rand(2, 3, 4)
    with af.Graph().as_default():
        t = af.placeholder(af.float64, (2, 3, 4))
        ax = af.placeholder(af.int32, (None,))
        outs, grads = [], []
        for fn in (af.reduce_sum, af.reduce_mean, af.reduce_max, af.reduce_prod):
            y = fn(t, ax)
            outs.append(y)
            grads.append(af.gradients(af.reduce_sum(y * y), [t])[0])
        u = af.placeholder(af.float64)  # unknown rank
        gu = af.gradients(af.reduce_sum(af.reduce_max(u, 1) ** 2), [u])[0]
        y_static = af.reduce_sum(t, af.constant([0, 2]))  # a constant axis is static
        assert y_static.shape.as_list() == [3]
        with af.Session() as s:
            vo, vg = s.run([outs, grads], {t: x, ax: [0, -1]})
            vu = s.run(gu, {u: x})
    m = x.max(1, keepdims=True)
    np.testing.assert_allclose(vu, np.where(x == m, 2 * m, 0))
    for f, got, g in zip((np.sum, np.mean, np.max, np.prod), vo, vg, strict=True):
        want = f(x, axis=(0, 2))
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert g.shape == x.shape
    np.testing.assert_allclose(vg[0], np.broadcast_to(2 * np.sum(x, (0, 2))[None, :, None],
                                                      x.shape))
    np.testing.assert_allclose(vg[1], np.broadcast_to(2 * np.mean(x, (0, 2))[None, :, None] / 8,
                                                      x.shape))


def test_integer_and_bool_reductions() -> None:
    x = rng.integers(-50, 50, (3, 4)).astype(np.int32)
    got = run_op(lambda t: af.reduce_sum(t, 0), [x])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, x.sum(0))
    np.testing.assert_array_equal(run_op(lambda t: af.reduce_mean(t), [np.array([-3, -4],
                                                                               np.int32)]), -3)
    np.testing.assert_array_equal(run_op(lambda t: af.reduce_mean(t, 1), [x]),
                                  np.trunc(x.sum(1) / 4).astype(np.int32))
    np.testing.assert_array_equal(run_op(lambda t: af.reduce_max(t, 1), [x]), x.max(1))
    b = rng.random((3, 4)) > 0.5
    np.testing.assert_array_equal(run_op(lambda t: af.reduce_any(t, 1), [b]), b.any(1))
    np.testing.assert_array_equal(run_op(lambda t: af.reduce_all(t), [b]), b.all())
    out = run_op(af.reduce_sum, [rand(3)])
    assert isinstance(out, np.ndarray) and out.shape == ()


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log")
def test_reduce_logsumexp_is_stable() -> None:
    x = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [-np.inf, -np.inf]])
    got = run_op(lambda t: af.reduce_logsumexp(t, 1), [x])
    np.testing.assert_allclose(got[:2], [1000 + np.log(2), -1000 + np.log1p(np.exp(-1))])
    assert got[2] == -np.inf


def test_reduction_errors() -> None:
    with af.Graph().as_default():
        t = af.placeholder(af.float32, (2, 3))
        with pytest.raises(af.InvalidArgumentError, match="axis 2 is out of range.*rank 2"):
            af.reduce_sum(t, 2)
        with pytest.raises(af.InvalidArgumentError, match="needs a bool tensor"):
            af.reduce_any(t)
        with pytest.raises(af.InvalidArgumentError, match="needs a numeric tensor"):
            af.reduce_sum(t > 0)
        assert af.reduce_sum(t, keepdims=True).shape.as_list() == [1, 1]
        assert af.reduce_mean(t, reduction_indices=[1], keep_dims=True).shape.as_list() == [2, 1]


# ---- argmax / argmin --------------------------------------------------------------------
def test_argmax_argmin() -> None:
    x = rand(3, 4, 5)
    for axis in (0, 1, -1, None):
        for fn, ref in ((af.argmax, np.argmax), (af.argmin, np.argmin)):
            got = run_op(lambda t, fn=fn, axis=axis: fn(t, axis), [x])
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, ref(x, axis=0 if axis is None else axis))
    got = run_op(lambda t: af.argmax(t, 1, output_type=af.int32), [np.array([[1, 5, 5]])])
    assert got.dtype == np.int32 and got.tolist() == [1]  # first of the ties
    assert run_op(lambda t: af.argmin(t), [np.array([3.0, 1.0, 2.0])]) == 1
    with af.Graph().as_default():
        t = af.placeholder(af.float32, (3, 4))
        assert af.argmax(t, 1).shape.as_list() == [3]
        assert af.gradients(af.cast(af.argmax(t, 1), af.float32), [t]) == [None]


# ---- unsorted_segment_sum ---------------------------------------------------------------
def _segment_ref(data, ids, n):
    out = np.zeros((n,) + data.shape[ids.ndim:], data.dtype)
    for j, i in np.ndenumerate(ids):
        if i >= 0:
            out[i] += data[j]
    return out


def test_unsorted_segment_sum() -> None:
    data = rand(6, 3)
    ids = rng.integers(-1, 4, (6,)).astype(np.int32)
    check_forward(lambda d, i: af.unsorted_segment_sum(d, i, 4),
                  lambda d, i: _segment_ref(d, i, 4), [data, ids])
    check_gradient(lambda d, i: af.unsorted_segment_sum(d, i, 4), [data, ids])
    data2, ids2 = rand(2, 3, 2), rng.integers(0, 5, (2, 3)).astype(np.int64)
    check_forward(lambda d, i: af.unsorted_segment_sum(d, i, 5),
                  lambda d, i: _segment_ref(d, i, 5), [data2, ids2])
    ints = rng.integers(-9, 9, (7,)).astype(np.int32)
    ids3 = rng.integers(0, 3, (7,)).astype(np.int32)
    np.testing.assert_array_equal(run_op(lambda d, i: af.unsorted_segment_sum(d, i, 3),
                                         [ints, ids3]), _segment_ref(ints, ids3, 3))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_unsorted_segment_sum_large(dt) -> None:
    data = rand(3000, 8, dtype=dt)  # takes the sparse-matrix path on a CPU
    ids = rng.integers(-1, 50, (3000,)).astype(np.int32)
    got = run_op(lambda d, i: af.unsorted_segment_sum(d, i, 50), [data, ids])
    assert got.dtype == dt
    np.testing.assert_allclose(got, _segment_ref(data.astype(np.float64), ids, 50),
                               rtol=1e-4 if dt == np.float32 else 1e-10, atol=1e-3)


def test_unsorted_segment_sum_errors() -> None:
    with pytest.raises(af.InvalidArgumentError, match="segment id 5 is out of range"):
        run_op(lambda d, i: af.unsorted_segment_sum(d, i, 3),
               [rand(2), np.array([0, 5], np.int32)])
    with af.Graph().as_default():
        with pytest.raises(af.InvalidArgumentError, match="must be a prefix"):
            af.unsorted_segment_sum(af.placeholder(af.float32, (3, 2)),
                                    af.placeholder(af.int32, (2,)), 4)
    with af.Graph().as_default():
        d = af.placeholder(af.float32, (3, 2))
        n = af.placeholder(af.int32, ())
        assert af.unsorted_segment_sum(d, af.constant([0, 1, 1]), n).shape.as_list() == [None, 2]


def test_indexed_slices_densify() -> None:
    with af.Graph().as_default():
        values = af.constant(np.arange(6.0).reshape(3, 2))
        s = af.IndexedSlices(values, af.constant([2, 0, 2]), af.constant([4, 2]))
        with af.Session() as sess:
            got = sess.run(af.convert_to_tensor(s))
    np.testing.assert_array_equal(got, [[2, 3], [0, 0], [0 + 4, 1 + 5], [0, 0]])


# ---- pooled buffers ---------------------------------------------------------------------
def test_pooled_outputs_are_not_overwritten_by_later_steps() -> None:
    with af.Graph().as_default():
        x = af.placeholder(af.float64, (200, 200))
        y = af.tanh(x) * 2.0 + x
        with af.Session() as s:
            a, b = rand(200, 200), rand(200, 200)
            ra = s.run(y, {x: a})
            rb = s.run(y, {x: b})
            rc = s.run(y, {x: a})
    np.testing.assert_allclose(ra, np.tanh(a) * 2 + a)
    np.testing.assert_allclose(rb, np.tanh(b) * 2 + b)
    np.testing.assert_array_equal(ra, rc)
