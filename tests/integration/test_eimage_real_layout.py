"""Electrical images on raw files in the real layout: hand-written files against a scipy reference,
a transposed file caught by the orientation self-check, planted footprints with per-sensor gains
and regions of interest."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from hdmea.errors import ConfigError
from hdmea.pipeline import load_recording
from hdmea.steps.eimage import MIN_SPIKES_FOR_ORIENTATION_CHECK, compute_eimage_sta
from hdmea.synthetic import SyntheticConfig, generate_recording

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr  # noqa: E402

FS = 20_000.0
FRAMES = 4000
WINDOW = (-10, 40)
# 1-based (row, col) of each unit; the last lies in no region of the sub-region file
UNITS = [(10, 40), (25, 22), (60, 2), (50, 56)]
NEIGHBOUR = (1, 0)  # a weaker copy of each spike one row below


def _spikes(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    n = MIN_SPIKES_FOR_ORIENTATION_CHECK + 5
    return [np.sort(rng.choice(np.arange(100, FRAMES - 100), size=n, replace=False)) for _ in UNITS]


def _chip_counts(spikes) -> np.ndarray:
    counts = np.zeros((FRAMES, 65, 65), dtype=np.int64)
    for (row, col), times in zip(UNITS, spikes):
        for t in times:
            counts[t, row - 1, col - 1] -= 300
            counts[t + 1, row - 1, col - 1] += 120
            counts[t, row - 1 + NEIGHBOUR[0], col - 1 + NEIGHBOUR[1]] -= 90
    return counts


def _reference(counts, gains, spikes) -> list[np.ndarray]:
    """scipy's filter on the chip's microvolts, averaged over each unit's windows (NaN where gains are)."""
    sos = butter(2, 100.0, btype="highpass", fs=FS, output="sos")
    filtered = sosfilt(sos, counts * np.nan_to_num(gains)[None], axis=0)
    out = []
    for times in spikes:
        mean = np.mean([filtered[t + WINDOW[0]:t + WINDOW[1]] for t in times], axis=0)
        out.append(np.where(np.isnan(gains)[None], np.nan, mean))
    return out


def _files(tmp_path, regions, counts, spikes, *, zero_based=False, transposed=False):
    cmcr, cmtr = tmp_path / "hand.cmcr", tmp_path / "hand.cmtr"
    write_cmcr(cmcr, regions, counts, transposed=transposed)
    shift = 1 if zero_based else 0
    write_cmtr(cmtr, [dict(unit_id=7 + i, sensor_id=sensor_id(r, c), row=r - shift, col=c - shift, spikes=s)
                      for i, ((r, c), s) in enumerate(zip(UNITS, spikes))], duration_us=int(FRAMES * 50))
    h5 = tmp_path / "hand.h5"
    load_recording(cmcr, cmtr, output_path=h5, waveforms=False)
    return cmcr, h5


def _images(h5):
    with h5py.File(h5, "r") as f:
        return {u: (f[f"units/{u}/features/eimage_sta/data"][()], dict(f[f"units/{u}/features/eimage_sta"].attrs))
                for u in sorted(f["units"])}


def _orientation(h5):
    with h5py.File(h5, "r") as f:
        return {k: np.asarray(v).reshape(-1)[0] for k, v in f["metadata/eimage_orientation"].attrs.items()}


