"""The report and ``hdmea inspect`` never show damaged values as if they were data.

Text that is not UTF-8 is a typed error naming the attribute (never replacement
characters or lone surrogates); a unit position that is not an electrode row or
column (1..65) is a typed error; a position the file does not store stays marked
as missing (``NO_POSITION``), never a number on the chip; counts and rates that
are not numbers are typed errors instead of defaults.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from hdmea.errors import RecordingFormatError
from hdmea.report.data import NO_POSITION, read_recording_data
from hdmea.report.tree import describe_recording
from tests.integration.test_hostile_files import recording_root

UTF8 = h5py.string_dtype("utf-8")


def _recording(path, **unit_attrs):
    with h5py.File(path, "w") as f:
        recording_root(f)
        unit = f["units"].create_group("u1")
        unit.create_dataset("spike_times", data=np.arange(5, dtype=np.uint64))
        unit.attrs.update(unit_attrs)
        unit.create_group("features")
    return path


def test_positions_read_back_and_a_missing_position_is_marked(tmp_path):
    path = _recording(tmp_path / "r.h5", row=1, col=65)
    data = read_recording_data(path)
    assert data.unit_positions == {"u1": (1, 65)} and data.spike_counts == {"u1": 5}
    bare = _recording(tmp_path / "bare.h5")
    assert read_recording_data(bare).unit_positions == {"u1": (NO_POSITION, NO_POSITION)}
    assert NO_POSITION not in range(1, 66)


@pytest.mark.parametrize("row", [0, 66, -3, 2.5, True])
def test_position_off_the_chip_is_a_typed_error(tmp_path, row):
    path = _recording(tmp_path / "r.h5", row=row, col=4)
    with pytest.raises(RecordingFormatError) as err:
        read_recording_data(path)
    message = str(err.value)
    assert str(path) in message and "/units/u1/@row" in message and "1..65" in message and repr(row) in message


def test_text_that_is_not_utf8_is_refused_by_the_report_and_inspect(tmp_path):
    path = _recording(tmp_path / "r.h5", row=2, col=3)
    with h5py.File(path, "a") as f:
        f.attrs.create("created_at", np.array(b"2026-01-01 \xff", dtype=UTF8))
    with pytest.raises(FormatError) as err:
        describe_recording(path)
    assert "not valid UTF-8" in str(err.value) and "/@created_at" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(FormatError) as err:
        read_recording_data(path)
    assert "not valid UTF-8" in str(err.value) and "/@created_at" in str(err.value)

    path = _recording(tmp_path / "feature.h5", row=2, col=3)
    with h5py.File(path, "a") as f:
        feature = f["units/u1/features"].create_group("firing_rate")
        feature.attrs["rate_hz"] = 4.5
        feature.attrs.create("label", np.array(b"m\xf3vil", dtype=UTF8))
    with pytest.raises(FormatError) as err:
        read_recording_data(path)
    assert "/units/u1/features/firing_rate/@label" in str(err.value) and "not valid UTF-8" in str(err.value)
    with h5py.File(path, "a") as f:
        f["units/u1/features/firing_rate"].attrs["label"] = "móvil"  # valid UTF-8 reads back as it is
    assert read_recording_data(path).feature_scalars == {"firing_rate": {"u1": {"rate_hz": 4.5}}}
    assert "firing_rate" in describe_recording(path)


def test_numbers_that_are_not_numbers_are_refused(tmp_path):
    path = _recording(tmp_path / "rate.h5", row=2, col=3)
    with h5py.File(path, "a") as f:
        f["metadata"].create_dataset("sampling_rate", data=np.array([-20000.0]))
    with pytest.raises(RecordingFormatError) as err:
        read_recording_data(path)
    assert "/metadata/sampling_rate" in str(err.value) and "-20000.0" in str(err.value)

    path = _recording(tmp_path / "config.h5", row=2, col=3)
    with h5py.File(path, "a") as f:
        f.require_group("stimulus/config").attrs["config_json"] = '{"trial_configs": {"step": {"repeat": "x"}}}'
    with pytest.raises(RecordingFormatError) as err:
        read_recording_data(path)
    assert "/stimulus/config/@config_json" in str(err.value)


def test_values_that_differ_from_their_checksum_are_refused(tmp_path):
    """A file of ours carries digests of its text attributes: the report and inspect check what they show."""
    from h5stream.errors import ChecksumError
    from hdmea.io.hdf5_store import create_recording_hdf5, write_units

    path = tmp_path / "r.h5"
    with create_recording_hdf5(path, "rec") as f:
        write_units(f, {"u1": {"spike_times": np.arange(5, dtype=np.uint64), "row": 7, "col": 9}})
    assert read_recording_data(path).dataset_id == "rec"
    assert "dataset_id: rec" in describe_recording(path)
    damaged = tmp_path / "edited.h5"
    damaged.write_bytes(path.read_bytes())
    with h5py.File(damaged, "a") as f:  # another tool edits one value; its digest stays
        f.attrs["dataset_id"] = "rex"
    for read in (read_recording_data, describe_recording):
        with pytest.raises(ChecksumError) as err:
            read(damaged)
        assert "/@dataset_id" in str(err.value) and str(damaged) in str(err.value)
