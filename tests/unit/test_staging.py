"""Memory-budgeted staging: admission, spilling, lazy arrays, the shared dataset writer."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.staging import (
    COMPACT_LIMIT,
    STAGING_GROUP,
    FileArray,
    StagingArea,
    copy_dataset,
    parse_size,
    store_array,
)


def test_parse_size():
    assert parse_size(None) is None
    assert parse_size(10) == 10
    assert parse_size("512 MB") == 512_000_000
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 GB") == 1_500_000_000
    assert parse_size("2kib") == 2048
    for bad in ("many", "12 parsecs", "-3 MB", True, [1]):
        with pytest.raises((ValueError, TypeError)):
            parse_size(bad)


def test_admit_within_budget_keeps_arrays_in_memory(tmp_path):
    area = StagingArea(tmp_path / "t.h5", memory_limit=1000)
    a = np.arange(100, dtype=np.int32)  # 400 bytes
    assert area.admit(a) is a
    assert area.resident_bytes == 400 and area.spilled_bytes == 0
    assert not area.has_spill_file and not list(tmp_path.iterdir())


def test_spill_past_budget(tmp_path):
    area = StagingArea(tmp_path / "t.h5", memory_limit=1000)
    kept = area.admit(np.arange(100, dtype=np.int64))  # 800 bytes
    big = np.arange(50, dtype=np.float32).reshape(5, 10)
    fits = area.admit(big)  # 200 more bytes reach the budget exactly: still in memory
    assert isinstance(fits, np.ndarray)
    third = np.array([1, 2, 3], dtype=np.uint16)
    lazy = area.admit(third)
    assert isinstance(lazy, FileArray) and lazy.spilled
    assert lazy.shape == (3,) and lazy.dtype == np.uint16 and lazy.nbytes == 6
    np.testing.assert_array_equal(np.asarray(lazy), third)
    assert area.resident_bytes == 1000 and area.spilled_bytes == 6
    assert area.spill_path.parent == tmp_path and area.spill_path.name.startswith("t.h5.partial-")
    assert area.owns(lazy) and not area.owns(kept)
    area.release(lazy)
    assert area.spilled_bytes == 0
    assert len(area.spill_file()[STAGING_GROUP]) == 0  # released arrays leave the spill file
    area.release(kept)
    assert area.resident_bytes == 200
    area.discard()
    assert not list(tmp_path.iterdir())


def test_no_limit_never_spills(tmp_path):
    area = StagingArea(tmp_path / "t.h5", memory_limit=None)
    for _ in range(5):
        area.admit(np.zeros(10_000))
    assert area.spilled_bytes == 0 and area.resident_bytes == 400_000


def test_spill_without_target_goes_to_temp_dir():
    area = StagingArea(None, memory_limit=0)
    lazy = area.admit(np.ones(4))
    try:
        assert isinstance(lazy, FileArray) and area.spill_path.exists()
        np.testing.assert_array_equal(lazy.read(), np.ones(4))
    finally:
        area.discard()
    assert area.spill_path is None


def test_detach_hands_over_the_file(tmp_path):
    area = StagingArea(tmp_path / "t.h5", memory_limit=0)
    area.admit(np.ones(3))
    f, path = area.detach_spill_file()
    assert f.id.valid and path.exists()
    assert not area.has_spill_file and area.spilled_bytes == 0
    f.close()


@pytest.mark.parametrize("array", [
    np.arange(10, dtype=np.uint64),
    np.zeros((0,), dtype=np.float32),
    np.random.default_rng(0).random((3, 4, 5)).astype(np.float32),
    np.arange(COMPACT_LIMIT, dtype=np.int64),  # contiguous
    np.array([True, False]),
    np.array(7.5),
    np.asfortranarray(np.arange(12).reshape(3, 4)),
    np.array(["ä", "bc"]),
])
def test_store_array_round_trip(tmp_path, array):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        store_array(f, "x", array)
        store_array(f.create_group("g").id, "y", array)  # a low-level id works too
    with h5py.File(tmp_path / "s.h5", "r") as f:
        for name in ("x", "g/y"):
            back = f[name][()]
            if array.dtype.kind == "U":
                assert [v.decode() for v in back] == list(array)
            else:
                assert f[name].dtype == array.dtype and f[name].shape == array.shape
                np.testing.assert_array_equal(back, array)


def test_layout_policy(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        store_array(f, "small", np.ones(10))
        store_array(f, "large", np.ones(COMPACT_LIMIT))
        store_array(f, "empty", np.ones(0))
        layouts = {name: f[name].id.get_create_plist().get_layout() for name in f}
    assert layouts == {"small": h5py.h5d.COMPACT, "large": h5py.h5d.CONTIGUOUS, "empty": h5py.h5d.CONTIGUOUS}


def test_copy_dataset_without_attributes(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as a:
        a["data"] = np.arange(100_000)
        a["data"].attrs["stale"] = 1
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "w") as b:
        copy_dataset(a["data"], b.create_group("g"), "copy")
        np.testing.assert_array_equal(b["g/copy"][()], np.arange(100_000))
        assert dict(b["g/copy"].attrs) == {}
