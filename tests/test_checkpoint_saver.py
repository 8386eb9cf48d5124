"""af.train.Saver with TF1 semantics: save/restore, max_to_keep, the `checkpoint` state file,
var_list as a dict, readers, init_from_checkpoint; a save killed midway leaves the previous
checkpoint as latest; on real clusters, a sharded save over 2 PS tasks restores onto 1 and 3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import actorflow as af
from actorflow.cluster import child_env
from devices.errors import DataLossError, NotFoundError
from tests.test_checkpoint_format import EXPECTED, FIXTURE


def _model(g: af.Graph) -> dict[str, af.Variable]:
    with g.as_default():
        return {"w": af.Variable(np.zeros((3, 2), np.float32), name="w"),
                "b": af.Variable(np.zeros(2, np.float64), name="scope/b"),
                "step": af.train.get_or_create_global_step()}


def test_save_restore_max_to_keep_and_state_file(tmp_path: Path) -> None:
    g = af.Graph()
    vs = _model(g)
    rng = np.random.default_rng()
    with g.as_default():
        saver = af.train.Saver(max_to_keep=2)
        inc = vs["step"].assign_add(1)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            saved = {}
            for _ in range(3):
                s.run(inc)
                w = rng.standard_normal((3, 2)).astype(np.float32)
                vs["w"].load(w, s)
                path = saver.save(s, str(tmp_path / "model.ckpt"), global_step=vs["step"])
                saved[path] = w
            assert list(saved) == [str(tmp_path / f"model.ckpt-{i}") for i in (1, 2, 3)]
            assert saver.last_checkpoints == list(saved)[1:]
            assert not (tmp_path / "model.ckpt-1.index").exists()  # max_to_keep deleted it
            state = (tmp_path / "checkpoint").read_text().splitlines()
            assert state[:3] == ['model_checkpoint_path: "model.ckpt-3"',
                                 'all_model_checkpoint_paths: "model.ckpt-2"',
                                 'all_model_checkpoint_paths: "model.ckpt-3"']
            assert af.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-3")
            st = af.train.get_checkpoint_state(str(tmp_path))
            assert st.all_model_checkpoint_paths == list(saved)[1:]
            vs["w"].load(np.zeros((3, 2), np.float32), s)
            saver.restore(s, str(tmp_path / "model.ckpt-2"))
            np.testing.assert_array_equal(s.run(vs["w"]), saved[str(tmp_path / "model.ckpt-2")])
            assert s.run(vs["step"]) == 2
            with pytest.raises(NotFoundError, match="not a valid checkpoint"):
                saver.restore(s, str(tmp_path / "model.ckpt-1"))
    r = af.train.load_checkpoint(str(tmp_path))
    assert r.get_variable_to_shape_map() == {"w": [3, 2], "scope/b": [2], "global_step": []}
    assert r.get_variable_to_dtype_map()["scope/b"] is af.float64
    assert r.has_tensor("w") and not r.has_tensor("w:0")
    assert af.train.list_variables(str(tmp_path)) == [("global_step", []), ("scope/b", [2]),
                                                       ("w", [3, 2])]


def test_var_list_dict_renames_and_restores_tensorflows_fixture() -> None:
    g = af.Graph()
    with g.as_default():
        mine = {n: af.Variable(np.zeros_like(v), name="mine/" + n) for n, v in EXPECTED.items()}
        saver = af.train.Saver(var_list=mine)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            saver.restore(s, FIXTURE)
            got = s.run(mine)
    for n, v in EXPECTED.items():
        assert got[n].dtype == v.dtype and np.array_equal(got[n], v), n


def test_keep_checkpoint_every_n_hours_keeps_old_ones(tmp_path: Path) -> None:
    g = af.Graph()
    _model(g)
    with g.as_default():
        saver = af.train.Saver(max_to_keep=1, keep_checkpoint_every_n_hours=1e-9)
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            for i in range(3):
                saver.save(s, str(tmp_path / "m"), global_step=i)
    assert saver.last_checkpoints == [str(tmp_path / "m-2")]
    assert (tmp_path / "m-0.index").exists() and (tmp_path / "m-1.index").exists()


def test_init_from_checkpoint_sets_initializers() -> None:
    g = af.Graph()
    with g.as_default():
        with af.variable_scope("net"):
            w = af.Variable(np.zeros((3, 2), np.float32), name="w")
        other = af.Variable(np.ones(4, np.float32), name="other")
        af.train.init_from_checkpoint(FIXTURE, {"w": "net/w"})
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            np.testing.assert_array_equal(s.run(w), EXPECTED["w"])
            np.testing.assert_array_equal(s.run(other), np.ones(4, np.float32))


def test_restore_of_corrupt_checkpoint_raises_data_loss(tmp_path: Path) -> None:
    g = af.Graph()
    vs = _model(g)
    with g.as_default():
        saver = af.train.Saver()
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            vs["w"].load(np.full((3, 2), 5, np.float32), s)
            p = saver.save(s, str(tmp_path / "m"))
            _flip(p, 2)
            vs["w"].load(np.full((3, 2), 6, np.float32), s)
            with pytest.raises(DataLossError, match="checksum mismatch for tensor"):
                saver.restore(s, p)
            # restored in place (the variables were initialized), but every piece is
            # checked before any is written: nothing changed
            assert s.run(vs["step"]) == 0
            np.testing.assert_array_equal(s.run(vs["w"]), np.full((3, 2), 6, np.float32))
            vs["step"].load(3, s)
            good = saver.save(s, str(tmp_path / "good"))
            s.run(af.global_variables_initializer())
            saver.restore(s, good)
            assert s.run(vs["step"]) == 3
            np.testing.assert_array_equal(s.run(vs["w"]), np.full((3, 2), 6, np.float32))


def _flip(prefix: str, at: int) -> None:
    """Flip the bits of one byte of a checkpoint's (only) data file."""
    data = Path(prefix + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[at] ^= 0xFF
    data.write_bytes(bytes(raw))


@pytest.mark.parametrize("in_place", [True, False])
def test_restore_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   in_place: bool) -> None:
    """A bad last tensor ('w'): the ones before it, which a restore would have written
    first, keep their values, whether the variables are read in place or (over
    IN_PLACE_MAX_BYTES, here: all) into new buffers verified then adopted; a sound
    checkpoint then restores every variable."""
    if not in_place:
        import devices.kernels.io as io_kernels
        monkeypatch.setattr(io_kernels, "IN_PLACE_MAX_BYTES", 0)
    g = af.Graph()
    vs = _model(g)
    with g.as_default():
        saver = af.train.Saver()
        with af.Session(graph=g) as s:
            s.run(af.global_variables_initializer())
            vs["w"].load(np.full((3, 2), 5, np.float32), s)
            vs["step"].load(7, s)
            good = saver.save(s, str(tmp_path / "good"))
            bad = saver.save(s, str(tmp_path / "bad"))
            vs["w"].load(np.zeros((3, 2), np.float32), s)
            saver.restore(s, good)
            np.testing.assert_array_equal(s.run(vs["w"]), np.full((3, 2), 5, np.float32))
            _flip(bad, -3)  # the last tensor in the file: 'w'
            vs["step"].load(1, s)
            vs["w"].load(np.zeros((3, 2), np.float32), s)
            with pytest.raises(DataLossError, match="checksum mismatch for tensor 'w'"):
                saver.restore(s, bad)
            assert s.run(vs["step"]) == 1  # read fine, but not written: nothing changed
            np.testing.assert_array_equal(s.run(vs["w"]), np.zeros((3, 2), np.float32))
            saver.restore(s, good)
            assert s.run(vs["step"]) == 7
            np.testing.assert_array_equal(s.run(vs["w"]), np.full((3, 2), 5, np.float32))


