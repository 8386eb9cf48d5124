"""`af.summary.tensor_summary` (any dtype, strings too) and `FileWriter.add_event`, read back
with TensorBoard's own EventAccumulator (issue 16, deliver 1: the two summary calls no other
test reads back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import actorflow as af

ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
tensor_util = pytest.importorskip("tensorboard.util.tensor_util")


def test_tensor_summary_and_a_raw_event_read_back(tmp_path: Path) -> None:
    rng = np.random.default_rng()
    want = rng.standard_normal((2, 3)).astype(np.float32)
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [2, 3], name="x")
        with af.name_scope("probe"):
            t = af.summary.tensor_summary("weights", x, summary_description="raw values")
        words = af.summary.tensor_summary("words", af.constant([b"a", b"bc"]), family="txt")
    assert t.op.name == "probe/weights" and words.op.name == "txt/words"  # tag: txt/txt/words
    with af.Session(graph=g) as s, af.summary.FileWriter(str(tmp_path)) as w:
        for step in (1, 2):
            w.add_summary(s.run(t, {x: want * step}), global_step=step)
        w.add_summary(s.run(words), global_step=3)
        raw = af.summary.Event(step=7)  # wall_time unset: the writer stamps it
        raw.summary.value.add(tag="raw/scalar", simple_value=2.5)
        w.add_event(raw)
    acc = ea_mod.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    events = acc.Tensors("probe/weights")
    assert [e.step for e in events] == [1, 2]
    for e in events:
        np.testing.assert_array_equal(tensor_util.make_ndarray(e.tensor_proto), want * e.step)
    assert acc.SummaryMetadata("probe/weights").summary_description == "raw values"
    [wd] = acc.Tensors("txt/txt/words")
    assert tensor_util.make_ndarray(wd.tensor_proto).tolist() == [b"a", b"bc"]
    [sc] = acc.Scalars("raw/scalar")
    assert (sc.step, sc.value) == (7, 2.5) and sc.wall_time > 0
