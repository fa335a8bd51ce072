"""Vendor files carry no checksum: damaged scaling, flags, timestamps and positions are refused, naming the object.

Each test damages one field of a hand-written (``tests.mcs_handmade``) or
synthetic file with plain h5py, the way a flipped byte would, and checks that
the reader raises :class:`RecordingFormatError` naming the file and the object
instead of returning rescaled or shifted data.  The undamaged file is read first,
so each refusal is caused by the damage alone.
"""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from h5stream.errors import UnsafeFileError
from h5stream.files import verify_files
from hdmea.errors import RecordingFormatError
from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import CmtrFile
from hdmea.io.mcs import mcs_link_rule, verify_inputs
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr

SENSOR_META = "Acquisition/Sensor Data/SensorMeta"
CHANNEL_META = "Acquisition/Analog Data/ChannelMeta"


def _rewrite_table(path, name, change) -> None:
    """Replace the compound table ``name`` by ``change(table)`` (which may change its dtype)."""
    with h5py.File(path, "a") as f:
        table = f[name][()]
        attrs = dict(f[name].attrs)
        del f[name]
        f.create_dataset(name, data=change(table))
        for key, value in attrs.items():
            f[name].attrs[key] = value


def _set(field, value):
    def change(table):
        table = table.copy()
        table[field] = value
        return table
    return change


def _renamed(old, new):
    def change(table):
        return table.astype(np.dtype([(new if n == old else n, table.dtype.fields[n][0]) for n in table.dtype.names]))
    return change


@pytest.fixture
def cmcr(tmp_path):
    path = tmp_path / "rec.cmcr"
    region = Region(top=2, left=3, bottom=5, right=4, factors=np.arange(1, 9).reshape(4, 2) * 100)
    counts = np.random.default_rng(0).integers(-50, 50, size=(6, 65, 65))
    write_cmcr(path, [region], counts)
    with CmcrFile(path) as f:  # the undamaged file reads
        assert f.metadata()["sensor"]["exponent"] == -9
        assert f.sampling_rate == 20000.0
    return path


def _refused(path, obj_part, read=lambda f: (f.metadata(), list(f.iter_sensor_blocks()))):
    with pytest.raises(RecordingFormatError) as err:
        with CmcrFile(path) as f:
            read(f)
    assert str(path) in str(err.value) and obj_part in str(err.value), str(err.value)
    return err.value


@pytest.mark.parametrize(("field", "value", "words"), [
    ("Tick", 0, "Tick"),
    ("Tick", -50, "Tick"),
    ("Exponent", -6 ^ -(2**31), "Exponent"),  # the sign bit of -6 flipped: 2147483642
    ("Exponent", 7, "Exponent"),
    ("Region.Left", 0, "Region.Left"),
    ("Region.Bottom", 66, "Region.Bottom"),
    ("RegionID", -1, "RegionID"),
])
def test_implausible_sensor_meta_is_refused(cmcr, field, value, words):
    _rewrite_table(cmcr, SENSOR_META, _set(field, value))
    error = _refused(cmcr, f"/{SENSOR_META} row 0 column '{field}'")
    assert words in str(error) and repr(value) in str(error)


def test_missing_exponent_is_not_read_as_zero(cmcr):
    """A damaged column name used to give Exponent 0: values 10**9 times too large."""
    _rewrite_table(cmcr, SENSOR_META, _renamed("Exponent", "Exponenu"))
    error = _refused(cmcr, "SensorMeta for /Acquisition/Sensor Data/SensorData 1 1")
    assert "no Exponent" in str(error)


def test_non_positive_sensor_factor_is_refused(cmcr):
    def zero_factor(table):
        table = table.copy()
        table["Conversion Factors"] = table["Conversion Factors"][0].replace(b"500 ", b"0 ", 1)
        return table
    _rewrite_table(cmcr, SENSOR_META, zero_factor)
    error = _refused(cmcr, "SensorMeta for /Acquisition/Sensor Data/SensorData 1 1")
    # sensor-id order runs down each column: 100, 300, 500, ... so 500 is the third factor
    assert "not positive" in str(error) and "found 0.0 at position 2" in str(error)


def test_text_in_a_numeric_meta_column_is_a_typed_error(cmcr):
    """CmcrFile.metadata used to raise a raw TypeError/ValueError here."""
    def texty(table):
        dtype = np.dtype([(n, "S8" if n == "Exponent" else table.dtype.fields[n][0]) for n in table.dtype.names])
        out = np.zeros(table.shape, dtype=dtype)
        for n in table.dtype.names:
            out[n] = b"-9x" if n == "Exponent" else table[n]
        return out
    _rewrite_table(cmcr, SENSOR_META, texty)
    error = _refused(cmcr, "column 'Exponent'")
    assert "does not hold numbers" in str(error)


