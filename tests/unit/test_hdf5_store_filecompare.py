"""The file comparison used by the equality tests finds every kind of difference and ignores only what it is told."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.filecompare import assert_files_equal, compare_files


def _write(path: Path, **changes) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["dataset_id"] = changes.get("dataset_id", "rec")
        f.attrs["created_at"] = changes.get("created_at", "2026-01-01")
        g = f.create_group("units/unit_000")
        g.attrs["row"] = changes.get("row", np.int64(3))
        g.create_dataset("spike_times", data=changes.get("spikes", np.arange(5, dtype=np.uint64)))
        g.create_dataset("note", data=[changes.get("note", "text")], dtype=h5py.string_dtype())
        g.create_dataset("nan", data=np.array([np.nan, 1.0]))
        f.create_dataset("empty", data=h5py.Empty("f"))
        if changes.get("extra"):
            f.create_group("extra")
    return path


def test_equal_files(tmp_path):
    a = _write(tmp_path / "a.h5")
    b = _write(tmp_path / "b.h5", created_at="2027-05-05")  # timestamps are ignored by default
    assert compare_files(a, b) == []
    assert_files_equal(a, b)


@pytest.mark.parametrize("change, expected", [
    ({"spikes": np.arange(1, 6, dtype=np.uint64)}, "/units/unit_000/spike_times: values differ"),
    ({"spikes": np.arange(5, dtype=np.int64)}, "/units/unit_000/spike_times: dtype"),
    ({"spikes": np.arange(6, dtype=np.uint64)}, "/units/unit_000/spike_times: shape"),
    ({"row": np.int32(3)}, "/units/unit_000@row: dtype"),
    ({"row": np.int64(4)}, "/units/unit_000@row: values differ"),
    ({"dataset_id": "other"}, "/@dataset_id: values differ"),
    ({"note": "Text"}, "/units/unit_000/note: values differ"),
    ({"extra": True}, "/extra: only in the second file"),
])
def test_each_difference_is_reported(tmp_path, change, expected):
    a = _write(tmp_path / "a.h5")
    b = _write(tmp_path / "b.h5", **change)
    diffs = compare_files(a, b)
    assert any(d.startswith(expected) for d in diffs), diffs
    with pytest.raises(AssertionError, match="differ in"):
        assert_files_equal(a, b)


def test_ignored_attributes_are_configurable(tmp_path):
    a = _write(tmp_path / "a.h5")
    b = _write(tmp_path / "b.h5", created_at="later", dataset_id="other")
    assert compare_files(a, b, ignore_attrs={"created_at", "dataset_id"}) == []
    assert any("created_at" in d for d in compare_files(a, b, ignore_attrs=()))
