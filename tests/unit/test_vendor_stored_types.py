"""Vendor files: the stored types of the columns the readers use, and values the format or physics rules out.

Each test damages one thing of a hand-written (``tests.mcs_handmade``, plain h5py) or synthetic file the way
a flipped bit would (the bytes the vendor wrote, under a type that says big-endian; a sample past the ADC's
range; an amplitude no electrode gives) and checks for a :class:`RecordingFormatError` naming the file, the
object, what was expected and what was found.  Files laid out as the vendor writes them, over the ranges
the format allows, read without an error, and the vendor's own reader (McsPyDataTools) opens them.
"""

from __future__ import annotations

import shutil
import warnings

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError, UnusualVendorValueWarning
from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import CmtrFile
from hdmea.io.mcs_checks import MAX_VOLTAGE, MIN_VOLTAGE, USUAL_GAIN_UV
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr

SENSOR_META = "Acquisition/Sensor Data/SensorMeta"
CHANNEL_META = "Acquisition/Analog Data/ChannelMeta"
CHANNEL_DATA = "Acquisition/Analog Data/ChannelData 1"
UNITS = [dict(unit_id=4, sensor_id=sensor_id(10, 20), row=10, col=20, spikes=[3, 40, 41, 900]),
         dict(unit_id=9, sensor_id=sensor_id(65, 1), row=65, col=1, spikes=[7, 8])]


def _flip_byte_order(path, name, column) -> None:
    """Keep a table's bytes, but let its stored type say ``column`` is big-endian (one flipped bit of the type)."""
    with h5py.File(path, "a") as f:
        table, attrs = f[name][()], dict(f[name].attrs)
        flipped = np.dtype({"names": list(table.dtype.names), "offsets": [table.dtype.fields[n][1] for n in table.dtype.names],
                            "formats": [table.dtype.fields[n][0].newbyteorder(">") if n == column
                                        else table.dtype.fields[n][0] for n in table.dtype.names],
                            "itemsize": table.dtype.itemsize})
        del f[name]
        f.create_dataset(name, data=table.view(flipped))
        for key, value in attrs.items():
            f[name].attrs[key] = value


def _refused(path, obj_part, read):
    with pytest.raises(RecordingFormatError) as err:
        read(path)
    text = str(err.value)
    assert str(path) in text and obj_part in text, text
    return text


def _read_cmcr(path):
    with CmcrFile(path) as f:
        return f.metadata(), f.light_reference() if f.has_analog() else None, list(f.iter_sensor_blocks())


def _read_cmtr(path):
    with CmtrFile(path) as f:
        return f.read_units(20000.0)


@pytest.fixture
def cmcr(tmp_path):
    path = tmp_path / "rec.cmcr"
    write_cmcr(path, [Region(top=2, left=3, bottom=5, right=4)], np.zeros((6, 65, 65), dtype=np.int64),
               single_factor=1000, factors_as="none")
    _read_cmcr(path)  # the undamaged file reads
    return path


@pytest.fixture
def synthetic(tiny_recording, tmp_path):
    path = tmp_path / "rec.cmcr"
    shutil.copy(tiny_recording.cmcr_path, path)
    _read_cmcr(path)
    return path


@pytest.fixture
def cmtr(tmp_path):
    path = tmp_path / "rec.cmtr"
    write_cmtr(path, UNITS, tick_us=50)
    _read_cmtr(path)
    return path


@pytest.mark.parametrize("column", ["Tick", "Exponent", "ADZero", "Region.Left", "ConversionFactor"])
def test_a_sensor_meta_column_stored_big_endian_is_refused(cmcr, column):
    _flip_byte_order(cmcr, SENSOR_META, column)
    text = _refused(cmcr, f"/{SENSOR_META} column '{column}'", _read_cmcr)
    assert "big-endian" in text and "little-endian" in text


