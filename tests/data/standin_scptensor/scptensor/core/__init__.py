"""The stand-in's data model and its filter criteria."""

from scptensor.core.filtering import FilterCriteria
from scptensor.core.structures import (
    AggregationLink,
    Assay,
    MaskCode,
    MatrixMetadata,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
)

__all__ = ["AggregationLink", "Assay", "FilterCriteria", "MaskCode", "MatrixMetadata", "ProvenanceLog",
           "ScpContainer", "ScpMatrix"]
