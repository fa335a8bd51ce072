"""The container comparator used by the round-trip tests notices every kind of difference."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5scp.core.structures import Assay, ScpContainer, ScpMatrix
from h5scp.testing import assert_container_equal, example_container


BASE = example_container()


def _variant(change):
    c = copy.deepcopy(BASE)
    change(c)
    return c


def _set_layer(c, assay, layer, matrix):
    c.assays[assay].layers[layer] = matrix


CHANGES = {
    "X dtype": lambda c: _set_layer(c, "proteins", "raw", ScpMatrix(
        c.assays["proteins"].layers["raw"].X.astype(np.float64), c.assays["proteins"].layers["raw"].M)),
    "sparse format": lambda c: _set_layer(c, "peptides", "norm", ScpMatrix(
        sparse.csr_matrix(c.assays["peptides"].layers["norm"].X))),
    "mask None vs zeros": lambda c: _set_layer(c, "peptides", "norm", ScpMatrix(
        c.assays["peptides"].layers["norm"].X, np.zeros(c.assays["peptides"].layers["norm"].shape, np.int8))),
    "one value": lambda c: c.assays["proteins"].layers["log"].X.__setitem__((0, 0), 123.0),
    "obs column order": lambda c: setattr(c, "obs", c.obs.select(reversed(c.obs.columns))),
    "obs dtype": lambda c: setattr(c, "obs", c.obs.with_columns(pl.col("n_cells").cast(pl.Int32))),
    "layer order": lambda c: setattr(c.assays["proteins"], "layers",
                                     dict(reversed(list(c.assays["proteins"].layers.items())))),
    "assay order": lambda c: setattr(c, "assays", dict(reversed(list(c.assays.items())))),
    "feature id column": lambda c: setattr(c.assays["peptides"], "feature_id_col", "protein"),
    "history param dtype": lambda c: c.history[0].params.__setitem__("n_files", np.int32(2)),
    "metadata": lambda c: c.assays["proteins"].layers["log"].metadata.__setitem__("offset", 1.0),
    "links": lambda c: setattr(c, "links", []),
}


def test_identical_containers_compare_equal():
    assert_container_equal(BASE, copy.deepcopy(BASE))
    # two builds differ only in the history time stamps
    assert_container_equal(BASE, example_container(), check_history=False)
    with pytest.raises(AssertionError, match="history"):
        assert_container_equal(BASE, example_container())


@pytest.mark.parametrize("name", list(CHANGES))
def test_every_difference_is_noticed(name):
    with pytest.raises(AssertionError):
        assert_container_equal(BASE, _variant(CHANGES[name]))


def test_example_container_uses_every_part():
    c = example_container()
    kinds = {(a, l): ("sparse " + m.X.format) if sparse.issparse(m.X) else str(m.X.dtype)
             for a, assay in c.assays.items() for l, m in assay.layers.items()}
    assert kinds == {("proteins", "raw"): "float32", ("proteins", "log"): "float64",
                     ("peptides", "raw"): "sparse csr", ("peptides", "norm"): "sparse csc"}
    assert c.obs["n_cells"].null_count() and c.obs["purity"].is_nan().any() and c.links and c.history
    assert isinstance(c.assays["proteins"], Assay) and isinstance(c, ScpContainer)
