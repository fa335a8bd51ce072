"""The recording store contract: every function, the layout, dtypes, errors and their exact messages."""

from __future__ import annotations

import json

import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import (
    EncodingError,
    FormatError,
    SourceNotFoundError,
    TargetExistsError,
    UnsafeNameError,
    WriterClaimError,
)
from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import (
    create_recording_hdf5,
    get_stage1_status,
    list_features,
    list_units,
    mark_stage1_complete,
    open_recording_hdf5,
    write_feature_to_unit,
    write_metadata,
    write_source_files,
    write_stimulus,
    write_units,
)

from tests.filecompare import assert_exact

ROOT_ATTRS = {
    "dataset_id", "hdmea_pipeline_version", "created_at", "updated_at", "stage1_completed",
    "stage1_params_hash", "features_extracted", "h5stream_format", "h5stream_format_version",
}
HOSTILE = ["", ".", "..", "a/b", "/abs", "nul\x00byte"]


def _unit(n_spikes=5, seed=0, **extra):
    rng = np.random.default_rng(seed)
    data = {
        "spike_times": np.sort(rng.integers(0, 10**7, n_spikes)),
        "waveform": rng.normal(size=40),
        "row": 3, "col": 7, "global_id": seed,
    }
    data.update(extra)
    return data


@pytest.fixture
def rec(tmp_path):
    path = tmp_path / "rec.h5"
    f = create_recording_hdf5(path, "rec_001", {"fs": 20000})
    write_units(f, {"unit_000": _unit(seed=0), "unit_001": _unit(seed=1)})
    f.close()
    return path


# --------------------------------------------------------------------------- create_recording_hdf5


def test_create_makes_groups_and_root_attrs(tmp_path):
    path = tmp_path / "new.h5"
    f = create_recording_hdf5(path, "rec_001", {"fs": 20000, "n": 3})
    assert isinstance(f, h5py.File) and f.id.valid and f.mode == "r+"  # returned open, writable
    f.close()
    with h5py.File(path, "r") as g:
        for group in ("units", "stimulus", "metadata"):
            assert isinstance(g[group], h5py.Group)
        assert ROOT_ATTRS <= set(g.attrs)
        assert g.attrs["dataset_id"] == "rec_001"
        assert g.attrs["stage1_completed"] == np.False_
        assert g.attrs["stage1_params_hash"] == store.stage1_params_hash({"n": 3, "fs": 20000})
        assert g.attrs["stage1_params_hash"] != store.stage1_params_hash({"fs": 20000, "n": 4})
        assert g.attrs["h5stream_format"] == "hdmea-recording"
        assert g.attrs["features_extracted"] == "[]"  # JSON text, as the original writes it


