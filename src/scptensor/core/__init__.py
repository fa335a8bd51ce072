"""Data model of ``scptensor``: containers, assays, matrices, history and errors."""

from scptensor.core.exceptions import LegacyFormatWarning, ScpTensorError, ValidationError
from scptensor.core.structures import (
    AggregationLink,
    Assay,
    MaskCode,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
)

__all__ = [
    "AggregationLink",
    "Assay",
    "MaskCode",
    "ProvenanceLog",
    "ScpContainer",
    "ScpMatrix",
    "ScpTensorError",
    "ValidationError",
    "LegacyFormatWarning",
]