def test_implausible_channel_meta(tiny_recording, tmp_path):
    path = tmp_path / "rec.cmcr"
    shutil.copy(tiny_recording.cmcr_path, path)
    with CmcrFile(path) as f:
        assert f.metadata()["analog"]["conversion_factor"] == 1.0
    _rewrite_table(path, CHANNEL_META, _set("ConversionFactor", -1))
    _refused(path, f"/{CHANNEL_META} row 0 column 'ConversionFactor'", read=lambda f: f.light_reference())
    _rewrite_table(path, CHANNEL_META, _set("ConversionFactor", 1))
    _rewrite_table(path, CHANNEL_META, _set("Tick", 0))
    _refused(path, f"/{CHANNEL_META} row 0 column 'Tick'", read=lambda f: f.sampling_rate)


# --------------------------------------------------------------------------- .cmtr


UNITS = [dict(unit_id=4, sensor_id=sensor_id(10, 20), row=10, col=20, spikes=[3, 40, 41, 900]),
         dict(unit_id=9, sensor_id=sensor_id(65, 1), row=65, col=1, spikes=[7, 8])]


@pytest.fixture
def cmtr(tmp_path):
    path = tmp_path / "rec.cmtr"
    write_cmtr(path, UNITS, tick_us=50)
    with CmtrFile(path) as f:  # the undamaged file reads
        units = f.read_units(20000.0)
    np.testing.assert_array_equal(units[0].spike_times, [3, 40, 41, 900])
    return path


def _peaks(path, unit_id, change) -> None:
    with h5py.File(path, "a") as f:
        ds = f[f"Spike Sorter/Unit {unit_id}/Peaks"]
        peaks = ds[()]
        change(peaks)
        ds[...] = peaks


def _cmtr_refused(path, obj_part):
    with pytest.raises(RecordingFormatError) as err:
        with CmtrFile(path) as f:
            f.read_units(20000.0)
    assert str(path) in str(err.value) and obj_part in str(err.value), str(err.value)
    return err.value


def test_include_peak_other_than_0_or_1(cmtr):
    _peaks(cmtr, 4, lambda p: p["IncludePeak"].__setitem__(2, 3))
    error = _cmtr_refused(cmtr, "/Spike Sorter/Unit 4/Peaks row 2")
    assert "IncludePeak" in str(error) and "found 3" in str(error)


def test_unsorted_timestamps(cmtr):
    _peaks(cmtr, 4, lambda p: p["Timestamp"].__setitem__(1, 41 * 50 + 50 * 64))  # 40 -> 104 samples
    error = _cmtr_refused(cmtr, "/Spike Sorter/Unit 4/Peaks row 2")
    assert "not sorted" in str(error)


def test_timestamps_past_the_recording(cmtr):
    with h5py.File(cmtr, "r") as f:
        duration = int(f.attrs["LB.RecordingDuration"][0])
    _peaks(cmtr, 4, lambda p: p["Timestamp"].__setitem__(3, duration + 50 * 1024))
    error = _cmtr_refused(cmtr, "/Spike Sorter/Unit 4/Peaks row 3")
    assert "past the end of the recording" in str(error)


