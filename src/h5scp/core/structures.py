"""The single-cell proteomics data model, in one module: the container and its parts.

``ScpContainer`` holds the samples (``obs``), one :class:`Assay` per feature
level (``proteins``, ``peptides``), the operation history and the links between
assays.  An :class:`Assay` holds its features (``var``) and named layers, each a
:class:`ScpMatrix` of values ``X`` and mask codes ``M`` (samples x features).

The classes offer the original ScpTensor's constructors, methods, properties,
reprs and messages (``add_assay``, ``filter_samples``, ``Assay.subset``,
``ScpMatrix.get_m`` ...).  Rules enforced on construction (a
:class:`~h5scp.core.exceptions.ValidationError`, also a ``ValueError``,
names the object and what is wrong):

* ``X`` is a 2-D numpy array or a SciPy CSR/CSC matrix (the format is kept);
  float32 stays float32, any other real dtype becomes float64.
* ``M`` is ``None`` (every value VALID) or an array/CSR/CSC of the same shape
  with codes 0..6 (:class:`MaskCode`), stored as int8.
* id columns of ``obs`` and ``var`` exist, hold no nulls and are unique.
* every layer of an assay has the assay's feature count and the container's
  sample count; assay and layer names are safe HDF5 link names.
"""

from h5scp.core._rules import values_equal
from h5scp.core.container import ScpContainer
from h5scp.core.parts import AggregationLink, Assay, MaskCode, MatrixMetadata, ProvenanceLog, ScpMatrix

__all__ = [
    "MaskCode",
    "MatrixMetadata",
    "ScpMatrix",
    "Assay",
    "ProvenanceLog",
    "AggregationLink",
    "ScpContainer",
    "values_equal",
]
