"""Migration of archives in the previous zarr store's layout, written here with the zarr library."""

from __future__ import annotations

import json
import math
import shutil
import sys

import h5py
import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from hdmea.cli import main  # noqa: E402
from hdmea.interop import MissingExtraError  # noqa: E402
from hdmea.interop.zarr_migrate import ArchiveFormatError, migrate, migrate_folder  # noqa: E402
from hdmea.io import hdf5_store as store  # noqa: E402

ROOT_ATTRS = {
    "dataset_id": "JIANG009_2024-01-15", "hdmea_pipeline_version": "0.1.0",
    "created_at": "2024-01-15T10:00:00+00:00", "updated_at": "2024-01-16T09:00:00+00:00",
    "stage1_completed": True, "stage1_params_hash": "abc123", "features_extracted": ["step_up", "rf_noise"],
    "source_files": {"cmcr_path": "/data/rec.cmcr", "cmtr_path": "/data/rec.cmtr", "cmcr_exists": True,
                     "cmtr_exists": False},
}


def _spikes(n, seed):
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, 2_000_000, n)).astype(np.uint64)


def write_old_archive(path, *, seed=0, dataset_id=None):
    """An archive in the previous store's layout (zarr v2 directory store), with what each member should hold."""
    root = zarr.open_group(str(path), mode="w")
    attrs = dict(ROOT_ATTRS, dataset_id=dataset_id or ROOT_ATTRS["dataset_id"])
    root.attrs.update(attrs)
    units = root.create_group("units")
    truth = {}
    for k, n in enumerate((37, 0, 12)):
        uid = f"unit_{k:03d}"
        g = units.create_group(uid)
        spikes = _spikes(n, seed + k)
        if n:  # the previous store wrote no array for a unit without spikes
            g.create_dataset("spike_times", data=spikes, chunks=(8,), dtype=np.uint64)
        waveform = np.linspace(-1, 1, 20, dtype=np.float32) * (k + 1)
        g.create_dataset("waveform", data=waveform, dtype=np.float32)
        if k == 2:
            g.create_dataset("firing_rate_10hz", data=np.arange(5, dtype=np.float32), dtype=np.float32)
        g.attrs.update(row=10 + k, col=20 + k, global_id=100 + k, spike_count=n)
        feats = g.create_group("features")
        f1 = feats.create_group("step_up")
        f1.create_dataset("on_response", data=np.arange(6, dtype=np.float64) * k)
        f1.attrs.update(on_off_index=0.25 * k, quality=k, polarity="on", is_valid=bool(k % 2), nan_value=math.nan,
                        windows=[0, 60, 120], labels=["a", "b"], params={"movie": "step_up", "bins": [1, 2]},
                        version="1.0.0", params_hash="ff00")
        nested = f1.create_group("by_trial")
        nested.create_dataset("counts", data=np.arange(9, dtype=np.int16).reshape(3, 3))
        nested.attrs.update(n_trials=3, label="trials")
        deeper = nested.create_group("baseline")
        deeper.create_dataset("rate", data=np.full(3, 2.5, dtype=np.float32))
        deeper.attrs["unit"] = "Hz"
        truth[uid] = dict(spikes=spikes, waveform=waveform, k=k)
    stim = root.create_group("stimulus")
    light = np.sin(np.arange(1000, dtype=np.float32))
    stim.create_group("light_reference").create_dataset("raw_ch1", data=light, chunks=(256,))
    frames = np.arange(0, 60_000, 333, dtype=np.uint64)
    stim.create_group("frame_time").create_dataset("default", data=frames)
    sections = np.array([[100, 5000], [9000, 14000]], dtype=np.uint64)
    stim.create_group("section_time").create_dataset("step_up", data=sections)
    extra = stim.create_group("playlist_cache")
    extra.create_dataset("order", data=np.array([3, 1, 2], dtype=np.int32))
    meta = root.create_group("metadata")
    meta.create_dataset("acquisition_rate", data=np.array([20000.0]))
    meta.create_dataset("n_frames", data=np.array([180]))
    meta.create_dataset("program", data=np.array(["CMOS-MEA-Control"], dtype=object), dtype=str)
    meta.create_dataset("gain32", data=np.array([1.5], dtype=np.float32))
    sys_meta = meta.create_group("sys_meta")
    sys_meta.create_dataset("FileVersion", data=np.array([3]))
    sys_meta.create_dataset("trace", data=np.arange(4, dtype=np.int32))
    sys_meta.attrs["note"] = "group attribute"
    legacy = root.create_group("legacy_extra")
    legacy.create_dataset("blob", data=np.arange(3, dtype=np.uint8))
    legacy.attrs["why"] = "kept"
    return dict(attrs=attrs, units=truth, light=light, frames=frames, sections=sections)


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "old" / "rec.zarr"
    path.parent.mkdir()
    return path, write_old_archive(path)


