"""What the ``hdmea`` command line prints for an error, and its exit status.

One place turns the library's typed errors into the command line's words: each
message says what was expected, what was found and what to do, names no
exception class, and sorts the error into a usage error (exit 2: the command
was given something it cannot work on, nothing was started) or a failure
(exit 1: the work was started and went wrong, or a file is damaged).

Python callers keep the library's own messages (some are the original
pipeline's contract texts, "Cannot read HDF5 file: ... may be corrupted");
the command line says "not a recording" for a file that is no HDF5 file at all,
since a text file given by mistake is not damaged.
"""

from __future__ import annotations

import os
from pathlib import Path

from h5stream.errors import FormatError, H5StreamError, SourceNotFoundError

EXIT_FAILED = 1
EXIT_USAGE = 2

#: What each command takes: (what a wrong file "is not", what was expected, what to do).
_RECORDING = ("a recording", "a recording file (.h5) as hdmea run, batch or demo write it",
              "give the path of a recording file (`hdmea demo --out DIR` writes one to try the commands on)")
_SOURCES = ("a recording", "the MCS raw recording (.cmcr) and its spike sorting (.cmtr)",
            "give the .cmcr exported by CMOS-MEA-Control and the .cmtr by CMOS-MEA-Tools")
_WANTED = {
    "verify": ("an HDF5 file", "a recording file (.h5) or an MCS file (.cmcr, .cmtr)",
               "give the path of a recording or an MCS file"),
    "run": _SOURCES, "run-one": _SOURCES, "batch": _SOURCES,
}


def _missing_signature(path: str | os.PathLike) -> FormatError | None:
    """The engine's "not an HDF5 file" error for ``path``, or None when the file has the HDF5 signature."""
    from h5stream.files.validated import check_hdf5_signature

    try:
        check_hdf5_signature(path)
    except FormatError as exc:
        return exc if exc.found is not None else None  # found is set only when no signature is there
    except H5StreamError:
        return None
    return None


#: The commands that read a recording file, and the argument that names it.
FILE_ARGUMENTS = {"inspect": "file", "report": "file", "verify": "file", "export-nwb": "recording", "view": "paths"}


def input_problem(path: str | os.PathLike, command: str) -> str | None:
    """Why ``path`` cannot be what ``command`` reads, with what to do (None: it may be; the reader decides).

    A folder (but for ``view``, which serves folders) or a raw MCS file (but for ``verify``, which reads
    them too) is refused by its kind, before anything is opened.
    """
    p = Path(path)
    if p.is_dir() and command != "view":
        files = sorted(p.glob("*.h5"))
        todo = ("it holds no .h5 file (hdmea run, batch and demo write them)" if not files
                else f"give the .h5 file in it, {files[0]}" if len(files) == 1
                else f"give one of the {len(files)} .h5 files in it, such as {files[0]}")
        return f"{p} is a folder; hdmea {command} reads one recording file (.h5): {todo}."
    suffix = p.suffix.lower()
    if p.is_file() and suffix in (".cmcr", ".cmtr") and command != "verify":
        cmcr, cmtr = p.with_suffix(".cmcr"), p.with_suffix(".cmtr")
        out = p.with_suffix(".h5").name
        return (f"{p} is a raw MCS file ({suffix}), not a processed recording: process it first with "
                f"`hdmea run {cmcr} {cmtr} --out {out}`, then give {out} to hdmea {command}.")
    return None


def describe_error(exc: BaseException, command: str) -> tuple[str, int]:
    """The message (without the ``hdmea COMMAND:`` prefix) and exit status for ``exc`` raised by ``command``."""
    from hdmea.errors import RecordingFormatError

    noun, wanted, todo = _WANTED.get(command, _RECORDING)
    if isinstance(exc, RecordingFormatError) and exc.obj == "/@h5stream_format" and exc.path:
        return (f"{exc.path} is an HDF5 file that hdmea did not write (it has no hdmea recording mark). "
                f"Give a recording file that hdmea run, batch or demo wrote, or a file of the lab's hdmea_processing "
                f"pipeline (`hdmea demo --out DIR` writes one to try the commands on).", EXIT_USAGE)
    if isinstance(exc, SourceNotFoundError) and getattr(exc, "path", None):
        return f"{exc.path}: no such file: expected {wanted}, found nothing at this path. Check the path, or {todo}.", \
            EXIT_USAGE
    if isinstance(exc, H5StreamError):
        path = getattr(exc, "path", None)
        if path and os.path.isfile(path) and isinstance(exc, (FormatError, OSError)):
            missing = _missing_signature(path)
            if missing is not None:
                return (f"{path} is not {noun}: expected {wanted}, which starts with the HDF5 signature "
                        f"(at offset 0, 512, 1024, ...); found {missing.found} (not an HDF5 file). "
                        f"{todo[0].upper()}{todo[1:]}.", EXIT_USAGE)
        return f"{exc}{_underlying(exc)}", EXIT_FAILED
    if isinstance(exc, ImportError):  # an optional extra: its message says which one to install
        return str(exc), EXIT_FAILED
    return str(exc), EXIT_FAILED


def _underlying(exc: H5StreamError) -> str:
    """What was found, when a fixed message leaves it out (``Cannot read HDF5 file``: why not)."""
    from hdmea.errors import CorruptRecordingError
    from hdmea.pipeline.preflight import reason_text

    cause = exc.__cause__
    if not isinstance(exc, CorruptRecordingError) or cause is None:
        return ""
    return f" Found: {reason_text(cause)}"
