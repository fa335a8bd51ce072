"""Saving part of a container (``save_assays=``, ``save_layers=``, ``save_obs=``) in every format: the file
holds exactly the parts named (compared with the container's own parts), and a format holding one assay
(``.h5ad``, ``.zarr``) takes one name and refuses more, naming them and what to do."""

from __future__ import annotations

import importlib.util

import pytest

from h5scp.io import load, save
from h5scp.io.classes import OURS
from h5scp.testing import assert_matrix_equal, example_container

FORMATS = [".h5", ".h5mu", ".parquet", ".h5ad"] + ([".zarr"] if importlib.util.find_spec("zarr") else [])
ONE_ASSAY = (".h5ad", ".zarr")


@pytest.mark.parametrize("ext", FORMATS)
def test_the_parts_named_are_saved_and_nothing_else(tmp_path, ext):
    c = example_container()
    path = tmp_path / f"part{ext}"
    save(c, path, save_assays=["proteins"], save_layers=["raw"], save_obs=False)
    got = load(path, classes=OURS)
    assert list(got.assays) == ["proteins"] and list(got.assays["proteins"].layers) == ["raw"]
    assert got.obs.columns == [c.sample_id_col] and got.sample_ids.to_list() == c.sample_ids.to_list()
    assert_matrix_equal(got.assays["proteins"].layers["raw"], c.assays["proteins"].layers["raw"])
    assert got.links == []  # the links join proteins and peptides, and peptides were left out


@pytest.mark.parametrize("ext", [e for e in FORMATS if e in ONE_ASSAY])
def test_a_one_assay_format_takes_one_name_and_refuses_more(tmp_path, ext):
    c = example_container()
    save(c, tmp_path / f"one{ext}", save_assays="peptides")
    assert list(load(tmp_path / f"one{ext}", classes=OURS).assays) == ["peptides"]
    with pytest.raises(ValueError, match=r"holds one assay, but save_assays names \['proteins', 'peptides'\].*"
                                         r"pass assay= one of them"):
        save(c, tmp_path / f"two{ext}", save_assays=["proteins", "peptides"])
    assert not (tmp_path / f"two{ext}").exists()
