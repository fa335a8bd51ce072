"""The step movie's ON/OFF features of every unit at once (``StepUpFeatureExtractor.extract_units``, what
``extract_features`` runs) against each unit's own ``extract`` and the trial-by-trial naive twin, on planted
spike trains; and the saved file's features against those of the unit-by-unit run, read with plain h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.features.base import StoredGroup
from hdmea.features.on_off.step_up import StepUpFeatureExtractor
from hdmea.features.registry import FeatureRegistry, RegisteredExtractor, get_extractor
from hdmea.pipeline import create_session, extract_features
from hdmea.features.trials import units_movie_trials
from hdmea.session.target import open_target
from tests.reference import step_up_responses_naive

MOVIE = "step_up_5s_5i_3x"
RATE = 20_000.0
PERIOD = 333  # samples between display frames


def _same(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert type(got[key]) is type(value), key
        assert got[key] == value or (np.isnan(value) and np.isnan(got[key])), (key, got[key], value)


def _planted(rng, n_units=23, shared=False):
    """A session whose units hold sectioned trials of the step movie, each unit its own case; the units'
    trials cut one by one (samples) and their bounds, for the twin.  ``shared``: every unit's sectioned spikes
    a part of one uint64 buffer, other values between them (as the sectioning stages them)."""
    buffer = np.zeros(0, np.uint64)
    session = create_session("planted")
    session.add_metadata({"sampling_rate": RATE})
    session.put("stimulus/frame_time/default", np.arange(0, 4_000_000, PERIOD, dtype=np.uint64))
    planted = {}
    for u in range(n_units):
        unit = f"unit_{u:03d}"
        n_trials = int(rng.integers(1, 40))
        length = 12_000 if u % 7 else 9_000  # another trial length: other windows
        bounds = np.array([[50_000 + k * 13_000, 50_000 + k * 13_000 + length] for k in range(n_trials)])
        trials = []
        for k, (b0, b1) in enumerate(bounds):
            n = 0 if (u % 5 == 1 and k % 3 == 0) else int(rng.integers(0, 40))
            trial = np.sort(rng.integers(b0, b1, n))
            if u == 4 and k == 1 and n > 2:
                trial = trial[::-1].copy()  # a trial out of order
            trials.append(trial)
        spikes = np.concatenate(trials) if trials else np.empty(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum([t.size for t in trials])]).astype(np.int64)
        group = f"units/{unit}/spike_times_sectioned/{MOVIE}"
        session.add_units({unit: {"spike_times": spikes.astype(np.uint64)}})
        if u == 6:
            planted[unit] = None  # no sectioned trials: the unit's own extract runs
            continue
        dtype = np.int64 if u % 3 == 0 else np.uint64  # as the sectioning stores them, and signed
        if shared:  # the unit's part of one buffer, after values of no unit's (the buffer grows: views taken below)
            gap = rng.integers(0, 10**9, int(rng.integers(0, 50))).astype(np.uint64)
            buffer = np.concatenate([buffer, gap, spikes.astype(np.uint64)])
            planted[unit] = (buffer.size - spikes.size, buffer.size)
        else:
            session.put(f"{group}/spike_times", spikes.astype(dtype))
        session.put(f"{group}/trial_offsets", offsets)
        session.put(f"{group}/trial_bounds", bounds.astype(np.int64))
        pad = (0.05, 0.1) if u % 4 == 2 else (0.0, 0.0)
        session.set_attrs(group, {"pad_margin_before_s": pad[0], "pad_margin_after_s": pad[1]})
        planted[unit] = (trials, bounds, pad, *(planted[unit] if shared else ()))
    if shared:
        for unit, found in planted.items():
            if found is not None:
                session.put(f"units/{unit}/spike_times_sectioned/{MOVIE}/spike_times", buffer[found[3]:found[4]])
                planted[unit] = found[:3]
    session.mark_step_complete("load_recording")
    return session, planted


def _twin(trials, bounds, pad, config):
    """The naive twin on the planted trials: spike times less each trial's unpadded start, in us."""
    before, after = round(pad[0] * RATE), round(pad[1] * RATE)
    starts = bounds[:, 0].astype(np.float64) + before
    scale = 1e6 / RATE
    cut = [(t.astype(np.float64) - s) * scale for t, s in zip(trials, starts)]
    length = float(np.min((bounds[:, 1] - after - starts) * scale))
    extractor = StepUpFeatureExtractor()
    onset, offset = extractor._events(config, length, PERIOD * scale)
    windows = extractor._windows(config)
    return step_up_responses_naive(cut, onset=onset, offset=offset, trial_end=length, **windows)


@pytest.mark.parametrize("config", [{}, {"transient_window_us": 30_000.0, "on_frame": 17, "threshold_factor": 1.5},
                                    {"stim_onset_us": 20_000.0, "stim_offset_us": 300_000.0}])
def test_extract_units_equals_each_units_extract_and_the_naive_twin(config):
    session, planted = _planted(np.random.default_rng(len(config)))
    extractor = StepUpFeatureExtractor(config=config)
    with open_target(None, session, step="extract_features") as target:
        units = target.unit_ids()
        many = extractor.extract_units(target, units, config)
        metadata, stimulus = StoredGroup(target, "metadata"), StoredGroup(target, "stimulus")
        one = {u: extractor.extract(StoredGroup(target, f"units/{u}"), stimulus, config, metadata=metadata)
               for u in units}
    assert sorted(many) == sorted(u for u in units if planted[u] is not None)  # the unit without trials left out
    for unit, got in many.items():
        _same(got, one[unit])
        _same(got, _twin(*planted[unit], config))
    assert any(got["on_response_flag"] for got in many.values()) or any(not np.isnan(got["on_latency_ms"])
                                                                        for got in many.values())


