"""A container's groups as the loader finds them: optional members read where present, a required one missing
named, and the empty history's columns still checked against their digests."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.io import load_hdf5, save_hdf5
from h5scp.io.exceptions import IOChecksumError, IOFormatError
from h5scp.testing import assert_container_equal


def _container() -> ScpContainer:
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=(4, 3))
    mask = np.zeros((4, 3), np.int8)
    mask[1, 2] = 2
    obs = pl.DataFrame({"_index": ["s1", "s2", "s3", "s4"], "batch": ["b1", "b1", "b2", "b2"]})
    masked = ScpMatrix(x, mask, {"detection_limits": np.array([0.5, 1.0, 2.0]), "creation_info": {"method": "knn"}})
    return ScpContainer(obs, {
        "proteins": Assay(pl.DataFrame({"_index": ["P1", "P2", "P3"]}), {"raw": masked, "plain": ScpMatrix(x * 2)}),
        "peptides": Assay(pl.DataFrame({"_index": [f"Q{i}" for i in range(6)]}),
                          {"raw": ScpMatrix(sparse.random(4, 6, density=0.4, format="csr", random_state=1))}),
    })


def test_masks_metadata_and_every_layer_come_back(tmp_path):
    container = _container()
    save_hdf5(container, tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r") as f:  # the file holds what the loader must find
        assert {"X", "M", "metadata"} <= set(f["assays/proteins/layers/raw"])
        assert set(f["assays/proteins/layers/plain"]) == {"X"}
    loaded = load_hdf5(tmp_path / "c.h5")
    assert_container_equal(loaded, container)
    raw = loaded.assays["proteins"].layers["raw"]
    assert raw.M.dtype == np.int8 and raw.M[1, 2] == 2 and int(np.count_nonzero(raw.M)) == 1
    np.testing.assert_array_equal(raw.metadata["detection_limits"], [0.5, 1.0, 2.0])
    assert loaded.assays["proteins"].layers["plain"].metadata == {}
    assert list(loaded.assays["proteins"].layers) == ["raw", "plain"]


@pytest.mark.parametrize("member, kind", [
    ("assays/proteins/var", "element"),
    ("assays/proteins/layers/raw/X", "element"),
    ("assays/peptides/layers", "group"),
    ("obs", "element"),
])
def test_a_missing_required_member_is_named(tmp_path, member, kind):
    save_hdf5(_container(), tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r+") as f:
        del f[member]
    with pytest.raises(IOFormatError, match=f"required {kind} is missing") as info:
        load_hdf5(tmp_path / "c.h5", verify=False)  # (verified, the changed member names are refused first)
    assert f"/{member}" in str(info.value)


def test_an_empty_history_loads_empty_and_its_columns_are_still_checked(tmp_path):
    save_hdf5(_container(), tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        records = f["provenance/history/records"]
        assert all(records[name].shape == (0,) for name in records)
    assert load_hdf5(tmp_path / "c.h5").history == []
    with h5py.File(tmp_path / "c.h5", "r+") as f:  # an empty column of numbers in place of the empty text one
        records = f["provenance/history/records"]
        attrs = dict(records["action"].attrs)
        del records["action"]
        ds = records.create_dataset("action", shape=(0,), dtype="i4")
        ds.attrs.update(attrs)
    with pytest.raises(IOChecksumError, match="checksum mismatch") as info:
        load_hdf5(tmp_path / "c.h5")
    assert "/provenance/history/records/action" in str(info.value)
