"""h5stream: a domain-free engine for crash-safe, fast HDF5 storage.

Modules: :mod:`h5stream.files` (atomic files, writer claims, validated reads),
:mod:`h5stream.errors` (typed errors), :mod:`h5stream.names` (safe names),
:mod:`h5stream.elements` (element codecs), :mod:`h5stream.writer` (batched and
parallel-compressed writes), :mod:`h5stream.staging` (memory-budgeted staging)
and :mod:`h5stream.kernels` (compiled kernels).
"""

from h5stream.errors import (
    EncodingError,
    FormatError,
    H5StreamError,
    H5StreamWarning,
    MissingPluginError,
    SourceNotFoundError,
    StaleClaimWarning,
    TargetExistsError,
    UnknownEncodingError,
    UnsafeFileError,
    UnsafeNameError,
    WriteError,
    WriterClaimError,
)
from h5stream.files import (
    WriterClaim,
    create_atomic,
    guard_read,
    open_validated,
    update_atomic,
    verify_files,
)

__version__ = "0.1.0"


def openmp_enabled() -> bool:
    """True when the compiled kernels were built with OpenMP (parallel), False for a serial build."""
    from h5stream.native import compiled

    return compiled("_runtime").openmp_enabled()


__all__ = [
    "__version__",
    "openmp_enabled",
    "create_atomic",
    "update_atomic",
    "open_validated",
    "guard_read",
    "verify_files",
    "WriterClaim",
    "H5StreamError",
    "FormatError",
    "UnknownEncodingError",
    "EncodingError",
    "UnsafeNameError",
    "WriteError",
    "WriterClaimError",
    "TargetExistsError",
    "SourceNotFoundError",
    "MissingPluginError",
    "UnsafeFileError",
    "H5StreamWarning",
    "StaleClaimWarning",
]
