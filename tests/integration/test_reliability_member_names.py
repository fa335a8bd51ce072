"""Damaged member names of our own files are refused, never read as missing members.

A flipped bit in the link name ``params`` of a container's history (``b"para\\xeds"``) once
loaded as a history whose entries had no parameters. The files here are ours, renamed by hand
with plain h5py as such a flip would leave them.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.elements import read_elem, write_elem
from h5stream.errors import FormatError
from h5scp import ScpContainer
from h5scp.io.exceptions import IOChecksumError, IOFormatError
from h5scp.testing import example_container


def test_a_dict_member_name_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "d", {"source": "run1.tsv", "n": np.int64(2)})
    with h5py.File(path, "r") as f:
        assert read_elem(f["d"]) == {"source": "run1.tsv", "n": 2}
    with h5py.File(path, "r+") as f:
        f["d"].move("source", b"sour\xe3e")
    with h5py.File(path, "r") as f, pytest.raises(FormatError, match="not UTF-8") as err:
        read_elem(f["d"])
    assert str(path) in str(err.value) and "/d" in str(err.value) and "sour" in str(err.value)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "cells.h5"
    container = example_container()
    container.save(path)
    assert any(entry.params for entry in ScpContainer.load(path).history)
    return path


def test_a_damaged_history_member_name_is_refused(saved):
    with h5py.File(saved, "r+") as f:
        f["provenance/history"].move("params", b"para\xeds")
    # the manifest's names digests refuse it first; read without them, the history's own check does
    with pytest.raises(IOFormatError, match="member name is not UTF-8") as err:
        ScpContainer.load(saved)
    assert f"{saved} [/provenance/history/para\\xeds]" in str(err.value)
    with pytest.raises(IOFormatError, match="history holds members it never has") as err:
        ScpContainer.load(saved, verify=False)
    assert str(saved) in str(err.value) and "/provenance/history" in str(err.value) and "para" in str(err.value)


def test_parameters_of_an_entry_that_does_not_exist_are_refused(saved):
    with h5py.File(saved, "r+") as f:
        params = f["provenance/history/params"]
        first = sorted(params)[0]
        params.move(first, "7")  # one digit flipped: the entry's parameters would be lost
    with pytest.raises(IOChecksumError, match="names of the object's attributes or members") as err:
        ScpContainer.load(saved)
    assert f"{saved} [/provenance/history/params]" in str(err.value) and "members [1, 7]" in str(err.value)
    with pytest.raises(IOFormatError, match="parameters of entries the history does not have") as err:
        ScpContainer.load(saved, verify=False)
    assert "'7'" in str(err.value) and "/provenance/history/params" in str(err.value)
