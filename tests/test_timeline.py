"""Step traces: FULL_TRACE fills RunMetadata.step_stats for every node on every device (output
shapes and bytes, pool memory, threads), in one process and across real tasks (clocks
aligned); Timeline gives Chrome trace JSON (a process per device, non-overlapping lanes, Send
to Recv flows, memory counters) and a Perfetto trace that parses with perfetto's protos."""

from __future__ import annotations

import json

import numpy as np
import pytest

import actorflow as af
from actorflow.client import timeline
from actorflow.cluster import LocalCluster

FULL = af.RunOptions(trace_level=af.RunOptions.FULL_TRACE)


def _check_chrome(tl: timeline.Timeline, md: af.RunMetadata, graph_ops: set[str]) -> dict:
    doc = json.loads(tl.generate_chrome_trace_format(show_memory=True))
    ev = doc["traceEvents"]
    xs = [e for e in ev if e["ph"] == "X"]
    assert len(xs) == len(md.step_stats.nodes)  # one event per executed node
    names = {e["args"]["name"] for e in xs}
    assert names == md.step_stats.node_names()
    user = [e for e in xs if not e["args"]["name"].startswith("_")]
    assert user and all(e["name"] in graph_ops for e in user)
    # nodes on one lane never overlap
    lanes: dict = {}
    for e in sorted(xs, key=lambda e: e["ts"]):
        key = (e["pid"], e["tid"])
        assert e["ts"] >= lanes.get(key, -1.0) - 1e-6
        lanes[key] = e["ts"] + e["dur"]
    procs = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs == {f"{d} Compute" for d in {n.device for n in md.step_stats.nodes}}
    assert any(e["ph"] == "C" for e in ev)
    return doc


def _check_perfetto(tl: timeline.Timeline, n_nodes: int, flows: int) -> None:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent
    tr = Trace.FromString(tl.generate_perfetto_trace())
    begins = [p.track_event for p in tr.packet if p.HasField("track_event")
              and p.track_event.type == TrackEvent.TYPE_SLICE_BEGIN]
    ends = [p for p in tr.packet if p.HasField("track_event")
            and p.track_event.type == TrackEvent.TYPE_SLICE_END]
    assert len(begins) == len(ends) == n_nodes
    assert sum(len(b.flow_ids) for b in begins) == flows
    assert sum(len(b.terminating_flow_ids) for b in begins) == flows
    stamps = [p.timestamp for p in tr.packet if p.HasField("track_event")]
    assert stamps == sorted(stamps)
    tracks = {p.track_descriptor.uuid for p in tr.packet if p.HasField("track_descriptor")}
    assert all(b.track_uuid in tracks for b in begins)


def test_full_trace_on_two_devices_chrome_and_perfetto() -> None:
    rng = np.random.default_rng()
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [8, 16], name="x")
        with af.device("/cpu:0"):
            h = af.tanh(af.matmul(x, af.constant(rng.random((16, 32), np.float32))), name="h")
        with af.device("/cpu:1"):
            y = af.reduce_sum(af.matmul(h, af.constant(rng.random((32, 4), np.float32))),
                              name="y")
    md = af.RunMetadata()
    with af.Session(graph=g, config=af.ConfigProto(device_count={"CPU": 2})) as s:
        s.run(y, {x: rng.random((8, 16), np.float32)}, options=FULL, run_metadata=md)
    nodes = {n.node_name: n for n in md.step_stats.nodes}
    assert nodes["h"].op == "Tanh" and nodes["h"].outputs == (("float32", (8, 32), 8 * 32 * 4),)
    assert nodes["y"].outputs[0][:2] == ("float32", ())
    assert all(n.thread_id for n in nodes.values())
    assert {n.device[-5:] for n in nodes.values()} == {"CPU:0", "CPU:1"}
    tl = timeline.Timeline(md.step_stats, graph=g)
    doc = _check_chrome(tl, md, {op.type for op in g.get_operations()})
    flows = [e for e in doc["traceEvents"] if e["ph"] == "s"]
    assert len(flows) == 2  # h crosses from CPU:0 to CPU:1, y back to the fetch on CPU:0
    _check_perfetto(tl, len(md.step_stats.nodes), 2)


