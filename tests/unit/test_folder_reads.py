"""Reads of a folder that a save replaces meanwhile are run again; other failures are the read's own."""

from __future__ import annotations

import os

import pytest

from h5stream.errors import FormatError, SaveInProgressError
from h5stream.files.folder_reads import read_folder


def _folder(path, text: str):
    path.mkdir()
    (path / "manifest").write_text(text)
    (path / "data").write_text(text)
    return path


def _swap(target, text: str) -> None:
    """What a save does: a new complete folder takes the path, the old one is deleted."""
    new = _folder(target.with_name(target.name + ".new"), text)
    old = target.with_name(target.name + ".old")
    os.rename(target, old)
    os.rename(new, target)
    for name in ("manifest", "data"):
        (old / name).unlink()
    old.rmdir()


def test_a_read_that_met_a_save_is_read_again_on_the_new_folder(tmp_path):
    target = _folder(tmp_path / "d", "one")
    calls = []

    def read():
        manifest = (target / "manifest").read_text()
        if not calls:
            _swap(target, "two")  # between the manifest and the data
        calls.append(manifest)
        data = (target / "data").read_text()
        if data != manifest:
            raise FormatError("checksum mismatch", path=target, obj="data")
        return data

    assert read_folder(target, read, pause=0.0) == "two"
    assert calls == ["one", "two"]


def test_a_read_that_succeeded_across_a_save_is_read_again(tmp_path):
    target = _folder(tmp_path / "d", "one")
    calls = []

    def read():
        calls.append((target / "data").read_text())
        if len(calls) == 1:
            _swap(target, "two")
        return calls[-1]

    assert read_folder(target, read, pause=0.0) == "two"


def test_a_failure_in_a_folder_that_stayed_is_the_read_s_own(tmp_path):
    target = _folder(tmp_path / "d", "one")
    calls = []

    def read():
        calls.append(1)
        raise FormatError("checksum mismatch", path=target, obj="data")

    with pytest.raises(FormatError, match="checksum mismatch"):
        read_folder(target, read, pause=0.0)
    assert calls == [1]


def test_a_save_met_on_every_try_is_said_and_not_called_damage(tmp_path):
    target = _folder(tmp_path / "d", "0")
    tries = []

    def read():
        tries.append(1)
        _swap(target, str(len(tries)))
        raise FormatError("checksum mismatch", path=target, obj="data")

    with pytest.raises(SaveInProgressError, match="not damaged") as info:
        read_folder(target, read, attempts=4, pause=0.0)
    assert len(tries) == 4 and "restore" not in str(info.value) and ".claim" in str(info.value)
    assert isinstance(info.value.__cause__, FormatError)


def test_nothing_at_the_path_is_the_read_s_own_error(tmp_path):
    def read():
        raise FileNotFoundError("nothing")

    with pytest.raises(FileNotFoundError):
        read_folder(tmp_path / "missing", read, pause=0.0)


def test_scptensor_loads_raise_it_as_their_own_error(tmp_path):
    from h5scp.io import IOSaveInProgressError
    from h5scp.io.exceptions import translate_engine_error

    err = translate_engine_error(SaveInProgressError("a save replaced the dataset", path=tmp_path / "c.parquet"))
    assert isinstance(err, IOSaveInProgressError) and isinstance(err, SaveInProgressError)
    assert str(err).startswith(str(tmp_path / "c.parquet"))


def test_a_writer_between_its_two_renames_is_waited_for(tmp_path):
    """Where folders cannot be exchanged, a writer moves the old folder aside, then renames the new one in: a
    read that finds no folder while the writer's claim is there waits for the new one."""
    import threading

    from h5stream.files.paths import claim_path

    target = tmp_path / "d"
    claim_path(target).write_text("{}")
    new = _folder(tmp_path / "d.partial", "new")
    renamer = threading.Timer(0.2, lambda: os.rename(new, target))
    renamer.start()
    try:
        assert read_folder(target, lambda: (target / "data").read_text(), pause=0.05) == "new"
    finally:
        renamer.join()
