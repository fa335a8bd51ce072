"""The early write-back of a file being written (``h5stream.files.writeback``) and of atomic writes with it.

The watcher hands the grown file to the disk (``sync_file_range``, observed through a spy on the call)
and never changes what the file holds: a file written with it reads back, in plain h5py, the same values
as one written without; it is stopped by the commit, the abort, and the finalizer of a write left
unfinished (its thread ended, its descriptor closed).
"""

from __future__ import annotations

import os
import threading

import h5py
import numpy as np
import pytest

from h5stream import capabilities
from h5stream.files import create_atomic, writeback
from h5stream.native import libc

pytestmark = pytest.mark.skipif(not capabilities.early_writeback(), reason="no sync_file_range on this system")


@pytest.fixture
def handed(monkeypatch):
    """Every range handed to the disk, as (path's inode, offset, bytes); ``handed.reached(n)`` waits
    (on an event, up to a minute) until a hand-over has covered ``n`` bytes of a file."""
    calls: list[tuple[int, int, int]] = []
    covered = threading.Condition()
    real = libc.start_writeback

    def spy(fd, offset, nbytes):
        with covered:
            calls.append((os.fstat(fd).st_ino, offset, nbytes))
            covered.notify_all()
        return real(fd, offset, nbytes)

    monkeypatch.setattr(libc, "start_writeback", spy)

    def reached(inode: int, n: int) -> bool:
        with covered:
            return covered.wait_for(lambda: any(i == inode and o == 0 and b >= n for i, o, b in calls), timeout=60)

    spy.calls, spy.reached = calls, reached
    return spy


def test_watcher_hands_each_growth_to_the_disk(tmp_path, handed):
    path = tmp_path / "grown.bin"
    data = np.random.default_rng(1).integers(0, 255, 3 << 20, dtype=np.uint8).tobytes()
    with open(path, "wb") as fh:
        watcher = writeback.Writeback.start(path, step=1 << 20, interval=0.001)
        assert watcher is not None
        inode = os.fstat(fh.fileno()).st_ino
        fh.write(data[: 1 << 20])
        fh.flush()
        assert handed.reached(inode, 1 << 20)
        fh.write(data[1 << 20 :])
        fh.flush()
        assert handed.reached(inode, len(data))
        watcher.stop()
    assert not watcher._thread.is_alive()
    with pytest.raises(OSError):
        os.fstat(watcher._fd)  # its descriptor is closed
    # growth below the step is not handed over: each hand-over is at least a step beyond the last
    sizes = [b for i, _, b in handed.calls if i == inode]
    assert all(b - a >= 1 << 20 for a, b in zip([0, *sizes], sizes))
    assert path.read_bytes() == data


def test_atomic_write_with_early_writeback_holds_the_same_values(tmp_path, handed):
    rng = np.random.default_rng(7)  # 48 arrays of about 440 KB: more than one step of the watcher
    values = {f"g{i}/d{j}": rng.normal(size=rng.integers(50_000, 60_000)) for i in range(6) for j in range(8)}

    def write(target, early):
        atomic = create_atomic(target, early_writeback=early, evict_on_close=True, checksums=True)
        with atomic as f:
            partial = os.stat(atomic.partial).st_ino
            for name, v in values.items():
                f.create_dataset(name, data=v)
            f["g0"].attrs["note"] = "text"
            watcher = atomic._pending.writeback
            assert (watcher is not None) == early
            if early:
                f.flush()
                assert handed.reached(partial, writeback.STEP_BYTES)
        if early:  # the commit stopped it before its fsync
            assert atomic._pending.writeback is None and not watcher._thread.is_alive()
        return target

    with_it, without = write(tmp_path / "a.h5", True), write(tmp_path / "b.h5", False)
    with h5py.File(with_it, "r") as a, h5py.File(without, "r") as b:
        for name, v in values.items():
            assert a[name].dtype == b[name].dtype == v.dtype and a[name].shape == v.shape
            np.testing.assert_array_equal(a[name][()], v)
        assert a["g0"].attrs["note"] == b["g0"].attrs["note"] == "text"


@pytest.mark.parametrize("ending", ["abort", "exception", "abandoned"])
def test_early_writeback_stops_when_the_write_is_dropped(tmp_path, ending):
    target = tmp_path / "dropped.h5"
    atomic = create_atomic(target, early_writeback=True)
    seen = {}

    def body(f):
        f["x"] = np.arange(10)
        seen["watcher"] = watcher = atomic._pending.writeback
        assert watcher is not None and watcher._thread.is_alive()
        seen["partial"] = atomic.partial

    if ending == "exception":
        with pytest.raises(RuntimeError, match="stop here"), atomic as f:
            body(f)
            raise RuntimeError("stop here")
    else:
        body(f := atomic.open())
        if ending == "abort":
            atomic.abort()
        else:
            pending = atomic._pending
            del f, atomic
            import gc

            gc.collect()
            assert pending.writeback is None
    assert not seen["watcher"]._thread.is_alive()
    assert not target.exists() and not seen["partial"].exists()
