"""h5stream: a domain-free engine for crash-safe, fast HDF5 storage.

Modules: :mod:`h5stream.files` (atomic files, writer claims, validated reads),
:mod:`h5stream.errors` (typed errors), :mod:`h5stream.names` (safe names),
:mod:`h5stream.elements` (element codecs), :mod:`h5stream.writer` (batched and
parallel-compressed writes), :mod:`h5stream.staging` (memory-budgeted staging)
and :mod:`h5stream.kernels` (compiled kernels).

Importing it in the main thread, where Python's own handler has Ctrl-C, takes Ctrl-C with
:func:`h5stream.stops.ctrl_c`: it still raises ``KeyboardInterrupt``, but never where Python would drop it or
where it would leave the import lock held (it is raised at the next instruction outside those places).
"""

from h5stream.stops import take_ctrl_c as _take_ctrl_c

_take_ctrl_c()  # first: the imports below take a while on a busy machine

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

#: Names of h5stream.files, imported on first use: ``import h5stream`` (and a command line's start) does not
#: load h5py and numpy until a file is touched, so Ctrl-C in the first moments of a command is answered at once.
_FROM_FILES = frozenset({"WriterClaim", "create_atomic", "guard_read", "open_validated", "update_atomic",
                         "verify_files"})

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _FROM_FILES:
        from h5stream import files

        value = getattr(files, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'h5stream' has no attribute {name!r}")


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
