"""Receptive fields, electrical images and features on synthetic recordings with a planted truth.

The ground-truth recording has strongly driven LNP units on 8 x 8 noise at the
display rate, so that an STA over ~6 minutes is well above its noise floor, and
footprints well above the raw noise; the equality tests use the tiny recording.
"""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from hdmea.errors import MissingStepError
from hdmea.features import UnknownFeatureError, get_extractor, list_extractors
from hdmea.pipeline import (
    add_section_time,
    compute_sta,
    create_session,
    extract_features,
    load_recording,
    load_recording_with_eimage_sta,
    section_spike_times,
)
from hdmea.synthetic import SyntheticConfig, generate_recording

from tests.filecompare import assert_files_equal

# Planted signal strong enough for the estimates to clear their noise floors: the STA
# noise is set by the number of distinct noise frames (held frames do not count twice),
# the electrical image's by the spikes inside the short raw recording.
GROUND_TRUTH = dict(
    gain=8.0, n_units=6, n_silent_units=1, raw_seconds=1.0, noise_frames_per_image=1, noise_images=21_600,
    filter_lags=12, noise_shape=(8, 8), max_rate_hz=300.0, noise_uv=4.0, footprint_amplitude_uv=(100.0, 180.0),
)


def _run_immediate(rec, h5):
    load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False)
    add_section_time(h5, rec.stimulus_path)
    section_spike_times(h5)
    sta = compute_sta(h5)
    features = extract_features(h5)
    return sta, features


def _run_deferred(rec, h5):
    session = create_session(rec.cmcr_path.stem)
    assert load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, waveforms=False, session=session) is session
    assert add_section_time(None, rec.stimulus_path, session=session) is session
    assert section_spike_times(session=session) is session
    assert compute_sta(session=session) is session
    assert extract_features(session=session) is session
    session.save(h5)
    return session


@pytest.fixture(scope="module")
def truth_recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("part2_truth")
    rec = generate_recording(out, "truth", config=SyntheticConfig.moderate(**GROUND_TRUTH))
    h5 = out / "truth.h5"
    sta, features = _run_immediate(rec, h5)
    return rec, rec.truth(), h5, sta, features


@pytest.fixture(scope="module")
def tiny_recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("part2_tiny")
    rec = generate_recording(out, "tiny", config=SyntheticConfig.tiny(raw_seconds=0.3))
    return rec


@pytest.mark.slow  # builds the moderate recording of the three ground-truth tests (~5 s)
def test_sta_of_every_unit_with_2000_spikes_matches_its_planted_filter(truth_recording):
    rec, truth, h5, sta, _ = truth_recording
    movie = rec.config.noise_movie
    checked = 0
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            g = f[f"units/{unit_id}/features/sta_{movie}"]
            n_used = int(np.asarray(g.attrs["n_spikes_used"]).reshape(-1)[0])
            assert n_used == sta.n_spikes_used[unit_id]
            if n_used < 2000:
                assert unit.kind == "silent"
                continue
            planted = unit.sta_filter  # index j is lag j + 1
            estimate = g["data"][()][::-1][: planted.shape[0]]  # reversed: index j is lag j + 1 too
            corr = np.corrcoef(estimate.ravel() - estimate.mean(), planted.ravel())[0, 1]
            assert corr >= 0.9, (unit_id, corr)
            checked += 1
    assert checked >= 4


@pytest.mark.slow
def test_electrical_image_of_every_unit_matches_its_planted_footprint(truth_recording):
    _, truth, h5, _, _ = truth_recording
    checked = 0
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            g = f[f"units/{unit_id}/features/eimage_sta"]
            image = g["data"][()]
            assert image.shape == (50, 65, 65) and image.dtype == np.float32
            assert list(np.asarray(g.attrs["window"]).reshape(-1)) == [-10, 40]
            n_used = int(np.asarray(g.attrs["n_spikes_used"]).reshape(-1)[0])
            if unit.kind == "silent":
                assert n_used == 0 and np.isnan(image).all()  # as the original: no image from no spikes
                continue
            assert n_used >= 5
            # the spike's trough (sample 0, index 10 of the window) on every electrode
            corr = np.corrcoef(-image[10].ravel(), unit.footprint.ravel())[0, 1]
            assert corr >= 0.9, (unit_id, n_used, corr)
            checked += 1
    assert checked >= 4


@pytest.mark.slow
def test_step_and_receptive_field_features_separate_on_and_off_units(truth_recording):
    rec, truth, h5, _, features = truth_recording
    step = f"step_response_{rec.config.step_movie}"
    rf = f"rf_{rec.config.noise_movie}"
    assert features.units_extracted[step] == len(truth.units)
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            if unit.kind == "silent":
                continue
            s = f[f"units/{unit_id}/features/{step}"].attrs
            r = f[f"units/{unit_id}/features/{rf}"].attrs
            index = float(np.asarray(s["on_off_index"]).reshape(-1)[0])
            polarity = int(np.asarray(r["polarity"]).reshape(-1)[0])
            if unit.kind == "on":
                assert index > 0 and polarity == 1, (unit_id, index, polarity)
            else:
                assert index < 0 and polarity == -1, (unit_id, index, polarity)
            centre = np.array([float(np.asarray(r["centre_row"]).reshape(-1)[0]),
                               float(np.asarray(r["centre_col"]).reshape(-1)[0])])
            planted = np.array(np.unravel_index(np.argmax(unit.spatial_rf), unit.spatial_rf.shape))
            assert np.abs(centre - planted).max() <= 1.0, (unit_id, centre, planted)
            for attr in ("name", "version", "params_hash", "extracted_at"):
                assert attr in s


