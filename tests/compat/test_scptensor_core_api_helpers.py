"""The helpers the original ScpTensor exported from ``scptensor.core``, called its way, checked
against naive numpy and against files made without our writers (plain text, numpy's own
``savez`` of the original's layout, ``anndata`` itself)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from scptensor.core import (
    NUMBA_AVAILABLE,
    Assay,
    MaskCode,
    MatrixMetadata,
    MatrixOps,
    ScpContainer,
    ScpMatrix,
    ValidationError,
    apply_mask_threshold,
    auto_convert_for_operation,
    cleanup_layers,
    compute_euclidean_distance,
    count_mask_codes,
    ensure_sparse_format,
    fill_missing_with_value,
    find_missing_indices,
    from_scanpy,
    get_format_recommendation,
    get_memory_usage,
    get_sparsity_ratio,
    is_sparse_matrix,
    load_csv,
    load_h5ad,
    load_npz,
    optimal_format_for_operation,
    read_h5ad,
    reader,
    save_csv,
    save_h5ad,
    save_npz,
    sparse_center_rows,
    sparse_col_operation,
    sparse_copy,
    sparse_multiply_colwise,
    sparse_multiply_rowwise,
    sparse_row_operation,
    sparse_safe_log1p,
    to_scanpy,
    to_sparse_if_beneficial,
    write_h5ad,
)
from scptensor.core.utils import _find_closest_match, compute_pca, requires_dependency

RNG = np.random.default_rng(11)


def _sparse_sample(shape=(5, 4)):
    dense = RNG.random(shape)
    dense[dense < 0.55] = 0
    dense[0] = 0  # a row without entries
    return dense, sparse.csr_matrix(dense)


# ---------------------------------------------------------------- sparse_utils


def test_sparsity_and_conversions():
    dense, csr = _sparse_sample()
    zeros = np.count_nonzero(dense == 0) / dense.size
    assert is_sparse_matrix(csr) and not is_sparse_matrix(dense)
    assert get_sparsity_ratio(dense) == pytest.approx(zeros) and get_sparsity_ratio(csr) == pytest.approx(zeros)
    converted = to_sparse_if_beneficial(dense, threshold=zeros - 0.01, format="csc")
    assert converted.format == "csc" and np.array_equal(converted.toarray(), dense)
    assert to_sparse_if_beneficial(dense, threshold=zeros + 0.01) is dense
    for fmt in ("csr", "csc", "coo", "lil"):
        out = ensure_sparse_format(csr, fmt)
        assert out.format == fmt and np.array_equal(out.toarray(), dense)
    with pytest.raises(ValueError, match="Unsupported sparse format"):
        ensure_sparse_format(dense, "bsr")
    dup = sparse_copy(csr)
    dup.data[:] = -1
    assert np.array_equal(csr.toarray(), dense)
    usage = get_memory_usage(csr)
    assert usage == {"nbytes": csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes, "is_sparse": True,
                     "shape": dense.shape, "dtype": "float64"}
    assert get_memory_usage(dense)["nbytes"] == dense.nbytes


def test_format_choices():
    _, csr = _sparse_sample()
    assert optimal_format_for_operation(csr, "col_wise") == "csc"
    assert optimal_format_for_operation(csr, "modification") == "lil"
    assert optimal_format_for_operation(np.zeros((2, 2)), "row_wise") == "dense"
    assert auto_convert_for_operation(csr, "col_wise").format == "csc"
    assert get_format_recommendation(1000, 100, 50000, ["row_wise"]) == "csr"
    assert get_format_recommendation(100, 1000, 50000, ["col_wise"]) == "csc"
    assert get_format_recommendation(10, 10, 90, ["row_wise"]) == "dense"
    assert get_format_recommendation(10, 10, 5, ["construction"]) == "lil"


def test_row_and_column_operations_use_stored_entries():
    dense, csr = _sparse_sample()
    rows = sparse_row_operation(csr, np.max)
    cols = sparse_col_operation(csr.tocsc(), np.sum)
    expected_rows = [row[row != 0].max() if np.any(row != 0) else 0.0 for row in dense]
    assert np.allclose(rows, expected_rows) and np.allclose(cols, dense.sum(axis=0))
    f_rows, f_cols = RNG.random(5), RNG.random(4)
    assert np.allclose(sparse_multiply_rowwise(csr, f_rows).toarray(), dense * f_rows[:, None])
    assert sparse_multiply_colwise(csr, f_cols).format == "csc"
    assert np.allclose(sparse_multiply_colwise(csr, f_cols).toarray(), dense * f_cols[None, :])
    with pytest.raises(ValueError, match="Length of factors"):
        sparse_multiply_rowwise(csr, np.ones(3))
    same, means = sparse_center_rows(csr)
    expected = [row[row != 0].mean() if np.any(row != 0) else 0.0 for row in dense]
    assert np.allclose(means, expected) and np.array_equal(same.toarray(), dense)
    logged = sparse_safe_log1p(csr)
    assert sparse.issparse(logged) and np.allclose(logged.toarray(), np.log1p(dense))
    assert np.allclose(sparse_safe_log1p(dense, offset=2.0), np.log(dense + 2.0))


def test_cleanup_layers_removes_the_others():
    c = ScpContainer(pl.DataFrame({"_index": ["a"]}), {"p": Assay(pl.DataFrame({"_index": ["f"]}), {
        k: ScpMatrix(np.ones((1, 1))) for k in ("raw", "log", "imputed")})})
    cleanup_layers(c, "p", keep_layers=["imputed"])
    assert c.list_layers("p") == ["imputed"]
    with pytest.raises(KeyError):
        cleanup_layers(c, "q", ["raw"])


# ---------------------------------------------------------------- jit_ops


def test_mask_code_helpers_against_numpy():
    M = RNG.integers(0, 7, size=(8, 5))
    assert isinstance(NUMBA_AVAILABLE, bool)
    counts = count_mask_codes(M)
    assert counts.dtype == np.int64 and counts.tolist() == [int(np.sum(M == k)) for k in range(7)]
    assert count_mask_codes(sparse.csr_matrix(M)).tolist() == counts.tolist()
    rows, cols = find_missing_indices(M, (1, 2))
    exp_rows, exp_cols = np.nonzero((M == 1) | (M == 2))
    assert np.array_equal(rows, exp_rows) and np.array_equal(cols, exp_cols)
    X = RNG.random((8, 5))
    for comparison, op in enumerate((np.less, np.less_equal, np.greater, np.greater_equal)):
        assert np.array_equal(apply_mask_threshold(X, 0.5, comparison), op(X, 0.5))
    filled = X.copy()
    fill_missing_with_value(filled, M, -1.0, int(MaskCode.LOD))
    assert np.array_equal(filled, np.where(M == 2, -1.0, X))


def test_nan_aware_distance_against_a_naive_loop():
    X = RNG.random((6, 4))
    X[1, 2] = np.nan
    X[3, :] = np.nan
    y = RNG.random(4)
    y[0] = np.nan
    got = compute_euclidean_distance(X, y)
    for i, row in enumerate(X):
        both = ~np.isnan(row) & ~np.isnan(y)
        want = np.sqrt(np.mean((row[both] - y[both]) ** 2)) if both.any() else np.inf
        assert got[i] == pytest.approx(want)


# ---------------------------------------------------------------- MatrixOps


@pytest.mark.parametrize("as_sparse", [False, True])
def test_matrix_ops_against_numpy(as_sparse):
    X = RNG.random((4, 3)) + 1.0
    M = np.array([[0, 1, 0], [2, 0, 5], [0, 0, 0], [3, 4, 6]])
    m = ScpMatrix(sparse.csr_matrix(X) if as_sparse else X, sparse.csc_matrix(M) if as_sparse else M)
    assert np.array_equal(MatrixOps.get_valid_mask(m), M == 0)
    assert np.array_equal(MatrixOps.get_missing_mask(m), M != 0)
    assert np.array_equal(MatrixOps.get_missing_type_mask(m, MaskCode.LOD), M == 2)
    stats = MatrixOps.get_mask_statistics(m)
    assert stats["VALID"] == {"count": 6, "percentage": 50.0} and stats["IMPUTED"]["count"] == 1
    marked = MatrixOps.mark_imputed(m, (np.array([2, 2]), np.array([0, 2])))
    want = M.copy()
    want[2, [0, 2]] = 5
    assert np.array_equal(marked.mask_or_valid(), want) and sparse.issparse(marked.M) == as_sparse
    assert np.array_equal(m.mask_or_valid(), M)  # the input is untouched
    for op, code in ((MatrixOps.mark_outliers, 4), (MatrixOps.mark_lod, 2), (MatrixOps.mark_uncertain, 6)):
        assert op(m, (np.array([0]), np.array([0]))).mask_or_valid()[0, 0] == code
    kept = MatrixOps.filter_by_mask(m, [MaskCode.VALID, MaskCode.MBR])
    drop = ~np.isin(M, [0, 1])
    kx = kept.X.toarray() if as_sparse else kept.X
    assert np.array_equal(np.isnan(kx), drop) and np.array_equal(kx[~drop], X[~drop])
    assert np.array_equal(kept.mask_or_valid(), np.where(drop, 3, M))
    zeroed = MatrixOps.apply_mask_to_values(m, "zero")
    zx = zeroed.X.toarray() if as_sparse else zeroed.X
    assert np.array_equal(zx, np.where(M == 0, X, 0.0))
    nanned = MatrixOps.apply_mask_to_values(m, "nan")
    nx = nanned.X.toarray() if as_sparse else nanned.X
    assert np.array_equal(np.isnan(nx), M != 0)
    a, b = np.array([True, False, True]), np.array([False, False, True])
    assert np.array_equal(MatrixOps.combine_masks([a, b]), a | b)
    assert np.array_equal(MatrixOps.combine_masks([a, b], "intersection"), a & b)
    assert np.array_equal(MatrixOps.combine_masks([a, b, b], "majority"), np.array([False, False, True]))
    with pytest.raises(ValueError, match="No masks"):
        MatrixOps.combine_masks([])


# ---------------------------------------------------------------- utils


def test_utils():
    assert _find_closest_match("prote", ["proteins", "peptides"]) == "proteins"
    assert _find_closest_match("xyz", ["raw"]) is None and _find_closest_match("raw", []) is None
    X = RNG.random((10, 4))
    X[2, 1] = np.nan
    filled = X.copy()
    filled[2, 1] = np.nanmedian(X[:, 1])
    centred = filled - filled.mean(axis=0)
    U, S, _ = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(np.abs(compute_pca(X, n_components=2)), np.abs(U[:, :2] * S[:2]))

    @requires_dependency("a_package_that_is_not_there", "pip install it")
    def needs():
        return 1

    with pytest.raises(ImportError, match="a_package_that_is_not_there"):
        needs()
    with pytest.raises(NotImplementedError, match="ScpContainer"):
        reader("x", {}, {}, "DIA-NN")


# ---------------------------------------------------------------- interchange files


def _small():
    obs = pl.DataFrame({"_index": ["s1", "s2", "s3"], "batch": ["a", "a", "b"], "n": [10, 20, 30]})
    var = pl.DataFrame({"_index": ["P1", "P2"], "gene": ["ALB", "APOA1"]})
    X = np.array([[1.0, 2.5], [np.nan, 4.0], [5.0, 6.0]])
    M = np.array([[0, 0], [1, 0], [0, 5]], dtype=np.int8)
    c = ScpContainer(obs, {"proteins": Assay(var, {"X": ScpMatrix(X, M, MatrixMetadata(creation_info={"by": "t"}))})})
    c.log_operation("normalize", {"method": "log", "base": 2})
    return c, X, M


def test_csv_folder_round_trip_and_a_hand_written_folder(tmp_path):
    c, X, M = _small()
    save_csv(c, tmp_path / "out")
    text = (tmp_path / "out" / "assay_proteins_X.csv").read_text().splitlines()
    assert text[0] == "_index,P1,P2" and text[1] == "s1,1.0,2.5"
    back = load_csv(tmp_path / "out")
    layer = back.assays["proteins"].layers["X"]
    assert np.array_equal(layer.X, X, equal_nan=True) and np.array_equal(layer.M, M)
    assert back.obs.equals(c.obs) and back.history[0].params == {"method": "log", "base": 2}
    # a folder as the original wrote it (no feature id columns in metadata.json), by hand
    folder = tmp_path / "orig"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({
        "version": "0.1.0", "n_samples": 2, "sample_id_col": "_index", "assays": ["pep"],
        "history": [{"timestamp": "2025-01-01T00:00:00", "action": "load", "params": {"f": "x"},
                     "software_version": None, "description": "d"}]}))
    (folder / "obs.csv").write_text("_index,grp\nA,1\nB,2\n")
    (folder / "assay_pep_var.csv").write_text("_index,seq\nq1,AAK\nq2,CCR\nq3,DDE\n")
    (folder / "assay_pep_X.csv").write_text("_index,q1,q2,q3\nA,1.5,,3\nB,0,2,4\n")
    (folder / "assay_pep_X_mask.csv").write_text("_index,q1,q2,q3\nA,0,2,0\nB,0,0,5\n")
    got = load_csv(folder)
    assert np.array_equal(got.assays["pep"].layers["X"].X, [[1.5, np.nan, 3.0], [0.0, 2.0, 4.0]], equal_nan=True)
    assert got.assays["pep"].layers["X"].M.tolist() == [[0, 2, 0], [0, 0, 5]]
    assert got.history[0].action == "load" and got.history[0].params == {"f": "x"}
    (folder / "assay_pep_X.csv").write_text("_index,q1,q3,q2\nA,1,2,3\nB,4,5,6\n")
    with pytest.raises(ValidationError, match="does not match obs and var"):
        load_csv(folder)


def _original_npz(path, payload: dict) -> None:
    """An archive as the original's save_npz made it: JSON text in a pickled object array."""
    np.savez(path, _metadata=np.array(json.dumps(payload), dtype=object))