def test_sub_regions_with_gains_equal_a_scipy_reference_on_the_chip(tmp_path, caplog):
    spikes = _spikes(1)
    counts = _chip_counts(spikes)
    regions = [Region(5, 20, 30, 50), Region(60, 2, 60, 2)]
    gains = np.full((65, 65), np.nan)
    rng = np.random.default_rng(2)
    for r in regions:
        r.factors = rng.integers(600, 1400, size=(r.n_rows, r.n_cols))
        gains[r.top - 1:r.bottom, r.left - 1:r.right] = r.factors * 1e-3  # Exponent -9, V: uV per count
    _cmcr, h5 = _files(tmp_path, regions, counts, spikes, zero_based=True)
    with caplog.at_level(logging.WARNING):
        result = compute_eimage_sta(h5, window=WINDOW)
    images = _images(h5)
    expected = _reference(counts, gains, spikes)
    for (u, (image, attrs)), (row, col), ref in zip(images.items(), UNITS, expected):
        assert image.shape == (50, 65, 65) and image.dtype == np.float32
        if (row, col) == UNITS[-1]:
            assert np.isnan(image).all() and int(attrs["n_spikes_used"]) == 0
            assert "lies in no recorded region" in str(attrs["coverage"]) and f"row {row}, col {col}" in str(
                attrs["coverage"])
            assert result.units_not_recorded == [u]
            continue
        assert str(attrs["coverage"]) == "recorded" and str(attrs["scaling"]) == "per_sensor"
        np.testing.assert_array_equal(np.isnan(image), np.isnan(ref))
        np.testing.assert_allclose(image, ref, rtol=1e-4, atol=2e-3 * np.nanmax(np.abs(ref)))
        t, r, c = np.unravel_index(np.nanargmax(np.abs(image)), image.shape)
        assert (r, c) == (row - 1, col - 1)
    assert any("lies in no recorded region" in rec.getMessage() for rec in caplog.records)
    assert any("SensorID" in rec.getMessage() for rec in caplog.records)  # zero-based table, one warning
    assert result.orientation_units_checked == 3
    assert result.orientation_fraction_own == 1.0 and result.orientation_fraction_transposed == 0.0
    stored = _orientation(h5)
    assert stored["fraction_own"] == 1.0 and stored["fraction_transposed"] == 0.0
    assert stored["n_units_checked"] == 3 and stored["min_spikes"] == MIN_SPIKES_FOR_ORIENTATION_CHECK


def test_a_transposed_file_is_caught_by_the_self_check_and_read_with_the_override(tmp_path, caplog):
    spikes = _spikes(3)
    counts = _chip_counts(spikes)
    _cmcr, h5 = _files(tmp_path, [Region(1, 1, 65, 65)], counts, spikes, transposed=True)
    # "auto" finds the order by the footprints; a wrongly forced order is caught by the self-check
    assert compute_eimage_sta(h5, window=WINDOW).frame_order.order == "row_col"
    with caplog.at_level(logging.WARNING, logger="hdmea.steps.eimage"):
        result = compute_eimage_sta(h5, window=WINDOW, sensor_axis_order="col_row")
    assert result.orientation_units_checked == 4
    assert result.orientation_fraction_own == 0.0 and result.orientation_fraction_transposed == 1.0
    warned = [r.getMessage() for r in caplog.records if "transposed positions" in r.getMessage()]
    assert len(warned) == 1 and "hand" in warned[0] and "row_col" in warned[0]
    with h5py.File(h5, "r") as f:
        assert any("transposed positions" in (w.decode() if isinstance(w, bytes) else str(w))
                   for w in f["pipeline/session_info/warnings"][()])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hdmea.steps.eimage"):
        fixed = compute_eimage_sta(h5, window=WINDOW, sensor_axis_order="row_col")
    assert fixed.orientation_fraction_own == 1.0 and fixed.orientation_fraction_transposed == 0.0
    assert not [r for r in caplog.records if "transposed positions" in r.getMessage()]
    ones = np.ones((65, 65))
    for (image, _attrs), ref in zip(_images(h5).values(), _reference(counts, ones, spikes)):
        np.testing.assert_allclose(image, ref, rtol=1e-4, atol=2e-3 * np.abs(ref).max())


@pytest.mark.parametrize("transposed", [False, True])
def test_the_whole_chip_with_per_sensor_gains_equals_a_scipy_reference(tmp_path, transposed):
    # one region covering the chip: the kernel's own sums are turned into the images in place
    spikes = _spikes(3)
    counts = _chip_counts(spikes)
    region = Region(1, 1, 65, 65)
    region.factors = np.random.default_rng(4).integers(600, 1400, size=(65, 65))
    gains = region.factors * 1e-3
    _cmcr, h5 = _files(tmp_path, [region], counts, spikes, transposed=transposed)
    order = "row_col" if transposed else "col_row"
    result = compute_eimage_sta(h5, window=WINDOW, sensor_axis_order=order)
    assert result.orientation_fraction_own == 1.0 and result.units_not_recorded == []
    for (u, (image, attrs)), (row, col), ref in zip(_images(h5).items(), UNITS, _reference(counts, gains, spikes)):
        assert image.shape == (50, 65, 65) and image.dtype == np.float32
        assert str(attrs["scaling"]) == "per_sensor" and str(attrs["sensor_axis_order"]) == order
        np.testing.assert_allclose(image, ref, rtol=1e-4, atol=2e-3 * np.abs(ref).max())
        t, r, c = np.unravel_index(np.argmax(np.abs(image)), image.shape)
        assert (r, c) == (row - 1, col - 1)