KILLED_SAVER = textwrap.dedent(r"""
    import sys, numpy as np, actorflow as af
    d = sys.argv[1]
    big = af.Variable(np.zeros(1 << 20, np.float32), name="big")
    step = af.train.get_or_create_global_step()
    saver = af.train.Saver()
    with af.Session() as s:
        s.run(af.global_variables_initializer())
        big.load(np.full(1 << 20, 1, np.float32), s); step.load(1, s)
        saver.save(s, d + "/model.ckpt", global_step=step)
        big.load(np.full(1 << 20, 2, np.float32), s); step.load(2, s)
        print("SAVING", flush=True)
        for _ in range(1000):   # killed during one of these saves
            saver.save(s, d + "/model.ckpt", global_step=step, write_state=False)
""")


@pytest.mark.multiprocess
def test_a_save_killed_midway_leaves_the_previous_checkpoint_latest(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(tmp_path)],
                            stdout=subprocess.PIPE, env=child_env(), cwd=os.getcwd())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"SAVING"
        deadline = time.monotonic() + 60
        while not any("_temp_" in n for n in os.listdir(tmp_path)):  # a part being written
            assert time.monotonic() < deadline and proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any("_temp_" in n for n in os.listdir(tmp_path))  # it died mid-save
    latest = af.train.latest_checkpoint(str(tmp_path))
    assert latest == str(tmp_path / "model.ckpt-1")
    r = af.train.load_checkpoint(latest)
    assert r.get_tensor("global_step") == 1
    assert np.all(r.get_tensor("big") == 1)


