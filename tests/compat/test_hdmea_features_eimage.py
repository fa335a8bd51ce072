"""The lab pipeline's electrical-image functions (``hdmea.features.eimage_sta``) called the original way."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from hdmea.errors import ConfigError
from hdmea.features import EImageSTAConfig, EImageSTAResult, compute_eimage_sta
from hdmea.features.eimage_sta import (
    STAAccumulator,
    compute_eimage_sta_chunked,
    compute_eimage_sta_legacy,
    compute_sta_for_unit,
    compute_sta_for_unit_legacy,
)
from hdmea.features.eimage_sta.compute import extract_windows_for_chunk, write_eimage_sta_to_hdf5
from hdmea.io.hdf5_store import open_recording_hdf5
from hdmea.pipeline import load_recording

from tests.filecompare import assert_files_equal


@pytest.fixture(scope="module")
def loaded(tiny_recording, tmp_path_factory):
    h5 = tmp_path_factory.mktemp("eimage") / "rec.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, output_path=h5, waveforms=False)
    return h5


def test_original_call_styles_store_the_steps_images(tiny_recording, loaded, tmp_path, tiny_truth):
    from hdmea.pipeline import compute_eimage_sta as step

    ours, theirs, chunked, legacy = (tmp_path / f"{n}.h5" for n in ("ours", "theirs", "chunked", "legacy"))
    for p in (ours, theirs, chunked, legacy):
        shutil.copy(loaded, p)
    step(ours, tiny_recording.cmcr_path, window=(-8, 30), highpass_hz=150.0, max_spikes_per_unit=500)
    result = compute_eimage_sta(theirs, tiny_recording.cmcr_path, cutoff_hz=150.0, pre_samples=8, post_samples=30,
                                spike_limit=500)
    assert isinstance(result, EImageSTAResult) and result.units_processed == len(tiny_truth.units)
    assert result.config == EImageSTAConfig(cutoff_hz=150.0, pre_samples=8, post_samples=30, spike_limit=500)
    assert np.isnan(result.filter_time_seconds) and result.units_failed == 0
    assert_files_equal(ours, theirs)
    again = compute_eimage_sta(theirs, tiny_recording.cmcr_path, cutoff_hz=150.0, pre_samples=8, post_samples=30,
                               spike_limit=500)
    assert again.units_skipped == len(tiny_truth.units) and again.units_processed == 0

    compute_eimage_sta_chunked(chunked, tiny_recording.cmcr_path, window_range=(-8, 30), cutoff_hz=150.0,
                               spike_limit=500, duration_s=None)
    compute_eimage_sta_legacy(legacy, tiny_recording.cmcr_path, tiny_recording.cmtr_path, window_range=(-8, 30),
                              cutoff_hz=150.0, spike_limit=500, duration_s=None)
    assert_files_equal(ours, chunked)
    assert_files_equal(ours, legacy)
    with h5py.File(theirs, "r") as f:
        for unit_id in tiny_truth.units:
            assert f[f"units/{unit_id}/features/eimage_sta/data"].shape[0] == 38


def test_refusals(tiny_recording, loaded, tmp_path):
    with pytest.raises(ConfigError, match="skip_highpass"):
        compute_eimage_sta(loaded, tiny_recording.cmcr_path, skip_highpass=True)
    with pytest.raises(ConfigError, match="window_range"):
        compute_eimage_sta_chunked(loaded, tiny_recording.cmcr_path, window_range=(5, 40))
    with pytest.raises(FileNotFoundError, match="cmtr"):
        compute_eimage_sta_legacy(loaded, tiny_recording.cmcr_path, tmp_path / "missing.cmtr")


def test_in_memory_helpers_against_naive_windows():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(600, 3, 4)).astype(np.float32)
    spikes = np.array([3, 10, 11, 50, 200, 201, 399, 400, 580, 595])
    naive_used = [t for t in spikes if t >= 10 and t + 40 <= 600]
    naive = np.mean([data[t - 10:t + 40] for t in naive_used], axis=0)
    image, used, excluded = compute_sta_for_unit(data, spikes)
    np.testing.assert_allclose(image, naive, rtol=1e-5, atol=1e-6)
    assert (used, excluded) == (len(naive_used), spikes.size - len(naive_used))

    # chunk by chunk with the accumulator: the same image when the chunks overlap by the window
    acc = STAAccumulator.create(50, 3, 4)
    for start in (0, 300):
        stop = min(start + 300 + 50, 600)
        windows, n_used, n_excl = extract_windows_for_chunk(data[start:stop], spikes[(spikes >= start) & (spikes < start + 300)],
                                                            start, stop)
        naive_chunk = [t for t in spikes if start <= t < start + 300 and t >= start + 10 and t < stop - 40]
        assert n_used == len(naive_chunk) and windows.shape == (n_used, 50, 3, 4)
        acc.add_windows(windows, n_excl)
    assert acc.spike_count == len(naive_used)
    np.testing.assert_allclose(acc.finalize(), naive, rtol=1e-5, atol=1e-6)
    assert np.isnan(STAAccumulator.create(5, 1, 1).finalize()).all()

    # the older script's strict edges (t - pre > 0, t + post < n), divided by the spikes used
    strict = [t for t in spikes if t - 10 > 0 and t + 40 < 600]
    image, used, excluded = compute_sta_for_unit_legacy(data, spikes)
    np.testing.assert_allclose(image, np.mean([data[t - 10:t + 40] for t in strict], axis=0), rtol=1e-5, atol=1e-6)
    assert (used, excluded) == (len(strict), spikes.size - len(strict))


def test_write_eimage_sta_to_hdf5(loaded, tmp_path, tiny_truth):
    h5 = tmp_path / "w.h5"
    shutil.copy(loaded, h5)
    unit_id = next(iter(tiny_truth.units))
    sta = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    config = EImageSTAConfig(pre_samples=1, post_samples=1)
    root = open_recording_hdf5(h5, mode="r+")
    try:
        assert write_eimage_sta_to_hdf5(root, unit_id, sta, 7, 2, config, 20000.0) is True
        assert write_eimage_sta_to_hdf5(root, unit_id, sta * 0, 7, 2, config, 20000.0) is False
    finally:
        root.close()
    with h5py.File(h5, "r") as f:
        g = f[f"units/{unit_id}/features/eimage_sta"]
        np.testing.assert_array_equal(g["data"][()], sta)
        assert int(np.asarray(g.attrs["n_spikes"]).reshape(-1)[0]) == 7
        assert float(np.asarray(g.attrs["sampling_rate"]).reshape(-1)[0]) == 20000.0
