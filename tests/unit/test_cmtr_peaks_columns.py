"""A damaged column name in a ``.cmtr`` Peaks table is refused, never read as one more cutout sample."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError
from hdmea.io.cmtr import CmtrFile

SAMPLING_RATE = 20000.0


def _rename_field(cmtr, old: str, new: str) -> str:
    """Rewrite the first unit's Peaks table with column ``old`` named ``new``; return the table's name."""
    with h5py.File(cmtr, "r+") as f:
        name = next(f"/Spike Sorter/{g}/Peaks" for g in f["Spike Sorter"] if g.startswith("Unit "))
        peaks = f[name][()]
        dtype = np.dtype([(new if n == old else n, peaks.dtype.fields[n][0]) for n in peaks.dtype.names])
        attrs = dict(f[name].attrs)
        del f[name]
        f.create_dataset(name, data=peaks.view(dtype))
        f[name].attrs.update(attrs)
    return name


def test_unknown_column_before_the_cutouts_is_refused(recording_copy):
    _cmcr, cmtr = recording_copy
    with CmtrFile(cmtr) as f:
        before = f.read_units(SAMPLING_RATE)
    assert before[0].waveform.size > 0 and before[0].peak_amplitudes.size == before[0].spike_count
    name = _rename_field(cmtr, "PeakAmplitude", "PeakAmplitu]e")  # one flipped byte
    with CmtrFile(cmtr) as f, pytest.raises(RecordingFormatError) as err:
        f.read_units(SAMPLING_RATE)
    message = str(err.value)
    assert str(cmtr) in message and name in message and "PeakAmplitu]e" in message


def test_cutout_columns_after_the_named_ones_still_read(recording_copy):
    _cmcr, cmtr = recording_copy
    with CmtrFile(cmtr) as f:
        before = f.read_units(SAMPLING_RATE)
    _rename_field(cmtr, "Cutout 0", "Sample 0")  # any name after the named columns is a cutout sample
    with CmtrFile(cmtr) as f:
        after = f.read_units(SAMPLING_RATE)
    np.testing.assert_array_equal(after[0].waveform, before[0].waveform)
    np.testing.assert_array_equal(after[0].spike_times, before[0].spike_times)
