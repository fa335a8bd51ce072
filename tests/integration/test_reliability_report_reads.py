"""The report reader checks the datasets it draws against the file's checksums: damage is an error, never a map.

A recording with one unit and an electrical image of 50 x 65 x 65 float32 values
(contiguous storage, covered by a digest in the checksum manifest, not by HDF5)
has one byte of that image flipped in the file's bytes; the report's reader
returned the damaged image as data.  Reference for the undamaged file: the
planted trough frame, found here by plain numpy.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import ChecksumError
from hdmea.io.hdf5_store import create_recording_hdf5, write_feature_to_unit, write_units
from hdmea.report.data import read_recording_data

EIMAGE = "/units/u1/features/eimage_sta/data"
TROUGH = (17, 30, 41)  # frame, row, col of the planted trough


def _planted() -> np.ndarray:
    data = np.zeros((50, 65, 65), dtype=np.float32)
    data += np.float32(0.25) * np.sin(np.arange(50, dtype=np.float32))[:, None, None]
    data[TROUGH] = -80.0
    return data


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec.h5"
    with create_recording_hdf5(path, "rec") as f:
        write_units(f, {"u1": {"spike_times": np.arange(10, 100, 7, dtype=np.uint64), "row": 31, "col": 42}})
        write_feature_to_unit(f, "u1", "eimage_sta", {"data": _planted()})
    return path


def _flip_in_eimage(path, index: int) -> None:
    with h5py.File(path, "r") as f:
        ds = f[EIMAGE]
        assert ds.chunks is None and ds.id.get_offset() is not None  # contiguous: no HDF5 checksum over it
        offset = ds.id.get_offset() + 4 * index + 1
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_undamaged_image_is_drawn_from_its_trough(recording):
    data = read_recording_data(recording)
    assert data.eimage.unit_ids == ["u1"]
    planted = _planted()
    centred = planted - np.median(planted, axis=0, keepdims=True)
    [spatial] = data.eimage.maps
    np.testing.assert_allclose(spatial, centred[TROUGH[0]], rtol=0, atol=1e-5)
    assert np.unravel_index(np.argmin(spatial), spatial.shape) == TROUGH[1:]


@pytest.mark.parametrize("index", [0, 7777, 50 * 65 * 65 - 1])
def test_damaged_image_is_a_checksum_error(recording, index):
    _flip_in_eimage(recording, index)
    with h5py.File(recording, "r") as f:  # the damage reads back without any error from HDF5
        assert not np.array_equal(f[EIMAGE][()], _planted())
    with pytest.raises(ChecksumError) as info:
        read_recording_data(recording)
    assert str(recording) in str(info.value) and EIMAGE in str(info.value)
