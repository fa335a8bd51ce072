"""A recording held open by h5py in the same interpreter is named as open here, never as damaged.

HDF5 answers a second open of a file with other locking settings, in one process, with "file locking
flag values don't match", and takes the process's own lock for another program's; the library's list
of open files (``h5py.h5f.get_obj_ids``) tells which it is.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import OpenInThisProcessError, WriterClaimError
from h5stream.files import open_in_this_process, open_validated
from hdmea.errors import CorruptRecordingError, RecordingLockedError
from hdmea.io.hdf5_store import create_recording_hdf5
from hdmea.io.recording import open_recording
from hdmea.io.section_time import add_section_time_analog
from hdmea.pipeline import PipelineSession, create_session

SAMPLES, STEP_AT = 4000, (1000, 2500)


@pytest.fixture
def rec(tmp_path):
    """A loaded recording whose photodiode ``raw_ch1`` steps up twice (its values checked with h5py)."""
    path = tmp_path / "rec.h5"
    light = np.zeros(SAMPLES, dtype=np.float32)
    for start in STEP_AT:
        light[start:start + 500] = 1.0
    session = create_session("rec", output_dir=None)
    session.put("stimulus/light_reference/raw_ch1", light)
    session.put("metadata/sampling_rate", 20000.0)
    session.completed_steps.append("load_recording")
    session.save(path)
    session.close()
    with h5py.File(path, "r", locking=False) as f:
        assert f["stimulus/light_reference/raw_ch1"].shape == (SAMPLES,)
    return path


def _says_open_here(error: BaseException, path, intent: str) -> None:
    message = str(error)
    assert message.startswith(f"File is open in this process: {path}. "), message
    assert f"opened {intent} in this interpreter" in message and "close that handle" in message
    assert "corrupt" not in message.lower() and "another program" not in message
    assert isinstance(error, RecordingLockedError) and not isinstance(error, CorruptRecordingError)


@pytest.mark.parametrize("mode, intent", [("r", "read-only"), ("r+", "for writing")])
def test_section_time_analog_names_the_open_handle(rec, mode, intent):
    before = rec.read_bytes()
    handle = h5py.File(rec, mode)  # default locking, as a user opens it to look
    try:
        assert open_in_this_process(rec) == intent
        with pytest.raises(RecordingLockedError) as info:
            add_section_time_analog(rec, 0.5, movie_name="flash", plot_duration=0.01)
        _says_open_here(info.value, rec, intent)
    finally:
        handle.close()
    assert rec.read_bytes() == before  # nothing written, nothing left beside it
    assert sorted(p.name for p in rec.parent.iterdir()) == ["rec.h5"]
    assert open_in_this_process(rec) is None
    # Closed, the same call works: the file was never damaged.
    assert add_section_time_analog(rec, 0.5, movie_name="flash", plot_duration=0.01) is True
    with h5py.File(rec, "r") as f:
        np.testing.assert_array_equal(f["stimulus/section_time/flash"][:, 0], STEP_AT)


def test_other_openers_name_the_open_handle(rec, tmp_path):
    with h5py.File(rec, "r"):
        with pytest.raises(RecordingLockedError) as info:
            with open_recording(rec):
                pass
        _says_open_here(info.value, rec, "read-only")
        with pytest.raises(RecordingLockedError) as info:
            PipelineSession.load(rec)
        _says_open_here(info.value, rec, "read-only")
        # The engine's own reader raises the engine's typed error.
        with pytest.raises(OpenInThisProcessError) as engine:
            open_validated(rec, locking=False)
        assert engine.value.intent == "read-only" and isinstance(engine.value, WriterClaimError)
        assert "open in this process" in str(engine.value) and "not damaged" in str(engine.value)
    # A save over a target this process has open for writing.
    other = tmp_path / "other.h5"
    create_recording_hdf5(other, "other").close()
    session = create_session("other", output_dir=None)
    with h5py.File(other, "r+"):
        with pytest.raises(RecordingLockedError) as info:
            session.save(other, overwrite=True)
        assert "open in this process" in str(info.value) and "another program" not in str(info.value)
    session.close()


def test_a_file_open_elsewhere_only_is_not_open_here(rec, tmp_path):
    assert open_in_this_process(rec) is None
    assert open_in_this_process(tmp_path / "missing.h5") is None
    with h5py.File(tmp_path / "x.h5", "w"):
        assert open_in_this_process(rec) is None


def test_a_handle_without_locks_does_not_stop_a_step(rec):
    """A read-only handle opened with locking=False conflicts with nothing: the step runs, the handle keeps
    reading the file as it was (the step's new file replaced it by a rename)."""
    with h5py.File(rec, "r", locking=False) as handle:
        assert add_section_time_analog(rec, 0.5, movie_name="flash", plot_duration=0.01) is True
        assert "section_time" not in handle["stimulus"]
    with h5py.File(rec, "r") as f:
        np.testing.assert_array_equal(f["stimulus/section_time/flash"][:, 0], STEP_AT)
