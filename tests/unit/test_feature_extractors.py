"""The lab pipeline's built-in extractors ``baseline_127``, ``step_up_5s_5i_3x``, ``example_feature``, ``frif``,
``cell_type_classifier`` and ``eimage_sta``.

Two references:

* the numbers the original pipeline's own extractors give on the same arrays
  (spike times in microseconds, called directly as its tests call them),
  recorded below.  They were produced with the original at commit fe13de2 in a
  scratch directory outside this repository::

      git -C hdmea_processing archive HEAD src | tar x -C /tmp/orig
      PYTHONPATH=/tmp/orig/src python run_original.py
      # run_original.py builds the arrays with the functions of this file (irregular_train,
      # step_train, frame_samples, waveforms, filtered_block) and prints
      # BaselineFeatureExtractor().extract(unit, stim[, config]), StepUpFeatureExtractor()...,
      # ExampleFeatureExtractor()... for unit = MagicMock() whose __getitem__ returns the
      # array (as in its tests), and FRIFExtractor, CellTypeFeatureExtractor and
      # EImageSTAExtractor on its own DictAdapter views (ORIGINAL_2 below)

* the planted truth of a synthetic recording (ON and OFF units, silent unit,
  base rates) when the extractors run in the pipeline, where spike times are
  samples and the step's timing comes from the sectioned trials.
"""

from __future__ import annotations

from unittest.mock import MagicMock

import h5py
import numpy as np
import pytest

from hdmea.features import (
    BaselineFeatureExtractor,
    CellTypeFeatureExtractor,
    EImageSTAExtractor,
    ExampleFeatureExtractor,
    FRIFExtractor,
    StepUpFeatureExtractor,
)
from hdmea.features.base import DictAdapter
from hdmea.steps.features import extract_features
from hdmea.pipeline import add_section_time, load_recording, section_spike_times


def _poisson_train(rng, rate_hz, start_us, end_us):
    n = rng.poisson(rate_hz * (end_us - start_us) / 1e6)
    return np.sort(rng.uniform(start_us, end_us, size=n))


def irregular_train():
    rng = np.random.default_rng(20261125)
    t = np.cumsum(rng.exponential(1e6 / 12.0, size=400))
    return np.round(t[t < 20e6]).astype(np.uint64)


def step_train():
    rng = np.random.default_rng(42)
    parts = [_poisson_train(rng, r, a, b) for r, a, b in (
        (5, 0, 5e6), (60, 5e6, 5.5e6), (15, 5.5e6, 10e6), (30, 10e6, 10.5e6), (8, 10.5e6, 15e6))]
    return np.unique(np.round(np.concatenate(parts))).astype(np.uint64)


def frame_samples():
    rng = np.random.default_rng(7)
    k = np.arange(301)
    return (1000 + np.round(k * 20000 / 60.0) + rng.integers(-2, 3, size=k.size)).astype(np.uint64)


def waveforms():
    t = np.arange(40, dtype=np.float64) - 10
    narrow = -np.exp(-(t ** 2) / (2 * 1.6 ** 2)) + 0.35 * np.exp(-((t - 7.0) ** 2) / (2 * 4.0 ** 2))
    wide = -np.exp(-(t ** 2) / (2 * 2.5 ** 2)) + 0.35 * np.exp(-((t - 12.0) ** 2) / (2 * 3.0 ** 2))
    return narrow, wide


def filtered_block():
    rng = np.random.default_rng(11)
    data = rng.normal(size=(2000, 8, 8)).astype(np.float32)
    spikes_us = np.sort(np.concatenate([[100, 450, 99_000, 99_900], rng.integers(600, 97_000, size=40)]))
    return data, spikes_us.astype(np.uint64)


