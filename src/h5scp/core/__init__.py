"""The data model: containers, assays, matrices, history and errors.

It imports none of the file formats (:mod:`h5scp.io`) and none of the January API's helpers
(:mod:`h5scp.january`).  As the package at the January path ``scptensor.core``, it also gives that
path's other names (the interchange helpers ``load_csv`` ..., the sparse-matrix helpers, the mask-code
helpers of ``jit_ops``, ``MatrixOps``, ``reader``): the table :mod:`h5scp._january_table` names their
homes, and each is imported from there on first use.
"""

from h5scp._january_table import hand_on
from h5scp.core import exceptions
from h5scp.core.exceptions import (
    AssayNotFoundError,
    DimensionError,
    LayerNotFoundError,
    LegacyFormatWarning,
    MaskCodeError,
    MetadataKeptWholeWarning,
    MissingDependencyError,
    ScpTensorError,
    ScpValueError,
    StructureError,
    ValidationError,
    VisualizationError,
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
    # errors: every name of h5scp.core.exceptions
    *exceptions.__all__,
]

hand_on(globals(), "scptensor.core")
