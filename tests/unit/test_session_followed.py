"""A value the lab's code assigns into a session and changes afterwards, as it would a plain dict, is saved
with the change, spilled or not; where the change cannot be merged, the save refuses loudly.  Every file
is read back with plain h5py."""

from __future__ import annotations

import gc
import weakref

import h5py
import numpy as np
import pytest

from h5stream.errors import EncodingError
from hdmea.errors import AssignedValueChangedError
from hdmea.pipeline import PipelineSession, create_session

#: None keeps everything in memory; 1 byte spills every array of a numeric dtype the moment it is staged
LIMITS = [None, 1]


def _session(tmp_path, memory_limit=None, n_units=3):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5", memory_limit=memory_limit)
    rng = np.random.default_rng(7)
    s.add_units({f"unit_{uid:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, 40)).astype(np.uint64),
                                     "waveform": rng.random(30).astype(np.float32)}
                 for uid in range(n_units)})
    return s


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("memory_limit", LIMITS)
def test_dict_nested_dict_list_and_array_changed_after_assignment_are_saved(tmp_path, memory_limit):
    s = _session(tmp_path, memory_limit)
    sta = np.linspace(0.0, 1.0, 500)
    feature = {}
    s.units["unit_001"]["features"]["rf"] = feature  # assigned empty, filled afterwards
    feature["sta"] = sta
    feature["n_spikes"] = 12
    labels = {"auto": {"axon_type": "rgc"}}
    s.units["unit_002"]["auto_label"] = labels
    labels["auto"]["axon_type"] = "ac"  # a nested dict changed in place
    labels["auto"]["scores"] = [0.25, 0.75]
    labels["manual"] = {"by": "lab"}
    frames = [10, 14]
    s.metadata["frame_range"] = frames
    frames.append(15)
    trace = np.zeros(400)
    s.stimulus["trace"] = trace
    if memory_limit is not None:
        assert s.spilled_bytes >= trace.nbytes  # the array went to disk before it was edited
    trace[7] = 3.5  # edited in place by the caller after it was staged (and spilled)
    sta[0] = -1.0
    out = s.save()
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["units/unit_001/features/rf/sta"][()], sta)
        assert f["units/unit_001/features/rf/sta"][0] == -1.0
        assert f["units/unit_001/features/rf/n_spikes"][()] == 12
        assert _text(f["units/unit_002/auto_label/auto/axon_type"][()]) == "ac"
        np.testing.assert_array_equal(f["units/unit_002/auto_label/auto/scores"][()], [0.25, 0.75])
        assert _text(f["units/unit_002/auto_label/manual/by"][()]) == "lab"
        np.testing.assert_array_equal(f["metadata/frame_range"][()], [10, 14, 15])
        assert f["stimulus/trace"][7] == 3.5 and np.count_nonzero(f["stimulus/trace"][()]) == 1


@pytest.mark.parametrize("memory_limit", LIMITS)
def test_the_assigned_object_is_what_the_session_gives_back(tmp_path, memory_limit):
    s = _session(tmp_path, memory_limit)
    d = {"a": 1}
    s.units["unit_000"]["f"] = d
    assert s.units["unit_000"]["f"] is d
    s.units["unit_000"]["f"]["b"] = 2  # a write through the session is a write into d, as with plain dicts
    d["c"] = 3
    assert d == {"a": 1, "b": 2, "c": 3}
    assert s.get("units/unit_000/f") == {"a": 1, "b": 2, "c": 3}  # a path read sees the changes too
    trials = s.units["unit_000"].setdefault("trials", {})
    trials[0] = np.arange(3)
    trials["label"] = "x"
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert [f[f"units/unit_000/f/{k}"][()] for k in "abc"] == [1, 2, 3]
    r = PipelineSession.load(tmp_path / "rec.h5")
    assert list(r.units["unit_000"]["trials"]) == [0, "label"]
    np.testing.assert_array_equal(r.units["unit_000"]["trials"][0], np.arange(3))
    r.close()