def test_create_is_atomic_until_close(tmp_path):
    path = tmp_path / "new.h5"
    f = create_recording_hdf5(path, "rec")
    assert not path.exists()  # built at a partial path beside the target
    partials = [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert len(partials) == 1
    f.close()
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["new.h5"]


def test_create_warns_on_other_suffix(tmp_path):
    with pytest.warns(store.SuffixWarning, match="expected to end with .h5"):
        f = create_recording_hdf5(tmp_path / "rec.hdf5", "rec")
    f.close()
    assert (tmp_path / "rec.hdf5").exists()


def test_create_existing_raises_file_exists(rec):
    with pytest.raises(FileExistsError) as info:
        create_recording_hdf5(rec, "other")
    assert isinstance(info.value, TargetExistsError)
    assert str(rec) in str(info.value) and "overwrite=True" in str(info.value)
    with h5py.File(rec, "r") as g:  # untouched
        assert g.attrs["dataset_id"] == "rec_001"


def test_create_overwrite_replaces_old_only_on_close(rec):
    f = create_recording_hdf5(rec, "replacement", overwrite=True)
    with h5py.File(rec, "r") as g:  # the old file stays intact while the new one is written
        assert g.attrs["dataset_id"] == "rec_001" and len(g["units"]) == 2
    f.close()
    with h5py.File(rec, "r") as g:
        assert g.attrs["dataset_id"] == "replacement" and len(g["units"]) == 0


def test_create_while_another_writer_holds_it(tmp_path):
    path = tmp_path / "held.h5"
    first = create_recording_hdf5(path, "rec")
    with pytest.raises(OSError) as info:
        create_recording_hdf5(path, "rec", overwrite=True)
    assert isinstance(info.value, WriterClaimError)
    assert str(info.value).startswith(
        f"File is already open for writing: {path}. HDF5 supports single-writer access only. "
        "Close the file in other processes before writing. "
    )
    assert f"It is held by pid {os.getpid()} " in str(info.value)
    assert info.value.holder["pid"] == os.getpid()
    first.close()


def test_exception_inside_with_leaves_target_untouched(rec):
    before = rec.read_bytes()
    with pytest.raises(RuntimeError), create_recording_hdf5(rec, "doomed", overwrite=True) as f:
        write_units(f, {"unit_000": _unit()})
        raise RuntimeError("step failed")
    assert rec.read_bytes() == before
    assert sorted(p.name for p in rec.parent.iterdir()) == ["rec.h5"]


def test_bad_dataset_id(tmp_path):
    with pytest.raises(ValueError):
        create_recording_hdf5(tmp_path / "x.h5", "")
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- open_recording_hdf5


def test_open_missing_raises_file_not_found(tmp_path):
    for mode in ("r", "r+", "a"):
        with pytest.raises(FileNotFoundError) as info:
            open_recording_hdf5(tmp_path / "missing.h5", mode)
        assert isinstance(info.value, SourceNotFoundError)
        assert str(tmp_path / "missing.h5") in str(info.value)


def test_open_read_is_lazy(rec):
    with open_recording_hdf5(rec) as f:
        ds = f["units/unit_000/spike_times"]
        assert isinstance(ds, h5py.Dataset)  # a handle; values read on slicing
        assert ds.dtype == np.uint64 and ds.shape == (5,)


def test_open_write_single_writer(rec):
    f = open_recording_hdf5(rec, "r+")
    with pytest.raises(OSError) as info:
        open_recording_hdf5(rec, "a")
    assert isinstance(info.value, WriterClaimError)
    assert str(info.value).startswith(
        f"File is already open for writing: {rec}. HDF5 supports single-writer access only. "
        "Close the file in other processes before writing. "
    )
    assert f"It is held by pid {os.getpid()} " in str(info.value)
    write_metadata(f, {"note": "edited"})
    f.close()
    with open_recording_hdf5(rec) as g:
        assert g["metadata/note"][0] == b"edited" or g["metadata/note"][0] == "edited"
    open_recording_hdf5(rec, "r+").close()  # the claim was released


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all" * 10, b"\x89HDF\r\n\x1a\n" + b"\x00" * 64])
def test_open_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    for mode in ("r", "r+"):
        with pytest.raises(OSError) as info:
            open_recording_hdf5(path, mode)
        assert isinstance(info.value, FormatError)
        assert str(info.value) == f"Cannot read HDF5 file: {path}. The file may be corrupted or incomplete."


def test_open_truncated_recording(rec, tmp_path):
    data = rec.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(FormatError, match="Cannot read HDF5 file"):
        open_recording_hdf5(cut)


def test_open_foreign_format_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["h5stream_format"] = "scptensor"
    with pytest.raises(FormatError, match="another format"):
        open_recording_hdf5(path)


# --------------------------------------------------------------------------- write_units


def test_write_units_layout_and_dtypes(tmp_path):
    units = {"unit_000": _unit(7, seed=0, spike_times=np.arange(7, dtype=np.int32), sensor_id=4100),
             "unit_001": _unit(3, seed=1)}
    with create_recording_hdf5(tmp_path / "u.h5", "rec") as f:
        write_units(f, units)
    with h5py.File(tmp_path / "u.h5", "r") as f:
        for uid, data in units.items():
            g = f["units"][uid]
            assert g["spike_times"].dtype == np.uint64
            np.testing.assert_array_equal(g["spike_times"][()], np.asarray(data["spike_times"]).astype(np.uint64))
            assert g["waveform"].dtype == np.float32
            np.testing.assert_array_equal(g["waveform"][()], np.asarray(data["waveform"], dtype=np.float32))
            assert (g.attrs["row"], g.attrs["col"], g.attrs["global_id"]) == (3, 7, data["global_id"])
            assert g.attrs["spike_count"] == len(data["spike_times"])
            assert all(np.ndim(g.attrs[k]) == 0 for k in ("row", "col", "global_id", "spike_count"))
            assert g.attrs["row"].dtype == np.int64
            assert isinstance(g["features"], h5py.Group) and len(g["features"]) == 0
        assert f["units/unit_000"].attrs["sensor_id"] == 4100


def test_write_units_zero_spikes_and_one_unit(tmp_path):
    with create_recording_hdf5(tmp_path / "u.h5", "rec") as f:
        write_units(f, {"unit_000": _unit(0)})
    with h5py.File(tmp_path / "u.h5", "r") as f:
        assert f["units/unit_000/spike_times"].shape == (0,)
        assert f["units/unit_000/spike_times"].dtype == np.uint64
        assert f["units/unit_000"].attrs["spike_count"] == 0
        assert list_units(f) == ["unit_000"]


def test_write_units_keeps_extra_unit_arrays(tmp_path):
    extra = np.arange(12, dtype=np.float32).reshape(3, 4)
    with create_recording_hdf5(tmp_path / "u.h5", "rec") as f:
        write_units(f, {"unit_000": {**_unit(0), "template": extra}})
    with h5py.File(tmp_path / "u.h5", "r") as f:
        stored = f["units/unit_000/template"]
        assert stored.dtype == np.float32 and np.array_equal(stored[()], extra)


def test_write_units_replaces_same_id_and_keeps_others(rec):
    f = open_recording_hdf5(rec, "r+")
    write_units(f, {"unit_001": _unit(2, seed=9)})
    f.close()
    with h5py.File(rec, "r") as g:
        assert list(g["units"]) == ["unit_000", "unit_001"]
        assert g["units/unit_001"].attrs["spike_count"] == 2


def test_write_units_5000(tmp_path):
    rng = np.random.default_rng(5)
    counts = rng.poisson(20, 5000)
    units = {f"unit_{i:04d}": {"spike_times": np.sort(rng.integers(0, 10**7, c)), "waveform": rng.random(10),
                               "row": i % 64, "col": i // 64, "global_id": i} for i, c in enumerate(counts)}
    with create_recording_hdf5(tmp_path / "many.h5", "rec") as f:
        write_units(f, units)
    with h5py.File(tmp_path / "many.h5", "r") as f:
        assert list_units(f) == sorted(units)
        for uid in ("unit_0000", "unit_2718", "unit_4999"):
            np.testing.assert_array_equal(f["units"][uid]["spike_times"][()], units[uid]["spike_times"])
            assert f["units"][uid].attrs["spike_count"] == len(units[uid]["spike_times"])


def test_write_units_rejects_bad_spikes(tmp_path):
    with create_recording_hdf5(tmp_path / "u.h5", "rec") as f:
        with pytest.raises(EncodingError, match="negative"):
            write_units(f, {"unit_000": _unit(spike_times=np.array([-1, 4]))})
        with pytest.raises(EncodingError, match="whole"):
            write_units(f, {"unit_000": _unit(spike_times=np.array([0.5, 4.0]))})
        with pytest.raises(EncodingError, match="no spike_times"):
            write_units(f, {"unit_000": {"row": 1}})
        assert list_units(f) == []


@pytest.mark.parametrize("bad", HOSTILE + [5])
def test_hostile_unit_ids_rejected(rec, bad):
    before = rec.read_bytes()
    f = open_recording_hdf5(rec, "r+")
    with pytest.raises((UnsafeNameError, TypeError)):
        write_units(f, {bad: _unit()})
    f.abort()
    assert rec.read_bytes() == before


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_feature_and_movie_names_rejected(rec, bad):
    f = open_recording_hdf5(rec, "r+")
    try:
        with pytest.raises(UnsafeNameError):
            write_feature_to_unit(f, "unit_000", bad, {"x": 1}, {})
        with pytest.raises(UnsafeNameError):
            write_feature_to_unit(f, bad, "feat", {"x": 1}, {})
        with pytest.raises(UnsafeNameError):
            write_stimulus(f, {}, section_times={bad: np.array([[0, 10]])})
        with pytest.raises(UnsafeNameError):
            write_stimulus(f, {bad: np.ones(3)})
        assert list_features(f, "unit_000") == []
        assert list(f["stimulus"]) == []
        assert set(f) == {"units", "stimulus", "metadata", "pipeline"}
    finally:
        f.abort()


# --------------------------------------------------------------------------- write_stimulus


def test_write_stimulus_dtypes_and_overwrite(rec):
    f = open_recording_hdf5(rec, "r+")
    write_stimulus(f, {"raw_20khz": np.linspace(0, 1, 50), "10hz": np.ones(5)},
                   frame_times={"default": np.arange(0, 1000, 333)},
                   section_times={"step_up": [[10, 20], [30, 40]], "noise": [5, 6]})
    write_stimulus(f, {"10hz": np.zeros(3)})  # replaces one, keeps the rest
    f.close()
    with h5py.File(rec, "r") as g:
        s = g["stimulus"]
        assert s["light_reference/raw_20khz"].dtype == np.float32
        np.testing.assert_array_equal(s["light_reference/10hz"][()], np.zeros(3, dtype=np.float32))
        assert s["frame_time/default"].dtype == np.uint64
        np.testing.assert_array_equal(s["frame_time/default"][()], [0, 333, 666, 999])
        assert s["section_time/step_up"].dtype == np.int64 and s["section_time/step_up"].shape == (2, 2)
        assert s["section_time/noise"].shape == (1, 2)


def test_write_stimulus_rejects_bad_section_shape(rec):
    f = open_recording_hdf5(rec, "r+")
    with pytest.raises(EncodingError, match=r"\(n, 2\)"):
        write_stimulus(f, {}, section_times={"m": np.arange(6).reshape(2, 3)})
    f.abort()


# --------------------------------------------------------------------------- write_metadata


METADATA = {
    "sampling_rate": 20000.0,
    "n_channels": 4225,
    "recorded": True,
    "operator": "Zoë",
    "missing": None,
    "gain": np.float32(1.5),
    "channels": np.arange(6, dtype=np.int16).reshape(2, 3),
    "labels": ["a", "b"],
    "mixed": [1, "two", 3.0, None, True],
    "pair": (1, 2),
    "sys_meta": {"version": "7.1", "rates": {1: 20000, 2: 10000}, "odd key/with slash": 1, "": "empty key"},
    "nested": {"level1": {"level2": {"level3": [[1, 2], [3]]}}},
    "blob": b"\x00\x01binary",
}


def test_write_metadata_layout(rec):
    f = open_recording_hdf5(rec, "r+")
    write_metadata(f, METADATA)
    f.close()
    with h5py.File(rec, "r") as g:
        m = g["metadata"]
        assert m["sampling_rate"].shape == (1,) and m["sampling_rate"][0] == 20000.0
        assert m["n_channels"].shape == (1,) and m["n_channels"].dtype == np.int64
        info = h5py.check_string_dtype(m["operator"].dtype)
        assert info is not None and info.encoding == "utf-8" and info.length is None
        assert m["operator"][0].decode("utf-8") == "Zoë"
        assert isinstance(m["sys_meta"], h5py.Group)  # nested dicts become subgroups
        assert isinstance(m["nested/level1/level2"], h5py.Group)
        np.testing.assert_array_equal(m["channels"][()], METADATA["channels"])


def test_write_metadata_round_trips_types(rec):
    f = open_recording_hdf5(rec, "r+")
    write_metadata(f, METADATA)
    f.close()
    with open_recording_hdf5(rec) as g:
        back = store.decode_node(store.node_from_h5(g["metadata"]))
    assert_exact(back, METADATA, key_order=False)


def test_write_metadata_huge_values(rec):
    huge_text = "x" * 200_000
    huge_list = list(range(30_000))
    f = open_recording_hdf5(rec, "r+")
    write_metadata(f, {"huge_text": huge_text, "huge_list": huge_list})
    write_feature_to_unit(f, "unit_000", "big", {"note": huge_text, "ids": huge_list, "v": 1}, {"version": "1"})
    f.close()
    with open_recording_hdf5(rec) as g:
        feature = store.decode_node(store.node_from_h5(g["units/unit_000/features/big"]))
        meta = store.decode_node(store.node_from_h5(g["metadata"]))
        # No attribute anywhere exceeds the HDF5 limit: the big ones went to datasets.
        sizes = []
        g.visititems(lambda name, obj: sizes.extend(obj.attrs.get_id(a).get_storage_size() for a in obj.attrs))
        assert max(sizes) < 64 * 1024
    assert feature["note"] == huge_text and feature["ids"] == huge_list and feature["v"] == 1
    assert meta["huge_text"] == huge_text and meta["huge_list"] == huge_list
    with open_recording_hdf5(rec) as g:
        assert list_features(g, "unit_000") == ["big"]  # hidden attribute datasets are not listed
        assert sorted(g["units/unit_000/features/big"]) == ["__attr__ids", "__attr__note"]


def test_write_metadata_rejects_unstorable(rec):
    f = open_recording_hdf5(rec, "r+")
    with pytest.raises(EncodingError, match="object"):
        write_metadata(f, {"thing": object()})
    with pytest.raises(UnsafeNameError):
        write_metadata(f, {"a/b": 1})
    f.abort()


# --------------------------------------------------------------------------- features


def test_write_feature_to_unit(rec):
    f = open_recording_hdf5(rec, "r+")
    data = {"on_peak": np.array([1.0, 2.0]), "latency": 0.12, "n_trials": 3, "label": "ON",
            "fit": {"params": np.arange(3.0), "r2": 0.9}}
    meta = {"version": "2.1", "params_hash": "abc123", "extracted_at": "2026-01-01T00:00:00"}
    write_feature_to_unit(f, "unit_000", "step_up_5s_5i_3x", data, meta)
    write_feature_to_unit(f, "unit_001", "baseline", {"rate": 4.5}, meta)
    f.close()
    with h5py.File(rec, "r") as g:
        grp = g["units/unit_000/features/step_up_5s_5i_3x"]
        np.testing.assert_array_equal(grp["on_peak"][()], [1.0, 2.0])  # arrays -> datasets
        assert grp.attrs["latency"] == 0.12 and grp.attrs["n_trials"] == 3  # scalars -> attributes
        assert grp.attrs["label"] == "ON"
        assert isinstance(grp["fit"], h5py.Group) and grp["fit"].attrs["r2"] == 0.9  # nested -> subgroup
        assert grp.attrs["version"] == "2.1" and grp.attrs["params_hash"] == "abc123"
        assert json.loads(g.attrs["features_extracted"]) == ["step_up_5s_5i_3x", "baseline"]  # as computed
        assert list_features(g, "unit_000") == ["step_up_5s_5i_3x"]
        assert list_features(g, "unit_001") == ["baseline"]


def test_write_feature_unknown_unit(rec):
    f = open_recording_hdf5(rec, "r+")
    with pytest.raises(KeyError, match="no such unit"):
        write_feature_to_unit(f, "unit_999", "x", {"a": 1}, {})
    f.abort()


# --------------------------------------------------------------------------- utilities


def test_stage1_status(rec):
    with open_recording_hdf5(rec) as g:
        status = get_stage1_status(g)
    assert status["completed"] is False
    assert status["params_hash"] == store.stage1_params_hash({"fs": 20000})
    assert set(status) == {"completed", "params_hash", "created_at", "updated_at"}
    f = open_recording_hdf5(rec, "r+")
    mark_stage1_complete(f)
    f.close()
    with open_recording_hdf5(rec) as g:
        after = get_stage1_status(g)
        assert g.attrs["stage1_completed"] == np.True_
    assert after["completed"] is True
    assert after["updated_at"] > status["updated_at"]
    assert after["created_at"] == status["created_at"]


def test_list_units_and_features_empty(tmp_path):
    with create_recording_hdf5(tmp_path / "e.h5", "rec") as f:
        assert list_units(f) == []
        assert list_features(f, "unit_000") == []
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        assert list_units(f) == []
        assert list_features(f, "../x") == []


def test_write_source_files(rec, tmp_path):
    cmcr = tmp_path / "rec.cmcr"
    cmcr.write_bytes(b"x")
    f = open_recording_hdf5(rec, "r+")
    write_source_files(f, cmcr, tmp_path / "absent.cmtr")
    f.close()
    with h5py.File(rec, "r") as g:
        # the original's JSON text: a path given is "exists" there; the root attributes say whether it was found
        assert json.loads(g.attrs["source_files"]) == {"cmcr_path": str(cmcr), "cmtr_path": str(tmp_path / "absent.cmtr"),
                                                       "cmcr_exists": True, "cmtr_exists": True}
        assert g.attrs["cmcr_exists"] == np.True_ and g.attrs["cmtr_exists"] == np.False_
    f = open_recording_hdf5(rec, "r+")
    write_source_files(f, None, tmp_path / "absent.cmtr")
    f.close()
    with h5py.File(rec, "r") as g:
        assert json.loads(g.attrs["source_files"]) == {"cmcr_path": None, "cmtr_path": str(tmp_path / "absent.cmtr"),
                                                       "cmcr_exists": False, "cmtr_exists": True}


def test_attributes_round_trip_exact_types(rec):
    values = {"i": 3, "f": 2.5, "b": False, "s": "text", "none": None, "lst": [1, 2], "tup": ("a", "b"),
              "mixed": [1, "x"], "d": {1: "one", "k": [None]}, "f32": np.float32(0.25), "u8": np.uint8(7),
              "arr": np.arange(4, dtype=np.int16), "empty_list": [], "big_int": 2**70}
    f = open_recording_hdf5(rec, "r+")
    store.set_h5_attrs(f["units/unit_000"], values)
    f.close()
    with open_recording_hdf5(rec) as g:
        attrs, _, _ = store.read_attrs(g["units/unit_000"])
    for key, value in values.items():
        assert_exact(attrs[key], value, key_order=False)
    assert attrs["spike_count"] == 5 and type(attrs["spike_count"]) is int


def test_recording_file_abort_discards(rec):
    before = rec.read_bytes()
    f = open_recording_hdf5(rec, "r+")
    write_metadata(f, {"x": 1})
    f.abort()
    assert rec.read_bytes() == before
    assert sorted(os.listdir(rec.parent)) == ["rec.h5"]


def test_direct_library_calls_and_h5py_wrappers_write_equal_files(tmp_path, monkeypatch):
    from h5stream import lowlevel
    from tests.filecompare import assert_files_equal

    assert lowlevel.native_hdf5() is not None  # h5py's libhdf5 is found on this platform
    units = {f"unit_{i:03d}": _unit(i, seed=i) for i in range(4)}

    def write(path):
        with create_recording_hdf5(path, "rec", {"a": 1}) as f:
            write_units(f, units)
            write_metadata(f, METADATA)
            write_feature_to_unit(f, "unit_001", "feat", {"x": np.arange(3.0), "n": 2, "note": "x" * 70_000},
                                  {"version": "1"})
            write_stimulus(f, {"raw": np.ones(5)}, {"default": np.arange(4)}, {"m": [[1, 2]]})

    write(tmp_path / "native.h5")
    monkeypatch.setattr(lowlevel, "native_hdf5", lambda: None)  # the writer falls back to h5py's wrappers
    write(tmp_path / "wrapped.h5")
    assert_files_equal(tmp_path / "native.h5", tmp_path / "wrapped.h5")
