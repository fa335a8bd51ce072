"""Attribute values too large for an HDF5 attribute, on datasets and on groups.

A dataset's large attribute ``a`` of ``parent/d`` lives in the hidden group
``parent/__dsattr__d/a``; a group's large attribute in its hidden child
``__attr__a``.  Both read back as attributes with their exact types, through
both writer paths (direct libhdf5 calls and h5py's wrappers), immediate mode and
sessions, and no listing shows the hidden objects.
"""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from h5stream import lowlevel
from h5stream.errors import FormatError, UnsafeNameError
from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import (
    create_recording_hdf5,
    list_features,
    list_units,
    open_recording_hdf5,
    write_feature_to_unit,
    write_stimulus,
    write_units,
)
from hdmea.pipeline import PipelineSession, create_session
from hdmea.session.target import open_target
from hdmea.report.tree import describe_recording

# the repository root, so that tests.filecompare imports without a conftest
from tests.filecompare import assert_files_equal, assert_exact

ARRAY_PATH = "units/unit_000/features/sta/kernel_trace"
HDF5_ATTR_CEILING = 64 * 1024  # HDF5's default object header holds at most 64 KiB of attributes


def _large_attrs() -> dict:
    rng = np.random.default_rng(7)
    return {
        "kernel": rng.standard_normal(131_072),  # 1 MiB of float64
        "notes": "réponse ON-OFF; " * 12_500,  # 200,000 characters, non-ASCII included
        "tree": {
            "trials": [{"id": i, "ok": i % 3 == 0, "label": f"trial {i}"} for i in range(200)],
            7: ("a", 1.5, None),
            "gains": np.arange(20_000, dtype=np.int32),
            "nested": {"deeper": {"text": "z" * 70_000, "flag": True}},
        },
        "small": 3,
    }


def _all_names(path) -> list[str]:
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visit(names.append)
    return names


def _max_attr_storage(path) -> int:
    sizes = [0]
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: sizes.extend(obj.attrs.get_id(a).get_storage_size() for a in obj.attrs))
    return max(sizes)


def _units(n=2):
    rng = np.random.default_rng(1)
    return {f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, 30)).astype(np.uint64),
                              "waveform": rng.random(20).astype(np.float32), "row": i, "col": i,
                              "global_id": i} for i in range(n)}


@pytest.fixture(params=["native", "wrapped"])
def writer(request, monkeypatch):
    """Both writer paths: direct libhdf5 calls, and h5py's wrappers (used when libhdf5 cannot be located)."""
    if request.param == "wrapped":
        monkeypatch.setattr(lowlevel, "native_hdf5", lambda: None)
    else:
        assert lowlevel.native_hdf5() is not None
    return request.param


@pytest.fixture
def rec(tmp_path):
    path = tmp_path / "rec.h5"
    with create_recording_hdf5(path, "rec_001") as f:
        write_units(f, _units())
    return path


def _write_feature_with_large_attrs(path, attrs):
    with open_recording_hdf5(path, "r+") as f:
        write_feature_to_unit(f, "unit_000", "sta", {"kernel_trace": np.arange(5.0), "peak": 1.0},
                              {"version": "1"})
        store.set_h5_attrs(f[ARRAY_PATH], attrs)


# --------------------------------------------------------------------------- immediate mode


def test_dataset_large_attrs_round_trip(rec, writer):
    attrs = _large_attrs()
    _write_feature_with_large_attrs(rec, attrs)
    with open_recording_hdf5(rec) as g:
        back, _, _ = store.read_attrs(g[ARRAY_PATH])
        feature = store.node_from_h5(g["units/unit_000/features/sta"])
        lazy = store.node_from_h5(g["units/unit_000/features/sta"], lazy=True, opener=lambda: g)
    for key, value in attrs.items():
        assert_exact(back[key], value, key_order=False)
        assert_exact(feature.children["kernel_trace"].attrs[key], value, key_order=False)
        assert_exact(lazy.children["kernel_trace"].attrs[key], value, key_order=False)
    # The hidden objects are skipped when children are listed.
    assert sorted(feature.children) == ["kernel_trace"]
    assert max(_max_attr_storage(rec), 1) < HDF5_ATTR_CEILING