def test_a_whole_unit_assigned_as_a_dict_and_filled_afterwards(tmp_path):
    """The lab's resume scripts build each unit as a dict, assign it, then add its features."""
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5", memory_limit=2_000)
    spikes = np.arange(0, 1000, 7, dtype=np.uint64)
    unit_data = {"spike_times": spikes, "row": 3}
    s.units["unit_005"] = unit_data
    unit_data["features"] = {"sta_noise": {"data": np.ones((20, 4, 4))}}
    unit_data["spike_times_sectioned"] = {"movie": {"trial_bounds": np.array([[0, 500], [500, 1000]])}}
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_005/spike_times"][()], spikes)
        np.testing.assert_array_equal(f["units/unit_005/features/sta_noise/data"][()], np.ones((20, 4, 4)))
        np.testing.assert_array_equal(f["units/unit_005/spike_times_sectioned/movie/trial_bounds"][()],
                                      [[0, 500], [500, 1000]])
        assert f["units/unit_005"].attrs["row"] == 3


def test_values_the_caller_let_go_are_staged_within_the_budget_and_not_kept_alive(tmp_path):
    """The lab's loop: a fresh dict per unit, assigned, filled, then dropped for the next unit."""
    limit = 20_000
    s = _session(tmp_path, limit, n_units=30)
    last_sta = None
    for i in range(30):
        feature = {"sta": np.full(1000, float(i))}
        s.units[f"unit_{i:03d}"]["features"]["rf"] = feature
        feature["late"] = np.full(600, float(i))  # added after the assignment
        if i == 10:
            last_sta = weakref.ref(feature["sta"])
    del feature
    s.units["unit_000"]["quality"] = 1.0  # any later assignment lets go of what the caller dropped
    gc.collect()
    assert last_sta() is None  # the session does not keep a dropped, spilled array in memory
    assert s.tree.followed_count <= 2
    assert s.resident_bytes <= limit
    assert s.spilled_bytes >= 25 * (1000 + 600) * 8  # the late arrays were measured and spilled too
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        for i in range(30):
            np.testing.assert_array_equal(f[f"units/unit_{i:03d}/features/rf/late"][()], np.full(600, float(i)))
            np.testing.assert_array_equal(f[f"units/unit_{i:03d}/features/rf/sta"][()], np.full(1000, float(i)))


@pytest.mark.parametrize("memory_limit", LIMITS)
def test_a_change_after_the_save_makes_the_session_unsaved_again(tmp_path, memory_limit):
    s = _session(tmp_path, memory_limit)
    d = {"x": 1, "arr": np.arange(300.0)}
    s.units["unit_000"]["f"] = d
    s.save()
    assert s.is_saved
    d["x"] = 2
    d["arr"][0] = -5.0
    assert not s.is_saved
    assert s.ensure_saved() == tmp_path / "rec.h5"
    s.checkpoint(tmp_path / "ck.h5")
    s.close()
    for name in ("rec.h5", "ck.h5"):
        with h5py.File(tmp_path / name, "r") as f:
            assert f["units/unit_000/f/x"][()] == 2 and f["units/unit_000/f/arr"][0] == -5.0



def test_an_array_changed_in_place_before_a_checkpoint_leaves_the_session_unsaved(tmp_path, monkeypatch):
    """A save and a checkpoint write every array and compare none with the last save; the comparison
    comes when the state is read, and finds the change the checkpoint holds but the saved file does not."""
    s = _session(tmp_path)
    trace = np.arange(500.0)
    s.units["unit_001"]["trace"] = trace
    s.save()
    assert s.is_saved
    trace[3] = -1.0  # in place: nothing tells the session
    from hdmea.session._followed import FollowedValues

    compared = []
    real = FollowedValues.changed_since_save
    monkeypatch.setattr(FollowedValues, "changed_since_save",
                        lambda self, root: compared.append(1) or real(self, root))
    s.checkpoint(tmp_path / "ck.h5")
    assert compared == []  # the checkpoint itself digested nothing to compare
    assert s.save_state.name == "DEFERRED" and not s.is_saved and compared
    with h5py.File(tmp_path / "ck.h5", "r") as ck, h5py.File(tmp_path / "rec.h5", "r") as saved:
        assert ck["units/unit_001/trace"][3] == -1.0 and saved["units/unit_001/trace"][3] == 3.0
    s.save(overwrite=True)
    assert s.save_state.name == "SAVED" and s.is_saved
    s.close()

