"""No leaks: killed writers, failed writes and forgotten handles leave nothing behind.

* A writer SIGKILLed while creating its claim, or while clearing a stale claim,
  leaves temporary files; the next save removes them with a warning naming
  them and the folder then holds the target alone.
* A write that fails (full disk) has its partial file closed and deleted before
  the error reaches the caller: no file descriptor of the process points to a
  deleted file, and on a small filesystem the space is free again.
* Writes without ``with`` release claim and partial file on close, on garbage
  collection and at interpreter exit.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import StaleClaimWarning, StaleFilesWarning, WriteError
from h5stream.files import create_atomic, open_validated
from tests.conftest import tmpfs_mount

HELPER = Path(__file__).with_name("_claim_phases.py")


# --------------------------------------------------------------------------- helpers


def _run_until_paused(target: Path, phase: str) -> int:
    """Start the helper, wait until it pauses at ``phase``, SIGKILL it; returns its pid."""
    proc = subprocess.Popen([sys.executable, str(HELPER), str(target), phase],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line == b"paused\n", proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _save(target: Path, values: np.ndarray) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with create_atomic(target, overwrite=True) as f:
            f["x"] = values
    return record


def _fds_to(folder: Path) -> list[str]:
    """What this process's file descriptors under ``folder`` point to (``... (deleted)`` included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith(str(folder)):
            found.append(link)
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")


# --------------------------------------------------------------------------- killed writers


@needs_proc
def test_writer_killed_while_creating_its_claim_leaves_nothing_after_the_next_save(tmp_path):
    target = tmp_path / "a.h5"
    pid = _run_until_paused(target, "claim-tmp")
    leftovers = _names(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(f"a.h5.claim.tmp-{pid}-")

    record = _save(target, np.arange(5))
    assert _names(tmp_path) == ["a.h5"]
    [warning] = record
    assert warning.category is StaleFilesWarning and leftovers[0] in str(warning.message)
    with open_validated(target) as f:
        assert f["x"][()].tolist() == [0, 1, 2, 3, 4]


@needs_proc
@pytest.mark.parametrize("phase", ["clearer-moved", "clearer-cleared"])
def test_clearer_killed_while_clearing_a_stale_claim_leaves_nothing_after_the_next_save(tmp_path, phase):
    target = tmp_path / "a.h5"
    _save(target, np.arange(3))
    writer = _run_until_paused(target, "writing")  # dies holding the claim and a partial file
    assert _names(tmp_path) == sorted(["a.h5", "a.h5.claim", f"a.h5.partial-{writer}-0"])

    clearer = _run_until_paused(target, phase)
    left = _names(tmp_path)
    assert "a.h5.claim" not in left and f"a.h5.partial-{writer}-0" in left  # the partial was orphaned
    tombs = [n for n in left if n.startswith(f"a.h5.claim.stale-{clearer}-")]
    assert len(tombs) == (1 if phase == "clearer-moved" else 0)

    record = _save(target, np.arange(7))
    assert _names(tmp_path) == ["a.h5"]
    [warning] = record  # no claim was left to clear: one warning, for the files
    assert warning.category is StaleFilesWarning
    for name in [f"a.h5.partial-{writer}-0", *tombs]:
        assert name in str(warning.message)
    with open_validated(target) as f:
        assert f["x"][()].tolist() == list(range(7))


@needs_proc
def test_writer_killed_while_writing_leaves_nothing_after_the_next_save(tmp_path):
    target = tmp_path / "a.h5"
    writer = _run_until_paused(target, "writing")
    record = _save(target, np.arange(2))
    assert _names(tmp_path) == ["a.h5"]
    assert [w.category for w in record] == [StaleClaimWarning, StaleFilesWarning]
    assert f"pid {writer}" in str(record[0].message)
    assert f"a.h5.partial-{writer}-0" in str(record[1].message)


# --------------------------------------------------------------------------- failed writes


def _flush_fails_with_enospc(monkeypatch):
    """Every flush (h5py's, and libhdf5's when it closes a file) fails as on a full disk."""
    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.File, "flush", flush)


@needs_proc
def test_full_disk_in_a_store_update_frees_the_partial_before_the_error(tmp_path, monkeypatch):
    from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5

    path = tmp_path / "rec.h5"
    create_recording_hdf5(path, "rec").close()
    before = path.read_bytes()
    with monkeypatch.context() as m:
        _flush_fails_with_enospc(m)
        with pytest.raises(OSError) as info:
            with open_recording_hdf5(path, "r+") as f:
                f.create_dataset("big", data=np.ones(100_000))
                f.flush()
        assert info.value.errno == errno.ENOSPC
        # Checked before anything else runs: the space is free when the error arrives.
        assert _fds_to(tmp_path) == []
        assert _names(tmp_path) == ["rec.h5"]
    assert path.read_bytes() == before


