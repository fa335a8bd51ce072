"""Data model of ``scptensor``: containers, assays, matrices, history and errors.

The names are those the original ScpTensor exported from ``h5scp.core``:
the structures, the error classes, its interchange helpers (CSV, NPZ, AnnData),
the sparse-matrix helpers, the mask-code helpers of ``jit_ops`` and ``MatrixOps``.
"""

from h5scp.core import exceptions
from h5scp.core.exceptions import (
    AssayNotFoundError,
    DimensionError,
    LayerNotFoundError,
    LegacyFormatWarning,
    MaskCodeError,
    MissingDependencyError,
    ScpTensorError,
    ScpValueError,
    StructureError,
    ValidationError,
    VisualizationError,
)
from h5scp.core.io import (
    from_scanpy,
    load_csv,
    load_h5ad,
    load_npz,
    read_h5ad,
    save_csv,
    save_h5ad,
    save_npz,
    to_scanpy,
    write_h5ad,
)
from h5scp.core.jit_ops import (
    NUMBA_AVAILABLE,
    apply_mask_threshold,
    compute_euclidean_distance,
    count_mask_codes,
    fill_missing_with_value,
    find_missing_indices,
)
from h5scp.core.matrix_ops import MatrixOps
from h5scp.core.reader import reader
from h5scp.core.sparse_utils import (
    auto_convert_for_operation,
    cleanup_layers,
    ensure_sparse_format,
    get_format_recommendation,
    get_memory_usage,
    get_sparsity_ratio,
    is_sparse_matrix,
    optimal_format_for_operation,
    sparse_center_rows,
    sparse_col_operation,
    sparse_copy,
    sparse_multiply_colwise,
    sparse_multiply_rowwise,
    sparse_row_operation,
    sparse_safe_log1p,
    to_sparse_if_beneficial,
)
from h5scp.core.structures import (
    AggregationLink,
    Assay,
    MaskCode,
    MatrixMetadata,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
)

__all__ = [
    # structures
    "ScpContainer",
    "Assay",
    "ScpMatrix",
    "ProvenanceLog",
    "MatrixMetadata",
    "MaskCode",
    "AggregationLink",
    # operations
    "MatrixOps",
    "reader",
    # interchange files
    "load_csv",
    "save_csv",
    "load_h5ad",
    "save_h5ad",
    "load_npz",
    "save_npz",
    "from_scanpy",
    "to_scanpy",
    "read_h5ad",
    "write_h5ad",
    # sparse helpers
    "is_sparse_matrix",
    "get_sparsity_ratio",
    "to_sparse_if_beneficial",
    "ensure_sparse_format",
    "sparse_copy",
    "cleanup_layers",
    "get_memory_usage",
    "optimal_format_for_operation",
    "auto_convert_for_operation",
    "sparse_row_operation",
    "sparse_col_operation",
    "sparse_multiply_rowwise",
    "sparse_multiply_colwise",
    "sparse_center_rows",
    "sparse_safe_log1p",
    "get_format_recommendation",
    # mask-code helpers
    "NUMBA_AVAILABLE",
    "count_mask_codes",
    "find_missing_indices",
    "compute_euclidean_distance",
    "apply_mask_threshold",
    "fill_missing_with_value",
    # errors: every name of h5scp.core.exceptions
    *exceptions.__all__,
]
