"""The crash-safe file layer: atomic creation and update, validated reads, read guards."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5stream.files as files
from h5stream.errors import (
    FormatError,
    H5StreamError,
    MissingPluginError,
    SourceNotFoundError,
    TargetExistsError,
    UnsafeFileError,
    WriteError,
    WriterClaimError,
)
from h5stream.files import (
    check_hdf5_signature,
    claim_path,
    create_atomic,
    guard_read,
    open_validated,
    partial_path,
    require_attr_format,
    update_atomic,
    verify_file,
    verify_files,
)


def write_plain(path: Path, values) -> None:
    with h5py.File(path, "w") as f:
        f["x"] = np.asarray(values)
        f.attrs["format"] = "demo"
        f.attrs["format_version"] = "1.0"


def read_x(path: Path) -> np.ndarray:
    with open_validated(path) as f:
        return f["x"][()]


def leftovers(directory: Path, target: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != target.name)


def check_demo_format(f: h5py.File) -> None:
    require_attr_format(
        f, f.filename, name_attr="format", expected_name="demo", version_attr="format_version",
        supported=("1.0",),
    )


# --------------------------------------------------------------------------- paths


def test_partial_and_claim_paths_are_siblings_of_the_target(tmp_path):
    target = tmp_path / "run.h5"
    first, second = partial_path(target), partial_path(target)
    assert first.parent == second.parent == tmp_path
    assert first.name.startswith(f"run.h5.partial-{os.getpid()}-")
    assert first != second
    assert claim_path(target) == tmp_path / "run.h5.claim"


# --------------------------------------------------------------------------- create_atomic


def test_create_commits_data_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "a.h5"
    with create_atomic(target) as f:
        assert Path(f.filename).parent == tmp_path
        assert Path(f.filename) != target
        assert not target.exists()  # nothing at the target until the commit
        assert claim_path(target).exists()
        f["x"] = np.arange(10)
    assert read_x(target).tolist() == list(range(10))
    assert leftovers(tmp_path, target) == []


def test_exception_in_body_keeps_previous_file_and_cleans_up(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [1, 2, 3])
    before = target.read_bytes()
    with pytest.raises(ZeroDivisionError):
        with create_atomic(target, overwrite=True) as f:
            f["x"] = np.arange(1000)
            1 / 0
    assert target.read_bytes() == before
    assert leftovers(tmp_path, target) == []


def test_existing_target_without_overwrite_is_refused_before_any_work(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [7])
    atomic = create_atomic(target)
    with pytest.raises(TargetExistsError) as info:
        atomic.open()
    message = str(info.value)
    assert str(target) in message and "overwrite=True" in message
    assert isinstance(info.value, FileExistsError)
    assert leftovers(tmp_path, target) == []  # no claim, no partial
    assert read_x(target).tolist() == [7]


def test_target_appearing_during_a_write_is_never_replaced(tmp_path):
    target = tmp_path / "a.h5"
    with pytest.raises(TargetExistsError):
        with create_atomic(target, claim=False) as f:
            f["x"] = np.arange(3)
            write_plain(target, [42])  # another program finishes first
    assert read_x(target).tolist() == [42]
    assert leftovers(tmp_path, target) == []


def test_overwrite_keeps_old_file_readable_until_the_rename(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [1, 2])
    with create_atomic(target, overwrite=True) as f:
        f["x"] = np.arange(5)
        assert read_x(target).tolist() == [1, 2]
    assert read_x(target).tolist() == [0, 1, 2, 3, 4]


def test_target_path_is_never_opened_for_writing(tmp_path, monkeypatch):
    target = tmp_path / "a.h5"
    write_plain(target, [1])
    opened: list[tuple[str, str]] = []
    real_file = h5py.File

    def recording_file(name, mode="r", *args, **kwargs):
        opened.append((os.fspath(name), mode))
        return real_file(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", recording_file)
    with create_atomic(target, overwrite=True) as f:
        f["x"] = np.arange(2)
    with update_atomic(target) as f:
        f["y"] = 1
    writes_to_target = [m for name, m in opened if Path(name) == target and m != "r"]
    assert opened and writes_to_target == []


def test_commit_order_is_close_fsync_rename_directory_fsync(tmp_path, monkeypatch):
    target = tmp_path / "a.h5"
    events: list[str] = []
    # AtomicFile.commit calls the fsync functions of the module that defines it.
    real_fsync, real_replace, real_dirsync = files.fsync_path, os.replace, files.fsync_directory
    atomic = create_atomic(target, overwrite=True)

    def fsync_path(path):
        events.append(f"fsync open={bool(atomic.file.id.valid)}")
        real_fsync(path)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    def fsync_directory(path):
        events.append(f"dirsync {Path(path) == tmp_path}")
        real_dirsync(path)

    monkeypatch.setattr(files.atomic, "fsync_path", fsync_path)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(files.atomic, "fsync_directory", fsync_directory)
    with atomic as f:
        f["x"] = np.arange(4)
    assert events == ["fsync open=False", "replace", "dirsync True"]


def test_explicit_open_commit_abort(tmp_path):
    target = tmp_path / "a.h5"
    atomic = create_atomic(target)
    f = atomic.open()
    f["x"] = np.arange(3)
    assert atomic.commit() == target
    assert atomic.commit() == target  # idempotent
    with pytest.raises(WriteError):
        atomic.open()

    second = create_atomic(target, overwrite=True)
    second.open()["x"] = np.arange(9)
    second.abort()
    with pytest.raises(WriteError, match="after abort"):
        second.commit()
    assert read_x(target).tolist() == [0, 1, 2]
    assert leftovers(tmp_path, target) == []

    with pytest.raises(WriteError, match="before open"):
        create_atomic(tmp_path / "never.h5").commit()


def test_missing_directory_and_directory_target_are_write_errors(tmp_path):
    with pytest.raises(WriteError) as info:
        create_atomic(tmp_path / "nope" / "a.h5").open()
    assert "nope" in str(info.value) and "directory" in str(info.value)
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(WriteError, match="directory"):
        create_atomic(tmp_path / "d.h5", overwrite=True).open()


def test_os_error_in_body_becomes_write_error(tmp_path):
    target = tmp_path / "a.h5"
    with pytest.raises(WriteError) as info:
        with create_atomic(target):
            raise OSError(28, "No space left on device")
    assert "No space left" in str(info.value) and "free disk space" in str(info.value)
    assert not target.exists()
    assert leftovers(tmp_path, target) == []


def test_userblock_and_libver_reach_the_file(tmp_path):
    target = tmp_path / "ub.h5"
    with create_atomic(target, userblock_size=512, libver="latest") as f:
        assert f.libver[0] != "earliest"
        f["x"] = np.arange(2)
    assert check_hdf5_signature(target) == 512
    with open_validated(target) as f:
        assert f.userblock_size == 512


def test_on_commit_runs_after_the_target_exists(tmp_path):
    target = tmp_path / "a.h5"
    seen = []
    with files.AtomicFile(target, on_commit=lambda p: seen.append(p.exists())) as f:
        f["x"] = 1
    assert seen == [True]


# --------------------------------------------------------------------------- update_atomic


def test_update_is_copy_on_write(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [1, 2, 3])
    with update_atomic(target) as f:
        f["x"][0] = 100
        f["y"] = "new"
        assert read_x(target).tolist() == [1, 2, 3]
    with open_validated(target) as f:
        assert f["x"][()].tolist() == [100, 2, 3]
        assert f["y"][()] == b"new"
        assert f.attrs["format"] == "demo"
    assert leftovers(tmp_path, target) == []


def test_failed_update_leaves_the_file_as_it_was(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [1, 2, 3])
    before = target.read_bytes()
    with pytest.raises(KeyError):
        with update_atomic(target) as f:
            f["x"][...] = 0
            f["missing"]
    assert target.read_bytes() == before
    assert leftovers(tmp_path, target) == []


def test_update_of_missing_or_foreign_file(tmp_path):
    with pytest.raises(SourceNotFoundError):
        update_atomic(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        update_atomic(text)


# --------------------------------------------------------------------------- open_validated


def test_open_validated_checks_format_through_check(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [5])
    with open_validated(target, check=check_demo_format) as f:
        assert f.mode == "r"
        assert f["x"][()].tolist() == [5]
    with h5py.File(target, "a") as f:
        f.attrs["format_version"] = "9.0"
    with pytest.raises(FormatError) as info:
        open_validated(target, check=check_demo_format)
    message = str(info.value)
    assert str(target) in message and "/@format_version" in message
    assert "'9.0'" in message and "1.0" in message


def test_raw_exception_in_check_becomes_format_error(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [5])

    def check(f):
        f["absent"]

    with pytest.raises(FormatError) as info:
        open_validated(target, check=check)
    assert isinstance(info.value.__cause__, KeyError)
    assert str(target) in str(info.value)


def test_open_validated_refuses_missing_directory_and_foreign_files(tmp_path):
    with pytest.raises(SourceNotFoundError):
        open_validated(tmp_path / "missing.h5")
    with pytest.raises(FormatError, match="directory"):
        open_validated(tmp_path)
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        open_validated(tmp_path / "empty.h5")


def test_require_attr_format_accepts_bytes_and_reports_each_mismatch(tmp_path):
    target = tmp_path / "a.h5"
    with h5py.File(target, "w") as f:
        f.attrs["format"] = np.bytes_(b"demo")
        f.attrs["format_version"] = np.bytes_(b"1.0")
    with open_validated(target) as f:
        assert require_attr_format(
            f, target, name_attr="format", expected_name="demo", version_attr="format_version",
            supported=("1.0",),
        ) == "1.0"
        with pytest.raises(FormatError) as info:
            require_attr_format(
                f, target, name_attr="format", expected_name="other", version_attr="format_version",
                supported=("1.0",),
            )
        assert "'other'" in str(info.value) and "'demo'" in str(info.value)
        with pytest.raises(FormatError, match="missing"):
            require_attr_format(
                f, target, name_attr=None, expected_name=None, version_attr="nope", supported=("1.0",)
            )


def test_soft_links_are_accepted(tmp_path):
    target = tmp_path / "a.h5"
    with h5py.File(target, "w") as f:
        f["g/x"] = np.arange(3)
        f["alias"] = h5py.SoftLink("/g/x")
    with open_validated(target) as f:
        assert f["alias"][()].tolist() == [0, 1, 2]


def test_external_link_storage_and_virtual_datasets_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    write_plain(other, [9, 9])
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as f:
        f["g/ok"] = 1
        f["g/ext"] = h5py.ExternalLink(str(other), "/x")
    raw = tmp_path / "raw.bin"
    np.arange(4, dtype="i4").tofile(raw)
    external = tmp_path / "external.h5"
    with h5py.File(external, "w") as f:
        f.create_dataset("x", shape=(4,), dtype="i4", external=[(str(raw), 0, 16)])
    virtual = tmp_path / "virtual.h5"
    with h5py.File(virtual, "w") as f:
        layout = h5py.VirtualLayout(shape=(2,), dtype="i8")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(2,))
        f.create_virtual_dataset("v", layout)
    expectations = {linked: ("/g/ext", "external link"), external: ("/x", "external storage"),
                    virtual: ("/v", "virtual dataset")}
    for path, (obj, words) in expectations.items():
        with pytest.raises(UnsafeFileError) as info:
            open_validated(path)
        assert info.value.obj == obj
        assert str(path) in str(info.value) and words in str(info.value)


def test_filters_outside_the_allowed_set_are_refused(tmp_path):
    hdf5plugin = pytest.importorskip("hdf5plugin")
    target = tmp_path / "bz.h5"
    with h5py.File(target, "w") as f:
        f.create_dataset("x", data=np.arange(100), chunks=(10,), **hdf5plugin.BZip2())
    with pytest.raises(FormatError) as info:
        open_validated(target)
    assert "not allowed" in str(info.value) and "/x" in str(info.value)
    assert not isinstance(info.value, MissingPluginError)


def test_unavailable_filter_is_a_missing_plugin_error(tmp_path, monkeypatch):
    target = tmp_path / "gz.h5"
    with h5py.File(target, "w") as f:
        f.create_dataset("x", data=np.arange(100), chunks=(10,), compression="gzip")
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: code != 1)
    with pytest.raises(MissingPluginError) as info:
        open_validated(target)
    assert "deflate" in str(info.value) and "pip install" in str(info.value)


# --------------------------------------------------------------------------- guard_read


@pytest.mark.parametrize(
    "raw", [OSError("boom"), RuntimeError("boom"), KeyError("boom"), ValueError("boom"),
            TypeError("boom"), IndexError("boom"), SystemError("boom"), OverflowError("boom")]
)
def test_guard_read_types_every_raw_failure(raw):
    with pytest.raises(FormatError) as info:
        with guard_read("f.h5", "/units/3"):
            raise raw
    assert info.value.path == "f.h5" and info.value.obj == "/units/3"
    assert "f.h5 [/units/3]" in str(info.value) and "boom" in str(info.value)
    assert info.value.__cause__ is raw


class _ClusterStop(BaseException):
    """A stop of the kind a scheduler's SIGTERM handler raises (not an ``Exception``)."""


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(75), _ClusterStop()])
def test_guard_read_lets_a_stop_that_compiled_code_reported_as_its_failure_go_on(stop):
    # CPython reports a signal handler's exception raised while a compiled function ran as that function's
    # SystemError ("returned a result with an exception set") caused by the handler's exception: the stop
    # must come out as itself, not as a damaged file
    def compiled_call():
        try:
            raise stop
        except BaseException as pending:
            raise SystemError("<cyfunction FastRLock.__exit__> returned a result with an exception set") from pending

    with pytest.raises(type(stop)) as info:
        with guard_read("f.h5", "/units/3"):
            compiled_call()
    assert info.value is stop
    # a failure raised while the program handled a stop of its own is a failure, not the stop again
    with pytest.raises(FormatError):
        with guard_read("f.h5", "/units/3"):
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise SystemError("boom")  # noqa: B904 (context only, as a handler's own failure has)
    with pytest.raises(FormatError):
        with guard_read("f.h5", "/units/3"):
            raise SystemError("boom") from ValueError("inner")


