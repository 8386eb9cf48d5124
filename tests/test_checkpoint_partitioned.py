"""Partitioned variables in checkpoints, as TensorFlow stores them: ONE entry per full tensor
(its BundleEntryProto lists a TensorSliceProto per part), the parts' bytes under slice keys;
slots of a partitioned variable are partitioned the same way ("emb/table/Adam"). A checkpoint
written by a TF1 program (tests/data/tf_part_ckpt, fixed_size_partitioner) restores into any
partitioning. (That TensorFlow reads ours as full tensors and restores them into its own,
different, parts is checked in test_checkpoint_format.test_tensorflow_reads_what_actorflow_writes,
in the same TensorFlow process as the rest of that direction.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import actorflow as af
from devices.errors import InvalidArgumentError
from devices.tensor_bundle import BundleReader

DATA = Path(__file__).parent / "data" / "tf_part_ckpt"
FIXTURE = str(DATA / "model.ckpt-3")
EXPECTED = {k.replace("__", "/"): v for k, v in np.load(DATA / "expected.npz").items()}
SHAPES = {"emb/table": ([7, 3], 0), "dense/w": ([3, 5], 1)}


def _graph(parts: dict[str, int], adam: bool = True) -> tuple[af.Graph, dict[str, object]]:
    """emb/table and dense/w, each in `parts[name]` parts (1: an unpartitioned variable),
    with Adam's slots when `adam`."""
    g = af.Graph()
    out: dict[str, object] = {}
    with g.as_default():
        for full, (shape, axis) in SHAPES.items():
            scope, name = full.split("/")
            with af.variable_scope(scope):
                n = parts[full]
                out[full] = af.get_variable(
                    name, shape, initializer=af.zeros_initializer(),
                    partitioner=af.fixed_size_partitioner(n, axis) if n > 1 else None)
        if adam:
            step = af.train.get_or_create_global_step()
            tensors = [af.convert_to_tensor(v) for v in out.values()]  # type: ignore[arg-type]
            loss = af.reduce_sum(tensors[0]) + af.reduce_sum(af.square(tensors[1]))
            out["train"] = af.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
            out["global_step"] = step
    return g, out


def _full(s: af.Session, v: object) -> np.ndarray:
    return s.run(af.convert_to_tensor(v))  # type: ignore[arg-type]


def test_tensorflows_partitioned_checkpoint_restores_into_any_partitioning() -> None:
    r = BundleReader(FIXTURE)
    assert len(r.entries[b"emb/table/Adam"].slices) == 3  # TF stores the slots sliced too
    assert len(r.entries[b"dense/w"].slices) == 2
    for parts in ({"emb/table": 3, "dense/w": 2}, {"emb/table": 2, "dense/w": 3},
                  {"emb/table": 1, "dense/w": 1}):
        g, vs = _graph(parts)
        with g.as_default():
            saver = af.train.Saver()
            with af.Session(graph=g) as s:
                s.run(af.global_variables_initializer())
                saver.restore(s, FIXTURE)
                for name in SHAPES:
                    np.testing.assert_array_equal(_full(s, vs[name]), EXPECTED[name])
                assert s.run(vs["global_step"]) == 3
                opt_slots = {v.op.name: s.run(v) for v in af.global_variables()
                             if v.op.name.endswith(("/Adam", "/Adam_1"))}
        if parts["emb/table"] == 1:
            np.testing.assert_array_equal(opt_slots["emb/table/Adam"], EXPECTED["emb/table/Adam"])
        else:  # each part's slot holds its rows of TF's full slot
            n = parts["emb/table"]
            rows = np.array_split(np.arange(7), n)
            for i in range(n):
                np.testing.assert_array_equal(opt_slots[f"emb/table/part_{i}/Adam_1"],
                                              EXPECTED["emb/table/Adam_1"][rows[i]])