@pytest.mark.parametrize(("column", "value"), [("Row", 66), ("Column", 0), ("Row", -1)])
def test_row_and_column_outside_the_chip_are_overruled_by_a_valid_sensor_id(cmtr, column, value, caplog):
    with h5py.File(cmtr, "r") as f:
        table = f["Spike Sorter/Units"][()]
    unit, sensor = int(table["UnitID"][1]), int(table["SensorID"][1])
    expected = ((sensor - 1) % 65 + 1, (sensor - 1) // 65 + 1)  # column-major 65 x 65 grid, 1-based

    def change(table):
        table = table.copy()
        table[column][1] = value
        return table
    _rewrite_table(cmtr, "Spike Sorter/Units", change)
    with caplog.at_level("WARNING"), CmtrFile(cmtr) as f:
        units = f.read_units(20000.0)
        warnings, warned_units = list(f.position_warnings), list(f.position_warning_units)
    placed = {int(u.unit_id): (int(u.row), int(u.col)) for u in units}
    assert placed[unit] == expected
    assert warned_units == [unit] and f"unit {unit}" in warnings[0] and f"SensorID {sensor}" in warnings[0]
    assert any(str(cmtr) in r.getMessage() and f"unit {unit}" in r.getMessage() for r in caplog.records)


def test_a_sensor_id_outside_the_chip_is_refused(cmtr):
    def change(table):
        table = table.copy()
        table["SensorID"][1] = 65 * 65 + 1
        return table
    _rewrite_table(cmtr, "Spike Sorter/Units", change)
    error = _cmtr_refused(cmtr, "/Spike Sorter/Units")
    assert "outside the 65 x 65 grid" in str(error) and "4226" in str(error)


def test_float_sensor_ids_are_refused(cmtr):
    def floaty(table):
        return table.astype(np.dtype([(n, "<f8" if n == "SensorID" else table.dtype.fields[n][0])
                                      for n in table.dtype.names]))
    _rewrite_table(cmtr, "Spike Sorter/Units", floaty)
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(cmtr)
    assert "column 'SensorID'" in str(err.value) and "integers" in str(err.value)


# --------------------------------------------------------------------------- the Acquisition link, pre-checks


def test_verify_accepts_the_cmtr_acquisition_link_and_nothing_else(tiny_recording, tmp_path):
    cmcr = tmp_path / tiny_recording.cmcr_path.name
    cmtr = tmp_path / tiny_recording.cmtr_path.name
    shutil.copy(tiny_recording.cmcr_path, cmcr)
    shutil.copy(tiny_recording.cmtr_path, cmtr)
    with h5py.File(cmtr, "r") as f:
        link = f.get("Acquisition", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename == cmcr.name
    assert verify_files([cmcr, cmtr], link_rule=mcs_link_rule) == [None, None]
    assert verify_inputs([cmcr, cmtr]) == [None, None]
    # the engine knows no vendor: without the face's rule every external link is refused
    [error] = verify_files([cmtr])
    assert isinstance(error, UnsafeFileError) and "/Acquisition" in str(error)

    # The same link in a file that is not a .cmtr is refused.
    other = tmp_path / "copy.h5"
    shutil.copy(cmtr, other)
    [error] = verify_files([other], link_rule=mcs_link_rule)
    assert isinstance(error, UnsafeFileError) and "/Acquisition" in str(error)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name, target, obj in [
        ("Acquisition", os.fspath(elsewhere / cmcr.name), "/Acquisition"),  # not the sibling
        ("Acquisition", "../" + cmcr.name, "/Acquisition"),
        ("Acquisition", "secret.h5", "/Acquisition"),  # not a .cmcr
        ("Acquisition", cmcr.name, "/Acquisition/Sensor Data"),  # not its Acquisition
    ]:
        with h5py.File(cmtr, "a") as f:
            del f["Acquisition"]
            f["Acquisition"] = h5py.ExternalLink(target, obj)
        [error] = verify_files([cmtr], link_rule=mcs_link_rule)
        assert isinstance(error, UnsafeFileError) and "/Acquisition" in str(error), (target, obj, error)
        with pytest.raises(RecordingFormatError):
            CmtrFile(cmtr)
    with h5py.File(cmtr, "a") as f:
        del f["Acquisition"]
        f["Acquisition"] = h5py.ExternalLink(os.fspath(cmcr), "/Acquisition")  # absolute, same folder
        f["Spike Sorter/Acquisition"] = h5py.ExternalLink(cmcr.name, "/Acquisition")  # not at the root
    [error] = verify_files([cmtr], link_rule=mcs_link_rule)
    assert isinstance(error, UnsafeFileError) and "/Spike Sorter/Acquisition" in str(error)


def test_a_file_that_crashes_the_reader_is_a_typed_error(tiny_recording, tmp_path, monkeypatch):
    """The pre-check's process dies on one file (as libhdf5 does on some damaged .cmtr); the others are read."""
    import h5stream.files.verify as verify

    crash = tmp_path / "crash.cmtr"
    shutil.copy(tiny_recording.cmtr_path, crash)
    child = ("import os, signal\n"
             "import h5stream.files.verify as v\n"
             "real = v.open_validated\n"
             "def opener(p, **kw):\n"
             "    if os.path.basename(p).startswith('crash'):\n"
             "        os.kill(os.getpid(), signal.SIGSEGV)\n"
             "    return real(p, **kw)\n"
             "v.open_validated = opener\n"
             "v._verify_child()\n")
    monkeypatch.setattr(verify, "_VERIFY_CHILD", child)
    results = verify_inputs([tiny_recording.cmcr_path, crash, tiny_recording.cmtr_path])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RecordingFormatError)
    assert str(crash) in str(results[1]) and "crashed" in str(results[1])


def test_tick_must_agree_across_tables_and_with_the_duration(tiny_recording, tmp_path):
    """A Tick of 51 instead of 50 is positive, but it would shift every time by 2%."""
    path = tmp_path / "rec.cmcr"
    shutil.copy(tiny_recording.cmcr_path, path)
    with h5py.File(path, "r") as f:
        tick = int(f[CHANNEL_META]["Tick"][0])
    _rewrite_table(path, SENSOR_META, _set("Tick", tick + 1))
    error = _refused(path, f"/{SENSOR_META} row 0 column 'Tick'", read=lambda f: f.sampling_rate)
    assert "disagree" in str(error) and f"{tick + 1} us" in str(error)
    for name in (SENSOR_META, CHANNEL_META):
        _rewrite_table(path, name, _set("Tick", tick + 1))
    error = _refused(path, f"/{CHANNEL_META} column 'Tick'", read=lambda f: f.sampling_rate)
    assert "disagrees with the recording's duration" in str(error)


def test_unknown_unit_is_refused(cmcr):
    _rewrite_table(cmcr, SENSOR_META, _set("Unit", b"W"))  # 'V' with one bit flipped
    error = _refused(cmcr, f"/{SENSOR_META} row 0 column 'Unit'")
    assert "'W'" in str(error)


# --------------------------------------------------------------------------- byte flips

FLIP_CHILD = '''
import json, sys, warnings, logging
import numpy as np
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from h5stream.errors import H5StreamError
from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import CmtrFile

src, work, positions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

def read(path):
    if path.endswith(".cmtr"):
        with CmtrFile(path) as f:
            return [(u.unit_id, u.sensor_id, u.spike_times.tobytes(), u.waveform.tobytes())
                    for u in f.read_units(20000.0)]
    with CmcrFile(path) as f:
        light = f.light_reference()
        return (json.dumps(f.metadata(), sort_keys=True, default=str), f.sampling_rate,
                light["raw_ch1"].tobytes(), [b.tobytes() for _s, b in f.iter_sensor_blocks(block_frames=64, stop=64)])

reference = read(src)
raw = open(src, "rb").read()
counts = {"same": 0, "typed": 0, "silent": 0, "raw": []}
for k, (pos, bit) in enumerate(positions):
    damaged = bytearray(raw)
    damaged[pos] ^= 1 << bit
    with open(work, "wb") as fh:
        fh.write(damaged)
    try:
        counts["same" if read(work) == reference else "silent"] += 1
    except H5StreamError:
        counts["typed"] += 1
    except Exception as exc:
        counts["raw"].append([pos, bit, type(exc).__name__, str(exc)[:200]])
print(json.dumps(counts))
'''


def _flips(src, work, positions) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FLIP_CHILD, str(src), str(work), json.dumps(positions)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"reader crashed ({done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_byte_flips_in_vendor_metadata_give_no_raw_exception_and_no_crash(tiny_recording, tmp_path):
    """Every byte of the .cmcr meta tables and 150 random bytes of its headers, 150 random bytes of the .cmtr.

    Vendor files carry no checksum, so flips in values no plausibility rule can bound
    (an ADC zero of 1 instead of 0, a factor of 3 instead of 1, a cutout sample, a
    timestamp that stays sorted) still read as data; the rest are typed errors.
    None may escape as a raw exception or crash the reader.
    """
    rng = np.random.default_rng(19)
    with h5py.File(tiny_recording.cmcr_path, "r") as f:
        tables = [f[name].id for name in (CHANNEL_META, SENSOR_META)]
        meta_bytes = [p for t in tables for p in range(t.get_offset(), t.get_offset() + t.get_storage_size())]
        header_end = min(t.get_offset() for t in tables)
    cmcr = [(p, int(rng.integers(0, 8))) for p in meta_bytes]
    cmcr += [(int(p), int(rng.integers(0, 8))) for p in rng.integers(0, header_end, 150)]
    size = tiny_recording.cmtr_path.stat().st_size
    cmtr = [(int(p), int(rng.integers(0, 8))) for p in rng.integers(0, size, 150)]

    cmcr_counts = _flips(tiny_recording.cmcr_path, tmp_path / "rec.cmcr", cmcr)
    cmtr_counts = _flips(tiny_recording.cmtr_path, tmp_path / "rec.cmtr", cmtr)
    assert cmcr_counts["raw"] == [] and cmtr_counts["raw"] == [], (cmcr_counts["raw"], cmtr_counts["raw"])
    # Most damaged meta values are refused (Tick, Exponent, Unit, ids, regions, factors' signs).
    assert cmcr_counts["typed"] > cmcr_counts["silent"], cmcr_counts
