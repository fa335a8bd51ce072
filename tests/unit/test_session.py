"""PipelineSession: staging, save, checkpoint, exact resume, memory budget, atomicity and logging."""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pytest

from h5stream.errors import TargetExistsError, UnsafeNameError, WriteError
from h5stream.staging import FileArray
from hdmea.errors import CheckpointError, SessionError
from hdmea.io import hdf5_store as store
from hdmea.pipeline import PipelineSession, SaveState, create_session
from hdmea.session.target import open_target

# the repository root, so that tests.filecompare imports without a conftest
from tests.filecompare import assert_files_equal


def _units(n=3, spikes=20, seed=0):
    rng = np.random.default_rng(seed)
    return {f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, spikes)).astype(np.uint64),
                              "waveform": rng.random(30).astype(np.float32), "row": i, "col": i + 1,
                              "global_id": i} for i in range(n)}


def _fill(session_or_path, session=None, *, create=True):
    """The same content through a step target: session mode or immediate mode."""
    with open_target(session_or_path, session, step="load_recording", create=create and session is None,
                     dataset_id="rec") as t:
        t.add_units(_units())
        t.add_metadata({"sampling_rate": 20000.0, "sys": {1: "a", "name": "Zoë"}, "tags": ("x", 2)})
        t.add_stimulus(light_reference={"raw": np.linspace(0, 1, 9)}, frame_times={"default": np.arange(9)},
                       section_times={"movie": [[0, 4]]})
        t.mark_step_complete()
    with open_target(session_or_path, session, step="extract_features") as t:
        for uid in t.unit_ids():
            t.add_feature(uid, "resp", {"trace": np.arange(4.0), "peak": 1.5, "fit": {"k": 2}},
                          {"version": "1", "params_hash": "h", "extracted_at": "now"})
        t.add_warning("unit_002 fires little")
        t.mark_step_complete()


def test_save_state_and_properties(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "r.h5")
    assert isinstance(s, PipelineSession)
    assert s.save_state is SaveState.DEFERRED and s.is_deferred and not s.is_saved
    assert s.unit_count == 0
    s.add_units(_units(4))
    assert s.unit_count == 4
    s.save()
    assert s.save_state is SaveState.SAVED and s.is_saved and not s.is_deferred
    s.add_metadata({"late": 1})  # anything added after a save makes the session deferred again
    assert s.is_deferred


@pytest.mark.parametrize("bad", ["", "   ", None, 5, "a\x00b"])
def test_dataset_id_validated(bad):
    with pytest.raises((ValueError, TypeError)):
        PipelineSession(bad)


def test_memory_limit_parsing():
    assert PipelineSession("r", memory_limit="64 MB").memory_limit == 64_000_000
    assert PipelineSession("r", memory_limit="1GiB").memory_limit == 2**30
    assert PipelineSession("r", memory_limit=1234).memory_limit == 1234
    with pytest.raises(ValueError):
        PipelineSession("r", memory_limit="lots")


def test_memory_estimate_counts_everything_deeply():
    s = create_session("rec")
    base = s.staged_bytes
    s.add_units(_units(2, spikes=1000))
    arrays = 2 * (1000 * 8 + 30 * 4)
    assert arrays <= s.staged_bytes - base < arrays + 4096
    deep = np.zeros(250_000)  # 2 MB deep inside a nested feature
    before = s.staged_bytes
    s.add_feature("unit_000", "nested", {"a": {"b": {"c": {"d": deep}}}}, {})
    assert deep.nbytes <= s.staged_bytes - before < deep.nbytes + 4096
    assert s.memory_estimate_gb == pytest.approx(s.staged_bytes / 2**30)


def test_deferred_save_equals_immediate(tmp_path):
    _fill(tmp_path / "immediate.h5")
    s = create_session("rec", hdf5_path=tmp_path / "deferred.h5")
    _fill(None, s)
    assert not (tmp_path / "deferred.h5").exists()  # nothing written before save()
    assert s.save() == tmp_path / "deferred.h5"
    assert_files_equal(tmp_path / "immediate.h5", tmp_path / "deferred.h5")
    assert s.completed_steps == ["load_recording", "extract_features"]
    assert s.warnings == ["unit_002 fires little"]


def test_save_needs_a_path():
    s = create_session("rec", output_dir=None)
    with pytest.raises(SessionError, match="hdf5_path"):
        s.save()


def test_save_without_a_path_goes_to_output_dir(tmp_path):
    # the original pipeline's default: <output_dir>/<dataset_id>.h5, output_dir "artifacts"
    s = create_session("rec", output_dir=tmp_path / "artifacts")
    s.add_units(_units(1))
    assert s.save() == tmp_path / "artifacts" / "rec.h5"
    s.close()


