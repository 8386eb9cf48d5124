"""Summaries as TF1 users write them, read back with TensorBoard's own EventAccumulator: scalar
values per step, histogram buckets, images, audio, text, the graph's node names and devices,
run metadata; names, tags, families and collections as in TF."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

import actorflow as af

ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _accumulate(logdir: Path) -> object:
    acc = ea_mod.EventAccumulator(str(logdir), size_guidance={
        "scalars": 0, "histograms": 0, "images": 0, "audio": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalar_histogram_image_audio_text_read_back(tmp_path: Path) -> None:
    rng = np.random.default_rng()
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [None], name="x")
        with af.name_scope("train"):
            loss = af.summary.scalar("loss", af.reduce_mean(x))
            hist = af.summary.histogram("values", x, family="dist")
        img = af.placeholder(af.float32, [2, 4, 5, 3])
        af.summary.image("pic", img, max_outputs=1)
        snd = af.placeholder(af.float32, [1, 800])
        af.summary.audio("sound", snd, sample_rate=8000)
        af.summary.text("notes", af.constant("hello **world**"))
        merged = af.summary.merge_all()
    assert loss.op.name == "train/loss" and hist.op.name == "train/dist/values"
    assert loss.dtype is af.string and merged.op.name == "Merge/MergeSummary"
    steps = {}
    pics = rng.random((2, 4, 5, 3)).astype(np.float32)
    clip = np.sin(np.arange(800) / 8.0).astype(np.float32)[None] * 0.5
    with af.Session(graph=g) as s, af.summary.FileWriter(str(tmp_path), g) as w:
        for step in range(3):
            v = rng.standard_normal(50).astype(np.float32) * (step + 1)
            steps[step] = v
            blob = s.run(merged, {x: v, img: pics, snd: clip})
            assert type(blob) is bytes
            w.add_summary(blob, global_step=step)
        assert w.get_logdir() == str(tmp_path)
    files = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = _accumulate(tmp_path)
    tags = acc.Tags()
    assert "train/loss" in tags["scalars"] and "dist/train/dist/values" in tags["histograms"]
    got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [st for st, _ in got] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in got], [steps[i].mean() for i in range(3)],
                               rtol=1e-5)
    h = acc.Histograms("dist/train/dist/values")[2].histogram_value
    assert h.num == 50 and sum(h.bucket) == 50
    np.testing.assert_allclose([h.min, h.max, h.sum], [steps[2].min(), steps[2].max(),
                                                       steps[2].sum()], rtol=1e-5)
    # each bucket counts the values below its limit and at or above the previous limit
    lo, v64 = -np.inf, steps[2].astype(np.float64)
    assert len(h.bucket) <= 2 * 50 + 1  # runs of empty buckets are collapsed, as TF does
    for limit, count in zip(h.bucket_limit, h.bucket, strict=True):
        assert count == np.sum((v64 >= lo) & (v64 < limit))
        lo = limit
    im = acc.Images("pic/image")[0]
    assert (im.height, im.width) == (4, 5)
    from PIL import Image
    decoded = np.asarray(Image.open(io.BytesIO(im.encoded_image_string)))
    want = pics[0].astype(np.float64) * (255.0 / pics[0].max())
    np.testing.assert_allclose(decoded, want, atol=1.0)
    au = acc.Audio("sound/audio/0")[0]
    with wave.open(io.BytesIO(au.encoded_audio_string)) as wf:
        assert (wf.getframerate(), wf.getnframes()) == (8000, 800)
        pcm = np.frombuffer(wf.readframes(800), "<i2")
    np.testing.assert_allclose(pcm / 32767.0, clip[0], atol=1e-4)
    assert "notes" in tags["tensors"]
    t = acc.Tensors("notes")[0].tensor_proto
    assert t.string_val == [b"hello **world**"]
    assert acc.SummaryMetadata("notes").plugin_data.plugin_name == "text"
    # the graph: node names with their scopes
    names = {n.name for n in acc.Graph().node}
    assert {"x", "train/loss", "train/dist/values", "Merge/MergeSummary"} <= names


def test_graph_devices_and_run_metadata_read_back(tmp_path: Path) -> None:
    g = af.Graph()
    with g.as_default():
        x = af.placeholder(af.float32, [3, 4], name="x")
        with af.name_scope("layer"), af.device("/cpu:1"):
            w = af.constant(np.ones((4, 2), np.float32), name="w")
            y = af.matmul(x, w, name="y")
        with af.device("/cpu:0"):
            z = af.reduce_sum(y, name="z")
    md = af.RunMetadata()
    with af.Session(graph=g, config=af.ConfigProto(device_count={"CPU": 2})) as s:
        s.run(z, {x: np.ones((3, 4), np.float32)},
              options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE), run_metadata=md)
    with af.summary.FileWriter(str(tmp_path)) as w:
        w.add_graph(g, placement=md.placement)
        w.add_run_metadata(md, "step0", global_step=0)
    acc = _accumulate(tmp_path)
    nodes = {n.name: n for n in acc.Graph().node}
    assert nodes["layer/y"].device.endswith("CPU:1") and nodes["layer/y"].op == "MatMul"
    assert list(nodes["layer/y"].input) == ["x", "layer/w"]
    assert nodes["z"].device.endswith("CPU:0")
    assert acc.Tags()["run_metadata"] == ["step0"]
    from tensorboard.compat.proto import config_pb2
    rm = config_pb2.RunMetadata.FromString(acc.RunMetadata("step0").SerializeToString())
    devs = {d.device: {n.node_name for n in d.node_stats} for d in rm.step_stats.dev_stats}
    assert any("layer/y" in nodes_ and d.endswith("CPU:1") for d, nodes_ in devs.items())
    assert all(n.all_end_rel_micros >= 0 for d in rm.step_stats.dev_stats
               for n in d.node_stats)


def test_names_collections_and_errors() -> None:
    g = af.Graph()
    with g.as_default():
        a = af.summary.scalar("a b", 1.0, collections=["mine"])
        b = af.summary.scalar("a b", 2.0)
        assert a.op.name == "a_b" and b.op.name == "a_b_1"
        assert g.get_collection("mine") == [a] and g.get_collection("summaries") == [b]
        with pytest.raises(af.InvalidArgumentError, match="needs a scalar"):
            af.summary.scalar("v", af.constant([1.0, 2.0]))
        with pytest.raises(af.InvalidArgumentError, match="channels"):
            af.summary.image("im", af.zeros([2, 3, 3, 2]))
        dup = af.summary.merge([b, af.summary.scalar("a b", 3.0, family=None, collections=[]),
                                b])
        assert af.summary.merge_all("nothing") is None
    with af.Session(graph=g) as s, pytest.raises(af.InvalidArgumentError,
                                                 match="Duplicate tag a_b"):
        s.run(dup)


def test_file_writer_flush_reopen_cache_and_session_log(tmp_path: Path) -> None:
    w = af.summary.FileWriter(str(tmp_path / "r"), max_queue=2, flush_secs=1000,
                              filename_suffix=".first")
    s = af.summary.Summary(value=[af.summary.Summary.Value(tag="t", simple_value=1.5)])
    for i in range(5):
        w.add_summary(s.SerializeToString(), i)
    w.add_session_log(af.summary.SessionLog(status=af.summary.SessionLog.START), 5)
    w.flush()  # everything queued is on disk now, without waiting for flush_secs
    acc = _accumulate(tmp_path / "r")
    assert [e.step for e in acc.Scalars("t")] == [0, 1, 2, 3, 4]
    w.close()
    with pytest.raises(af.InvalidArgumentError, match="closed"):
        w.add_summary(s)
    w.reopen()
    w.add_summary(s, 9)
    w.close()
    assert len(list((tmp_path / "r").glob("events.out.tfevents.*"))) == 2
    with pytest.raises(af.InvalidArgumentError, match="not a serialized Summary"):
        af.summary.FileWriter(str(tmp_path / "q")).add_summary(b"\xff\xff")
    c1 = af.summary.FileWriterCache.get(str(tmp_path / "c"))
    assert af.summary.FileWriterCache.get(str(tmp_path / "c")) is c1
    af.summary.FileWriterCache.clear()
    assert af.summary.FileWriterCache.get(str(tmp_path / "c")) is not c1
    af.summary.FileWriterCache.clear()
