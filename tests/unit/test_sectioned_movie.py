"""The trials of every unit that a session's sectioning keeps together (``SectionedMovie``, never in the file):
read by the step movie's features in place of every unit's arrays, giving what each unit's own arrays give
(each unit's ``extract``, read by path); dropped by any write of a unit's trials of the movie (and only by
such writes); a value changed in place is seen; nothing is kept for a file or a session with a memory limit."""

from __future__ import annotations

import numpy as np
import pytest

from hdmea.features.base import StoredGroup
from hdmea.features.on_off.step_up import StepUpFeatureExtractor
from hdmea.features.trials import SectionedMovie, sectioned_key, units_movie_trials
from hdmea.pipeline import add_section_time, create_session, extract_features, load_recording, section_spike_times
from hdmea.session.target import open_target

RATE = 20_000.0


@pytest.fixture
def sectioned(tiny_recording, tiny_truth):
    """(a session of the tiny recording after section_spike_times, the step movie)."""
    s = create_session("rec")
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s)
    add_section_time(stimulus=tiny_recording.stimulus_path, session=s)
    section_spike_times(session=s)
    return s, tiny_truth.step_movie


class _UnitByUnit:
    """A step's target without what a session keeps derived: the units' arrays read one by one."""

    def __init__(self, target) -> None:
        self._target = target

    def __getattr__(self, name):
        if name == "derived":
            raise AttributeError(name)
        return getattr(self._target, name)


def _kept(session, movie):
    with open_target(None, session, step="extract_features") as target:
        return target.derived(sectioned_key(movie))


