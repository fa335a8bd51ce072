"""Vendor files: the values of analog channels and of the units table that the format or physics rules out.

Each test writes a file by hand (``tests.mcs_handmade``, plain h5py) in the vendor's layout, reads it
undamaged (warnings are errors in the tests: it reads without any), then plants one damage the way a
flipped bit or a zeroed block would and checks for a :class:`RecordingFormatError` naming the file, the
object, what was expected and what was found, or, for a value the format allows but recordings rarely
hold, an :class:`UnusualVendorValueWarning` whose text the recording keeps.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError, UnusualVendorValueWarning
from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import CmtrFile
from hdmea.io.mcs_checks import REPEAT_SHARE, ZERO_RUN_SAMPLES
from tests.mcs_handmade import Region, sensor_id, write_analog, write_cmcr, write_cmtr

CHANNEL_META = "Acquisition/Analog Data/ChannelMeta"
CHANNEL_DATA = "Acquisition/Analog Data/ChannelData 1"
N_SAMPLES = 800
UNITS = [dict(unit_id=4, sensor_id=sensor_id(10, 20), row=10, col=20, spikes=[3, 40, 41, 700]),
         dict(unit_id=9, sensor_id=sensor_id(65, 1), row=65, col=1, spikes=[7, 8])]


def _channels(seed: int = 0) -> np.ndarray:
    """A photodiode dark, then lit at two levels, and a frame-sync line with pulses: codes with ADC noise."""
    rng = np.random.default_rng(seed)
    light = np.repeat([0, 20000, 10000, 20000], N_SAMPLES // 4) + rng.normal(0, 40, N_SAMPLES)
    sync = np.where(np.arange(N_SAMPLES) % 100 < 20, 30000, 0) + rng.normal(0, 20, N_SAMPLES)
    return np.rint(np.stack([light, sync])).astype(np.int32)


def _write(path, codes, **analog) -> None:
    write_cmcr(path, [Region(top=2, left=3, bottom=5, right=4)], np.zeros((6, 65, 65), dtype=np.int64),
               single_factor=1000, factors_as="none")
    write_analog(path, codes, **analog)


def _read(path) -> tuple[dict, dict]:
    """The light reference, then the metadata (which keeps what the reads found unusual)."""
    with CmcrFile(path) as f:
        light = f.light_reference()
        return light, f.metadata()


def _plant(path, row: int, index, value) -> None:
    with h5py.File(path, "a") as f:
        f[CHANNEL_DATA][row, index] = value


@pytest.fixture
def cmcr(tmp_path):
    path = tmp_path / "rec.cmcr"
    _write(path, _channels())
    light, meta = _read(path)  # undamaged: read without a warning
    assert "unusual_values" not in meta and light["raw_ch1"].size == N_SAMPLES
    return path


def _refused(path, obj_part: str) -> str:
    with pytest.raises(RecordingFormatError) as err:
        _read(path)
    text = str(err.value)
    assert str(path) in text and obj_part in text, text
    return text


@pytest.mark.parametrize(("row", "value"), [(0, 1 << 23), (1, (1 << 24) - 1), (1, 8405092)])
def test_a_code_of_an_unsigned_adc_in_a_signed_channel_is_refused(cmcr, row, value):
    """Both channels hold negative codes (noise about 0), so a code of 2**23 or more is a flipped high bit
    (8405092: 16484 with bit 23 set), though it lies in the range an unsigned 24-bit ADC has."""
    _plant(cmcr, row, 345, value)
    text = _refused(cmcr, f"/{CHANNEL_DATA} row {row} samples")
    assert "codes of a signed and of an unsigned ADC" in text and f"{value} at sample 345" in text
    assert "-8388608 .. 8388607 (signed) or 0 .. 16777215 (unsigned)" in text


def test_a_negative_code_in_an_unsigned_channel_is_refused(tmp_path):
    """An unsigned ADC's channel (codes about 2**23, its zero) reads; one negative code in it is refused."""
    path = tmp_path / "unsigned.cmcr"
    codes = _channels() + (1 << 23)
    _write(path, codes, ad_zero=1 << 23)
    light, _meta = _read(path)
    np.testing.assert_array_equal(light["raw_ch1"], (codes[0] - (1 << 23)).astype(np.float32))
    _plant(path, 0, 600, -3)
    text = _refused(path, f"/{CHANNEL_DATA} row 0 samples 600 and ")
    assert "-3 at sample 600" in text


def test_a_run_of_zero_codes_is_read_with_a_warning_the_metadata_keeps(cmcr):
    """A zeroed block (512 B: 128 codes) in a channel whose samples differ from their neighbours: read as stored,
    with a named warning naming the channel and the run, kept in the metadata."""
    _plant(cmcr, 1, np.s_[250:378], 0)
    with pytest.warns(UnusualVendorValueWarning) as caught:
        light, meta = _read(cmcr)
    assert np.all(light["raw_ch2"][250:378] == 0)
    (text,) = [str(w.message) for w in caught]
    assert meta["unusual_values"] == [text]
    assert str(cmcr) in text and f"/{CHANNEL_DATA} row 1" in text
    assert "128 samples of code 0 in a row from sample 250" in text


