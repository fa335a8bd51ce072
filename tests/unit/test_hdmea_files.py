"""hdmea.io._files: the one place engine errors become the recording face's errors, each built complete."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from h5stream.errors import (
    FormatError,
    SourceNotFoundError,
    TargetExistsError,
    UnsafeFileError,
    WriterClaimError,
)
from h5stream.files import WriterClaim
from hdmea.errors import (
    CorruptRecordingError,
    RecordingExistsError,
    RecordingLockedError,
    RecordingNotFoundError,
)
from hdmea.io import _files


def test_contract_texts_with_every_field_set_at_construction(tmp_path):
    p = tmp_path / "r.h5"
    holder = {"pid": 1, "thread": 7, "host": "node-3", "time": "2024-05-01T10:00:00+00:00"}
    locked = _files.locked_error(p, WriterClaimError("held by pid 1", path=p, holder=holder))
    assert str(locked) == (f"File is already open for writing: {p}. HDF5 supports single-writer access only. "
                           "Close the file in other processes before writing. It is held by pid 1 "
                           "(thread 7) on host node-3 since 2024-05-01T10:00:00+00:00.")
    assert locked.path == os.fspath(p) and "held by pid 1" in locked.found and locked.hint
    assert locked.holder == holder and not locked.other_program
    other = _files.locked_error(p, WriterClaimError("lock", path=p, other_program=True))
    assert str(other).startswith(f"File is already open for writing: {p}. HDF5 supports single-writer")
    assert str(other).endswith("It is held by another program, which has it open for writing (HDF5 file lock).")
    assert other.other_program and other.holder is None
    corrupt = _files.corrupt_error(p)
    assert str(corrupt) == f"Cannot read HDF5 file: {p}. The file may be corrupted or incomplete."
    assert corrupt.path == os.fspath(p) and corrupt.expected and corrupt.hint
    missing = _files.not_found_error(p)
    assert str(missing) == f"HDF5 file not found: {p}" and missing.path == os.fspath(p)
    assert isinstance(missing, FileNotFoundError)
    exists = _files.exists_error(p)
    assert exists.path == os.fspath(p) and "overwrite=True" in str(exists)


@pytest.mark.parametrize("engine, face", [
    (WriterClaimError("x"), RecordingLockedError),
    (TargetExistsError("x"), RecordingExistsError),
    (SourceNotFoundError("x"), RecordingNotFoundError),
])
def test_engine_errors_translate_once(tmp_path, engine, face):
    p = tmp_path / "r.h5"
    with pytest.raises(face) as info:
        with _files.recording_errors(p):
            raise engine
    assert info.value.__cause__ is engine and info.value.path == os.fspath(p)
    assert isinstance(info.value, type(engine).__mro__[0])  # still catchable as the engine error


def test_read_refusals_pass_unchanged(tmp_path):
    p = tmp_path / "r.h5"
    for err in (UnsafeFileError("external link", path=p, obj="/units"), FormatError("bad", path=p, obj="/x")):
        with pytest.raises(type(err)) as info:
            with _files.recording_errors(p):
                raise err
        assert info.value is err


def test_validate_for_update_names_missing_corrupt_and_locked_files(tmp_path):
    with pytest.raises(RecordingNotFoundError):
        _files.open_update(tmp_path / "none.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(CorruptRecordingError):
        _files.open_update(junk)
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        f["x"] = np.arange(3)
    with WriterClaim(good):
        with pytest.raises(RecordingLockedError, match="already open for writing"):
            _files.open_update(good)
    atomic = _files.open_update(good)
    atomic.file["y"] = 1
    atomic.commit()
    with h5py.File(good, "r") as f:
        assert sorted(f) == ["x", "y"]


def test_probe_output_answers_none_for_foreign_files_and_raises_for_links(tmp_path):
    text = tmp_path / "t.h5"
    text.write_text("hello")
    with _files.probe_output(text) as f:
        assert f is None
    victim = tmp_path / "v.h5"
    with h5py.File(victim, "w") as f:
        f["x"] = 1
    linking = tmp_path / "l.h5"
    with h5py.File(linking, "w") as f:
        f["units"] = h5py.ExternalLink(str(victim), "/")
    with pytest.raises(UnsafeFileError):
        with _files.probe_output(linking):
            pass
