"""The .cmtr reader against the planted ground truth of synthetic recordings."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from h5stream.errors import SourceNotFoundError
from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.cmtr import CmtrFile, read_units
from hdmea.io.mcs import sensor_id_to_row_col

FS = 20000.0


def test_units_match_truth(tiny_recording, tiny_truth):
    units = read_units(tiny_recording.cmtr_path, FS)
    truth = list(tiny_truth.units.values())
    assert [u.unit_id for u in units] == [t.mcs_unit_id for t in truth]
    # UnitIDs are sparse and would sort wrongly as text ("Unit 10" < "Unit 5").
    assert [u.unit_id for u in units] == sorted(u.unit_id for u in units)
    for u, t in zip(units, truth):
        assert u.spike_times.dtype == np.uint64
        np.testing.assert_array_equal(u.spike_times, t.spike_times)
        assert (u.sensor_id, u.row, u.col) == (t.sensor_id, t.row, t.col)
        assert sensor_id_to_row_col(u.sensor_id) == (u.row, u.col)
        # Excluded (sub-threshold) peaks are present in the file but never counted.
        assert u.n_peaks == t.spike_times.size + t.excluded_peak_times.size
        assert not np.isin(t.excluded_peak_times, u.spike_times).any()
        assert set(u.quality) >= {"SNR", "Separability", "IsoINN"}


def test_waveform_is_mean_of_included_cutouts(tiny_recording, tiny_truth):
    units = read_units(tiny_recording.cmtr_path, FS)
    with h5py.File(tiny_recording.cmtr_path, "r") as f:
        for u in units:
            peaks = f[f"Spike Sorter/Unit {u.unit_id}/Peaks"][()]
            names = [n for n in peaks.dtype.names if n.startswith("Cutout")]
            kept = peaks[peaks["IncludePeak"] == 1]
            if kept.size == 0:
                assert np.all(u.waveform == 0)
                continue
            expected = np.array([kept[n].astype(np.float64).mean() for n in names], dtype=np.float32)
            np.testing.assert_allclose(u.waveform, expected, rtol=1e-5, atol=1e-4)
    # and it has the planted shape: amplitude * template at the unit's sensor
    for u, t in zip(units, tiny_truth.units.values()):
        if t.kind == "silent":
            continue
        planted = t.footprint[t.row - 1, t.col - 1] * t.waveform
        assert np.corrcoef(u.waveform, planted)[0, 1] > 0.95


def test_timestamps_convert_with_the_sampling_rate(tiny_recording, tiny_truth):
    half = read_units(tiny_recording.cmtr_path, FS / 4)
    for u, t in zip(half, tiny_truth.units.values()):
        np.testing.assert_array_equal(u.spike_times, np.rint(t.spike_times / 4.0).astype(np.uint64))
    with pytest.raises(ConfigError):
        read_units(tiny_recording.cmtr_path, 0.0)


def test_source_is_never_read(tiny_recording, monkeypatch):
    read = []
    original = h5py.Dataset.__getitem__

    def spy(self, args, *rest, **kw):
        read.append(self.name)
        return original(self, args, *rest, **kw)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with CmtrFile(tiny_recording.cmtr_path) as f:
        f.read_units(FS)
        assert read and not any(name.endswith("/Source") for name in read)
        uid = f.unit_ids()[0]
        source = f.read_source(uid)
    assert any(name.endswith("/Source") for name in read)
    assert source.ndim == 1 and source.dtype == np.float32


def test_acquisition_link_is_tolerated_not_followed(tiny_recording):
    with CmtrFile(tiny_recording.cmtr_path) as f:
        assert f.acquisition_link() == (tiny_recording.cmcr_path.name, "/Acquisition")


def test_other_external_link_is_refused(recording_copy):
    _cmcr, cmtr = recording_copy
    with h5py.File(cmtr, "a") as f:
        f["Spike Sorter/Sneaky"] = h5py.ExternalLink("/etc/passwd", "/x")
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(cmtr)
    assert str(cmtr) in str(err.value) and "/Spike Sorter/Sneaky" in str(err.value)


def test_missing_peaks_names_the_object(recording_copy):
    _cmcr, cmtr = recording_copy
    with h5py.File(cmtr, "a") as f:
        name = sorted(k for k in f["Spike Sorter"] if k.startswith("Unit "))[0]
        del f[f"Spike Sorter/{name}/Peaks"]
    with pytest.raises(RecordingFormatError) as err:
        read_units(cmtr, FS)
    assert f"/Spike Sorter/{name}/Peaks" in str(err.value) and str(cmtr) in str(err.value)


def test_file_of_another_tool(tmp_path, recording_copy):
    other = tmp_path / "other.cmtr"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(other)
    assert "ID.TypeID" in str(err.value)
    cmcr, _ = recording_copy
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(cmcr)  # a raw file given as the sorter's file
    assert "ProgramName" in str(err.value)


def test_damaged_and_missing_files(tmp_path, recording_copy):
    _cmcr, cmtr = recording_copy
    data = cmtr.read_bytes()
    cut = tmp_path / "cut.cmtr"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(RecordingFormatError) as err:
        read_units(cut, FS)
    assert str(cut) in str(err.value)
    text = tmp_path / "notes.cmtr"
    text.write_text("not hdf5")
    with pytest.raises(RecordingFormatError):
        CmtrFile(text)
    with pytest.raises(SourceNotFoundError):
        CmtrFile(tmp_path / "absent.cmtr")


def test_row_col_disagreeing_with_sensor_id_follow_the_id_with_one_warning(recording_copy, tiny_truth, caplog):
    """Zero-based Row/Column in the Units table: SensorID decides, one logged warning for the file."""
    _cmcr, cmtr = recording_copy
    with h5py.File(cmtr, "a") as f:
        table = f["Spike Sorter/Units"][()]
        table["Row"] -= 1
        table["Column"] -= 1
        f["Spike Sorter/Units"][...] = table
    with caplog.at_level("WARNING", logger="hdmea.io.cmtr"):
        with CmtrFile(cmtr) as f:
            units = f.read_units(FS)
            assert len(f.position_warnings) == len(units)
    for u, t in zip(units, tiny_truth.units.values()):
        assert (u.sensor_id, u.row, u.col) == (t.sensor_id, t.row, t.col)
    logged = [r for r in caplog.records if r.name == "hdmea.io.cmtr"]
    assert len(logged) == 1 and "/Spike Sorter/Units" in logged[0].getMessage()
    assert str(cmtr) in logged[0].getMessage() and "SensorID" in logged[0].getMessage()


def test_positions_from_unit_attributes_without_a_units_table(recording_copy, tiny_truth):
    _cmcr, cmtr = recording_copy
    with h5py.File(cmtr, "a") as f:
        del f["Spike Sorter/Units"]
    units = read_units(cmtr, FS)
    for u, t in zip(units, tiny_truth.units.values()):
        assert (u.sensor_id, u.row, u.col) == (t.sensor_id, t.row, t.col)
        assert u.quality == {}
        np.testing.assert_array_equal(u.spike_times, t.spike_times)
    with h5py.File(cmtr, "a") as f:
        name = sorted(k for k in f["Spike Sorter"] if k.startswith("Unit "))[0]
        g = f[f"Spike Sorter/{name}"]
        g.attrs["Row"] = np.int32(int(g.attrs["Row"]) % 65 + 1)
        sensor = int(g.attrs["SensorID"])
        others = sorted(k for k in f["Spike Sorter"] if k.startswith("Unit "))[1:]
        for other in others:  # no id: Row/Column decide
            del f[f"Spike Sorter/{other}"].attrs["SensorID"]
        g = f[f"Spike Sorter/{others[0]}"]
        zero_based_unit = int(g.attrs["UnitID"])
        zero_based_row = int(g.attrs["Row"]) - 1
        g.attrs["Row"], g.attrs["Column"] = np.int32(zero_based_row), np.int32(0)  # a 0 marks zero-based
    with CmtrFile(cmtr) as f:
        units = f.read_units(FS)
        assert len(f.position_warnings) == 2
    for u, t in zip(units, tiny_truth.units.values()):
        if u.unit_id == zero_based_unit:
            assert (u.row, u.col, u.sensor_id) == (zero_based_row + 1, 1, zero_based_row + 1)
            u.row, u.col, u.sensor_id = t.row, t.col, t.sensor_id
    assert units[0].sensor_id == sensor  # the id, not the disagreeing Row
    for u, t in zip(units, tiny_truth.units.values()):
        assert (u.sensor_id, u.row, u.col) == (t.sensor_id, t.row, t.col)


def _rewrite_peaks(cmtr, transform):
    with h5py.File(cmtr, "a") as f:
        name = sorted(k for k in f["Spike Sorter"] if k.startswith("Unit "))[0]
        path = f"Spike Sorter/{name}/Peaks"
        attrs = dict(f[path].attrs)
        peaks = transform(f[path][()])
        del f[path]
        f[path] = peaks
        f[path].attrs.update(attrs)
    return f"/Spike Sorter/{name}/Peaks"


def test_negative_timestamps_are_refused(recording_copy):
    _cmcr, cmtr = recording_copy

    def negative(peaks):
        first = np.flatnonzero(peaks["IncludePeak"] == 1)[0]
        peaks["Timestamp"][first] = -50
        return peaks

    obj = _rewrite_peaks(cmtr, negative)
    with pytest.raises(RecordingFormatError) as err:
        read_units(cmtr, FS)
    assert obj in str(err.value) and "negative" in str(err.value)


def test_text_cutout_columns_are_refused(recording_copy):
    _cmcr, cmtr = recording_copy

    def texty(peaks):
        names = list(peaks.dtype.names)
        dt = np.dtype([(n, "S4" if n == names[-1] else peaks.dtype.fields[n][0]) for n in names])
        out = np.zeros(peaks.size, dtype=dt)
        for n in names[:-1]:
            out[n] = peaks[n]
        return out

    obj = _rewrite_peaks(cmtr, texty)
    with pytest.raises(RecordingFormatError) as err:
        read_units(cmtr, FS)
    assert obj in str(err.value) and "non-numeric" in str(err.value)


def test_oversized_table_is_refused_before_allocation(recording_copy, monkeypatch):
    import hdmea.io.cmtr as cmtr_module

    _cmcr, cmtr = recording_copy
    monkeypatch.setattr(cmtr_module, "MAX_TABLE_BYTES", 1000)
    with pytest.raises(RecordingFormatError, match="too large"):
        read_units(cmtr, FS)


def test_unit_groups_without_or_with_duplicate_ids(recording_copy):
    _cmcr, cmtr = recording_copy
    with h5py.File(cmtr, "a") as f:
        names = sorted(k for k in f["Spike Sorter"] if k.startswith("Unit "))
        f[f"Spike Sorter/{names[1]}"].attrs["UnitID"] = f[f"Spike Sorter/{names[0]}"].attrs["UnitID"]
    with pytest.raises(RecordingFormatError, match="two unit groups"):
        CmtrFile(cmtr)
    with h5py.File(cmtr, "a") as f:
        del f[f"Spike Sorter/{names[1]}"].attrs["UnitID"]
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(cmtr)
    assert f"/Spike Sorter/{names[1]}/@UnitID" in str(err.value)


def test_excluded_peaks_of_a_hand_made_file_are_left_out_of_samples_and_amplitudes(tmp_path):
    """A .cmtr written with plain h5py whose Peaks tables mix included and excluded peaks: the reader's
    spike samples and amplitudes are the included rows, in order, against numpy on the stored table."""
    from tests.mcs_handmade import sensor_id, write_cmtr

    rng = np.random.default_rng(5)
    path = tmp_path / "mixed.cmtr"
    units = [{"unit_id": 3 + i, "sensor_id": sensor_id(10 + i, 20), "row": 10 + i, "col": 20,
              "spikes": np.sort(rng.choice(200_000, size=n, replace=False))} for i, n in enumerate([500, 37, 1])]
    write_cmtr(path, units)
    with h5py.File(path, "r+") as f:  # flags and amplitudes written in place: some peaks excluded
        for u, flags in zip(units, [rng.random(500) < 0.7, np.ones(37, bool), np.zeros(1, bool)]):
            peaks = f[f"Spike Sorter/Unit {u['unit_id']}/Peaks"]
            table = peaks[()]
            table["IncludePeak"] = flags
            table["PeakAmplitude"] = rng.normal(-50, 10, table.size).astype(np.float32)
            peaks[...] = table
        stored = {u["unit_id"]: f[f"Spike Sorter/Unit {u['unit_id']}/Peaks"][()] for u in units}
    got = {u.unit_id: u for u in read_units(path, FS)}
    for unit_id, table in stored.items():
        kept = table[table["IncludePeak"] == 1]
        np.testing.assert_array_equal(got[unit_id].spike_times, (kept["Timestamp"] // 50).astype(np.uint64))
        np.testing.assert_array_equal(got[unit_id].peak_amplitudes, kept["PeakAmplitude"])
        assert got[unit_id].n_peaks == table.size