def test_a_change_the_session_cannot_merge_is_refused_loudly(tmp_path):
    s = _session(tmp_path)
    d = {"x": 1}
    s.units["unit_000"]["f"] = d
    s.put("units/unit_000/f/y", np.arange(4))  # the session itself writes below the dict
    s.save()  # unchanged since: saved with both
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert f["units/unit_000/f/x"][()] == 1
        np.testing.assert_array_equal(f["units/unit_000/f/y"][()], np.arange(4))
    d["x"] = 2  # the dict and the session's own write can no longer be one value
    with pytest.raises(AssignedValueChangedError, match="/units/unit_000/f") as info:
        s.save(overwrite=True)
    assert "assign the dict again" in str(info.value)
    with pytest.raises(AssignedValueChangedError):
        s.checkpoint(tmp_path / "ck.h5")
    assert not (tmp_path / "ck.h5").exists()
    with h5py.File(tmp_path / "rec.h5", "r") as f:  # the earlier file is untouched
        assert f["units/unit_000/f/x"][()] == 1
    s.units["unit_000"]["f"] = d  # assigning it again is the way out
    s.save(overwrite=True)
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert f["units/unit_000/f/x"][()] == 2


def test_a_value_the_session_cannot_store_added_later_raises_at_the_save(tmp_path):
    s = _session(tmp_path)
    d = {"x": 1}
    s.units["unit_000"]["f"] = d
    d["bad"] = object()
    with pytest.raises(EncodingError, match="/units/unit_000/f"):
        s.save()
    assert not (tmp_path / "rec.h5").exists()
    del d["bad"]
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert f["units/unit_000/f/x"][()] == 1


def test_replaced_or_deleted_values_are_no_longer_followed(tmp_path):
    s = _session(tmp_path, memory_limit=1)
    old = {"x": np.arange(50.0)}
    s.units["unit_000"]["f"] = old
    s.units["unit_000"]["f"] = {"x": np.zeros(3)}  # replaced: a plain dict would forget `old` too
    old["x"][0] = 99.0
    gone = [1, 2]
    s.metadata["gone"] = gone
    del s.metadata["gone"]
    gone.append(3)
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_000/f/x"][()], np.zeros(3))
        assert "gone" not in f["metadata"]


def test_a_mapping_assigned_as_session_units_follows_its_units_and_refuses_new_keys(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    units = {"unit_001": {"spike_times": np.arange(4, dtype=np.uint64)},
             "unit_002": {"spike_times": np.arange(6, dtype=np.uint64)}}
    s.units = units
    units["unit_001"]["row"] = 7  # inside a unit: followed with the unit
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert sorted(f["units"]) == ["unit_001", "unit_002"]
        assert f["units/unit_001"].attrs["row"] == 7
    units["unit_003"] = {"spike_times": np.arange(2, dtype=np.uint64)}  # a key of the mapping itself
    with pytest.raises(AssignedValueChangedError, match="session.units"):
        s.save(overwrite=True)
    s.units = units  # assigned again, as the message says
    s.units["unit_004"] = {"spike_times": np.arange(3, dtype=np.uint64)}  # added through the session
    s.save(overwrite=True)
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert sorted(f["units"]) == ["unit_001", "unit_002", "unit_003", "unit_004"]


def test_a_view_taken_before_the_assignment_and_a_step_write_keep_the_value_watched(tmp_path):
    s = _session(tmp_path)
    s.units["unit_000"]["f"] = {"old": 1}
    view = s.units["unit_000"]
    d = {"x": 1}
    view["f"] = d
    stale = s.units["unit_001"]  # a unit view; the unit is then replaced by a dict of the caller's
    unit = {"spike_times": np.arange(5, dtype=np.uint64)}
    s.units["unit_001"] = unit
    stale["note"] = "from the view"  # the session writes below the caller's unit dict
    s.add_feature("unit_000", "score", 0.5)  # a step's write beside the followed dict: not below it
    d["y"] = 2
    s.save()
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert f["units/unit_000/f/x"][()] == 1 and f["units/unit_000/f/y"][()] == 2
        assert _text(f["units/unit_001"].attrs["note"]) == "from the view"
        assert f["units/unit_000/features/score/data"][()] == 0.5
    unit["row"] = 4  # changed after the session wrote below it: refused, not lost
    with pytest.raises(AssignedValueChangedError, match="/units/unit_001"):
        s.save(overwrite=True)