def test_guard_read_passes_typed_errors_and_names_missing_filters():
    typed = UnsafeFileError("x", path="f.h5")
    with pytest.raises(UnsafeFileError) as info:
        with guard_read("f.h5"):
            raise typed
    assert info.value is typed
    with pytest.raises(MissingPluginError):
        with guard_read("f.h5", "/x"):
            raise OSError("Can't read data (required filter 'zstd' is not registered)")
    with pytest.raises(FormatError, match="more memory"):
        with guard_read("f.h5", "/x"):
            raise MemoryError()


# --------------------------------------------------------------------------- verify_files


def test_verify_files_reads_everything_in_a_separate_process(tmp_path):
    good = tmp_path / "good.h5"
    write_plain(good, np.arange(50))
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["format"] = "other"
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    results = verify_files([good, foreign, text], check=check_demo_format, timeout=10)
    assert results[0] is None
    assert type(results[1]) is FormatError and results[1].obj == "/@format"
    assert "not an HDF5 file" in str(results[2]) and results[2].path == str(text)
    verify_file(good, check=check_demo_format)
    with pytest.raises(TypeError, match="module-level"):
        verify_files([good], check=lambda f: None)


def test_verify_files_reports_a_reader_that_cannot_start(tmp_path):
    good = tmp_path / "good.h5"
    write_plain(good, [1])

    def check(f):
        return None

    check.__module__ = "h5stream_no_such_module"
    check.__qualname__ = "check"
    with pytest.raises(H5StreamError, match="did not start") as info:
        verify_files([good], check=check, timeout=10)
    assert "h5stream_no_such_module:" in str(info.value)


