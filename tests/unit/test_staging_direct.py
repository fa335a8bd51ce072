"""Large spilled arrays written straight into the space the library allocated for them (unbuffered where the
file system allows): values, dtype, shape and digest read back with plain h5py against the array itself."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.digests import value_digest
from h5stream.errors import WriteError
from h5stream.lowlevel import PAGE, SNAPSHOT_BLOCK
from h5stream.staging import DIRECT_FROM, StagingArea


def _arrays():
    rng = np.random.default_rng(7)
    return [
        rng.random((1000, 333)),                                    # 2-D, a tail that is not a whole page
        rng.integers(-2**31, 2**31, 5_000_003).astype(np.int32),    # more than one block, an odd tail
        rng.random(SNAPSHOT_BLOCK // 8 * 3),                         # whole blocks only
        rng.integers(0, 2, 3_000_001).astype(bool),
        rng.random(400_000).astype(">f8"),                           # big-endian numbers, as they are
        rng.integers(0, 2**16, (70, 11, 2000)).astype(np.uint16),
    ]


def _spill_and_check(target: Path):
    area = StagingArea(target, memory_limit=0)
    arrays = _arrays()
    assert all(a.nbytes >= DIRECT_FROM for a in arrays)
    spilled = [area.admit(a) for a in arrays]
    # an array of the direct size but not C-ordered goes through the library, as before
    strided = np.arange(2 * DIRECT_FROM // 8, dtype=np.float64)[::2]
    spilled.append(area.admit(strided))
    arrays.append(strided)
    area.spill_file().flush()
    path = area.spill_path
    with h5py.File(path, "r") as f:
        for array, lazy in zip(arrays, spilled):
            ds = f[lazy.name]
            assert ds.dtype == array.dtype and ds.shape == array.shape
            np.testing.assert_array_equal(ds[()], array)
            assert lazy.digest == value_digest(array) == value_digest(ds[()])
            assert ds.id.get_offset() % PAGE == 0  # the spill file's large datasets start on a page
    for array, lazy in zip(arrays, spilled):
        np.testing.assert_array_equal(np.asarray(lazy), array)
    area.discard()
    assert not path.exists()


def test_large_spills_read_back_with_h5py(tmp_path, monkeypatch):
    opened, real_open = [], os.open

    def recording_open(path, flags, *args):
        fd = real_open(path, flags, *args)
        opened.append(flags)
        return fd

    monkeypatch.setattr(os, "open", recording_open)
    _spill_and_check(tmp_path / "t.h5")
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    try:
        os.close(real_open(probe, os.O_WRONLY | os.O_DIRECT))
    except (OSError, AttributeError):
        return  # this file system writes through the page cache only
    assert any(flags & os.O_DIRECT for flags in opened)  # the spill went to the disk unbuffered


@pytest.mark.skipif(not Path("/dev/shm").is_dir() or not os.access("/dev/shm", os.W_OK), reason="no /dev/shm")
def test_large_spills_where_unbuffered_writes_are_refused():
    # tmpfs refuses O_DIRECT: the same bytes go through the page cache
    folder = Path("/dev/shm") / f"h5stream-direct-{os.getpid()}"
    folder.mkdir()
    try:
        _spill_and_check(folder / "t.h5")
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_a_failed_write_leaves_no_dataset_and_names_the_file(tmp_path, monkeypatch):
    area = StagingArea(tmp_path / "t.h5", memory_limit=0)
    kept = area.admit(np.arange(DIRECT_FROM // 8, dtype=np.float64))
    real = os.pwrite

    def full_disk(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(WriteError) as info:
        area.admit(np.ones(DIRECT_FROM // 8))
    monkeypatch.setattr(os, "pwrite", real)
    assert str(area.spill_path) in str(info.value)
    group = area.spill_file()["__h5stream_staging__"]
    assert list(group) == [kept.name.rsplit("/", 1)[1]]  # the failed array's dataset is gone
    np.testing.assert_array_equal(np.asarray(kept), np.arange(DIRECT_FROM // 8, dtype=np.float64))
    area.discard()