def test_dataset_large_attrs_layout_readable_by_plain_h5py(rec, writer):
    attrs = _large_attrs()
    _write_feature_with_large_attrs(rec, attrs)
    with h5py.File(rec, "r") as f:
        feature = f["units/unit_000/features/sta"]
        assert sorted(feature) == ["__dsattr__kernel_trace", "kernel_trace"]
        hidden = feature["__dsattr__kernel_trace"]
        assert sorted(hidden) == ["kernel", "notes", "tree"]
        np.testing.assert_array_equal(hidden["kernel"][()], attrs["kernel"])
        assert hidden["notes"][0].decode("utf-8") == attrs["notes"]
        # The mapping has an integer key, so its members are stored by position ("gains" is third).
        np.testing.assert_array_equal(hidden["tree"]["2"][()], attrs["tree"]["gains"])
        dataset = feature["kernel_trace"]
        assert dataset.attrs["small"] == 3
        assert "kernel" not in dataset.attrs and "notes" not in dataset.attrs
        np.testing.assert_array_equal(dataset[()], np.arange(5.0))


def test_listings_do_not_show_hidden_objects(rec, tmp_path):
    _write_feature_with_large_attrs(rec, _large_attrs())
    with open_recording_hdf5(rec, "r+") as f:
        store.set_h5_attrs(f["units/unit_001/spike_times"], {"kernel": np.zeros(20_000)})
    with open_recording_hdf5(rec) as g:
        assert list_units(g) == ["unit_000", "unit_001"]
        assert list_features(g, "unit_000") == ["sta"]
        unit = store.node_from_h5(g["units/unit_001"])
        assert sorted(unit.children) == ["features", "spike_times", "waveform"]
    with open_target(rec, step="look") as target:
        assert target.keys("units/unit_000/features/sta") == ["kernel_trace"]
        assert target.keys("units/unit_001") == ["features", "spike_times", "waveform"]
        assert_exact(target.attrs("units/unit_001/spike_times")["kernel"], np.zeros(20_000), key_order=False)
    text = describe_recording(rec, max_children=None)
    assert "kernel_trace" in text and "__dsattr__" not in text and "__attr__" not in text
    session = PipelineSession.load(rec)
    assert session.keys("units/unit_000/features/sta") == ["kernel_trace"]
    assert session.keys("units/unit_001") == ["features", "spike_times", "waveform"]
    session.close()


def test_replacing_large_attrs_leaves_no_orphans(rec, writer):
    attrs = _large_attrs()
    _write_feature_with_large_attrs(rec, attrs)
    with open_recording_hdf5(rec, "r+") as f:
        store.set_h5_attrs(f[ARRAY_PATH], {"kernel": 1.5, "small": "x" * 100_000})
    with open_recording_hdf5(rec) as g:
        back, _, _ = store.read_attrs(g[ARRAY_PATH])
        assert sorted(g["units/unit_000/features/sta/__dsattr__kernel_trace"]) == ["notes", "small", "tree"]
    assert_exact(back["kernel"], 1.5, key_order=False)
    assert_exact(back["small"], "x" * 100_000, key_order=False)
    assert_exact(back["notes"], attrs["notes"], key_order=False)
    assert_exact(back["tree"], attrs["tree"], key_order=False)
    # Once no large attribute is left, the hidden group goes too.
    with open_recording_hdf5(rec, "r+") as f:
        store.set_h5_attrs(f[ARRAY_PATH], {"notes": "short", "tree": {"k": 1}, "small": 0})
    assert not [n for n in _all_names(rec) if "__dsattr__" in n]
    with open_recording_hdf5(rec) as g:
        back, _, _ = store.read_attrs(g[ARRAY_PATH])
    assert back == {"kernel": 1.5, "notes": "short", "tree": {"k": 1}, "small": 0}


def test_overwriting_datasets_removes_their_large_attrs(rec, writer):
    _write_feature_with_large_attrs(rec, _large_attrs())
    with open_recording_hdf5(rec, "r+") as f:
        write_stimulus(f, light_reference={"raw": np.ones(4)})
        store.set_h5_attrs(f["stimulus/light_reference/raw"], {"calibration": np.ones(10_000)})
    assert "stimulus/light_reference/__dsattr__raw/calibration" in _all_names(rec)
    with open_recording_hdf5(rec, "r+") as f:
        # The feature is overwritten (its dataset has no large attributes any more) ...
        write_feature_to_unit(f, "unit_000", "sta", {"kernel_trace": np.arange(3.0)}, {"version": "2"})
        # ... and so is the stimulus array.
        write_stimulus(f, light_reference={"raw": np.zeros(4)})
    with open_target(rec, step="rewrite") as target:
        target.put("units/unit_001/trace", np.arange(4))
        target.set_attrs("units/unit_001/trace", {"big": "y" * 80_000})
    with open_target(rec, step="rewrite_again") as target:
        target.put("units/unit_001/trace", np.arange(6))
    assert not [n for n in _all_names(rec) if "__dsattr__" in n]
    with open_recording_hdf5(rec) as g:
        assert store.read_attrs(g[ARRAY_PATH])[0] == {}
        assert store.read_attrs(g["stimulus/light_reference/raw"])[0] == {}
        assert store.read_attrs(g["units/unit_001/trace"])[0] == {}


