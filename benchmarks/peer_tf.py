"""TensorFlow 2.21 graph-mode (``tf.compat.v1``) peer benchmarks for actorflow.

Runs inside the side virtualenv ``.tfenv`` (``bash benchmarks/setup_tf_env.sh``), never
in actorflow's own environment::

    .tfenv/bin/python benchmarks/peer_tf.py NAME --params '{"n": 1000}'

and prints exactly one JSON line on stdout (TensorFlow's own chatter goes to stderr).
From the main environment call ``benchmarks.common.peer_tf(NAME, **params)`` instead.

Every benchmark builds one graph, opens one ``Session``, warms up and times many runs
with ``benchmarks.common.measure``.  The JSON result has:

* ``name``, ``tf_version``, ``params`` (with defaults filled in), ``config`` (session
  settings, e.g. whether graph rewrites were on);
* ``median_s``, ``p10_s``, ``p90_s`` of the headline measurement (seconds per run);
* ``figures``: headline numbers in the benchmark's unit (us per node, ms per step, ...);
* ``stats``: every measurement taken, each as a ``Stats`` dict (seconds per call);
* ``check``: agreement with the NumPy floor where one exists (max abs differences).

Common params: ``rewrites`` (``"on"`` / ``"off"``: Grappler and the classic graph
optimizer (CSE, constant folding, function inlining); default per benchmark, see
``DEFAULT_REWRITES``), ``control_flow`` (``"v1"`` Switch/Merge/Enter/Exit dataflow
loops as in TF1, the default, or ``"v2"`` functional ``While``), ``repeat`` and
``warmup``.

Benchmarks (``NAME``): noop_chain, noop_wide, run_fixed_cost, mlp_step, while_scalar,
rnn, two_branch_tanh, nullmodel_ps.  ``nullmodel_ps`` starts parameter-server and
worker processes (this same script with the private names ``_ps_task`` and
``_ps_worker``) on 127.0.0.1 and always kills them on exit.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks import floors  # noqa: E402
from benchmarks.common import Stats, measure, measure_interleaved  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf: Any = None  # the tensorflow module, imported by _import_tf()
v1: Any = None  # tf.compat.v1

Result = dict[str, Any]
Params = dict[str, Any]

DEFAULT_REWRITES = {
    # runtime-overhead benchmarks: Grappler's dependency optimizer would delete NoOps
    "noop_chain": "off",
    "noop_wide": "off",
    "run_fixed_cost": "off",
    # compute benchmarks: TensorFlow as users run it
    "mlp_step": "on",
    "while_scalar": "on",
    "rnn": "on",
    "two_branch_tanh": "on",
    "nullmodel_ps": "on",
    "scalar_chain": "on",
    "scalar_add_n": "on",
    "tanh_layers": "on",
}


# ----------------------------------------------------------------- TF setup


def _import_tf(control_flow: str = "v1") -> None:
    """Import TensorFlow, switch to graph mode and pick the control-flow flavour."""
    global tf, v1
    import tensorflow

    tf = tensorflow
    v1 = tensorflow.compat.v1
    v1.disable_eager_execution()
    if control_flow == "v1":
        v1.disable_control_flow_v2()
    elif control_flow == "v2":
        v1.enable_control_flow_v2()
    else:
        raise ValueError(f"control_flow must be 'v1' or 'v2', not {control_flow!r}")
    with contextlib.suppress(Exception):
        tensorflow.get_logger().setLevel("ERROR")


def session_config(
    *,
    rewrites: str = "on",
    inter_op: int = 0,
    intra_op: int = 0,
    cpus: int = 1,
    device_filters: list[str] | None = None,
) -> Any:
    """A ``ConfigProto``; ``rewrites="off"`` disables Grappler and the graph optimizer."""
    from tensorflow.core.protobuf import rewriter_config_pb2

    cfg = v1.ConfigProto(
        inter_op_parallelism_threads=inter_op,
        intra_op_parallelism_threads=intra_op,
        device_count={"CPU": cpus},
        allow_soft_placement=False,
    )
    if device_filters:
        cfg.device_filters.extend(device_filters)
    if rewrites == "off":
        oo = cfg.graph_options.optimizer_options
        oo.opt_level = v1.OptimizerOptions.L0
        oo.do_common_subexpression_elimination = False
        oo.do_constant_folding = False
        oo.do_function_inlining = False
        oo.global_jit_level = v1.OptimizerOptions.OFF
        rw = cfg.graph_options.rewrite_options
        off = rewriter_config_pb2.RewriterConfig.OFF
        for toggle in (
            "layout_optimizer",
            "constant_folding",
            "shape_optimization",
            "remapping",
            "common_subgraph_elimination",
            "arithmetic_optimization",
            "dependency_optimization",
            "loop_optimization",
            "function_optimization",
            "debug_stripper",
            "scoped_allocator_optimization",
            "pin_to_host_optimization",
            "implementation_selector",
            "auto_mixed_precision",
            "auto_mixed_precision_cpu",
        ):
            setattr(rw, toggle, off)
        rw.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
        rw.disable_model_pruning = True
        rw.disable_meta_optimizer = True
    elif rewrites != "on":
        raise ValueError(f"rewrites must be 'on' or 'off', not {rewrites!r}")
    return cfg


def _stats_dict(stats: Stats) -> dict[str, float | int]:
    return stats.as_dict()


def _result(name: str, params: Params, headline: Stats, **extra: Any) -> Result:
    out: Result = {
        "name": name,
        "tf_version": tf.__version__,
        "params": params,
        "median_s": headline.median,
        "p10_s": headline.p10,
        "p90_s": headline.p90,
    }
    out.update(extra)
    return out


def _time(fn: Callable[[], object], params: Params, *, number: int = 0) -> Stats:
    return measure(
        fn,
        warmup=int(params.get("warmup", 3)),
        repeat=int(params.get("repeat", 30)),
        number=number,
    )


def _time_many(
    fns: dict[str, Callable[[], object]], params: Params, *, number: int = 0
) -> dict[str, Stats]:
    """Interleaved timing of variants that are compared with each other."""
    return measure_interleaved(
        fns,
        warmup=int(params.get("warmup", 3)),
        repeat=int(params.get("repeat", 30)),
        number=number,
    )


# ----------------------------------------------------------------- benchmarks


def bench_noop(name: str, params: Params) -> Result:
    """noop_chain / noop_wide: per-node cost of the executor on NoOps."""
    n = int(params.setdefault("n", 1000))
    g = v1.Graph()
    with g.as_default():
        if name == "noop_chain":
            prev = v1.no_op(name="noop_0")
            for i in range(1, n):
                with v1.control_dependencies([prev]):
                    prev = v1.no_op(name=f"noop_{i}")
            target = prev
        else:
            leaves = [v1.no_op(name=f"noop_{i}") for i in range(n)]
            with v1.control_dependencies(leaves):
                target = v1.no_op(name="sink")
        single = v1.no_op(name="single")
    cfg = session_config(rewrites=params["rewrites"])
    with v1.Session(graph=g, config=cfg) as sess:
        call = sess.make_callable(target)
        call_one = sess.make_callable(single)
        sts = _time_many(
            {
                "run": lambda: sess.run(target),
                "run_one": lambda: sess.run(single),
                "call": call,
                "call_one": call_one,
            },
            params,
        )
    st, st_one, st_call, st_call_one = sts["run"], sts["run_one"], sts["call"], sts["call_one"]
    nodes = n if name == "noop_chain" else n + 1
    return _result(
        name,
        params,
        st,
        config={"rewrites": params["rewrites"]},
        figures={
            "nodes": nodes,
            "us_per_node": st.median / nodes * 1e6,
            "us_per_node_net": (st.median - st_one.median) / (nodes - 1) * 1e6,
            "us_per_node_callable": st_call.median / nodes * 1e6,
            "us_per_node_callable_net": (st_call.median - st_call_one.median) / (nodes - 1) * 1e6,
            "us_per_run": st.median * 1e6,
            "us_per_run_single_noop": st_one.median * 1e6,
        },
        stats={
            "session_run": _stats_dict(st),
            "session_run_single_noop": _stats_dict(st_one),
            "callable": _stats_dict(st_call),
            "callable_single_noop": _stats_dict(st_call_one),
        },
    )


def bench_run_fixed_cost(name: str, params: Params) -> Result:
    """Fetch ``identity(p)`` of a fed float32 scalar: the fixed cost of one run.

    Also times ``Session.run`` and ``make_callable`` of ``identity(v)`` of a scalar
    variable (no feed); a fetch-only callable is TF's fastest way to run a step.
    """
    g = v1.Graph()
    with g.as_default():
        p = v1.placeholder(tf.float32, shape=(), name="p")
        out = tf.identity(p, name="out")
        nofeed = tf.identity(v1.Variable(1.5, name="v"), name="out_nofeed")
        init = v1.global_variables_initializer()
    cfg = session_config(rewrites=params["rewrites"])
    value = np.float32(1.5)
    with v1.Session(graph=g, config=cfg) as sess:
        sess.run(init)
        assert float(sess.run(out, feed_dict={p: value})) == 1.5
        # make_callable with a feed_list is only a wrapper around Session.run; the fast
        # C path (TF_SessionRunCallable) exists for fetch-only callables.
        call_nofeed = sess.make_callable(nofeed)
        sts = _time_many(
            {
                "run": lambda: sess.run(out, feed_dict={p: value}),
                "run_no_feed": lambda: sess.run(nofeed),
                "callable_no_feed": call_nofeed,
            },
            params,
        )
    st = sts["run"]
    return _result(
        name,
        params,
        st,
        config={"rewrites": params["rewrites"]},
        figures={
            "us_per_run": st.median * 1e6,
            "us_per_run_no_feed": sts["run_no_feed"].median * 1e6,
            "us_per_run_callable_no_feed": sts["callable_no_feed"].median * 1e6,
        },
        stats={
            "session_run": _stats_dict(st),
            "run_no_feed": _stats_dict(sts["run_no_feed"]),
            "callable_no_feed": _stats_dict(sts["callable_no_feed"]),
        },
    )


def _mlp_graph(sizes: list[int], batch: int, lr: float, weights: list[Any]) -> tuple[Any, ...]:
    g = v1.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, (batch, sizes[0]), name="x")
        y = v1.placeholder(tf.float32, (batch, sizes[-1]), name="y")
        a = x
        variables = []
        for i, (w0, b0) in enumerate(weights):
            w = v1.Variable(w0, name=f"W{i}")
            b = v1.Variable(b0, name=f"b{i}")
            variables.append((w, b))
            a = tf.matmul(a, w) + b
            if i != len(weights) - 1:
                a = tf.nn.relu(a)
        xent = v1.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=a)
        loss = tf.reduce_mean(xent)
        train = v1.train.GradientDescentOptimizer(lr).minimize(loss)
        init = v1.global_variables_initializer()
    return g, x, y, loss, train, init, variables


def bench_mlp_step(name: str, params: Params) -> Result:
    """One SGD step of a ReLU MLP with softmax cross-entropy, same fed batch every step."""
    sizes = [int(s) for s in params.setdefault("sizes", [64, 128, 10])]
    batch = int(params.setdefault("batch", 64))
    lr = float(params.setdefault("lr", 0.01))
    seed = int(params.setdefault("seed", 0))
    data = floors.make_mlp_data(batch, sizes, seed)
    floor = floors.NumpyMLP(sizes, lr, seed)
    weights0 = floor.copy_weights()
    g, x, y, loss, train, init, variables = _mlp_graph(sizes, batch, lr, weights0)
    cfg = session_config(rewrites=params["rewrites"])
    feed = {x: data.x, y: data.onehot}
    with v1.Session(graph=g, config=cfg) as sess:
        sess.run(init)
        # cross-check one step against the NumPy floor from identical weights
        _, tf_loss = sess.run([train, loss], feed_dict=feed)
        np_loss = floor.step(data.x, data.labels)
        tf_w = sess.run(variables)
        w_diff = max(
            float(np.abs(tw - nw).max())
            for (tw, tb), (nw, nb) in zip(tf_w, floor.weights, strict=True)
            for tw, nw in ((tw, nw), (tb, nb))
        )
        st = _time(lambda: sess.run([train, loss], feed_dict=feed), params)
    return _result(
        name,
        params,
        st,
        config={"rewrites": params["rewrites"]},
        figures={"ms_per_step": st.median * 1e3},
        stats={"session_run": _stats_dict(st)},
        check={
            "first_step_loss_tf": float(tf_loss),
            "first_step_loss_numpy": float(np_loss),
            "loss_abs_diff": abs(float(tf_loss) - float(np_loss)),
            "weights_after_step_max_abs_diff": w_diff,
        },
    )


def bench_while_scalar(name: str, params: Params) -> Result:
    """``while_loop(i < n: (i + 1, acc + i))`` on int64 scalars; iterations per second."""
    n = int(params.setdefault("n", 100_000))
    g = v1.Graph()
    with g.as_default():
        i0 = tf.constant(0, tf.int64)
        acc0 = tf.constant(0, tf.int64)
        limit = tf.constant(n, tf.int64)
        i_out, acc_out = v1.while_loop(
            lambda i, acc: i < limit,
            lambda i, acc: (i + 1, acc + i),
            [i0, acc0],
            parallel_iterations=int(params.setdefault("parallel_iterations", 10)),
        )
    cfg = session_config(rewrites=params["rewrites"])
    with v1.Session(graph=g, config=cfg) as sess:
        i_val, acc_val = sess.run([i_out, acc_out])
        assert (int(i_val), int(acc_val)) == floors.python_while_scalar(n)
        params.setdefault("repeat", 7)
        params.setdefault("warmup", 1)
        st = _time(lambda: sess.run([i_out, acc_out]), params, number=1)
    return _result(
        name,
        params,
        st,
        config={"rewrites": params["rewrites"], "control_flow": params["control_flow"]},
        figures={
            "iterations_per_s": n / st.median,
            "us_per_iteration": st.median / n * 1e6,
        },
        stats={"session_run": _stats_dict(st)},
    )


def bench_rnn(name: str, params: Params) -> Result:
    """while_loop RNN ``h = tanh(h @ W + x_t)``: forward, and forward + dL/dW (L = sum h_T)."""
    T = int(params.setdefault("T", 100))
    H = int(params.setdefault("H", 64))
    batch = int(params.setdefault("batch", 32))
    seed = int(params.setdefault("seed", 0))
    x_np, w_np, h0_np = floors.make_rnn_data(T, batch, H, seed)
    g = v1.Graph()
    with g.as_default():
        x = v1.Variable(x_np, name="x", trainable=False)
        w = v1.Variable(w_np, name="W")
        h0 = tf.constant(h0_np)

        def body(t: Any, h: Any) -> tuple[Any, Any]:
            return t + 1, tf.tanh(tf.matmul(h, w) + tf.gather(x, t))

        _, h_t = v1.while_loop(
            lambda t, h: t < T,
            body,
            [tf.constant(0, tf.int32), h0],
            parallel_iterations=int(params.setdefault("parallel_iterations", 10)),
        )
        loss = tf.reduce_sum(h_t)
        (dw,) = v1.gradients(loss, [w])
        init = v1.global_variables_initializer()
    cfg = session_config(rewrites=params["rewrites"])
    with v1.Session(graph=g, config=cfg) as sess:
        sess.run(init)
        h_tf = sess.run(h_t)
        loss_tf, dw_tf = sess.run([loss, dw])
        loss_np, dw_np = floors.rnn_forward_backward(x_np, w_np, h0_np)
        h_np = floors.rnn_forward(x_np, w_np, h0_np)
        st_f = _time(lambda: sess.run(h_t), params)
        st_fb = _time(lambda: sess.run([loss, dw]), params)
    return _result(
        name,
        params,
        st_fb,
        config={"rewrites": params["rewrites"], "control_flow": params["control_flow"]},
        figures={
            "forward_ms": st_f.median * 1e3,
            "forward_backward_ms": st_fb.median * 1e3,
        },
        stats={"forward": _stats_dict(st_f), "forward_backward": _stats_dict(st_fb)},
        check={
            "h_T_max_abs_diff": float(np.abs(h_tf - h_np).max()),
            "loss_abs_diff": abs(float(loss_tf) - loss_np),
            "dW_max_abs_diff": float(np.abs(dw_tf - dw_np).max()),
        },
    )


def bench_two_branch_tanh(name: str, params: Params) -> Result:
    """Two independent tanh chains on /cpu:0 and /cpu:1 vs the same work as one chain.

    ``speedup`` = one chain of ``2 * layers`` on /cpu:0 over the two branches on two
    devices; ``ideal_speedup`` uses a single branch (half the work) instead.  Defaults:
    ``intra_op=1`` (each op single-threaded, so parallelism comes from the executor),
    ``inter_op=2``.
    """
    n = int(params.setdefault("n", 2_000_000))
    layers = int(params.setdefault("layers", 10))
    intra = int(params.setdefault("intra_op", 1))
    inter = int(params.setdefault("inter_op", 2))
    rng = np.random.default_rng(int(params.setdefault("seed", 0)))
    a_np = rng.standard_normal(n, dtype=np.float32)
    b_np = rng.standard_normal(n, dtype=np.float32)

    def chain(t: Any, k: int) -> Any:
        for _ in range(k):
            t = tf.tanh(t)
        # Fetch one element, not a group() of the chain: Grappler prunes control-only
        # targets on stateless ops, and fetching 2M floats would add a copy.
        return t[:1]

    g = v1.Graph()
    with g.as_default():
        with tf.device("/cpu:0"):
            a = v1.Variable(a_np, name="a")
            b0 = v1.Variable(b_np, name="b0")
            one_chain = [chain(a, 2 * layers)]  # same work, one chain, one device
            branch_a = chain(a, layers)
            branch_b_same = chain(b0, layers)
        with tf.device("/cpu:1"):
            b = v1.Variable(b_np, name="b")
            branch_b = chain(b, layers)
        two_devices = [branch_a, branch_b]
        one_branch = [branch_a]  # half the work: the ideal time for two_devices
        one_device_two_chains = [branch_a, branch_b_same]
        init = v1.global_variables_initializer()
    cfg = session_config(rewrites=params["rewrites"], inter_op=inter, intra_op=intra, cpus=2)
    params.setdefault("repeat", 31)
    with v1.Session(graph=g, config=cfg) as sess:
        sess.run(init)
        sts = _time_many(
            {
                "two": lambda: sess.run(two_devices),
                "one": lambda: sess.run(one_chain),
                "same": lambda: sess.run(one_device_two_chains),
                "half": lambda: sess.run(one_branch),
            },
            params,
            number=1,
        )
    st_two, st_one, st_same, st_half = sts["two"], sts["one"], sts["same"], sts["half"]
    return _result(
        name,
        params,
        st_two,
        config={
            "rewrites": params["rewrites"],
            "device_count_cpu": 2,
            "inter_op": inter,
            "intra_op": intra,
        },
        figures={
            "two_devices_ms": st_two.median * 1e3,
            "one_chain_ms": st_one.median * 1e3,
            "two_chains_one_device_ms": st_same.median * 1e3,
            "one_branch_ms": st_half.median * 1e3,
            "speedup": st_one.median / st_two.median,
            "speedup_p10": st_one.p10 / st_two.p10,
            "ideal_speedup": st_one.median / st_half.median,
            "speedup_two_chains_one_device": st_one.median / st_same.median,
        },
        stats={
            "two_devices": _stats_dict(st_two),
            "one_chain": _stats_dict(st_one),
            "two_chains_one_device": _stats_dict(st_same),
            "one_branch": _stats_dict(st_half),
        },
    )


# ------------------------------------------ issue 11: small kernels and intra-op parallelism


def bench_scalar_chain(name: str, params: Params) -> Result:
    """A chain of ``n`` scalar ``x + 1.0`` (float32, ``x`` fed): per-node cost of a real small
    kernel.  Rewrites on (as users run TF); a fed ``x`` keeps constant folding out."""
    n = int(params.setdefault("n", 10_000))
    g = v1.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, (), name="x")
        y = x
        for _ in range(n):
            y = y + 1.0
    cfg = session_config(rewrites=params["rewrites"])
    with v1.Session(graph=g, config=cfg) as sess:
        assert float(sess.run(y, {x: 0.5})) == 0.5 + n
        params.setdefault("repeat", 15)
        st = _time(lambda: sess.run(y, {x: 0.5}), params, number=1)
    return _result(name, params, st, config={"rewrites": params["rewrites"]},
                   figures={"nodes": n, "us_per_node": st.median / n * 1e6,
                            "ms_per_run": st.median * 1e3},
                   stats={"session_run": _stats_dict(st)})


def bench_scalar_add_n(name: str, params: Params) -> Result:
    """``add_n([x + float(i) for i in range(n)])`` on a fed float32 scalar: per-node cost."""
    n = int(params.setdefault("n", 10_000))
    g = v1.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, (), name="x")
        y = tf.add_n([x + float(i) for i in range(n)])
    cfg = session_config(rewrites=params["rewrites"])
    with v1.Session(graph=g, config=cfg) as sess:
        got = float(sess.run(y, {x: 0.5}))
        params.setdefault("repeat", 15)
        st = _time(lambda: sess.run(y, {x: 0.5}), params, number=1)
    return _result(name, params, st, config={"rewrites": params["rewrites"]},
                   figures={"nodes": n + 1, "us_per_node": st.median / (n + 1) * 1e6,
                            "ms_per_run": st.median * 1e3, "value": got},
                   stats={"session_run": _stats_dict(st)})


def bench_tanh_layers(name: str, params: Params) -> Result:
    """One chain of ``layers`` x ``h = tanh(h) * 1.5 + c`` over ``n`` float32 held in a
    variable, fetching one element (so no 8 MB copy out): intra-op parallelism at work."""
    n = int(params.setdefault("n", 2_000_000))
    layers = int(params.setdefault("layers", 24))
    intra = int(params.setdefault("intra_op", 0))
    x_np = np.random.default_rng(int(params.setdefault("seed", 0))).standard_normal(
        n, dtype=np.float32)
    g = v1.Graph()
    with g.as_default():
        x = v1.Variable(x_np, name="x")
        c = tf.constant(np.float32(0.25))
        h = x.read_value() if hasattr(x, "read_value") else tf.identity(x)
        for _ in range(layers):
            h = tf.tanh(h) * 1.5 + c
        out = h[:1]
        init = v1.global_variables_initializer()
    cfg = session_config(rewrites=params["rewrites"], intra_op=intra)
    with v1.Session(graph=g, config=cfg) as sess:
        sess.run(init)
        got = float(sess.run(out)[0])
        params.setdefault("repeat", 15)
        st = _time(lambda: sess.run(out), params, number=1)
    ref = np.float64(x_np[0])
    for _ in range(layers):
        ref = np.tanh(ref) * 1.5 + 0.25
    return _result(name, params, st, config={"rewrites": params["rewrites"],
                                             "intra_op": intra},
                   figures={"ms_per_run": st.median * 1e3},
                   stats={"session_run": _stats_dict(st)},
                   check={"first_element_abs_diff": abs(got - float(ref))})


# ----------------------------------------------------------------- null model (PS)

NULL_MODELS = ("scalar", "dense", "sparse")
DENSE_BYTES = 10 * 2**20  # 10 MiB spread over the 2 PS tasks
SPARSE_BYTES = 64 * 2**20  # 64 MiB table, half on each PS task
SPARSE_WIDTH = 64  # floats per row
SPARSE_ROWS_PER_STEP = 32


def _free_ports(k: int) -> list[int]:
    socks = []
    try:
        for _ in range(k):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the child when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class _Children:
    """Child processes that are always killed: on normal exit, exceptions and signals."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        atexit.register(self.kill_all)

    def spawn(
        self, args: list[str], script: Path | None = None, **kw: Any
    ) -> subprocess.Popen[str]:
        """Run ``script`` (default: this file) with ``args`` in this interpreter."""
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.Popen(
            [sys.executable, str(script or Path(__file__).resolve()), *args],
            text=True,
            env=env,
            preexec_fn=_die_with_parent,
            **kw,
        )
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
        self.procs.clear()


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _null_cluster(ps_ports: list[int], worker_ports: list[int]) -> dict[str, list[str]]:
    return {
        "ps": [f"127.0.0.1:{p}" for p in ps_ports],
        "worker": [f"127.0.0.1:{p}" for p in worker_ports],
    }


