"""Fused float32 chains of scalar-operand steps run as one compiled loop
(`devices.kernels.compiled_chain`): which programs qualify, and the same bits as the unfused
kernels, split over the intra-op pool or not."""

from __future__ import annotations

import numpy as np
import pytest

import actorflow as af
from devices.dtypes import as_dtype
from devices.kernels import compiled_chain

F32 = as_dtype("float32")
F64 = as_dtype("float64")


def test_plan_accepts_scalar_operand_chains_only():
    shapes = [(8,), (), ()]
    p = compiled_chain.plan([["tanh", 0], ["multiply", -1, 1], ["add", 2, -1]], shapes,
                            [F32] * 3, np.float32)
    # tanh(h) * in1 + in2 is one pass: head tanh, factor in1, summand in2
    assert p is not None and p.source == 0 and list(p.heads) == [compiled_chain.TANH]
    assert p.terms == (((-1, 1.0), (1, 1.0), (2, 1.0)),)
    table = compiled_chain.constants(p, [None, np.float32(1.5), np.float32(0.25)])
    np.testing.assert_array_equal(table, [[1.0, 1.5, 0.25]])
    # c - h folds as a sign and a summand; c / h is the reversed head
    p = compiled_chain.plan([["subtract", 1, 0], ["true_divide", 2, -1]], shapes, [F32] * 3,
                            np.float32)
    assert p is not None and p.source == 0
    assert list(p.heads) == [compiled_chain.NONE, compiled_chain.RDIV]
    table = compiled_chain.constants(p, [None, np.float32(3), np.float32(2)])
    np.testing.assert_array_equal(table, [[1, -1, 3], [2, 1, -0.0]])
    assert np.signbit(table[1, 2])  # the identity summand is -0: x + -0 is x, -0 included
    # a second factor, or a step after the summand, starts a new pass (each rounds)
    p = compiled_chain.plan([["multiply", 0, 1], ["multiply", -1, 2], ["add", -1, 1],
                             ["negative", -1]], shapes, [F32] * 3, np.float32)
    assert p is not None and list(p.heads) == [compiled_chain.NONE] * 3
    table = compiled_chain.constants(p, [None, np.float32(3), np.float32(2)])
    np.testing.assert_array_equal(table, [[1, 3, -0.0], [1, 2, 3], [1, -1, -0.0]])
    for program, sh, dts, out in (
            ([["add", 0, 1], ["tanh", -1]], [(8,), (8,)], [F32] * 2, np.float32),  # full + full
            ([["tanh", 0], ["add", -1, 1]], [(8,), (8,)], [F32] * 2, np.float32),
            ([["exp", 0], ["add", -1, 1]], shapes[:2], [F32] * 2, np.float32),    # not compiled
            ([["tanh", 0], ["add", -1, 1]], shapes[:2], [F64] * 2, np.float64),   # float64
            ([["tanh", 0], ["multiply", -1, -1]], shapes[:1], [F32], np.float32),  # h * h
            ([["tanh", 0], ["add", -1, 1]], [(8,), None], [F32] * 2, np.float32)):  # unknown
        assert compiled_chain.plan(program, sh, dts, out) is None, program


def _chains(x, a, b):
    yield "tanh_layers", af.tanh(af.tanh(x) * a + b) * a + b
    yield "reversed", (b - af.tanh(x)) / (a + 2.0) - 1.0
    yield "neg_square_div", 3.0 / (af.square(-x) + a)
    yield "scalar_first", a * x + b


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(600_001,), (37, 29), (1,)])
def test_compiled_chains_equal_the_unfused_kernels_bit_for_bit(shape, threads, monkeypatch):
    loops = []
    real = compiled_chain.compiled
    monkeypatch.setattr(compiled_chain, "compiled", lambda: loops.append(1) or real())
    rng = np.random.default_rng(len(shape) * 10 + threads)
    x_np = (rng.standard_normal(shape) * 3).astype(np.float32)
    x_np.reshape(-1)[:3] = [0.0, np.inf, np.nan][:x_np.size]
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, shape)
        a = af.placeholder(af.float32, ())
        b = af.placeholder(af.float32, ())
        names, outs = zip(*_chains(x, a, b), strict=True)
    feed = {x: x_np, a: np.float32(1.5), b: np.float32(0.25)}
    fused = af.ConfigProto(intra_op_parallelism_threads=threads)
    off = af.ConfigProto(intra_op_parallelism_threads=threads, graph_options=af.GraphOptions(
        optimizer_options=af.OptimizerOptions(False, False)))
    with af.Session(graph=g, config=fused) as s, af.Session(graph=g, config=off) as s0:
        got = s.run(list(outs), feed)
        want = s0.run(list(outs), feed)
    if shape != (1,):  # a 1-element chain may be folded or run inline: no claim there
        assert len(loops) >= len(names)  # every chain took the compiled loop
    for name, gv, wv in zip(names, got, want, strict=True):
        assert gv.dtype == np.float32 and gv.shape == shape, name
        np.testing.assert_array_equal(gv, wv, err_msg=name)
    h = np.tanh(np.tanh(x_np.astype(np.float64)) * 1.5 + 0.25) * 1.5 + 0.25
    np.testing.assert_allclose(got[0], h, rtol=2e-6, atol=1e-6)
