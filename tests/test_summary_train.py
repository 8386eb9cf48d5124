"""``actorflow train mlp --logdir D --trace T`` on a real local cluster: TensorBoard reads the
loss, accuracy, steps/s, per-PS bytes moved, weight histograms computed on the PS, the graph
with devices and the run metadata; the trace files parse (Chrome JSON, Perfetto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import cli

pytestmark = pytest.mark.multiprocess
ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_train_mlp_writes_tensorboard_logs_and_traces(tmp_path: Path) -> None:
    logs, traces = tmp_path / "logs", tmp_path / "traces"
    # the command's own entry point, in this process (one interpreter start fewer); one
    # worker (a daemon and a trainer process fewer), 16 steps: traces at steps 10-12
    assert cli.main(["train", "mlp", "--workers", "1", "--steps", "16", "--logdir", str(logs),
                     "--trace", str(traces)]) == 0
    acc = ea_mod.EventAccumulator(str(logs), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("eval/loss", "eval/accuracy", "train/steps_per_sec", "ps/task0/bytes_moved"):
        assert tag in tags["scalars"], tags
    steps = [e.step for e in acc.Scalars("eval/accuracy")]
    assert steps == sorted(steps) and steps[-1] == 16  # the global step: 1 worker x 16
    assert acc.Scalars("train/steps_per_sec")[-1].value > 0
    moved = [e.value for e in acc.Scalars("ps/task0/bytes_moved")]
    assert moved == sorted(moved) and moved[-1] > moved[0] > 0
    assert "mlp/layer0/W/value" in tags["histograms"]
    assert acc.Histograms("mlp/layer0/W/value")[-1].histogram_value.num == 64 * 64
    devices = {n.name: n.device for n in acc.Graph().node}
    assert devices["mlp/layer0/W/value"].startswith("/job:ps")
    assert tags["run_metadata"] == ["summary_step"]
    files = sorted(p.name for p in traces.iterdir())
    assert files == [f"trainer0_step{i}.{ext}" for i in (10, 11, 12) for ext in
                     ("json", "pftrace")]
    doc = json.loads((traces / "trainer0_step10.json").read_text())
    ops = {e["name"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert {"MatMul", "_Send", "_Recv"} <= ops
    procs = {e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"}
    assert any("/job:ps" in p for p in procs) and any("/job:worker" in p for p in procs)
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace
    assert len(Trace.FromString((traces / "trainer0_step10.pftrace").read_bytes()).packet) > 10
