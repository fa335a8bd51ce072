"""``StepTarget.has_each`` (every path's ``has`` in one call) and ``RegisteredExtractor.missing_inputs_each``
(every unit's ``missing_inputs`` in one call), what ``extract_features`` checks before it runs: against the
paths planted in a session (with and without a value the caller assigned and changed afterwards) and in the
saved file, and against the one-by-one calls."""

from __future__ import annotations

import numpy as np

from hdmea.features.registry import get_extractor
from hdmea.pipeline import create_session
from hdmea.session.target import open_target

UNITS = [f"unit_{u:03d}" for u in range(6)]
MOVIE = "movie_a"


def _session(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    s.add_metadata({"sampling_rate": 20_000.0})
    s.add_units({u: {"spike_times": np.arange(5, dtype=np.uint64) * (i + 1)} for i, u in enumerate(UNITS[:4])})
    s.put(f"units/{UNITS[4]}/waveform", np.zeros(3))  # a unit without spike times
    s.put(f"units/{UNITS[5]}/waveform", np.zeros(3))
    for u in UNITS[::2]:  # units 0, 2, 4 sectioned
        s.put(f"units/{u}/spike_times_sectioned/{MOVIE}/spike_times", np.arange(3, dtype=np.uint64))
    s.put("stimulus/frame_time/default", np.arange(10, dtype=np.uint64))
    return s


def _paths():
    paths = [f"units/{u}/{tail}" for u in UNITS
             for tail in ("spike_times", f"spike_times_sectioned/{MOVIE}", f"spike_times_sectioned/{MOVIE}/spike_times",
                          "features/rf", "features/rf/late", "waveform/nothing")]
    return paths + ["stimulus/frame_time/default", "stimulus/nothing", "units", "no_such_group/x"]


def _planted(followed: bool):
    there = set()
    for i, u in enumerate(UNITS):
        if i < 4:
            there.add(f"units/{u}/spike_times")
        if i % 2 == 0:
            there.update({f"units/{u}/spike_times_sectioned/{MOVIE}", f"units/{u}/spike_times_sectioned/{MOVIE}/spike_times"})
    if followed:
        there.update({f"units/{UNITS[1]}/features/rf", f"units/{UNITS[1]}/features/rf/late"})
    return [p in there or p in ("stimulus/frame_time/default", "units") for p in _paths()]


def test_has_each_in_a_session_and_in_its_file_is_each_path_there(tmp_path):
    s = _session(tmp_path)
    with open_target(None, s, step="check") as target:
        assert target.has_each(_paths()) == _planted(False)
        assert target.has_each(_paths()) == [target.has(p) for p in _paths()]
        assert target.has_each([]) == []
    feature = {"sta": np.ones(4)}
    s.units[UNITS[1]]["features"]["rf"] = feature
    feature["late"] = np.zeros(2)  # changed after it was assigned: the session follows it
    assert s.tree.followed_count
    with open_target(None, s, step="check") as target:
        assert target.has_each(_paths()) == _planted(True)
        assert target.has_each(_paths()) == [target.has(p) for p in _paths()]
    s.save()
    with open_target(tmp_path / "rec.h5", step="check") as target:
        assert target.has_each(_paths()) == _planted(True)


def test_missing_inputs_each_is_each_units_missing_inputs(tmp_path):
    s = _session(tmp_path)
    firing = get_extractor("firing_rate")
    step_up = get_extractor("step_up_5s_5i_3x")
    with open_target(None, s, step="check") as target:
        params = firing.resolve({"movie": MOVIE})
        expected = [[] if i % 2 == 0 else [f"units/{u}/spike_times_sectioned/{MOVIE}"] for i, u in enumerate(UNITS)]
        assert firing.missing_inputs_each(target, UNITS, params) == expected
        assert expected == [firing.missing_inputs(target, u, params) for u in UNITS]
        params = step_up.resolve({})
        expected = [[] if i < 4 else ["spike_times"] for i in range(len(UNITS))]
        assert step_up.missing_inputs_each(target, UNITS, params) == expected
        assert expected == [step_up.missing_inputs(target, u, params) for u in UNITS]
        assert step_up.missing_inputs_each(target, [], params) == []
    s.put("spike_times", np.arange(3, dtype=np.uint64))  # a recording-wide input stands for every unit's
    with open_target(None, s, step="check") as target:
        assert step_up.missing_inputs_each(target, UNITS, step_up.resolve({})) == [[] for _ in UNITS]
