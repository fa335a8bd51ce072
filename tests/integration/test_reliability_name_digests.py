"""A flipped byte in an attribute's or a member's name of a scptensor ``.h5`` is refused, never read as absence.

The container keeps HDF5's version-1 object headers (every reader opens them), whose names
HDF5 does not checksum: a flipped byte in the name of the optional attribute
``h5stream:python-type`` once read a history value ``1`` back as ``np.int64(1)`` (fuzz seed
2882232004). The manifest (version 3) carries a digest of each object's attribute and member
names, checked when the file is opened. The files here are damaged by editing their bytes: the
one occurrence of the name outside the manifest's own text, found by searching the file.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from h5stream.checksums import MANIFEST_ATTR
from h5stream.files.checksum_checks import check_file
from h5stream.errors import ChecksumError
from h5scp import ScpContainer, ScpMatrix
from h5scp.io.exceptions import IOChecksumError
from h5scp.testing import example_container


def _manifest_range(raw: bytes, path) -> tuple[int, int]:
    with h5py.File(path, "r") as f:
        text = f.attrs[MANIFEST_ATTR]
    text = text.encode() if isinstance(text, str) else text
    start = raw.find(text)
    assert start >= 0 and raw.find(text, start + 1) < 0
    return start, start + len(text)


def _flip_name(path, name: bytes, at: int, out) -> bytes:
    """Copy ``path`` to ``out`` with byte ``at`` of ``name`` XORed with 0x04, where ``name`` is stored as a
    NUL-terminated name (in an object header or a group's heap, not inside a text) outside the
    manifest's text exactly once; returns the damaged name."""
    raw = bytearray(path.read_bytes())
    lo, hi = _manifest_range(bytes(raw), path)
    found, start = [], raw.find(name)
    while start >= 0:
        if not lo <= start < hi and raw[start + len(name)] == 0:
            found.append(start)
        start = raw.find(name, start + 1)
    assert len(found) == 1, f"{name!r} stored {len(found)} times as a name outside the manifest"
    raw[found[0] + at] ^= 0x04
    out.write_bytes(bytes(raw))
    return bytes(raw[found[0]:found[0] + len(name)])


@pytest.fixture
def saved(tmp_path):
    container = example_container()
    container.history.clear()
    # one Python int among the parameters: the only object with the optional attribute h5stream:python-type
    container.log_operation("scale", {"planted_factor": 3, "window_size": np.int32(4)})
    proteins = container.assays["proteins"]
    proteins.layers["planted_norm"] = ScpMatrix(proteins.layers["raw"].X * 2.0, proteins.layers["raw"].M)
    path = tmp_path / "cells.h5"
    container.save(path)
    params = ScpContainer.load(path).history[0].params
    assert params == {"planted_factor": 3, "window_size": 4} and type(params["planted_factor"]) is int
    with h5py.File(path, "r") as f:
        manifest = json.loads(f.attrs[MANIFEST_ATTR])
        assert manifest["version"] == 3 and "/provenance/history/params/0/planted_factor" in manifest["name_digests"]
    return path


def test_a_flipped_optional_attribute_name_is_a_checksum_error(saved, tmp_path):
    bad = tmp_path / "bad.h5"
    damaged = _flip_name(saved, b"h5stream:python-type", 10, bad).decode()  # "h5stream:p}thon-type"
    # the damage is the defect's class: read without verification, the value silently changes type
    value = ScpContainer.load(bad, verify=False).history[0].params["planted_factor"]
    assert type(value) is not int and value == 3
    with pytest.raises(IOChecksumError, match="names of the object's attributes or members") as info:
        ScpContainer.load(bad)
    message = str(info.value)
    assert f"{bad} [/provenance/history/params/0/planted_factor]" in message
    assert damaged == "h5stream:p}thon-type" and damaged in message  # the names found
    with pytest.raises(ChecksumError) as info:
        check_file(bad)
    assert info.value.obj == "/provenance/history/params/0/planted_factor"


def test_a_flipped_member_name_is_a_checksum_error(saved, tmp_path):
    """A layer's name: a member of a group in HDF5's old format (its names in a local heap, no checksum)."""
    with h5py.File(saved, "r") as f:
        layers = f["assays/proteins/layers"]
        assert "planted_norm" in layers and h5py.h5o.get_info(layers.id).hdr.version == 1
    bad = tmp_path / "bad.h5"
    damaged = _flip_name(saved, b"planted_norm", 11, bad).decode()  # "planted_norm" -> "planted_nori"
    with pytest.raises(IOChecksumError, match="names of the object's attributes or members") as info:
        ScpContainer.load(bad)
    assert f"{bad} [/assays/proteins/layers]" in str(info.value) and damaged in str(info.value)
    with pytest.raises(ChecksumError) as info:
        check_file(bad)
    assert info.value.obj == "/assays/proteins/layers"


def test_the_names_of_an_intact_file_verify(saved):
    summary = check_file(saved)
    with h5py.File(saved, "r") as f:
        listed = len(json.loads(f.attrs[MANIFEST_ATTR])["name_digests"])
        objects = []
        f.visit(objects.append)
    assert summary["names"] == listed and listed >= len(objects) // 2  # every object with names has a digest


def test_a_renamed_attribute_with_h5py_is_refused(saved, tmp_path):
    """An edit behind the writer's back: an attribute renamed (same value), which no value digest sees."""
    edited = tmp_path / "edited.h5"
    shutil.copyfile(saved, edited)
    with h5py.File(edited, "r+") as f:
        attrs = f["obs"].attrs
        attrs["_index_renamed"] = attrs["_index"]
        del attrs["_index"]
    with pytest.raises(IOChecksumError) as info:
        ScpContainer.load(edited)
    assert f"{edited} [/obs]" in str(info.value) and "_index_renamed" in str(info.value)