def test_save_refuses_to_overwrite(tmp_path):
    target = tmp_path / "r.h5"
    s = create_session("rec", hdf5_path=target)
    s.add_units(_units(1))
    s.save()
    s.add_units(_units(2))
    with pytest.raises(FileExistsError) as info:
        s.save()
    assert isinstance(info.value, TargetExistsError) and "overwrite=True" in str(info.value)
    assert s.is_deferred
    s.save(overwrite=True)
    with h5py.File(target, "r") as f:
        assert len(f["units"]) == 2


def test_ensure_saved(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "r.h5")
    s.add_units(_units(1))
    assert s.ensure_saved() == tmp_path / "r.h5" and s.is_saved
    mtime = os.stat(tmp_path / "r.h5").st_mtime_ns
    assert s.ensure_saved() == tmp_path / "r.h5"  # nothing new: no write
    assert os.stat(tmp_path / "r.h5").st_mtime_ns == mtime


def test_checkpoint_is_independent_and_session_stays_deferred(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "final.h5")
    _fill(None, s)
    ckpt = s.checkpoint(tmp_path / "ckpt.h5", checkpoint_name="after_features")
    assert s.is_deferred and not (tmp_path / "final.h5").exists()
    s.add_metadata({"after": "checkpoint"})
    with h5py.File(ckpt, "r") as f:
        assert "after" not in f["metadata"]
        assert f["pipeline/session_info"].attrs["checkpoint_name"] == "after_features"
    with pytest.raises(FileExistsError):
        s.checkpoint(ckpt, overwrite=False)
    s.checkpoint(ckpt)  # the original's default: an earlier checkpoint is replaced
    with h5py.File(ckpt, "r") as f:
        assert f["metadata/after"][()] in (b"checkpoint", "checkpoint")  # 0-d, as the original's session mode
    with pytest.raises(CheckpointError):
        s.checkpoint(tmp_path / "final.h5")


def test_load_resumes_exactly(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "final.h5")
    _fill(None, s)
    s.add_metadata({"ints": {1: "one", 2: [1, 2.5, None]}, "flag": False, "count": np.int32(7)})
    s.checkpoint(tmp_path / "ckpt.h5")
    r = PipelineSession.load(tmp_path / "ckpt.h5")
    assert r.dataset_id == "rec" and r.hdf5_path == tmp_path / "final.h5"
    assert r.completed_steps == s.completed_steps and r.warnings == s.warnings
    assert r.checkpoint_name == "ckpt"
    meta = r.metadata
    assert meta["sys"] == {1: "a", "name": "Zoë"} and type(meta["sys"]["name"]) is str
    assert meta["ints"] == {1: "one", 2: [1, 2.5, None]} and all(type(k) is int for k in meta["ints"])
    assert meta["tags"] == ("x", 2) and meta["flag"] is False
    assert type(meta["count"]) is np.int32 and meta["count"] == 7
    for uid, unit in s.units.items():
        back = r.units[uid]
        assert back["spike_times"].dtype == np.uint64
        np.testing.assert_array_equal(back["spike_times"], unit["spike_times"])
        assert back["waveform"].dtype == np.float32
        assert back["row"] == unit["row"] and type(back["row"]) is int
        assert back["features"]["resp"]["fit"] == {"k": 2}
    r.save()
    s.save(tmp_path / "direct.h5")
    assert_files_equal(tmp_path / "final.h5", tmp_path / "direct.h5")


def test_load_is_lazy(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "final.h5")
    s.add_units(_units(3, spikes=5000))
    s.checkpoint(tmp_path / "ckpt.h5")
    r = PipelineSession.load(tmp_path / "ckpt.h5")
    node = r.tree.node(["units", "unit_001", "spike_times"])
    assert isinstance(node.data, FileArray)  # 40 kB: not read yet
    # arrays of at most EAGER_LIMIT bytes (the 30-sample waveforms) are read, and checked, at once
    assert isinstance(r.tree.node(["units", "unit_001", "waveform"]).data, np.ndarray)
    assert r.resident_bytes == 3 * 30 * np.dtype(np.float32).itemsize
    np.testing.assert_array_equal(r.get("units/unit_001/spike_times"), s.get("units/unit_001/spike_times"))


