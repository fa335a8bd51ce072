"""Values of the data model a format cannot hold are refused before anything is written, with an
IOWriteError naming the file and the part (the metadata field, the history parameter)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import sparse

import h5scp
from h5scp import Assay, ProvenanceLog, ScpContainer, ScpMatrix
from h5scp.core.structures import MatrixMetadata
from h5scp.io.classes import OURS
from h5scp.io.exceptions import IOWriteError

FORMATS = [".h5", ".h5mu", ".h5ad", ".parquet", ".zarr"]


def _container(metadata=None, params=None) -> ScpContainer:
    obs = pl.DataFrame({"_index": ["s1", "s2", "s3"]})
    var = pl.DataFrame({"_index": ["P1", "P2"]})
    c = ScpContainer(obs, {"p": Assay(var, {"raw": ScpMatrix(np.arange(6.0).reshape(3, 2), None, metadata)})})
    if params is not None:
        c.history.append(ProvenanceLog(timestamp="2026-01-01T00:00:00", action="impute", params=params,
                                       software_version="1", description="d"))
    return c


def _save(c, path):
    h5scp.save(c, path, **({"assay": "p"} if path.suffix == ".h5ad" else {}))


def test_sparse_metadata_round_trips_in_h5(tmp_path):
    scores = sparse.csr_matrix(np.array([[0.0, 0.5], [0.0, 0.0], [1.0, 0.0]]))
    _save(_container(MatrixMetadata(confidence_scores=scores)), tmp_path / "c.h5")
    got = h5scp.load(tmp_path / "c.h5", classes=OURS).assays["p"].layers["raw"].metadata["confidence_scores"]
    assert sparse.isspmatrix_csr(got) and (got != scores).nnz == 0


@pytest.mark.parametrize("suffix", [".h5mu", ".h5ad", ".parquet", ".zarr"])
def test_sparse_metadata_is_refused_naming_the_field(tmp_path, suffix):
    meta = MatrixMetadata(confidence_scores=np.ones((3, 2)), detection_limits=sparse.csr_matrix(np.eye(3, 2)))
    path = tmp_path / f"c{suffix}"
    with pytest.raises(IOWriteError, match=r"layers/raw/metadata/detection_limits") as caught:
        _save(_container(meta), path)
    assert str(path) in str(caught.value) and "history" not in str(caught.value)
    assert "toarray" in str(caught.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_an_object_in_history_params_is_refused_naming_the_parameter(tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    with pytest.raises(IOWriteError) as caught:
        _save(_container(params={"k": 3, "model": object()}), path)
    text = str(caught.value)
    assert str(path) in text and "params" in text and "model" in text, text
    assert not path.exists()


# --------------------------------------------------------------------------- look-alike containers


def _look_alike(assays=None, X=None, metadata=None, links=None):
    from types import SimpleNamespace

    obs = pl.DataFrame({"_index": ["s1", "s2"]})
    var = pl.DataFrame({"_index": ["P1"]})
    matrix = SimpleNamespace(X=np.array([[1.0], [2.0]]) if X is None else X, M=None, metadata=metadata)
    assay = SimpleNamespace(var=var, layers={"raw": matrix}, feature_id_col="_index")
    return SimpleNamespace(obs=obs, assays={"p": assay} if assays is None else assays,
                           links=[] if links is None else links, history=[], sample_id_col="_index")


MASKED = np.ma.masked_array(np.array([[1.0], [2.0]]), mask=[[False], [True]])


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize(("container", "part", "found"), [
    (lambda: _look_alike(assays=[1]), "[assays]", "found list"),
    (lambda: _look_alike(links={"a": 1}), "[links]", "found dict"),
    (lambda: _look_alike(X=MASKED), "[assays/p/layers/raw/X]", "1 masked cells"),
    (lambda: _look_alike(metadata="checked by hand"), "[assays/p/layers/raw/metadata]", "found str"),
], ids=["assays-list", "links-dict", "masked-X", "metadata-str"])
def test_look_alike_containers_are_refused_naming_the_attribute(tmp_path, suffix, container, part, found):
    path = tmp_path / f"c{suffix}"
    with pytest.raises(IOWriteError) as caught:
        _save(container(), path)
    text = str(caught.value)
    assert str(path) in text and part in text and found in text, text
    assert not path.exists()


def test_our_matrix_refuses_a_masked_array_rather_than_drop_its_mask():
    from h5scp import ValidationError

    with pytest.raises(ValidationError, match="masked array; its mask would be lost"):
        ScpMatrix(MASKED)
    with pytest.raises(ValidationError, match="masked"):
        ScpMatrix(np.ones((2, 1)), np.ma.masked_array(np.zeros((2, 1), np.int8), mask=[[True], [False]]))
    # a masked array with nothing masked is its values
    assert np.array_equal(ScpMatrix(np.ma.masked_array(np.ones((2, 1)))).X, np.ones((2, 1)))