SHARDED_VALUES = {f"layer{i}/w": np.random.default_rng(i).standard_normal((30, 20)).astype(
    np.float32) for i in range(5)} | {"global_step": np.int64(42), "counts": np.arange(
        7, dtype=np.int64)}


def _ps_graph(nps: int) -> tuple[af.Graph, dict, dict, af.Operation, af.Operation, af.Saver]:
    g = af.Graph()
    with g.as_default():
        vs, feeds = {}, {}
        for i, (n, v) in enumerate(sorted(SHARDED_VALUES.items())):
            with af.device(f"/job:ps/task:{i % nps}"):
                vs[n] = af.Variable(np.zeros_like(v), name=n)
            feeds[n] = af.placeholder(af.as_dtype(v.dtype), np.shape(v))
        assign = af.group(*[vs[n].assign(feeds[n]) for n in vs])
        init = af.global_variables_initializer()
        saver = af.train.Saver(sharded=True)
    return g, vs, feeds, assign, init, saver


@pytest.mark.multiprocess
@pytest.mark.slow
def test_sharded_save_on_two_ps_restores_onto_one_and_three(tmp_path: Path) -> None:
    """One LocalCluster of 3 PS tasks serves all three programs: the save places its variables
    on tasks 0-1 (2 shards), the restores on task 0 only and on tasks 0-2. Each restoring
    program initializes its variables to zeros first, so only the restore can bring back the
    saved values (a variable on a task the save used is overwritten, one on another is new)."""
    with af.LocalCluster(ps=3, workers=1) as c:
        g, vs, feeds, assign, init, saver = _ps_graph(2)
        assert sorted({op.device for op in g.get_operations() if op.type == "SaveV2"}) == [
            "/job:ps/task:0", "/job:ps/task:1"]
        with af.Session(c.target("worker", 0), graph=g) as s:
            s.run(init)
            s.run(assign, {feeds[n]: v for n, v in SHARDED_VALUES.items()})
            path = saver.save(s, str(tmp_path / "model.ckpt"), global_step=vs["global_step"])
        assert path.endswith("model.ckpt-42")
        assert sorted(os.listdir(tmp_path)) == [
            "checkpoint", "model.ckpt-42.data-00000-of-00002",
            "model.ckpt-42.data-00001-of-00002", "model.ckpt-42.index",
            "model.ckpt-42.meta"]
        for nps in (1, 3):
            g, vs, feeds, assign, init, saver = _ps_graph(nps)
            assert sorted({op.device for op in g.get_operations()
                           if op.type == "RestoreVariablesV2"}) == [
                f"/job:ps/task:{k}" for k in range(nps)]
            with af.Session(c.target("worker", 0), graph=g) as s:
                s.run(init)
                assert not np.any(s.run(vs["layer0/w"]))
                saver.restore(s, af.train.latest_checkpoint(str(tmp_path)))
                got = s.run(vs)
            for n, v in SHARDED_VALUES.items():
                assert np.array_equal(got[n], v), (nps, n)