def test_load_refuses_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        PipelineSession.load(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk" * 100)
    with pytest.raises(CheckpointError, match="junk.h5"):
        PipelineSession.load(tmp_path / "junk.h5")


def test_failed_save_keeps_earlier_file_and_state(tmp_path, monkeypatch):
    target = tmp_path / "r.h5"
    s = create_session("rec", hdf5_path=target)
    s.add_units(_units(2))
    s.save()
    before = target.read_bytes()
    s.add_units(_units(5, seed=3))

    calls = {"n": 0}

    def failing_version(real):
        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 4:
                raise OSError(28, "No space left on device")
            return real(*args, **kwargs)
        return failing

    # Both writer paths (direct library calls and h5py's wrappers) fail the same way.
    from h5stream.tree import write as tree_write

    for name in ("_native_node", "_wrapped_node"):
        monkeypatch.setattr(tree_write, name, failing_version(getattr(tree_write, name)))
    with pytest.raises(WriteError, match="No space left"):
        s.save(overwrite=True)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert s.is_deferred  # never marked saved unless its file is complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
    s.save(overwrite=True)
    with h5py.File(target, "r") as f:
        assert len(f["units"]) == 5


def test_spill_beyond_memory_limit_and_save_renames_the_spill_file(tmp_path):
    target = tmp_path / "r.h5"
    s = create_session("rec", hdf5_path=target, memory_limit=100_000)
    units = _units(20, spikes=2000)  # 16 kB of spikes per unit: most spill
    s.add_units(units)
    assert s.resident_bytes <= 100_000
    assert s.spilled_bytes > 0
    spill = s.spill_path
    assert spill.parent == tmp_path and spill.name.startswith("r.h5.partial-")
    inode = os.stat(spill).st_ino
    np.testing.assert_array_equal(s.get("units/unit_019/spike_times"), units["unit_019"]["spike_times"])
    s.save()
    assert os.stat(target).st_ino == inode  # the spill file became the target: nothing was copied
    assert not spill.exists()
    with h5py.File(target, "r") as f:
        assert "__h5stream_staging__" not in f
        for uid, data in units.items():
            np.testing.assert_array_equal(f["units"][uid]["spike_times"][()], data["spike_times"])
    # The session goes on after a save: its arrays now read from the saved file.
    np.testing.assert_array_equal(s.get("units/unit_005/spike_times"), units["unit_005"]["spike_times"])


def test_spilled_session_equals_unlimited_session(tmp_path):
    limited = create_session("rec", hdf5_path=tmp_path / "limited.h5", memory_limit=300)
    unlimited = create_session("rec", hdf5_path=tmp_path / "unlimited.h5")
    for s in (limited, unlimited):
        _fill(None, s)
    assert limited.spilled_bytes > 0
    limited.checkpoint(tmp_path / "limited_ckpt.h5")
    limited.save()
    unlimited.save()
    assert_files_equal(tmp_path / "limited.h5", tmp_path / "unlimited.h5")
    assert_files_equal(tmp_path / "limited_ckpt.h5", tmp_path / "unlimited.h5",
                       ignore_attrs=store.TIMESTAMP_ATTRS | {"checkpoint_name", "target_path", "memory_limit"})


def test_spill_then_save_elsewhere_copies(tmp_path):
    (tmp_path / "other").mkdir()
    s = create_session("rec", hdf5_path=tmp_path / "r.h5", memory_limit=1_000)
    units = _units(4, spikes=500)
    s.add_units(units)
    assert s.spilled_bytes > 0
    s.save(tmp_path / "other" / "r.h5")
    assert not any(".partial-" in p.name for p in tmp_path.iterdir())
    with h5py.File(tmp_path / "other" / "r.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_003/spike_times"][()], units["unit_003"]["spike_times"])


def test_replacing_staged_values_releases_memory():
    s = create_session("rec")
    s.add_units(_units(1, spikes=1000))
    resident = s.resident_bytes
    s.add_units(_units(1, spikes=10))
    assert s.resident_bytes < resident


def test_logging_of_save_checkpoint_and_size(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hdmea.session.session")
    s = create_session("rec", hdf5_path=tmp_path / "r.h5", memory_warning=10_000)
    s.add_units(_units(3, spikes=1000))
    s.checkpoint(tmp_path / "c.h5")
    s.save()
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "hdmea.session.session"]
    assert any(level == logging.WARNING and "GiB of staged data" in text for level, text in records)
    assert any("checkpointed to" in text and "c.h5" in text for _, text in records)
    assert any("saved to" in text and "r.h5" in text for _, text in records)


def test_session_paths_refuse_hostile_names():
    s = create_session("rec")
    s.add_units(_units(1))
    for bad in ["units/../x", "units//x/.", "__h5stream_staging__/0", "units/unit_000/__attr__x"]:
        with pytest.raises(UnsafeNameError):
            s.put(bad, np.ones(2))
    with pytest.raises(UnsafeNameError):
        s.add_units({"../evil": _units(1)["unit_000"]})
    with pytest.raises(UnsafeNameError):
        s.add_feature("unit_000", "a/b", {"x": 1}, {})
    with pytest.raises(KeyError):
        s.add_feature("unit_404", "ok", {"x": 1}, {})
    assert s.unit_ids() == ["unit_000"]


