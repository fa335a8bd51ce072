"""scptensor: single-cell proteomics containers with exact, crash-safe HDF5 storage.

An :class:`ScpContainer` holds samples (``obs``), assays of features with
layers of values and mask codes, the operation history and links between
assays.  ``container.save(path)`` and ``ScpContainer.load(path)`` choose the
format by extension: ``.h5``/``.hdf5`` (scptensor format 2.0), ``.h5mu``
(MuData, one modality per assay) and ``.h5ad`` (AnnData, one assay).
"""

import logging

__version__ = "0.2.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from scptensor.core import (  # noqa: E402  (the version must exist before the model imports)
    AggregationLink,
    Assay,
    LegacyFormatWarning,
    MaskCode,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
    ScpTensorError,
    ValidationError,
)

# The I/O layer (and with it the element codecs) loads on first use, so the
# data model imports without it.
_IO_NAMES = {"IOFormatError", "IOPasswordError", "IOWriteError", "load", "load_hdf5", "save", "save_hdf5"}


def __getattr__(name: str):
    if name in _IO_NAMES:
        import scptensor.io

        return getattr(scptensor.io, name)
    from scptensor import core  # the original also exported every scptensor.core name here

    if name in core.__all__:
        return getattr(core, name)
    raise AttributeError(f"module 'scptensor' has no attribute {name!r}")


__all__ = [
    "__version__",
    "AggregationLink",
    "Assay",
    "MaskCode",
    "ProvenanceLog",
    "ScpContainer",
    "ScpMatrix",
    "ScpTensorError",
    "ValidationError",
    "LegacyFormatWarning",
    "IOFormatError",
    "IOPasswordError",
    "IOWriteError",
    "save",
    "load",
    "save_hdf5",
    "load_hdf5",
]
