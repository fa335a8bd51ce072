"""A lazy tree read with the open-time scan's listings of its groups (:class:`Descriptions.listings`) is the
tree read without them, and names each group's members as h5py lists them (files made with plain h5py)."""

from __future__ import annotations

import h5py
import numpy as np

from h5stream.files.validated import Descriptions, scan_unsafe_objects
from h5stream.tree import Group
from h5stream.tree.nodes import HIDDEN_PREFIX
from h5stream.tree.read import EAGER_LIMIT, Described, decode_node, node_from_h5


def _file(path) -> None:
    with h5py.File(path, "w", libver="latest") as f:
        trials = f.create_group("units/u1/trials")
        for i in range(40):  # past 8 links: the group's links are in dense storage
            trials[str(i)] = np.arange(i, dtype=np.float64)
        f["units/u1/trials"].attrs["unit"] = "s"
        f["units/u2/values"] = np.arange(6).reshape(2, 3)
        f["units/u2/values"].attrs["kind"] = "counts"
        f["units/u2/big"] = np.arange(5_000, dtype=np.int64)  # left on disk
        f.create_group("units/u2/" + HIDDEN_PREFIX + "internal")["x"] = np.arange(2)
        f["names/ä b"] = np.arange(3)
        f.attrs["top"] = 1


def _names(node: Group, prefix: str = "") -> dict:
    out = {prefix or "/": list(node.children)}
    for name, child in node.children.items():
        if isinstance(child, Group):
            out.update(_names(child, f"{prefix}/{name}"))
    return out


def _scanned(f, path):
    checked = Descriptions(EAGER_LIMIT)
    scan_unsafe_objects(f, path, visit=lambda full, oid: False, describe=checked)
    described = {full: Described(*rest) for full, *rest in checked}
    return checked.listings, described


def test_a_tree_read_with_the_scans_listings_is_the_tree_read_without(tmp_path):
    path = tmp_path / "made.h5"
    _file(path)
    with h5py.File(path, "r") as f:
        listings, described = _scanned(f, path)
        assert len(listings) == 7  # every group the scan walked, the root and the hidden one included
        with_listings = node_from_h5(f, lazy=True, opener=lambda: f, manifest=None, described=described,
                                     listings=listings)
        assert set(listings) == {b"units/u2/" + HIDDEN_PREFIX.encode() + b"internal"}  # used, but the hidden one
        _listings, described = _scanned(f, path)
        without = node_from_h5(f, lazy=True, opener=lambda: f, manifest=None, described=described)
        names = _names(with_listings)
        assert names == _names(without)
        # h5py's own listing is the reference: by name, hidden members left out
        for group, members in names.items():
            assert members == [m for m in f[group] if not m.startswith(HIDDEN_PREFIX)], group
        assert names["/units/u1/trials"] == sorted(str(i) for i in range(40))
        found, expected = decode_node(with_listings), decode_node(without)
        assert found.keys() == expected.keys() == {"units", "names", "top"} and found["top"] == 1
        for i in range(40):
            np.testing.assert_array_equal(found["units"]["u1"]["trials"][str(i)], f[f"units/u1/trials/{i}"][()])
        np.testing.assert_array_equal(found["units"]["u2"]["big"], f["units/u2/big"][()])
        np.testing.assert_array_equal(found["names"]["ä b"], np.arange(3))
        assert with_listings.children["units"].children["u1"].children["trials"].attrs == {"unit": "s"}