def test_pipes_and_devices_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="not a regular file"):
        open_validated(fifo)


def test_filesystems_without_locks_fall_back_to_the_claim(tmp_path, monkeypatch):
    real_file = h5py.File
    calls = []

    def lockless_filesystem(name, mode="r", *args, **kwargs):
        calls.append(kwargs.get("locking"))
        if kwargs.get("locking") is not False:
            raise OSError(
                "Unable to synchronously open file (unable to lock file, errno = 37, "
                "error message = 'No locks available')"
            )
        return real_file(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", lockless_filesystem)
    target = tmp_path / "nfs.h5"
    with create_atomic(target) as f:
        f["x"] = np.arange(3)
    with update_atomic(target) as f:
        f["x"][0] = 7
    with open_validated(target) as f:
        assert f["x"][()].tolist() == [7, 1, 2]
    assert calls == [None, False] * 3
    assert leftovers(tmp_path, target) == []


# --------------------------------------------------------------------------- small files


def test_write_bytes_atomic_replaces_whole_content_and_leaves_nothing(tmp_path):
    target = tmp_path / "job.done"
    assert files.write_bytes_atomic(target, b"first") == target
    assert target.read_bytes() == b"first"
    payload = bytes(range(256)) * 1000
    files.write_bytes_atomic(target, payload)
    assert target.read_bytes() == payload
    assert leftovers(tmp_path, target) == []


def test_write_bytes_atomic_order_is_fsync_rename_directory_fsync(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    events: list[str] = []
    real_fsync, real_replace, real_dirsync = os.fsync, os.replace, files.fsync_directory

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if not os.path.isdir(name):  # the directory's own fsync is recorded by fsync_directory
            events.append("fsync " + name.rsplit("/", 1)[1].split("-")[0])
        real_fsync(fd)

    def replace(src, dst):
        events.append(f"replace {Path(dst).name}")
        real_replace(src, dst)

    def fsync_directory(path):
        events.append(f"dirsync {Path(path) == tmp_path}")
        real_dirsync(path)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(files.publish, "fsync_directory", fsync_directory)
    files.write_bytes_atomic(target, b"{}")
    assert events == ["fsync summary.json.partial", "replace summary.json", "dirsync True"]


def test_write_bytes_atomic_refuses_existing_target_without_overwrite(tmp_path):
    target = tmp_path / "m.done"
    target.write_bytes(b"old")
    with pytest.raises(TargetExistsError) as info:
        files.write_bytes_atomic(target, b"new", overwrite=False)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old"
    files.write_bytes_atomic(tmp_path / "fresh", b"x", overwrite=False)
    assert (tmp_path / "fresh").read_bytes() == b"x"
    assert leftovers(tmp_path, target) == ["fresh"]


def test_write_bytes_atomic_failures_are_write_errors_and_keep_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    target.write_bytes(b"old")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(WriteError, match="directory"):
        files.write_bytes_atomic(tmp_path / "dir.json", b"x")
    with pytest.raises(WriteError, match="directory does not exist"):
        files.write_bytes_atomic(tmp_path / "missing" / "m.json", b"x")

    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:1]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(WriteError) as info:
        files.write_bytes_atomic(target, b"new content")
    monkeypatch.undo()
    assert "No space left" in str(info.value) and "free disk space" in str(info.value)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, target) == ["dir.json"]
    with pytest.raises(TypeError):
        files.write_bytes_atomic(target, "text")


