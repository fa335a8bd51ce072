"""I/O errors of ``scptensor``: each is a :class:`~h5scp.core.exceptions.ScpTensorError`
and the engine's matching typed error (:class:`~h5stream.errors.FormatError`,
:class:`~h5stream.errors.WriteError`, ...)."""

from __future__ import annotations

import os

from h5stream.errors import (
    ChecksumError,
    FormatError,
    H5StreamError,
    H5StreamWarning,
    SaveInProgressError,
    SourceNotFoundError,
    TargetExistsError,
    WriteError,
    WriterClaimError,
)
from h5scp.core.exceptions import MetadataKeptWholeWarning, ScpTensorError

__all__ = [
    "ChecksumError",
    "IOChecksumError",
    "IOFormatError",
    "IOPasswordError",
    "IOWriteError",
    "IOTargetExistsError",
    "IOWriterClaimError",
    "IOSourceNotFoundError",
    "IOSaveInProgressError",
    "PartNotFoundWarning",
    "MetadataKeptWholeWarning",
    "translate_engine_error",
]


class IOFormatError(ScpTensorError, FormatError):
    """A file is not a readable ``scptensor`` file: wrong format or version, missing group, corrupt."""


class IOChecksumError(IOFormatError, ChecksumError):
    """Stored data do not match the checksum written with them (the file is damaged)."""


class IOPasswordError(ScpTensorError, FormatError):
    """A file is encrypted or password protected, which HDF5 files of ours never are."""


class IOWriteError(ScpTensorError, WriteError):
    """Writing failed (permissions, full disk, I/O error); any earlier file at the path is intact."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, **details) -> None:
        super().__init__(message, path=path, **details)


class IOTargetExistsError(IOWriteError, TargetExistsError):
    """The target exists and ``overwrite=True`` was not passed."""


class IOWriterClaimError(IOWriteError, WriterClaimError):
    """Another writer holds the target file."""


class IOSourceNotFoundError(ScpTensorError, SourceNotFoundError):
    """The file to read does not exist."""


class IOSaveInProgressError(ScpTensorError, SaveInProgressError):
    """A dataset was replaced by a concurrent save while it was read (it is not damaged; read it again)."""


class PartNotFoundWarning(H5StreamWarning):
    """A selective save named an assay or layer the container does not hold; the name was skipped.

    The original ScpTensor skipped such names silently (its own design example
    asks for ``save_layers=["X", "imputed"]`` of assays holding only some of
    them); here each skipped name is said, once per save.
    """


# Most specific engine class first: the first match wins.
_ENGINE_TO_IO: tuple[tuple[type[H5StreamError], type[ScpTensorError]], ...] = (
    (TargetExistsError, IOTargetExistsError),
    (WriterClaimError, IOWriterClaimError),
    (WriteError, IOWriteError),
    (SourceNotFoundError, IOSourceNotFoundError),
    (SaveInProgressError, IOSaveInProgressError),
    (ChecksumError, IOChecksumError),
    (FormatError, IOFormatError),
)


def translate_engine_error(exc: H5StreamError) -> BaseException:
    """Return the ``scptensor`` error matching an engine error, keeping its message and details.

    Errors that are already ``scptensor`` errors, or have no I/O counterpart
    (e.g. :class:`~h5stream.errors.EncodingError`), are returned unchanged.
    """
    if isinstance(exc, ScpTensorError):
        return exc
    for engine_cls, io_cls in _ENGINE_TO_IO:
        if isinstance(exc, engine_cls):
            claim = (
                {"holder": exc.holder, "other_program": exc.other_program}
                if isinstance(exc, WriterClaimError) else {}
            )
            return io_cls(
                str(exc), path=exc.path, obj=exc.obj, expected=exc.expected, found=exc.found,
                hint=exc.hint, composed=True, **claim,
            )
    return exc