def test_partitioned_variable_saves_as_one_tensor_with_slices(tmp_path: Path) -> None:
    g, vs = _graph({"emb/table": 3, "dense/w": 2})
    rng = np.random.default_rng()
    with g.as_default():
        saver = af.train.Saver(sharded=True)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            for name in SHAPES:
                for part in vs[name]:  # type: ignore[attr-defined]
                    part.load(rng.standard_normal(part.shape).astype(np.float32), s)
            s.run(vs["train"])
            want = {name: _full(s, vs[name]) for name in SHAPES}
            slots = {v.op.name: s.run(v) for v in af.global_variables()}
            path = saver.save(s, str(tmp_path / "model.ckpt"), global_step=vs["global_step"])
    r = BundleReader(path)
    assert sorted(r.names()) == ["beta1_power", "beta2_power", "dense/w", "dense/w/Adam",
                                 "dense/w/Adam_1", "emb/table", "emb/table/Adam",
                                 "emb/table/Adam_1", "global_step"]
    assert [len(r.entries[k].slices) for k in (b"emb/table", b"emb/table/Adam_1",
                                               b"dense/w")] == [3, 3, 2]
    for name in SHAPES:
        np.testing.assert_array_equal(r.read(name), want[name])
    np.testing.assert_array_equal(
        r.read("dense/w/Adam"),
        np.concatenate([slots["dense/w/part_0/Adam"], slots["dense/w/part_1/Adam"]], 1))
    # ... and restores into another partitioning (and unpartitioned) with equal values
    for parts in ({"emb/table": 2, "dense/w": 1}, {"emb/table": 1, "dense/w": 5}):
        g2, vs2 = _graph(parts)
        with g2.as_default():
            saver2 = af.train.Saver()
            with af.Session(graph=g2) as s:
                s.run(af.global_variables_initializer())
                saver2.restore(s, path)
                for name in SHAPES:
                    np.testing.assert_array_equal(_full(s, vs2[name]), want[name])


def test_dict_var_list_saves_a_partitioned_variable_under_its_key(tmp_path: Path) -> None:
    g, vs = _graph({"emb/table": 3, "dense/w": 2}, adam=False)
    with g.as_default():
        saver = af.train.Saver({"renamed": vs["emb/table"]})
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            vals = np.arange(21, dtype=np.float32).reshape(7, 3)
            for part, rows in zip(vs["emb/table"], np.array_split(vals, 3), strict=True):  # type: ignore[call-overload]
                part.load(rows, s)
            path = saver.save(s, str(tmp_path / "m"))
        with pytest.raises(InvalidArgumentError, match="same name: emb/table"):
            af.train.Saver([vs["emb/table"], list(vs["emb/table"])[0]])  # type: ignore[call-overload]
    r = BundleReader(path)
    assert r.names() == ["renamed"]
    np.testing.assert_array_equal(r.read("renamed"), vals)


def test_init_from_checkpoint_fills_partitioned_variables_by_name_and_scope() -> None:
    g = af.Graph()
    with g.as_default():
        with af.variable_scope("new"):  # 2 parts, from TF's 3-part "emb/table"
            t = af.get_variable("table", [7, 3], partitioner=af.fixed_size_partitioner(2))
        with af.variable_scope("dense"):  # 3 parts along axis 1, from TF's 2
            w = af.get_variable("w", [3, 5], partitioner=af.fixed_size_partitioner(3, 1))
        af.train.init_from_checkpoint(str(DATA), {"emb/table": "new/table", "dense/": "dense/"})
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            np.testing.assert_array_equal(_full(s, t), EXPECTED["emb/table"])
            np.testing.assert_array_equal(_full(s, w), EXPECTED["dense/w"])
    g = af.Graph()
    with g.as_default():
        t = af.get_variable("t", [7, 3], partitioner=af.fixed_size_partitioner(4))
        af.train.init_from_checkpoint(str(DATA), {"emb/table/Adam": t})
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            np.testing.assert_array_equal(_full(s, t), EXPECTED["emb/table/Adam"])


def test_parts_on_two_devices_save_as_two_shards_of_one_tensor(tmp_path: Path) -> None:
    """Saver(sharded=True) with a variable's parts on two devices: each device writes its
    parts to its own data file, and the merged index holds ONE entry listing both shards'
    slices (what TF's MergeV2Checkpoints makes of a partitioned variable over PS tasks)."""
    g = af.Graph()
    vals = np.random.default_rng().standard_normal((6, 2)).astype(np.float32)
    with g.as_default():
        with af.device(lambda op: f"/cpu:{int(op.name.split('part_')[1][0]) % 2}"
                       if "part_" in op.name else "/cpu:0"):
            t = af.get_variable("t", [6, 2], partitioner=af.fixed_size_partitioner(4))
        saver = af.train.Saver(sharded=True)
        config = af.ConfigProto(device_count={"CPU": 2})
        with af.Session(graph=g, config=config) as s:
            s.run(af.global_variables_initializer())
            for part, rows in zip(t, np.array_split(vals, 4), strict=True):  # type: ignore[call-overload]
                part.load(rows, s)
            assert len({p.device for p in t}) == 2  # type: ignore[attr-defined]
            path = saver.save(s, str(tmp_path / "m"))
    r = BundleReader(path)
    assert r.num_shards == 2 and r.names() == ["t"]
    assert sorted(r.entries[k].shard_id for k in r.entries if k.startswith(b"\x00")) == [
        0, 0, 1, 1]
    assert len(r.entries[b"t"].slices) == 4
    np.testing.assert_array_equal(r.read("t"), vals)