def test_both_writer_paths_write_equal_files(tmp_path, monkeypatch):
    attrs = _large_attrs()

    def write(path):
        with create_recording_hdf5(path, "rec_001") as f:
            write_units(f, _units())
        _write_feature_with_large_attrs(path, attrs)

    write(tmp_path / "native.h5")
    monkeypatch.setattr(lowlevel, "native_hdf5", lambda: None)
    write(tmp_path / "wrapped.h5")
    assert_files_equal(tmp_path / "native.h5", tmp_path / "wrapped.h5")


def test_group_large_attrs_still_stored_as_hidden_children(rec, writer):
    attrs = _large_attrs()
    with open_recording_hdf5(rec, "r+") as f:
        write_feature_to_unit(f, "unit_000", "sta", {"kernel_trace": np.arange(5.0)}, attrs)
        store.set_h5_attrs(f["units/unit_001"], {"history": "h" * 90_000})
    with open_recording_hdf5(rec) as g:
        feature = g["units/unit_000/features/sta"]
        assert sorted(feature) == ["__attr__kernel", "__attr__notes", "__attr__tree", "kernel_trace"]
        back = store.decode_node(store.node_from_h5(feature))
        unit_attrs, _, _ = store.read_attrs(g["units/unit_001"])
        assert list_features(g, "unit_000") == ["sta"]
    for key, value in attrs.items():
        assert_exact(back[key], value, key_order=False)
    assert_exact(unit_attrs["history"], "h" * 90_000, key_order=False)
    assert max(_max_attr_storage(rec), 1) < HDF5_ATTR_CEILING


def test_missing_hidden_object_is_a_format_error(rec):
    _write_feature_with_large_attrs(rec, {"kernel": np.zeros(10_000)})
    with h5py.File(rec, "r+") as f:  # damage the file behind the store's back
        del f["units/unit_000/features/sta/__dsattr__kernel_trace"]
    with open_recording_hdf5(rec) as g, pytest.raises(FormatError, match="kernel") as info:
        store.read_attrs(g[ARRAY_PATH])
    assert "__dsattr__kernel_trace/kernel" in str(info.value) and str(rec) in str(info.value)


@pytest.mark.parametrize("name", ["__dsattr__spike_times", "__attr__x", "__h5stream_x"])
def test_reserved_member_names_are_refused(rec, name):
    units = _units(1)
    f = open_recording_hdf5(rec, "r+")
    with pytest.raises(UnsafeNameError, match="reserved"):
        write_units(f, {name: units["unit_000"]})
    with pytest.raises(UnsafeNameError, match="reserved"):
        write_units(f, {"unit_009": {**units["unit_000"], name: np.arange(3)}})
    with pytest.raises(UnsafeNameError, match="reserved"):
        write_feature_to_unit(f, "unit_000", name, {"a": np.arange(2)})
    with pytest.raises(UnsafeNameError, match="reserved"):
        write_stimulus(f, light_reference={name: np.ones(2)})
    f.close()
    with open_recording_hdf5(rec) as g:
        assert list_units(g) == ["unit_000", "unit_001"] and sorted(g["units"]) == ["unit_000", "unit_001"]
        assert sorted(g["stimulus"]) == [] and list_features(g, "unit_000") == []
    # Mapping keys with those prefixes are still stored exactly (by position, with the keys recorded).
    with open_recording_hdf5(rec, "r+") as f:
        write_feature_to_unit(f, "unit_000", "odd", {"inner": {name: np.arange(2)}})
    with open_recording_hdf5(rec) as g:
        back = store.decode_node(store.node_from_h5(g["units/unit_000/features/odd"]))
    assert_exact(back["inner"], {name: np.arange(2)}, key_order=False)