def test_write_bytes_atomic_with_claim_refuses_a_held_target(tmp_path):
    target = tmp_path / "m.json"
    with files.WriterClaim(target):
        with pytest.raises(WriterClaimError):
            files.write_bytes_atomic(target, b"x", claim=True)
    assert not target.exists()
    files.write_bytes_atomic(target, b"x", claim=True)
    assert target.read_bytes() == b"x" and leftovers(tmp_path, target) == []


# --------------------------------------------------------------------------- adopting a partial file


def test_adopt_partial_commits_the_open_file_under_a_claim(tmp_path):
    target = tmp_path / "a.h5"
    write_plain(target, [1])
    partial = partial_path(target)
    f = h5py.File(partial, "x")
    f["x"] = np.arange(5)
    atomic = files.adopt_partial(target, partial, file=f)
    assert claim_path(target).exists()
    with pytest.raises(WriterClaimError):
        files.WriterClaim(target).acquire()
    np.testing.assert_array_equal(read_x(target), [1])  # the old file until commit
    atomic.commit()
    np.testing.assert_array_equal(read_x(target), np.arange(5))
    assert leftovers(tmp_path, target) == []


def test_adopt_partial_checks_the_target_before_taking_anything(tmp_path):
    partial = tmp_path / "spill.partial"
    with h5py.File(partial, "w") as f:
        f["x"] = np.arange(3)
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(WriteError, match="directory"):
        files.adopt_partial(tmp_path / "d.h5", partial)
    other = tmp_path / "sub"
    other.mkdir()
    with pytest.raises(WriteError, match="beside the target"):
        files.adopt_partial(other / "a.h5", partial)
    (tmp_path / "e.h5").write_bytes(b"old")
    with pytest.raises(TargetExistsError):
        files.adopt_partial(tmp_path / "e.h5", partial, overwrite=False)
    with files.WriterClaim(tmp_path / "c.h5"):
        with pytest.raises(WriterClaimError):
            files.adopt_partial(tmp_path / "c.h5", partial)
    assert partial.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "d.h5", "e.h5", "spill.partial", "sub"]
    atomic = files.adopt_partial(tmp_path / "c.h5", partial)
    atomic.abort()
    assert not partial.exists() and not claim_path(tmp_path / "c.h5").exists()