def _typed_attrs(obj):
    return store.read_attrs(obj)[0]


def test_migrated_file_holds_every_value_with_its_dtype(archive, tmp_path):
    path, truth = archive
    out = tmp_path / "rec.h5"
    result = migrate(path, out)
    assert result.n_units == 3 and result.dataset_id == truth["attrs"]["dataset_id"]
    with store.open_recording_hdf5(out) as f:  # the store's own checks accept it
        assert f.attrs["dataset_id"] == truth["attrs"]["dataset_id"]
        assert f.attrs["created_at"] == truth["attrs"]["created_at"]
        assert bool(f.attrs["stage1_completed"]) and f.attrs["stage1_params_hash"] == "abc123"
        assert json.loads(f.attrs["features_extracted"]) == ["rf_noise", "step_up"]
        assert json.loads(f.attrs["source_files"]) == {"cmcr_path": "/data/rec.cmcr", "cmtr_path": "/data/rec.cmtr",
                                                       "cmcr_exists": True, "cmtr_exists": False}
        assert bool(f.attrs["cmcr_exists"]) and not bool(f.attrs["cmtr_exists"])
        for uid, t in truth["units"].items():
            g = f["units"][uid]
            assert g["spike_times"].dtype == np.uint64
            np.testing.assert_array_equal(g["spike_times"][()], t["spikes"])
            assert g["waveform"].dtype == np.float32
            np.testing.assert_array_equal(g["waveform"][()], t["waveform"])
            assert int(g.attrs["spike_count"]) == t["spikes"].size
            assert (int(g.attrs["row"]), int(g.attrs["col"]), int(g.attrs["global_id"])) == (
                10 + t["k"], 20 + t["k"], 100 + t["k"])
            feat = g["features/step_up"]
            a = _typed_attrs(feat)
            assert a["on_off_index"] == 0.25 * t["k"] and type(a["on_off_index"]) is float
            assert a["quality"] == t["k"] and type(a["quality"]) is int
            assert a["is_valid"] is bool(t["k"] % 2)
            assert a["polarity"] == "on" and math.isnan(a["nan_value"])
            assert a["windows"] == [0, 60, 120] and a["labels"] == ["a", "b"]
            assert a["params"] == {"movie": "step_up", "bins": [1, 2]}
            assert a["version"] == "1.0.0" and a["params_hash"] == "ff00"
            np.testing.assert_array_equal(feat["on_response"][()], np.arange(6, dtype=np.float64) * t["k"])
            assert feat["by_trial/counts"].dtype == np.int16
            np.testing.assert_array_equal(feat["by_trial/counts"][()], np.arange(9).reshape(3, 3))
            assert _typed_attrs(feat["by_trial"]) == {"n_trials": 3, "label": "trials"}
            assert feat["by_trial/baseline/rate"].dtype == np.float32
            assert _typed_attrs(feat["by_trial/baseline"]) == {"unit": "Hz"}
        assert f["units/unit_001/spike_times"].shape == (0,)  # the unit without spikes
        np.testing.assert_array_equal(f["units/unit_002/firing_rate_10hz"][()], np.arange(5, dtype=np.float32))
        np.testing.assert_array_equal(f["stimulus/light_reference/raw_ch1"][()], truth["light"])
        np.testing.assert_array_equal(f["stimulus/frame_time/default"][()], truth["frames"])
        assert f["stimulus/section_time/step_up"].dtype == np.int64
        np.testing.assert_array_equal(f["stimulus/section_time/step_up"][()], truth["sections"])
        meta = store.decode_node(store.node_from_h5(f["metadata"]))
        assert meta["acquisition_rate"] == 20000.0 and meta["n_frames"] == 180 and meta["program"] == "CMOS-MEA-Control"
        assert f["metadata/gain32"].dtype == np.float32 and f["metadata/gain32"].shape == (1,)
        assert meta["sys_meta"]["FileVersion"] == 3
        np.testing.assert_array_equal(f["metadata/sys_meta/trace"][()], np.arange(4, dtype=np.int32))
        migration = f["pipeline/migration"]
        assert _typed_attrs(migration)["source_archive"] == str(path.resolve())
        root_attrs = store.decode_node(store.node_from_h5(migration["root_attrs"]))
        assert root_attrs == truth["attrs"]
        unmapped = migration["unmapped"]
        np.testing.assert_array_equal(unmapped["legacy_extra/blob"][()], np.arange(3, dtype=np.uint8))
        assert _typed_attrs(unmapped["legacy_extra"]) == {"why": "kept"}
        assert unmapped["stimulus.playlist_cache/order"].dtype == np.int32
        assert _typed_attrs(unmapped["metadata.sys_meta@attrs"]) == {"note": "group attribute"}
    assert sorted(result.unmapped) == ["legacy_extra", "metadata.sys_meta@attrs", "stimulus.playlist_cache"]