def test_close_removes_spill_file(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "r.h5", memory_limit=100)
    s.add_units(_units(2))
    spill = s.spill_path
    assert spill.exists()
    s.close()
    assert not spill.exists()


def test_close_lets_go_of_the_arrays_in_memory_at_once(tmp_path):
    """A caller that still holds a closed session holds none of its staged arrays; a save then raises."""
    import gc
    import weakref

    s = create_session("rec", hdf5_path=tmp_path / "r.h5", memory_limit=10**6)
    units = _units(3, spikes=5000)
    s.add_units(units)
    staged = weakref.ref(s.get("units/unit_002/spike_times"))
    assert s.resident_bytes >= 3 * 5000 * 8 and s.spilled_bytes == 0
    del units
    gc.collect()
    assert staged() is not None  # held by the open session alone
    s.close()
    gc.collect()
    assert staged() is None and s.resident_bytes == 0
    with pytest.raises(SessionError, match="'rec': closed"):
        s.save()
    for read in (lambda: s.get("units/unit_002/spike_times"), lambda: s.units["unit_002"]):
        with pytest.raises(SessionError, match="'rec': closed"):  # not an empty recording
            read()
    assert not (tmp_path / "r.h5").exists()


def test_resume_and_save_over_the_checkpoint_itself(tmp_path):
    s = create_session("rec")
    _fill(None, s)
    ckpt = s.checkpoint(tmp_path / "work.h5")
    r = PipelineSession.load(ckpt)
    r.add_metadata({"after": "resume"})
    r.save(ckpt, overwrite=True)  # its lazy arrays are read from the very file being replaced
    s.add_metadata({"after": "resume"})
    s.save(tmp_path / "direct.h5")
    assert_files_equal(ckpt, tmp_path / "direct.h5")
    again = PipelineSession.load(ckpt)
    np.testing.assert_array_equal(again.get("units/unit_001/spike_times"), s.get("units/unit_001/spike_times"))


def test_checkpoint_of_a_spilled_session_is_complete(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "final.h5", memory_limit=200)
    _fill(None, s)
    assert s.spilled_bytes > 0
    s.checkpoint(tmp_path / "ckpt.h5")
    s.close()  # the spill file is gone; the checkpoint must not depend on it
    r = PipelineSession.load(tmp_path / "ckpt.h5")
    expected = _units()
    for uid, unit in expected.items():
        np.testing.assert_array_equal(r.get(f"units/{uid}/spike_times"), unit["spike_times"])
    assert r.completed_steps == ["load_recording", "extract_features"]


def test_session_without_target_moves_its_spill_file_into_the_save(tmp_path, monkeypatch):
    """A session made without a target spills into the temporary folder; a save elsewhere on the same
    filesystem moves that file into place instead of copying its arrays (the disk holds the session
    once, not twice), and the session reads on from the saved file."""
    import tempfile

    spills = tmp_path / "tmp"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))
    s = create_session("rec", memory_limit=100_000)
    units = _units(20, spikes=2000)
    s.add_units(units)
    spill = s.spill_path
    assert s.spilled_bytes > 0 and spill.parent == spills
    inode = os.stat(spill).st_ino
    target = tmp_path / "out" / "r.h5"
    s.save(target)
    assert os.stat(target).st_ino == inode  # the spill file became the target: nothing was copied
    assert not spill.exists() and list(spills.iterdir()) == [] and sorted(os.listdir(target.parent)) == ["r.h5"]
    with h5py.File(target, "r") as f:
        assert "__h5stream_staging__" not in f
        for uid, data in units.items():
            np.testing.assert_array_equal(f["units"][uid]["spike_times"][()], data["spike_times"])
    np.testing.assert_array_equal(s.get("units/unit_007/spike_times"), units["unit_007"]["spike_times"])
    s.close()


def test_spill_file_on_another_filesystem_is_copied_into_the_save(tmp_path, monkeypatch):
    """Where the spill file cannot move (another filesystem), the save copies its arrays, as before."""
    import tempfile

    from h5stream import staging

    spills = tmp_path / "tmp"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))
    real_stat = os.stat

    def other_device(path, *args, **kwargs):
        found = real_stat(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(spills):
            return os.stat_result((*found[:2], found.st_dev + 1, *found[3:]))
        return found

    monkeypatch.setattr(staging.os, "stat", other_device)
    s = create_session("rec", memory_limit=100_000)
    units = _units(20, spikes=2000)
    s.add_units(units)
    spill = s.spill_path
    target = tmp_path / "out" / "r.h5"
    s.save(target)
    assert not spill.exists()  # copied, then let go
    with h5py.File(target, "r") as f:
        for uid, data in units.items():
            np.testing.assert_array_equal(f["units"][uid]["spike_times"][()], data["spike_times"])
    s.close()