def test_npz_round_trip_and_the_originals_pickled_layout(tmp_path):
    c, X, M = _small()
    save_npz(c, tmp_path / "c")  # numpy's rule: .npz is appended
    back = load_npz(tmp_path / "c.npz")
    layer = back.assays["proteins"].layers["X"]
    assert np.array_equal(layer.X, X, equal_nan=True) and np.array_equal(layer.M, M)
    assert layer.metadata.creation_info == {"by": "t"} and back.obs.equals(c.obs)
    payload = {
        "_scptensor_version": "0.1.0", "sample_id_col": "_index",
        "obs": {"columns": {"_index": ["A", "B"], "age": [3, 4]}, "dtypes": {"_index": "String", "age": "Int32"}},
        "assay_p_var": {"columns": {"_index": ["f1", "f2", "f3"]}, "dtypes": {"_index": "String"}},
        "assay_p_feature_id_col": "_index",
        "assay_p_layers": {"raw": {
            "shape": [2, 3], "X_is_sparse": True,
            "X": {"format": "csr", "data": [1.0, 2.0], "indices": [0, 2], "indptr": [0, 1, 2], "shape": [2, 3]},
            "M": [[0, 1, 0], [0, 0, 2]], "M_is_sparse": False,
            "metadata": {"confidence_scores": [[1, 1, 1], [0, 0, 0]], "confidence_scores_is_sparse": False,
                         "creation_info": {"method": "x"}}}},
        "history": [{"timestamp": "t", "action": "a", "params": {"k": 1}}],
    }
    _original_npz(tmp_path / "orig.npz", payload)
    got = load_npz(tmp_path / "orig.npz")
    raw = got.assays["p"].layers["raw"]
    assert raw.X.format == "csr" and np.array_equal(raw.X.toarray(), [[1, 0, 0], [0, 0, 2]])
    assert raw.M.tolist() == [[0, 1, 0], [0, 0, 2]] and raw.metadata.creation_info == {"method": "x"}
    assert np.array_equal(raw.metadata.confidence_scores, [[1, 1, 1], [0, 0, 0]])
    assert got.obs.schema["age"] == pl.Int32 and got.history[0].params == {"k": 1}