# Output of the original's extractors on these arrays (command in the module docstring).
ORIGINAL = {
    "n_a": 248, "n_b": 194,
    "baseline_a": {"mean_firing_rate": 12.494159736018556, "std_firing_rate": 2.8186163871570282,
                   "cv_isi": 0.9408231985837197, "median_isi_ms": 56.156, "spike_count": 248, "quality_index": 1.0},
    "baseline_a_window": {"mean_firing_rate": 12.2, "std_firing_rate": 2.4413111231467406,
                          "cv_isi": 0.9109499403973291, "median_isi_ms": 55.472, "spike_count": 122,
                          "quality_index": 1.0},
    "step_b": {"on_response_flag": True, "off_response_flag": True, "on_peak_value": 92.0, "off_peak_value": 24.0,
               "on_sustained_response": 16.666666666666668, "off_sustained_response": 6.25,
               "response_quality": 1.0, "on_latency_ms": 3.681, "off_latency_ms": 18.706,
               "on_off_ratio": 0.5862068965517241, "baseline_rate": 5.75},
    "step_b_cfg": {"on_response_flag": True, "off_response_flag": True, "on_peak_value": 103.33333333333334,
                   "off_peak_value": 20.0, "on_sustained_response": 19.148936170212764,
                   "off_sustained_response": 7.5, "response_quality": 1.0, "on_latency_ms": 3.681,
                   "off_latency_ms": 18.706, "on_off_ratio": 0.6756756756756757, "baseline_rate": 5.75},
    "example_a": {"total_spikes": 248, "mean_rate_hz": 12.52418607183247, "first_spike_time_us": 47588,
                  "last_spike_time_us": 19849274},
}


ORIGINAL_2 = {
    "frif": {"n": 300, "sum": 3658.086437225342, "nonzero": 54, "first_nonzero": 0,
             "value_at_first_nonzero": 60.240962982177734, "x0": 0.0501, "x_last": 5.03345, "dtype": "float32"},
    "cell_narrow": {"cell_type": "RGC", "rgc_probability": 0.8, "has_axon": True, "waveform_width_ms": 0.35},
    "cell_wide": {"cell_type": "unknown", "rgc_probability": 0.3, "has_axon": False, "waveform_width_ms": 0.6},
    "cell_few": {"cell_type": "unknown", "rgc_probability": 0.3, "has_axon": True, "waveform_width_ms": 0.35},
    "eimage": {"n_spikes": 40, "n_spikes_excluded": 4, "pre_samples": 10, "post_samples": 40, "cutoff_hz": 100.0,
               "filter_order": 2, "shape": [50, 8, 8], "sum": -10.132479185573175, "sumsq": 80.20227947103551,
               "v_10_3_4": 0.1310625821352005},
}


def _unit(spikes):
    unit = MagicMock()
    unit.__getitem__ = lambda self, key: spikes
    return unit


def _assert_same(got: dict, expected: dict):
    assert set(expected) <= set(got)
    for key, value in expected.items():
        if isinstance(value, bool):
            assert got[key] is value, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_inputs_are_the_ones_the_reference_was_computed_on():
    assert irregular_train().size == ORIGINAL["n_a"] and step_train().size == ORIGINAL["n_b"]


def test_direct_calls_give_the_original_numbers():
    a, b = irregular_train(), step_train()
    _assert_same(BaselineFeatureExtractor().extract(_unit(a), MagicMock()), ORIGINAL["baseline_a"])
    _assert_same(BaselineFeatureExtractor().extract(
        _unit(a), MagicMock(), config={"start_time_us": 2_000_000, "end_time_us": 12_000_000}),
        ORIGINAL["baseline_a_window"])
    _assert_same(StepUpFeatureExtractor().extract(_unit(b), MagicMock()), ORIGINAL["step_b"])
    _assert_same(StepUpFeatureExtractor().extract(
        _unit(b), MagicMock(), config={"threshold_factor": 3.0, "transient_window_us": 300_000}),
        ORIGINAL["step_b_cfg"])
    _assert_same(ExampleFeatureExtractor().extract(_unit(a), MagicMock()), ORIGINAL["example_a"])


