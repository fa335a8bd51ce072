"""A write that runs out of space releases what it holds when the error is raised, not at garbage collection.

Two writers are covered: an ``r+`` recording handle used without ``with`` whose
``write_units`` fails (before the fix its claim and its copy-on-write partial stayed
until the handle was collected, and a retry in the same process was refused), and a
session whose spill file cannot be created (a 0-byte partial stayed for the life of
the process).  The garbage collector is switched off during each test, so nothing
is released by it; the disk is full for real on a small tmpfs where this process
may mount one, and by a write that raises ``OSError(ENOSPC)`` everywhere else.
"""

from __future__ import annotations

import errno
import gc
import os

import h5py
import numpy as np
import pytest

from h5stream.errors import UnsafeNameError, WriteError
from hdmea.io import hdf5_store
from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5, write_units
from hdmea.pipeline import PipelineSession
from tests.conftest import tmpfs_mount


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _units(n: int, size: int) -> dict:
    rng = np.random.default_rng(3)
    return {f"u{i}": {"spike_times": np.sort(rng.integers(0, 2**40, size)).astype(np.uint64), "row": 1 + i, "col": 2}
            for i in range(n)}


def _recording(folder) -> tuple:
    path = folder / "rec.h5"
    with create_recording_hdf5(path, "rec") as f:
        write_units(f, {"u0": {"spike_times": np.array([5, 9], dtype=np.uint64), "row": 3, "col": 4}})
    return path, path.read_bytes()


def _left_beside(path) -> list[str]:
    return sorted(n for n in os.listdir(path.parent) if n != path.name and n.startswith(path.name))


def _retry_and_check(path) -> None:
    """The same process opens the recording again at once and its write lands; read back by plain h5py."""
    f = open_recording_hdf5(path, "r+")
    write_units(f, {"u7": {"spike_times": np.array([1, 2, 3], dtype=np.uint64), "row": 5, "col": 6}})
    f.close()
    with h5py.File(path, "r") as check:
        assert sorted(check["units"]) == ["u0", "u7"]
        assert check["units/u7/spike_times"][()].tolist() == [1, 2, 3]
        assert check["units/u0/spike_times"][()].tolist() == [5, 9]


def _failing_write(path, units) -> WriteError | OSError:
    f = open_recording_hdf5(path, "r+")  # no with: the failure alone must release it
    assert _left_beside(path)  # the claim and the partial copy exist while it is open
    with pytest.raises((WriteError, OSError)) as info:
        write_units(f, units)
    return info.value


def test_write_units_out_of_space_on_a_full_disk(tmp_path, no_gc):
    root = tmp_path / "small"
    with tmpfs_mount(root, "size=3m"):
        path, before = _recording(root)
        error = _failing_write(path, _units(8, 200_000))  # 12.8 MB of spike times into 3 MB
        assert str(path) in str(error)
        assert _left_beside(path) == []  # claim and partial gone when the error left
        assert path.read_bytes() == before  # the recording as it was
        _retry_and_check(path)


def test_write_units_enospc_from_a_write(tmp_path, no_gc, monkeypatch):
    path, before = _recording(tmp_path)
    real = hdf5_store.replace_child
    calls = []

    def fills_the_disk(parent, name, node):
        calls.append(name)
        if len(calls) == 2:  # the first unit is written, the second finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(parent, name, node)

    monkeypatch.setattr(hdf5_store, "replace_child", fills_the_disk)
    error = _failing_write(path, _units(3, 1000))
    assert error.errno == errno.ENOSPC
    assert calls == ["u0", "u1"]
    assert _left_beside(path) == []
    monkeypatch.setattr(hdf5_store, "replace_child", real)
    assert path.read_bytes() == before
    _retry_and_check(path)


def test_a_group_of_the_handle_finds_it_too(tmp_path, no_gc, monkeypatch):
    """``write_units`` given ``f["units"]`` (a group, whose ``.file`` is a new plain h5py.File) aborts the handle."""
    path, _ = _recording(tmp_path)
    monkeypatch.setattr(hdf5_store, "replace_child",
                        lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    f = open_recording_hdf5(path, "r+")
    with pytest.raises(OSError):
        write_units(f["units"], _units(1, 10))
    assert _left_beside(path) == []
    f.close()  # does nothing after the abort
    assert _left_beside(path) == []


def test_bad_input_keeps_the_handle(tmp_path, no_gc):
    """An error found before anything is written (a bad unit id) is no failed write: the handle stays usable."""
    path, _ = _recording(tmp_path)
    f = open_recording_hdf5(path, "r+")
    with pytest.raises(UnsafeNameError, match="bad/name"):
        write_units(f, {"bad/name": {"spike_times": np.arange(3, dtype=np.uint64), "row": 1, "col": 1}})
    write_units(f, {"u7": {"spike_times": np.array([1, 2, 3], dtype=np.uint64), "row": 5, "col": 6}})
    f.close()
    with h5py.File(path, "r") as check:
        assert sorted(check["units"]) == ["u0", "u7"]


def _fill(folder) -> None:
    with open(folder / "fill", "wb") as fh:
        with pytest.raises(OSError):
            fh.write(b"x" * (4 << 20))
            fh.flush()
            os.fsync(fh.fileno())


def test_spill_file_on_a_full_disk_leaves_nothing(tmp_path, no_gc):
    root = tmp_path / "small"
    with tmpfs_mount(root, "size=1m"):
        _fill(root)
        session = PipelineSession("rec", root / "rec.h5", memory_limit=1024)
        with pytest.raises(WriteError, match="cannot create the spill file") as info:
            session.add_units(_units(1, 10_000))
        assert str(root / "rec.h5") in str(info.value)
        assert sorted(os.listdir(root)) == ["fill"]  # no 0-byte partial
        os.unlink(root / "fill")
        session.add_units(_units(1, 10_000))  # the same session spills once there is room
        assert session.spill_path is not None and session.spilled_bytes == 80_000
        assert np.array_equal(np.asarray(session.get("units/u0/spike_times")), _units(1, 10_000)["u0"]["spike_times"])
        session.close()
        assert sorted(os.listdir(root)) == []


def test_spill_file_enospc_from_the_create(tmp_path, no_gc, monkeypatch):
    """The file exists when its creation fails (libhdf5 made it, then could not write into it)."""
    from h5stream import staging

    real_file = staging.h5py.File

    def made_then_full(path, mode, **kwargs):
        open(path, "xb").close()
        raise OSError(errno.ENOSPC, "Unable to synchronously create file (file write failed: No space left on device)")

    monkeypatch.setattr(staging.h5py, "File", made_then_full)
    session = PipelineSession("rec", tmp_path / "rec.h5", memory_limit=1024)
    with pytest.raises(WriteError, match="cannot create the spill file"):
        session.add_units(_units(1, 10_000))
    assert sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(staging.h5py, "File", real_file)
    session.add_units(_units(1, 10_000))
    path = session.save()
    session.close()
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["units/u0/spike_times"][()], _units(1, 10_000)["u0"]["spike_times"])
