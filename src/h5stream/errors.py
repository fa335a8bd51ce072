"""Typed errors shared by the engine and both faces (``scptensor``, ``hdmea``).

Every error message names the file, the object inside it, what was expected,
what was found, and what to do next.  Errors also derive from the matching
built-in exception (``FileExistsError``, ``OSError``, ``ValueError`` ...) so
that code written against the built-ins keeps catching them.
"""

from __future__ import annotations

import os

__all__ = [
    "H5StreamError",
    "FormatError",
    "UnknownEncodingError",
    "MissingPluginError",
    "UnsafeFileError",
    "ChecksumError",
    "WriteError",
    "TargetExistsError",
    "SourceNotFoundError",
    "WriterClaimError",
    "OpenInThisProcessError",
    "SaveInProgressError",
    "EncodingError",
    "UnsafeNameError",
    "H5StreamWarning",
    "StaleClaimWarning",
    "StaleFilesWarning",
]


def compose_message(
    message: str,
    *,
    path: str | os.PathLike | None = None,
    obj: str | None = None,
    expected: str | None = None,
    found: str | None = None,
    hint: str | None = None,
) -> str:
    """Build ``"<path> [<obj>]: message (expected ..., found ...). hint"``."""
    head = ""
    if path is not None:
        head = os.fspath(path)
    if obj is not None:
        head = f"{head} [{obj}]" if head else f"[{obj}]"
    text = f"{head}: {message}" if head else message
    detail = []
    if expected is not None:
        detail.append(f"expected {expected}")
    if found is not None:
        detail.append(f"found {found}")
    if detail:
        text += " (" + ", ".join(detail) + ")"
    if hint:
        text += f". {hint}"
    return text


class H5StreamError(Exception):
    """Base class of every error raised by h5stream, scptensor and hdmea.

    Every field is given at construction (``path``, ``obj``, ``expected``,
    ``found``, ``hint``) and composed into the message, never set afterwards.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        obj: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
        composed: bool = False,
    ) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.obj = obj
        self.expected = expected
        self.found = found
        self.hint = hint
        # ``composed=True``: ``message`` already is the full text (a fixed message a
        # contract prescribes, or one carried over from another process); the
        # fields are recorded for programs without being written into it again.
        text = message if composed else compose_message(
            message, path=path, obj=obj, expected=expected, found=found, hint=hint
        )
        # A single argument keeps OSError subclasses from reinterpreting it as errno.
        super().__init__(text)

    def __str__(self) -> str:  # OSError.__str__ would format errno/strerror
        return self.args[0] if self.args else ""


class FormatError(H5StreamError, OSError):
    """A file or object is not what it should be: wrong format, version, truncated, corrupt."""


class UnknownEncodingError(FormatError):
    """An element carries an ``encoding-type``/``encoding-version`` no reader is registered for."""


class MissingPluginError(FormatError):
    """A dataset uses a compression filter that is not available in this environment."""


class UnsafeFileError(FormatError):
    """A file would make the reader touch other files (external links, external storage, VDS)."""


class ChecksumError(FormatError):
    """Stored data do not match the checksum written with them (Fletcher32 or the file's manifest)."""


class WriteError(H5StreamError, OSError):
    """Writing failed (permissions, full disk, I/O error); earlier files are untouched."""


class TargetExistsError(H5StreamError, FileExistsError):
    """The target exists and ``overwrite`` was not requested."""


class SourceNotFoundError(H5StreamError, FileNotFoundError):
    """A file to read does not exist."""


class WriterClaimError(H5StreamError, OSError):
    """Another writer (thread, process or host) holds the target.

    ``holder`` is the claim's content (``host``, ``pid``, ``thread``, ``time``),
    None when it was unreadable or when ``other_program`` is True: another
    program holds HDF5's own file lock on the target, not a claim.
    """

    def __init__(self, message: str, *, holder: dict | None = None, other_program: bool = False,
                 **fields) -> None:
        self.holder = dict(holder) if holder else None
        self.other_program = other_program
        super().__init__(message, **fields)


class OpenInThisProcessError(WriterClaimError):
    """The file is open in this very process (an h5py handle not closed): not damage, not another program.

    ``intent`` is ``"read-only"`` or ``"for writing"``.
    """

    def __init__(self, message: str, *, intent: str, **fields) -> None:
        self.intent = intent
        super().__init__(message, **fields)

class SaveInProgressError(H5StreamError, OSError):
    """A folder dataset was replaced by a save while it was read, again on every retry within the bound.

    Nothing is damaged: the read met a save in progress.  Reading again once the
    save is done returns the complete new dataset.
    """


class EncodingError(H5StreamError, TypeError):
    """A value cannot be represented exactly by any registered element codec."""


class UnsafeNameError(H5StreamError, ValueError):
    """A name would escape or nest inside its group (``/``, NUL, ``.``, ``..``, empty)."""


class H5StreamWarning(UserWarning):
    """Base class of the warnings h5stream emits."""


class StaleClaimWarning(H5StreamWarning):
    """A writer claim left by a dead process on this host was cleared."""


class StaleFilesWarning(StaleClaimWarning):
    """Files a dead writer of this host left beside a target (partial files, half-made claims) were removed."""
