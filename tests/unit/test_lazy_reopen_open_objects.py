"""A lazy reopen (``PipelineSession.load``) keeps a bounded number of the file's objects open, whatever the
number of objects in the file: libhdf5 holds about 15 kB per open object, so keeping every object the
open-time scan opened made a reopen of a session of 50,000 small values hold 774 MB.  The values still come
back as saved, each checked against its digest."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import h5stream.tree.read as tree_read
import hdmea.io.recording as recording
from h5stream.errors import ChecksumError
from hdmea.pipeline import PipelineSession, create_session

UNITS = 120
TRIALS = 4
KEPT = 16


def _planted(unit: int, trial: int) -> np.ndarray:
    return np.arange(trial + 3, dtype=np.float64) + unit * 100


def _saved(path):
    session = create_session(dataset_id="rec")
    session.add_units({f"unit_{u:03d}": {"spike_times": np.arange(u, u + 10, dtype=np.int64),
                                         "trials": {str(t): _planted(u, t) for t in range(TRIALS)}}
                       for u in range(UNITS)})
    session.save(output_path=path)
    with h5py.File(path, "r") as f:  # the file holds many more objects than the bound (a third-party count)
        count = []
        f.visit(count.append)
        assert len(count) > 20 * KEPT
    return path


def test_a_reopen_holds_a_bounded_number_of_open_objects(tmp_path, monkeypatch):
    path = _saved(tmp_path / "rec.h5")
    monkeypatch.setattr(recording, "KEPT_OBJECTS", KEPT)
    monkeypatch.setattr(recording, "KEPT_FACTS", KEPT)
    most, file_id = [0], []
    walk = tree_read.node_from_h5

    def counting(obj, **kwargs):
        if not file_id:
            file_id.append(obj.id)  # the walk starts at the file
        kinds = h5py.h5f.OBJ_DATASET | h5py.h5f.OBJ_GROUP | h5py.h5f.OBJ_DATATYPE
        most[0] = max(most[0], h5py.h5f.get_obj_count(file_id[0], kinds))  # libhdf5's own count
        return walk(obj, **kwargs)

    monkeypatch.setattr(tree_read, "node_from_h5", counting)
    monkeypatch.setattr(recording, "node_from_h5", counting)
    resumed = PipelineSession.load(path)
    try:
        # the kept objects, and the walk's own path (its groups and the object it reads)
        assert 0 < most[0] <= KEPT + 8
        for u in (0, UNITS // 2, UNITS - 1):
            unit = resumed.units[f"unit_{u:03d}"]
            np.testing.assert_array_equal(unit["spike_times"], np.arange(u, u + 10))
            for t in range(TRIALS):
                np.testing.assert_array_equal(unit["trials"][str(t)], _planted(u, t))
    finally:
        resumed.close()



def test_an_attribute_changed_past_the_kept_objects_is_still_refused_naming_it(tmp_path, monkeypatch):
    path = _saved(tmp_path / "rec.h5")
    changed = f"/units/unit_{UNITS - 1:03d}/spike_times"  # the walk opens it again itself
    with h5py.File(path, "r+") as f:  # another tool changes an attribute the file's digests cover
        assert f[changed].attrs["unit"] == "sample_index"
        f[changed].attrs["unit"] = "seconds"
    monkeypatch.setattr(recording, "KEPT_OBJECTS", KEPT)
    monkeypatch.setattr(recording, "KEPT_FACTS", KEPT)
    with pytest.raises(ChecksumError) as caught:
        PipelineSession.load(path).close()
    assert f"{changed}/@unit" in str(caught.value)


def test_the_walk_opens_only_groups_and_datasets_with_attributes(tmp_path, monkeypatch):
    """The open-time scan describes each dataset of numbers without attributes while it has it open; the
    tree's walk builds those nodes without opening them again (a lab session's per-trial arrays)."""
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r") as f:  # a third-party count of what the walk still has to open
        listed = []
        f.visititems(lambda name, obj: listed.append(name) if not name.split("/")[-1].startswith("__")
                     and not any(part.startswith("__") for part in name.split("/"))
                     and (isinstance(obj, h5py.Group) or len(obj.attrs)) else None)
    opened = []
    open_child = tree_read._open_child

    def counting(obj, name, full, kept):
        opened.append(full.decode())
        return open_child(obj, name, full, kept)

    monkeypatch.setattr(tree_read, "_open_child", counting)
    resumed = PipelineSession.load(path)
    try:
        assert sorted(opened) == sorted(listed)
        assert not any("/trials/" in name for name in opened)
        for u in (0, UNITS - 1):
            for t in range(TRIALS):
                np.testing.assert_array_equal(resumed.units[f"unit_{u:03d}"]["trials"][str(t)], _planted(u, t))
    finally:
        resumed.close()


def test_a_described_array_damaged_in_the_file_is_refused_at_load_naming_it(tmp_path):
    path = _saved(tmp_path / "rec.h5")
    planted = _planted(UNITS - 2, TRIALS - 1).tobytes()
    raw = bytearray(path.read_bytes())
    at = raw.find(planted)
    assert at > 0 and raw.find(planted, at + 1) < 0  # the values' bytes, once in the file
    raw[at + 9] ^= 0x40  # a bit of the second value
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError) as caught:
        PipelineSession.load(path).close()
    assert f"unit_{UNITS - 2:03d}/trials/{TRIALS - 1}" in str(caught.value)


def test_describe_dataset_answers_as_plain_h5py_reads(tmp_path):
    path = tmp_path / "plain.h5"
    small, large = np.arange(12, dtype="<i4").reshape(3, 4), np.linspace(0, 1, 5000)
    with h5py.File(path, "w") as f:  # written by plain h5py
        f["small"], f["large"], f["text"] = small, large, np.array([b"a", b"b"])
        f["tagged"] = small
        f["tagged"].attrs["kind"] = "x"
        f.create_dataset("none", dtype="f8")  # no dataspace
    with h5py.File(path, "r") as f:
        described = tree_read.describe_dataset(f["small"].id)
        assert described.dtype == small.dtype and described.shape == small.shape and described.stored_at is None
        np.testing.assert_array_equal(described.data, small)
        described = tree_read.describe_dataset(f["large"].id)
        assert described.data is None and described.shape == large.shape
        assert described.stored_at == (f["large"].id.get_offset(), large.nbytes)
        assert tree_read.describe_dataset(f["text"].id) is None
        assert tree_read.describe_dataset(f["tagged"].id) is None
        described = tree_read.describe_dataset(f["none"].id)
        assert described.shape is None and described.data is None