def test_a_channel_meta_column_stored_big_endian_is_refused(synthetic):
    _flip_byte_order(synthetic, CHANNEL_META, "ADCBits")
    text = _refused(synthetic, f"/{CHANNEL_META} column 'ADCBits'", _read_cmcr)
    assert "big-endian" in text and "found >i4" in text


def test_raw_and_analog_data_stored_big_endian_are_refused(cmcr, synthetic):
    with h5py.File(cmcr, "a") as f:
        data = f["Acquisition/Sensor Data/SensorData 1 1"][()]
        del f["Acquisition/Sensor Data/SensorData 1 1"]
        f.create_dataset("Acquisition/Sensor Data/SensorData 1 1", data=data.view(">u2"))
    assert "big-endian" in _refused(cmcr, "/Acquisition/Sensor Data/SensorData 1 1", _read_cmcr)
    with h5py.File(synthetic, "a") as f:
        data = f[CHANNEL_DATA][()]
        del f[CHANNEL_DATA]
        f.create_dataset(CHANNEL_DATA, data=data.view(">i4"))
    assert "big-endian" in _refused(synthetic, f"/{CHANNEL_DATA}", _read_cmcr)


@pytest.mark.parametrize(("column", "value", "words"), [
    ("Tick", 50_000, "a whole number of microseconds in 1..10000"),
    ("ADCBits", 40, "an ADC resolution of 1..32 bits"),
])
def test_implausible_tick_and_adc_bits_are_refused(synthetic, column, value, words):
    with h5py.File(synthetic, "a") as f:
        table = f[CHANNEL_META][()]
        table[column] = value
        f[CHANNEL_META][...] = table
    text = _refused(synthetic, f"/{CHANNEL_META} row 0 column '{column}'", _read_cmcr)
    assert words in text and repr(value) in text


@pytest.mark.parametrize("value", [1 << 24, -(1 << 23) - 1, -(1 << 31)])
def test_a_light_reference_sample_outside_the_adc_range_is_refused(synthetic, value):
    with h5py.File(synthetic, "a") as f:
        assert int(f[CHANNEL_META]["ADCBits"][0]) == 24
        f[CHANNEL_DATA][0, 1234] = value
    text = _refused(synthetic, f"/{CHANNEL_DATA} row 0 sample 1234", _read_cmcr)
    assert "-8388608 .. 16777215" in text and str(value) in text


def test_a_units_column_stored_big_endian_is_refused(cmtr):
    _flip_byte_order(cmtr, "Spike Sorter/Units", "SensorID")
    text = _refused(cmtr, "/Spike Sorter/Units column 'SensorID'", _read_cmtr)
    assert "big-endian" in text


@pytest.mark.parametrize("value", [np.nan, np.inf, 3e9, -2.8e-25])
def test_an_implausible_peak_amplitude_is_refused(cmtr, value):
    with h5py.File(cmtr, "a") as f:
        peaks = f["Spike Sorter/Unit 4/Peaks"][()]
        peaks["PeakAmplitude"] = -68.0
        peaks["PeakAmplitude"][2] = value
        f["Spike Sorter/Unit 4/Peaks"][...] = peaks
    text = _refused(cmtr, "/Spike Sorter/Unit 4/Peaks included peak 2", _read_cmtr)
    assert "implausible peak amplitude" in text and f"at most {MAX_VOLTAGE:g}" in text


