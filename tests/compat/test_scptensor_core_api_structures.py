"""The container classes called the original ScpTensor's way, with results checked against numpy
and copies checked for independence (mutate one, read the other)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from scptensor.core import (
    AggregationLink,
    Assay,
    AssayNotFoundError,
    DimensionError,
    LayerNotFoundError,
    MaskCode,
    MaskCodeError,
    MatrixMetadata,
    MissingDependencyError,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
    ScpTensorError,
    ScpValueError,
    StructureError,
    ValidationError,
)

RNG = np.random.default_rng(7)
N, F, P = 6, 4, 5  # samples, proteins, peptides


def _container(sparse_peptides=False):
    obs = pl.DataFrame({"_index": [f"S{i}" for i in range(N)], "batch": ["a", "b"] * (N // 2),
                        "depth": np.arange(N, dtype=np.int32)})
    prot_var = pl.DataFrame({"_index": [f"PR{j}" for j in range(F)], "len": [100, 200, 300, 400]})
    pep_var = pl.DataFrame({"_index": [f"PE{j}" for j in range(P)]})
    X = RNG.random((N, F))
    M = RNG.integers(0, 7, size=(N, F))
    conf = RNG.random((N, F))
    lod = RNG.random(F)
    proteins = Assay(var=prot_var)
    proteins.add_layer("raw", ScpMatrix(X=X, M=M, metadata=MatrixMetadata(confidence_scores=conf,
                                                                            creation_info={"m": "raw"})))
    proteins.add_layer("log", ScpMatrix(X=np.log1p(X), metadata={"lod": lod}))
    Xp = RNG.random((N, P))
    Xp[Xp < 0.5] = 0
    peptides = Assay(var=pep_var, layers={"raw": ScpMatrix(X=sparse.csr_matrix(Xp) if sparse_peptides else Xp)})
    link = AggregationLink("peptides", "proteins", pl.DataFrame(
        {"source_id": ["PE0", "PE1", "PE2", "PE3", "PE4"], "target_id": ["PR0", "PR0", "PR1", "PR2", "PR3"]}))
    c = ScpContainer(obs=obs, assays={"proteins": proteins})
    c.add_assay("peptides", peptides)
    c.links.append(link)
    c.validate_links()
    return c, X, M, conf, lod, Xp


# ---------------------------------------------------------------- ScpMatrix


def test_scpmatrix_get_m_and_copy_are_independent():
    X = RNG.random((3, 2))
    m = ScpMatrix(X=X)
    assert np.array_equal(m.get_m(), np.zeros((3, 2), np.int8)) and m.get_m().dtype == np.int8
    s = ScpMatrix(X=sparse.csc_matrix(X))
    assert sparse.issparse(s.get_m()) and s.get_m().nnz == 0 and s.get_m().shape == (3, 2)
    M = np.array([[0, 1], [2, 3], [4, 5]])
    meta = MatrixMetadata(detection_limits=np.ones(2), creation_info={"a": [1]})
    orig = ScpMatrix(X=X.copy(), M=M, metadata=meta)
    dup = orig.copy()
    orig.X[0, 0] = -1.0
    orig.M[0, 1] = MaskCode.IMPUTED
    orig.metadata.detection_limits[0] = 9.0
    orig.metadata.creation_info["a"].append(2)
    assert dup.X[0, 0] == X[0, 0] and dup.M[0, 1] == MaskCode.MBR
    assert dup.metadata.detection_limits[0] == 1.0 and dup.metadata.creation_info == {"a": [1]}
    assert np.array_equal(dup.get_m(), M.astype(np.int8))


def test_scpmatrix_mask_errors_are_the_originals_and_typed():
    X = np.zeros((2, 2))
    with pytest.raises(ValueError, match="Shape mismatch") as shape_error:
        ScpMatrix(X=X, M=np.zeros((2, 3)))
    assert isinstance(shape_error.value, DimensionError) and shape_error.value.actual_shape == (2, 3)
    with pytest.raises(ValueError, match="Invalid mask codes") as code_error:
        ScpMatrix(X=X, M=np.array([[0, 9], [0, -2]]))
    assert isinstance(code_error.value, MaskCodeError) and code_error.value.invalid_code == -2


def test_matrix_metadata_fields_are_attributes_and_keys():
    scores = RNG.random((2, 2))
    meta = MatrixMetadata(confidence_scores=scores, creation_info={"method": "x"})
    assert meta.confidence_scores is scores and meta["confidence_scores"] is scores
    assert meta.detection_limits is None and "detection_limits" not in meta
    meta.outlier_scores = np.zeros(2)
    assert list(meta) == ["confidence_scores", "creation_info", "outlier_scores"]
    meta.outlier_scores = None
    assert "outlier_scores" not in meta
    # a matrix always holds a MatrixMetadata: plain dicts (as the files give) are converted
    assert isinstance(ScpMatrix(np.zeros((1, 1)), metadata={"k": 1}).metadata, MatrixMetadata)
    assert ScpMatrix(np.zeros((1, 1))).metadata == {}


# ---------------------------------------------------------------- Assay


def test_assay_add_layer_x_and_errors():
    var = pl.DataFrame({"_index": ["P1", "P2"]})
    assay = Assay(var=var)
    assert assay.X is None
    X = RNG.random((3, 2))
    assay.add_layer("X", ScpMatrix(X=X))
    assert assay.X is assay.layers["X"].X and np.array_equal(assay.X, X)
    with pytest.raises(ValueError, match=r"Layer has 3 features, Assay has 2"):
        assay.add_layer("bad", ScpMatrix(X=np.zeros((3, 3))))
    with pytest.raises(ValueError, match="Samples 4 != 3"):
        assay.add_layer("bad", ScpMatrix(X=np.zeros((4, 2))))
    assert repr(assay) == "<Assay n_features=2, layers=['X']>"


def test_assay_subset_against_numpy_and_copy_data():
    c, X, M, conf, lod, _ = _container()
    assay = c.assays["proteins"]
    idx = [3, 0, 2]
    sub = assay.subset(idx)
    assert sub.feature_ids.to_list() == ["PR3", "PR0", "PR2"] and sub.var["len"].to_list() == [400, 100, 300]
    assert np.array_equal(sub.layers["raw"].X, X[:, idx])
    assert np.array_equal(sub.layers["raw"].M, M[:, idx].astype(np.int8))
    assert np.array_equal(sub.layers["raw"].metadata.confidence_scores, conf[:, idx])
    assert np.array_equal(sub.layers["log"].metadata["lod"], lod[idx])
    assert sub.layers["raw"].metadata.creation_info == {"m": "raw"}
    sub.layers["raw"].X[0, 0] = -5.0
    sub.layers["raw"].M[0, 0] = 6
    assert assay.layers["raw"].X[0, 3] == X[0, 3] and assay.layers["raw"].M[0, 3] == M[0, 3]
    assert np.array_equal(assay.subset(np.array([-1])).layers["log"].X, np.log1p(X)[:, [-1]])
    with pytest.raises(IndexError):
        assay.subset([0, F])


# ---------------------------------------------------------------- ScpContainer


def test_container_properties_repr_summary_html():
    c, *_ = _container()
    assert c.n_samples == N and c.n_features == F and c.shape == (N, F)
    assert c.list_assays() == ["proteins", "peptides"]
    assert c.list_layers("proteins") == ["raw", "log"]
    assert repr(c) == f"<ScpContainer n_samples={N}, assays=[proteins({F}), peptides({P})]>"
    assert c.summary().split("\n") == [f"ScpContainer with {N} samples", "Assays: 2",
                                       f"  - proteins: {F} features, 2 layers", f"  - peptides: {P} features, 1 layers"]
    html = c._repr_html_()
    assert html.startswith("<div style='font-family: monospace;'>") and "\n" not in html
    assert ScpContainer(pl.DataFrame({"_index": []})).shape == (0, 0)


def test_list_layers_unknown_assay_is_a_key_error_with_suggestion():
    c, *_ = _container()
    with pytest.raises(KeyError, match="Did you mean 'proteins'") as err:
        c.list_layers("protein")
    assert isinstance(err.value, AssayNotFoundError) and err.value.suggestion == "proteins"
    with pytest.raises(KeyError, match="Available assays: 'proteins', 'peptides'.*list_assays"):
        c.list_layers("xyz")


def test_add_assay_chains_and_refuses_duplicates_and_wrong_sizes():
    c = ScpContainer(obs=pl.DataFrame({"_index": ["a", "b"]}))
    a = Assay(pl.DataFrame({"_index": ["f"]}), {"raw": ScpMatrix(np.ones((2, 1)))})
    assert c.add_assay("x", a) is c and c.assays["x"] is a
    with pytest.raises(ValueError, match="already exists"):
        c.add_assay("x", a)
    with pytest.raises(ValueError, match=r"New Assay 'y', Layer 'raw': Samples 3 != 2"):
        c.add_assay("y", Assay(pl.DataFrame({"_index": ["f"]}), {"raw": ScpMatrix(np.ones((3, 1)))}))


def test_constructor_takes_the_originals_positional_order_and_messages():
    obs = pl.DataFrame({"_index": ["a"]})
    a = Assay(pl.DataFrame({"_index": ["f"]}), {"raw": ScpMatrix(np.ones((1, 1)))})
    b = Assay(pl.DataFrame({"_index": ["g"]}), {"raw": ScpMatrix(np.ones((1, 1)))})
    link = AggregationLink("a", "b", pl.DataFrame({"source_id": ["f"], "target_id": ["g"]}))
    entry = ProvenanceLog("2025-01-01T00:00:00", "import", {})
    c = ScpContainer(obs, {"a": a, "b": b}, [link], [entry], "_index")
    assert c.links == [link] and c.history == [entry]
    with pytest.raises(ValueError, match="Sample ID column 'sid' not found in obs"):
        ScpContainer(obs, sample_id_col="sid")
    with pytest.raises(ValueError, match="Feature ID column '_index' is not unique"):
        Assay(pl.DataFrame({"_index": ["f", "f"]}))
    with pytest.raises(ValueError, match="target assay 'zz' not found") as err:
        ScpContainer(obs, {"a": a}, [AggregationLink("a", "zz", link.linkage)])
    assert isinstance(err.value, StructureError)


def test_validate_links_checks_ids_too():
    c, *_ = _container()
    c.links.append(AggregationLink("peptides", "proteins", pl.DataFrame({"source_id": ["NOPE"], "target_id": ["PR0"]})))
    with pytest.raises(StructureError, match="source ids not found in assay 'peptides'"):
        c.validate_links()


@pytest.mark.parametrize("sparse_peptides", [False, True])
def test_filter_samples_every_way_against_numpy(sparse_peptides):
    c, X, M, conf, lod, Xp = _container(sparse_peptides)
    rows = [4, 1, 2]
    ids = [f"S{i}" for i in rows]
    mask = np.zeros(N, bool)
    mask[rows] = True
    by_ids = c.filter_samples(ids)
    by_pos = c.filter_samples(sample_indices=rows)
    by_mask = c.filter_samples(boolean_mask=mask)
    by_expr = c.filter_samples(pl.col("depth").is_in(rows))
    by_expr_kw = c.filter_samples(polars_expression=pl.col("depth").is_in(rows))
    by_bool_pos = c.filter_samples(sample_indices=mask)  # numpy indexing takes booleans as a mask
    for got, order in ((by_ids, rows), (by_pos, rows), (by_mask, sorted(rows)), (by_expr, sorted(rows)),
                       (by_expr_kw, sorted(rows)), (by_bool_pos, sorted(rows))):
        assert got.sample_ids.to_list() == [f"S{i}" for i in order]
        assert got.obs["depth"].to_list() == order and got.obs.schema == c.obs.schema
        raw = got.assays["proteins"].layers["raw"]
        assert np.array_equal(raw.X, X[order]) and np.array_equal(raw.M, M[order].astype(np.int8))
        assert np.array_equal(raw.metadata.confidence_scores, conf[order])
        assert np.array_equal(got.assays["proteins"].layers["log"].metadata["lod"], lod)  # per feature: kept
        pep = got.assays["peptides"].layers["raw"].X
        assert sparse.issparse(pep) == sparse_peptides
        assert np.array_equal(pep.toarray() if sparse_peptides else pep, Xp[order])
        assert got.assays["proteins"].var.equals(c.assays["proteins"].var)
        assert got.links == c.links
        last = got.history[-1]
        assert last.action == "filter_samples" and len(got.history) == len(c.history) + 1
        assert last.params == {"n_samples_kept": 3, "n_samples_original": N,
                               "kept_sample_ids": [f"S{i}" for i in order]}
        assert last.description == f"Filtered to 3/{N} samples"
    assert c.history == []  # the source container is unchanged
    by_ids.assays["proteins"].layers["raw"].X[:] = 0
    assert np.array_equal(c.assays["proteins"].layers["raw"].X, X)


def test_filter_samples_errors_are_the_originals():
    c, *_ = _container()
    with pytest.raises(ValidationError, match="Must specify"):
        c.filter_samples()
    with pytest.raises(DimensionError, match="Mask length 2 != samples 6"):
        c.filter_samples(boolean_mask=np.array([True, False]))
    with pytest.raises(ValueError, match="Mask must be boolean"):
        c.filter_samples(boolean_mask=np.ones(N))
    with pytest.raises(ValueError, match="Sample IDs not found"):
        c.filter_samples(["S0", "nope"])
    with pytest.raises(ValueError, match="Expression must produce boolean"):
        c.filter_samples(pl.col("depth"))
    with pytest.raises(IndexError):
        c.filter_samples(sample_indices=[N])


def test_filter_features_against_numpy_and_links_cut():
    c, X, M, conf, lod, Xp = _container()
    cols = [2, 0]
    got = c.filter_features("proteins", ["PR2", "PR0"])
    same = [c.filter_features("proteins", feature_indices=cols),
            c.filter_features("proteins", boolean_mask=pl.Series([True, False, True, False])),
            c.filter_features("proteins", pl.col("len").is_in([100, 300]))]
    assert got.assays["proteins"].feature_ids.to_list() == ["PR2", "PR0"]
    for other in same:
        assert sorted(other.assays["proteins"].feature_ids.to_list()) == ["PR0", "PR2"]
    raw = got.assays["proteins"].layers["raw"]
    assert np.array_equal(raw.X, X[:, cols]) and np.array_equal(raw.M, M[:, cols].astype(np.int8))
    assert np.array_equal(raw.metadata.confidence_scores, conf[:, cols])
    assert np.array_equal(got.assays["proteins"].layers["log"].metadata["lod"], lod[cols])
    assert np.array_equal(got.assays["peptides"].layers["raw"].X, Xp)  # other assays untouched
    # the link keeps only rows whose protein is kept
    kept = got.links[0].linkage
    assert kept["source_id"].to_list() == ["PE0", "PE1", "PE3"] and kept["target_id"].to_list() == ["PR0", "PR0", "PR2"]
    got.validate_links()
    pep = c.filter_features("peptides", ["PE1", "PE3"]).links[0].linkage
    assert pep["source_id"].to_list() == ["PE1", "PE3"] and pep["target_id"].to_list() == ["PR0", "PR2"]
    last = got.history[-1]
    assert last.action == "filter_features" and last.params == {
        "assay_name": "proteins", "n_features_kept": 2, "n_features_original": F, "kept_feature_ids": ["PR2", "PR0"]}
    with pytest.raises(AssayNotFoundError, match="Did you mean 'proteins'"):
        c.filter_features("protein", ["PR0"])
    with pytest.raises(ValueError, match="Feature IDs not found in assay"):
        c.filter_features("proteins", ["PR9"])
    with pytest.raises(DimensionError):
        c.filter_features("proteins", boolean_mask=[True])


def test_copies_deep_shallow_and_default():
    c, X, *_ = _container()
    X = X.copy()  # the container holds the caller's array itself, as the original did
    c.log_operation("first", {"k": [1, 2]})
    deep, default, shallow = c.deepcopy(), c.copy(), c.copy(deep=False)
    assert shallow.obs is c.obs and shallow.assays["proteins"] is c.assays["proteins"]
    assert shallow.assays is not c.assays and shallow.history is not c.history
    c.assays["proteins"].layers["raw"].X[0, 0] = -1.0
    c.assays["proteins"].layers["raw"].metadata.confidence_scores[0, 0] = -1.0
    c.history[0].params["k"].append(3)
    c.log_operation("second", {})
    c.links[0].linkage = c.links[0].linkage.head(1)
    c.add_assay("extra", Assay(pl.DataFrame({"_index": ["z"]})))
    for copy in (deep, default):
        assert copy.assays["proteins"].layers["raw"].X[0, 0] == X[0, 0]
        assert copy.assays["proteins"].layers["raw"].metadata.confidence_scores[0, 0] != -1.0
        assert [e.action for e in copy.history] == ["first"] and copy.history[0].params == {"k": [1, 2]}
        assert copy.links[0].linkage.height == P and "extra" not in copy.assays
        assert copy.obs is not c.obs and copy.obs.equals(c.obs)
    assert shallow.assays["proteins"].layers["raw"].X[0, 0] == -1.0  # shares the arrays
    assert "extra" not in shallow.assays and len(shallow.history) == 1


def test_log_operation_and_provenance_log():
    c, *_ = _container()
    entry = c.log_operation("normalize", {"method": "log"}, "Log normalization", software_version="0.1.0")
    assert c.history[-1] is entry and entry.software_version == "0.1.0" and "T" in entry.timestamp
    log = ProvenanceLog(timestamp="2025-01-06T10:00:00", action="impute", params={"k": 5})
    assert log.description is None and log.software_version is None


def test_save_and_load_methods_round_trip(tmp_path):
    c, X, M, *_ = _container()
    c.save(tmp_path / "c.h5")
    back = ScpContainer.load(tmp_path / "c.h5")
    assert np.array_equal(back.assays["proteins"].layers["raw"].X, X)
    assert np.array_equal(back.assays["proteins"].layers["raw"].M, M.astype(np.int8))
    assert isinstance(back.assays["proteins"].layers["raw"].metadata, MatrixMetadata)
    assert np.array_equal(back.assays["proteins"].layers["raw"].metadata.confidence_scores,
                          c.assays["proteins"].layers["raw"].metadata.confidence_scores)
    with pytest.raises(ValueError):
        c.save(tmp_path / "c.unknown")


def test_error_classes_take_the_originals_arguments():
    assert ValidationError("bad", field="x").field == "x"
    err = DimensionError("shape", expected_shape=(2, 3), actual_shape=(2, 4))
    assert err.expected_shape == (2, 3) and err.actual_shape == (2, 4)
    assert MaskCodeError("code", invalid_code=9).invalid_code == 9
    v = ScpValueError("Negative value", parameter="scale", value=-1.0)
    assert v.parameter == "scale" and v.value == -1.0 and isinstance(v, ValueError)
    a = AssayNotFoundError("metabolites", hint="Use create_assay()")
    assert str(a) == "Assay 'metabolites' not found in container. Use create_assay()" and a.assay_name == "metabolites"
    listed = AssayNotFoundError("xyz", available_assays=["rna", "proteins"])
    assert str(listed).endswith("Available assays: 'proteins', 'rna'") and listed.suggestion is None
    layer = LayerNotFoundError("ra", assay_name="proteins", available_layers=["raw", "log"])
    assert str(layer) == "Layer 'ra' not found in assay 'proteins'. Did you mean 'raw'?" and layer.suggestion == "raw"
    dep = MissingDependencyError("anndata")
    assert dep.dependency_name == "anndata" and "pip install anndata" in str(dep) and "h5stream[interop]" in str(dep)
    assert isinstance(dep, ImportError) and isinstance(dep, ScpTensorError)
    assert str(ScpTensorError()) == ""


def test_matrix_metadata_with_sparse_scores_round_trips_exactly(tmp_path):
    from scptensor.core.structures import values_equal
    from scptensor.io import load_hdf5, save_hdf5

    scores = sparse.csr_matrix(np.array([[0.0, 0.5], [0.25, 0.0], [0.0, 0.0]]))
    meta = MatrixMetadata(confidence_scores=scores, detection_limits=np.array([0.1, 0.2]),
                          creation_info={"method": "knn", "k": 5})
    c = ScpContainer(pl.DataFrame({"_index": ["a", "b", "c"]}),
                     {"p": Assay(pl.DataFrame({"_index": ["f", "g"]}), {"raw": ScpMatrix(RNG.random((3, 2)), metadata=meta)})})
    save_hdf5(c, tmp_path / "m.h5")
    back = load_hdf5(tmp_path / "m.h5").assays["p"].layers["raw"].metadata
    assert isinstance(back, MatrixMetadata) and back.confidence_scores.format == "csr"
    assert np.array_equal(back.confidence_scores.toarray(), scores.toarray())
    assert values_equal(back, meta) and back.creation_info == {"method": "knn", "k": 5}
