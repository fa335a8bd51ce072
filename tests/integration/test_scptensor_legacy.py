"""Files in the original "1.0" layout load, with a named warning (golden file in tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from h5scp import LegacyFormatWarning, ScpContainer
from h5scp.io import load_hdf5, save_hdf5
from h5scp.testing import assert_container_equal

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "scptensor_legacy_v1.h5"

# The planted values of tests/data/make_scptensor_legacy_v1.py, stated independently.
X_RAW = np.array(
    [[1.5, np.nan, 3.25], [2.0, 4.0, np.nan], [0.5, 1.0, 2.0], [np.nan, 8.0, 16.0]], dtype=np.float32
)
M_RAW = np.array([[0, 2, 0], [0, 0, 1], [5, 0, 0], [3, 0, 6]], dtype=np.int8)
X_PEP = np.array([[1, 0, 0, 2, 0], [0, 0, 3, 0, 0], [0, 4, 0, 0, 5], [0, 0, 0, 0, 0]], dtype=np.float32)
M_PEP = np.array([[0, 0, 0, 0, 2], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 4, 0]], dtype=np.int8)


def _load_golden() -> ScpContainer:
    with pytest.warns(LegacyFormatWarning, match="format 1.0"):
        return load_hdf5(GOLDEN)


def test_golden_file_is_in_the_old_layout():
    with h5py.File(GOLDEN, "r") as f:
        assert f.attrs["format_version"] == "1.0"
        assert "format_name" not in f.attrs
        assert "encoding-type" not in f["obs"].attrs
        assert f["assays/peptides/layers/raw"].attrs["X_format"] == "csr"
        assert f["assays/proteins/layers/raw/M"].dtype == np.float32


def test_legacy_file_loads_with_planted_values():
    c = _load_golden()
    # columns come back sorted: the 1.0 layout did not keep their order
    expected_obs = pl.DataFrame(
        {
            "_index": ["S1", "S2", "S3", "S4"],
            "batch": ["B1", "B1", "B2", "B2"],
            "n_cells": np.array([1, 1, 2, 1], dtype=np.int64),
            "purity": [0.9, 0.85, 0.7, 1.0],
        }
    )
    assert_frame_equal(c.obs, expected_obs)
    assert c.sample_id_col == "_index" and c.n_samples == 4
    assert list(c.assays) == ["peptides", "proteins"]
    proteins = c.assays["proteins"]
    assert proteins.var["gene"].to_list() == ["ALB", "ACTB", "GAPDH"]
    raw = proteins.layers["raw"]
    assert raw.X.dtype == np.float32 and np.array_equal(raw.X, X_RAW, equal_nan=True)
    assert raw.M.dtype == np.int8 and np.array_equal(raw.M, M_RAW)
    log = proteins.layers["log"]
    assert log.M is None
    assert np.array_equal(log.X, np.log2(np.nan_to_num(X_RAW, nan=1.0)).astype(np.float32))
    pep = c.assays["peptides"].layers["raw"]
    assert pep.X.format == "csr" and pep.X.dtype == np.float32
    assert np.array_equal(pep.X.toarray(), X_PEP)
    assert pep.M.format == "csr" and pep.M.dtype == np.int8 and np.array_equal(pep.M.toarray(), M_PEP)
    assert [h.action for h in c.history] == ["load_data", "log_transform"]
    assert c.history[0].params == {"source": "run1.tsv", "n": 4}
    assert c.history[0].description == "Load raw" and c.history[1].description is None
    assert c.history[1].params == {"base": 2, "offset": 1.0}
    assert c.history[1].software_version == "0.1.0"
    assert c.links == []


def test_legacy_container_resaves_in_current_format(tmp_path):
    c = _load_golden()
    target = tmp_path / "upgraded.h5"
    save_hdf5(c, target)
    with h5py.File(target, "r") as f:
        assert f.attrs["format_version"] == "2.0"
    assert_container_equal(load_hdf5(target), c)


def test_legacy_history_json_matches_file():
    with h5py.File(GOLDEN, "r") as f:
        raw = [json.loads(p) for p in f["provenance/history/params"].asstr()[()]]
    c = _load_golden()
    assert [h.params for h in c.history] == raw
