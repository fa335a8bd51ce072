"""Many small values at the cost of one: ``sorted_unique`` against ``np.unique``, ``Pieces`` against the dict
it stands for (the node, the file a plain h5py reads, the staging count), and admitting many arrays at once."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h5stream.errors import EncodingError
from h5stream.kernels.sectioning import sorted_unique
from h5stream.staging import StagingArea
from h5stream.tree import Dataset, Group, Pieces, mapping_node, put_node, value_node, write_node
from h5stream.tree.filearray import FileArray


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=60), st.sampled_from(["sorted", "repeats", "any"]))
def test_sorted_unique_is_numpys_unique(items, order):
    values = np.asarray(items, dtype=np.uint64)
    if order == "sorted":
        values = np.unique(values)
    elif order == "repeats":
        values = np.sort(values)
    got = sorted_unique(values)
    expected = np.unique(values).astype(np.int64)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    assert not np.shares_memory(got, values)


def test_sorted_unique_refuses_two_dimensions():
    with pytest.raises(ValueError, match="1-D"):
        sorted_unique(np.zeros((2, 2), np.int64))


def _same_node(a, b) -> None:
    # (a group of pieces is a Group of its own type, built when its children are first read)
    assert isinstance(a, Dataset) == isinstance(b, Dataset) and isinstance(a, Group) == isinstance(b, Group)
    assert a.tag == b.tag and a.attrs == b.attrs
    if isinstance(a, Dataset):
        assert a.data.dtype == b.data.dtype
        np.testing.assert_array_equal(a.data, b.data)
        return
    assert a.keys == b.keys and list(a.children) == list(b.children)
    for name in a.children:
        _same_node(a.children[name], b.children[name])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=12))
def test_pieces_node_is_the_dicts_node(sizes):
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    values = np.arange(offsets[-1], dtype=np.int64) * 3
    pieces = Pieces(values, offsets)
    as_dict = {k: values[offsets[k]:offsets[k + 1]].copy() for k in range(len(sizes))}
    assert len(pieces) == len(as_dict) and list(pieces) == list(as_dict)
    for k in as_dict:
        np.testing.assert_array_equal(pieces[k], as_dict[k])
    for builder in (put_node, value_node):
        _same_node(builder(pieces), builder(as_dict))
    _same_node(put_node({"trials": pieces, "n": 2}), mapping_node({"trials": as_dict, "n": 2}, put_node,
                                                                  scalars_as_attrs=True))


def test_pieces_written_read_back_by_plain_h5py(tmp_path):
    values = np.array([5, 9, 11, 30, 31, 32], dtype=np.int64)
    pieces = Pieces(values, [0, 2, 2, 6])
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        write_node(f, "trials", put_node(pieces))
    with h5py.File(path, "r") as f:
        group = f["trials"]
        assert sorted(name for name in group if not name.startswith("h5stream")) == ["0", "1", "2"]
        assert group["0"][()].tolist() == [5, 9] and group["1"][()].tolist() == [] \
            and group["2"][()].tolist() == [11, 30, 31, 32]
        assert group["2"].dtype == np.int64


@pytest.mark.parametrize("offsets", [[1, 2], [0, 3, 2, 6], [0, 7], []])
def test_pieces_refuse_bad_offsets(offsets):
    with pytest.raises(EncodingError, match="offsets"):
        Pieces(np.arange(6), offsets)


def test_pieces_refuse_a_key_outside():
    pieces = Pieces(np.arange(4), [0, 1, 4])
    for key in (2, -1, "0", True):
        with pytest.raises(KeyError):
            pieces[key]


def test_admit_many_counts_at_once_within_the_budget_and_spills_past_it(tmp_path):
    arrays = [np.arange(n, dtype=np.int64) for n in (10, 20, 30)]  # 480 bytes
    area = StagingArea(tmp_path / "t.h5", memory_limit=1000)
    staged = area.admit_many(arrays)
    assert all(s is a for s, a in zip(staged, arrays)) and area.resident_bytes == 480 and area.spilled_bytes == 0
    more = area.admit_many([np.arange(40, dtype=np.int64), np.arange(50, dtype=np.int64)])  # 720 bytes: past 1000
    assert isinstance(more[0], np.ndarray) and isinstance(more[1], FileArray)  # one by one, as admit does
    assert area.resident_bytes == 800 and area.spilled_bytes == 400
    np.testing.assert_array_equal(more[1].read(), np.arange(50))
    area.discard()


def test_group_of_pieces_is_empty_like_an_empty_dict():
    _same_node(put_node(Pieces(np.zeros(0, np.int64), [0])), put_node({}))
    assert isinstance(put_node({}), Group)
