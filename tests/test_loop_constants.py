"""A constant read inside a loop reaches its kernels as the Const kernel gives it on a CPU: a
0-d number as a NumPy scalar (so a loop's ``i + 1`` and ``i < n`` take NumPy's scalar math),
other values unchanged (`scheduler.control_flow._floating_value`)."""

from __future__ import annotations

import numpy as np

import actorflow as af
from actorflow.op_def import apply_op, define_op
from devices.kernels.registry import register_kernel
from scheduler.control_flow import _floating_value

define_op("TestLoopConstIsArray", infer=lambda ins, a: [(af.bool, ())])


@register_kernel("TestLoopConstIsArray", device_types=("CPU",))
def _is_array(k):
    return lambda x: (np.bool_(type(x) is np.ndarray),)


def test_floating_value_makes_0d_numbers_scalars_only():
    for v in (np.array(3, np.int32), np.array(2.5, np.float32), np.array(True)):
        got = _floating_value(v)
        assert type(got) is not np.ndarray and got.dtype == v.dtype and got == v[()]
    vec = np.arange(3, dtype=np.float32)
    assert _floating_value(vec) is vec
    s = np.array("text", dtype=object)
    assert _floating_value(s) is s


def test_a_loop_constant_reaches_kernels_as_a_numpy_scalar():
    g = af.Graph()
    with g.as_default():
        def body(i, seen, total):
            c = af.constant(2, af.int32)
            is_array = apply_op("TestLoopConstIsArray", [c])[0]
            return i + 1, af.logical_or(seen, is_array), total + c * i

        i, seen, total = af.while_loop(lambda i, s, t: i < 5, body,
                                       (af.constant(0), af.constant(False), af.constant(0)))
    with af.Session(graph=g) as s:
        got_i, got_seen, got_total = s.run([i, seen, total])
    assert int(got_i) == 5 and int(got_total) == 2 * (0 + 1 + 2 + 3 + 4)
    assert np.asarray(got_total).dtype == np.int32
    assert not bool(got_seen)  # never a 0-d array inside the loop