def test_frif_cell_type_and_eimage_give_the_original_numbers():
    a, frames = irregular_train(), frame_samples()
    out = FRIFExtractor().extract(DictAdapter({"spike_times": a}), None,
                                  metadata=DictAdapter({"frame_timestamps": frames, "acquisition_rate": 20000.0}))
    frif, ref = out["FRIF"], ORIGINAL_2["frif"]
    assert frif.dtype == np.float32 and frif.size == ref["n"] and np.count_nonzero(frif) == ref["nonzero"]
    assert frif.astype(np.float64).sum() == pytest.approx(ref["sum"], rel=1e-9)
    first = int(np.flatnonzero(frif)[0])
    assert first == ref["first_nonzero"] and float(frif[first]) == pytest.approx(ref["value_at_first_nonzero"])
    assert out["FRIF_x_axis"][0] == pytest.approx(ref["x0"]) and out["FRIF_x_axis"][-1] == pytest.approx(ref["x_last"])
    # naive twin: a loop over the intervals
    frames_us = frames.astype(np.float64) * 50.0
    naive = [np.sum((a >= lo) & (a < hi)) / ((hi - lo) * 1e-6) for lo, hi in zip(frames_us[:-1], frames_us[1:])]
    np.testing.assert_allclose(frif, np.asarray(naive, np.float32), rtol=1e-6)

    narrow, wide = waveforms()
    _assert_same(CellTypeFeatureExtractor().extract(DictAdapter({"spike_times": a, "waveform": narrow}), None),
                 {k: v for k, v in ORIGINAL_2["cell_narrow"].items() if k != "cell_type"})
    for key, spikes, waveform in (("cell_narrow", a, narrow), ("cell_wide", a, wide), ("cell_few", a[:80], narrow)):
        got = CellTypeFeatureExtractor().extract(DictAdapter({"spike_times": spikes, "waveform": waveform}), None)
        assert got["cell_type"] == ORIGINAL_2[key]["cell_type"], key
        _assert_same(got, {k: v for k, v in ORIGINAL_2[key].items() if k != "cell_type"})

    data, spikes = filtered_block()
    out = EImageSTAExtractor().extract(DictAdapter({"spike_times": spikes}), None, config={"filtered_data": data})
    image, ref = out.pop("data").astype(np.float64), ORIGINAL_2["eimage"]
    assert list(image.shape) == ref["shape"]
    _assert_same(out, {k: v for k, v in ref.items() if k not in ("shape", "sum", "sumsq", "v_10_3_4")})
    assert image.sum() == pytest.approx(ref["sum"], rel=1e-5) and (image ** 2).sum() == pytest.approx(ref["sumsq"], rel=1e-6)
    assert image[10, 3, 4] == pytest.approx(ref["v_10_3_4"], rel=1e-5)
    samples = (spikes // 50).astype(np.int64)
    fits = samples[(samples >= 10) & (samples + 40 <= data.shape[0])]
    naive = np.mean([data[t - 10:t + 40] for t in fits], axis=0)
    np.testing.assert_allclose(image, naive, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="filtered_data"):
        EImageSTAExtractor().extract(DictAdapter({"spike_times": spikes}), None)


def test_direct_calls_against_naive_numpy():
    # baseline on a regular 10 Hz train over [0, 10 s): rate 10, CV 0, median ISI 100 ms
    regular = np.arange(0, 10_000_000, 100_000).astype(np.uint64)
    out = BaselineFeatureExtractor().extract(_unit(regular), None, config={"end_time_us": 10_000_000})
    assert out["mean_firing_rate"] == pytest.approx(10.0) and out["cv_isi"] == pytest.approx(0.0, abs=1e-12)
    assert out["median_isi_ms"] == pytest.approx(100.0) and out["spike_count"] == 100
    assert out["std_firing_rate"] == pytest.approx(0.0) and out["quality_index"] == pytest.approx(1.0)
    empty = BaselineFeatureExtractor().extract(_unit(np.array([], np.uint64)), None)
    assert empty["spike_count"] == 0 and np.isnan(empty["median_isi_ms"])
    # step: hand-counted windows of the default timing (on at 5 s, off at 10 s)
    spikes = np.array([4.5e6, 4.9e6, 5.01e6, 5.02e6, 5.3e6, 7e6, 10.2e6, 11e6], dtype=np.float64)
    out = StepUpFeatureExtractor().extract(_unit(spikes), None)
    assert out["baseline_rate"] == pytest.approx(2 / 4.0)
    assert out["on_peak_value"] == pytest.approx(3 / 0.5) and out["off_peak_value"] == pytest.approx(1 / 0.5)
    assert out["on_sustained_response"] == pytest.approx(1 / 4.5)
    assert out["off_sustained_response"] == pytest.approx(1 / 4.0)
    assert out["on_latency_ms"] == pytest.approx(10.0) and out["off_latency_ms"] == pytest.approx(200.0)
    assert out["on_off_ratio"] == pytest.approx((6 - 2) / 8)


def test_hand_made_units_hold_microseconds_even_with_metadata():
    # only a unit read from a recording (stored samples) is converted; a dict view is taken as documented
    a = irregular_train()
    metadata = DictAdapter({"sampling_rate": 20000.0})
    out = ExampleFeatureExtractor().extract(DictAdapter({"spike_times": a}), None, metadata=metadata)
    _assert_same(out, ORIGINAL["example_a"])


@pytest.fixture(scope="module")
def extracted(tiny_recording, tmp_path_factory):
    h5 = tmp_path_factory.mktemp("features") / "rec.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, output_path=h5)
    add_section_time(h5, tiny_recording.stimulus_path)
    section_spike_times(h5)
    result = extract_features(h5, features=["baseline_127", "step_up_5s_5i_3x", "example_feature", "frif",
                                            "cell_type_classifier"])
    return h5, result


def _attr(group, name):
    value = np.asarray(group.attrs[name]).reshape(-1)[0]
    return value.item() if hasattr(value, "item") else value


def test_step_up_separates_planted_on_and_off_units(extracted, tiny_truth):
    h5, result = extracted
    assert result.units_extracted["step_up_5s_5i_3x"] == len(tiny_truth.units)
    with h5py.File(h5, "r") as f:
        for unit_id, unit in tiny_truth.units.items():
            g = f[f"units/{unit_id}/features/step_up_5s_5i_3x"]
            ratio = _attr(g, "on_off_ratio")
            if unit.kind == "silent":
                assert ratio == 0.0 and _attr(g, "on_peak_value") == 0.0
            elif unit.kind == "on":
                assert ratio > 0.3 and bool(_attr(g, "on_response_flag")), (unit_id, ratio)
            else:
                # the trial starts dark, so an OFF unit's baseline is high: its flag may stay down
                assert ratio < -0.3 and _attr(g, "off_peak_value") > _attr(g, "on_peak_value"), (unit_id, ratio)


def test_example_and_whole_recording_baseline_match_the_truth_spikes(extracted, tiny_truth):
    h5, _ = extracted
    fs = tiny_truth.sampling_rate
    with h5py.File(h5, "r") as f:
        for unit_id, unit in tiny_truth.units.items():
            spikes_us = unit.spike_times.astype(np.float64) * 1e6 / fs
            ex = f[f"units/{unit_id}/features/example_feature"]
            assert _attr(ex, "total_spikes") == spikes_us.size
            if spikes_us.size:
                assert _attr(ex, "first_spike_time_us") == round(spikes_us[0])
                assert _attr(ex, "mean_rate_hz") == pytest.approx(spikes_us.size / ((spikes_us[-1] - spikes_us[0]) / 1e6))
            base = f[f"units/{unit_id}/features/baseline_127"]
            # no gray-screen movie in this recording: the whole recording up to the last spike
            assert _attr(base, "spike_count") == spikes_us.size
            if spikes_us.size:
                assert _attr(base, "mean_firing_rate") == pytest.approx(spikes_us.size / (spikes_us[-1] / 1e6))
                assert _attr(base, "median_isi_ms") == pytest.approx(np.median(np.diff(spikes_us)) / 1000)


def test_frif_and_cell_type_in_the_pipeline_match_the_truth(extracted, tiny_truth):
    h5, result = extracted
    assert result.units_extracted["frif"] == len(tiny_truth.units)
    frames = tiny_truth.frame_times.astype(np.int64)
    fs = tiny_truth.sampling_rate
    with h5py.File(h5, "r") as f:
        for unit_id, unit in tiny_truth.units.items():
            g = f[f"units/{unit_id}/features/frif"]
            counts = np.array([np.sum((unit.spike_times >= lo) & (unit.spike_times < hi))
                               for lo, hi in zip(frames[:-1], frames[1:])])
            np.testing.assert_allclose(g["FRIF"][()], counts / (np.diff(frames) / fs), rtol=1e-6)
            np.testing.assert_allclose(g["FRIF_x_axis"][()], frames[:-1] / fs)
            c = f[f"units/{unit_id}/features/cell_type_classifier"]
            if unit.spike_times.size >= 50:
                # the stored waveform is the mean cutout around the planted template (trough to peak 7 samples)
                assert _attr(c, "waveform_width_ms") == pytest.approx(7 / fs * 1000, abs=1.01 / fs * 1000)
                assert _attr(c, "cell_type") == ("RGC" if unit.spike_times.size > 100 else "unknown")
            else:
                assert _attr(c, "cell_type") == "unknown" and _attr(c, "rgc_probability") == 0.0


def test_eimage_sta_extractor_in_the_pipeline_against_naive_windows(extracted, tiny_truth, tmp_path):
    import shutil

    h5 = tmp_path / "eimage.h5"
    shutil.copy(extracted[0], h5)
    rng = np.random.default_rng(3)
    data = rng.normal(size=(tiny_truth.n_samples, 2, 3)).astype(np.float32)
    result = extract_features(h5, features=["eimage_sta"],
                              config_overrides={"filtered_data": data, "pre_samples": 5, "post_samples": 15})
    assert result.units_extracted["eimage_sta"] == len(tiny_truth.units)
    with h5py.File(h5, "r") as f:
        for unit_id, unit in tiny_truth.units.items():
            g = f[f"units/{unit_id}/features/eimage_sta"]
            spikes = unit.spike_times.astype(np.int64)
            fits = spikes[(spikes >= 5) & (spikes + 15 <= data.shape[0])][:10000]
            assert _attr(g, "n_spikes") == fits.size
            if fits.size:
                naive = np.mean([data[t - 5:t + 15] for t in fits], axis=0)
                np.testing.assert_allclose(g["data"][()], naive, rtol=1e-4, atol=1e-6)
            else:
                assert np.isnan(g["data"][()]).all()


# The original's extractors on the units of the same recording (``tiny_recording``: SyntheticConfig.tiny(),
# seed 7, loaded by load_recording), handed what they document: spike times in microseconds (the stored
# samples x 50 at 20 kHz), metadata/frame_timestamps with acquisition_rate 20000, and the stored waveform.
# Produced in a scratch directory: the arrays dumped with this library to rec_arrays.npz, then
#   PYTHONPATH=/tmp/orig/src python run_original_recording.py
# which prints, per unit, BaselineFeatureExtractor (mean_firing_rate, std_firing_rate, cv_isi),
# ExampleFeatureExtractor mean_rate_hz, the sum of FRIFExtractor's FRIF, and CellTypeFeatureExtractor
# (waveform_width_ms, cell_type), each called on the original's own DictAdapter views.  Keyed by the
# original's unit names (unit_<UnitID>: UnitIDs 1, 3, 4, 7, 11 and 17 on this recording).
ORIGINAL_ON_RECORDING = {
    "unit_001": [18.515912575267187, 8.521738521853521, 1.633122975997546, 18.675008170316076, 29523.29541015625,
                 0.35, "RGC"],
    "unit_003": [19.668300762331505, 8.04070576787522, 1.426303874532178, 19.69108682214729, 30962.938705444336,
                 0.35, "RGC"],
    "unit_004": [15.125963401825471, 8.391811280685758, 1.7061084307182643, 15.128397185156416,
                 24358.310180664062, 0.35, "RGC"],
    "unit_007": [23.82279704166202, 9.02109624795085, 1.5547207362161426, 23.941852300061257, 37441.333168029785,
                 0.35, "RGC"],
    "unit_011": [18.722634367341794, 9.261886653306563, 1.6754915062896127, 18.888672780861473,
                 29578.860008239746, 0.35, "RGC"],
    "unit_017": [0.0, 0.0, 0.0, 0.0, 0.0, float("nan"), "unknown"],
}


def test_pipeline_gives_the_originals_numbers_on_the_same_recording(extracted):
    h5, _ = extracted
    with h5py.File(h5, "r") as f:
        assert sorted(f["units"]) == sorted(ORIGINAL_ON_RECORDING)
        for unit_id, (rate, std, cv, ex_rate, frif_sum, width, kind) in ORIGINAL_ON_RECORDING.items():
            g = f[f"units/{unit_id}/features"]
            base = g["baseline_127"]
            assert _attr(base, "mean_firing_rate") == pytest.approx(rate, rel=1e-9, abs=1e-12)
            assert _attr(base, "std_firing_rate") == pytest.approx(std, rel=1e-9, abs=1e-12)
            assert _attr(base, "cv_isi") == pytest.approx(cv, rel=1e-9, abs=1e-12)
            assert _attr(g["example_feature"], "mean_rate_hz") == pytest.approx(ex_rate, rel=1e-9, abs=1e-12)
            assert g["frif/FRIF"][()].astype(np.float64).sum() == pytest.approx(frif_sum, rel=1e-6, abs=1e-9)
            cell = g["cell_type_classifier"]
            assert _attr(cell, "cell_type") == kind
            if np.isnan(width):
                assert np.isnan(_attr(cell, "waveform_width_ms"))
            else:
                assert _attr(cell, "waveform_width_ms") == pytest.approx(width)