def _only(directory):
    return sorted(p.name for p in directory.iterdir())


def test_missing_chunk_names_the_member_and_leaves_nothing(archive, tmp_path):
    path, _ = archive
    (path / "units" / "unit_000" / "spike_times" / "2").unlink()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ArchiveFormatError, match=r"units/unit_000/spike_times/2") as exc:
        migrate(path, out_dir / "rec.h5")
    assert "chunk" in str(exc.value)
    assert _only(out_dir) == []


def test_bad_zarray_names_the_member_and_leaves_nothing(archive, tmp_path):
    path, _ = archive
    (path / "stimulus" / "frame_time" / "default" / ".zarray").write_text("{not json")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ArchiveFormatError, match=r"/stimulus/frame_time/default/\.zarray"):
        migrate(path, out_dir / "rec.h5")
    assert _only(out_dir) == []


def test_corrupt_chunk_bytes_name_the_member(archive, tmp_path):
    path, _ = archive
    (path / "stimulus" / "light_reference" / "raw_ch1" / "1").write_bytes(b"garbage")
    with pytest.raises(ArchiveFormatError, match=r"/stimulus/light_reference/raw_ch1"):
        migrate(path, tmp_path / "rec.h5")
    assert not (tmp_path / "rec.h5").exists()


def test_not_an_archive(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ArchiveFormatError, match=r"\.zgroup"):
        migrate(tmp_path / "empty.zarr", tmp_path / "x.h5")


def test_folder_migration_is_idempotent_and_resumes(tmp_path):
    src = tmp_path / "archives"
    src.mkdir()
    for k in range(3):
        write_old_archive(src / f"rec{k}.zarr", seed=k, dataset_id=f"rec{k}")
    (src / "rec2.zarr" / "units" / "unit_000" / "spike_times" / ".zarray").write_text("[]")
    out = tmp_path / "h5"
    first = migrate_folder(src, out)
    assert [e["status"] for e in first.entries] == ["migrated", "migrated", "failed"] and not first.ok
    assert "units/unit_000/spike_times" in first.entries[2]["error"]
    assert _only(out) == ["rec0.h5", "rec1.h5"]
    stamp = (out / "rec0.h5").stat().st_mtime_ns
    second = migrate_folder(src, out)
    assert [e["status"] for e in second.entries] == ["skipped", "skipped", "failed"]
    assert (out / "rec0.h5").stat().st_mtime_ns == stamp
    shutil.rmtree(src / "rec2.zarr")
    write_old_archive(src / "rec2.zarr", seed=2, dataset_id="rec2")  # repaired: resumes with it alone
    third = migrate_folder(src, out)
    assert [e["status"] for e in third.entries] == ["skipped", "skipped", "migrated"] and third.ok
    with h5py.File(out / "rec2.h5", "r") as f:
        assert f.attrs["dataset_id"] == "rec2"


def test_folder_migration_checks_the_output_folder_before_any_archive(tmp_path):
    from hdmea.pipeline.preflight import PreflightError

    src = tmp_path / "archives"
    src.mkdir()
    write_old_archive(src / "rec0.zarr", seed=0, dataset_id="rec0")
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder's parent should be")
    with pytest.raises(PreflightError, match="cannot be created") as info:
        migrate_folder(src, blocker / "h5")
    assert str(blocker) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", "taken"]


def test_cli_migrate(archive, tmp_path, capsys):
    path, truth = archive
    with pytest.raises(SystemExit) as exc:
        main(["migrate", "--help"])
    assert exc.value.code == 0 and "OLD.zarr" in capsys.readouterr().out
    assert main(["migrate", str(path), str(tmp_path / "new.h5")]) == 0
    with h5py.File(tmp_path / "new.h5", "r") as f:
        assert f.attrs["dataset_id"] == truth["attrs"]["dataset_id"]
    summary = tmp_path / "summary.json"
    assert main(["migrate", str(path.parent), str(tmp_path / "folder"), "--summary", str(summary)]) == 0
    assert json.loads(summary.read_text())["entries"][0]["status"] == "migrated"
    (path / "units" / "unit_002" / "waveform" / "0").unlink()
    assert main(["migrate", str(path), str(tmp_path / "broken.h5")]) == 1
    assert "units/unit_002/waveform" in capsys.readouterr().err
    assert not (tmp_path / "broken.h5").exists()


def test_missing_extra_names_the_install(archive, tmp_path, monkeypatch):
    path, _ = archive
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(MissingExtraError, match=r'pip install "h5stream\[zarr\]"'):
        migrate(path, tmp_path / "x.h5")
