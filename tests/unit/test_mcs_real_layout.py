"""The .cmcr reader on files written by hand in the real layout: [frame, col, row] frames from
Region.Left/Top, per-sensor Conversion Factors, sub-regions with an offset, several regions."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.cmcr import CmcrFile, check_sensor_axis_order

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mcs_handmade import Region, sensor_id, write_cmcr  # noqa: E402

FRAMES = 6
# (1-based row, 1-based col) -> counts above ADZero in frame 2; off the diagonal so a swap shows
PLANTED = {(3, 50): 101, (40, 7): -202, (12, 13): 303, (60, 2): 404, (6, 27): -55}


def _chip_counts():
    counts = np.zeros((FRAMES, 65, 65), dtype=np.int64)
    for (row, col), value in PLANTED.items():
        counts[2, row - 1, col - 1] = value
    return counts


def _factors(region: Region, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(500, 1500, size=(region.n_rows, region.n_cols))


def test_full_chip_values_land_on_their_row_and_column_with_their_own_gain(tmp_path):
    region = Region(1, 1, 65, 65)
    region.factors = _factors(region, 1)
    path = tmp_path / "full.cmcr"
    write_cmcr(path, [region], _chip_counts())
    with CmcrFile(path) as f:
        (info,) = f.sensor_datasets()
        assert (info.row_offset, info.col_offset, info.n_rows, info.n_cols) == (0, 0, 65, 65)
        assert info.scaling == "per_sensor" and info.value_unit == "uV"
        raw = f.read_sensor_frames(0, FRAMES, scaled=False)
        scaled = f.read_sensor_frames(0, FRAMES)
        meta = f.metadata()["sensor"]
    assert raw.shape == scaled.shape == (FRAMES, 65, 65)
    for (row, col), value in PLANTED.items():
        assert raw[2, row - 1, col - 1] == 32768 + value
        # counts x factor x 10^(Exponent + 6) microvolts, Exponent -9
        expected = value * region.factors[row - 1, col - 1] * 1e-3
        assert scaled[2, row - 1, col - 1] == pytest.approx(expected, rel=1e-6)
        np.testing.assert_allclose(info.gains[row - 1, col - 1], region.factors[row - 1, col - 1] * 1e-3)
    assert np.count_nonzero(scaled) == len(PLANTED)
    assert meta["scaling"] == "per_sensor" and meta["exponent"] == -9 and meta["unit"] == "V"
    assert meta["ad_zero"] == 32768.0


def test_sub_region_with_offset_int16_text_factors(tmp_path):
    # rows 5..11, columns 20..29: stored (frames, 10 columns, 7 rows)
    region = Region(top=5, left=20, bottom=11, right=29)
    region.factors = _factors(region, 2)
    path = tmp_path / "sub.cmcr"
    write_cmcr(path, [region], _chip_counts(), dtype="int16", ad_zero=None, factors_as="str")
    with h5py.File(path, "r") as f:
        stored = f["Acquisition/Sensor Data/SensorData 1 1"][()]
    assert stored.shape == (FRAMES, 10, 7) and stored[2, 27 - 20, 6 - 5] == -55  # written [t, col, row]
    with CmcrFile(path) as f:
        (info,) = f.sensor_datasets()
        assert (info.row_offset, info.col_offset, info.n_rows, info.n_cols) == (4, 19, 7, 10)
        assert info.ad_zero == 0.0 and info.contains(5, 26) and not info.contains(3, 26)
        block = f.read_sensor_frames(0, FRAMES)
    assert block.shape == (FRAMES, 7, 10)
    chip = np.full((FRAMES, 65, 65), np.nan, dtype=np.float32)
    chip[(slice(None), *info.chip_slices)] = block
    assert chip[2, 6 - 1, 27 - 1] == pytest.approx(-55 * region.factors[6 - 5, 27 - 20] * 1e-3, rel=1e-6)
    assert np.count_nonzero(np.nan_to_num(chip)) == 1 and np.isnan(chip[2, 0, 0])
    # place_on_chip maps a stored-layout array the same way
    placed = np.full((65, 65), np.nan, dtype=np.float32)
    info.place_on_chip(stored[2].astype(np.float32), placed)
    assert placed[6 - 1, 27 - 1] == -55 and np.isfinite(placed).sum() == 70


def test_several_regions_including_one_sensor(tmp_path):
    regions = [Region(1, 40, 20, 60), Region(35, 3, 45, 10), Region(60, 2, 60, 2)]
    for k, r in enumerate(regions):
        r.factors = _factors(r, 10 + k)
    path = tmp_path / "many.cmcr"
    write_cmcr(path, regions, _chip_counts())
    with CmcrFile(path) as f:
        infos = f.sensor_datasets()
        assert [(i.roi, i.n_rows, i.n_cols) for i in infos] == [(1, 20, 21), (2, 11, 8), (3, 1, 1)]
        chip = np.full((65, 65), np.nan)
        for info in infos:
            chip[info.chip_slices] = f.read_sensor_frames(2, 3, info)[0]
        meta = f.metadata()["sensor"]
    for (row, col), value in PLANTED.items():
        hit = [k for k, r in enumerate(regions) if r.top <= row <= r.bottom and r.left <= col <= r.right]
        if hit:
            r = regions[hit[0]]
            expected = value * r.factors[row - r.top, col - r.left] * 1e-3
            assert chip[row - 1, col - 1] == pytest.approx(expected, rel=1e-6), (row, col)
        else:
            assert np.isnan(chip[row - 1, col - 1])
    assert meta["regions"]["SensorData 3 1"]["row_offset"] == 59 and meta["regions"]["SensorData 3 1"]["col_offset"] == 1


def test_wrong_number_of_conversion_factors_names_the_dataset_and_counts(tmp_path):
    region = Region(5, 20, 11, 29)
    region.factors = np.ones((7, 9), dtype=np.int64)  # one column short
    path = tmp_path / "bad.cmcr"
    write_cmcr(path, [region], _chip_counts())
    with h5py.File(path, "a") as f:  # the data are the full region; only the text is short
        del f["Acquisition/Sensor Data/SensorData 1 1"]
        f["Acquisition/Sensor Data"].create_dataset("SensorData 1 1", data=np.zeros((FRAMES, 10, 7), np.uint16))
    with CmcrFile(path) as f, pytest.raises(RecordingFormatError) as err:
        f.sensor_datasets()
    text = str(err.value)
    assert "SensorData 1 1" in text and "70" in text and "63" in text and str(path) in text


def test_single_factor_and_unscaled_data_warn_once(tmp_path, caplog):
    path = tmp_path / "single.cmcr"
    write_cmcr(path, [Region(1, 1, 65, 65)], _chip_counts(), factors_as="none", single_factor=7, exponent=-6)
    with CmcrFile(path) as f:
        (info,) = f.sensor_datasets()
        assert info.scaling == "single" and info.uniform_gain == 7.0
        assert f.read_sensor_frames(2, 3)[0, 3 - 1, 50 - 1] == 101 * 7
    path = tmp_path / "unscaled.cmcr"
    write_cmcr(path, [Region(1, 1, 65, 65), Region(60, 2, 60, 2)], _chip_counts(), factors_as="none")
    with caplog.at_level(logging.WARNING, logger="hdmea.io.cmcr"), CmcrFile(path) as f:
        for _ in range(3):
            infos = f.sensor_datasets()
        meta = f.metadata()["sensor"]
        assert f.read_sensor_frames(2, 3)[0, 40 - 1, 7 - 1] == -202
    assert [i.scaling for i in infos] == ["unscaled", "unscaled"] and meta["scaling"] == "unscaled"
    assert meta["value_unit"] == "counts"
    warned = [r for r in caplog.records if "unscaled" in r.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0].getMessage()


def test_region_that_disagrees_with_the_data_shape_is_refused(tmp_path):
    region = Region(5, 20, 11, 29)
    path = tmp_path / "shape.cmcr"
    write_cmcr(path, [region], _chip_counts(), factors_as="none", transposed=True)  # stored (frames, 7, 10)
    with CmcrFile(path, sensor_axis_order="col_row") as f:  # fits only with Left/Right as the rows: read so
        (info,) = f.sensor_datasets()
        assert f.region_fields_swapped and (info.row_offset, info.col_offset, info.n_rows, info.n_cols) == (19, 4, 10, 7)
    wrong = tmp_path / "wrong.cmcr"
    write_cmcr(wrong, [region], _chip_counts(), factors_as="none", transposed=True)
    with h5py.File(wrong, "r+") as h:  # Region.Right one column too far: no reading fits
        meta = h["Acquisition/Sensor Data/SensorMeta"][()]
        meta["Region.Right"] += 1
        h["Acquisition/Sensor Data/SensorMeta"][...] = meta
    for forced in ("col_row", "row_col"):
        with CmcrFile(wrong, sensor_axis_order=forced) as f, pytest.raises(RecordingFormatError) as err:
            f.sensor_datasets()
        assert "SensorData 1 1" in str(err.value) and "(6, 7, 10)" in str(err.value)
        assert "neither reading of the stored shape fits" in str(err.value)
    with CmcrFile(path) as f:  # "auto": the shape fits only [row, col]
        (info,) = f.sensor_datasets()
        assert (f.sensor_axis_order, f.axis_order_source) == ("row_col", "shape")
        assert f.read_sensor_frames(2, 3, scaled=False)[0, 6 - 5, 27 - 20] == 32768 - 55
    with CmcrFile(path, sensor_axis_order="row_col") as f:
        (info,) = f.sensor_datasets()
        assert (info.n_rows, info.n_cols) == (7, 10)
        assert f.read_sensor_frames(2, 3, scaled=False)[0, 6 - 5, 27 - 20] == 32768 - 55


@pytest.mark.parametrize("value", ["xy", "row-col", None, 1])
def test_axis_order_validator(value):
    with pytest.raises(ConfigError) as err:
        check_sensor_axis_order(value)
    assert repr(value) in str(err.value) and "'col_row'" in str(err.value) and "'row_col'" in str(err.value)
    assert check_sensor_axis_order("col_row") == "col_row" and check_sensor_axis_order("row_col") == "row_col"


def test_load_recording_metadata_records_scaling_and_regions(tmp_path):
    from hdmea.pipeline import load_recording

    path = tmp_path / "meta.cmcr"
    write_cmcr(path, [Region(5, 20, 11, 29)], _chip_counts(), factors_as="none")
    out = tmp_path / "meta.h5"
    load_recording(path, None, output_path=out)
    with h5py.File(out, "r") as f:
        sensor = f["metadata/acquisition/sensor"]
        text = {k: sensor[k][()] for k in ("scaling", "value_unit")}
        assert {k: (v.decode() if isinstance(v, bytes) else str(np.asarray(v).reshape(-1)[0], "utf-8")
                    if isinstance(np.asarray(v).reshape(-1)[0], bytes) else str(np.asarray(v).reshape(-1)[0]))
                for k, v in text.items()} == {"scaling": "unscaled", "value_unit": "counts"}
        region = f["metadata/acquisition/sensor/regions/SensorData 1 1"]
        assert int(np.asarray(region["row_offset"][()]).reshape(-1)[0]) == 4
        assert int(np.asarray(region["col_offset"][()]).reshape(-1)[0]) == 19


def test_vendor_reader_sees_the_same_values_in_sensor_id_order(tmp_path):
    McsCMOSMEA = pytest.importorskip("McsPy.McsCMOSMEA")
    region = Region(1, 1, 65, 65)
    region.factors = _factors(region, 3)
    path = tmp_path / "vendor.cmcr"
    write_cmcr(path, [region], _chip_counts())
    vendor = McsCMOSMEA.McsCMOSMEAData(str(path))
    try:
        frame = np.asarray(vendor.Acquisition.SensorStreams[0].SensorData_1_1[2])
    finally:
        vendor.h5_file.close()
    with CmcrFile(path) as f:
        ours = f.read_sensor_frames(2, 3, scaled=False)[0]
    flat = frame.ravel()  # a vendor frame flattened is in sensor-id order
    for (row, col), value in PLANTED.items():
        coordinates = McsCMOSMEA.McsCMOSMEAData.coordinates_to_sensorID if hasattr(
            McsCMOSMEA.McsCMOSMEAData, "coordinates_to_sensorID") else None
        sid = coordinates(row, col) if coordinates is not None else sensor_id(row, col)
        assert sid == sensor_id(row, col)
        assert flat[sid - 1] == 32768 + value == ours[row - 1, col - 1]
    np.testing.assert_array_equal(ours, frame.T)