def test_steps_are_recorded_and_immediate_equals_deferred(tiny_recording, tmp_path):
    rec = tiny_recording
    immediate = tmp_path / "immediate.h5"
    deferred = tmp_path / "deferred.h5"
    _run_immediate(rec, immediate)
    session = _run_deferred(rec, deferred)
    for step in ("compute_sta", "load_recording_with_eimage_sta", "extract_features"):
        assert step in session.completed_steps
    with h5py.File(immediate, "r") as f:
        steps = [s.decode() if isinstance(s, bytes) else str(s) for s in f["pipeline/session_info/completed_steps"][()]]
    # recorded as the original records them: the composite step under its own name only
    assert {"load_recording_with_eimage_sta", "add_section_time", "section_spike_times", "compute_sta",
            "extract_features"} <= set(steps) and not {"load_recording", "compute_eimage_sta"} & set(steps)
    assert_files_equal(immediate, deferred)


def test_cached_results_are_skipped_unless_forced(tiny_recording, tmp_path):
    rec = tiny_recording
    h5 = tmp_path / "cache.h5"
    _, first = _run_immediate(rec, h5)
    assert first.features_extracted and not first.features_cached
    again = extract_features(h5)
    assert not again.features_extracted and again.features_cached == first.units_extracted
    forced = extract_features(h5, force=True)
    assert forced.units_extracted == first.units_extracted
    assert forced.features_extracted == first.features_extracted == list(first.units_extracted)
    assert compute_sta(h5).skipped and not compute_sta(h5, force=True).skipped
    # a different parameter is a different result: recomputed, not taken from the cache
    other = extract_features(h5, [{"name": "receptive_field", "params": {"movie": rec.config.noise_movie,
                                                                         "threshold": 0.3}}])
    assert other.units_extracted == {f"rf_{rec.config.noise_movie}": len(again_units(h5))}


def again_units(h5):
    with h5py.File(h5, "r") as f:
        return list(f["units"])


def test_registry_names_versions_and_errors(tiny_recording, tmp_path):
    names = {e.name for e in list_extractors()}
    assert {"firing_rate", "step_response", "receptive_field"} <= names
    extractor = get_extractor("firing_rate")
    assert extractor.version == "1" and extractor.feature_name({"movie": "m", "frame_time": "default"}) == "firing_rate_m"
    assert extractor.hash({"movie": "a", "frame_time": "default"}) != extractor.hash({"movie": "b", "frame_time": "default"})
    with pytest.raises(UnknownFeatureError, match="firing_rate"):
        get_extractor("no_such_feature")
    rec = tiny_recording
    h5 = tmp_path / "order.h5"
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False)
    with pytest.raises(MissingStepError, match="add_section_time"):
        compute_sta(h5)
    with pytest.raises(ValueError, match="threshold|no parameter"):
        extract_features(h5, [{"name": "receptive_field", "params": {"movie": "x", "bogus": 1}}])
    # inputs missing (no sectioning yet): skipped and reported, nothing written
    result = extract_features(h5, [{"name": "firing_rate", "params": {"movie": rec.config.step_movie}}])
    assert result.features_missing_inputs == {f"firing_rate_{rec.config.step_movie}": len(again_units(h5))}
    assert not result.features_extracted and result.warnings


def test_eimage_cap_counts_included_spikes_only_and_budget_batches_units(tiny_recording, tmp_path):
    from hdmea.steps.eimage import compute_eimage_sta

    rec = tiny_recording
    truth = rec.truth()
    h5 = tmp_path / "cap.h5"
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False)
    from h5stream.kernels.eimage import accumulator_bytes

    per_unit = accumulator_bytes(50, 4225)  # the chip's 4,225 channels padded to whole tiles
    assert per_unit >= 50 * 4225 * 4
    result = compute_eimage_sta(h5, max_spikes_per_unit=2, memory_budget=2 * per_unit)
    n_units = len(truth.units)
    assert result.n_batches == -(-n_units // 2)
    for unit_id, unit in truth.units.items():
        times = unit.spike_times.astype(np.int64)  # included peaks only
        fits = times[(times - 10 >= 0) & (times + 40 <= truth.raw_frames)]
        assert result.n_spikes_used[unit_id] == min(2, fits.size)
        assert result.n_spikes_over_cap[unit_id] == max(0, fits.size - 2)
    with h5py.File(h5, "r") as f:
        batched = {u: f[f"units/{u}/features/eimage_sta/data"][()] for u in truth.units}
    # the same images as one batch with the default budget
    whole = compute_eimage_sta(h5, max_spikes_per_unit=2, force=True)
    assert whole.n_batches == 1 and whole.n_spikes_used == result.n_spikes_used
    with h5py.File(h5, "r") as f:
        for u, image in batched.items():
            np.testing.assert_array_equal(f[f"units/{u}/features/eimage_sta/data"][()], image)