def test_bad_axis_order_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError) as err:
        compute_eimage_sta(tmp_path / "absent.h5", sensor_axis_order="yx")
    assert "'yx'" in str(err.value) and "'col_row'" in str(err.value)


# The planted-footprint check of the pipeline tests, on files in the real layout.
PLANTED = dict(raw_seconds=1.0, n_units=6, n_silent_units=0, base_rate_hz=(30.0, 40.0), noise_uv=4.0,
               footprint_amplitude_uv=(100.0, 180.0), sensor_gain_spread=0.3)


@pytest.mark.parametrize("layout", [
    dict(raw_dtype="uint16"),
    dict(raw_dtype="int16", sensor_regions=((3, 4, 63, 60), (2, 63, 2, 63))),
])
def test_planted_footprints_with_gains_and_regions(tmp_path, layout):
    rec = generate_recording(tmp_path, "planted", config=SyntheticConfig.tiny(**PLANTED, **layout), seed=5)
    truth = rec.truth()
    h5 = tmp_path / "planted.h5"
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False)
    result = compute_eimage_sta(h5)
    checked = 0
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            image = f[f"units/{unit_id}/features/eimage_sta/data"][()]
            inside = all(r[0] <= unit.row <= r[2] and r[1] <= unit.col <= r[3]
                         for r in layout.get("sensor_regions", ((1, 1, 65, 65),))[:1])
            if not inside:
                assert np.isnan(image).all()
                continue
            n_used = int(np.asarray(f[f"units/{unit_id}/features/eimage_sta"].attrs["n_spikes_used"]).reshape(-1)[0])
            assert n_used >= MIN_SPIKES_FOR_ORIENTATION_CHECK
            recorded = np.isfinite(image[10])
            corr = np.corrcoef(-image[10][recorded], unit.footprint[recorded])[0, 1]
            assert corr >= 0.9, (unit_id, corr)
            t, r, c = np.unravel_index(np.nanargmax(np.abs(image)), image.shape)
            assert (r, c) == (unit.row - 1, unit.col - 1), unit_id
            checked += 1
    assert checked >= 3
    assert result.orientation_fraction_own == 1.0 and result.orientation_units_checked == checked


@pytest.mark.parametrize("budget_units", [1, 2, 5])
def test_whole_chip_images_are_the_same_taken_in_place_or_copied_kernel_batch_by_batch(tmp_path, budget_units):
    # the step takes the kernel's own array when one kernel batch holds every unit, and copies batch by
    # batch into a NaN-filled array otherwise: both give the images the copying path gives
    import types

    from h5stream.kernels.eimage import accumulator_bytes, iter_electrical_images
    from hdmea.io.cmcr import SensorDataInfo
    from hdmea.steps.eimage import _no_images, _region_images

    rng = np.random.default_rng(6)
    raw = (rng.normal(0, 30, (3000, 65, 65)) + 2048).astype(np.uint16)
    gains = rng.uniform(0.5, 1.5, (65, 65))
    info = SensorDataInfo(name="/raw", roi=1, chunk=0, shape=raw.shape, dtype=raw.dtype, ad_zero=2048.0,
                          conversion_factor=1.0, exponent=-9, unit="V", gains=gains, scaling="per_sensor")
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["raw"] = raw
    cmcr = types.SimpleNamespace(h5=h5py.File(tmp_path / "raw.h5", "r"))
    spikes = [np.sort(rng.choice(np.arange(50, 2900), 30, replace=False)) for _ in range(5)]
    recorded = [True, True, False, True, True]
    batches = []

    def counting(*args, **kwargs):
        for batch in iter_electrical_images(*args, **kwargs):
            batches.append(batch.units.tolist())
            yield batch

    kwargs = dict(window=WINDOW, memory_budget_bytes=budget_units * accumulator_bytes(50, 65 * 65) + 1,
                  chunk_samples=1000)
    counts, taken = _region_images(counting, cmcr, "raw.cmcr", info, spikes, recorded, None, kwargs)
    n_batches = len(batches)
    _, copied = _region_images(iter_electrical_images, cmcr, "raw.cmcr", info, spikes, recorded,
                               _no_images(5, WINDOW), kwargs)
    assert (n_batches == 1) == (budget_units >= 5)
    assert taken.shape == (5, 50, 65, 65) and taken.dtype == np.float32
    np.testing.assert_array_equal(taken, copied)
    assert np.isnan(taken[2]).all() and not np.isnan(taken[[0, 1, 3, 4]]).any()
    np.testing.assert_array_equal(counts[0], [30] * 5)
    cmcr.h5.close()
