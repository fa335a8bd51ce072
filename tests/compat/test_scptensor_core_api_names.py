"""Every public name of the original ScpTensor's ``scptensor.core`` and ``scptensor.io`` imports
from the same path here.

The lists are the ``__all__`` of the original's modules at commit 7f8a443 (written out by hand,
so a name dropped here fails the test instead of disappearing from both sides).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

ORIGINAL_CORE = [
    "ScpContainer", "Assay", "ScpMatrix", "ProvenanceLog", "MatrixMetadata", "MaskCode", "AggregationLink",
    "MatrixOps", "reader",
    "load_csv", "save_csv", "load_h5ad", "save_h5ad", "load_npz", "save_npz", "from_scanpy", "to_scanpy",
    "read_h5ad", "write_h5ad",
    "is_sparse_matrix", "get_sparsity_ratio", "to_sparse_if_beneficial", "ensure_sparse_format", "sparse_copy",
    "cleanup_layers", "get_memory_usage", "optimal_format_for_operation", "auto_convert_for_operation",
    "sparse_row_operation", "sparse_col_operation", "sparse_multiply_rowwise", "sparse_multiply_colwise",
    "sparse_center_rows", "sparse_safe_log1p", "get_format_recommendation",
    "NUMBA_AVAILABLE", "count_mask_codes", "find_missing_indices", "compute_euclidean_distance",
    "apply_mask_threshold", "fill_missing_with_value",
    "ScpTensorError", "StructureError", "ValidationError", "LayerNotFoundError", "AssayNotFoundError",
    "MissingDependencyError", "DimensionError", "ScpValueError", "MaskCodeError", "VisualizationError",
]

ORIGINAL_IO = [
    "IOFormatError", "IOPasswordError", "IOWriteError", "save_hdf5", "load_hdf5",
    "deserialize_dataframe", "serialize_dataframe", "serialize_dense_matrix", "serialize_sparse_matrix",
]

# Submodules the original's code and tests import from directly.
ORIGINAL_SUBMODULES = {
    "scptensor.core.structures": [
        "MaskCode", "ProvenanceLog", "MatrixMetadata", "ScpMatrix", "AggregationLink", "Assay", "ScpContainer",
    ],
    "scptensor.core.exceptions": [
        "ScpTensorError", "StructureError", "ValidationError", "LayerNotFoundError", "AssayNotFoundError",
        "MissingDependencyError", "DimensionError", "ScpValueError", "MaskCodeError", "VisualizationError",
    ],
    "scptensor.core.utils": ["_find_closest_match", "compute_pca", "compute_umap", "requires_dependency"],
    "scptensor.core.io": [
        "save_csv", "load_csv", "save_h5ad", "load_h5ad", "save_npz", "load_npz", "from_scanpy", "to_scanpy",
        "read_h5ad", "write_h5ad",
    ],
    "scptensor.core.jit_ops": [
        "NUMBA_AVAILABLE", "count_mask_codes", "find_missing_indices", "apply_mask_threshold",
        "count_above_threshold", "filter_by_threshold_count", "fill_missing_with_value", "fill_nan_with_value",
        "compute_euclidean_distance",
    ],
    "scptensor.core.matrix_ops": ["MatrixOps", "sparse_filter_mask"],
    "scptensor.core.reader": ["reader"],
    "scptensor.core.sparse_utils": [
        "is_sparse_matrix", "get_sparsity_ratio", "to_sparse_if_beneficial", "ensure_sparse_format",
        "sparse_copy", "cleanup_layers", "sparse_safe_operation", "get_memory_usage",
        "optimal_format_for_operation", "auto_convert_for_operation", "sparse_row_operation",
        "sparse_col_operation", "sparse_multiply_rowwise", "sparse_multiply_colwise", "sparse_center_rows",
        "sparse_safe_log1p", "sparse_safe_log1p_with_scale", "get_format_recommendation",
    ],
    "scptensor.io.exceptions": ["IOPasswordError", "IOFormatError", "IOWriteError"],
    "scptensor.io.exporters": ["save_hdf5"],
    "scptensor.io.importers": ["load_hdf5"],
    "scptensor.io.serializers": [
        "serialize_dataframe", "deserialize_dataframe", "serialize_dense_matrix", "serialize_sparse_matrix",
        "serialize_provenance", "deserialize_provenance",
    ],
}


@pytest.mark.parametrize("name", ORIGINAL_CORE)
def test_original_core_name_imports_from_scptensor_core(name):
    core = importlib.import_module("scptensor.core")
    assert name in core.__all__
    assert getattr(core, name) is not None


@pytest.mark.parametrize("name", ORIGINAL_IO)
def test_original_io_name_imports_from_scptensor_io(name):
    io = importlib.import_module("scptensor.io")
    assert name in io.__all__
    value = getattr(io, name)
    assert callable(value)


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in ORIGINAL_SUBMODULES.items() for n in names])
def test_original_submodule_name_imports(module, name):
    assert hasattr(importlib.import_module(module), name)


def test_star_import_gives_every_original_core_name():
    namespace: dict = {}
    exec("from scptensor.core import *", namespace)
    assert not set(ORIGINAL_CORE) - set(namespace)


def test_exception_hierarchy_is_the_originals():
    from scptensor.core import exceptions as e

    for name in ORIGINAL_SUBMODULES["scptensor.core.exceptions"][1:]:
        assert issubclass(getattr(e, name), e.ScpTensorError), name
    from scptensor.io import IOFormatError, IOPasswordError, IOWriteError

    for cls in (IOFormatError, IOPasswordError, IOWriteError):
        assert issubclass(cls, e.ScpTensorError)


@pytest.mark.parametrize(
    ("call", "parameters"),
    [
        ("ScpContainer", ["obs", "assays", "links", "history", "sample_id_col"]),
        ("Assay", ["var", "layers", "feature_id_col"]),
        ("ScpMatrix", ["X", "M", "metadata"]),
        ("ScpContainer.filter_samples", ["self", "sample_ids", "sample_indices", "boolean_mask", "polars_expression", "copy"]),
        ("ScpContainer.filter_features", ["self", "assay_name", "feature_ids", "feature_indices", "boolean_mask",
                                          "polars_expression", "copy"]),
        ("ScpContainer.copy", ["self", "deep"]),
        ("ScpContainer.add_assay", ["self", "name", "assay"]),
        ("ScpContainer.log_operation", ["self", "action", "params", "description", "software_version"]),
        ("Assay.subset", ["self", "feature_indices", "copy_data"]),
        ("Assay.add_layer", ["self", "name", "matrix"]),
        ("from_scanpy", ["adata", "assay_name", "layer_name", "copy"]),
        ("save_csv", ["container", "path", "layer_name", "mask"]),
        ("save_npz", ["container", "path", "compressed"]),
    ],
)
def test_signatures_take_the_originals_parameters_in_order(call, parameters):
    import scptensor.core as core

    obj = core
    for part in call.split("."):
        obj = getattr(obj, part)
    names = [p for p in inspect.signature(obj).parameters if p not in ("args", "kwargs")]
    assert names[: len(parameters)] == parameters


@pytest.mark.parametrize("name", ORIGINAL_CORE)
def test_original_core_name_also_imports_from_scptensor(name):
    # the original's top-level package re-exported every scptensor.core name
    scptensor = importlib.import_module("scptensor")
    core = importlib.import_module("scptensor.core")
    assert getattr(scptensor, name) is getattr(core, name)