# --------------------------------------------------------------------------- sessions


def _session_content(target, attrs):
    """The same content through a step target (session or immediate mode)."""
    target.add_units(_units())
    target.add_feature("unit_000", "sta", {"kernel_trace": np.arange(5.0), "peak": 1.0},
                       {"version": "1", "history": "h" * 90_000})
    target.set_attrs(ARRAY_PATH, attrs)
    target.mark_step_complete()


def test_session_save_and_load_keep_large_dataset_attrs(tmp_path, writer):
    attrs = _large_attrs()
    session = create_session("rec", hdf5_path=tmp_path / "session.h5")
    with open_target(session=session, step="sta") as target:
        _session_content(target, attrs)
    session.save()
    with open_target(tmp_path / "immediate.h5", step="sta", create=True, dataset_id="rec") as target:
        _session_content(target, attrs)
    # Deferred and immediate mode write the same file, hidden objects included.
    assert_files_equal(tmp_path / "session.h5", tmp_path / "immediate.h5")
    assert "units/unit_000/features/sta/__dsattr__kernel_trace/kernel" in _all_names(tmp_path / "session.h5")
    assert _max_attr_storage(tmp_path / "session.h5") < HDF5_ATTR_CEILING

    loaded = PipelineSession.load(tmp_path / "session.h5")
    back = loaded.attrs(ARRAY_PATH)
    for key, value in attrs.items():
        assert_exact(back[key], value, key_order=False)
    assert_exact(loaded.attrs("units/unit_000/features/sta")["history"], "h" * 90_000, key_order=False)
    assert loaded.completed_steps == ["sta"]
    np.testing.assert_array_equal(loaded.get(ARRAY_PATH), np.arange(5.0))
    # A loaded session saved again writes the same file.
    loaded.save(tmp_path / "again.h5")
    assert_files_equal(tmp_path / "session.h5", tmp_path / "again.h5")
    loaded.close()


@pytest.mark.parametrize("memory_limit", [None, 200], ids=["in_memory", "spilled"])
def test_checkpoint_resume_equals_uninterrupted_run(tmp_path, memory_limit):
    attrs = _large_attrs()

    def finish(session):
        session.add_feature("unit_001", "late", {"trace": np.arange(3.0)}, {"version": "1"})
        session.set_attrs("units/unit_001/features/late/trace", {"note": "n" * 70_000})
        session.mark_step_complete("late")

    uninterrupted = create_session("rec", hdf5_path=tmp_path / "straight.h5", memory_limit=memory_limit)
    with open_target(session=uninterrupted, step="sta") as target:
        _session_content(target, attrs)
    if memory_limit is not None:
        assert uninterrupted.spilled_bytes > 0
    uninterrupted.checkpoint(tmp_path / "ckpt.h5")
    finish(uninterrupted)
    uninterrupted.save()

    resumed = PipelineSession.load(tmp_path / "ckpt.h5", hdf5_path=tmp_path / "resumed.h5",
                                   memory_limit=memory_limit)
    for key, value in attrs.items():
        assert_exact(resumed.attrs(ARRAY_PATH)[key], value, key_order=False)
    finish(resumed)
    resumed.save()
    assert_files_equal(tmp_path / "straight.h5", tmp_path / "resumed.h5")
    assert "units/unit_001/features/late/__dsattr__trace/note" in _all_names(tmp_path / "resumed.h5")
    resumed.close()


def test_session_resave_after_replacing_large_attrs(tmp_path):
    attrs = _large_attrs()
    target_path = tmp_path / "r.h5"
    session = create_session("rec", hdf5_path=target_path)
    with open_target(session=session, step="sta") as target:
        _session_content(target, attrs)
    session.save()
    session.set_attrs(ARRAY_PATH, {"kernel": np.arange(3)})
    session.save(overwrite=True)
    with h5py.File(target_path, "r") as f:
        assert sorted(f["units/unit_000/features/sta/__dsattr__kernel_trace"]) == ["notes", "tree"]
    session.set_attrs(ARRAY_PATH, {"notes": "n", "tree": None})
    session.save(overwrite=True)
    assert not [n for n in _all_names(target_path) if "__dsattr__" in n]
    loaded = PipelineSession.load(target_path)
    back = loaded.attrs(ARRAY_PATH)
    assert_exact(back, {"kernel": np.arange(3), "notes": "n", "tree": None, "small": 3}, key_order=False)
    loaded.close()