class _Boom:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_npz_with_a_hostile_pickle_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    pickle.dump(_Boom(), buffer)
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("_metadata.npy", buffer.getvalue())
    with pytest.raises(ValidationError, match="cannot be read safely"):
        load_npz(tmp_path / "bad.npz")


def test_anndata_conversions_against_anndata_itself(tmp_path):
    ad = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    c, X, M = _small()
    adata = to_scanpy(c)
    assert adata.obs_names.tolist() == ["s1", "s2", "s3"] and adata.var["gene"].tolist() == ["ALB", "APOA1"]
    assert np.array_equal(adata.X, X, equal_nan=True) and np.array_equal(adata.layers["mask"], M)
    write_h5ad(c, tmp_path / "c.h5ad")
    by_anndata = ad.read_h5ad(tmp_path / "c.h5ad")
    assert np.array_equal(by_anndata.X, X, equal_nan=True) and by_anndata.uns["scptensor_assay_name"] == "proteins"
    back = read_h5ad(tmp_path / "c.h5ad", assay_name="prot")
    assert back.list_assays() == ["prot"] and back.obs.equals(c.obs)
    assert back.history[0].params == {"method": "log", "base": 2} and back.history[-1].action == "from_scanpy"
    save_h5ad(c, tmp_path / "d.h5ad")
    again = load_h5ad(tmp_path / "d.h5ad")
    assert again.list_assays() == ["proteins"] and np.array_equal(again.assays["proteins"].layers["X"].M, M)
    # an AnnData made by anndata, with ids only in the index and a sparse X
    plain = ad.AnnData(X=sparse.csr_matrix(np.array([[0.0, 1.0], [2.0, 0.0]], dtype=np.float32)),
                       obs=pd.DataFrame({"cond": ["x", "y"]}, index=["c1", "c2"]),
                       var=pd.DataFrame(index=["g1", "g2"]))
    plain.write_h5ad(tmp_path / "plain.h5ad")
    got = read_h5ad(tmp_path / "plain.h5ad", assay_name="rna", layer_name="counts")
    matrix = got.assays["rna"].layers["counts"]
    assert got.sample_ids.to_list() == ["c1", "c2"] and got.assays["rna"].feature_ids.to_list() == ["g1", "g2"]
    assert matrix.X.format == "csr" and matrix.X.dtype == np.float32 and matrix.M is None
    assert matrix.metadata.creation_info == {"source": "scanpy", "original_shape": [2, 2], "is_sparse": True}
    conv = from_scanpy(plain, copy=True)
    conv.assays["proteins"].layers["X"].X.data[:] = 0
    assert plain.X.data.tolist() == [1.0, 2.0]  # copy=True: independent