def _ps_task(params: Params) -> None:
    """Child: one PS task; serves until killed."""
    cluster = v1.train.ClusterSpec(params["cluster"])
    default = params.get("threads") == "default"
    cfg = session_config(inter_op=0 if default else 1, intra_op=0 if default else 1)
    server = tf.distribute.Server(
        cluster, job_name="ps", task_index=int(params["task"]), config=cfg, start=True
    )
    print("READY", flush=True)
    server.join()


def _build_null_models(task: int) -> tuple[dict[str, Any], Any]:
    """Variables on the PS tasks; per model one step op (read, trivial compute, update).

    Returns the step ops by model name and the scalar model's variable.
    """
    ps = ["/job:ps/task:0", "/job:ps/task:1"]
    wk = f"/job:worker/task:{task}"
    steps: dict[str, Any] = {}

    # scalar: one float on ps0
    with tf.device(ps[0]):
        s = v1.get_variable("scalar", (), tf.float32, v1.zeros_initializer())
        s_read = s.read_value()
    with tf.device(wk):
        s_delta = s_read * 0.0 + 1.0
    with tf.device(ps[0]):
        steps["scalar"] = s.assign_add(s_delta).op

    # dense: 10 MiB as two float vectors, one per PS task
    half = DENSE_BYTES // 4 // 2
    updates = []
    for k, dev in enumerate(ps):
        with tf.device(dev):
            d = v1.get_variable(f"dense{k}", (half,), tf.float32, v1.zeros_initializer())
            d_read = d.read_value()
        with tf.device(wk):
            d_delta = d_read * 0.0 + 1e-3
        with tf.device(dev):
            updates.append(d.assign_add(d_delta).op)
    steps["dense"] = tf.group(*updates)

    # sparse: 64 MiB table, rows interleaved over the PS tasks (row r on ps r % 2)
    rows_total = SPARSE_BYTES // 4 // SPARSE_WIDTH
    rows_per_ps = rows_total // 2
    tables = []
    for k, dev in enumerate(ps):
        with tf.device(dev):
            tables.append(
                v1.get_variable(
                    f"table{k}", (rows_per_ps, SPARSE_WIDTH), tf.float32, v1.zeros_initializer()
                )
            )
    with tf.device(wk):
        ids = v1.random_uniform([SPARSE_ROWS_PER_STEP], 0, rows_total, dtype=tf.int64)
        shard = tf.cast(ids % 2, tf.int32)
        local = tf.dynamic_partition(ids // 2, shard, 2)
    updates = []
    for k, dev in enumerate(ps):
        with tf.device(dev):
            rows = tf.gather(tables[k], local[k])
        with tf.device(wk):
            delta = rows * 0.0 + 1e-3
        with tf.device(dev):
            updates.append(v1.scatter_add(tables[k], local[k], delta).op)
    steps["sparse"] = tf.group(*updates)
    return steps, s


def _ps_worker(params: Params) -> None:
    """Child: one worker task.

    Prints READY once its session is up (task 0 first initialises the variables), then
    obeys stdin commands: ``GO MODEL`` (warm up, time steps for ``duration`` seconds,
    print one JSON line of step times), ``CHECK`` (print the scalar model's value) and
    ``QUIT``.
    """
    task = int(params["task"])
    cluster = v1.train.ClusterSpec(params["cluster"])
    default = params.get("threads") == "default"  # TF's own thread pools, sized to the CPUs
    inter, intra = (0, 0) if default else (2, 1)
    server_cfg = session_config(inter_op=inter, intra_op=intra)
    server = tf.distribute.Server(
        cluster, job_name="worker", task_index=task, config=server_cfg, start=True
    )
    g = v1.Graph()
    with g.as_default():
        steps, scalar = _build_null_models(task)
        init = v1.global_variables_initializer()
        scalar_value = scalar.read_value()
    cfg = session_config(
        rewrites=params["rewrites"],
        inter_op=inter,
        intra_op=intra,
        device_filters=["/job:ps", f"/job:worker/task:{task}"],
    )
    with v1.Session(server.target, graph=g, config=cfg) as sess:
        if task == 0:
            sess.run(init)
        print("READY", flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "QUIT":
                break
            if cmd[0] == "CHECK":
                print(json.dumps({"scalar": float(sess.run(scalar_value))}), flush=True)
                continue
            op = steps[cmd[1]]
            for _ in range(int(params["warmup"])):
                sess.run(op)
            times = []
            clock = time.perf_counter
            deadline = clock() + float(params["duration"])
            while True:
                t0 = clock()
                sess.run(op)
                t1 = clock()
                times.append(t1 - t0)
                if t1 >= deadline:
                    break
            print(json.dumps({"model": cmd[1], "task": task, "times": times}), flush=True)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """Next stdout line of ``proc`` (blocking, with a watchdog that kills it on timeout)."""
    import threading

    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    if not line:
        raise RuntimeError(f"child {proc.args} exited (rc={proc.poll()}) without output")
    return line


def bench_nullmodel_ps(name: str, params: Params) -> Result:
    """Distributed null model: 2 PS tasks, 1/2/4 async between-graph workers."""
    workers_list = [int(w) for w in params.setdefault("workers", [1, 2, 4])]
    models = list(params.setdefault("models", list(NULL_MODELS)))
    params.setdefault("duration", 3.0)
    params.setdefault("warmup", 5)
    for m in models:
        if m not in NULL_MODELS:
            raise ValueError(f"unknown null model {m!r}")
    children = _Children()
    # SIGTERM/SIGINT -> SystemExit, so the finally below kills the children; SIGKILL of
    # this process is covered by PR_SET_PDEATHSIG in the children.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    table: dict[str, dict[str, Any]] = {m: {} for m in models}
    all_stats: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    try:
        for nw in workers_list:
            ports = _free_ports(2 + nw)
            cluster = _null_cluster(ports[:2], ports[2:])
            wparams = {
                "cluster": cluster,
                "duration": params["duration"],
                "warmup": params["warmup"],
                "rewrites": params["rewrites"],
                "control_flow": params["control_flow"],
                "threads": params.get("threads", "pinned"),
            }
            # Start everything at once: worker sessions wait for the PS tasks, and no
            # worker steps before GO, which is sent only after task 0 has initialised.
            ps_procs = [
                children.spawn(
                    ["_ps_task", "--params", json.dumps({"cluster": cluster, "task": k,
                                                         "threads": wparams["threads"]})],
                    stdout=subprocess.PIPE,
                )
                for k in range(2)
            ]
            wprocs = [
                children.spawn(
                    ["_ps_worker", "--params", json.dumps({**wparams, "task": k})],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                for k in range(nw)
            ]
            for p in ps_procs + wprocs:
                line = _read_line(p, 300).strip()
                if line != "READY":
                    raise RuntimeError(f"child {p.args[2]} said {line!r}, not READY")

            def send(proc: subprocess.Popen[str], text: str) -> None:
                assert proc.stdin is not None
                proc.stdin.write(text + "\n")
                proc.stdin.flush()

            scalar_steps = 0
            for model in models:
                for p in wprocs:
                    send(p, f"GO {model}")
                per_worker = []
                for p in wprocs:
                    rec = json.loads(_read_line(p, 120 + 4 * float(params["duration"])))
                    per_worker.append(np.asarray(rec["times"]))
                times = np.concatenate(per_worker)
                if model == "scalar":
                    scalar_steps = int(times.size) + nw * int(params["warmup"])
                p10, med, p90 = np.percentile(times, [10, 50, 90])
                steps_per_s = sum(len(t) / t.sum() for t in per_worker)
                table[model][str(nw)] = {
                    "median_ms": float(med) * 1e3,
                    "p10_ms": float(p10) * 1e3,
                    "p90_ms": float(p90) * 1e3,
                    "steps": int(times.size),
                    "aggregate_steps_per_s": float(steps_per_s),
                }
                all_stats[f"{model}/{nw}"] = Stats(
                    float(med), float(p10), float(p90), float(times.mean()), int(times.size), 1
                ).as_dict()
            send(wprocs[0], "CHECK")
            value = json.loads(_read_line(wprocs[0], 60))["scalar"]
            checks[f"w{nw}"] = {"scalar_value": value, "scalar_updates_sent": scalar_steps}
            for p in wprocs:
                send(p, "QUIT")
            children.kill_all()
    finally:
        children.kill_all()
    first = all_stats[f"{models[0]}/{workers_list[0]}"]
    return {
        "name": name,
        "tf_version": tf.__version__,
        "params": params,
        "config": {"rewrites": params["rewrites"], "ps_tasks": 2, "async": True},
        "median_s": first["median"],
        "p10_s": first["p10"],
        "p90_s": first["p90"],
        "figures": {f"{m}_ms_w{nw}": table[m][nw]["median_ms"] for m in models for nw in table[m]},
        "table": table,
        "stats": all_stats,
        "check": checks,
    }


BENCHMARKS: dict[str, Callable[[str, Params], Result]] = {
    "noop_chain": bench_noop,
    "noop_wide": bench_noop,
    "run_fixed_cost": bench_run_fixed_cost,
    "mlp_step": bench_mlp_step,
    "while_scalar": bench_while_scalar,
    "rnn": bench_rnn,
    "two_branch_tanh": bench_two_branch_tanh,
    "nullmodel_ps": bench_nullmodel_ps,
    "scalar_chain": bench_scalar_chain,
    "scalar_add_n": bench_scalar_add_n,
    "tanh_layers": bench_tanh_layers,
}


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Keep stray prints from TensorFlow off stdout, which carries only the JSON line."""
    saved = os.dup(1)
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_benchmark(name: str, params: Params) -> Result:
    """Run benchmark ``name`` with ``params`` (in this process, TensorFlow required)."""
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    params = dict(params)
    params.setdefault("rewrites", DEFAULT_REWRITES[name])
    params.setdefault("control_flow", "v1")
    _import_tf(params["control_flow"])
    t0 = time.perf_counter()
    result = BENCHMARKS[name](name, params)
    result["wall_s"] = time.perf_counter() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``peer_tf.py NAME [--params JSON]``; prints one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=[*BENCHMARKS, "_ps_task", "_ps_worker"])
    ap.add_argument("--params", default="{}", help="JSON object of benchmark parameters")
    args = ap.parse_args(argv)
    params = json.loads(args.params)
    if not isinstance(params, dict):
        raise SystemExit("--params must be a JSON object")
    if args.name == "_ps_task":
        _import_tf("v1")
        _ps_task(params)
        return 0
    if args.name == "_ps_worker":
        _import_tf(params.get("control_flow", "v1"))
        _ps_worker(params)
        return 0
    with _stdout_to_stderr():
        result = run_benchmark(args.name, params)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