# --------------------------------------------------------------------------- writers refuse what readers refuse


def _linking_file(tmp_path: Path) -> tuple[Path, Path]:
    victim = tmp_path / "victim.h5"
    write_plain(victim, [7, 8, 9])
    linking = tmp_path / "a.h5"
    with h5py.File(linking, "w") as f:
        f["g"] = h5py.ExternalLink(str(victim), "/")
    return linking, victim


def test_update_atomic_refuses_an_external_link_before_any_write(tmp_path):
    linking, victim = _linking_file(tmp_path)
    before, linking_before = victim.read_bytes(), linking.read_bytes()
    with pytest.raises(UnsafeFileError) as read_info:
        open_validated(linking)
    with pytest.raises(UnsafeFileError) as info:
        with update_atomic(linking) as f:
            f["g"]["x"][0] = 0
    assert info.value.obj == read_info.value.obj == "/g" and str(victim) in str(info.value)
    assert victim.read_bytes() == before and linking.read_bytes() == linking_before
    assert leftovers(tmp_path, linking) == ["victim.h5"]


def test_refuse_unsafe_target_only_refuses_what_a_read_refuses(tmp_path):
    linking, _ = _linking_file(tmp_path)
    with pytest.raises(UnsafeFileError, match="external link"):
        files.refuse_unsafe_target(linking)
    plain = tmp_path / "p.h5"
    write_plain(plain, [1])
    files.refuse_unsafe_target(plain)
    files.refuse_unsafe_target(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    files.refuse_unsafe_target(tmp_path / "text.h5")
    (tmp_path / "dir.h5").mkdir()
    files.refuse_unsafe_target(tmp_path / "dir.h5")


def test_errors_carried_from_the_verify_process_are_built_complete(tmp_path):
    linking, victim = _linking_file(tmp_path)
    [error] = verify_files([linking])
    assert isinstance(error, UnsafeFileError)
    assert (error.path, error.obj) == (os.fspath(linking), "/g")
    assert str(victim) in error.found
    assert str(error).startswith(f"{linking} [/g]: external link")
    assert str(error).count(str(linking)) == 1  # the message is not composed twice