def test_zero_codes_a_channel_at_rest_or_not_connected_holds_read_without_a_warning(tmp_path):
    """No warning where zeros are what the channel holds: a line at rest whose codes mostly repeat (more than
    REPEAT_SHARE), a channel that is 0 throughout, and a few zeros in a row in a noisy channel."""
    codes = _channels()
    resting = np.zeros(N_SAMPLES, dtype=np.int32)
    resting[::7] = 1  # quantised noise of a quiet input: most samples repeat the one before
    assert np.count_nonzero(resting[1:] == resting[:-1]) > REPEAT_SHARE * (N_SAMPLES - 1)
    codes[0] = resting
    codes[1] = 0  # not connected
    path = tmp_path / "rest.cmcr"
    _write(path, codes)
    _read(path)
    noisy = _channels()
    noisy[1, 100:100 + ZERO_RUN_SAMPLES - 1] = 0  # one code short of a run
    noisy[1, [99, 100 + ZERO_RUN_SAMPLES - 1]] = 5
    path = tmp_path / "short.cmcr"
    _write(path, noisy)
    _read(path)


@pytest.mark.parametrize(("first", "length"), [(230, 70), (200, 400), (700, 100)])
def test_a_run_across_blocks_is_found(tmp_path, monkeypatch, first, length):
    """The channel is checked block by block (here 256 samples): a run that crosses blocks' edges, or ends the
    channel, counts whole."""
    import hdmea.io.cmcr as cmcr_module
    from hdmea.io.mcs_checks import AnalogChannelCheck

    monkeypatch.setattr(cmcr_module, "ANALOG_BLOCK_SAMPLES", 256)
    starts = []
    feed = AnalogChannelCheck.feed
    monkeypatch.setattr(AnalogChannelCheck, "feed", lambda self, raw, start: (starts.append(start), feed(self, raw, start)))
    codes = _channels()
    codes[0, first - 1], codes[0, first:first + length] = 7, 0
    if first + length < N_SAMPLES:
        codes[0, first + length] = 7
    path = tmp_path / "blocks.cmcr"
    _write(path, codes, chunk_samples=64)
    with pytest.warns(UnusualVendorValueWarning, match=f"{length} samples of code 0 in a row from sample {first}"):
        _read(path)
    assert sorted(set(starts)) == [0, 256, 512, 768]


def test_an_adc_zero_outside_the_adc_range_is_refused(cmcr):
    with h5py.File(cmcr, "a") as f:
        table = f[CHANNEL_META][()]
        table["ADZero"][1] = 1 << 24
        f[CHANNEL_META][...] = table
    text = _refused(cmcr, f"/{CHANNEL_META} row 1 column 'ADZero'")
    assert "ADC zero outside the ADC's range" in text and "-8388608 .. 16777215" in text and "16777216" in text


def test_a_zeroed_units_row_and_a_unit_listed_twice_are_refused(tmp_path):
    path = tmp_path / "rec.cmtr"
    write_cmtr(path, UNITS, tick_us=50)
    with CmtrFile(path) as f:
        assert [u.unit_id for u in f.read_units(20000.0)] == [4, 9]
    with h5py.File(path, "a") as f:
        table = f["Spike Sorter/Units"][()]
        f["Spike Sorter/Units"][1] = np.zeros(1, dtype=table.dtype)[0]  # a zeroed block over the row
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(path)
    text = str(err.value)
    assert str(path) in text and "/Spike Sorter/Units row 1 column 'SensorID'" in text
    assert "outside the 65 x 65 grid" in text and "1..4225" in text
    with h5py.File(path, "a") as f:
        table["UnitID"][1] = 4
        f["Spike Sorter/Units"][...] = table
    with pytest.raises(RecordingFormatError) as err:
        CmtrFile(path)
    text = str(err.value)
    assert str(path) in text and "/Spike Sorter/Units rows 0 and 1 column 'UnitID'" in text and "UnitID 4 twice" in text


def test_the_recording_keeps_the_warning_of_a_zeroed_light_reference(cmcr, tmp_path):
    """The load step reads the light reference in a thread beside the units; the warning reaches the caller and
    the recording stores it at metadata/acquisition/unusual_values."""
    from hdmea.pipeline import load_recording

    cmtr = tmp_path / "rec.cmtr"
    write_cmtr(cmtr, UNITS, tick_us=50, duration_us=N_SAMPLES * 50)
    _plant(cmcr, 0, np.s_[500:1000], 0)  # a 4 KiB block would zero 1024 codes; the channel ends first
    with pytest.warns(UnusualVendorValueWarning, match="300 samples of code 0 in a row from sample 500"):
        load_recording(cmcr, cmtr, output_path=tmp_path / "rec.h5", waveforms=False, sensor_axis_order="col_row")
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        kept = [v.decode() if isinstance(v, bytes) else str(v)
                for v in np.atleast_1d(f["metadata/acquisition/unusual_values"][()])]
    assert len(kept) == 1 and f"/{CHANNEL_DATA} row 0" in kept[0] and "from sample 500" in kept[0]


def test_a_chunk_stored_short_is_refused(tmp_path):
    """A damaged size in the chunk index: libhdf5 reads the chunk's missing bytes as whatever the buffer held."""
    import struct

    path = tmp_path / "short.cmcr"
    _write(path, _channels(), chunk_samples=400)
    _read(path)
    full = 2 * 400 * 4
    content = bytearray(path.read_bytes())
    key = struct.pack("<II", full, 0) + struct.pack("<3Q", 0, 400, 0)  # the second chunk's key: size, filters, offset
    at = content.find(key)
    assert at > 0 and content.find(key, at + 1) < 0
    content[at:at + 4] = struct.pack("<I", full - 12)
    path.write_bytes(bytes(content))
    text = _refused(path, f"/{CHANNEL_DATA} chunk at (0, 400)")
    assert "a chunk is stored in other than its size" in text and f"{full} bytes" in text and f"{full - 12} bytes" in text