def _same(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert type(got[key]) is type(value), key
        assert got[key] == value or (np.isnan(value) and np.isnan(got[key])), (key, got[key], value)


def _features_against_each_units_own(session, movie) -> dict:
    """The features of every unit in one pass, checked against each unit's own ``extract`` (its arrays read by
    path); returns them."""
    extractor = StepUpFeatureExtractor()
    with open_target(None, session, step="extract_features") as target:
        units = target.unit_ids()
        rate = float(np.asarray(target.get("metadata/sampling_rate")).reshape(-1)[0])
        many = extractor.extract_units(target, units, {})
        metadata, stimulus = StoredGroup(target, "metadata"), StoredGroup(target, "stimulus")
        for unit in units:
            if unit not in many:  # a unit without trials of the movie: left to its own extract
                assert not target.has(f"units/{unit}/spike_times_sectioned/{movie}/trial_offsets")
                continue
            one = extractor.extract(StoredGroup(target, f"units/{unit}"), stimulus, {}, metadata=metadata)
            _same(many[unit], one)
        # and the trials read from the kept arrays (where kept) equal those read unit by unit
        kept = units_movie_trials(target, units, movie, rate)
        plain = units_movie_trials(_UnitByUnit(target), units, movie, rate)
        assert kept.units == plain.units
        np.testing.assert_array_equal(kept.values, plain.values)
        np.testing.assert_array_equal(kept.starts, plain.starts)
        np.testing.assert_array_equal(kept.lengths_us, plain.lengths_us)
        np.testing.assert_array_equal(kept.unit_trials, plain.unit_trials)
    return many


def test_the_sectioning_keeps_the_units_trials_as_staged_and_the_features_equal_each_units_own(sectioned, tmp_path):
    s, movie = sectioned
    kept = _kept(s, movie)
    assert isinstance(kept, SectionedMovie) and list(kept.units) == s.unit_ids()
    for r, unit in enumerate(kept.units):  # every unit's staged arrays are views of the kept ones
        group = f"units/{unit}/spike_times_sectioned/{movie}"
        staged = s.get(f"{group}/spike_times")
        assert np.shares_memory(staged, kept.spikes) or not staged.size
        np.testing.assert_array_equal(s.get(f"{group}/spike_times"), kept.spikes[kept.firsts[r]:kept.lasts[r]])
        np.testing.assert_array_equal(s.get(f"{group}/trial_offsets"), kept.offsets[r])
        np.testing.assert_array_equal(s.get(f"{group}/trial_bounds"), kept.bounds[r])
    many = _features_against_each_units_own(s, movie)
    assert any(row["on_response_flag"] for row in many.values())
    # writes elsewhere keep it: a feature, the whole step, a save
    s.put(f"units/{kept.units[0]}/features/other", {"value": 1.0})
    s = extract_features(features=[movie], session=s)
    s.save(output_path=tmp_path / "rec.h5")
    assert _kept(s, movie) is kept


def _offsets_shifted(s, movie, unit):
    path = f"units/{unit}/spike_times_sectioned/{movie}/trial_offsets"
    offsets = np.array(s.get(path))
    offsets[1:-1] = np.minimum(offsets[1:-1] + 1, offsets[-1])
    s.put(path, offsets)


def _bounds_moved_live(s, movie, unit):
    bounds = np.array(s.units[unit]["spike_times_sectioned"][movie]["trial_bounds"])
    s.units[unit]["spike_times_sectioned"][movie]["trial_bounds"] = bounds + np.uint64(2_000)


def _margin_set(s, movie, unit):
    s.set_attrs(f"units/{unit}/spike_times_sectioned/{movie}", {"pad_margin_before_s": 0.01})


def _movie_deleted(s, movie, unit):
    del s.units[unit]["spike_times_sectioned"][movie]


def _unit_added(s, movie, unit):
    s.add_units({"unit_999": {"spike_times": np.arange(0, 2_000_000, 997, dtype=np.uint64)}})


def _unit_replaced(s, movie, unit):
    spikes = np.array(s.get(f"units/{unit}/spike_times"))
    s.put(f"units/{unit}", {"spike_times": spikes})


@pytest.mark.parametrize("change", [_offsets_shifted, _bounds_moved_live, _margin_set, _movie_deleted, _unit_added,
                                    _unit_replaced])
def test_a_write_of_a_units_trials_drops_what_was_kept_and_the_features_follow_the_change(sectioned, change):
    s, movie = sectioned
    unit = s.unit_ids()[2]
    before = _features_against_each_units_own(s, movie)
    change(s, movie, unit)
    assert _kept(s, movie) is None
    after = _features_against_each_units_own(s, movie)
    if change in (_offsets_shifted, _bounds_moved_live, _margin_set):  # the unit's features follow its change
        assert after[unit] != before[unit]
    if change in (_movie_deleted, _unit_replaced):
        assert unit not in after
    if change is _unit_added:
        assert "unit_999" in s.unit_ids() and "unit_999" not in after
    for other in set(before) - {unit}:
        _same(after[other], before[other])


def _spikes_later(sectioned):
    spikes = sectioned["spike_times"]
    spikes += np.uint64(3_000)  # every trial's spikes 150 ms later (no assignment back: a change in place)


def _offsets_later(sectioned):
    offsets = sectioned["trial_offsets"]
    offsets[1:-1] = np.minimum(offsets[1:-1] + 2, offsets[-1])  # each trial's first two spikes its previous trial's


def _bounds_earlier(sectioned):
    bounds = sectioned["trial_bounds"]
    bounds -= np.uint64(1_000)  # every trial 50 ms earlier


@pytest.mark.parametrize("change", [_spikes_later, _offsets_later, _bounds_earlier])
def test_a_value_changed_in_place_is_seen_through_what_was_kept(sectioned, change):
    s, movie = sectioned
    unit = s.unit_ids()[1]
    before = _features_against_each_units_own(s, movie)
    kept = _kept(s, movie)
    change(s.units[unit]["spike_times_sectioned"][movie])  # the staged arrays themselves, changed in place
    assert _kept(s, movie) is kept  # (no write: kept, and it reads the changed values)
    after = _features_against_each_units_own(s, movie)
    assert after[unit] != before[unit]


def test_nothing_is_kept_for_a_file_nor_a_session_with_a_memory_limit(tiny_recording, tiny_truth, tmp_path):
    movie = tiny_truth.step_movie
    s = create_session("rec", memory_limit="1 GB")
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s)
    add_section_time(stimulus=tiny_recording.stimulus_path, session=s)
    section_spike_times(session=s)
    assert _kept(s, movie) is None
    _features_against_each_units_own(s, movie)
    path = tmp_path / "rec.h5"
    s.save(output_path=path)
    with open_target(path, step="extract_features") as target:
        assert target.derived(sectioned_key(movie)) is None