@needs_proc
def test_full_disk_in_an_atomic_write_frees_the_partial_before_the_error(tmp_path, monkeypatch):
    target = tmp_path / "a.h5"
    with monkeypatch.context() as m:
        _flush_fails_with_enospc(m)
        with pytest.raises(WriteError, match="free disk space"):
            with create_atomic(target) as f:
                f["x"] = np.ones(100_000)
                f.flush()
        assert _fds_to(tmp_path) == []
        assert _names(tmp_path) == []


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MB tmpfs (needs root and a kernel that lets this process mount)."""
    with tmpfs_mount(tmp_path / "small", "size=2m") as mount:
        yield mount


def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@needs_proc
def test_full_small_filesystem_is_free_again_when_the_error_arrives(small_filesystem):
    from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5

    path = small_filesystem / "rec.h5"
    create_recording_hdf5(path, "rec").close()
    used = _used_bytes(small_filesystem)
    for _attempt in range(2):  # the second save in the same process fails the same way, not worse
        with pytest.raises(OSError) as info:
            with open_recording_hdf5(path, "r+") as f:
                f.create_dataset("big", data=np.ones(1_000_000))  # 8 MB into 2 MB
                f.flush()
        assert info.value.errno == errno.ENOSPC or "No space left" in str(info.value)
        assert _fds_to(small_filesystem) == []
        assert _names(small_filesystem) == ["rec.h5"]
        assert _used_bytes(small_filesystem) <= used
    with open_recording_hdf5(path, "r+") as f:  # and a save that fits succeeds
        f.create_dataset("small", data=np.arange(10))
    with h5py.File(path, "r") as f:
        assert f["small"][()].tolist() == list(range(10))


# --------------------------------------------------------------------------- writes without `with`


def test_store_update_without_with_commits_on_close(tmp_path):
    from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5

    path = tmp_path / "rec.h5"
    create_recording_hdf5(path, "rec").close()
    f = open_recording_hdf5(path, "r+")
    f.create_dataset("extra", data=np.arange(4))
    assert len(_names(tmp_path)) == 3  # target, claim, partial
    f.close()
    assert _names(tmp_path) == ["rec.h5"]
    with h5py.File(path, "r") as g:
        assert g["extra"][()].tolist() == [0, 1, 2, 3]


@needs_proc
def test_forgotten_store_update_is_released_on_garbage_collection(tmp_path):
    from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5

    path = tmp_path / "rec.h5"
    create_recording_hdf5(path, "rec").close()
    before = path.read_bytes()
    f = open_recording_hdf5(path, "r+")
    f.create_dataset("extra", data=np.arange(4))
    assert len(_names(tmp_path)) == 3
    del f
    gc.collect()
    assert _names(tmp_path) == ["rec.h5"]
    assert _fds_to(tmp_path) == []
    assert path.read_bytes() == before  # never committed: the old file stays


@needs_proc
def test_forgotten_atomic_write_is_released_on_garbage_collection(tmp_path):
    target = tmp_path / "a.h5"
    f = create_atomic(target).open()  # the AtomicFile itself is dropped at once
    f["x"] = np.arange(3)  # the handle stays usable while referenced
    assert f["x"][()].tolist() == [0, 1, 2]
    assert len(_names(tmp_path)) == 2  # claim and partial
    del f
    gc.collect()
    assert _names(tmp_path) == []
    assert _fds_to(tmp_path) == []
    # The claim is free again.
    _save(target, np.arange(2))
    assert _names(tmp_path) == ["a.h5"]


def test_forgotten_writes_are_released_at_interpreter_exit(tmp_path):
    from hdmea.io.hdf5_store import create_recording_hdf5

    rec = tmp_path / "rec.h5"
    create_recording_hdf5(rec, "rec").close()
    before = rec.read_bytes()
    script = textwrap.dedent(f"""
        import numpy as np
        from h5stream.files import create_atomic
        from hdmea.io.hdf5_store import open_recording_hdf5
        kept = [create_atomic({str(tmp_path / "a.h5")!r}), open_recording_hdf5({str(rec)!r}, "r+")]
        kept[0].open()["x"] = np.arange(3)
        kept[1].create_dataset("extra", data=np.arange(3))
        print(len(__import__("os").listdir({str(tmp_path)!r})), flush=True)
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"  # rec.h5, two claims, two partials while it ran
    assert _names(tmp_path) == ["rec.h5"]
    assert rec.read_bytes() == before
    assert time.monotonic() - started < 30
