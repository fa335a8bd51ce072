"""Large plain arrays go to the file block by block, each block's pages handed to the disk at once.

References: the arrays themselves, read back with plain h5py; the storage offset HDF5 reports.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream import writer
from h5stream.native import libc
from h5stream.writer import WriteOptions, write_array


@pytest.fixture
def small_blocks(monkeypatch):
    # blocks of 256 KiB from 1 MiB on, so that a test array of a few MB spans many blocks
    monkeypatch.setattr(writer, "WRITEBACK_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(writer, "WRITEBACK_BLOCK_BYTES", 256 << 10)


def test_the_system_takes_a_range_of_a_real_file(tmp_path):
    path = tmp_path / "f.bin"
    with open(path, "wb") as fh:
        fh.write(b"\1" * (1 << 20))
        fh.flush()
        assert libc.start_writeback(fh.fileno(), 0, 1 << 20) is (libc._SYNC_FILE_RANGE is not None)
        assert libc.start_writeback(fh.fileno(), 0, 0) is False


def test_blocks_handed_to_the_disk_tile_the_dataset_s_storage(tmp_path, small_blocks, monkeypatch):
    handed = []
    real = libc.start_writeback

    def recording(fd, offset, nbytes):
        handed.append((offset, nbytes))
        return real(fd, offset, nbytes)

    monkeypatch.setattr(libc, "start_writeback", recording)
    values = np.random.default_rng(0).normal(size=(997, 301))  # 2.4 MB, rows of 2,408 bytes
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = write_array(f, "x", values, WriteOptions(compression=None))
        offset = ds.id.get_offset()
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][()], values)
    assert len(handed) == 10 and handed[0][0] == offset
    assert all(a + n == b for (a, n), (b, _) in zip(handed, handed[1:]))
    assert handed[-1][0] + handed[-1][1] == offset + values.nbytes
    assert all(n % values[0].nbytes == 0 for _, n in handed)  # whole rows


def test_without_the_system_call_the_rest_is_written_at_once(tmp_path, small_blocks, monkeypatch):
    monkeypatch.setattr(libc, "start_writeback", lambda fd, offset, nbytes: False)
    values = np.arange(3_000_000, dtype=np.int32).reshape(1000, 3000)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        write_array(f, "x", values, WriteOptions(compression=None))
        write_array(f, "y", values[:, ::-1].copy(), WriteOptions(compression=None, chunks=(100, 3000)))
    with h5py.File(tmp_path / "b.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][()], values)
        np.testing.assert_array_equal(f["y"][()], values[:, ::-1])


def test_files_in_memory_are_written_whole(small_blocks, monkeypatch):
    monkeypatch.setattr(libc, "start_writeback", lambda *a: pytest.fail("no file to hand to the disk"))
    values = np.random.default_rng(1).integers(0, 9, (2000, 500))
    with h5py.File("in-memory.h5", "w", driver="core", backing_store=False) as f:
        write_array(f, "x", values, WriteOptions(compression=None))
        np.testing.assert_array_equal(f["x"][()], values)


def test_the_portable_path_hands_nothing_over_early(tmp_path, small_blocks, monkeypatch):
    from h5stream import capabilities

    monkeypatch.setenv(capabilities.ENV_VAR, "1")
    monkeypatch.setattr(libc, "start_writeback", lambda *a: pytest.fail("the portable path calls no sync_file_range"))
    values = np.random.default_rng(2).normal(size=(997, 301))
    with h5py.File(tmp_path / "p.h5", "w") as f:
        write_array(f, "x", values, WriteOptions(compression=None))
    with h5py.File(tmp_path / "p.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][()], values)