def test_a_cutout_sample_past_a_volt_is_refused_by_the_mean(tmp_path):
    path = tmp_path / "cut.cmtr"
    write_cmtr(path, UNITS, tick_us=50)
    with h5py.File(path, "a") as f:  # the vendor's Peaks with 4 cutout samples
        g = f["Spike Sorter/Unit 4"]
        peaks = g["Peaks"][()]
        dtype = np.dtype(peaks.dtype.descr + [(f"Cutout {i}", "<f4") for i in range(4)])
        table = np.zeros(peaks.size, dtype=dtype)
        for n in peaks.dtype.names:
            table[n] = peaks[n]
        for i in range(4):
            table[f"Cutout {i}"] = -20.0 * i
        del g["Peaks"]
        g.create_dataset("Peaks", data=table)
    units = _read_cmtr(path)
    np.testing.assert_allclose(units[0].waveform, [0, -20, -40, -60])
    with h5py.File(path, "a") as f:
        table = f["Spike Sorter/Unit 4/Peaks"][()]
        table["Cutout 3"][1] = np.float32(-60.0) * np.float32(2.0**64)  # an exponent bit of the float flipped
        f["Spike Sorter/Unit 4/Peaks"][...] = table
    text = _refused(path, "/Spike Sorter/Unit 4/Peaks sample 3", _read_cmtr)
    assert "implausible mean cutout" in text


@pytest.mark.parametrize(("tick", "exponent"), [(50, -9), (200, -15), (100, 3), (10_000, -6)])
def test_vendor_layout_files_over_the_documented_ranges_read(tmp_path, tick, exponent):
    """Hand-made files as the vendor lays them out, at the edges of what the checks allow, read; so do
    tiny and zero amplitudes, a cutout sample of a volt, and one-byte IncludePeak with 64-bit timestamps."""
    path = tmp_path / "edge.cmcr"
    counts = np.random.default_rng(1).integers(-300, 300, size=(8, 65, 65))
    write_cmcr(path, [Region(top=1, left=1, bottom=65, right=65)], counts, tick_us=tick, exponent=exponent,
               single_factor=1000, factors_as="none")
    usual = USUAL_GAIN_UV[0] <= 1000 * 10.0 ** (exponent + 6) <= USUAL_GAIN_UV[1]
    with CmcrFile(path) as f, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f.sampling_rate == 1e6 / tick
        ((_start, block),) = list(f.iter_sensor_blocks())
        meta = f.metadata()
    # a gain the format allows but recordings rarely hold is read, with a named warning the metadata keeps
    assert [w.category for w in caught] == ([] if usual else [UnusualVendorValueWarning])
    assert ("unusual_values" not in meta) if usual else (
        meta["unusual_values"] == [str(caught[0].message)] and "uV per ADC count" in meta["unusual_values"][0])
    np.testing.assert_allclose(block, counts.astype(np.float32) * 1000 * 10.0 ** (exponent + 6), rtol=1e-6)
    cmtr = tmp_path / "edge.cmtr"
    write_cmtr(cmtr, UNITS, tick_us=tick)
    with h5py.File(cmtr, "a") as f:
        peaks = f["Spike Sorter/Unit 4/Peaks"][()]
        peaks["PeakAmplitude"] = [0.0, MIN_VOLTAGE, -MAX_VOLTAGE, -68.0]
        f["Spike Sorter/Unit 4/Peaks"][...] = peaks
    units = _read_cmtr(cmtr)
    np.testing.assert_array_equal(units[0].peak_amplitudes, np.float32([0.0, MIN_VOLTAGE, -MAX_VOLTAGE, -68.0]))


def test_an_unusual_gain_is_kept_by_the_recording(tmp_path):
    from hdmea.pipeline import load_recording

    cmcr, cmtr = tmp_path / "odd.cmcr", tmp_path / "odd.cmtr"
    counts = np.random.default_rng(2).integers(-300, 300, size=(40, 65, 65))
    write_cmcr(cmcr, [Region(top=1, left=1, bottom=65, right=65)], counts, single_factor=1000, exponent=-3,
               factors_as="none")  # 1000 x 1e-3 V: a volt per count
    write_cmtr(cmtr, UNITS, tick_us=50, duration_us=40 * 50 * 30)
    with pytest.warns(UnusualVendorValueWarning, match="outside the usual"):
        load_recording(cmcr, cmtr, output_path=tmp_path / "odd.h5", waveforms=False, sensor_axis_order="col_row")
    with h5py.File(tmp_path / "odd.h5", "r") as f:
        kept = f["metadata/acquisition/unusual_values"][()]
    kept = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(kept)]
    assert len(kept) == 1 and "1e+06 .. 1e+06 uV per ADC count" in kept[0] and "SensorData 1 1" in kept[0]