@pytest.mark.multiprocess
def test_full_trace_across_tasks_aligns_clocks() -> None:
    with LocalCluster(ps=1, workers=1) as c:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                w = af.Variable(np.ones((64, 64), np.float32), name="w")
                wsq = af.square(w, name="wsq")
            with af.device("/job:worker/task:0"):
                x = af.placeholder(af.float32, [4, 64], name="x")
                loss = af.reduce_mean(af.matmul(x, wsq), name="loss")
        with af.Session(c.target("worker", 0), graph=g) as s:
            s.run(w.initializer)
            md = af.RunMetadata()
            s.run(loss, {x: np.ones((4, 64), np.float32)}, options=FULL, run_metadata=md)
    by_dev = md.step_stats.by_device()
    assert {d.split("/")[1] for d in by_dev} == {"job:ps", "job:worker"}
    nodes = {n.node_name: n for n in md.step_stats.nodes}
    send = next(n for n in nodes.values() if n.op == "_Send")
    recv = next(n for n in nodes.values() if n.op == "_Recv" and "wsq" in n.node_name)
    assert send.device.startswith("/job:ps") and recv.device.startswith("/job:worker")
    # one clock: the Recv ends after its Send started, and the step spans well under a second
    assert recv.end_s >= send.start_s
    span = max(n.end_s for n in nodes.values()) - min(n.start_s for n in nodes.values())
    assert 0 <= span < 5.0
    assert nodes["wsq"].outputs == (("float32", (64, 64), 64 * 64 * 4),)
    tl = timeline.Timeline(md.step_stats, graph=g)
    doc = _check_chrome(tl, md, {op.type for op in g.get_operations()})
    flows = [e for e in doc["traceEvents"] if e["ph"] == "s"]
    assert len(flows) >= 1
    _check_perfetto(tl, len(md.step_stats.nodes), len(flows))


def _assert_complete(md: af.RunMetadata) -> list:
    """Every executed node's record has every field a top-level node's has."""
    nodes = md.step_stats.nodes
    for n in nodes:
        assert n.op, n  # the op type
        assert n.thread_id, n  # the lane
        assert n.end_s >= n.start_s > 0, n
        assert n.pool_bytes >= 0, n
        for o in n.outputs:  # (dtype, shape, nbytes) per output
            assert len(o) == 3 and isinstance(o[1], tuple) and o[2] >= 0, n
    return nodes


def test_full_trace_inside_while_and_cond_frames_is_complete() -> None:
    rng = np.random.default_rng()
    n_iter = int(rng.integers(3, 7))
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [4], name="x")
        # a loop the executor runs node by node (a cond inside its body), and a simple one
        # it fuses: both must trace full records
        _, y = af.while_loop(
            lambda i, v: i < n_iter,
            lambda i, v: (i + 1, af.cond(i < 2, lambda: v * 2.0, lambda: v + 1.0)),
            [af.constant(0), x], name="loop")
        _, z = af.while_loop(lambda i, v: i < n_iter, lambda i, v: (i + 1, v * 3.0),
                             [af.constant(0), x], name="simple")
        out = af.reduce_sum(y, name="out") + af.reduce_sum(z, name="out2")
    xv = rng.random(4).astype(np.float32)
    md = af.RunMetadata()
    with af.Session(graph=g) as s:
        got = s.run(out, {x: xv}, options=FULL, run_metadata=md)
    want = xv * 4.0 + (n_iter - 2)
    assert np.isclose(got, want.sum() + (xv * 3.0 ** n_iter).sum(), rtol=1e-4)
    nodes = _assert_complete(md)
    ops = {n.op for n in nodes}
    assert {"Enter", "Merge", "Switch", "NextIteration", "Exit", "Mul"} <= ops, ops
    # nodes in the frames ran once per iteration, each with its outputs' shapes
    merges = [n for n in nodes if n.op == "Merge" and n.node_name.startswith("loop/")]
    assert len(merges) >= n_iter and all(m.outputs for m in merges)
    muls = [n for n in nodes if n.op == "Mul" and n.node_name.startswith("simple/")]
    assert len(muls) == n_iter
    assert all(m.outputs[0][1:] == ((4,), 16) for m in muls)
    tl = timeline.Timeline(md.step_stats, graph=g)
    _check_chrome(tl, md, {op.type for op in g.get_operations()})
