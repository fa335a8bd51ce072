"""Exact comparison of containers, for tests of code that saves and loads them.

:func:`assert_container_equal` checks everything a container holds, including
dtypes, sparse formats, column order, id column names, assay and layer order.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal
from scipy import sparse

from h5scp.core.structures import (
    AggregationLink,
    Assay,
    MaskCode,
    ScpContainer,
    ScpMatrix,
    values_equal,
)

__all__ = [
    "assert_container_equal",
    "assert_matrix_equal",
    "assert_array_identical",
    "example_container",
]


def assert_array_identical(left, right, what: str = "array") -> None:
    """Dense or sparse arrays equal in type, format, dtype, shape and values (NaN = NaN)."""
    if sparse.issparse(left) or sparse.issparse(right):
        assert sparse.issparse(left) and sparse.issparse(right), f"{what}: sparse versus dense"
        assert left.format == right.format, f"{what}: format {left.format} != {right.format}"
        assert left.dtype == right.dtype, f"{what}: dtype {left.dtype} != {right.dtype}"
        assert left.shape == right.shape, f"{what}: shape {left.shape} != {right.shape}"
        for part in ("data", "indices", "indptr"):
            a, b = getattr(left, part), getattr(right, part)
            equal_nan = part == "data" and a.dtype.kind == "f"
            assert np.array_equal(a, b, equal_nan=equal_nan), f"{what}: {part} differs"
        return
    assert isinstance(left, np.ndarray) and isinstance(right, np.ndarray), f"{what}: not arrays"
    assert left.dtype == right.dtype, f"{what}: dtype {left.dtype} != {right.dtype}"
    assert left.shape == right.shape, f"{what}: shape {left.shape} != {right.shape}"
    assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), f"{what}: values differ"


def assert_matrix_equal(left: ScpMatrix, right: ScpMatrix, what: str = "matrix") -> None:
    assert_array_identical(left.X, right.X, f"{what}.X")
    assert (left.M is None) == (right.M is None), f"{what}.M: {left.M is None} != {right.M is None}"
    if left.M is not None:
        assert_array_identical(left.M, right.M, f"{what}.M")
    assert values_equal(left.metadata, right.metadata), f"{what}.metadata differs"


def assert_container_equal(
    left: ScpContainer, right: ScpContainer, *, check_history: bool = True
) -> None:
    """Raise AssertionError naming the first difference between two containers."""
    assert left.sample_id_col == right.sample_id_col, "sample id column differs"
    assert_frame_equal(left.obs, right.obs, check_dtypes=True, check_column_order=True)
    assert list(left.assays) == list(right.assays), f"assays {list(left.assays)} != {list(right.assays)}"
    for name, a in left.assays.items():
        b = right.assays[name]
        assert a.feature_id_col == b.feature_id_col, f"assay {name!r}: feature id column differs"
        assert_frame_equal(a.var, b.var, check_dtypes=True, check_column_order=True)
        assert list(a.layers) == list(b.layers), f"assay {name!r}: layers differ"
        for layer, matrix in a.layers.items():
            assert_matrix_equal(matrix, b.layers[layer], f"{name}/{layer}")
    assert left.links == right.links, "links differ"
    if check_history:
        assert len(left.history) == len(right.history), "history length differs"
        for i, (x, y) in enumerate(zip(left.history, right.history)):
            assert x == y, f"history[{i}] differs: {x!r} != {y!r}"


def example_container(
    n_samples: int = 6,
    n_proteins: int = 4,
    peptides_per_protein: int = 3,
    *,
    density: float = 0.4,
    seed: int = 0,
) -> ScpContainer:
    """A small container using every part of the model, with planted values.

    Samples with string, integer-with-null, float-with-NaN-and-null, boolean,
    categorical and date columns; ``proteins`` with a dense float32 ``raw`` layer
    with a dense mask and a float64 ``log`` layer with metadata; ``peptides``
    with a CSR ``raw`` layer with a sparse mask and a CSC ``norm`` layer; a
    peptide-to-protein link; two history entries with numpy parameters.
    """
    rng = np.random.default_rng(seed)
    sample_ids = [f"S{i + 1}" for i in range(n_samples)]
    obs = pl.DataFrame(
        {
            "_index": sample_ids,
            "batch": [f"B{i % 2}" for i in range(n_samples)],
            "n_cells": pl.Series([i if i % 3 else None for i in range(n_samples)], dtype=pl.Int64),
            "purity": pl.Series([float("nan") if i == 1 else (None if i == 2 else i / 10) for i in range(n_samples)],
                                dtype=pl.Float64),
            "is_blank": [i == 0 for i in range(n_samples)],
            "group": pl.Series([["ctrl", "treat"][i % 2] for i in range(n_samples)], dtype=pl.Categorical),
            "run_date": [_dt.date(2025, 1, 1) + _dt.timedelta(days=i) for i in range(n_samples)],
        }
    )
    protein_ids = [f"P{j + 1}" for j in range(n_proteins)]
    x = rng.lognormal(size=(n_samples, n_proteins)).astype(np.float32)
    missing = rng.random(x.shape) < 0.25
    x[missing] = np.nan
    m = np.where(missing, int(MaskCode.LOD), int(MaskCode.VALID)).astype(np.int8)
    m[rng.random(x.shape) < 0.1] = int(MaskCode.IMPUTED)
    proteins = Assay(
        pl.DataFrame({"_index": protein_ids, "gene": [f"G{j}" for j in range(n_proteins)]}),
        {
            "raw": ScpMatrix(x, m),
            "log": ScpMatrix(np.log2(np.nan_to_num(x, nan=1.0)).astype(np.float64),
                             metadata={"offset": np.float64(1.0), "lod": np.linspace(0, 1, n_proteins)}),
        },
    )
    n_peptides = n_proteins * peptides_per_protein
    peptide_ids = [f"PEP{k + 1}" for k in range(n_peptides)]
    dense = rng.random((n_samples, n_peptides))
    dense[dense > density] = 0.0
    csr = sparse.csr_matrix(dense.astype(np.float32))
    mask = sparse.csr_matrix(np.where(dense > 0, int(MaskCode.MBR), 0).astype(np.int8))
    peptides = Assay(
        pl.DataFrame({"peptide_id": peptide_ids, "protein": [protein_ids[k // peptides_per_protein] for k in range(n_peptides)]}),
        {"raw": ScpMatrix(csr, mask), "norm": ScpMatrix(sparse.csc_matrix(dense))},
        feature_id_col="peptide_id",
    )
    link = AggregationLink(
        "peptides", "proteins",
        pl.DataFrame({"source_id": peptide_ids, "target_id": [protein_ids[k // peptides_per_protein] for k in range(n_peptides)]}),
    )
    container = ScpContainer(obs, {"proteins": proteins, "peptides": peptides}, links=[link])
    container.log_operation("load", {"source": "run1.tsv", "n_files": np.int64(2)}, "Load raw data")
    container.log_operation(
        "log_transform", {"base": 2, "offset": np.float32(1.0), "cols": np.arange(3, dtype=np.int32), "nested": {"a": [1, "x", None]}}
    )
    return container
