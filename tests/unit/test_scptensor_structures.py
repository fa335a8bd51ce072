"""Rules of the scptensor data model and its error types."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5stream.errors import FormatError, TargetExistsError, WriteError
from h5scp.core.exceptions import ScpTensorError, ValidationError
from h5scp.core.structures import (
    AggregationLink,
    Assay,
    MaskCode,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
    values_equal,
)


def _var(n, col="_index"):
    return pl.DataFrame({col: [f"F{i}" for i in range(n)]})


# ---------------------------------------------------------------- ScpMatrix


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.float16, np.float64),
        (np.int32, np.float64),
        (np.uint8, np.float64),
        (np.bool_, np.float64),
    ],
)
def test_values_dtype_rule(dtype, expected):
    X = np.arange(6).reshape(2, 3).astype(dtype)
    m = ScpMatrix(X)
    assert m.X.dtype == expected
    assert np.array_equal(m.X, X.astype(expected))


def test_sparse_format_kept_and_other_formats_become_csr():
    dense = np.array([[0, 1.5], [2, 0]], dtype=np.float32)
    assert ScpMatrix(sparse.csr_matrix(dense)).X.format == "csr"
    assert ScpMatrix(sparse.csc_matrix(dense)).X.format == "csc"
    coo = ScpMatrix(sparse.coo_matrix(dense))
    assert coo.X.format == "csr" and coo.X.dtype == np.float32
    assert np.array_equal(coo.X.toarray(), dense)
    ints = ScpMatrix(sparse.csc_matrix(dense.astype(np.int64)))
    assert ints.X.format == "csc" and ints.X.dtype == np.float64


def test_values_must_be_real_and_2d():
    with pytest.raises(ValidationError, match="2-D"):
        ScpMatrix(np.zeros(3))
    with pytest.raises(ValidationError, match="real numbers"):
        ScpMatrix(np.zeros((2, 2), dtype=complex))
    with pytest.raises(ValidationError, match="real numbers"):
        ScpMatrix(np.array([["a"]]))


def test_mask_codes_stored_int8_and_checked():
    X = np.zeros((2, 3), dtype=np.float32)
    m = ScpMatrix(X, np.array([[0, 1, 2], [3, 4, 6]], dtype=np.int64))
    assert m.M.dtype == np.int8
    assert m.M[1, 2] == MaskCode.UNCERTAIN
    assert ScpMatrix(X).M is None
    assert np.array_equal(ScpMatrix(X).mask_or_valid(), np.zeros((2, 3), np.int8))
    # integral floats (as the 1.0 files stored dense masks) are accepted
    assert ScpMatrix(X, np.full((2, 3), 5.0, dtype=np.float32)).M.dtype == np.int8
    with pytest.raises(ValidationError, match="code 7"):
        ScpMatrix(X, np.full((2, 3), 7))
    with pytest.raises(ValidationError, match="code -1"):
        ScpMatrix(X, np.full((2, 3), -1))
    with pytest.raises(ValidationError, match="integer"):
        ScpMatrix(X, np.full((2, 3), 0.5))
    with pytest.raises(ValidationError, match="shape"):
        ScpMatrix(X, np.zeros((3, 2), dtype=np.int8))
    sm = ScpMatrix(X, sparse.csc_matrix(np.array([[0, 2, 0], [0, 0, 1]], dtype=np.int32)))
    assert sm.M.format == "csc" and sm.M.dtype == np.int8
    with pytest.raises(ValidationError, match="code 9"):
        ScpMatrix(X, sparse.csr_matrix(np.array([[0, 9, 0], [0, 0, 0]])))


def test_mask_codes_enum():
    assert [int(c) for c in MaskCode] == list(range(7))
    assert MaskCode.VALID == 0 and MaskCode.UNCERTAIN == 6 and MaskCode.LOD == 2


def test_metadata_must_be_string_keyed_mapping():
    X = np.zeros((1, 1))
    assert ScpMatrix(X, metadata={"lod": np.ones(1)}).metadata["lod"].dtype == np.float64
    with pytest.raises(ValidationError, match="metadata"):
        ScpMatrix(X, metadata={1: 2})


# ---------------------------------------------------------------- Assay and container


def test_assay_rules():
    layer = ScpMatrix(np.zeros((2, 3)))
    assay = Assay(_var(3), {"raw": layer})
    assert assay.n_features == 3 and assay.n_samples == 2
    assert assay.feature_ids.to_list() == ["F0", "F1", "F2"]
    assert Assay(_var(3)).n_samples is None
    with pytest.raises(ValidationError, match=r"Features 3 != Assay 4"):
        Assay(_var(4), {"raw": layer})
    with pytest.raises(ValidationError, match="not unique"):
        Assay(pl.DataFrame({"_index": ["a", "a", "b"]}), {"raw": layer})
    with pytest.raises(ValidationError, match="nulls"):
        Assay(pl.DataFrame({"_index": ["a", None, "b"]}))
    with pytest.raises(ValidationError, match="Feature ID column 'pid' not found"):
        Assay(_var(3), feature_id_col="pid")
    with pytest.raises(ValidationError, match="'/'"):
        Assay(_var(3), {"a/b": layer})
    with pytest.raises(ValidationError, match="Samples 5 != 2"):
        Assay(_var(3), {"raw": layer, "log": ScpMatrix(np.zeros((5, 3)))})
    with pytest.raises(ValidationError, match="ScpMatrix"):
        Assay(_var(3), {"raw": np.zeros((2, 3))})


def test_container_properties_and_rules():
    obs = pl.DataFrame({"sid": ["a", "b"], "x": [1, 2]})
    assay = Assay(_var(3), {"raw": ScpMatrix(np.zeros((2, 3)))})
    c = ScpContainer(obs, {"proteins": assay}, sample_id_col="sid")
    assert c.n_samples == 2
    assert c.sample_ids.to_list() == ["a", "b"]
    assert c.n_features == 3 and c.shape == (2, 3)
    with pytest.raises(ValidationError, match="Samples 2 != 3"):
        ScpContainer(pl.DataFrame({"_index": ["a", "b", "c"]}), {"proteins": assay})
    with pytest.raises(ValidationError, match="not unique"):
        ScpContainer(pl.DataFrame({"_index": ["a", "a"]}))
    with pytest.raises(ValidationError, match="polars DataFrame"):
        ScpContainer({"_index": ["a"]})
    with pytest.raises(ValidationError, match="'..'"):
        ScpContainer(obs, {"..": assay}, sample_id_col="sid")
    with pytest.raises(ValidationError, match="source_id"):
        AggregationLink("a", "b", pl.DataFrame({"x": [1]}))
    # an assay without layers fits any sample count
    assert ScpContainer(pl.DataFrame({"_index": ["a"]}), {"empty": Assay(_var(2))}).n_features == 2


def test_log_operation_appends_stamped_entry():
    from h5scp import __version__

    c = ScpContainer(pl.DataFrame({"_index": ["s"]}))
    before = dt.datetime.now(dt.timezone.utc)
    entry = c.log_operation("normalize", {"method": "log", "k": np.int16(3)}, "Log normalize")
    assert c.history == [entry]
    stamp = dt.datetime.fromisoformat(entry.timestamp)
    assert stamp.tzinfo is not None and abs((stamp - before).total_seconds()) < 60
    assert entry.software_version == __version__
    assert entry.description == "Log normalize"
    other = c.log_operation("x", {}, software_version="9.9")
    assert other.software_version == "9.9" and other.description is None and len(c.history) == 2


def test_values_equal_is_type_and_dtype_strict():
    assert values_equal({"a": np.arange(3)}, {"a": np.arange(3)})
    assert not values_equal({"a": np.arange(3)}, {"a": np.arange(3).astype(np.int32)})
    assert not values_equal(np.int64(1), 1)
    assert values_equal([float("nan")], [float("nan")])
    assert not values_equal({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert ProvenanceLog("t", "a", {"x": np.float32(1)}) == ProvenanceLog("t", "a", {"x": np.float32(1)})
    assert ProvenanceLog("t", "a", {"x": np.float32(1)}) != ProvenanceLog("t", "a", {"x": 1.0})


# ---------------------------------------------------------------- errors


def test_error_hierarchy_and_messages():
    from h5scp.io.exceptions import (
        IOFormatError,
        IOPasswordError,
        IOTargetExistsError,
        IOWriteError,
        translate_engine_error,
    )

    err = IOFormatError("Missing required group: obs")
    assert "Missing required group" in str(err)
    assert isinstance(err, ScpTensorError) and isinstance(err, FormatError) and isinstance(err, OSError)
    err = IOWriteError("Disk full", path="/data/output.h5")
    assert "Disk full" in str(err) and "/data/output.h5" in str(err) and err.path == "/data/output.h5"
    assert isinstance(err, WriteError)
    assert "password" in str(IOPasswordError("File is password protected")).lower()
    assert issubclass(IOPasswordError, ScpTensorError) and issubclass(ValidationError, ValueError)

    engine = TargetExistsError("file already exists", path="/x.h5", hint="pass overwrite=True")
    ours = translate_engine_error(engine)
    assert isinstance(ours, IOTargetExistsError) and isinstance(ours, IOWriteError)
    assert isinstance(ours, FileExistsError)
    assert str(ours) == str(engine) and ours.path == "/x.h5" and ours.hint == "pass overwrite=True"
    fmt = translate_engine_error(FormatError("bad", path="/y.h5", obj="/obs"))
    assert type(fmt) is IOFormatError and fmt.obj == "/obs" and "/y.h5 [/obs]: bad" == str(fmt)


def test_the_container_saves_and_loads_through_the_formats_the_package_connects(tmp_path, monkeypatch):
    import h5py

    from h5scp.core import container as container_module
    from h5scp.io import formats

    c = ScpContainer(pl.DataFrame({"_index": ["s1", "s2"]}),
                     {"p": Assay(pl.DataFrame({"_index": ["f"]}), {"X": ScpMatrix(np.array([[1.0], [2.0]]))})})
    path = c.save(tmp_path / "c.h5")
    with h5py.File(path, "r") as f:  # the scptensor HDF5 format, as the extension names
        assert f.attrs["format_version"] == "2.0" and set(f["assays"]) == {"p"}
    back = ScpContainer.load(path)
    assert type(back) is ScpContainer and back.obs.equals(c.obs)
    np.testing.assert_array_equal(back.assays["p"].layers["X"].X, [[1.0], [2.0]])
    assert container_module._FILES["save"] is formats.save  # after the first use, the formats' own function

    monkeypatch.setattr(container_module, "_FILES", {})  # no formats connected: a sentence, nothing written
    with pytest.raises(ScpTensorError, match=r"ScpContainer.save: no file formats are connected.*import h5scp"):
        c.save(tmp_path / "d.h5")
    assert not (tmp_path / "d.h5").exists()
    with pytest.raises(ScpTensorError, match=r"ScpContainer.load: no file formats"):
        ScpContainer.load(path)
