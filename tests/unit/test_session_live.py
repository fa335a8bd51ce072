"""The session as the lab's code uses it: live units/stimulus/metadata, completed_steps as a set, the
original's save/checkpoint/source-file API; every write read back from the saved file with plain h5py."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from h5stream.errors import EncodingError
from h5stream.staging import FileArray
from hdmea.pipeline import PipelineSession, create_session


def _session(tmp_path, **kwargs):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5", **kwargs)
    rng = np.random.default_rng(3)
    s.add_units({f"unit_{uid:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, 50)).astype(np.uint64),
                                     "waveform": rng.random(40).astype(np.float32), "row": uid, "col": 2,
                                     "unit_num": uid}
                 for uid in (4, 12, 31)})
    s.add_metadata({"acquisition_rate": 20000.0})
    s.add_stimulus(light_reference={"raw_ch1": np.linspace(0, 1, 64)})
    return s


def test_writes_at_any_depth_are_saved(tmp_path):
    s = _session(tmp_path)
    geometry = {"center_row": 12.5, "center_col": 30.25, "area": np.float64(7.0), "mask": np.eye(3, dtype=bool)}
    s.units["unit_012"]["features"]["eimage_sta"] = {}
    s.units["unit_012"]["features"]["eimage_sta"]["geometry"] = geometry
    for uid in s.units.keys():
        if "auto_label" not in s.units[uid]:
            s.units[uid]["auto_label"] = {}
        s.units[uid]["auto_label"]["axon_type"] = {"unit_004": "rgc", "unit_012": "ac", "unit_031": "other"}[uid]
    if "section_time" not in s.stimulus:
        s.stimulus["section_time"] = {}
    sections = np.array([[100, 2000], [5000, 7000]], dtype=np.int64)
    s.stimulus["section_time"]["iprgc_test"] = sections
    s.metadata["gsheet_row"] = {"Genotype": "WT", "Age": np.int64(42)}
    s.metadata["rf_sta_geometry"] = {"frame_range": [10, 14]}
    s.metadata["rf_sta_geometry"]["frame_range"].append(15)  # a list read from the session is live too
    unit = s.units["unit_004"]
    unit["quality"] = 0.75  # a scalar in a unit's own group: an attribute of the unit, as the original
    # Reading back through the session gives what was written.
    assert s.units["unit_012"]["features"]["eimage_sta"]["geometry"]["center_col"] == 30.25
    assert s.units["unit_031"]["auto_label"]["axon_type"] == "other"
    np.testing.assert_array_equal(s.stimulus["section_time"]["iprgc_test"], sections)
    out = s.save(output_path=tmp_path / "nested" / "out.h5")
    assert out == tmp_path / "nested" / "out.h5"
    with h5py.File(out, "r") as f:
        g = f["units/unit_012/features/eimage_sta/geometry"]
        assert g["center_row"][()] == 12.5 and g["center_col"][()] == 30.25 and g["area"][()] == 7.0
        np.testing.assert_array_equal(g["mask"][()], np.eye(3, dtype=bool))
        labels = {u: f[f"units/{u}/auto_label/axon_type"][()] for u in f["units"]}
        assert {u: v.decode() if isinstance(v, bytes) else v for u, v in labels.items()} == {
            "unit_004": "rgc", "unit_012": "ac", "unit_031": "other"}
        np.testing.assert_array_equal(f["stimulus/section_time/iprgc_test"][()], sections)
        assert f["metadata/gsheet_row/Age"][()] == 42
        np.testing.assert_array_equal(f["metadata/rf_sta_geometry/frame_range"][()], [10, 14, 15])
        assert f["units/unit_004"].attrs["quality"] == 0.75


def test_in_place_array_edit_is_kept_and_a_spilled_array_refuses_one(tmp_path):
    s = _session(tmp_path)
    s.units["unit_004"]["waveform"][:3] = -1.0
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_004/waveform"][:3], [-1.0, -1.0, -1.0])
    (tmp_path / "b").mkdir()
    spilled = _session(tmp_path / "b", memory_limit=1)
    assert isinstance(spilled.tree.node(["units", "unit_004", "waveform"]).data, FileArray)
    waveform = spilled.units["unit_004"]["waveform"]
    with pytest.raises(ValueError):
        waveform[0] = 5.0  # a copy of data on disk: the edit would be lost, so it raises
    spilled.units["unit_004"]["waveform"] = np.where(np.arange(40) == 0, 5.0, waveform).astype(np.float32)
    spilled.close()


def test_writes_survive_a_spill_under_a_memory_budget(tmp_path):
    s = _session(tmp_path, memory_limit=2_000)
    big = np.arange(10_000, dtype=np.float64)
    s.units["unit_031"]["features"]["rf"] = {"sta": big, "fit": {"sigma": 1.5}}
    s.stimulus["section_time"] = {"noise": np.array([[10, 20]], np.int64)}
    assert s.spilled_bytes >= big.nbytes  # the feature went to the spill file
    np.testing.assert_array_equal(s.units["unit_031"]["features"]["rf"]["sta"], big)  # and comes back
    s.units["unit_031"]["features"]["rf"]["fit"]["sigma"] = 2.5
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_031/features/rf/sta"][()], big)
        assert f["units/unit_031/features/rf/fit/sigma"][()] == 2.5
        np.testing.assert_array_equal(f["stimulus/section_time/noise"][()], [[10, 20]])


def test_a_write_that_cannot_be_kept_raises(tmp_path):
    s = _session(tmp_path)
    with pytest.raises(EncodingError):
        s.units["unit_004"]["auto_label"] = {"when": object()}
    assert "auto_label" not in s.units["unit_004"]
    with pytest.raises(KeyError):
        s.units["unit_999"]["auto_label"] = {}


def test_integer_keys_and_deletes(tmp_path):
    s = _session(tmp_path)
    trials = s.units["unit_004"].setdefault("trials", {})
    trials[0] = np.arange(3)
    trials[1] = np.arange(5)
    trials["label"] = "x"
    del trials[0]
    assert list(s.units["unit_004"]["trials"]) == [1, "label"]
    s.save()
    r = PipelineSession.load(tmp_path / "rec.h5")
    assert list(r.units["unit_004"]["trials"]) == [1, "label"]
    np.testing.assert_array_equal(r.units["unit_004"]["trials"][1], np.arange(5))
    r.close()


def test_completed_steps_is_a_set_that_keeps_order(tmp_path):
    s = _session(tmp_path)
    s.mark_step_complete("load_recording")
    s.completed_steps.add("add_section_time_analog:failed")
    s.completed_steps.add("compute_sta")
    s.completed_steps.discard("add_section_time_analog:failed")
    s.completed_steps.discard("never_ran")
    assert "compute_sta" in s.completed_steps and "never_ran" not in s.completed_steps
    assert s.completed_steps == {"compute_sta", "load_recording"}
    assert list(s.completed_steps) == ["load_recording", "compute_sta"]
    assert sorted(s.completed_steps) == ["compute_sta", "load_recording"]
    s.save()
    assert PipelineSession.load(tmp_path / "rec.h5").completed_steps == ["load_recording", "compute_sta"]


def test_source_files_times_and_add_feature_of_any_value(tmp_path):
    s = create_session(dataset_id="rec", cmcr_path="/data/rec.cmcr", output_dir=tmp_path / "artifacts")
    assert s.source_files == {"cmcr_path": __import__("pathlib").Path("/data/rec.cmcr")}
    s.set_source_files(cmtr_path="/data/rec-.cmtr")
    assert set(s.source_files) == {"cmcr_path", "cmtr_path"}
    assert s.created_at and s.saved_at is None
    s.add_units({"unit_004": {"spike_times": np.arange(3, dtype=np.uint64)}})
    sta = np.random.default_rng(0).random((60, 15, 15))
    s.add_feature("unit_004", "sta_noise", sta, {"n_spikes": 3})
    s.add_feature("unit_004", "score", 0.5)
    out = s.save()
    assert out == tmp_path / "artifacts" / "rec.h5" and s.saved_at
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["units/unit_004/features/sta_noise/data"][()], sta)
        assert f["units/unit_004/features/sta_noise/metadata/n_spikes"][()] == 3
        assert f["units/unit_004/features/score/data"][()] == 0.5
        stored = json.loads(f.attrs["source_files"])
        assert [stored["cmcr_path"], stored["cmtr_path"]] == ["/data/rec.cmcr", "/data/rec-.cmtr"]
    with pytest.raises(FileExistsError):
        s.save()
    s.save(overwrite=True)
    s.save(path=out, overwrite=True)  # the earlier keyword keeps working


def test_sectioned_trials_answer_to_the_original_name(tiny_recording, tiny_truth, tmp_path):
    from hdmea.pipeline import add_section_time, load_recording, section_spike_times

    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s)
    add_section_time(stimulus=tiny_recording.stimulus_path, session=s)
    section_spike_times(session=s)
    movie = tiny_truth.step_movie
    for name, unit in tiny_truth.units.items():
        sectioned = s.units[name]["spike_times_sectioned"][movie]
        # a group of its own, as the original writes it (tests/data/lab_layout/unified_session_u6.json)
        assert "trials_spike_times" in sectioned and "trials_spike_times" in list(sectioned)
        trials = sectioned["trials_spike_times"]
        bounds = np.asarray(sectioned["trial_bounds"], dtype=np.int64)
        assert sorted(trials) == list(range(bounds.shape[0])) and bounds.shape[0] >= 2
        spikes = unit.spike_times.astype(np.int64)
        for k, (a, b) in enumerate(bounds):  # naive cut of the planted train, half-open trials
            np.testing.assert_array_equal(trials[k].astype(np.int64), spikes[(spikes >= a) & (spikes < b)])
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:  # stored, as the original stores it, and read as the lab reads it
        for name in tiny_truth.units:
            g = f[f"units/{name}/spike_times_sectioned/{movie}"]
            n = int(g["_attrs/n_trials"][()])
            assert n == len(g["trials_spike_times"]) >= 2
            for k in range(n):
                np.testing.assert_array_equal(g[f"trials_spike_times/{k}"][()], s.units[name][
                    "spike_times_sectioned"][movie]["trials_spike_times"][k])


def test_copies_and_pickles_of_the_views_are_plain_values(tmp_path):
    import copy
    import pickle

    s = _session(tmp_path)
    s.units["unit_004"]["auto_label"] = {"axon_type": "rgc", "scores": [1, 2]}
    view = s.units["unit_004"]
    deep = copy.deepcopy(view)
    assert type(deep) is dict and deep["auto_label"] == {"axon_type": "rgc", "scores": [1, 2]}
    np.testing.assert_array_equal(deep["spike_times"], s.units["unit_004"]["spike_times"])
    deep["auto_label"]["axon_type"] = "ac"  # a copy: the session keeps its value
    assert s.units["unit_004"]["auto_label"]["axon_type"] == "rgc"
    assert type(copy.copy(view)) is dict and type(copy.copy(view["auto_label"]["scores"])) is list
    back = pickle.loads(pickle.dumps(s.units["unit_004"]["auto_label"]))
    assert back == {"axon_type": "rgc", "scores": [1, 2]} and type(back) is dict
    assert pickle.loads(pickle.dumps(view["auto_label"]["scores"])) == [1, 2]


def test_writes_inside_stored_lists_and_dict_values_are_kept(tmp_path):
    s = _session(tmp_path)
    s.metadata["runs"] = [{"name": "a", "gain": 1.0}, {"name": "b", "gain": 2.0}]
    s.metadata["runs"][1]["gain"] = 3.5  # a dict inside a stored list
    s.metadata["runs"].append({"name": "c", "gain": 4.0})
    s.units["unit_004"]["auto_label"] = {"votes": [[1, 2], [3]]}
    s.units["unit_004"]["auto_label"]["votes"][1].append(4)  # a list inside a list
    s.set_attrs("units/unit_012", {"extra": {"source": "sheet", "n": 2}})  # a dict stored as one attribute
    s.units["unit_012"]["extra"]["n"] = 3
    arrays = [np.arange(3.0)]
    s.metadata["traces"] = arrays
    s.metadata["traces"][0][0] = 9.0  # the list assigned is the list read back: its array's edit is kept
    s.save()
    r = PipelineSession.load(tmp_path / "rec.h5")
    assert r.metadata["runs"] == [{"name": "a", "gain": 1.0}, {"name": "b", "gain": 3.5}, {"name": "c", "gain": 4.0}]
    assert r.units["unit_004"]["auto_label"]["votes"] == [[1, 2], [3, 4]]
    assert r.units["unit_012"]["extra"] == {"source": "sheet", "n": 3}
    np.testing.assert_array_equal(r.metadata["traces"][0], [9.0, 1.0, 2.0])
    with pytest.raises(ValueError):
        r.metadata["traces"][0][0] = 5.0  # an array inside a list read from a file is a copy: editing it raises
    r.close()