def test_a_unit_attribute_stored_big_endian_is_refused(cmtr):
    """Where the Units table lacks them, the units' attributes place them; a SensorID whose stored type says
    big-endian over the vendor's bytes reads as a number off the chip, refused naming the unit."""
    with h5py.File(cmtr, "a") as f:
        del f["Spike Sorter/Units"]
    _read_cmtr(cmtr)
    with h5py.File(cmtr, "a") as f:
        g = f["Spike Sorter/Unit 4"]
        value = np.int32(g.attrs["SensorID"])
        del g.attrs["SensorID"]
        g.attrs.create("SensorID", data=np.array(value, "<i4").view(">i4"), dtype=np.dtype(">i4"))  # the same bytes
    text = _refused(cmtr, "/Spike Sorter/Unit 4", _read_cmtr)
    assert "sensor id of unit 4 outside the 65 x 65 grid" in text and "1..4225" in text


@pytest.mark.parametrize("overrides", [
    dict(),  # uint16 counts, 20 kHz, the whole chip
    dict(raw_dtype="int16", sensor_gain_spread=0.3, sensor_regions=((3, 5, 20, 40), (30, 30, 31, 31))),
    dict(sampling_rate=5000.0, sensor_regions=((1, 1, 65, 10),)),
])
def test_synthetic_recordings_the_vendor_reader_opens_read_without_a_warning(tmp_path, overrides):
    """Every check leaves alone the synthetic recordings McsPyDataTools reads: both files open in the vendor's
    reader, and ours read every value of them with warnings as errors."""
    McsCMOSMEA = pytest.importorskip("McsPy.McsCMOSMEA")
    from hdmea.synthetic import SyntheticConfig, generate_recording

    rec = generate_recording(tmp_path, "rec", config=SyntheticConfig.tiny(raw_seconds=0.1, **overrides), seed=3)
    for path in (rec.cmcr_path, rec.cmtr_path):
        vendor = McsCMOSMEA.McsCMOSMEAData(str(path))
        vendor.h5_file.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with CmcrFile(rec.cmcr_path) as f:
            meta, light, blocks = f.metadata(), f.light_reference(), list(f.iter_sensor_blocks())
            assert "unusual_values" not in meta and light["raw_ch1"].size and blocks
        with CmtrFile(rec.cmtr_path) as f:
            assert f.read_units(overrides.get("sampling_rate", 20000.0))


def test_a_peaks_table_starting_with_zeroed_rows_is_refused(cmtr):
    """A zeroed block at a table's start reads as peaks at 0 us, excluded: sorted, so the order check passes."""
    with h5py.File(cmtr, "a") as f:
        peaks = f["Spike Sorter/Unit 4/Peaks"][()]
        peaks[:2] = np.zeros(2, dtype=peaks.dtype)
        f["Spike Sorter/Unit 4/Peaks"][...] = peaks
    text = _refused(cmtr, "/Spike Sorter/Unit 4/Peaks row 0", _read_cmtr)
    assert "first row is zero bytes" in text


def test_a_damaged_column_name_of_the_units_table_is_refused(cmtr):
    with h5py.File(cmtr, "a") as f:
        table = f["Spike Sorter/Units"][()]
        renamed = table.astype(np.dtype([("S\x08R" if n == "SNR" else n, table.dtype.fields[n][0])
                                         for n in table.dtype.names]))
        del f["Spike Sorter/Units"]
        f["Spike Sorter"].create_dataset("Units", data=renamed)
    text = _refused(cmtr, "/Spike Sorter/Units column 'S\\x08R'", _read_cmtr)
    assert "control character" in text