def test_units_whose_spikes_share_one_buffer_are_read_where_they_lie_and_give_the_same_features():
    config = {"transient_window_us": 30_000.0}
    session, planted = _planted(np.random.default_rng(11), shared=True)
    extractor = StepUpFeatureExtractor(config=config)
    with open_target(None, session, step="extract_features") as target:
        units = target.unit_ids()
        trials = units_movie_trials(target, units, MOVIE, RATE)
        assert trials.ends is not None  # the buffer itself, no copy of the units' spikes
        assert trials.spikes.size > sum(sum(t.size for t in p[0]) for p in planted.values() if p is not None)
        many = extractor.extract_units(target, units, config)
        metadata, stimulus = StoredGroup(target, "metadata"), StoredGroup(target, "stimulus")
        one = {u: extractor.extract(StoredGroup(target, f"units/{u}"), stimulus, config, metadata=metadata)
               for u in units}
    assert sorted(many) == sorted(u for u in units if planted[u] is not None)
    for unit, got in many.items():
        _same(got, one[unit])
        _same(got, _twin(*planted[unit], config))
    # the trials' values where they lie equal those of the units' own reads, trial by trial
    want = np.concatenate([(np.concatenate(p[0]).astype(np.float64)
                            - np.repeat(p[1][:, 0] + round(p[2][0] * RATE), [t.size for t in p[0]])) * (1e6 / RATE)
                           for u, p in sorted(planted.items()) if p is not None])
    np.testing.assert_array_equal(trials.values, want)


def test_units_whose_offsets_do_not_cut_their_spikes_are_left_to_their_own_extract():
    session, planted = _planted(np.random.default_rng(7), n_units=6)
    session.put(f"units/unit_002/spike_times_sectioned/{MOVIE}/trial_offsets", np.array([0, 5, 2, 9], np.int64))
    with open_target(None, session, step="extract_features") as target:
        many = StepUpFeatureExtractor().extract_units(target, target.unit_ids())
    assert sorted(many) == ["unit_000", "unit_001", "unit_003", "unit_004", "unit_005"]
    for unit in many:
        _same(many[unit], _twin(*planted[unit], {}))
    # the step reports that unit's failure as its own extract raises it, and stores the others
    session = extract_features(features=[MOVIE], session=session)
    assert any("Failed step_up_5s_5i_3x for unit_002: ValueError" in w for w in session.warnings)
    assert sorted(u for u in session.units if session.has(f"units/{u}/features/{MOVIE}")) == sorted(many)


def _features(path):
    with h5py.File(path, "r") as f:
        out = {}
        for unit in f["units"]:
            node = f[f"units/{unit}/features/{MOVIE}"]
            out[unit] = ({k: v for k, v in node.attrs.items() if k != "extracted_at"}, sorted(node))
        return out


def test_the_saved_features_equal_those_of_the_unit_by_unit_run(tmp_path, monkeypatch):
    paths = {}
    for mode in ("at once", "one by one"):
        if mode == "one by one":
            monkeypatch.setattr(RegisteredExtractor, "batch_runner", lambda self, params: None)
        session, _ = _planted(np.random.default_rng(11))
        session = extract_features(features=[MOVIE], session=session)
        paths[mode] = tmp_path / f"{mode.replace(' ', '_')}.h5"
        session.save(output_path=paths[mode])
    at_once, one_by_one = _features(paths["at once"]), _features(paths["one by one"])
    assert list(at_once) == list(one_by_one) and len(at_once) == 23
    for unit in at_once:
        attrs, others = at_once[unit], one_by_one[unit]
        assert list(attrs[0]) == list(others[0]) and attrs[1] == others[1]
        for key, value in attrs[0].items():
            other = others[0][key]
            assert type(value) is type(other), (unit, key)
            assert value == other or (value != value and other != other), (unit, key, value, other)


def test_a_subclass_with_its_own_extract_runs_unit_by_unit():
    class Halved(StepUpFeatureExtractor):
        def extract(self, unit_data, stimulus_data, config=None, metadata=None):
            out = super().extract(unit_data, stimulus_data, config, metadata)
            return {**out, "on_peak_value": out["on_peak_value"] / 2}

    FeatureRegistry._add("halved_step_test", Halved, replace=True)
    try:
        assert get_extractor("halved_step_test").batch_runner({"movie": MOVIE}) is None
        assert get_extractor(MOVIE).batch_runner({}) is not None
        session, planted = _planted(np.random.default_rng(3), n_units=4)
        session = extract_features(features=[{"name": "halved_step_test", "params": {"movie": MOVIE}}],
                                   session=session)
        for unit, (trials, bounds, pad) in ((u, p) for u, p in planted.items() if p is not None):
            stored = session.attrs(f"units/{unit}/features/halved_step_test")
            assert stored["on_peak_value"] == _twin(trials, bounds, pad, {})["on_peak_value"] / 2
    finally:
        FeatureRegistry._registry.pop("halved_step_test", None)
