"""A container's groups as the loader finds them: optional members read where present, a required one missing
named, an empty history and no links written as no objects, and an empty history of files written before
(its objects) still checked against their digests."""

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


def test_an_empty_history_and_no_links_are_written_as_no_objects(tmp_path):
    save_hdf5(_container(), tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert "provenance" not in f and "links" not in f
    loaded = load_hdf5(tmp_path / "c.h5")
    assert loaded.history == [] and loaded.links == []


def _with_old_empty_history(saved, target) -> None:
    """``saved``'s objects and, written with plain h5py, the empty history as files written before held it
    (a records frame of five empty text columns and an empty params mapping), checksummed on closing."""
    from h5scp.io._files import writing

    text = h5py.string_dtype()
    columns = ["timestamp", "action", "software_version", "description"]
    with h5py.File(saved, "r") as src, writing(target, overwrite=False) as f:
        for key, value in src.attrs.items():
            if key != "h5stream_checksums":
                f.attrs[key] = value
        for name in src:
            src.copy(src[name], f, name)
        history = f.create_group("provenance").create_group("history")
        params = history.create_group("params")
        params.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        records = history.create_group("records")
        records.attrs.update({
            "_index": "_index", "column-order": np.array(columns, dtype=object), "encoding-type": "dataframe",
            "encoding-version": "0.2.0", "h5stream:columns": '["' + '", "'.join(columns) + '"]',
            "h5stream:index-column": "null", "h5stream:members": '["' + '", "'.join(columns) + '"]',
        })
        for name in ["_index", *columns]:
            ds = records.create_dataset(name, shape=(0,), dtype=text)
            ds.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})


def test_an_empty_history_written_before_as_objects_loads_empty_and_its_columns_are_still_checked(tmp_path):
    container = _container()
    save_hdf5(container, tmp_path / "new.h5")
    _with_old_empty_history(tmp_path / "new.h5", tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        records = f["provenance/history/records"]
        assert len(records) == 5 and all(records[name].shape == (0,) for name in records)
    loaded = load_hdf5(tmp_path / "c.h5")
    assert loaded.history == []
    assert_container_equal(loaded, container)
    with h5py.File(tmp_path / "c.h5", "r+") as f:  # an empty column of numbers in place of the empty text one
        records = f["provenance/history/records"]
        attrs = dict(records["action"].attrs)
        del records["action"]
        ds = records.create_dataset("action", shape=(0,), dtype="i4")
        ds.attrs.update(attrs)
    with pytest.raises(IOChecksumError, match="checksum mismatch") as info:
        load_hdf5(tmp_path / "c.h5")
    assert "/provenance/history/records/action" in str(info.value)
